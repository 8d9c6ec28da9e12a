//! Composable, seeded training augmentations on RGB images.
//!
//! Each [`Transform`] draws its randomness from the generator it is given, so
//! a [`Compose`] run with the same seed on the same image gives the same
//! result.
//!
//! Each transform's settings are a `FooParams` builder, checked once by
//! [`ParamGuard::check`] into the transform itself (the checked form is the
//! operator, as for [`crate::preprocess::Preprocess`]).
//!
//! ```
//! use reid_data::ParamGuard;
//! use reid_data::augment::{AugmentContext, Compose, HorizontalFlipParams, RandomResizedCropParams};
//! let aug = Compose::new()
//!     .then(RandomResizedCropParams::new(64).check()?)
//!     .then(HorizontalFlipParams::default().disable_for_species(["zebra"]).check()?);
//! let img = image::RgbImage::from_pixel(100, 80, image::Rgb([10, 20, 30]));
//! let ctx = AugmentContext { species: Some("lion") };
//! let a = aug.apply_seeded(img.clone(), &ctx, 7);
//! let b = aug.apply_seeded(img, &ctx, 7);
//! assert_eq!(a, b);
//! assert_eq!(a.dimensions(), (64, 64));
//! # Ok::<(), reid_data::DataError>(())
//! ```

use std::collections::BTreeSet;
use std::fmt;

use fast_image_resize as fr;
use image::{Rgb, RgbImage};
use rand::{Rng, RngCore, SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;

use reid_core::ParamGuard;

use crate::error::{DataError, Result};
use crate::preprocess::check_output_size;

/// Per-sample information a transform may consult.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AugmentContext<'a> {
    /// Species of the animal in the image, if known.
    pub species: Option<&'a str>,
}

/// One augmentation step.
pub trait Transform: Send + Sync + fmt::Debug {
    /// Transforms `img`, drawing randomness from `rng`.
    fn apply(&self, img: RgbImage, ctx: &AugmentContext<'_>, rng: &mut dyn RngCore) -> RgbImage;
}

/// A sequence of transforms applied in order.
#[derive(Debug, Default)]
pub struct Compose {
    steps: Vec<Box<dyn Transform>>,
}

impl Compose {
    /// An empty pipeline (the identity).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a transform.
    pub fn then(mut self, t: impl Transform + 'static) -> Self {
        self.steps.push(Box::new(t));
        self
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True when there are no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the pipeline with a generator seeded from `seed` (ChaCha8).
    pub fn apply_seeded(&self, img: RgbImage, ctx: &AugmentContext<'_>, seed: u64) -> RgbImage {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        self.apply(img, ctx, &mut rng)
    }
}

impl Transform for Compose {
    fn apply(&self, img: RgbImage, ctx: &AugmentContext<'_>, rng: &mut dyn RngCore) -> RgbImage {
        self.steps.iter().fold(img, |im, t| t.apply(im, ctx, rng))
    }
}

fn check_range(name: &'static str, (lo, hi): (f32, f32), min: f32, max: f32) -> Result<()> {
    if !(lo.is_finite() && hi.is_finite() && lo <= hi && lo >= min && hi <= max) {
        return Err(DataError::param(
            name,
            format!("range ({lo}, {hi}) must be ordered and within [{min}, {max}]"),
        ));
    }
    Ok(())
}

/// Settings of [`RandomResizedCrop`]: the output size, the range of the
/// crop's share of the image area and of its aspect ratio. A builder;
/// [`ParamGuard::check`] gives the transform.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomResizedCropParams {
    /// Output width (at least 1).
    pub width: u32,
    /// Output height (at least 1).
    pub height: u32,
    /// Range of the crop's area as a fraction of the image, within `(0, 1]`
    /// (default `(0.08, 1.0)`).
    pub scale: (f32, f32),
    /// Range of the crop's aspect ratio (width / height), positive (default
    /// `(3/4, 4/3)`).
    pub ratio: (f32, f32),
}

impl RandomResizedCropParams {
    /// A square `side x side` output, scale `(0.08, 1.0)`, ratio `(3/4, 4/3)`.
    pub fn new(side: u32) -> Self {
        RandomResizedCropParams {
            width: side,
            height: side,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }

    reid_core::setters! {
        /// Sets the output width.
        width: u32,
        /// Sets the output height.
        height: u32,
        /// Sets the range of the crop's area fraction `(min, max)`.
        scale: (f32, f32),
        /// Sets the range of the crop's aspect ratio `(min, max)`.
        ratio: (f32, f32),
    }
}

impl ParamGuard for RandomResizedCropParams {
    type Checked = RandomResizedCrop;
    type Error = DataError;

    fn check_ref(&self) -> Result<()> {
        check_output_size(self.width, self.height)?;
        check_range("scale", self.scale, f32::MIN_POSITIVE, 1.0)?;
        check_range("ratio", self.ratio, f32::MIN_POSITIVE, f32::MAX)
    }

    fn check(self) -> Result<RandomResizedCrop> {
        self.check_ref()?;
        Ok(RandomResizedCrop {
            width: self.width,
            height: self.height,
            scale: self.scale,
            ratio: self.ratio,
        })
    }
}

/// Crops a random region of random area and aspect ratio and resizes it to a
/// fixed size (torchvision `RandomResizedCrop`, bilinear, 10 attempts then a
/// centre crop fallback). Made by [`ParamGuard::check`] on
/// [`RandomResizedCropParams`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomResizedCrop {
    width: u32,
    height: u32,
    scale: (f32, f32),
    ratio: (f32, f32),
}

impl RandomResizedCrop {
    /// The crop `(left, top, width, height)` for an image of `w x h`.
    fn params(&self, w: u32, h: u32, rng: &mut dyn RngCore) -> (u32, u32, u32, u32) {
        let area = f64::from(w) * f64::from(h);
        let (lr0, lr1) = (f64::from(self.ratio.0).ln(), f64::from(self.ratio.1).ln());
        for _ in 0..10 {
            let target = area * rng.gen_range(f64::from(self.scale.0)..=f64::from(self.scale.1));
            let aspect = rng.gen_range(lr0..=lr1).exp();
            let cw = (target * aspect).sqrt().round();
            let ch = (target / aspect).sqrt().round();
            if cw >= 1.0 && ch >= 1.0 && cw <= f64::from(w) && ch <= f64::from(h) {
                let (cw, ch) = (cw as u32, ch as u32);
                let top = rng.gen_range(0..=h - ch);
                let left = rng.gen_range(0..=w - cw);
                return (left, top, cw, ch);
            }
        }
        // Fallback: central crop with the ratio clamped to the range.
        let in_ratio = f64::from(w) / f64::from(h);
        let (cw, ch) = if in_ratio < f64::from(self.ratio.0) {
            (
                w,
                ((f64::from(w) / f64::from(self.ratio.0)).round() as u32).clamp(1, h),
            )
        } else if in_ratio > f64::from(self.ratio.1) {
            (
                ((f64::from(h) * f64::from(self.ratio.1)).round() as u32).clamp(1, w),
                h,
            )
        } else {
            (w, h)
        };
        ((w - cw) / 2, (h - ch) / 2, cw, ch)
    }
}

impl Transform for RandomResizedCrop {
    fn apply(&self, img: RgbImage, _ctx: &AugmentContext<'_>, rng: &mut dyn RngCore) -> RgbImage {
        let (w, h) = img.dimensions();
        if w == 0 || h == 0 {
            return RgbImage::new(self.width, self.height);
        }
        let (left, top, cw, ch) = self.params(w, h, rng);
        resize_region(&img, (left, top, cw, ch), self.width, self.height)
    }
}

/// Bilinear resize of a region; falls back to nearest sampling if the
/// resizer rejects the buffers (cannot happen for a well-formed `RgbImage`).
fn resize_region(img: &RgbImage, crop: (u32, u32, u32, u32), ow: u32, oh: u32) -> RgbImage {
    let (left, top, cw, ch) = crop;
    let resized =
        fr::images::ImageRef::new(img.width(), img.height(), img.as_raw(), fr::PixelType::U8x3)
            .ok()
            .and_then(|src| {
                let mut dst = fr::images::Image::new(ow, oh, fr::PixelType::U8x3);
                let opts = fr::ResizeOptions::new()
                    .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear))
                    .crop(
                        f64::from(left),
                        f64::from(top),
                        f64::from(cw),
                        f64::from(ch),
                    );
                fr::Resizer::new().resize(&src, &mut dst, &opts).ok()?;
                RgbImage::from_raw(ow, oh, dst.into_vec())
            });
    resized.unwrap_or_else(|| {
        RgbImage::from_fn(ow, oh, |x, y| {
            let sx = left + (u64::from(x) * u64::from(cw) / u64::from(ow)) as u32;
            let sy = top + (u64::from(y) * u64::from(ch) / u64::from(oh)) as u32;
            *img.get_pixel(sx.min(img.width() - 1), sy.min(img.height() - 1))
        })
    })
}

/// Settings of [`HorizontalFlip`]: a builder with [`Default`] (`p = 0.5`,
/// no species excluded); [`ParamGuard::check`] gives the transform.
#[derive(Debug, Clone, PartialEq)]
pub struct HorizontalFlipParams {
    /// Probability of a flip, in `[0, 1]`.
    pub p: f64,
    /// Species never flipped (lower-case, trimmed).
    pub disabled: BTreeSet<String>,
}

impl Default for HorizontalFlipParams {
    fn default() -> Self {
        HorizontalFlipParams {
            p: 0.5,
            disabled: BTreeSet::new(),
        }
    }
}

impl HorizontalFlipParams {
    reid_core::setters! {
        /// Sets the probability of a flip.
        p: f64,
    }

    /// Never flips images of these species (compared case-insensitively,
    /// surrounding whitespace ignored).
    #[must_use]
    pub fn disable_for_species<I, S>(mut self, species: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.disabled.extend(
            species
                .into_iter()
                .map(|s| s.as_ref().trim().to_lowercase()),
        );
        self
    }
}

impl ParamGuard for HorizontalFlipParams {
    type Checked = HorizontalFlip;
    type Error = DataError;

    fn check_ref(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.p) {
            return Err(DataError::param(
                "p",
                format!("{} is not a probability", self.p),
            ));
        }
        Ok(())
    }

    fn check(self) -> Result<HorizontalFlip> {
        self.check_ref()?;
        Ok(HorizontalFlip {
            p: self.p,
            disabled: self.disabled,
        })
    }
}

/// Mirrors the image left-right with probability `p`, except for species
/// listed with [`HorizontalFlipParams::disable_for_species`] (for animals
/// whose left and right flanks carry different identity marks, a mirrored
/// flank is a different-looking individual). Made by [`ParamGuard::check`]
/// on [`HorizontalFlipParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct HorizontalFlip {
    p: f64,
    disabled: BTreeSet<String>,
}

impl HorizontalFlip {
    /// Whether flipping is allowed for `species`.
    pub fn allowed_for(&self, species: Option<&str>) -> bool {
        species.is_none_or(|s| !self.disabled.contains(&s.trim().to_lowercase()))
    }
}

impl Transform for HorizontalFlip {
    fn apply(&self, img: RgbImage, ctx: &AugmentContext<'_>, rng: &mut dyn RngCore) -> RgbImage {
        // Always draw, so the random stream does not depend on the species.
        let flip = rng.gen_bool(self.p);
        if flip && self.allowed_for(ctx.species) {
            image::imageops::flip_horizontal(&img)
        } else {
            img
        }
    }
}

/// Settings of [`ColorJitter`]: a builder with [`Default`] (all 0: no
/// change) and one setter per setting; [`ParamGuard::check`] gives the
/// transform. Factors are drawn from `[max(0, 1 - x), 1 + x]` for
/// brightness, contrast and saturation (each `>= 0`); the hue shift from
/// `[-hue, hue]` as a fraction of the colour circle (`0 <= hue <= 0.5`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ColorJitterParams {
    /// Brightness jitter (`>= 0`).
    pub brightness: f32,
    /// Contrast jitter (`>= 0`).
    pub contrast: f32,
    /// Saturation jitter (`>= 0`).
    pub saturation: f32,
    /// Hue jitter, in `[0, 0.5]`.
    pub hue: f32,
}

impl ColorJitterParams {
    reid_core::setters! {
        /// Sets the brightness jitter.
        brightness: f32,
        /// Sets the contrast jitter.
        contrast: f32,
        /// Sets the saturation jitter.
        saturation: f32,
        /// Sets the hue jitter.
        hue: f32,
    }
}

impl ParamGuard for ColorJitterParams {
    type Checked = ColorJitter;
    type Error = DataError;

    fn check_ref(&self) -> Result<()> {
        for (name, v) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(DataError::param(name, format!("{v} must be >= 0")));
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            return Err(DataError::param(
                "hue",
                format!("{} must be in [0, 0.5]", self.hue),
            ));
        }
        Ok(())
    }

    fn check(self) -> Result<ColorJitter> {
        self.check_ref()?;
        Ok(ColorJitter { p: self })
    }
}

/// Random brightness, contrast, saturation and hue changes applied in a
/// random order (torchvision `ColorJitter` semantics, computed in `f32` and
/// rounded once at the end). Made by [`ParamGuard::check`] on
/// [`ColorJitterParams`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorJitter {
    p: ColorJitterParams,
}

fn gray(p: [f32; 3]) -> f32 {
    0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

fn rgb_to_hsv([r, g, b]: [f32; 3]) -> [f32; 3] {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let h = if d <= 0.0 {
        0.0
    } else if max == r {
        ((g - b) / d).rem_euclid(6.0) / 6.0
    } else if max == g {
        ((b - r) / d + 2.0) / 6.0
    } else {
        ((r - g) / d + 4.0) / 6.0
    };
    let s = if max <= 0.0 { 0.0 } else { d / max };
    [h, s, max]
}

fn hsv_to_rgb([h, s, v]: [f32; 3]) -> [f32; 3] {
    let h6 = h.rem_euclid(1.0) * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    match i as u32 % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

impl Transform for ColorJitter {
    fn apply(&self, img: RgbImage, _ctx: &AugmentContext<'_>, rng: &mut dyn RngCore) -> RgbImage {
        let factor = |x: f32, rng: &mut dyn RngCore| -> Option<f32> {
            (x > 0.0).then(|| rng.gen_range((1.0 - x).max(0.0)..=1.0 + x))
        };
        let mut order = [0usize, 1, 2, 3];
        order.shuffle(rng);
        let b = factor(self.p.brightness, rng);
        let c = factor(self.p.contrast, rng);
        let s = factor(self.p.saturation, rng);
        let h = (self.p.hue > 0.0).then(|| rng.gen_range(-self.p.hue..=self.p.hue));
        let (w, hgt) = img.dimensions();
        let mut px: Vec<[f32; 3]> = img
            .pixels()
            .map(|p| [f32::from(p.0[0]), f32::from(p.0[1]), f32::from(p.0[2])])
            .collect();
        let clamp = |v: f32| v.clamp(0.0, 255.0);
        for op in order {
            match op {
                0 => {
                    if let Some(f) = b {
                        px.iter_mut()
                            .for_each(|p| p.iter_mut().for_each(|v| *v = clamp(*v * f)));
                    }
                }
                1 => {
                    if let Some(f) = c {
                        let mean =
                            px.iter().map(|&p| gray(p)).sum::<f32>() / px.len().max(1) as f32;
                        px.iter_mut().for_each(|p| {
                            p.iter_mut()
                                .for_each(|v| *v = clamp(f * *v + (1.0 - f) * mean));
                        });
                    }
                }
                2 => {
                    if let Some(f) = s {
                        px.iter_mut().for_each(|p| {
                            let g = gray(*p);
                            p.iter_mut()
                                .for_each(|v| *v = clamp(f * *v + (1.0 - f) * g));
                        });
                    }
                }
                _ => {
                    if let Some(shift) = h {
                        px.iter_mut().for_each(|p| {
                            let [hh, ss, vv] = rgb_to_hsv(p.map(|v| v / 255.0));
                            *p = hsv_to_rgb([hh + shift, ss, vv]).map(|v| clamp(v * 255.0));
                        });
                    }
                }
            }
        }
        let mut out = RgbImage::new(w, hgt);
        for (o, p) in out.pixels_mut().zip(px) {
            *o = Rgb(p.map(|v| v.round() as u8));
        }
        out
    }
}

/// Settings of [`Rotation`]: a builder with [`Default`] (angles in
/// `[-10, 10]` degrees, black fill); [`ParamGuard::check`] gives the
/// transform.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RotationParams {
    /// Range `(min, max)` of the angle in degrees, within `[-360, 360]`.
    pub degrees: (f32, f32),
    /// Colour of the pixels the rotated image does not cover.
    pub fill: [u8; 3],
}

impl Default for RotationParams {
    fn default() -> Self {
        RotationParams {
            degrees: (-10.0, 10.0),
            fill: [0, 0, 0],
        }
    }
}

impl RotationParams {
    reid_core::setters! {
        /// Sets the angle range `(min, max)` in degrees (drawn uniformly).
        degrees: (f32, f32),
        /// Sets the fill colour.
        fill: [u8; 3],
    }
}

impl ParamGuard for RotationParams {
    type Checked = Rotation;
    type Error = DataError;

    fn check_ref(&self) -> Result<()> {
        check_range("degrees", self.degrees, -360.0, 360.0)
    }

    fn check(self) -> Result<Rotation> {
        self.check_ref()?;
        Ok(Rotation {
            degrees: self.degrees,
            fill: self.fill,
        })
    }
}

/// Rotates by a random angle (degrees, counter-clockwise positive) about the
/// image centre, keeping the size; uncovered pixels take `fill`. Bilinear
/// sampling. Made by [`ParamGuard::check`] on [`RotationParams`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rotation {
    degrees: (f32, f32),
    fill: [u8; 3],
}

impl Rotation {
    /// Rotates `img` by exactly `deg` degrees counter-clockwise.
    pub fn rotate(&self, img: &RgbImage, deg: f32) -> RgbImage {
        let (w, h) = img.dimensions();
        let (sin, cos) = f64::from(deg).to_radians().sin_cos();
        let (cx, cy) = (f64::from(w) / 2.0, f64::from(h) / 2.0);
        let fill = self.fill.map(f64::from);
        let sample = |x: i64, y: i64, c: usize| -> f64 {
            if x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
                fill[c]
            } else {
                f64::from(img.get_pixel(x as u32, y as u32).0[c])
            }
        };
        RgbImage::from_fn(w, h, |x, y| {
            let dx = f64::from(x) + 0.5 - cx;
            let dy = f64::from(y) + 0.5 - cy;
            // Inverse of a visual counter-clockwise rotation (y axis down).
            let sx = dx * cos - dy * sin + cx - 0.5;
            let sy = dx * sin + dy * cos + cy - 0.5;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let mut out = [0u8; 3];
            for (c, o) in out.iter_mut().enumerate() {
                let v = sample(x0, y0, c) * (1.0 - fx) * (1.0 - fy)
                    + sample(x0 + 1, y0, c) * fx * (1.0 - fy)
                    + sample(x0, y0 + 1, c) * (1.0 - fx) * fy
                    + sample(x0 + 1, y0 + 1, c) * fx * fy;
                *o = v.round().clamp(0.0, 255.0) as u8;
            }
            Rgb(out)
        })
    }
}

impl Transform for Rotation {
    fn apply(&self, img: RgbImage, _ctx: &AugmentContext<'_>, rng: &mut dyn RngCore) -> RgbImage {
        let deg = if self.degrees.0 < self.degrees.1 {
            rng.gen_range(self.degrees.0..=self.degrees.1)
        } else {
            self.degrees.0
        };
        self.rotate(&img, deg)
    }
}
