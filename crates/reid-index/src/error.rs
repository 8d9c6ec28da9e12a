//! The one error type of `reid-index`.

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
}

/// Result alias for this crate.
pub type Result<T, E = IndexError> = std::result::Result<T, E>;
