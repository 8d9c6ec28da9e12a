//! A learned matcher ready to use: an extractor and its LightGlue, loaded
//! from the provisioned weights, as the [`Extractor`] of a
//! [`crate::GlueStore`] and the [`PairMatcher`] of a [`crate::GlueScorer`].

use reid_local::Features;
use tch::{Device, Kind, Tensor};

use crate::aliked::{Aliked, AlikedParams};
use crate::disk::{Disk, DiskParams};
use crate::error::{GlueError, Result};
use crate::extractor::Extractor;
use crate::lightglue::{GlueKind, LightGlue, LightGlueParams, MatchInput};
use crate::scorer::{PairMatcher, PairMatches};
use crate::weights::GlueWeights;
use crate::xfeat::{XFeat, XFeatParams};
use reid_backbone::backbone::Precision;
use reid_core::ParamGuard;

/// The keypoints and descriptors of [`Features`] as the tensors LightGlue
/// takes (`[N, 2]` and `[N, D]`, `f32`, on `device`).
pub fn feature_tensors(f: &Features, device: Device) -> (Tensor, Tensor) {
    let n = f.len() as i64;
    let xy: Vec<f32> = f.keypoints().iter().flat_map(|k| [k.x, k.y]).collect();
    let kp = Tensor::from_slice(&xy).view([n, 2]).to_device(device);
    let de = Tensor::from_slice(f.descriptors())
        .view([n, f.dim() as i64])
        .to_device(device)
        .to_kind(Kind::Float);
    (kp, de)
}

impl PairMatcher for LightGlue {
    fn name(&self) -> &str {
        self.kind().name()
    }

    /// [`LightGlue::match_batch`] (full depth and width, the way
    /// wildlife-tools runs LightGlue) of `query` against `others`, each in
    /// the frame its features were found in.
    fn match_one_to_many(
        &self,
        query: &Features,
        others: &[&Features],
    ) -> Result<Vec<PairMatches>> {
        let device = self.device();
        let (qk, qd) = feature_tensors(query, device);
        let tensors: Vec<(Tensor, Tensor)> =
            others.iter().map(|o| feature_tensors(o, device)).collect();
        let inputs: Vec<MatchInput<'_>> = tensors
            .iter()
            .zip(others)
            .map(|((k, d), o)| MatchInput::new(k, d, o.scaled_size()))
            .collect();
        let out = self.match_batch(MatchInput::new(&qk, &qd, query.scaled_size()), &inputs)?;
        Ok(out.into_iter().map(|m| m.pairs).collect())
    }
}

/// The learned matchers: an extractor and the LightGlue trained on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LearnedKind {
    /// XFeat keypoints, LighterGlue.
    XFeat,
    /// DISK keypoints, LightGlue.
    Disk,
    /// ALIKED-N16 keypoints, LightGlue.
    Aliked,
}

impl LearnedKind {
    /// Every kind.
    pub const ALL: [LearnedKind; 3] = [LearnedKind::XFeat, LearnedKind::Disk, LearnedKind::Aliked];

    /// Short name (`xfeat`, `disk`, `aliked`).
    pub fn name(self) -> &'static str {
        match self {
            LearnedKind::XFeat => "xfeat",
            LearnedKind::Disk => "disk",
            LearnedKind::Aliked => "aliked",
        }
    }
}

/// Settings shared by the learned matchers.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnedParams {
    max_keypoints: usize,
    filter_threshold: f64,
    precision: Precision,
}

impl Default for LearnedParams {
    fn default() -> Self {
        LearnedParams {
            max_keypoints: 256,
            filter_threshold: 0.1,
            precision: Precision::F32,
        }
    }
}

impl LearnedParams {
    reid_core::setters! {
        /// Keypoints kept per image, the highest scores first; 1 to 16384,
        /// default 256 (wildlife-tools' extractors).
        max_keypoints: usize,
        /// LightGlue's match threshold; in `[0, 1]`, default 0.1 (the
        /// references' and wildlife-tools').
        filter_threshold: f64,
        /// The precision of the linear layers of LightGlue's attention
        /// blocks ([`LightGlue::with_precision`]); default `f32`. The
        /// extractors run in `f32`.
        precision: Precision,
    }
}

/// [`LearnedParams`], checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidLearnedParams(LearnedParams);

reid_core::param_guard!(LearnedParams => ValidLearnedParams, GlueError, |p| {
    if !(1..=16384).contains(&p.max_keypoints) {
        return Err(GlueError::param(
            "max_keypoints",
            format!("must be in 1..=16384, got {}", p.max_keypoints),
        ));
    }
    if !(p.filter_threshold.is_finite() && (0.0..=1.0).contains(&p.filter_threshold)) {
        return Err(GlueError::param(
            "filter_threshold",
            format!("must be in [0, 1], got {}", p.filter_threshold),
        ));
    }
    Ok(())
});

impl ValidLearnedParams {
    /// The checked values.
    pub fn get(&self) -> &LearnedParams {
        &self.0
    }
}

/// An extractor and its LightGlue.
pub struct LearnedMatcher {
    kind: LearnedKind,
    extractor: Box<dyn Extractor>,
    glue: LightGlue,
}

impl LearnedMatcher {
    /// Which matcher.
    pub fn kind(&self) -> LearnedKind {
        self.kind
    }

    /// The extractor, for a [`crate::GlueStore`].
    pub fn extractor(&self) -> &dyn Extractor {
        self.extractor.as_ref()
    }

    /// The matcher.
    pub fn glue(&self) -> &LightGlue {
        &self.glue
    }

    /// Changes the matcher's settings (e.g. [`LightGlueParams::full_depth`]).
    pub fn set_glue_params(&mut self, params: crate::lightglue::ValidLightGlueParams) {
        self.glue.set_params(params);
    }
}

impl PairMatcher for LearnedMatcher {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn match_one_to_many(
        &self,
        query: &Features,
        others: &[&Features],
    ) -> Result<Vec<PairMatches>> {
        self.glue.match_one_to_many(query, others)
    }
}

impl Extractor for XFeat {
    fn name(&self) -> &'static str {
        "xfeat"
    }

    fn key_bytes(&self) -> Vec<u8> {
        let p = self.params();
        let mut v = (p.top_k() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(&p.detection_threshold().to_bits().to_le_bytes());
        v
    }

    fn device(&self) -> Device {
        XFeat::device(self)
    }

    fn extract_batch(&self, images: &Tensor) -> Result<Vec<crate::Keypoints>> {
        self.extract(images)
    }
}

impl LearnedMatcher {
    /// Loads `kind`'s extractor and LightGlue from the weights folder
    /// ([`crate::GlueWeights`], checked by sha256) onto `device`, with the
    /// references' defaults but `params`' keypoint count and threshold.
    pub fn load(kind: LearnedKind, params: &ValidLearnedParams, device: Device) -> Result<Self> {
        let p = params.get();
        let (extractor, glue_kind, preset): (Box<dyn Extractor>, _, _) = match kind {
            LearnedKind::XFeat => {
                let xp = XFeatParams::default().top_k(p.max_keypoints).check()?;
                let x = XFeat::load_with(GlueWeights::XFeat.verify()?, device, xp)?;
                (Box::new(x), GlueKind::XFeat, LightGlueParams::xfeat())
            }
            LearnedKind::Disk => {
                // The store sizes the images: no second resize in DISK.
                let dp = DiskParams::default()
                    .max_keypoints(Some(p.max_keypoints))
                    .resize(None)
                    .check()?;
                let d = Disk::load(GlueWeights::Disk.verify()?, device)?.with_params(dp);
                (Box::new(d), GlueKind::Disk, LightGlueParams::disk())
            }
            LearnedKind::Aliked => {
                // Top-k mode (threshold 0), as wildlife-tools configures it.
                let ap = AlikedParams::default()
                    .max_keypoints(p.max_keypoints)
                    .detection_threshold(0.0)
                    .check()?;
                let a = Aliked::load(GlueWeights::AlikedN16.verify()?, device)?.with_params(ap);
                (Box::new(a), GlueKind::Aliked, LightGlueParams::aliked())
            }
        };
        let glue_params = preset.filter_threshold(p.filter_threshold).check()?;
        let glue = LightGlue::load_with(
            glue_kind.weights().verify()?,
            glue_kind,
            glue_params,
            device,
        )?
        .with_precision(p.precision)?;
        Ok(LearnedMatcher {
            kind,
            extractor,
            glue,
        })
    }
}

impl Extractor for Disk {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn key_bytes(&self) -> Vec<u8> {
        let p = self.params().get();
        let mut v = p
            .max_keypoints
            .map_or(0u64, |n| n as u64)
            .to_le_bytes()
            .to_vec();
        v.extend_from_slice(&p.nms_window.to_le_bytes());
        v.extend_from_slice(&p.detection_threshold.to_bits().to_le_bytes());
        v.push(u8::from(p.pad_if_not_divisible));
        v.extend_from_slice(&p.resize.unwrap_or(0).to_le_bytes());
        v
    }

    fn device(&self) -> Device {
        Disk::device(self)
    }

    fn extract_batch(&self, images: &Tensor) -> Result<Vec<crate::Keypoints>> {
        self.extract(images)
    }
}

impl Extractor for Aliked {
    fn name(&self) -> &'static str {
        "aliked-n16"
    }

    fn key_bytes(&self) -> Vec<u8> {
        let p = self.params().get();
        let mut v = (p.max_keypoints as u64).to_le_bytes().to_vec();
        v.extend_from_slice(&p.detection_threshold.to_bits().to_le_bytes());
        v.extend_from_slice(&(p.nms_radius as u64).to_le_bytes());
        v.extend_from_slice(&(p.n_limit_max as u64).to_le_bytes());
        v.push(u8::from(p.sub_pixel));
        v
    }

    fn device(&self) -> Device {
        Aliked::device(self)
    }

    fn extract_batch(&self, images: &Tensor) -> Result<Vec<crate::Keypoints>> {
        self.extract(images)
    }
}
