//! The one error type of `reid-train`.

use std::path::PathBuf;

/// Errors of `reid-train`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A parameter is out of range; checked once, up front.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// A tensor had an unexpected shape.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape {
        /// Which tensor.
        what: String,
        /// The expected shape.
        expected: String,
        /// The shape found.
        got: String,
    },
    /// Labels out of range or of the wrong type.
    #[error("bad labels (shape {shape}): {reason}")]
    Labels {
        /// Shape of the label tensor.
        shape: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor holds NaN or infinite values.
    #[error("{what} (shape {shape}) is not finite")]
    NonFinite {
        /// Which tensor.
        what: String,
        /// Its shape.
        shape: String,
    },
    /// The device cannot run what was asked (e.g. bf16 autocast on CPU).
    #[error("unsupported on {device}: {reason}")]
    Unsupported {
        /// The device.
        device: String,
        /// Why.
        reason: String,
    },
    /// A checkpoint could not be written or read back.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file could not be written atomically (the old one is intact).
    #[error(transparent)]
    Write(#[from] reid_core::CoreError),
    /// From libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// From the backbone crate.
    #[error(transparent)]
    Backbone(#[from] reid_backbone::BackboneError),
    /// From the data crate.
    #[error(transparent)]
    Data(#[from] reid_data::DataError),
    /// From the open-set crate.
    #[error(transparent)]
    Openset(#[from] reid_openset::OpensetError),
    /// From the open-set pipeline (validation).
    #[error(transparent)]
    Pipeline(#[from] reid_pipeline::PipelineError),
}

impl TrainError {
    /// An [`TrainError::InvalidParam`].
    pub fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParam {
            name,
            reason: reason.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
