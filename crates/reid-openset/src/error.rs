//! The one error type of `reid-openset`.

/// Errors of `reid-openset`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpensetError {
    /// A parameter is out of range; checked once, up front.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// An array had an unexpected shape.
    #[error("shape mismatch: expected {expected}, got {got}")]
    Shape {
        /// The expected shape.
        expected: String,
        /// The shape found.
        got: String,
    },
    /// The gallery (database) has no rows.
    #[error("the gallery is empty")]
    EmptyGallery,
    /// A gallery record has no identity, so it cannot answer "this is X".
    #[error("gallery record `{image_id}` has no identity")]
    Unlabelled {
        /// The record's image id.
        image_id: String,
    },
    /// An input that must not be empty is empty.
    #[error("{what} is empty")]
    Empty {
        /// What was empty.
        what: &'static str,
    },
    /// A value is NaN or infinite.
    #[error("{what} has a non-finite value at row {row}, column {col}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Row of the value (0 for one-dimensional inputs).
        row: usize,
        /// Column of the value (the position for one-dimensional inputs).
        col: usize,
    },
    /// Two inputs that must have the same length do not.
    #[error("length mismatch: {what}: expected {expected}, got {got}")]
    Length {
        /// What is compared.
        what: &'static str,
        /// The expected length.
        expected: usize,
        /// The length found.
        got: usize,
    },
    /// An index (gallery row, query row) is out of range.
    #[error("{what} index {index} out of range (length {len})")]
    OutOfRange {
        /// Which index.
        what: &'static str,
        /// The index.
        index: usize,
        /// The valid length.
        len: usize,
    },
    /// The database cannot form the requested open-set episodes.
    #[error("cannot simulate open-set episodes: {0}")]
    Episodes(String),
    /// A user-supplied pair scorer failed.
    #[error(
        "pair scorer `{source_name}` failed for query {query}, gallery item {gallery}: {reason}"
    )]
    Scorer {
        /// Name of the similarity source.
        source_name: String,
        /// Query row.
        query: usize,
        /// Gallery row.
        gallery: usize,
        /// The scorer's message.
        reason: String,
    },
    /// The gallery search failed.
    #[error(transparent)]
    Index(#[from] reid_index::IndexError),
}

/// Result alias for this crate.
pub type Result<T, E = OpensetError> = std::result::Result<T, E>;
