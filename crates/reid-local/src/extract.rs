//! Features of an in-memory image or of an image file (through the cache).

use std::path::Path;

use image::RgbImage;
use reid_data::SizeHint;
use reid_data::decode::decode_bytes;

use crate::cache::{CacheKey, CacheStatus, FeatureCache};
use crate::error::{LocalError, Result};
use crate::features::{DESCRIPTOR_LEN, Features};
use crate::params::{ValidExtractParams, ValidLocalParams};
use crate::prep::gray_scaled;
use crate::sift;

/// Keypoints and descriptors of an RGB image: downscaled so that its longer
/// side is at most [`crate::ExtractParams::max_side`], converted to luma,
/// then SIFT / RootSIFT. Deterministic; runs on the calling thread.
pub fn extract_image(img: &RgbImage, params: &ValidExtractParams) -> Result<Features> {
    extract_sized(img, img.dimensions(), params)
}

/// [`extract_image`] recording `original` as the original size.
fn extract_sized(
    img: &RgbImage,
    original: (u32, u32),
    params: &ValidExtractParams,
) -> Result<Features> {
    let p = params.get();
    let gray = gray_scaled(img, p.max_side)?;
    let (keypoints, descriptors) = sift::extract(&gray, p);
    Ok(Features::from_checked(
        (gray.w as u32, gray.h as u32),
        original,
        DESCRIPTOR_LEN,
        keypoints,
        descriptors,
    ))
}

/// Features of the image file at `path`, read from `cache` when it holds
/// them. A damaged, foreign or other-version cache file is recomputed and
/// rewritten (reported as [`CacheStatus::Recomputed`]); a missing or
/// undecodable image, or a cache that cannot be written, is an error naming
/// the file.
pub fn extract_file(
    path: &Path,
    params: &ValidLocalParams,
    cache: Option<&FeatureCache>,
) -> Result<(Features, CacheStatus)> {
    let bytes = std::fs::read(path).map_err(|e| LocalError::io(path, e))?;
    let key = cache.map(|_| CacheKey::new(&bytes, params));
    let mut status = CacheStatus::Uncached;
    if let (Some(c), Some(k)) = (cache, key.as_ref()) {
        let found;
        (found, status) = c.lookup(k);
        if let Some(f) = found {
            return Ok((f, status));
        }
    }
    let side = params.extract().get().max_side;
    let decoded = decode_bytes(
        &bytes,
        path,
        None,
        SizeHint::longer_side(side),
        params.decode(),
    )?;
    // The original size is the whole (oriented) image at full resolution,
    // also when a JPEG was decoded at reduced scale.
    let features = extract_sized(
        &decoded.image,
        (decoded.full_width, decoded.full_height),
        params.extract(),
    )?;
    if let (Some(c), Some(k)) = (cache, key.as_ref()) {
        c.store(k, &features)?;
    }
    Ok((features, status))
}
