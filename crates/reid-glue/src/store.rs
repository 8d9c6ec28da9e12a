//! The learned keypoints of many image files, computed once and cached on
//! disk.
//!
//! Each image is decoded (EXIF orientation applied), downscaled so that
//! its longer side is at most [`StoreParams::max_side`], and run through the
//! extractor; images of the same size go through the network together, in
//! batches of [`StoreParams::batch_size`]. The result of each image is kept
//! in `reid-local`'s feature cache ([`reid_local::FeatureCache`]: a
//! versioned, checksummed file written atomically, keyed by the SHA-256 of
//! the extractor, its settings, the decoding settings and the image bytes),
//! so a second run reads them back; a damaged cache file is recomputed and
//! rewritten.

use std::collections::BTreeMap;
use std::path::Path;

use image::RgbImage;
use rayon::prelude::*;
use reid_data::decode::{DecodeOptions, decode_bytes};
use reid_data::{DataError, SizeHint};
use reid_local::{CacheKey, CacheStatus, FeatureCache, Features, downscale_to_fit};
use tch::Tensor;

use crate::error::{GlueError, Result};
use crate::extractor::{Extractor, image_tensor};

/// Version of the store's own processing (decoding, resizing, conversion to
/// features), part of every cache key: bump it when a change here changes
/// the features.
pub const STORE_VERSION: u32 = 1;

/// How images reach the extractor.
#[derive(Debug, Clone)]
pub struct StoreParams {
    max_side: u32,
    batch_size: usize,
    decode: DecodeOptions,
}

impl Default for StoreParams {
    fn default() -> Self {
        StoreParams {
            max_side: 512,
            batch_size: 8,
            decode: DecodeOptions::default(),
        }
    }
}

impl StoreParams {
    reid_core::setters! {
        /// Longer image side the extractor sees (images are downscaled, never
        /// enlarged); 32 to 4096, default 512 (WildFusion's local matchers see
        /// 512-pixel images).
        max_side: u32,
        /// Images of one size per network call; 1 to 256, default 8.
        batch_size: usize,
        /// How image files are decoded.
        decode: DecodeOptions,
    }
}

/// [`StoreParams`], checked.
#[derive(Debug, Clone)]
pub struct ValidStoreParams(StoreParams);

reid_core::param_guard!(StoreParams => ValidStoreParams, GlueError, |p| {
    if !(32..=4096).contains(&p.max_side) {
        return Err(GlueError::param(
            "max_side",
            format!("must be in 32..=4096, got {}", p.max_side),
        ));
    }
    if !(1..=256).contains(&p.batch_size) {
        return Err(GlueError::param(
            "batch_size",
            format!("must be in 1..=256, got {}", p.batch_size),
        ));
    }
    Ok(())
});

impl ValidStoreParams {
    /// The checked values.
    pub fn get(&self) -> &StoreParams {
        &self.0
    }

    fn key_bytes(&self) -> Vec<u8> {
        let mut v = self.0.max_side.to_le_bytes().to_vec();
        v.extend_from_slice(&self.0.decode.key_bytes());
        v
    }
}

/// The features of a list of images, in order, and how each was obtained.
#[derive(Debug, Clone)]
pub struct GlueStore {
    features: Vec<Features>,
    status: Vec<CacheStatus>,
}

/// What the first pass found for one image: its features from the cache,
/// or the image waiting for the network.
type Loaded = (Option<Features>, CacheStatus, Option<Pending>);

/// One image waiting for the network.
struct Pending {
    index: usize,
    image: RgbImage,
    original: (u32, u32),
    key: Option<CacheKey>,
}

impl GlueStore {
    /// The features of every image in `paths` (through `cache` when given),
    /// calling `progress(done, total)` as images finish. A missing or
    /// undecodable image is an error naming the file; nothing is skipped.
    pub fn extract<P, F>(
        paths: &[P],
        extractor: &dyn Extractor,
        params: &ValidStoreParams,
        cache: Option<&FeatureCache>,
        mut progress: F,
    ) -> Result<Self>
    where
        P: AsRef<Path> + Sync,
        F: FnMut(usize, usize),
    {
        let total = paths.len();
        let mut key_params = extractor.key_bytes();
        key_params.extend_from_slice(&params.key_bytes());
        let namespace = format!("reid-glue/{}", extractor.name());
        let side = params.get().max_side;

        // Read, look up and decode in parallel; the network runs after.
        let loaded: Vec<Result<Loaded>> = paths
            .par_iter()
            .enumerate()
            .map(|(index, path)| {
                let path = path.as_ref();
                let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
                let key = cache
                    .map(|_| CacheKey::from_parts(&namespace, STORE_VERSION, &key_params, &bytes));
                let mut status = CacheStatus::Uncached;
                if let (Some(c), Some(k)) = (cache, key.as_ref()) {
                    let found;
                    (found, status) = c.lookup(k);
                    if found.is_some() {
                        return Ok((found, status, None));
                    }
                }
                let decoded = decode_bytes(
                    &bytes,
                    path,
                    None,
                    SizeHint::longer_side(side),
                    &params.get().decode,
                )?;
                let image = downscale_to_fit(&decoded.image, side)?.into_owned();
                let pending = Pending {
                    index,
                    image,
                    original: (decoded.full_width, decoded.full_height),
                    key,
                };
                Ok((None, status, Some(pending)))
            })
            .collect();

        let mut features: Vec<Option<Features>> = vec![None; total];
        let mut status = Vec::with_capacity(total);
        let mut by_size: BTreeMap<(u32, u32), Vec<Pending>> = BTreeMap::new();
        let mut done = 0;
        for (i, item) in loaded.into_iter().enumerate() {
            let (f, s, p) = item?;
            status.push(s);
            if let Some(f) = f {
                features[i] = Some(f);
                done += 1;
                progress(done, total);
            }
            if let Some(p) = p {
                by_size.entry(p.image.dimensions()).or_default().push(p);
            }
        }
        for ((w, h), group) in by_size {
            for chunk in group.chunks(params.get().batch_size) {
                let batch = Tensor::cat(
                    &chunk
                        .iter()
                        .map(|p| image_tensor(&p.image, extractor.device()))
                        .collect::<Vec<_>>(),
                    0,
                );
                let out = extractor.extract_batch(&batch)?;
                if out.len() != chunk.len() {
                    return Err(GlueError::Shape {
                        what: format!("{} output", extractor.name()),
                        expected: format!("{} images", chunk.len()),
                        got: format!("{}", out.len()),
                    });
                }
                for (p, k) in chunk.iter().zip(out) {
                    let f = k.to_features((w, h), p.original)?;
                    if let (Some(c), Some(key)) = (cache, p.key.as_ref()) {
                        c.store(key, &f)?;
                    }
                    features[p.index] = Some(f);
                    done += 1;
                    progress(done, total);
                }
            }
        }
        // Every image was either read from the cache or extracted above.
        let features = features
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                f.ok_or_else(|| GlueError::Shape {
                    what: format!("features of image {i}"),
                    expected: "extracted or cached".into(),
                    got: "neither".into(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GlueStore { features, status })
    }

    /// The features, one per image, in the order of the paths.
    pub fn features(&self) -> &[Features] {
        &self.features
    }

    /// How each image's features were obtained.
    pub fn cache_status(&self) -> &[CacheStatus] {
        &self.status
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }
}
