//! The one error type of reid-glue.

use std::path::PathBuf;

/// Everything that can go wrong in reid-glue; each variant names the file,
/// parameter or shape at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GlueError {
    /// Reading or loading a weights file failed (missing, damaged, wrong keys).
    #[error(transparent)]
    Backbone(#[from] reid_backbone::BackboneError),
    /// A libtorch operation failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A weights file does not hold what the network needs.
    #[error("weights {path}: {message}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An input tensor has the wrong shape or element kind.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        /// Which input.
        what: String,
        /// The shape wanted, in words (`[B, 3, H, W]`).
        expected: String,
        /// The shape given.
        got: String,
    },
    /// A parameter is out of range.
    #[error("invalid parameter `{name}`: {message}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// Why, with the value given.
        message: String,
    },
    /// A folder or file the project needs is missing, or could not be written.
    #[error(transparent)]
    Core(#[from] reid_core::CoreError),
    /// An image could not be read or decoded (names the file).
    #[error(transparent)]
    Data(#[from] reid_data::DataError),
    /// The feature cache, or RANSAC, failed.
    #[error(transparent)]
    Local(#[from] reid_local::LocalError),
}

impl GlueError {
    /// An [`GlueError::InvalidParam`] for `name`.
    pub fn param(name: &'static str, message: impl Into<String>) -> Self {
        GlueError::InvalidParam {
            name,
            message: message.into(),
        }
    }

    /// A [`GlueError::Shape`] for input `what`.
    pub fn shape(what: impl Into<String>, expected: impl Into<String>, got: &[i64]) -> Self {
        GlueError::Shape {
            what: what.into(),
            expected: expected.into(),
            got: format!("{got:?}"),
        }
    }
}

/// `Result` with [`GlueError`].
pub type Result<T> = std::result::Result<T, GlueError>;
