//! Parameters, checked once: build a [`LocalParams`] (or one of its parts),
//! call `check()`, and pass the `Valid*` result to the hot code, which then
//! does no validation of its own (the linfa pattern).

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

/// Checked [`ExtractParams`]; made by [`ExtractParams::check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidExtractParams(ExtractParams);

impl ExtractParams {
    /// Validates every field; errors with [`LocalError::InvalidParam`]
    /// naming the first bad one.
    pub fn check(&self) -> Result<ValidExtractParams> {
        let p = *self;
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
        Ok(ValidExtractParams(p))
    }
}

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

/// Checked [`MatchParams`]; made by [`MatchParams::check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidMatchParams(MatchParams);

impl MatchParams {
    /// Validates every field.
    pub fn check(&self) -> Result<ValidMatchParams> {
        if !(self.ratio.is_finite() && self.ratio > 0.0 && self.ratio <= 1.0) {
            return Err(LocalError::param(
                "ratio",
                format!("must be finite and in (0, 1], got {}", self.ratio),
            ));
        }
        Ok(ValidMatchParams(*self))
    }
}

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

/// Checked [`RansacParams`]; made by [`RansacParams::check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidRansacParams(RansacParams);

impl RansacParams {
    /// Validates every field.
    pub fn check(&self) -> Result<ValidRansacParams> {
        let p = *self;
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
        Ok(ValidRansacParams(p))
    }
}

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

/// Checked [`LocalParams`]; made by [`LocalParams::check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidLocalParams {
    decode: DecodeOptions,
    extract: ValidExtractParams,
    matching: ValidMatchParams,
    ransac: ValidRansacParams,
}

impl LocalParams {
    /// Validates every part.
    pub fn check(&self) -> Result<ValidLocalParams> {
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
        v.extend_from_slice(&self.decode.max_pixels().to_le_bytes());
        v.push(u8::from(self.decode.reduced_scale()));
        match self.decode.alpha() {
            reid_data::AlphaMode::Drop => v.push(0),
            reid_data::AlphaMode::Composite(c) => {
                v.push(1);
                v.extend_from_slice(&c);
            }
        }
        v
    }
}
