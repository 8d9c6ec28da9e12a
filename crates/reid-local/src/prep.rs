//! From an RGB image to the grayscale `f32` plane SIFT runs on.

use std::borrow::Cow;

use fast_image_resize as fr;
use image::RgbImage;

use crate::error::{LocalError, Result};

/// A single-channel `f32` image, row-major.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plane {
    pub w: usize,
    pub h: usize,
    pub data: Vec<f32>,
}

impl Plane {
    pub fn new(w: usize, h: usize) -> Self {
        Plane {
            w,
            h,
            data: vec![0.0; w * h],
        }
    }
}

/// The size `(w, h)` scaled so that the longer side is at most `max_side`
/// (never enlarged; each side at least 1).
pub(crate) fn scaled_dims(w: u32, h: u32, max_side: u32) -> (u32, u32) {
    let long = w.max(h);
    if long <= max_side || long == 0 {
        return (w, h);
    }
    let s = f64::from(max_side) / f64::from(long);
    let sw = ((f64::from(w) * s).round() as u32).clamp(1, max_side);
    let sh = ((f64::from(h) * s).round() as u32).clamp(1, max_side);
    (sw, sh)
}

/// Downscales `img` (antialiased bilinear convolution, as PIL) so that its
/// longer side is at most `max_side`; never enlarges, and borrows `img`
/// when it already fits.
pub fn downscale_to_fit(img: &RgbImage, max_side: u32) -> Result<Cow<'_, RgbImage>> {
    let (w, h) = img.dimensions();
    let (sw, sh) = scaled_dims(w, h, max_side);
    if (sw, sh) == (w, h) {
        return Ok(Cow::Borrowed(img));
    }
    let shape_err = |e: &dyn std::fmt::Display| LocalError::Shape {
        what: "image to downscale",
        expected: format!("an RGB image resizable to {sw}x{sh}"),
        got: format!("{w}x{h} ({e})"),
    };
    let src = fr::images::ImageRef::new(w, h, img.as_raw(), fr::PixelType::U8x3)
        .map_err(|e| shape_err(&e))?;
    let mut dst = fr::images::Image::new(sw, sh, fr::PixelType::U8x3);
    let opts =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear));
    fr::Resizer::new()
        .resize(&src, &mut dst, &opts)
        .map_err(|e| shape_err(&e))?;
    RgbImage::from_raw(sw, sh, dst.into_vec())
        .map(Cow::Owned)
        .ok_or_else(|| shape_err(&"resized buffer of the wrong length"))
}

/// [`downscale_to_fit`], then luma in `[0, 1]` with the ITU-R BT.601
/// weights (0.299, 0.587, 0.114).
pub(crate) fn gray_scaled(img: &RgbImage, max_side: u32) -> Result<Plane> {
    let scaled = downscale_to_fit(img, max_side)?;
    let (sw, sh) = (scaled.width() as usize, scaled.height() as usize);
    let mut out = Plane::new(sw, sh);
    const K: f32 = 1.0 / 255.0;
    for (o, px) in out.data.iter_mut().zip(scaled.as_raw().chunks_exact(3)) {
        *o = (0.299 * f32::from(px[0]) + 0.587 * f32::from(px[1]) + 0.114 * f32::from(px[2])) * K;
    }
    Ok(out)
}
