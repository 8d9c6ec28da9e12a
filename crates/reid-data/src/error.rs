//! The one error type of `reid-data`.
//!
//! Every variant names what went wrong and where: the file, the CSV line, the
//! image shape, so a user with ten thousand photos can find the bad one.

use std::path::PathBuf;

/// Everything that can go wrong while loading, decoding, splitting or sampling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but holds no bytes.
    #[error("{path}: file is empty (0 bytes)")]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// The bytes are not an image format this crate decodes.
    #[error("{path}: unsupported image format ({detail})")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// What was found (magic bytes, format name).
        detail: String,
    },
    /// The image format is known but decoding failed (truncated or corrupt data).
    #[error("{path}: cannot decode image: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// The image has more pixels than the configured limit (decompression-bomb guard).
    #[error("{path}: image is {width}x{height} ({} pixels), above the limit of {limit} pixels", (*width as u64) * (*height as u64))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The pixel-count limit in force.
        limit: u64,
    },
    /// A bounding box is empty or lies outside the image.
    #[error("{path}: bounding box {bbox} does not fit inside the {width}x{height} image")]
    BboxOutOfBounds {
        /// The image file.
        path: PathBuf,
        /// The box as `x,y,w,h`.
        bbox: String,
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
    },
    /// A CSV file lacks a column the loader needs.
    #[error("{path}: missing required column `{column}` (header: {header})")]
    MissingColumn {
        /// The CSV file.
        path: PathBuf,
        /// The column name that is required.
        column: String,
        /// The header that was found.
        header: String,
    },
    /// A CSV row is malformed (wrong column count, bad bbox, bad date, ...).
    #[error("{path}:{line}: {reason}")]
    BadRow {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line number in the file (the header is line 1).
        line: u64,
        /// What is wrong with the row.
        reason: String,
    },
    /// Two records share an `image_id`.
    #[error("{path}:{line}: duplicate image_id `{image_id}` (first seen on line {first_line})")]
    DuplicateId {
        /// The CSV file (or folder) the records came from.
        path: PathBuf,
        /// Line of the second occurrence.
        line: u64,
        /// The repeated id.
        image_id: String,
        /// Line of the first occurrence.
        first_line: u64,
    },
    /// A dataset, folder or selection holds no usable records.
    #[error("{what} is empty")]
    Empty {
        /// What is empty.
        what: String,
    },
    /// A parameter is out of range; checked once, up front.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// An array or image had an unexpected shape.
    #[error("shape mismatch: expected {expected}, got {got}")]
    Shape {
        /// The expected shape.
        expected: String,
        /// The shape found.
        got: String,
    },
    /// A file could not be written atomically (the old one is intact).
    #[error(transparent)]
    Write(#[from] reid_core::CoreError),
}

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether this is one image file that cannot be used (missing,
    /// unreadable, empty, not an image, undecodable or truncated, too large,
    /// its bounding box outside it): what a "skip bad files" mode skips,
    /// unlike a bad setting or a failed write.
    pub fn is_unreadable_file(&self) -> bool {
        matches!(
            self,
            DataError::Io { .. }
                | DataError::EmptyFile { .. }
                | DataError::UnsupportedFormat { .. }
                | DataError::Decode { .. }
                | DataError::TooLarge { .. }
                | DataError::BboxOutOfBounds { .. }
        )
    }

    /// A rejected parameter.
    pub fn param(name: &'static str, reason: impl Into<String>) -> Self {
        DataError::InvalidParam {
            name,
            reason: reason.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
