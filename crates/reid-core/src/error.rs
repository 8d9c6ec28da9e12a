//! The one error type of `reid-core`.

use std::path::PathBuf;

/// Errors of `reid-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A file could not be written (the previous content, if any, is intact).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file that was to be written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl CoreError {
    /// The file concerned and the I/O error behind it, for crates that keep
    /// their own `Io { path, source }` variant.
    pub fn into_io(self) -> (PathBuf, std::io::Error) {
        match self {
            CoreError::Write { path, source } => (path, source),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
