//! Vision Transformer and DINOv2 (timm key names).

use super::ModelSpec;

/// The models of this family.
pub const SPECS: &[ModelSpec] = &[];
