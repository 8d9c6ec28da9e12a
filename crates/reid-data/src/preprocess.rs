//! Resize, crop and normalise images into `[B, 3, H, W]` `f32` batches.
//!
//! A [`PreprocessParams`] is validated once into a [`Preprocess`]; the hot
//! path never re-checks parameters. Decoding and resizing of a batch are
//! spread over all cores with rayon; every item's computation is independent
//! of the thread count, so a batch is bit-identical whether built on one
//! thread or many.
//!
//! ```
//! use reid_data::ParamGuard;
//! use reid_data::preprocess::{PreprocessParams, ResizeMode};
//! let pre = PreprocessParams::new(224)
//!     .resize(ResizeMode::ShorterSideCrop { shorter: 256 })
//!     .check()
//!     .unwrap();
//! let img = image::RgbImage::from_pixel(400, 300, image::Rgb([255, 0, 128]));
//! let t = pre.tensor(&img).unwrap();
//! assert_eq!(t.shape(), &[3, 224, 224]);
//! assert!((t[[0, 0, 0]] - (1.0 - 0.485) / 0.229).abs() < 1e-5);
//! ```

use std::path::Path;

use fast_image_resize as fr;
use image::RgbImage;
use ndarray::{Array3, Array4, ArrayViewMut3, Axis};
use rayon::prelude::*;

use reid_core::ParamGuard;

use crate::decode::{DecodeOptions, SizeHint, decode_image};
use crate::error::{DataError, Result};
use crate::record::{BBox, Record};

/// ImageNet channel means (RGB), used by most timm/torchvision backbones and DINOv2.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// OpenAI CLIP channel means (RGB).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_7, 0.457_827_5, 0.408_210_7];
/// OpenAI CLIP channel standard deviations (RGB).
pub const CLIP_STD: [f32; 3] = [0.268_629_5, 0.261_302_6, 0.275_777_1];
/// Inception-style normalisation to `[-1, 1]` (some timm ViTs, EfficientNet-Lite).
pub const INCEPTION_MEAN: [f32; 3] = [0.5, 0.5, 0.5];
/// Inception-style standard deviations.
pub const INCEPTION_STD: [f32; 3] = [0.5, 0.5, 0.5];

/// How an image is brought to the output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    /// Resize so the shorter side is `shorter` (the longer side is truncated
    /// like torchvision `Resize(int)`), then centre-crop to the output size,
    /// with the crop offset rounded half-to-even like torchvision `CenterCrop`.
    ShorterSideCrop {
        /// Target length of the shorter side; at least the larger output side.
        shorter: u32,
    },
    /// Resize straight to the output size, ignoring the aspect ratio.
    Exact,
    /// Resize to fit inside the output size keeping the aspect ratio, centre
    /// the result and pad the rest with `pad` (an RGB colour before normalisation).
    Letterbox {
        /// Padding colour.
        pad: [u8; 3],
    },
}

/// Resampling filter; both are antialiased convolutions like PIL (and
/// torchvision with `antialias=True`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// Nearest neighbour.
    Nearest,
    /// Triangle filter (PIL `BILINEAR`).
    #[default]
    Bilinear,
    /// Catmull-Rom cubic, `a = -0.5` (PIL `BICUBIC`, timm's usual eval filter).
    Bicubic,
}

impl Interpolation {
    fn alg(self) -> fr::ResizeAlg {
        match self {
            Interpolation::Nearest => fr::ResizeAlg::Nearest,
            Interpolation::Bilinear => fr::ResizeAlg::Convolution(fr::FilterType::Bilinear),
            Interpolation::Bicubic => fr::ResizeAlg::Convolution(fr::FilterType::CatmullRom),
        }
    }
}

/// Preprocessing parameters, unchecked: a builder (the output side, then
/// one setter per setting); [`ParamGuard::check`] turns them into the
/// [`Preprocess`] operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreprocessParams {
    /// Output height.
    pub height: u32,
    /// Output width.
    pub width: u32,
    /// Resize strategy.
    pub resize: ResizeMode,
    /// Resampling filter.
    pub interpolation: Interpolation,
    /// Per-channel mean subtracted after scaling to `[0, 1]`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by.
    pub std: [f32; 3],
    /// Decoding options (pixel limit, alpha, reduced-scale JPEG).
    pub decode: DecodeOptions,
}

impl PreprocessParams {
    /// A square `side x side` output, exact resize, bilinear, ImageNet
    /// normalisation, default decoding; set [`PreprocessParams::height`] or
    /// [`PreprocessParams::width`] for other shapes.
    pub fn new(side: u32) -> Self {
        PreprocessParams {
            height: side,
            width: side,
            resize: ResizeMode::Exact,
            interpolation: Interpolation::Bilinear,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            decode: DecodeOptions::default(),
        }
    }

    /// timm's eval transform: resize the shorter side to
    /// `floor(size / crop_pct)`, centre-crop `size x size`, bicubic, ImageNet stats.
    pub fn timm_eval(size: u32, crop_pct: f32) -> Self {
        let shorter = if crop_pct > 0.0 {
            (size as f32 / crop_pct).floor() as u32
        } else {
            0
        };
        PreprocessParams {
            resize: ResizeMode::ShorterSideCrop { shorter },
            interpolation: Interpolation::Bicubic,
            ..Self::new(size)
        }
    }

    reid_core::setters! {
        /// Sets the output height.
        height: u32,
        /// Sets the output width.
        width: u32,
        /// Sets the resize mode.
        resize: ResizeMode,
        /// Sets the interpolation.
        interpolation: Interpolation,
        /// Sets the per-channel normalisation mean.
        mean: [f32; 3],
        /// Sets the per-channel normalisation standard deviation.
        std: [f32; 3],
        /// Sets the decoding options.
        decode: DecodeOptions,
    }
}

/// Errors with [`DataError::InvalidParam`] on `size` unless both sides of a
/// `width x height` output are positive (shared with the augmentations).
pub(crate) fn check_output_size(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(DataError::param(
            "size",
            format!("output size {width}x{height} must be positive"),
        ));
    }
    Ok(())
}

impl ParamGuard for PreprocessParams {
    type Checked = Preprocess;
    type Error = DataError;

    /// Output size positive and at most 2^26 pixels, the shorter side of a
    /// centre crop at least the crop, finite means, positive finite
    /// standard deviations.
    fn check_ref(&self) -> Result<()> {
        check_output_size(self.width, self.height)?;
        if u64::from(self.width) * u64::from(self.height) > 1 << 26 {
            return Err(DataError::param(
                "size",
                format!(
                    "output size {}x{} is unreasonably large",
                    self.width, self.height
                ),
            ));
        }
        if let ResizeMode::ShorterSideCrop { shorter } = self.resize
            && shorter < self.width.max(self.height)
        {
            return Err(DataError::param(
                "shorter",
                format!(
                    "shorter side {shorter} is smaller than the {}x{} crop",
                    self.width, self.height
                ),
            ));
        }
        for c in 0..3 {
            if !self.mean[c].is_finite() {
                return Err(DataError::param(
                    "mean",
                    format!("{:?} is not finite", self.mean),
                ));
            }
            if !(self.std[c].is_finite() && self.std[c] > 0.0) {
                return Err(DataError::param(
                    "std",
                    format!("{:?} must be positive", self.std),
                ));
            }
        }
        Ok(())
    }

    fn check(self) -> Result<Preprocess> {
        self.check_ref()?;
        let mut lut = [[0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, slot) in table.iter_mut().enumerate() {
                *slot = (v as f32 / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        Ok(Preprocess {
            cfg: self,
            lut: Box::new(lut),
        })
    }
}

/// Validated preprocessing: decode, crop, resize, normalise to CHW `f32`.
///
/// The checked form of [`PreprocessParams`]. It is named for what it does
/// rather than `ValidPreprocessParams`, an exception to the workspace's
/// `FooParams` → `ValidFooParams` convention (made for checked forms that
/// are operators, like the losses of `reid-train`): it does the work, with
/// a normalisation table built once by the check.
#[derive(Debug, Clone)]
pub struct Preprocess {
    cfg: PreprocessParams,
    lut: Box<[[f32; 256]; 3]>,
}

/// A batch of preprocessed images.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// One id per image (the record's `image_id`, or the path for file lists).
    pub ids: Vec<String>,
    /// `[B, 3, H, W]` normalised pixels.
    pub images: Array4<f32>,
}

/// A batch built while skipping items that failed.
#[derive(Debug)]
pub struct PartialBatch {
    /// The images that succeeded, in input order.
    pub batch: Batch,
    /// Failed items: index into the input and the error (which names the file).
    pub failed: Vec<(usize, DataError)>,
}

/// Where the resized image lands in the output: resized size and the
/// source offset (crop) or destination offset (letterbox).
struct Plan {
    rw: u32,
    rh: u32,
    /// Crop offset inside the resized image.
    crop: (u32, u32),
    /// Offset of the resized image inside the output (letterbox).
    place: (u32, u32),
}

impl Preprocess {
    /// The validated parameters.
    pub fn params(&self) -> &PreprocessParams {
        &self.cfg
    }

    /// Output `(height, width)`.
    pub fn output_size(&self) -> (u32, u32) {
        (self.cfg.height, self.cfg.width)
    }

    /// What the decoder must preserve for this configuration, enabling
    /// reduced-scale JPEG decoding.
    pub fn size_hint(&self) -> SizeHint {
        let (w, h) = (self.cfg.width, self.cfg.height);
        match self.cfg.resize {
            ResizeMode::ShorterSideCrop { shorter } => SizeHint::ShorterSide(shorter),
            ResizeMode::Exact => SizeHint::AtLeast {
                width: w,
                height: h,
            },
            ResizeMode::Letterbox { .. } => SizeHint::FitWithin {
                width: w,
                height: h,
            },
        }
    }

    fn plan(&self, sw: u32, sh: u32) -> Plan {
        let (w, h) = (self.cfg.width, self.cfg.height);
        match self.cfg.resize {
            ResizeMode::Exact => Plan {
                rw: w,
                rh: h,
                crop: (0, 0),
                place: (0, 0),
            },
            ResizeMode::ShorterSideCrop { shorter } => {
                let (rw, rh) = if sw <= sh {
                    let long = (u64::from(shorter) * u64::from(sh) / u64::from(sw.max(1))) as u32;
                    (shorter, long.max(shorter))
                } else {
                    let long = (u64::from(shorter) * u64::from(sw) / u64::from(sh.max(1))) as u32;
                    (long.max(shorter), shorter)
                };
                let left = (f64::from(rw - w) / 2.0).round_ties_even() as u32;
                let top = (f64::from(rh - h) / 2.0).round_ties_even() as u32;
                Plan {
                    rw,
                    rh,
                    crop: (left, top),
                    place: (0, 0),
                }
            }
            ResizeMode::Letterbox { .. } => {
                let s =
                    (f64::from(w) / f64::from(sw.max(1))).min(f64::from(h) / f64::from(sh.max(1)));
                let rw = ((f64::from(sw) * s).round() as u32).clamp(1, w);
                let rh = ((f64::from(sh) * s).round() as u32).clamp(1, h);
                Plan {
                    rw,
                    rh,
                    crop: (0, 0),
                    place: ((w - rw) / 2, (h - rh) / 2),
                }
            }
        }
    }

    /// Resizes `img` to `rw x rh` with the configured filter.
    fn resize_to(&self, img: &RgbImage, rw: u32, rh: u32) -> Result<RgbImage> {
        if img.dimensions() == (rw, rh) {
            return Ok(img.clone());
        }
        let shape_err = |e: &dyn std::fmt::Display| DataError::Shape {
            expected: format!("resizable RGB image to {rw}x{rh}"),
            got: format!("{}x{} ({e})", img.width(), img.height()),
        };
        let src =
            fr::images::ImageRef::new(img.width(), img.height(), img.as_raw(), fr::PixelType::U8x3)
                .map_err(|e| shape_err(&e))?;
        let mut dst = fr::images::Image::new(rw, rh, fr::PixelType::U8x3);
        let opts = fr::ResizeOptions::new().resize_alg(self.cfg.interpolation.alg());
        fr::Resizer::new()
            .resize(&src, &mut dst, &opts)
            .map_err(|e| shape_err(&e))?;
        RgbImage::from_raw(rw, rh, dst.into_vec()).ok_or_else(|| DataError::Shape {
            expected: format!("{rw}x{rh}x3 buffer"),
            got: "a buffer of another size".into(),
        })
    }

    /// Resizes/crops/letterboxes an RGB image to the output size (still `u8`).
    pub fn resize(&self, img: &RgbImage) -> Result<RgbImage> {
        let (w, h) = (self.cfg.width, self.cfg.height);
        let plan = self.plan(img.width(), img.height());
        let resized = self.resize_to(img, plan.rw, plan.rh)?;
        Ok(match self.cfg.resize {
            ResizeMode::Exact => resized,
            ResizeMode::ShorterSideCrop { .. } => {
                image::imageops::crop_imm(&resized, plan.crop.0, plan.crop.1, w, h).to_image()
            }
            ResizeMode::Letterbox { pad } => {
                let mut out = RgbImage::from_pixel(w, h, image::Rgb(pad));
                image::imageops::replace(
                    &mut out,
                    &resized,
                    i64::from(plan.place.0),
                    i64::from(plan.place.1),
                );
                out
            }
        })
    }

    /// Normalises an RGB image of exactly the output size into a `[3, H, W]` view.
    pub fn normalize_into(&self, img: &RgbImage, mut out: ArrayViewMut3<'_, f32>) -> Result<()> {
        let (w, h) = (self.cfg.width as usize, self.cfg.height as usize);
        if img.dimensions() != (self.cfg.width, self.cfg.height) || out.shape() != [3, h, w] {
            return Err(DataError::Shape {
                expected: format!("image {w}x{h} and output [3, {h}, {w}]"),
                got: format!(
                    "image {}x{} and output {:?}",
                    img.width(),
                    img.height(),
                    out.shape()
                ),
            });
        }
        let raw = img.as_raw();
        for (c, mut plane) in out.axis_iter_mut(Axis(0)).enumerate() {
            let lut = &self.lut[c];
            if let Some(dst) = plane.as_slice_mut() {
                for (d, px) in dst.iter_mut().zip(raw.chunks_exact(3)) {
                    *d = lut[usize::from(px[c])];
                }
            } else {
                for ((y, x), d) in plane.indexed_iter_mut() {
                    *d = lut[usize::from(raw[(y * w + x) * 3 + c])];
                }
            }
        }
        Ok(())
    }

    /// Resizes and normalises a decoded image into a `[3, H, W]` view.
    pub fn image_into(&self, img: &RgbImage, out: ArrayViewMut3<'_, f32>) -> Result<()> {
        let resized = self.resize(img)?;
        self.normalize_into(&resized, out)
    }

    /// Resizes and normalises a decoded image into a new `[3, H, W]` array.
    pub fn tensor(&self, img: &RgbImage) -> Result<Array3<f32>> {
        let (w, h) = (self.cfg.width as usize, self.cfg.height as usize);
        let mut out = Array3::<f32>::zeros((3, h, w));
        self.image_into(img, out.view_mut())?;
        Ok(out)
    }

    /// Decodes (at reduced scale when allowed), crops to `bbox` (oriented
    /// full-resolution coordinates), resizes and normalises a file into `out`.
    pub fn load_into(
        &self,
        path: &Path,
        bbox: Option<&BBox>,
        out: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        let decoded = decode_image(path, bbox, self.size_hint(), &self.cfg.decode)?;
        self.image_into(&decoded.image, out)
    }

    /// Decodes, crops, resizes and normalises one file into a `[3, H, W]` array.
    pub fn load(&self, path: &Path, bbox: Option<&BBox>) -> Result<Array3<f32>> {
        let (w, h) = (self.cfg.width as usize, self.cfg.height as usize);
        let mut out = Array3::<f32>::zeros((3, h, w));
        self.load_into(path, bbox, out.view_mut())?;
        Ok(out)
    }

    fn empty(&self, n: usize) -> Array4<f32> {
        let (w, h) = (self.cfg.width as usize, self.cfg.height as usize);
        Array4::<f32>::zeros((n, 3, h, w))
    }

    /// Loads files (no bounding boxes) in parallel into `[B, 3, H, W]`;
    /// fails on the first error seen (which names its file).
    pub fn files<P: AsRef<Path> + Sync>(&self, paths: &[P]) -> Result<Array4<f32>> {
        let mut arr = self.empty(paths.len());
        arr.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(paths.par_iter())
            .try_for_each(|(view, p)| self.load_into(p.as_ref(), None, view))?;
        Ok(arr)
    }

    /// Loads records (cropping to their bounding boxes) in parallel; fails on
    /// the first error seen (which names its file). With several bad files,
    /// which one is reported depends on scheduling.
    pub fn batch(&self, records: &[Record]) -> Result<Batch> {
        let mut arr = self.empty(records.len());
        arr.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(records.par_iter())
            .try_for_each(|(view, r)| self.load_into(&r.path, r.bbox.as_ref(), view))?;
        Ok(Batch {
            ids: records.iter().map(|r| r.image_id.clone()).collect(),
            images: arr,
        })
    }

    /// Loads every record in parallel and returns one result per record, in order.
    pub fn load_each(&self, records: &[Record]) -> Vec<Result<Array3<f32>>> {
        records
            .par_iter()
            .map(|r| self.load(&r.path, r.bbox.as_ref()))
            .collect()
    }

    /// Loads records in parallel, skipping those that fail; the failures are
    /// returned with their input index.
    pub fn batch_partial(&self, records: &[Record]) -> PartialBatch {
        let mut arr = self.empty(records.len());
        let results: Vec<Result<()>> = arr
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(records.par_iter())
            .map(|(view, r)| self.load_into(&r.path, r.bbox.as_ref(), view))
            .collect();
        let mut keep = Vec::with_capacity(records.len());
        let mut failed = Vec::new();
        for (i, res) in results.into_iter().enumerate() {
            match res {
                Ok(()) => keep.push(i),
                Err(e) => failed.push((i, e)),
            }
        }
        let images = if failed.is_empty() {
            arr
        } else {
            arr.select(Axis(0), &keep)
        };
        PartialBatch {
            batch: Batch {
                ids: keep.iter().map(|&i| records[i].image_id.clone()).collect(),
                images,
            },
            failed,
        }
    }
}

/// Loads image files in parallel into a `[B, 3, H, W]` array (see [`Preprocess::files`]).
pub fn preprocess_files<P: AsRef<Path> + Sync>(
    paths: &[P],
    pre: &Preprocess,
) -> Result<Array4<f32>> {
    pre.files(paths)
}
