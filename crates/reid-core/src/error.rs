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
    /// A folder the project needs is not there.
    #[error("{what} {path} not found: {hint}")]
    Missing {
        /// What the folder is.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// How to get it.
        hint: &'static str,
    },
}

impl CoreError {
    /// The file concerned and the I/O error behind it, for crates that keep
    /// their own `Io { path, source }` variant.
    pub fn into_io(self) -> (PathBuf, std::io::Error) {
        match self {
            CoreError::Write { path, source } => (path, source),
            e @ CoreError::Missing { .. } => {
                let path = e.path().to_path_buf();
                (
                    path,
                    std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string()),
                )
            }
        }
    }

    /// The file or folder concerned.
    pub fn path(&self) -> &std::path::Path {
        match self {
            CoreError::Write { path, .. } | CoreError::Missing { path, .. } => path,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
