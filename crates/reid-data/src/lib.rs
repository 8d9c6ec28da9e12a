//! # reid-data
//!
//! Data for open-set animal re-identification: the [`Record`] type, loaders
//! for AnimalCLEF `metadata.csv`, folder-per-identity trees and generic CSVs
//! with bounding boxes; image decoding by content (EXIF orientation, any pixel
//! format to RGB8, reduced-scale JPEG decoding, decompression-bomb guard);
//! preprocessing into `[B, 3, H, W]` batches in parallel; open-set and
//! time-aware splits; a class-balanced P×K sampler; training augmentations;
//! and a seeded synthetic dataset generator.
//!
//! This crate does not link libtorch: batches are `ndarray` arrays.
//!
//! Parameters follow the workspace convention ([`ParamGuard`]): a
//! `FooParams` builder is checked once into a `ValidFooParams`
//! ([`SplitParams`] → [`ValidSplitParams`], [`PkParams`] →
//! [`ValidPkParams`], [`PrefetchParams`] → [`ValidPrefetchParams`],
//! [`SyntheticParams`] → [`ValidSyntheticParams`]), or into the operator
//! that does the work ([`PreprocessParams`] → [`Preprocess`]; the
//! augmentations' params → [`RandomResizedCrop`], [`ColorJitter`], …).
//! [`LoadOptions`] and [`DecodeOptions`] cannot be invalid and have no
//! checked form.
//!
//! ```
//! use reid_data::{Record, SplitRole};
//!
//! let mut r = Record::new("0", "images/a.jpg");
//! r.identity = Some("lynx_37".into());
//! r.split = Some(SplitRole::parse("database"));
//! assert_eq!(r.split.as_ref().map(|s| s.as_str()), Some("database"));
//! ```

pub mod error;

pub use error::{DataError, Result};
/// The record types, defined in `reid-core` and shared by every crate.
pub use reid_core::record;
pub use reid_core::{BBox, Date, ParamGuard, Record, Scope, SplitRole};

// --- records, loaders, splits, sampler (section A) ---
pub mod dataset;
pub mod loaders;
pub mod sampler;
pub mod split;
pub use dataset::{Dataset, DatasetStats, IdentityKey};
pub use loaders::{LoadOptions, LoadReport, OnError};
pub use sampler::{PkParams, PkSampler, ValidPkParams};
pub use split::{SplitKind, SplitParams, ValidSplitParams};

// --- decoding, preprocessing, batching, augmentation (section B) ---
pub mod augment;
pub mod batch;
pub mod decode;
pub mod preprocess;

pub use augment::{
    AugmentContext, ColorJitter, ColorJitterParams, Compose, HorizontalFlip, HorizontalFlipParams,
    RandomResizedCrop, RandomResizedCropParams, Rotation, RotationParams, Transform,
};
pub use batch::{BatchIter, PrefetchParams, ValidPrefetchParams};
pub use decode::{AlphaMode, DecodeOptions, Decoded, SizeHint, decode_file, decode_image};
pub use preprocess::{
    Batch, IMAGENET_MEAN, IMAGENET_STD, Interpolation, Preprocess, PreprocessParams, ResizeMode,
};

// --- synthetic dataset (section C) ---
pub mod synthetic;
pub use synthetic::{SyntheticParams, ValidSyntheticParams};
