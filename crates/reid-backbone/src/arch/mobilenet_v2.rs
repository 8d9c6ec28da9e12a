//! MobileNetV2 with torchvision's key names.

use super::ModelSpec;

/// The models of this family.
pub const SPECS: &[ModelSpec] = &[];
