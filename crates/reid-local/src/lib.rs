//! # reid-local
//!
//! Local keypoint features for animal re-identification, with no learned
//! weights: a compact SIFT with RootSIFT descriptors ([`extract_image`],
//! [`extract_file`]), brute-force mutual-nearest-neighbour matching with
//! Lowe's ratio test ([`match_descriptors`]), and geometric verification by
//! seeded RANSAC with an affine model or a normalised-DLT homography
//! ([`ransac()`]). The score of an image pair is its inlier count
//! ([`match_pair`], [`PairMatch`]).
//!
//! - Images are downscaled so the longer side is at most
//!   [`ExtractParams::max_side`] (512 by default) and keep at most
//!   [`ExtractParams::max_keypoints`] (1000) keypoints; keypoints live in
//!   that scaled frame.
//! - Features are computed once per image and cached on disk
//!   ([`FeatureCache`]: a versioned, checksummed, atomically written file
//!   keyed by the hash of the image bytes and the parameters; damaged files
//!   are typed errors for [`read_features_file`] and are recomputed by
//!   [`extract_file`]).
//! - [`FeatureStore`] extracts many images in parallel and
//!   [`score_pairs`] scores many pairs in parallel (rayon).
//! - [`LocalScorer`] is a [`reid_openset::PairScorer`], so the local score
//!   is a source of [`reid_openset::fuse`]; [`LocalScorer::precompute`]
//!   scores a whole shortlist in parallel first.
//!
//! Parameters follow the workspace's one convention ([`ParamGuard`],
//! re-exported from `reid-core`): `FooParams` builders, checked once by
//! [`ParamGuard::check`] into the `ValidFooParams` the work takes (see
//! [`params`]). Every function on user input returns a [`LocalError`] naming
//! the file, parameter or index; nothing here panics on bad input.
//!
//! ```
//! use image::{Rgb, RgbImage};
//! use reid_local::{LocalParams, Model, ParamGuard, extract_image, match_pair};
//!
//! // A random pattern of grey squares, and the same scene moved by (-7, -4).
//! let mut state = 12345u32;
//! let mut next = move || { state = state.wrapping_mul(1664525).wrapping_add(1013904223); state >> 8 };
//! let mut scene = RgbImage::from_pixel(140, 140, Rgb([128, 128, 128]));
//! for _ in 0..60 {
//!     let (x0, y0, s, v) = (next() % 130, next() % 130, 3 + next() % 10, (next() % 256) as u8);
//!     for y in y0..(y0 + s).min(140) {
//!         for x in x0..(x0 + s).min(140) {
//!             scene.put_pixel(x, y, Rgb([v, v, v]));
//!         }
//!     }
//! }
//! let a = image::imageops::crop_imm(&scene, 0, 0, 120, 120).to_image();
//! let b = image::imageops::crop_imm(&scene, 7, 4, 120, 120).to_image();
//!
//! let params = LocalParams::default().check()?;
//! let fa = extract_image(&a, params.extract())?;
//! let fb = extract_image(&b, params.extract())?;
//! let m = match_pair(&fa, &fb, &params)?;
//! assert!(m.inliers >= 10, "{} inliers", m.inliers);
//! // The model maps a's pixels onto b's: x - 7, y - 4.
//! let Some(Model::Affine(t)) = m.model else { unreachable!() };
//! assert!((t.m[0][2] + 7.0).abs() < 0.5 && (t.m[1][2] + 4.0).abs() < 0.5);
//! # Ok::<(), reid_local::LocalError>(())
//! ```

pub mod cache;
pub mod error;
pub mod extract;
pub mod features;
pub mod geometry;
pub mod matching;
pub mod pairs;
pub mod params;
mod prep;
pub mod ransac;
pub mod scorer;
mod sift;
pub mod store;

pub use cache::{
    CACHE_FORMAT_VERSION, CacheKey, CacheStatus, EXTRACTOR_VERSION, FeatureCache,
    read_features_file, write_features_file,
};
pub use error::{LocalError, Result};
pub use extract::{extract_file, extract_image};
pub use features::{DESCRIPTOR_LEN, Features, FeaturesBuilder, Keypoint};
pub use geometry::{Affine, Homography, Model, Point};
pub use matching::{Match, match_descriptors, match_features};
pub use pairs::{PairMatch, match_pair, score_pairs};
pub use params::{
    DescriptorKind, ExtractParams, LocalParams, MatchParams, ModelKind, RansacParams,
    ValidExtractParams, ValidLocalParams, ValidMatchParams, ValidRansacParams,
};
pub use prep::downscale_to_fit;
pub use ransac::{RansacResult, ransac};
pub use reid_core::ParamGuard;
pub use scorer::LocalScorer;
pub use store::FeatureStore;
