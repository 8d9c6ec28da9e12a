//! The extraction pipeline: records → prefetched parallel batches → backbone
//! → [`Embeddings`], with optional test-time augmentation and an on-disk cache.
//!
//! ```no_run
//! use reid_backbone::backbone::BackboneBuilder;
//! use reid_backbone::pipeline::{ExtractParams, extract};
//! use reid_core::ParamGuard;
//!
//! let (ds, _) = reid_data::loaders::load_folders("photos".as_ref(), &Default::default())?;
//! let bb = BackboneBuilder::new("efficientnet_lite2").build()?;
//! let params = ExtractParams::default().batch_size(32).flip(true).cache_dir("emb-cache").check()?;
//! let emb = extract(&bb, &ds.records, &params, |p| eprintln!("{}/{}", p.done, p.total))?;
//! println!("{} embeddings of width {}", emb.ids.len(), emb.matrix.ncols());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ndarray::Array2;
use rayon::prelude::*;
use reid_core::ParamGuard;
use reid_data::{BatchIter, PrefetchParams, Record};
use serde::Serialize;
use tch::Tensor;

use crate::backbone::{Backbone, array4_to_tensor, tensor_to_array2};
use crate::cache::{EmbeddingCache, Lookup};
use crate::error::{BackboneError, Result};

/// Embeddings of a set of records: row `i` of `matrix` (L2-normalised)
/// belongs to `ids[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// Record ids (`image_id`), in input order.
    pub ids: Vec<String>,
    /// `[N, D]`, rows L2-normalised.
    pub matrix: Array2<f32>,
}

/// Test-time augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Tta {
    /// Also embed the mirror image and average.
    pub flip: bool,
    /// Embed five crops (four corners and centre) of the image resized to
    /// `8/7` of the input size, and average.
    pub five_crop: bool,
}

/// Extraction parameters, unchecked: a builder with [`Default`] (batches of
/// 32, two prefetched, no TTA, no cache) and one setter per setting;
/// [`ParamGuard::check`] gives the [`ValidExtractParams`] that [`extract`]
/// takes.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractParams {
    batch_size: usize,
    prefetch: usize,
    tta: Tta,
    cache_dir: Option<PathBuf>,
}

/// The batch size to extract with on `device` when none is asked for: 8 on
/// the CPU, 32 on a GPU. On the CPU smaller batches are faster (2 threads,
/// 128 lion photos, files → embeddings, images/s at batch 32 / 16 / 8:
/// MobileNetV2 bf16 73.6 / 93.3 / 106.3, f32 47.8 / 62.0 / 57.3;
/// EfficientNet-Lite2 bf16 32.6 / 38.5 / 45.5; ConvNeXt-T bf16 22.6 / 20.5 /
/// 21.1): the activations of a batch of 32 are larger than glibc's 32 MB
/// mmap threshold, so every one of them is mapped and zeroed afresh (a third
/// of the samples in a profile), and smaller ones stay in cache.
/// [`ExtractParams::default`] keeps 32, for any device.
pub fn default_batch_size(device: tch::Device) -> usize {
    match device {
        tch::Device::Cpu => 8,
        _ => 32,
    }
}

/// Checked extraction parameters (from [`ParamGuard::check`] on
/// [`ExtractParams`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidExtractParams(ExtractParams);

impl Default for ExtractParams {
    fn default() -> Self {
        ExtractParams {
            batch_size: 32,
            prefetch: 2,
            tta: Tta::default(),
            cache_dir: None,
        }
    }
}

impl ExtractParams {
    reid_core::setters! {
        /// Images per forward pass (1 to 65536).
        batch_size: usize,
        /// Batches prepared ahead of the model (1 to 64).
        prefetch: usize,
    }

    /// Flip averaging.
    #[must_use]
    pub fn flip(mut self, on: bool) -> Self {
        self.tta.flip = on;
        self
    }

    /// Five-crop averaging.
    #[must_use]
    pub fn five_crop(mut self, on: bool) -> Self {
        self.tta.five_crop = on;
        self
    }

    /// Keeps embeddings in `dir` and reuses them on later runs.
    #[must_use]
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }
}

reid_core::param_guard!(ExtractParams => ValidExtractParams, BackboneError, |p| {
    if !(1..=65_536).contains(&p.batch_size) {
        return Err(BackboneError::InvalidParam {
            name: "batch_size",
            reason: format!("{}; use 1 to 65536", p.batch_size),
        });
    }
    if !(1..=64).contains(&p.prefetch) {
        return Err(BackboneError::InvalidParam {
            name: "prefetch",
            reason: format!("{}; use 1 to 64", p.prefetch),
        });
    }
    Ok(())
});

impl ValidExtractParams {
    reid_core::getters! {
        /// Images per forward pass.
        batch_size: usize,
        /// Batches prepared ahead of the model.
        prefetch: usize,
        /// The test-time augmentation.
        tta: Tta,
    }

    /// The embedding cache folder, if any.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.0.cache_dir.as_deref()
    }
}

/// Progress of [`extract`], reported after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Records finished (computed or from the cache).
    pub done: usize,
    /// Records in all.
    pub total: usize,
    /// Of `done`, taken from the cache.
    pub cached: usize,
    /// Damaged cache entries found (recomputed).
    pub damaged: usize,
    /// Time so far spent looking up, reading and writing the cache.
    pub cache_time: Duration,
    /// Time so far spent waiting for the background decoder (reading,
    /// decoding, resizing and normalising the images): the part of the
    /// decoding the network did not hide.
    pub decode_wait: Duration,
    /// Time so far spent in the network (with any test-time augmentation)
    /// and copying its output.
    pub network: Duration,
}

/// What an embedding depends on, as text: the model, its weights' sha256,
/// the preprocessing, pooling, precision and test-time augmentation of
/// `params` (not the device, nor where the weights file lies). Two runs
/// with equal texts give the same embeddings; it keys the embedding cache,
/// and a catalogue keys its stored embeddings by its hash.
pub fn embedding_config(bb: &Backbone, params: &ValidExtractParams) -> String {
    cache_config(bb, params.0.tta)
}

/// The configuration text that keys the cache.
fn cache_config(bb: &Backbone, tta: Tta) -> String {
    #[derive(Serialize)]
    struct Key<'a> {
        format: u32,
        backbone: &'a crate::backbone::BackboneInfo,
        tta: Tta,
    }
    let mut info = bb.info().clone();
    // The device does not change the embedding beyond rounding; the weights
    // are keyed by content, not by path.
    info.device = String::new();
    info.weights = None;
    serde_json::to_string_pretty(&Key {
        format: 1,
        backbone: &info,
        tta,
    })
    .unwrap_or_default()
}

/// Embeds `records` with `bb`, in input order.
///
/// Images are decoded and preprocessed on a background thread while the model
/// runs; with a cache, images already embedded with the same configuration are
/// read back instead. `progress` is called after every batch. The first image
/// that cannot be read or decoded stops the work with an error naming it
/// ([`extract_skipping`] skips it instead).
pub fn extract(
    bb: &Backbone,
    records: &[Record],
    params: &ValidExtractParams,
    progress: impl FnMut(Progress),
) -> Result<Embeddings> {
    Ok(extract_inner(bb, records, params, false, progress)?.0)
}

/// A record [`extract_skipping`] left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedImage {
    /// Its position in the records given.
    pub index: usize,
    /// Its `image_id`.
    pub image_id: String,
    /// Its file.
    pub path: PathBuf,
    /// Why (the decoder's error, naming the file).
    pub error: String,
}

/// [`extract`], leaving out the records whose image cannot be read or
/// decoded (a truncated JPEG, say) instead of stopping: the embeddings hold
/// the other records, in input order, and each one left out is returned
/// with its error. Other failures (the model, the cache) still stop it.
pub fn extract_skipping(
    bb: &Backbone,
    records: &[Record],
    params: &ValidExtractParams,
    progress: impl FnMut(Progress),
) -> Result<(Embeddings, Vec<SkippedImage>)> {
    extract_inner(bb, records, params, true, progress)
}

/// One ensemble embedding from the embeddings of the same records by
/// several models: each part's unit rows side by side, divided by `√k` for
/// `k` parts, so the rows stay unit length and the cosine of two images is
/// the mean of the parts' cosines. Each part's rows must be L2-normalised
/// (as [`extract`] returns them) and hold the same records in the same
/// order; an empty list, or parts of other records, is a
/// [`BackboneError::Shape`] naming the part and row.
///
/// ```
/// use ndarray::array;
/// use reid_backbone::pipeline::{Embeddings, concat_embeddings};
///
/// let ids = vec!["a".to_string(), "b".to_string()];
/// let one = Embeddings { ids: ids.clone(), matrix: array![[1.0, 0.0], [0.0, 1.0]] };
/// let two = Embeddings { ids, matrix: array![[0.6, 0.8], [0.6, 0.8]] };
/// let both = concat_embeddings(&[one, two])?;
/// // cos(a, b) = (0 + 1) / 2
/// let (a, b) = (both.matrix.row(0), both.matrix.row(1));
/// assert!((a.dot(&b) - 0.5).abs() < 1e-6);
/// # Ok::<(), reid_backbone::BackboneError>(())
/// ```
pub fn concat_embeddings(parts: &[Embeddings]) -> Result<Embeddings> {
    let Some(first) = parts.first() else {
        return Err(BackboneError::Shape {
            what: "ensemble embeddings".into(),
            expected: "at least one part".into(),
            got: "none".into(),
        });
    };
    for (k, p) in parts.iter().enumerate().skip(1) {
        if p.ids.len() != first.ids.len() || p.matrix.nrows() != first.matrix.nrows() {
            return Err(BackboneError::Shape {
                what: format!("ensemble part {k}"),
                expected: format!("{} rows, as part 0", first.ids.len()),
                got: format!("{} rows", p.ids.len()),
            });
        }
        if let Some(row) = p.ids.iter().zip(&first.ids).position(|(a, b)| a != b) {
            return Err(BackboneError::Shape {
                what: format!("ensemble part {k}, row {row}"),
                expected: format!("image {:?}, as part 0", first.ids[row]),
                got: format!("image {:?}", p.ids[row]),
            });
        }
    }
    let scale = 1.0 / (parts.len() as f32).sqrt();
    let views: Vec<_> = parts.iter().map(|p| p.matrix.view()).collect();
    let matrix =
        ndarray::concatenate(ndarray::Axis(1), &views).map_err(|e| BackboneError::Shape {
            what: "ensemble embeddings".into(),
            expected: "parts of equal row counts".into(),
            got: e.to_string(),
        })? * scale;
    Ok(Embeddings {
        ids: first.ids.clone(),
        matrix,
    })
}

fn extract_inner(
    bb: &Backbone,
    records: &[Record],
    params: &ValidExtractParams,
    skip_unreadable: bool,
    mut progress: impl FnMut(Progress),
) -> Result<(Embeddings, Vec<SkippedImage>)> {
    let p = &params.0;
    let dim = usize::try_from(bb.info().dim).unwrap_or(0);
    let n = records.len();
    let mut matrix = Array2::<f32>::zeros((n, dim));
    let mut state = Progress {
        done: 0,
        total: n,
        cached: 0,
        damaged: 0,
        cache_time: Duration::ZERO,
        decode_wait: Duration::ZERO,
        network: Duration::ZERO,
    };
    let cache_start = Instant::now();
    // 1. The cache: which records are done already?
    let cache = match &p.cache_dir {
        Some(dir) => Some(EmbeddingCache::open(dir, &cache_config(bb, p.tta), dim)?),
        None => None,
    };
    let mut keys: Vec<Option<String>> = vec![None; n];
    let mut todo: Vec<usize> = (0..n).collect();
    if let Some(cache) = &cache {
        let found: Vec<(String, Lookup)> = records
            .par_iter()
            .map(|r| {
                let key = EmbeddingCache::content_key(&r.path, r.bbox.as_ref())?;
                let hit = cache.get(&key);
                Ok((key, hit))
            })
            .collect::<Result<_>>()?;
        todo.clear();
        for (i, (key, hit)) in found.into_iter().enumerate() {
            match hit {
                Lookup::Hit(v) => {
                    matrix.row_mut(i).assign(&ndarray::ArrayView1::from(&v));
                    state.cached += 1;
                    state.done += 1;
                }
                Lookup::Damaged => {
                    state.damaged += 1;
                    todo.push(i);
                }
                Lookup::Miss => todo.push(i),
            }
            keys[i] = Some(key);
        }
        state.cache_time = cache_start.elapsed();
        if state.cached > 0 {
            progress(state);
        }
    }
    // 2. The rest, batch by batch.
    let five = p.tta.five_crop;
    let size = bb.info().input_size;
    let mut pre_cfg = bb.preprocess_params();
    if five {
        let big = u32::try_from((size * 8 + 6) / 7).unwrap_or(u32::MAX);
        pre_cfg.height = big;
        pre_cfg.width = big;
        if let reid_data::ResizeMode::ShorterSideCrop { shorter } = &mut pre_cfg.resize {
            *shorter = (big as f32 / bb.info().crop_pct).floor() as u32;
        }
    }
    let pre = pre_cfg.check()?;
    let opts = PrefetchParams::default()
        .batch_size(p.batch_size)
        .depth(p.prefetch)
        .check()?;
    let todo_records: Vec<Record> = todo.iter().map(|&i| records[i].clone()).collect();
    let bs = opts.batch_size();
    let mut next = 0usize;
    let mut skipped: Vec<SkippedImage> = Vec::new();
    let mut batches = BatchIter::new(todo_records.clone(), pre.clone(), opts).enumerate();
    loop {
        let waiting = Instant::now();
        let Some((b, batch)) = batches.next() else {
            break;
        };
        state.decode_wait += waiting.elapsed();
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) if !(skip_unreadable && e.is_unreadable_file()) => return Err(e.into()),
            Err(_) => {
                // Load this batch image by image, leaving out the bad ones.
                let chunk = &todo_records[b * bs..((b + 1) * bs).min(todo_records.len())];
                let partial = pre.batch_partial(chunk);
                let mut bad = Vec::with_capacity(partial.failed.len());
                for (k, err) in partial.failed {
                    if !err.is_unreadable_file() {
                        return Err(err.into());
                    }
                    let i = todo[b * bs + k];
                    skipped.push(SkippedImage {
                        index: i,
                        image_id: records[i].image_id.clone(),
                        path: records[i].path.clone(),
                        error: err.to_string(),
                    });
                    bad.push(k);
                }
                // The rows that follow belong to the images kept, then come
                // placeholders for the ones left out.
                let kept: Vec<usize> = (0..chunk.len())
                    .filter(|k| !bad.contains(k))
                    .map(|k| todo[b * bs + k])
                    .collect();
                let holes = std::iter::repeat_n(usize::MAX, bad.len());
                todo.splice(b * bs..b * bs + chunk.len(), kept.into_iter().chain(holes));
                state.done += bad.len();
                partial.batch
            }
        };
        if batch.ids.is_empty() {
            progress(state);
            continue;
        }
        let running = Instant::now();
        let x = array4_to_tensor(batch.images.view());
        let emb = embed_tta(bb, &x, p.tta, size)?;
        let rows = tensor_to_array2(&emb)?;
        state.network += running.elapsed();
        let writing = Instant::now();
        for row in rows.outer_iter() {
            // Step over the placeholders of images left out.
            while todo.get(next) == Some(&usize::MAX) {
                next += 1;
            }
            let Some(&i) = todo.get(next) else {
                return Err(BackboneError::Shape {
                    what: "batches".into(),
                    expected: format!("{} images", todo.len()),
                    got: "more".into(),
                });
            };
            matrix.row_mut(i).assign(&row);
            if let (Some(cache), Some(key)) = (&cache, &keys[i]) {
                cache.put(key, &row.to_vec())?;
            }
            next += 1;
        }
        if cache.is_some() {
            state.cache_time += writing.elapsed();
        }
        state.done += rows.nrows();
        progress(state);
    }
    if skipped.is_empty() {
        let ids = records.iter().map(|r| r.image_id.clone()).collect();
        return Ok((Embeddings { ids, matrix }, skipped));
    }
    skipped.sort_by_key(|s| s.index);
    let keep: Vec<usize> = (0..n)
        .filter(|i| skipped.binary_search_by_key(i, |s| s.index).is_err())
        .collect();
    Ok((
        Embeddings {
            ids: keep.iter().map(|&i| records[i].image_id.clone()).collect(),
            matrix: matrix.select(ndarray::Axis(0), &keep),
        },
        skipped,
    ))
}

/// Embeds a batch with test-time augmentation; input `[B, 3, S', S']`
/// (`S' = S` without five-crop).
pub fn embed_tta(bb: &Backbone, x: &Tensor, tta: Tta, size: i64) -> Result<Tensor> {
    let views: Vec<Tensor> = if tta.five_crop {
        let big = x.size().get(2).copied().unwrap_or(size);
        let o = big - size;
        let c = o / 2;
        [(0, 0), (0, o), (o, 0), (o, o), (c, c)]
            .iter()
            .map(|&(t, l)| x.narrow(2, t, size).narrow(3, l, size))
            .collect()
    } else {
        vec![x.shallow_clone()]
    };
    let mut sum: Option<Tensor> = None;
    for v in &views {
        let mut e = bb.embed_tensor(v)?;
        if tta.flip {
            e += bb.embed_tensor(&v.flip([3]))?;
        }
        sum = Some(match sum {
            Some(s) => s + e,
            None => e,
        });
    }
    let sum = sum.unwrap_or_else(|| Tensor::zeros([0], (tch::Kind::Float, tch::Device::Cpu)));
    if views.len() == 1 && !tta.flip {
        return Ok(sum);
    }
    Ok(crate::pool::l2_normalize(&sum))
}
