//! The one error type of `reid-openset`.

/// Errors of `reid-openset`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpensetError {
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
}

/// Result alias for this crate.
pub type Result<T, E = OpensetError> = std::result::Result<T, E>;
