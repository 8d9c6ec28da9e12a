//! Parameters, checked once, with the workspace's one convention
//! ([`ParamGuard`]): build a [`LocalParams`] (or one of its parts) from its
//! `Default` with one setter per setting, call [`ParamGuard::check`], and
//! pass the `Valid*` result to the hot code, which then does no validation
//! of its own (the linfa pattern). A rejected setting is a
//! [`LocalError::InvalidParam`] naming it and its value.
//!
//! The settings are also public fields, for reading and for struct-update
//! syntax (`ExtractParams { max_side: 640, ..Default::default() }`); either
//! way nothing is used before it is checked.
//!
//! ```
//! use reid_local::{ExtractParams, LocalParams, ModelKind, ParamGuard, RansacParams};
//!
//! let params = LocalParams::default()
//!     .extract(ExtractParams::default().max_side(640).max_keypoints(500))
//!     .ransac(RansacParams::default().model(ModelKind::Homography).seed(7))
//!     .check()?;
//! assert_eq!(params.extract().get().max_side, 640);
//! let e = ExtractParams::default().sigma(0.1).check().unwrap_err();
//! assert!(e.to_string().contains("`sigma`") && e.to_string().contains("got 0.1"));
//! # Ok::<(), reid_local::LocalError>(())
//! ```

use reid_core::ParamGuard;
use reid_data::DecodeOptions;

use crate::error::{LocalError, Result};

/// Which descriptor is computed at each keypoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DescriptorKind {
    /// Lowe's SIFT descriptor, L2-normalised, clipped at 0.2, renormalised.
    Sift,
    /// RootSIFT (Arandjelović & Zisserman, 2012): the SIFT descriptor
    /// L1-normalised and square-rooted element-wise, so that Euclidean
    /// distance between descriptors compares them by the Hellinger kernel.
    #[default]
    RootSift,
}

/// Keypoint detection and description (a compact SIFT).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExtractParams {
    /// Images are downscaled (never upscaled) so that the longer side is at
    /// most this many pixels; keypoints are in that scaled frame.
    /// In `16..=8192`; default 512.
    pub max_side: u32,
    /// At most this many keypoints are kept, strongest (highest DoG
    /// contrast) first. In `1..=1_000_000`; default 1000.
    pub max_keypoints: usize,
    /// Double the image before building the scale space (Lowe's `-1`
    /// octave): many more small-scale keypoints, four times the work of the
    /// first octave. Default `true` (the images of re-identification sets
    /// are often small crops).
    pub double_image: bool,
    /// Scales sampled per octave (`s` in Lowe's paper). In `1..=8`; default 3.
    pub octave_layers: u32,
    /// Blur of the first scale of each octave. Finite, in `(0.5, 10]`;
    /// default 1.6 (Lowe 2004).
    pub sigma: f32,
    /// Minimum DoG contrast of a keypoint for an image in `[0, 1]`, divided
    /// by `octave_layers` as OpenCV does. Finite, `>= 0`; default 0.04
    /// (OpenCV's default).
    pub contrast_threshold: f32,
    /// Principal-curvature ratio above which an edge response is rejected.
    /// Finite, `> 1`; default 10 (Lowe 2004).
    pub edge_threshold: f32,
    /// The descriptor; default [`DescriptorKind::RootSift`].
    pub descriptor: DescriptorKind,
}

impl Default for ExtractParams {
    fn default() -> Self {
        ExtractParams {
            max_side: 512,
            max_keypoints: 1000,
            double_image: true,
            octave_layers: 3,
            sigma: 1.6,
            contrast_threshold: 0.04,
            edge_threshold: 10.0,
            descriptor: DescriptorKind::RootSift,
        }
    }
}

/// Checked [`ExtractParams`]; made by [`ParamGuard::check`]. Its `Default`
/// is the default [`ExtractParams`], checked.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ValidExtractParams(ExtractParams);

impl ExtractParams {
    reid_core::setters! {
        /// Sets [`max_side`](#structfield.max_side).
        max_side: u32,
        /// Sets [`max_keypoints`](#structfield.max_keypoints).
        max_keypoints: usize,
        /// Sets [`double_image`](#structfield.double_image).
        double_image: bool,
        /// Sets [`octave_layers`](#structfield.octave_layers).
        octave_layers: u32,
        /// Sets [`sigma`](#structfield.sigma).
        sigma: f32,
        /// Sets [`contrast_threshold`](#structfield.contrast_threshold).
        contrast_threshold: f32,
        /// Sets [`edge_threshold`](#structfield.edge_threshold).
        edge_threshold: f32,
        /// Sets [`descriptor`](#structfield.descriptor).
        descriptor: DescriptorKind,
    }
}

// Validates every field; errors with [`LocalError::InvalidParam`]
// naming the first bad one and its value.
reid_core::param_guard!(ExtractParams => ValidExtractParams, LocalError, |p| {
    if !(16..=8192).contains(&p.max_side) {
        return Err(LocalError::param(
            "max_side",
            format!("must be in 16..=8192, got {}", p.max_side),
        ));
    }
    if !(1..=1_000_000).contains(&p.max_keypoints) {
        return Err(LocalError::param(
            "max_keypoints",
            format!("must be in 1..=1000000, got {}", p.max_keypoints),
        ));
    }
    if !(1..=8).contains(&p.octave_layers) {
        return Err(LocalError::param(
            "octave_layers",
            format!("must be in 1..=8, got {}", p.octave_layers),
        ));
    }
    if !(p.sigma.is_finite() && p.sigma > 0.5 && p.sigma <= 10.0) {
        return Err(LocalError::param(
            "sigma",
            format!("must be finite and in (0.5, 10], got {}", p.sigma),
        ));
    }
    if !(p.contrast_threshold.is_finite() && p.contrast_threshold >= 0.0) {
        return Err(LocalError::param(
            "contrast_threshold",
            format!("must be finite and >= 0, got {}", p.contrast_threshold),
        ));
    }
    if !(p.edge_threshold.is_finite() && p.edge_threshold > 1.0) {
        return Err(LocalError::param(
            "edge_threshold",
            format!("must be finite and > 1, got {}", p.edge_threshold),
        ));
    }
    Ok(())
});

impl ValidExtractParams {
    /// The checked values.
    pub fn get(&self) -> &ExtractParams {
        &self.0
    }

    /// A canonical byte encoding, part of the cache key.
    pub(crate) fn key_bytes(&self) -> Vec<u8> {
        let p = &self.0;
        let mut v = Vec::with_capacity(40);
        v.extend_from_slice(&p.max_side.to_le_bytes());
        v.extend_from_slice(&(p.max_keypoints as u64).to_le_bytes());
        v.push(u8::from(p.double_image));
        v.extend_from_slice(&p.octave_layers.to_le_bytes());
        v.extend_from_slice(&p.sigma.to_bits().to_le_bytes());
        v.extend_from_slice(&p.contrast_threshold.to_bits().to_le_bytes());
        v.extend_from_slice(&p.edge_threshold.to_bits().to_le_bytes());
        v.push(match p.descriptor {
            DescriptorKind::Sift => 0,
            DescriptorKind::RootSift => 1,
        });
        v
    }
}

/// Descriptor matching.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchParams {
    /// Lowe's ratio test: a match is kept when the distance to the nearest
    /// neighbour is below `ratio` times the distance to the second nearest.
    /// Finite, in `(0, 1]`; default 0.8 (Lowe 2004).
    pub ratio: f32,
    /// Keep only mutual nearest neighbours (`a`'s nearest in `b` is `b`, and
    /// `b`'s nearest in `a` is `a`); default `true`.
    pub mutual: bool,
}

impl Default for MatchParams {
    fn default() -> Self {
        MatchParams {
            ratio: 0.8,
            mutual: true,
        }
    }
}

/// Checked [`MatchParams`]; made by [`ParamGuard::check`]. Its `Default` is
/// the default [`MatchParams`], checked.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ValidMatchParams(MatchParams);

impl MatchParams {
    reid_core::setters! {
        /// Sets [`ratio`](#structfield.ratio).
        ratio: f32,
        /// Sets [`mutual`](#structfield.mutual).
        mutual: bool,
    }
}

// Validates every field.
reid_core::param_guard!(MatchParams => ValidMatchParams, LocalError, |p| {
    if !(p.ratio.is_finite() && p.ratio > 0.0 && p.ratio <= 1.0) {
        return Err(LocalError::param(
            "ratio",
            format!("must be finite and in (0, 1], got {}", p.ratio),
        ));
    }
    Ok(())
});

impl ValidMatchParams {
    /// The checked values.
    pub fn get(&self) -> &MatchParams {
        &self.0
    }
}

/// The transformation RANSAC fits between matched keypoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ModelKind {
    /// 2-D affine map (6 degrees of freedom, minimal sample of 3 matches):
    /// robust for the near-planar, non-rigid views of animals.
    #[default]
    Affine,
    /// Homography (8 degrees of freedom, minimal sample of 4 matches,
    /// normalised DLT).
    Homography,
}

impl ModelKind {
    /// Matches in a minimal sample: 3 for affine, 4 for a homography.
    pub fn sample_size(self) -> usize {
        match self {
            ModelKind::Affine => 3,
            ModelKind::Homography => 4,
        }
    }
}

/// Geometric verification by RANSAC.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RansacParams {
    /// The model; default [`ModelKind::Affine`].
    pub model: ModelKind,
    /// Upper bound on the number of samples. In `1..=1_000_000`; default 2000.
    pub max_iterations: u32,
    /// A match is an inlier when the model maps its first point to within
    /// this many pixels of its second point (in the scaled frame of the
    /// second image). Finite, `> 0`; default 6.
    pub inlier_threshold: f32,
    /// The adaptive stopping rule ends sampling once a better model would
    /// have been found with this probability. In `(0, 1)`; default 0.999.
    pub confidence: f64,
    /// Seed of the sampler (every pair starts from this seed, so results do
    /// not depend on the order or the thread pairs are scored on).
    pub seed: u64,
    /// Refit the best model on all its inliers by least squares (repeated
    /// while the inlier count grows, at most 5 times); default `true`.
    pub refine: bool,
}

impl Default for RansacParams {
    fn default() -> Self {
        RansacParams {
            model: ModelKind::Affine,
            max_iterations: 2000,
            inlier_threshold: 6.0,
            confidence: 0.999,
            seed: 0x5EED_1DEA,
            refine: true,
        }
    }
}

/// Checked [`RansacParams`]; made by [`ParamGuard::check`]. Its `Default`
/// is the default [`RansacParams`], checked.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ValidRansacParams(RansacParams);

impl RansacParams {
    reid_core::setters! {
        /// Sets [`model`](#structfield.model).
        model: ModelKind,
        /// Sets [`max_iterations`](#structfield.max_iterations).
        max_iterations: u32,
        /// Sets [`inlier_threshold`](#structfield.inlier_threshold).
        inlier_threshold: f32,
        /// Sets [`confidence`](#structfield.confidence).
        confidence: f64,
        /// Sets [`seed`](#structfield.seed).
        seed: u64,
        /// Sets [`refine`](#structfield.refine).
        refine: bool,
    }
}

// Validates every field.
reid_core::param_guard!(RansacParams => ValidRansacParams, LocalError, |p| {
    if !(1..=1_000_000).contains(&p.max_iterations) {
        return Err(LocalError::param(
            "max_iterations",
            format!("must be in 1..=1000000, got {}", p.max_iterations),
        ));
    }
    if !(p.inlier_threshold.is_finite() && p.inlier_threshold > 0.0) {
        return Err(LocalError::param(
            "inlier_threshold",
            format!("must be finite and > 0, got {}", p.inlier_threshold),
        ));
    }
    if !(p.confidence.is_finite() && p.confidence > 0.0 && p.confidence < 1.0) {
        return Err(LocalError::param(
            "confidence",
            format!("must be in (0, 1), got {}", p.confidence),
        ));
    }
    Ok(())
});

impl ValidRansacParams {
    /// The checked values.
    pub fn get(&self) -> &RansacParams {
        &self.0
    }
}

/// Everything: decoding, extraction, matching, verification.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LocalParams {
    /// How image files are decoded (pixel limit, alpha); see
    /// [`reid_data::decode`].
    pub decode: DecodeOptions,
    /// Keypoints and descriptors.
    pub extract: ExtractParams,
    /// Descriptor matching.
    pub matching: MatchParams,
    /// Geometric verification.
    pub ransac: RansacParams,
}

/// Checked [`LocalParams`]; made by [`ParamGuard::check`]. Its `Default` is
/// the default [`LocalParams`], checked.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ValidLocalParams {
    decode: DecodeOptions,
    extract: ValidExtractParams,
    matching: ValidMatchParams,
    ransac: ValidRansacParams,
}

impl LocalParams {
    reid_core::setters! {
        /// Sets [`decode`](#structfield.decode).
        decode: DecodeOptions,
        /// Sets [`extract`](#structfield.extract).
        extract: ExtractParams,
        /// Sets [`matching`](#structfield.matching).
        matching: MatchParams,
        /// Sets [`ransac`](#structfield.ransac).
        ransac: RansacParams,
    }
}

impl ParamGuard for LocalParams {
    type Checked = ValidLocalParams;
    type Error = LocalError;

    /// Validates every part (the decoding options are valid by
    /// construction).
    fn check_ref(&self) -> Result<()> {
        self.extract.check_ref()?;
        self.matching.check_ref()?;
        self.ransac.check_ref()
    }

    fn check(self) -> Result<ValidLocalParams> {
        Ok(ValidLocalParams {
            decode: self.decode,
            extract: self.extract.check()?,
            matching: self.matching.check()?,
            ransac: self.ransac.check()?,
        })
    }
}

impl ValidLocalParams {
    /// Decoding options.
    pub fn decode(&self) -> &DecodeOptions {
        &self.decode
    }
    /// Extraction parameters.
    pub fn extract(&self) -> &ValidExtractParams {
        &self.extract
    }
    /// Matching parameters.
    pub fn matching(&self) -> &ValidMatchParams {
        &self.matching
    }
    /// RANSAC parameters.
    pub fn ransac(&self) -> &ValidRansacParams {
        &self.ransac
    }

    /// The bytes that, with the image bytes, key the feature cache:
    /// extraction parameters and the decoding options that change pixels.
    pub(crate) fn key_bytes(&self) -> Vec<u8> {
        let mut v = self.extract.key_bytes();
        v.extend_from_slice(&self.decode.key_bytes());
        v
    }
}
