//! EfficientNet-Lite0/1/2 with the key names of `efficientnet_lite_pytorch`.

use super::ModelSpec;

/// The models of this family.
pub const SPECS: &[ModelSpec] = &[];
