//! # reid-glue
//!
//! Learned local matching for animal re-identification, on libtorch (tch):
//! keypoint extractors (XFeat, DISK, ALIKED) and the LightGlue matcher
//! (with XFeat's smaller LighterGlue), loading the original PyTorch weights
//! unchanged, with parity against the reference implementations.
//!
//! Kept apart from `reid-local` so that the classical (RootSIFT) local
//! features stay free of libtorch.

pub mod aliked;
pub mod disk;
pub mod error;
pub mod lightglue;
pub mod xfeat;

pub use error::{GlueError, Result};
