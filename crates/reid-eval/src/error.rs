//! The one error type of `reid-eval`.
//!
//! Variants that only the code of an optional feature can produce exist only
//! with that feature (their payload may need that feature's dependency:
//! `image`, `serde_json`, `linfa-tsne`, `reid-index`); each says which. The
//! enum is `#[non_exhaustive]`, so a match written against one feature set
//! still compiles against another.

/// Errors of `reid-eval`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
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
    /// A per-item list has the wrong length (e.g. labels vs points).
    #[error("length mismatch: `{name}` has {got} entries, expected {expected}")]
    LengthMismatch {
        /// The list.
        name: &'static str,
        /// The length required.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A value that must be finite is NaN or infinite.
    #[error("non-finite value in `{name}` at row {row}: {value}")]
    NonFinite {
        /// The input holding it.
        name: &'static str,
        /// Its row (0-based).
        row: usize,
        /// The value.
        value: f64,
    },
    /// Reading or writing a file failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Drawing a picture failed (feature `plot`).
    #[cfg(feature = "plot")]
    #[error("drawing {what} failed: {reason}")]
    Draw {
        /// What was drawn (a file name or a part of the picture).
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// Encoding an image for a file failed (feature `plot`).
    #[cfg(feature = "plot")]
    #[error("encoding image {}: {source}", path.display())]
    ImageEncode {
        /// The file it was for.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: image::ImageError,
    },
    /// Serialising or parsing JSON failed (feature `report`).
    #[cfg(feature = "report")]
    #[error("JSON for {}: {source}", path.display())]
    Json {
        /// The file it was for.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// An input that must not be empty is empty.
    #[error("{what} is empty")]
    Empty {
        /// What was empty.
        what: &'static str,
    },
    /// A score matrix holds a NaN (scores are ranked, so NaN has no place).
    #[error("`{name}` has a NaN at row {row}, column {col}")]
    NanScore {
        /// The input holding it.
        name: &'static str,
        /// Its row (0-based; a query).
        row: usize,
        /// Its column (0-based; a gallery item).
        col: usize,
    },
    /// A ranked list names a gallery item that does not exist.
    #[error("`{name}` row {row}: gallery index {index} out of range (gallery has {len} items)")]
    IndexOutOfRange {
        /// The input holding it.
        name: &'static str,
        /// Its row (0-based; a query).
        row: usize,
        /// The index found.
        index: usize,
        /// The gallery size.
        len: usize,
    },
    /// A ranked list names the same gallery item twice.
    #[error("`{name}` row {row}: gallery index {index} appears twice")]
    DuplicateIndex {
        /// The input holding it.
        name: &'static str,
        /// Its row (0-based; a query).
        row: usize,
        /// The repeated index.
        index: usize,
    },
    /// No query has a correct item in the gallery, so ranking metrics are
    /// undefined.
    #[error("none of the {queries} queries has a correct item in the gallery")]
    NoMatchableQuery {
        /// The number of queries given.
        queries: usize,
    },
    /// A clustering has a number of clusters the score is not defined for
    /// (silhouette: 2 to `samples - 1`, as scikit-learn requires).
    #[error(
        "number of labels is {labels}; valid values are 2 to n_samples - 1 = {} (inclusive)",
        samples.saturating_sub(1)
    )]
    LabelCount {
        /// Distinct labels found.
        labels: usize,
        /// Samples given.
        samples: usize,
    },
    /// A CSV file lacks a column that is required.
    #[error("{}: missing required column `{column}` (header: {header})", path.display())]
    MissingColumn {
        /// The CSV file.
        path: std::path::PathBuf,
        /// The column required.
        column: &'static str,
        /// The header found.
        header: String,
    },
    /// A CSV row is malformed.
    #[error("{}:{line}: {reason}", path.display())]
    BadRow {
        /// The CSV file.
        path: std::path::PathBuf,
        /// 1-based line in the file (the header is line 1).
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// A submission breaks the competition's rules (all problems found are
    /// listed; the message shows the first few).
    #[error("{}", crate::submission::describe_problems(problems))]
    InvalidSubmission {
        /// Every problem found, in row order (missing queries last).
        problems: Vec<crate::submission::SubmissionProblem>,
    },
    /// Loading AnimalCLEF metadata failed.
    #[error(transparent)]
    Data(#[from] reid_data::DataError),
    /// An open-set score of `reid-openset` failed.
    #[error(transparent)]
    Openset(#[from] reid_openset::OpensetError),
    /// Too few samples for the computation (t-SNE needs a handful of points).
    #[error("{what} needs at least {min} samples, got {samples}")]
    TooFewSamples {
        /// The computation.
        what: &'static str,
        /// The fewest samples it accepts.
        min: usize,
        /// The samples given.
        samples: usize,
    },
    /// The t-SNE perplexity is too large for the number of samples
    /// (linfa-tsne / bhtsne need `samples - 1 >= 3 * perplexity`; feature
    /// `tsne`).
    #[cfg(feature = "tsne")]
    #[error(
        "perplexity {perplexity} too large for {samples} samples: need samples - 1 >= 3 * perplexity, \
         i.e. perplexity <= {}",
        (*samples as f64 - 1.0) / 3.0
    )]
    PerplexityTooLarge {
        /// The perplexity asked for.
        perplexity: f64,
        /// The samples given.
        samples: usize,
    },
    /// Every row of the input is the same point, so distances carry nothing
    /// (t-SNE; feature `tsne`).
    #[cfg(feature = "tsne")]
    #[error("all {samples} rows of `{name}` are the same point")]
    ConstantInput {
        /// The input.
        name: &'static str,
        /// Its rows.
        samples: usize,
    },
    /// linfa-tsne rejected its input (not expected: inputs are checked
    /// first; feature `tsne`).
    #[cfg(feature = "tsne")]
    #[error("linfa-tsne: {0}")]
    Tsne(#[source] linfa_tsne::TSneError),
    /// The exact k-NN search of the native t-SNE engine failed (not
    /// expected: its input is checked first; feature `tsne`).
    #[cfg(feature = "tsne")]
    #[error("t-SNE nearest neighbours: {0}")]
    Index(#[from] reid_index::IndexError),
}

/// Result alias for this crate.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
