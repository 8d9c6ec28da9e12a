//! The catalogue's error type.

use std::path::PathBuf;

/// Everything the catalogue can fail with; each names what it was about
/// (the file, the CSV line, the photo, the individual).
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The database engine failed (connection, SQL, constraint).
    #[error("{engine}: {message}")]
    Engine {
        /// `sqlite` or `postgres`.
        engine: &'static str,
        /// What failed.
        message: String,
    },
    /// The engine asked to retry (busy, serialization failure) more often
    /// than allowed.
    #[error("{engine}: gave up after {attempts} attempts: {message}")]
    Contention {
        /// `sqlite` or `postgres`.
        engine: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        message: String,
    },
    /// The catalogue location is not one this crate understands.
    #[error(
        "catalogue location {0:?}: expected a SQLite file path, sqlite://PATH, or postgres://..."
    )]
    Location(String),
    /// `init` on a catalogue that exists, or a command on one that does not.
    #[error("catalogue {location}: {message}")]
    State {
        /// The catalogue.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A row of a decisions CSV (or another input table) is malformed.
    #[error("{path}, line {line}: {message}")]
    Row {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// An input that does not fit the catalogue (unknown individual,
    /// wrong embedding dimension, NaN, ...).
    #[error("{0}")]
    Invalid(String),
    /// A change to undo that does not exist or cannot be undone.
    #[error("change {change}: {message}")]
    Undo {
        /// The change id.
        change: i64,
        /// Why not.
        message: String,
    },
    /// A photo registered by URL could not be downloaded.
    #[error("{url}: {message}")]
    Fetch {
        /// The URL.
        url: String,
        /// The HTTP status or transport failure.
        message: String,
    },
    /// A file the core writer failed on.
    #[error(transparent)]
    Core(#[from] reid_core::CoreError),
}

/// The catalogue's result type.
pub type Result<T, E = CatalogueError> = std::result::Result<T, E>;
