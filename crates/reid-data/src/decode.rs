//! Image decoding by content, not by file extension.
//!
//! [`decode_image`] reads a file, sniffs its magic bytes (a JPEG named
//! `x.png` decodes as the JPEG it is), checks the pixel count from the header
//! before any pixel buffer is allocated, applies the EXIF orientation, crops an
//! optional bounding box and returns 8-bit RGB.
//!
//! # Conventions
//!
//! * **Pixel formats.** Grayscale, gray+alpha, 16-bit (PNG, TIFF), RGBA,
//!   palette and CMYK JPEG (plain and Adobe-inverted, including YCCK) all end
//!   as [`RgbImage`]. 16-bit samples are rounded to 8 bits. CMYK becomes RGB
//!   with the naive formula `r = (255 - c)(255 - k) / 255` (no ICC profile).
//! * **Alpha.** By default alpha is dropped ([`AlphaMode::Drop`]), which is what
//!   PIL's `convert("RGB")` does and so what timm/torchvision pipelines see;
//!   [`AlphaMode::Composite`] blends onto a background colour instead.
//! * **Orientation.** The EXIF orientation tag (values 1 to 8) is applied, so
//!   the returned image is upright as a viewer shows it. Invalid or missing tags
//!   count as 1.
//! * **Bounding boxes** are in the coordinates of the *oriented,
//!   full-resolution* image (what a viewer shows, what annotation tools save).
//!   A box is converted to whole pixels by flooring its left/top edge and
//!   ceiling its right/bottom edge. A box partly outside the image is clamped
//!   to the image; a box that is empty, not finite, or does not overlap the
//!   image is rejected with [`DataError::BboxOutOfBounds`].
//! * **Reduced-scale JPEG decoding.** Given a [`SizeHint`] saying how large the
//!   (cropped) result must remain, a JPEG is decoded at 1/2, 1/4 or 1/8 scale
//!   in the DCT domain, choosing the smallest scale whose output still covers
//!   the requested size. The bounding box is scaled by the same factor; the
//!   returned [`Decoded::scale_denom`] says which scale was used.
//! * **Pixel limit.** Images above [`DecodeOptions::max_pixels`] (default
//!   [`DEFAULT_MAX_PIXELS`]) are rejected with [`DataError::TooLarge`] after
//!   reading the header only.
//! * **No panics.** Decoder panics on malformed data are caught and reported as
//!   [`DataError::Decode`] naming the file (the default panic hook may still
//!   print the panic message to stderr).

use std::io::Cursor;
use std::num::NonZeroU64;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, RgbImage, imageops};

use crate::error::{DataError, Result};
use crate::record::{BBox, Record};

/// Default decompression-bomb guard: 100 megapixels.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// Image container formats recognised from their magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// PNG (`89 'PNG' 0D 0A 1A 0A`).
    Png,
    /// TIFF (`II*\0` or `MM\0*`).
    Tiff,
    /// WebP (`RIFF....WEBP`).
    WebP,
    /// Windows bitmap (`BM`).
    Bmp,
    /// GIF (`GIF87a` / `GIF89a`); the first frame is decoded.
    Gif,
}

impl ImageFormat {
    fn to_image_crate(self) -> image::ImageFormat {
        match self {
            ImageFormat::Jpeg => image::ImageFormat::Jpeg,
            ImageFormat::Png => image::ImageFormat::Png,
            ImageFormat::Tiff => image::ImageFormat::Tiff,
            ImageFormat::WebP => image::ImageFormat::WebP,
            ImageFormat::Bmp => image::ImageFormat::Bmp,
            ImageFormat::Gif => image::ImageFormat::Gif,
        }
    }
}

/// Identifies the image format from the first bytes of a file, ignoring any
/// file name. Returns `None` for anything not recognised.
///
/// ```
/// use reid_data::decode::{sniff_format, ImageFormat};
/// assert_eq!(sniff_format(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageFormat::Jpeg));
/// assert_eq!(sniff_format(b"hello"), None);
/// ```
pub fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Some(ImageFormat::Tiff)
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageFormat::WebP)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageFormat::Gif)
    } else if bytes.len() >= 14 && bytes.starts_with(b"BM") {
        Some(ImageFormat::Bmp)
    } else {
        None
    }
}

/// What to do with an alpha channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlphaMode {
    /// Keep the colour channels and ignore alpha (PIL `convert("RGB")`).
    #[default]
    Drop,
    /// Blend onto this background colour: `c * a + bg * (1 - a)`.
    Composite([u8; 3]),
}

/// How large the decoded (and cropped) image must stay, which lets JPEGs be
/// decoded at reduced scale. All sizes refer to the cropped region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SizeHint {
    /// Decode at full resolution.
    #[default]
    Full,
    /// Both sides must stay at least this large (exact resize to `width x height`).
    AtLeast {
        /// Minimum width.
        width: u32,
        /// Minimum height.
        height: u32,
    },
    /// The shorter side must stay at least this long (resize shorter side, then crop).
    ShorterSide(u32),
    /// The image will be scaled to fit inside `width x height` (letterbox).
    FitWithin {
        /// Box width.
        width: u32,
        /// Box height.
        height: u32,
    },
}

impl SizeHint {
    /// The image will be scaled so that its longer side is at most `side`
    /// (`FitWithin` a `side x side` square).
    pub fn longer_side(side: u32) -> Self {
        SizeHint::FitWithin {
            width: side,
            height: side,
        }
    }

    /// The downscale ratio (<= 1 means smaller is fine) a crop of
    /// `cw x ch` pixels may be reduced by while honouring the hint.
    fn required_ratio(self, cw: u32, ch: u32) -> f64 {
        let (cw, ch) = (f64::from(cw.max(1)), f64::from(ch.max(1)));
        match self {
            SizeHint::Full => 1.0,
            SizeHint::AtLeast { width, height } => {
                (f64::from(width) / cw).max(f64::from(height) / ch)
            }
            SizeHint::ShorterSide(s) => f64::from(s) / cw.min(ch),
            SizeHint::FitWithin { width, height } => {
                (f64::from(width) / cw).min(f64::from(height) / ch)
            }
        }
    }
}

/// Decoding options; build with [`DecodeOptions::new`] and the `with_*`
/// setters.
///
/// Options, not params: no combination of settings can be invalid (the
/// pixel limit is a [`NonZeroU64`]), so there is no checked form and no
/// [`reid_core::ParamGuard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    max_pixels: u64,
    alpha: AlphaMode,
    reduced_scale: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_pixels: DEFAULT_MAX_PIXELS,
            alpha: AlphaMode::Drop,
            reduced_scale: true,
        }
    }
}

impl DecodeOptions {
    /// Defaults: 100 megapixel limit, alpha dropped, reduced-scale JPEG decoding on.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the pixel-count limit (width × height).
    #[must_use]
    pub fn with_max_pixels(mut self, max_pixels: NonZeroU64) -> Self {
        self.max_pixels = max_pixels.get();
        self
    }

    /// Sets the alpha handling.
    #[must_use]
    pub fn with_alpha(mut self, alpha: AlphaMode) -> Self {
        self.alpha = alpha;
        self
    }

    /// Enables or disables reduced-scale (DCT) JPEG decoding.
    #[must_use]
    pub fn with_reduced_scale(mut self, on: bool) -> Self {
        self.reduced_scale = on;
        self
    }

    /// The pixel-count limit.
    pub fn max_pixels(&self) -> u64 {
        self.max_pixels
    }

    /// The alpha handling.
    pub fn alpha(&self) -> AlphaMode {
        self.alpha
    }

    /// Whether reduced-scale JPEG decoding is allowed.
    pub fn reduced_scale(&self) -> bool {
        self.reduced_scale
    }

    /// Every option as bytes, for cache keys of what is computed from the
    /// decoded pixels (two options that decode differently never give the
    /// same bytes).
    pub fn key_bytes(&self) -> Vec<u8> {
        let mut v = self.max_pixels.to_le_bytes().to_vec();
        v.push(u8::from(self.reduced_scale));
        match self.alpha {
            AlphaMode::Drop => v.push(0),
            AlphaMode::Composite(c) => {
                v.push(1);
                v.extend_from_slice(&c);
            }
        }
        v
    }
}

/// A decoded, oriented, cropped RGB image and how it was obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The pixels: the (cropped) region, upright, at `1 / scale_denom` scale.
    pub image: RgbImage,
    /// 1 for full resolution; 2, 4 or 8 for reduced-scale JPEG decoding.
    pub scale_denom: u32,
    /// Width of the whole oriented image at full resolution.
    pub full_width: u32,
    /// Height of the whole oriented image at full resolution.
    pub full_height: u32,
    /// The EXIF orientation that was applied (1 to 8).
    pub orientation: u8,
}

/// Decodes a whole image file to upright RGB8 at full resolution.
pub fn decode_file(path: impl AsRef<Path>, opts: &DecodeOptions) -> Result<RgbImage> {
    decode_image(path.as_ref(), None, SizeHint::Full, opts).map(|d| d.image)
}

/// Decodes the image of a record, cropped to its bounding box when it has one.
pub fn decode_record(record: &Record, hint: SizeHint, opts: &DecodeOptions) -> Result<Decoded> {
    decode_image(&record.path, record.bbox.as_ref(), hint, opts)
}

/// Reads and decodes `path`; see the [module documentation](self) for the
/// conventions on orientation, bounding boxes and reduced-scale decoding.
pub fn decode_image(
    path: &Path,
    bbox: Option<&BBox>,
    hint: SizeHint,
    opts: &DecodeOptions,
) -> Result<Decoded> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_bytes(&bytes, path, bbox, hint, opts)
}

/// Decodes in-memory bytes; `path` is only used to name the source in errors.
pub fn decode_bytes(
    bytes: &[u8],
    path: &Path,
    bbox: Option<&BBox>,
    hint: SizeHint,
    opts: &DecodeOptions,
) -> Result<Decoded> {
    if bytes.is_empty() {
        return Err(DataError::EmptyFile { path: path.into() });
    }
    let format = sniff_format(bytes).ok_or_else(|| DataError::UnsupportedFormat {
        path: path.into(),
        detail: describe_magic(bytes),
    })?;
    let caught = catch_unwind(AssertUnwindSafe(|| match format {
        ImageFormat::Jpeg => decode_jpeg(bytes, path, bbox, hint, opts),
        other => decode_generic(bytes, other, path, bbox, opts),
    }));
    match caught {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "decoder panicked".to_string());
            Err(DataError::Decode {
                path: path.into(),
                reason: format!("decoder panicked: {msg}"),
            })
        }
    }
}

/// Reads the oriented full-resolution size of an image from its header only.
pub fn image_dimensions(path: &Path) -> Result<(u32, u32)> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if bytes.is_empty() {
        return Err(DataError::EmptyFile { path: path.into() });
    }
    let format = sniff_format(&bytes).ok_or_else(|| DataError::UnsupportedFormat {
        path: path.into(),
        detail: describe_magic(&bytes),
    })?;
    let caught = catch_unwind(AssertUnwindSafe(|| -> Result<(u32, u32)> {
        match format {
            ImageFormat::Jpeg => {
                let mut d = jpeg_decoder::Decoder::new(&bytes[..]);
                d.read_info().map_err(|e| dec_err(path, e))?;
                let info = d.info().ok_or_else(|| dec_err(path, "no frame header"))?;
                let o = d.exif_data().map_or(1, orientation_from_exif);
                Ok(oriented_dims(
                    u32::from(info.width),
                    u32::from(info.height),
                    o,
                ))
            }
            other => {
                let mut dec = image::ImageReader::with_format(
                    Cursor::new(&bytes[..]),
                    other.to_image_crate(),
                )
                .into_decoder()
                .map_err(|e| dec_err(path, e))?;
                let (w, h) = dec.dimensions();
                let o = dec.orientation().map_or(1, |o| o.to_exif());
                Ok(oriented_dims(w, h, o))
            }
        }
    }));
    caught.unwrap_or_else(|_| Err(dec_err(path, "decoder panicked")))
}

fn describe_magic(bytes: &[u8]) -> String {
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let looks_text = bytes
        .iter()
        .take(64)
        .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    format!(
        "unrecognised magic bytes {}{}",
        head.join(" "),
        if looks_text { " (looks like text)" } else { "" }
    )
}

fn dec_err(path: &Path, reason: impl std::fmt::Display) -> DataError {
    DataError::Decode {
        path: path.into(),
        reason: reason.to_string(),
    }
}

fn check_limit(path: &Path, w: u32, h: u32, opts: &DecodeOptions) -> Result<()> {
    if u64::from(w) * u64::from(h) > opts.max_pixels {
        return Err(DataError::TooLarge {
            path: path.into(),
            width: w,
            height: h,
            limit: opts.max_pixels,
        });
    }
    Ok(())
}

/// EXIF orientation from a raw EXIF (TIFF) block; 1 when absent or invalid.
fn orientation_from_exif(raw: &[u8]) -> u8 {
    let Ok(ex) = exif::Reader::new().read_raw(raw.to_vec()) else {
        return 1;
    };
    ex.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .and_then(|v| u8::try_from(v).ok())
        .filter(|v| (1..=8).contains(v))
        .unwrap_or(1)
}

fn oriented_dims(w: u32, h: u32, orientation: u8) -> (u32, u32) {
    if orientation >= 5 { (h, w) } else { (w, h) }
}

/// Applies an EXIF orientation (1 to 8) to an image so it becomes upright.
pub fn apply_orientation(img: RgbImage, orientation: u8) -> RgbImage {
    match orientation {
        2 => imageops::flip_horizontal(&img),
        3 => imageops::rotate180(&img),
        4 => imageops::flip_vertical(&img),
        5 => imageops::flip_horizontal(&imageops::rotate90(&img)),
        6 => imageops::rotate90(&img),
        7 => imageops::flip_horizontal(&imageops::rotate270(&img)),
        8 => imageops::rotate270(&img),
        _ => img,
    }
}

/// Integer pixel rectangle `[x0, x1) x [y0, y1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

impl Rect {
    fn w(&self) -> u32 {
        self.x1 - self.x0
    }
    fn h(&self) -> u32 {
        self.y1 - self.y0
    }
}

/// The whole-pixel rectangle covered by `bbox` scaled by `(sx, sy)` inside a
/// `w x h` image, clamped; `None` when empty or outside.
fn bbox_rect(bbox: &BBox, sx: f64, sy: f64, w: u32, h: u32) -> Option<Rect> {
    let (x, y, bw, bh) = (
        f64::from(bbox.x),
        f64::from(bbox.y),
        f64::from(bbox.w),
        f64::from(bbox.h),
    );
    if !(x.is_finite() && y.is_finite() && bw.is_finite() && bh.is_finite())
        || bw <= 0.0
        || bh <= 0.0
    {
        return None;
    }
    let clamp = |v: f64, hi: u32| v.clamp(0.0, f64::from(hi)) as u32;
    // A tiny epsilon keeps exact integer boxes exact after scaling.
    let eps = 1e-6;
    let x0 = clamp((x * sx + eps).floor(), w);
    let y0 = clamp((y * sy + eps).floor(), h);
    let x1 = clamp(((x + bw) * sx - eps).ceil(), w);
    let y1 = clamp(((y + bh) * sy - eps).ceil(), h);
    (x1 > x0 && y1 > y0).then_some(Rect { x0, y0, x1, y1 })
}

fn bbox_error(path: &Path, bbox: &BBox, w: u32, h: u32) -> DataError {
    DataError::BboxOutOfBounds {
        path: path.into(),
        bbox: bbox.to_string(),
        width: w,
        height: h,
    }
}

/// Maps a rectangle in oriented coordinates back to the stored (raw) image of
/// size `rw x rh` with the given EXIF orientation.
fn rect_to_raw(r: Rect, orientation: u8, rw: u32, rh: u32) -> Rect {
    let Rect { x0, y0, x1, y1 } = r;
    match orientation {
        2 => Rect {
            x0: rw - x1,
            y0,
            x1: rw - x0,
            y1,
        },
        3 => Rect {
            x0: rw - x1,
            y0: rh - y1,
            x1: rw - x0,
            y1: rh - y0,
        },
        4 => Rect {
            x0,
            y0: rh - y1,
            x1,
            y1: rh - y0,
        },
        5 => Rect {
            x0: y0,
            y0: x0,
            x1: y1,
            y1: x1,
        },
        6 => Rect {
            x0: y0,
            y0: rh - x1,
            x1: y1,
            y1: rh - x0,
        },
        7 => Rect {
            x0: rw - y1,
            y0: rh - x1,
            x1: rw - y0,
            y1: rh - x0,
        },
        8 => Rect {
            x0: rw - y1,
            y0: x0,
            x1: rw - y0,
            y1: x1,
        },
        _ => r,
    }
}

/// Crops `raw` (stored orientation) to the oriented-space rectangle `r` and
/// orients the result.
fn crop_and_orient(raw: RgbImage, r: Rect, orientation: u8) -> RgbImage {
    let (rw, rh) = raw.dimensions();
    let rr = rect_to_raw(r, orientation, rw, rh);
    let cropped = if rr.x0 == 0 && rr.y0 == 0 && rr.x1 == rw && rr.y1 == rh {
        raw
    } else {
        imageops::crop_imm(&raw, rr.x0, rr.y0, rr.w(), rr.h()).to_image()
    };
    apply_orientation(cropped, orientation)
}

/// Crops an already decoded upright image to a bounding box (same clamping
/// rules as decoding); `path` names the source in errors.
pub fn crop_bbox(img: &RgbImage, bbox: &BBox, path: &Path) -> Result<RgbImage> {
    let (w, h) = img.dimensions();
    let r = bbox_rect(bbox, 1.0, 1.0, w, h).ok_or_else(|| bbox_error(path, bbox, w, h))?;
    Ok(imageops::crop_imm(img, r.x0, r.y0, r.w(), r.h()).to_image())
}

/// True when an Adobe APP14 marker precedes the first scan: the CMYK samples
/// are then stored inverted (Photoshop convention).
fn has_adobe_marker(bytes: &[u8]) -> bool {
    let mut i = 2usize;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return false;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            return false;
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if marker == 0xEE && bytes.get(i + 4..i + 9) == Some(b"Adobe") {
            return true;
        }
        i += 2 + len;
    }
    false
}

fn decode_jpeg(
    bytes: &[u8],
    path: &Path,
    bbox: Option<&BBox>,
    hint: SizeHint,
    opts: &DecodeOptions,
) -> Result<Decoded> {
    let mut d = jpeg_decoder::Decoder::new(bytes);
    d.read_info().map_err(|e| dec_err(path, e))?;
    let info = d.info().ok_or_else(|| dec_err(path, "no frame header"))?;
    let (rw, rh) = (u32::from(info.width), u32::from(info.height));
    let orientation = d.exif_data().map_or(1, orientation_from_exif);
    let (fw, fh) = oriented_dims(rw, rh, orientation);
    check_limit(path, fw, fh, opts)?;
    if rw == 0 || rh == 0 {
        return Err(dec_err(path, "zero image dimension"));
    }
    d.set_max_decoding_buffer_size(
        usize::try_from(opts.max_pixels.saturating_mul(4)).unwrap_or(usize::MAX),
    );

    // The region in oriented full-resolution coordinates.
    let full = Rect {
        x0: 0,
        y0: 0,
        x1: fw,
        y1: fh,
    };
    let region = match bbox {
        Some(b) => bbox_rect(b, 1.0, 1.0, fw, fh).ok_or_else(|| bbox_error(path, b, fw, fh))?,
        None => full,
    };

    // Pick the DCT scale.
    let mut denom = 1u32;
    if opts.reduced_scale && info.coding_process != jpeg_decoder::CodingProcess::Lossless {
        let ratio = hint.required_ratio(region.w(), region.h());
        for cand in [8u32, 4, 2] {
            if 1.0 / f64::from(cand) >= ratio {
                denom = cand;
                break;
            }
        }
    }
    let (ow, oh) = if denom > 1 {
        let sw = u16::try_from(rw.div_ceil(denom)).unwrap_or(u16::MAX);
        let sh = u16::try_from(rh.div_ceil(denom)).unwrap_or(u16::MAX);
        let (ow, oh) = d.scale(sw, sh).map_err(|e| dec_err(path, e))?;
        (u32::from(ow), u32::from(oh))
    } else {
        (rw, rh)
    };
    if (ow, oh) == (rw, rh) {
        denom = 1;
    }

    let pixels = d.decode().map_err(|e| dec_err(path, e))?;
    let n = (ow as usize) * (oh as usize);
    let rgb: Vec<u8> = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => pixels,
        jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&v| [v, v, v]).collect(),
        jpeg_decoder::PixelFormat::L16 => pixels
            .chunks_exact(2)
            .map(|c| (u16::from_ne_bytes([c[0], c[1]]) >> 8) as u8)
            .flat_map(|v| [v, v, v])
            .collect(),
        jpeg_decoder::PixelFormat::CMYK32 => {
            // jpeg-decoder returns ink amounts for Adobe files and inverted
            // values for files without the Adobe marker.
            let adobe = has_adobe_marker(bytes);
            pixels
                .chunks_exact(4)
                .flat_map(|p| {
                    let (c, m, y, k) = if adobe {
                        (255 - p[0], 255 - p[1], 255 - p[2], 255 - p[3])
                    } else {
                        (p[0], p[1], p[2], p[3])
                    };
                    // Here (c, m, y, k) hold 255 - ink.
                    let mul = |a: u8, b: u8| ((u16::from(a) * u16::from(b) + 127) / 255) as u8;
                    [mul(c, k), mul(m, k), mul(y, k)]
                })
                .collect()
        }
    };
    if rgb.len() < n * 3 {
        return Err(dec_err(path, "decoder returned too few pixels"));
    }
    let raw = RgbImage::from_raw(ow, oh, rgb)
        .ok_or_else(|| dec_err(path, "decoder returned a buffer of the wrong size"))?;

    // The region in oriented coordinates of the scaled image.
    let (sfw, sfh) = oriented_dims(ow, oh, orientation);
    let scaled_region = match bbox {
        Some(b) if denom > 1 => {
            let (sx, sy) = (
                f64::from(sfw) / f64::from(fw),
                f64::from(sfh) / f64::from(fh),
            );
            bbox_rect(b, sx, sy, sfw, sfh).ok_or_else(|| bbox_error(path, b, fw, fh))?
        }
        Some(_) => region,
        None => Rect {
            x0: 0,
            y0: 0,
            x1: sfw,
            y1: sfh,
        },
    };
    Ok(Decoded {
        image: crop_and_orient(raw, scaled_region, orientation),
        scale_denom: denom,
        full_width: fw,
        full_height: fh,
        orientation,
    })
}

fn decode_generic(
    bytes: &[u8],
    format: ImageFormat,
    path: &Path,
    bbox: Option<&BBox>,
    opts: &DecodeOptions,
) -> Result<Decoded> {
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format.to_image_crate());
    let mut limits = image::Limits::no_limits();
    limits.max_alloc = Some(opts.max_pixels.saturating_mul(16).max(1 << 20));
    reader.limits(limits);
    let mut dec = reader.into_decoder().map_err(|e| dec_err(path, e))?;
    let (rw, rh) = dec.dimensions();
    let orientation = dec.orientation().map_or(1, |o| o.to_exif());
    let (fw, fh) = oriented_dims(rw, rh, orientation);
    check_limit(path, fw, fh, opts)?;
    let dynimg = DynamicImage::from_decoder(dec).map_err(|e| dec_err(path, e))?;
    let raw = to_rgb8(dynimg, opts.alpha);
    let region = match bbox {
        Some(b) => bbox_rect(b, 1.0, 1.0, fw, fh).ok_or_else(|| bbox_error(path, b, fw, fh))?,
        None => Rect {
            x0: 0,
            y0: 0,
            x1: fw,
            y1: fh,
        },
    };
    Ok(Decoded {
        image: crop_and_orient(raw, region, orientation),
        scale_denom: 1,
        full_width: fw,
        full_height: fh,
        orientation,
    })
}

/// Converts any decoded image to RGB8, handling alpha as `alpha` says.
pub fn to_rgb8(img: DynamicImage, alpha: AlphaMode) -> RgbImage {
    match (img, alpha) {
        (DynamicImage::ImageRgb8(i), _) => i,
        (img, AlphaMode::Composite(bg)) if img.color().has_alpha() => {
            let rgba = img.to_rgba8();
            let (w, h) = rgba.dimensions();
            let mut out = RgbImage::new(w, h);
            for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
                let a = u32::from(p.0[3]);
                for ((oc, &pc), &bc) in o.0.iter_mut().zip(&p.0[..3]).zip(&bg) {
                    *oc = ((u32::from(pc) * a + u32::from(bc) * (255 - a) + 127) / 255) as u8;
                }
            }
            out
        }
        (img, _) => img.to_rgb8(),
    }
}
