//! Tiny-image descriptors: each photo shrunk to a `side × side` grey
//! thumbnail, centred to mean zero and scaled to unit length, so that the
//! cosine of two photos is the correlation of their thumbnails.
//!
//! No network and no weights: what it keeps is the layout of light and dark
//! (a Holstein's black and white patches, a blaze, a collar), which an
//! ImageNet classifier's last layer, trained to say "cow" whatever the
//! patches, largely discards. On cattle.csv's database (cow faces), with
//! within-identity whitening fitted on four fifths of the videos and the
//! other fifth searched against them, the nearest photo is of the right cow
//! for about 0.41 of the photos with 16 × 16 thumbnails, 0.30 with
//! MobileNetV2's embedding and 0.46 with both concatenated. It is no use on
//! its own for photos whose framing varies; the pipeline decides from the
//! database's episodes whether to append it to a backbone's embedding
//! (`reid_pipeline::choose_features`).
//!
//! ```
//! use reid_backbone::ParamGuard;
//! use reid_backbone::tiny::{TinyParams, tiny_descriptor};
//!
//! let p = TinyParams::default().side(4).check()?;
//! // Left half black, right half white.
//! let img = image::RgbImage::from_fn(8, 8, |x, _| image::Rgb([if x < 4 { 0 } else { 255 }; 3]));
//! let d = tiny_descriptor(&img, &p)?;
//! assert_eq!(d.len(), 16);
//! let norm: f32 = d.iter().map(|v| v * v).sum::<f32>().sqrt();
//! assert!((norm - 1.0).abs() < 1e-6);
//! assert!(d[0] < 0.0 && d[3] > 0.0); // dark on the left, light on the right
//! # Ok::<(), reid_backbone::BackboneError>(())
//! ```

use std::path::Path;

use image::RgbImage;
use ndarray::Array2;
use rayon::prelude::*;
use reid_core::ParamGuard;
use reid_core::Record;
use reid_data::PreprocessParams;
use reid_data::decode::{DecodeOptions, SizeHint, decode_record};

use crate::error::{BackboneError, Result};
use crate::pipeline::Embeddings;

/// Tiny-image settings, unchecked; [`reid_core::ParamGuard::check`] gives
/// [`ValidTinyParams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TinyParams {
    side: u32,
}

/// Checked tiny-image settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidTinyParams(TinyParams);

impl Default for TinyParams {
    /// 16 × 16 thumbnails (256 dimensions).
    fn default() -> Self {
        TinyParams { side: 16 }
    }
}

impl TinyParams {
    reid_core::setters! {
        /// Side of the thumbnail in pixels (2 to 64).
        side: u32,
    }
}

reid_core::param_guard!(TinyParams => ValidTinyParams, BackboneError, |p| {
    if !(2..=64).contains(&p.side) {
        return Err(BackboneError::InvalidParam {
            name: "side",
            reason: format!("{}; use 2 to 64", p.side),
        });
    }
    Ok(())
});

impl ValidTinyParams {
    reid_core::getters! {
        /// Side of the thumbnail in pixels.
        side: u32,
    }

    /// Dimensions of a descriptor (`side²`).
    pub fn dim(&self) -> usize {
        (self.0.side * self.0.side) as usize
    }

    /// The descriptor's name, `tiny16` for 16 × 16.
    pub fn name(&self) -> String {
        format!("tiny{}", self.0.side)
    }
}

/// The descriptor of one image: the image resized to `side × side` with an
/// antialiased bilinear (triangle) filter whose support widens with the
/// reduction, as Pillow's `BILINEAR` (rounded to 8 bits per channel;
/// `reid_data::Preprocess::resize`), then grey by the ITU-R BT.601 weights,
/// minus its mean, divided by its length.
/// A thumbnail of one flat grey gives zeros (it says nothing), never NaN.
///
/// Errors: an image with no pixels.
pub fn tiny_descriptor(img: &RgbImage, params: &ValidTinyParams) -> Result<Vec<f32>> {
    // reid-data's exact resize to `side × side` (antialiased bilinear),
    // without its normalisation.
    let resizer = PreprocessParams::new(params.side()).check()?;
    let thumb = resizer.resize(img).map_err(|e| BackboneError::Shape {
        what: "tiny-image input".into(),
        expected: "an image of at least 1 × 1 pixels".into(),
        got: format!("{} × {}: {e}", img.width(), img.height()),
    })?;
    let mut v: Vec<f32> = thumb
        .as_raw()
        .chunks_exact(3)
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .collect();
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    v.iter_mut().for_each(|x| *x -= mean);
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    // 8-bit grey levels: a spread below a thousandth of a level is rounding.
    if norm > 1e-3 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else {
        v.iter_mut().for_each(|x| *x = 0.0);
    }
    Ok(v)
}

/// The tiny descriptors of `records` (each cropped to its bounding box),
/// decoded in parallel; rows in the records' order, ids their `image_id`s.
///
/// Errors: the first record (in order) that cannot be read or decoded,
/// naming its file.
pub fn tiny_embeddings(
    records: &[Record],
    params: &ValidTinyParams,
    opts: &DecodeOptions,
) -> Result<Embeddings> {
    // JPEGs may be decoded at a reduced scale while both sides stay at
    // four times the thumbnail's, which leaves the filtered thumbnail as
    // it would be from the full image but for rounding.
    let hint = SizeHint::AtLeast {
        width: 4 * params.side(),
        height: 4 * params.side(),
    };
    let rows: Vec<Result<Vec<f32>>> = records
        .par_iter()
        .map(|r| {
            let d = decode_record(r, hint, opts)?;
            tiny_descriptor(&d.image, params).map_err(|e| with_path(e, &r.path))
        })
        .collect();
    let mut matrix = Array2::<f32>::zeros((records.len(), params.dim()));
    for (i, row) in rows.into_iter().enumerate() {
        let row = row?;
        matrix
            .row_mut(i)
            .assign(&ndarray::ArrayView1::from(&row[..]));
    }
    Ok(Embeddings {
        ids: records.iter().map(|r| r.image_id.clone()).collect(),
        matrix,
    })
}

/// A shape error from one image, naming its file.
fn with_path(e: BackboneError, path: &Path) -> BackboneError {
    match e {
        BackboneError::Shape {
            what,
            expected,
            got,
        } => BackboneError::Shape {
            what: format!("{what} {}", path.display()),
            expected,
            got,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(side: u32) -> ValidTinyParams {
        TinyParams::default().side(side).check().unwrap()
    }

    /// An 8 × 1 row halved to 4 × 1: Pillow's bilinear filter at a 2×
    /// reduction weighs the four nearest source pixels 1/8, 3/8, 3/8, 1/8
    /// (edges renormalised), values worked out by hand.
    #[test]
    fn the_filter_and_the_centring_by_hand() {
        // Grey levels 0, 80, 0, 80, 160, 240, 160, 240 (R = G = B).
        let levels = [0u8, 80, 0, 80, 160, 240, 160, 240];
        let img = RgbImage::from_fn(8, 2, |x, _| image::Rgb([levels[x as usize]; 3]));
        let p4 = TinyParams::default().side(4).check().unwrap();
        let d = tiny_descriptor(&img, &p4).unwrap();
        assert_eq!(d.len(), 16);
        // Column 0: source pixels 0, 1, 2 at weights 3/8, 3/8, 1/8, over
        // 7/8 = (0 + 30 + 0) / (7/8) = 34.3 -> 34; column 1: 1/8, 3/8, 3/8,
        // 1/8 of 80, 0, 80, 160 = 10 + 0 + 30 + 20 = 60; column 2: of 80,
        // 160, 240, 160 = 10 + 60 + 90 + 20 = 180; column 3: pixels 5, 6, 7
        // (240, 160, 240) at 1/8, 3/8, 3/8 over 7/8 = (30 + 60 + 90) / (7/8)
        // = 205.7 -> 206. (Pillow: 34, 60, 180, 206.)
        let thumb = [34.0f32, 60.0, 180.0, 206.0];
        let mean = thumb.iter().sum::<f32>() / 4.0;
        let norm = (4.0 * thumb.iter().map(|t| (t - mean).powi(2)).sum::<f32>()).sqrt();
        for row in 0..4 {
            for col in 0..4 {
                let want = (thumb[col] - mean) / norm;
                assert!(
                    (d[row * 4 + col] - want).abs() < 2e-6,
                    "{row},{col}: {} vs {want}",
                    d[row * 4 + col]
                );
            }
        }
    }

    /// Grey by BT.601; brightness and contrast changes leave the descriptor
    /// alone (up to 8-bit rounding); a flat image gives zeros.
    #[test]
    fn colour_gain_offset_and_flat() {
        let base = RgbImage::from_fn(32, 32, |x, y| {
            image::Rgb([
                (x * 7 % 200) as u8,
                (y * 5 % 200) as u8,
                ((x + y) * 3 % 200) as u8,
            ])
        });
        let brighter = RgbImage::from_fn(32, 32, |x, y| {
            let px = base.get_pixel(x, y).0;
            image::Rgb(px.map(|c| (f32::from(c) * 0.5 + 40.0).round() as u8))
        });
        let a = tiny_descriptor(&base, &p(8)).unwrap();
        let b = tiny_descriptor(&brighter, &p(8)).unwrap();
        let cos: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!(cos > 0.995, "{cos}");
        // Pure red 255 is grey 76.2 and pure blue 29.1: a red left half on
        // a blue right half is dark-on-the-right.
        let rb = RgbImage::from_fn(16, 16, |x, _| {
            image::Rgb(if x < 8 { [255, 0, 0] } else { [0, 0, 255] })
        });
        let d = tiny_descriptor(&rb, &p(2)).unwrap();
        assert!(
            d[0] > 0.0 && d[1] < 0.0 && (d[0] + d[1]).abs() < 1e-6,
            "{d:?}"
        );
        assert!((d[0] - 0.5).abs() < 1e-6);
        let flat = RgbImage::from_pixel(20, 10, image::Rgb([90, 90, 90]));
        assert!(
            tiny_descriptor(&flat, &p(4))
                .unwrap()
                .iter()
                .all(|&v| v == 0.0)
        );
    }

    #[test]
    fn settings_are_checked() {
        for bad in [0, 1, 65] {
            let e = TinyParams::default().side(bad).check().unwrap_err();
            assert!(e.to_string().contains("side"), "{e}");
        }
        assert_eq!(p(16).dim(), 256);
        assert_eq!(p(16).name(), "tiny16");
    }

    /// Files: rows in the records' order, a bounding box honoured, a
    /// missing or corrupt file named in the error.
    #[test]
    fn records_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let left = dir.path().join("left.png");
        let right = dir.path().join("right.png");
        let half = |light_left: bool| {
            RgbImage::from_fn(40, 40, move |x, _| {
                image::Rgb([if (x < 20) == light_left { 230 } else { 20 }; 3])
            })
        };
        half(true).save(&left).unwrap();
        half(false).save(&right).unwrap();
        let recs = vec![
            Record::new("a", &left),
            Record::new("b", &right),
            // The box holds only the light half of `right`: flat, zeros.
            {
                let mut r = Record::new("c", &right);
                r.bbox = Some(reid_core::BBox {
                    x: 20.0,
                    y: 0.0,
                    w: 20.0,
                    h: 40.0,
                });
                r
            },
        ];
        let e = tiny_embeddings(&recs, &p(4), &DecodeOptions::default()).unwrap();
        assert_eq!(e.ids, ["a", "b", "c"]);
        let (a, b) = (e.matrix.row(0), e.matrix.row(1));
        assert!(
            (a.dot(&b) + 1.0).abs() < 1e-5,
            "mirror images anticorrelate"
        );
        assert!(e.matrix.row(2).iter().all(|&v| v == 0.0));

        let missing = vec![Record::new("m", dir.path().join("missing.jpg"))];
        let err = tiny_embeddings(&missing, &p(4), &DecodeOptions::default()).unwrap_err();
        assert!(err.to_string().contains("missing.jpg"), "{err}");
        let corrupt = dir.path().join("corrupt.jpg");
        std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 not a jpeg").unwrap();
        let err = tiny_embeddings(
            &[Record::new("c", &corrupt)],
            &p(4),
            &DecodeOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("corrupt.jpg"), "{err}");
    }
}
