//! The one error type of `reid-local`.

use std::path::PathBuf;

/// Everything that can go wrong while extracting, caching, matching or
/// verifying local features. Every variant names the file, parameter or
/// index concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// A parameter is out of range; checked once, up front.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// A file or folder could not be read or written (a missing image file
    /// is reported here, with [`std::io::ErrorKind::NotFound`]).
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The image could not be decoded (corrupt, truncated, unsupported,
    /// too large); the inner error names the file.
    #[error(transparent)]
    Decode(#[from] reid_data::DataError),
    /// A cache file is truncated, has a bad checksum or impossible contents.
    #[error("{path}: damaged feature cache file: {reason}")]
    CacheCorrupt {
        /// The cache file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A cache file was written by another version of the format.
    #[error("{path}: feature cache format version {found}, this build reads version {expected}")]
    CacheVersion {
        /// The cache file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build writes and reads.
        expected: u32,
    },
    /// A cache file is intact but belongs to other image bytes or other
    /// extraction parameters.
    #[error("{path}: feature cache file holds key {found}, expected {expected}")]
    CacheKeyMismatch {
        /// The cache file.
        path: PathBuf,
        /// The key in the file (hex).
        found: String,
        /// The key asked for (hex).
        expected: String,
    },
    /// A value is NaN or infinite.
    #[error("{what} has a non-finite value at position {index}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Index of the first offending value.
        index: usize,
    },
    /// An input had an unexpected length or shape.
    #[error("shape mismatch: {what}: expected {expected}, got {got}")]
    Shape {
        /// What is checked.
        what: &'static str,
        /// The expected shape.
        expected: String,
        /// The shape found.
        got: String,
    },
    /// An index (image, query, gallery item) is out of range.
    #[error("{what} index {index} out of range (length {len})")]
    OutOfRange {
        /// Which index.
        what: &'static str,
        /// The index.
        index: usize,
        /// The valid length.
        len: usize,
    },
    /// A file could not be written atomically (the old one is intact).
    #[error(transparent)]
    Write(#[from] reid_core::CoreError),
}

impl LocalError {
    /// A rejected parameter.
    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        LocalError::InvalidParam {
            name,
            reason: reason.into(),
        }
    }

    /// An I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LocalError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = LocalError> = std::result::Result<T, E>;
