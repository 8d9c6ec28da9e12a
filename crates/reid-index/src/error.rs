//! The one error type of `reid-index`.

use std::path::PathBuf;

/// Errors of `reid-index`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
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
    /// The gallery holds no embeddings, so there is nothing to match against.
    #[error("the gallery is empty")]
    EmptyGallery,
    /// An input row holds a NaN or an infinity.
    #[error("{what} row {row} holds a NaN or infinite value")]
    NonFinite {
        /// Which input: `"query"`, `"gallery"` or `"embedding"`.
        what: &'static str,
        /// The row.
        row: usize,
    },
    /// A similarity overflowed although both rows are finite (rows far from
    /// unit length).
    #[error(
        "similarity of query {query} and gallery row {gallery} is not finite (rows not L2-normalised?)"
    )]
    NonFiniteScore {
        /// Query row.
        query: usize,
        /// Gallery row.
        gallery: usize,
    },
    /// A record id is enrolled twice.
    #[error("record id `{0}` is already in the gallery")]
    DuplicateId(String),
    /// A record id is not in the gallery.
    #[error("record id `{0}` is not in the gallery")]
    UnknownId(String),
    /// A filter expression could not be parsed.
    #[error("bad filter expression `{expr}`: {reason}")]
    Filter {
        /// The expression.
        expr: String,
        /// What is wrong.
        reason: String,
    },
    /// The embedding model of two galleries (or of a gallery and a query
    /// batch) differ.
    #[error("model mismatch: gallery holds `{expected}` embeddings, got `{got}`")]
    ModelMismatch {
        /// The gallery's model id.
        expected: String,
        /// The other model id.
        got: String,
    },
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A gallery file is not one (wrong magic bytes).
    #[error("{path} is not a reid-index gallery file (bad magic bytes)")]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// A gallery file has a format version this build cannot read.
    #[error("{path} has format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// A gallery file is shorter or longer than its header says.
    #[error("{path} is truncated or padded: header says {expected} bytes, file has {found}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// A gallery file's payload does not match its checksum.
    #[error("{path} is corrupted: SHA-256 of the payload does not match the header")]
    Checksum {
        /// The file.
        path: PathBuf,
    },
    /// A gallery file passed its checksum but its content is inconsistent.
    #[error("{path} is malformed: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is inconsistent.
        reason: String,
    },
    /// A file could not be written atomically (the old one is intact).
    #[error(transparent)]
    Write(#[from] reid_core::CoreError),
}

impl IndexError {
    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParam {
            name,
            reason: reason.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = IndexError> = std::result::Result<T, E>;
