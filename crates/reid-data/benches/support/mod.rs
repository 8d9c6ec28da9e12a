//! Inputs of the data-pipeline benchmark: the lion photos of the shared data
//! folder and large photo-like JPEGs made here.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use reid_data::loaders::{LoadOptions, load_folders};

/// The lion photos of the shared data folder
/// (`reid_core::paths::shared_dir`), or `Err` with the folder that was
/// looked at when it is absent.
pub fn lion_files() -> Result<Vec<PathBuf>, PathBuf> {
    let root = reid_core::paths::shared_dir().join("datasets/lion");
    match load_folders(&root, &LoadOptions::skip()) {
        Ok((ds, _)) if !ds.is_empty() => Ok(ds.records.into_iter().map(|r| r.path).collect()),
        _ => Err(root),
    }
}

/// A photo-like 2000×1500 image: smooth gradients, stripes and seeded noise,
/// so that JPEG compression behaves as on real photos.
pub fn photo_like(seed: u32) -> RgbImage {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    RgbImage::from_fn(2000, 1500, |x, y| {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let n = (s >> 27) as f32; // 0..32 noise
        let fx = x as f32 / 2000.0;
        let fy = y as f32 / 1500.0;
        let k = 1.0 + seed as f32 * 0.37;
        let r = 128.0 + 90.0 * (k * 9.0 * fx + 3.0 * fy).sin() + n;
        let g = 100.0 + 80.0 * (k * 5.0 * fy * fx + 2.0).cos() + n;
        let b = 60.0 + 120.0 * fy * (1.0 + (30.0 * fx).sin()) / 2.0 + n;
        Rgb([
            r.clamp(0.0, 255.0) as u8,
            g.clamp(0.0, 255.0) as u8,
            b.clamp(0.0, 255.0) as u8,
        ])
    })
}

/// Writes `n` photo-like JPEGs (quality 90) into `dir`.
pub fn large_jpegs(dir: &Path, n: u32) -> Result<Vec<PathBuf>, image::ImageError> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("large_{i:02}.jpg"));
            let f = std::io::BufWriter::new(std::fs::File::create(&p)?);
            image::codecs::jpeg::JpegEncoder::new_with_quality(f, 90)
                .encode_image(&photo_like(i))?;
            Ok(p)
        })
        .collect()
}
