//! Helpers shared by the integration tests: seeded synthetic textures,
//! image warps, the shared-data location.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A `w x h` scene of random discs and rectangles of random grey levels
/// (and some colour) on a grey background.
pub fn texture(w: u32, h: u32, seed: u64, shapes: usize) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut img = RgbImage::from_pixel(w, h, Rgb([120, 124, 118]));
    for _ in 0..shapes {
        let cx = rng.gen_range(0.0..w as f32);
        let cy = rng.gen_range(0.0..h as f32);
        let r = rng.gen_range(2.0..(w.min(h) as f32 / 12.0).max(3.0));
        let c = [
            rng.gen_range(0..=255u8),
            rng.gen_range(0..=255u8),
            rng.gen_range(0..=255u8),
        ];
        let disc = rng.gen_bool(0.6);
        let (x0, x1) = (
            (cx - r).floor().max(0.0) as u32,
            ((cx + r).ceil() as u32).min(w),
        );
        let (y0, y1) = (
            (cy - r).floor().max(0.0) as u32,
            ((cy + r).ceil() as u32).min(h),
        );
        for y in y0..y1 {
            for x in x0..x1 {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                if !disc || dx * dx + dy * dy <= r * r {
                    img.put_pixel(x, y, Rgb(c));
                }
            }
        }
    }
    img
}

/// Bilinear sample of `img` at `(x, y)` (pixel centres at integers);
/// `None` outside.
fn sample(img: &RgbImage, x: f64, y: f64) -> Option<[f64; 3]> {
    let (w, h) = (img.width() as f64, img.height() as f64);
    if x < 0.0 || y < 0.0 || x > w - 1.0 || y > h - 1.0 {
        return None;
    }
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as u32, y0 as u32);
    let x1 = (x0 + 1).min(img.width() - 1);
    let y1 = (y0 + 1).min(img.height() - 1);
    let mut out = [0.0; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let p = |xx, yy| f64::from(img.get_pixel(xx, yy)[c]);
        *o = (p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx) * (1.0 - fy)
            + (p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx) * fy;
    }
    Some(out)
}

/// The image `out(p) = img(inverse(p))` of size `w x h` (grey outside).
pub fn warp(img: &RgbImage, w: u32, h: u32, inverse: impl Fn(f64, f64) -> (f64, f64)) -> RgbImage {
    let mut out = RgbImage::from_pixel(w, h, Rgb([120, 124, 118]));
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = inverse(f64::from(x), f64::from(y));
            if let Some(v) = sample(img, sx, sy) {
                out.put_pixel(
                    x,
                    y,
                    Rgb([v[0].round() as u8, v[1].round() as u8, v[2].round() as u8]),
                );
            }
        }
    }
    out
}

/// A similarity about `(cx, cy)`: rotate by `deg`, scale by `s`, then
/// translate by `(tx, ty)`; returns `(forward 2x3 matrix, inverse 2x3)`.
pub fn similarity(
    cx: f64,
    cy: f64,
    deg: f64,
    s: f64,
    tx: f64,
    ty: f64,
) -> ([[f64; 3]; 2], [[f64; 3]; 2]) {
    let (sn, cs) = deg.to_radians().sin_cos();
    let (a, b, c, d) = (s * cs, -s * sn, s * sn, s * cs);
    // p' = R (p - c) + c + t
    let fwd = [
        [a, b, cx + tx - a * cx - b * cy],
        [c, d, cy + ty - c * cx - d * cy],
    ];
    let det = a * d - b * c;
    let (ia, ib, ic, id) = (d / det, -b / det, -c / det, a / det);
    let inv = [
        [ia, ib, -(ia * fwd[0][2] + ib * fwd[1][2])],
        [ic, id, -(ic * fwd[0][2] + id * fwd[1][2])],
    ];
    (fwd, inv)
}

/// Applies a 2x3 matrix.
pub fn apply(m: &[[f64; 3]; 2], x: f64, y: f64) -> (f64, f64) {
    (
        m[0][0] * x + m[0][1] * y + m[0][2],
        m[1][0] * x + m[1][1] * y + m[1][2],
    )
}

/// The shared folder (`reid_core::paths::shared_dir`).
pub fn shared_dir() -> PathBuf {
    reid_core::paths::shared_dir()
}
