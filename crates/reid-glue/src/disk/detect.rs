//! From DISK's maps to keypoints: kornia's `heatmap_to_keypoints` and
//! `Keypoints.merge_with_descriptors`.
//!
//! - A keypoint is a strict local maximum of the heatmap: greater than every
//!   other value of its `k × k` window (`nms2d(mask_only=True)`). The first
//!   `(k - 1) / 2` and last `k / 2` rows and columns, whose window runs off the
//!   map, are never maxima; ties suppress each other.
//! - Its score, the heatmap value (a logit), must be strictly above the
//!   detection threshold.
//! - The maxima are listed in raster order (row by row, then column by
//!   column). With a cap `n` and more maxima than that, the `n` strongest are
//!   kept: every score above the `n`-th largest, then those equal to it in
//!   raster order until `n` are kept; the survivors stay in raster order.
//! - The descriptor is the dense descriptor at the keypoint's pixel,
//!   L2-normalised (`F.normalize`, `eps = 1e-12`).

use tch::{Kind, Tensor};

use crate::error::Result;

/// The neighbours a window of side `k` spans before and after its centre.
fn split_window(k: i64) -> (i64, i64) {
    let before = (k - 1) / 2;
    (before, k - 1 - before)
}

fn max_pool(x: &Tensor, ky: i64, kx: i64) -> Result<Tensor> {
    Ok(x.f_max_pool2d([ky, kx], [1, 1], [0, 0], [1, 1], false)?)
}

/// The maximum over each `k × k` window without its centre, for the centres
/// whose window lies inside the map: `[B, C, H - k + 1, W - k + 1]`.
///
/// The window minus its centre is split into the rows above the centre row,
/// the rows below, and the centre row left and right of the centre; each part
/// is one max pool. `k >= 2` and `H, W >= k`.
fn neighbourhood_max(x: &Tensor, k: i64) -> Result<Tensor> {
    let size = x.size();
    let (h, w) = (size[2], size[3]);
    let (before, after) = split_window(k);
    let mut parts = Vec::with_capacity(4);
    let row_max = max_pool(x, 1, k)?;
    if before > 0 {
        parts.push(max_pool(
            &row_max.f_narrow(2, 0, h - after - 1)?,
            before,
            1,
        )?);
    }
    if after > 0 {
        parts.push(max_pool(
            &row_max.f_narrow(2, before + 1, h - before - 1)?,
            after,
            1,
        )?);
    }
    let centre_row = x.f_narrow(2, before, h - k + 1)?;
    if before > 0 {
        parts.push(max_pool(
            &centre_row.f_narrow(3, 0, w - after - 1)?,
            1,
            before,
        )?);
    }
    if after > 0 {
        parts.push(max_pool(
            &centre_row.f_narrow(3, before + 1, w - before - 1)?,
            1,
            after,
        )?);
    }
    let mut out = parts.remove(0);
    for part in &parts {
        out = out.f_maximum(part)?;
    }
    Ok(out)
}

/// The strict local maxima of `heat` (`[B, C, H, W]`) in a `k × k` window,
/// as a bool mask of the same shape (kornia's `nms2d(..., mask_only=True)`).
pub(crate) fn nms_mask(heat: &Tensor, k: i64) -> Result<Tensor> {
    let size = heat.size();
    let (h, w) = (size[2], size[3]);
    if k <= 1 {
        return Ok(Tensor::f_ones(
            size.as_slice(),
            (Kind::Bool, heat.device()),
        )?);
    }
    let mask = Tensor::f_zeros(size.as_slice(), (Kind::Bool, heat.device()))?;
    if h >= k && w >= k {
        let (before, _) = split_window(k);
        let centre = heat
            .f_narrow(2, before, h - k + 1)?
            .f_narrow(3, before, w - k + 1)?;
        let strict = centre.f_gt_tensor(&neighbourhood_max(heat, k)?)?;
        let mut inner = mask
            .f_narrow(2, before, h - k + 1)?
            .f_narrow(3, before, w - k + 1)?;
        inner.f_copy_(&strict)?;
    }
    Ok(mask)
}

/// The keypoints of one image: integer pixel positions and their scores.
#[derive(Debug)]
pub(crate) struct Detections {
    /// `[N, 2]` int64, `(y, x)`, raster order.
    pub(crate) yx: Tensor,
    /// `[N]`, the heatmap values there.
    pub(crate) scores: Tensor,
}

/// The maxima of one image (`heat`, `keep`: `[H, W]`, `keep` the NMS and
/// threshold mask), capped at `max` as kornia caps them.
pub(crate) fn select(heat: &Tensor, keep: &Tensor, max: Option<i64>) -> Result<Detections> {
    let yx = keep.f_nonzero()?;
    let scores = heat.f_masked_select(keep)?;
    let found = scores.size()[0];
    let Some(n) = max.filter(|&n| found > n) else {
        return Ok(Detections { yx, scores });
    };
    let chosen = if n > 0 {
        // The n-th largest score, as the n-th smallest of the negated scores.
        let (neg_kth, _) = scores.f_neg()?.f_kthvalue(n, 0, false)?;
        let kth = neg_kth.f_neg()?;
        let above = scores.f_gt_tensor(&kth)?;
        let tied = scores.f_eq_tensor(&kth)?;
        let room = above.f_sum(Kind::Int64)?.f_neg()?.f_add_scalar(n)?;
        let fill = tied.f_logical_and(&tied.f_cumsum(0, Kind::Int64)?.f_le_tensor(&room)?)?;
        above.f_logical_or(&fill)?
    } else {
        scores.f_zeros_like()?.f_to_kind(Kind::Bool)?
    };
    let rows = chosen.f_nonzero()?.f_squeeze_dim(1)?;
    Ok(Detections {
        yx: yx.f_index_select(0, &rows)?,
        scores: scores.f_masked_select(&chosen)?,
    })
}

/// The descriptors at `yx` (`[N, 2]`, `(y, x)`) of a dense map
/// `[D, H, W]`, L2-normalised: `[N, D]`.
pub(crate) fn sample_descriptors(dense: &Tensor, yx: &Tensor) -> Result<Tensor> {
    let y = yx.f_select(1, 0)?;
    let x = yx.f_select(1, 1)?;
    let picked = dense
        .f_index(&[None, Some(y), Some(x)])?
        .f_transpose(0, 1)?;
    let norm = picked
        .f_norm_scalaropt_dim(2, [1], true)?
        .f_clamp_min(1e-12)?;
    Ok(picked.f_div(&norm)?)
}
