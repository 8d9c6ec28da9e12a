//! Deformable 2-D convolution as torchvision's, which libtorch lacks
//! (see [`deform_conv2d`]).

use tch::{Kind, Tensor};

use crate::error::{GlueError, Result};

/// Stride, padding and dilation of a [`deform_conv2d`], each `[h, w]`.
///
/// The defaults are torchvision's: stride 1, padding 0, dilation 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeformConvConfig {
    /// Step between output positions; each `>= 1`.
    pub stride: [i64; 2],
    /// Zero padding added on both sides; each `>= 0`.
    pub padding: [i64; 2],
    /// Spacing of the kernel points; each `>= 1`.
    pub dilation: [i64; 2],
}

impl Default for DeformConvConfig {
    fn default() -> Self {
        DeformConvConfig {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
        }
    }
}

impl DeformConvConfig {
    reid_core::setters! {
        /// Sets [`stride`](#structfield.stride).
        stride: [i64; 2],
        /// Sets [`padding`](#structfield.padding).
        padding: [i64; 2],
        /// Sets [`dilation`](#structfield.dilation).
        dilation: [i64; 2],
    }
}

/// Images torchvision's CPU kernel processes in one matrix product: the
/// largest divisor of `batch` in `2..=min(batch / 2, 32)`, else 1.
fn parallel_images(batch: i64) -> i64 {
    let limit = (batch / 2).min(32);
    (2..=limit).rev().find(|k| batch % k == 0).unwrap_or(1)
}

fn dims4(t: &Tensor, what: &str, expected: &str) -> Result<[i64; 4]> {
    let size = t.size();
    match size[..] {
        [a, b, c, d] => Ok([a, b, c, d]),
        _ => Err(GlueError::shape(what, expected, &size)),
    }
}

/// Deformable convolution, as `torchvision.ops.deform_conv2d(input, offset,
/// weight, bias, stride, padding, dilation, mask)` with one weight group and
/// one offset group: v1 without a mask, v2 ("modulated") with one.
///
/// For each output position `(oy, ox)` and kernel point `(i, j)` (`k = i *
/// kw + j`) the input is sampled at
/// `y = oy * stride_h - pad_h + i * dilation_h + offset[2k]`,
/// `x = ox * stride_w - pad_w + j * dilation_w + offset[2k + 1]`
/// (offsets in pixels, `dy` before `dx` for each kernel point, as torchvision
/// orders them) by bilinear interpolation in which each of the four corners
/// outside the input counts 0, and a sample with `y <= -1`, `y >= H`,
/// `x <= -1` or `x >= W` is 0 altogether. The samples, times the mask when
/// there is one, form the columns `[C * kh * kw, n * Ho * Wo]` that one
/// matrix product with the weight `[O, C * kh * kw]` turns into the output.
///
/// The arithmetic follows torchvision's CPU kernel step for step (the same
/// f32 operations in the same order, the same `addmm` on the same shapes,
/// the images taken `n` at a time as it takes them), so that on the CPU,
/// with libtorch on one thread as the reference was, the result is the same
/// to the last bit; on more threads libtorch's own kernels may round
/// differently in the last place.
///
/// - `input`: `[B, C, H, W]`, floating point;
/// - `offset`: `[B, 2 * kh * kw, Ho, Wo]`, `(dy, dx)` per kernel point;
/// - `weight`: `[O, C, kh, kw]`;
/// - `bias`: `[O]`, or none;
/// - `mask`: `[B, kh * kw, Ho, Wo]` (modulated deformable convolution), or none;
///
/// where `Ho = (H + 2 * pad_h - dilation_h * (kh - 1) - 1) / stride_h + 1`
/// (and `Wo` alike). Returns `[B, O, Ho, Wo]` in the kind and on the device
/// of `input` (the other tensors are converted to them).
///
/// Errors: [`GlueError::Shape`] for tensors of the wrong shape or a
/// non-floating input, [`GlueError::InvalidParam`] for a bad `conf`.
pub fn deform_conv2d(
    input: &Tensor,
    offset: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    mask: Option<&Tensor>,
    conf: &DeformConvConfig,
) -> Result<Tensor> {
    let [sh, sw] = conf.stride;
    let [ph, pw] = conf.padding;
    let [dh, dw] = conf.dilation;
    if sh < 1 || sw < 1 {
        return Err(GlueError::param(
            "stride",
            format!("must be >= 1, got {:?}", conf.stride),
        ));
    }
    if ph < 0 || pw < 0 {
        return Err(GlueError::param(
            "padding",
            format!("must be >= 0, got {:?}", conf.padding),
        ));
    }
    if dh < 1 || dw < 1 {
        return Err(GlueError::param(
            "dilation",
            format!("must be >= 1, got {:?}", conf.dilation),
        ));
    }
    let [b, c, h, w] = dims4(input, "input", "[B, C, H, W]")?;
    let kind = input.kind();
    if !input.is_floating_point() {
        return Err(GlueError::Shape {
            what: "input".into(),
            expected: "a floating-point tensor".into(),
            got: format!("{kind:?}"),
        });
    }
    let [o, wc, kh, kw] = dims4(weight, "weight", "[O, C, kh, kw]")?;
    if wc != c || kh < 1 || kw < 1 || o < 1 {
        return Err(GlueError::shape(
            "weight",
            format!("[O, {c}, kh, kw] (one weight group)"),
            &weight.size(),
        ));
    }
    let out_h = (h + 2 * ph - (dh * (kh - 1) + 1)) / sh + 1;
    let out_w = (w + 2 * pw - (dw * (kw - 1) + 1)) / sw + 1;
    if out_h < 1 || out_w < 1 || h < 1 || w < 1 {
        return Err(GlueError::shape(
            "input",
            format!("an input at least as large as the dilated kernel ({kh} x {kw})"),
            &input.size(),
        ));
    }
    let k = kh * kw;
    let want_offset = [b, 2 * k, out_h, out_w];
    if offset.size() != want_offset {
        return Err(GlueError::shape(
            "offset",
            format!("{want_offset:?} (one offset group)"),
            &offset.size(),
        ));
    }
    if let Some(m) = mask {
        let want = [b, k, out_h, out_w];
        if m.size() != want {
            return Err(GlueError::shape("mask", format!("{want:?}"), &m.size()));
        }
    }
    if let Some(bias) = bias
        && bias.size() != [o]
    {
        return Err(GlueError::shape("bias", format!("[{o}]"), &bias.size()));
    }
    let device = input.device();
    if b == 0 {
        return Ok(Tensor::f_zeros([0, o, out_h, out_w], (kind, device))?);
    }
    let offset = offset.f_to_device(device)?.f_to_kind(kind)?;
    let weight = weight
        .f_to_device(device)?
        .f_to_kind(kind)?
        .f_contiguous()?
        .f_view([o, c * k])?;
    let mask = match mask {
        Some(m) => Some(m.f_to_device(device)?.f_to_kind(kind)?),
        None => None,
    };

    // Integer parts of the sampling positions, [K, Ho, 1] and [K, 1, Wo]:
    // `o * stride - pad + i * dilation` for kernel row i / column j.
    let ints = (Kind::Int64, device);
    let ki = Tensor::f_arange(k, ints)?;
    let rows = ki.f_div_scalar_mode(kw, "trunc")?;
    let cols = ki.f_remainder(kw)?;
    let base_y = (rows * dh).f_view([k, 1, 1])?
        + (Tensor::f_arange(out_h, ints)? * sh - ph).f_view([1, out_h, 1])?;
    let base_x = (cols * dw).f_view([k, 1, 1])?
        + (Tensor::f_arange(out_w, ints)? * sw - pw).f_view([1, 1, out_w])?;
    let base_y = base_y.f_to_kind(kind)?;
    let base_x = base_x.f_to_kind(kind)?;

    let n_par = parallel_images(b);
    let mut chunks = Vec::with_capacity((b / n_par) as usize);
    for chunk in 0..b / n_par {
        let x = input.f_narrow(0, chunk * n_par, n_par)?;
        let off = offset
            .f_narrow(0, chunk * n_par, n_par)?
            .f_reshape([n_par, k, 2, out_h, out_w])?;
        // torchvision: y = float(integer part) + offset, in one rounding.
        let y = off.f_select(2, 0)? + &base_y;
        let x_pos = off.f_select(2, 1)? + &base_x;
        let columns = sample_columns(&x, &y, &x_pos, mask.as_ref(), chunk, n_par, [h, w])?;
        // [C, K, n, Ho*Wo] -> [C*K, n*Ho*Wo], rows c*K + k as torchvision.
        let columns = columns
            .f_view([n_par, c, k, out_h * out_w])?
            .f_permute([1, 2, 0, 3])?
            .f_reshape([c * k, n_par * out_h * out_w])?;
        let mut out = Tensor::f_zeros([o, n_par * out_h * out_w], (kind, device))?;
        let out = out.f_addmm_(&weight, &columns)?;
        chunks.push(
            out.f_view([o, n_par, out_h, out_w])?
                .f_permute([1, 0, 2, 3])?,
        );
    }
    let out = Tensor::f_cat(&chunks, 0)?;
    match bias {
        Some(bias) => {
            let bias = bias.f_to_device(device)?.f_to_kind(kind)?;
            Ok(out.f_add(&bias.f_view([1, o, 1, 1])?)?)
        }
        None => Ok(out.f_contiguous()?),
    }
}

/// The bilinear samples of `input` `[n, C, H, W]` at `(y, x)` (each `[n, K,
/// Ho, Wo]`), times the mask: `[n, C, K * Ho * Wo]`.
fn sample_columns(
    input: &Tensor,
    y: &Tensor,
    x: &Tensor,
    mask: Option<&Tensor>,
    chunk: i64,
    n: i64,
    [h, w]: [i64; 2],
) -> Result<Tensor> {
    let c = input.size()[1];
    let l = y.numel() as i64 / n;
    let y0 = y.f_floor()?;
    let x0 = x.f_floor()?;
    // lh = h - h_low, hh = 1 - lh (and alike for w), as torchvision.
    let ly = y.f_sub(&y0)?;
    let lx = x.f_sub(&x0)?;
    let hy = ly.f_neg()?.f_add_scalar(1.0)?;
    let hx = lx.f_neg()?.f_add_scalar(1.0)?;
    let yl = y0.f_to_kind(Kind::Int64)?;
    let xl = x0.f_to_kind(Kind::Int64)?;
    let yh = yl.f_add_scalar(1)?;
    let xh = xl.f_add_scalar(1)?;
    let inside = y
        .f_gt(-1.0)?
        .f_logical_and(&y.f_lt(h as f64)?)?
        .f_logical_and(&x.f_gt(-1.0)?)?
        .f_logical_and(&x.f_lt(w as f64)?)?;
    let yl_ok = yl.f_ge(0)?;
    let xl_ok = xl.f_ge(0)?;
    let yh_ok = yh.f_le(h - 1)?;
    let xh_ok = xh.f_le(w - 1)?;

    let flat = input.f_reshape([n, c, h * w])?;
    let corner = |yy: &Tensor, xx: &Tensor, ok: Tensor| -> Result<Tensor> {
        let idx = yy.f_clamp(0, h - 1)? * w + xx.f_clamp(0, w - 1)?;
        let idx = idx.f_view([n, 1, l])?.f_expand([n, c, l], false)?;
        let v = flat.f_gather(2, &idx, false)?;
        Ok(v.f_where_scalarother(&ok.f_view([n, 1, l])?, 0.0)?)
    };
    let v1 = corner(&yl, &xl, yl_ok.f_logical_and(&xl_ok)?)?;
    let v2 = corner(&yl, &xh, yl_ok.f_logical_and(&xh_ok)?)?;
    let v3 = corner(&yh, &xl, yh_ok.f_logical_and(&xl_ok)?)?;
    let v4 = corner(&yh, &xh, yh_ok.f_logical_and(&xh_ok)?)?;
    let w1 = (&hy * &hx).f_view([n, 1, l])?;
    let w2 = (&hy * &lx).f_view([n, 1, l])?;
    let w3 = (&ly * &hx).f_view([n, 1, l])?;
    let w4 = (&ly * &lx).f_view([n, 1, l])?;
    // (((w1 v1 + w2 v2) + w3 v3) + w4 v4), left to right as in C.
    let val = w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4;
    let val = val.f_where_scalarother(&inside.f_view([n, 1, l])?, 0.0)?;
    match mask {
        Some(m) => {
            let m = m.f_narrow(0, chunk * n, n)?.f_reshape([n, 1, l])?;
            Ok(m * val)
        }
        None => Ok(val),
    }
}

#[cfg(test)]
mod tests {
    use super::parallel_images;

    #[test]
    fn parallel_images_as_torchvision() {
        // get_greatest_divisor_below_bound(n, 32)
        let got: Vec<i64> = [1, 2, 3, 4, 6, 7, 12, 64, 66, 70]
            .iter()
            .map(|&b| parallel_images(b))
            .collect();
        assert_eq!(got, vec![1, 1, 1, 2, 3, 1, 6, 32, 22, 14]);
    }
}
