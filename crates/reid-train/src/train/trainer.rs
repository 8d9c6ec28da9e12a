//! The trainer: P×K batches with augmentations, AdamW with a cosine
//! schedule and linear warm-up, frozen stages, gradient clipping, the
//! per-epoch log and early stopping.

use std::f64::consts::PI;
use std::path::PathBuf;
use std::time::Instant;

use image::RgbImage;
use ndarray::{Array2, Array4, Axis};
use rayon::prelude::*;
use reid_backbone::backbone::{Backbone, Precision};
use reid_data::augment::{
    AugmentContext, ColorJitterParams, Compose, HorizontalFlipParams, RandomResizedCropParams,
};
use reid_data::preprocess::{Preprocess, PreprocessParams};
use reid_data::{Dataset, DecodeOptions, IdentityKey, ParamGuard, PkParams, Record, decode_image};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor, nn, nn::OptimizerConfig};

use super::TrainState;
use super::checkpoint::{files, io_err, load_var_store, read_state};
use super::params::{Freeze, ValidTrainParams};
use super::validation::{ValScore, openset_validation};
use crate::error::{Result, TrainError};
use crate::head::{Criterion, ProjectionHead};
use crate::loss::l2_normalize;

/// Learning-rate factor at `step` (0-based) of `total`: linear warm-up over
/// `warmup` steps to 1, then cosine decay to 0 at `total`.
pub fn lr_factor(step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let t = ((step - warmup) as f64 / span).min(1.0);
    0.5 * (1.0 + (PI * t).cos())
}

/// One epoch in the JSON log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 0-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Head learning rate at the end of the epoch.
    pub lr_head: f64,
    /// Backbone learning rate at the end of the epoch.
    pub lr_backbone: f64,
    /// Validation, when a validation set was given.
    pub val: Option<ValScore>,
    /// Wall time of the epoch (training and validation), seconds.
    pub seconds: f64,
    /// Optimisation steps in the epoch.
    pub steps: usize,
}

/// What the trainer reports through its callback.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// Training images decoded and cached.
    Loaded {
        /// Images cached.
        images: usize,
    },
    /// One optimisation step done.
    Step {
        /// 0-based epoch.
        epoch: usize,
        /// Epochs in total.
        epochs: usize,
        /// 0-based step in the epoch.
        step: usize,
        /// Steps per epoch.
        steps: usize,
        /// Loss of this batch.
        loss: f64,
        /// Head learning rate of this step.
        lr: f64,
    },
    /// One epoch done.
    Epoch(&'a EpochLog),
}

/// The outcome of [`Trainer::fit`].
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// The state at the end (log included).
    pub state: TrainState,
    /// Epochs run by this call (resumed epochs excluded).
    pub epochs_run: usize,
    /// The epoch this call started at (non-zero after a resume).
    pub started_at: usize,
}

/// Decoded training images, resized once, with their class index.
pub(super) struct ImageCache {
    pub(super) images: Vec<RgbImage>,
}

impl ImageCache {
    pub(super) fn load(records: &[Record], pre: &Preprocess) -> Result<Self> {
        let hint = pre.size_hint();
        let images = records
            .par_iter()
            .map(|r| {
                let d = decode_image(&r.path, r.bbox.as_ref(), hint, &DecodeOptions::default())?;
                Ok(pre.resize(&d.image)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { images })
    }
}

/// The `(dataset, identity)` of a labelled record.
fn identity_key(r: &Record) -> Option<IdentityKey> {
    r.identity.as_ref().map(|identity| IdentityKey {
        dataset: r.dataset.clone(),
        identity: identity.clone(),
    })
}

fn mix(seed: u64, a: u64, b: u64) -> u64 {
    // SplitMix64 over the three words.
    let mut z =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fine-tunes a [`Backbone`] with a head and a loss.
#[derive(Debug)]
pub struct Trainer {
    cfg: ValidTrainParams,
    pub(super) head_vs: nn::VarStore,
    head: ProjectionHead,
    criterion: Criterion,
    classes: Vec<IdentityKey>,
    device: Device,
    pub(super) size: i64,
}

impl Trainer {
    /// A trainer for `backbone` over the identities of `train` (every
    /// record needs an identity). Makes the backbone's variables trainable
    /// (except frozen ones). The backbone must be f32; autocast needs CUDA.
    pub fn new(backbone: &Backbone, train: &[Record], cfg: ValidTrainParams) -> Result<Self> {
        let c = cfg.params();
        let info = backbone.info();
        if info.precision != Precision::F32 {
            return Err(TrainError::param(
                "precision",
                format!(
                    "the backbone is {}; train an f32 backbone (autocast gives reduced precision on CUDA)",
                    info.precision.name()
                ),
            ));
        }
        let net = backbone.network().ok_or_else(|| {
            TrainError::param("backbone", "a TorchScript backbone cannot be fine-tuned")
        })?;
        let device = backbone.var_store().device();
        if c.autocast && !device.is_cuda() {
            return Err(TrainError::Unsupported {
                device: info.device.clone(),
                reason: "autocast runs on CUDA only; train in f32 on the CPU".into(),
            });
        }
        let mut classes: Vec<IdentityKey> = Vec::new();
        for r in train {
            classes.push(identity_key(r).ok_or_else(|| {
                TrainError::param("train", format!("record {} has no identity", r.image_id))
            })?);
        }
        classes.sort();
        classes.dedup();
        let head_vs = nn::VarStore::new(device);
        tch::manual_seed(c.seed as i64);
        let width = info.dim.max(net.num_features());
        let head = ProjectionHead::new(&head_vs.root(), width, c.embedding_dim, c.head_bn)?;
        let criterion = Criterion::new(&head_vs.root(), cfg.loss(), head.out_dim(), classes.len())?;
        // Trainable backbone variables get gradients, except frozen ones.
        let vs = backbone.var_store();
        let trainable: std::collections::HashSet<usize> = vs
            .trainable_variables()
            .iter()
            .map(|t| t.data_ptr() as usize)
            .collect();
        for (name, t) in vs.variables() {
            if !trainable.contains(&(t.data_ptr() as usize)) {
                continue;
            }
            let frozen = match &c.freeze {
                Freeze::None => false,
                Freeze::Backbone => true,
                Freeze::Prefixes(p) => p.iter().any(|p| name.starts_with(p.as_str())),
            };
            let _ = t.set_requires_grad(!frozen);
        }
        Ok(Self {
            cfg,
            head_vs,
            head,
            criterion,
            classes,
            device,
            size: info.input_size,
        })
    }

    /// The identities, in class-index order: one class per `(dataset,
    /// identity)`, as the P×K sampler groups them, so two datasets'
    /// individuals of the same name are two classes.
    pub fn classes(&self) -> &[IdentityKey] {
        &self.classes
    }

    /// The head's variables (projection `neck.*`, loss weights `loss.*`).
    pub fn head_var_store(&self) -> &nn::VarStore {
        &self.head_vs
    }

    /// L2-normalised embeddings (f32, CPU) of a preprocessed batch, in eval
    /// mode: backbone, pooling, projection head.
    pub fn embed(&self, backbone: &Backbone, x: &Tensor) -> Result<Tensor> {
        let out = tch::no_grad(|| -> Result<Tensor> {
            let pooled = backbone.pooled_features(x, false)?.to_kind(Kind::Float);
            Ok(l2_normalize(&self.head.forward(&pooled, false)))
        })?;
        Ok(out.to_device(Device::Cpu))
    }

    fn eval_tensor(pre: &Preprocess, imgs: &[&RgbImage]) -> Result<Tensor> {
        let (w, h) = pre.output_size();
        let mut arr = Array4::<f32>::zeros((imgs.len(), 3, h as usize, w as usize));
        arr.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(imgs.par_iter())
            .try_for_each(|(view, img)| -> Result<()> {
                let r = pre.resize(img)?;
                pre.normalize_into(&r, view)?;
                Ok(())
            })?;
        array_to_tensor(arr)
    }

    pub(super) fn embed_images(
        &self,
        backbone: &Backbone,
        pre: &Preprocess,
        imgs: &[&RgbImage],
    ) -> Result<Array2<f32>> {
        let mut rows: Vec<f32> = Vec::new();
        let mut dim = 0usize;
        for chunk in imgs.chunks(self.cfg.params().eval_batch) {
            let x = Self::eval_tensor(pre, chunk)?;
            let e = self.embed(backbone, &x)?;
            dim = e.size()[1] as usize;
            let v: Vec<f32> = Vec::<f32>::try_from(e.flatten(0, -1))?;
            rows.extend(v);
        }
        Array2::from_shape_vec((imgs.len(), dim), rows).map_err(|e| TrainError::Shape {
            what: "embeddings".into(),
            expected: format!("[{}, {dim}]", imgs.len()),
            got: e.to_string(),
        })
    }

    /// Trains on `train` (the records given to [`Trainer::new`]); after each
    /// epoch, when `val_queries` is given, scores the self-calibrated open
    /// set of `val_queries` (labelled; identities absent from `train` are
    /// new) against the training images as the gallery. Reports through
    /// `progress`; writes checkpoints and the log when a folder is set, and
    /// resumes from it.
    pub fn fit(
        &mut self,
        backbone: &Backbone,
        train: &[Record],
        val_queries: Option<&[Record]>,
        progress: &mut dyn FnMut(&Progress<'_>),
    ) -> Result<TrainReport> {
        let c = self.cfg.params().clone();
        let s = u32::try_from(self.size).unwrap_or(224);
        let big = (f64::from(s) * 8.0 / 7.0).round() as u32;
        let cache_pre = PreprocessParams::timm_eval(big, 1.0).check()?;
        let bc = backbone.preprocess_params();
        let eval_pre = bc.check()?;
        let mean = backbone.info().mean;
        let std = backbone.info().std;
        let norm_pre = PreprocessParams::new(s).mean(mean).std(std).check()?;

        let mut labels = Vec::with_capacity(train.len());
        for r in train {
            let l = identity_key(r)
                .and_then(|k| self.classes.binary_search(&k).ok())
                .ok_or_else(|| {
                    TrainError::param(
                        "train",
                        format!(
                            "record {} is not among the trainer's identities",
                            r.image_id
                        ),
                    )
                })?;
            labels.push(l as i64);
        }
        let cache = ImageCache::load(train, &cache_pre)?;
        let val = match val_queries {
            Some(q) => {
                if let Some(r) = q.iter().find(|r| r.identity.is_none()) {
                    return Err(TrainError::param(
                        "val_queries",
                        format!("record {} has no identity", r.image_id),
                    ));
                }
                Some((ImageCache::load(q, &cache_pre)?, q))
            }
            None => None,
        };
        progress(&Progress::Loaded {
            images: cache.images.len() + val.as_ref().map_or(0, |v| v.0.images.len()),
        });

        let augment = Compose::new()
            .then(
                RandomResizedCropParams::new(s)
                    .scale((c.crop_scale.0 as f32, c.crop_scale.1 as f32))
                    .ratio((0.75, 4.0 / 3.0))
                    .check()?,
            )
            .then(HorizontalFlipParams::default().p(c.flip).check()?)
            .then(
                ColorJitterParams::default()
                    .brightness(0.3)
                    .contrast(0.3)
                    .saturation(0.2)
                    .check()?,
            );

        let ds = Dataset::new(PathBuf::new(), train.to_vec());
        let mut sampler = PkParams::default()
            .p(c.p)
            .k(c.k)
            .seed(c.seed)
            .check()?
            .sampler(&ds)?;
        let steps = c
            .batches_per_epoch
            .map_or(sampler.batches_per_epoch(), |n| {
                n.min(sampler.batches_per_epoch())
            })
            .max(1);
        let total = steps * c.epochs;
        let warmup = (c.warmup_epochs * steps as f64).round() as usize;

        // Resume.
        let mut state = TrainState {
            epochs_done: 0,
            seed: c.seed,
            loss: c.loss.name().into(),
            best: None,
            bad_epochs: 0,
            stopped_early: false,
            log: Vec::new(),
        };
        if let (true, Some(dir)) = (c.resume, c.checkpoint_dir.as_deref())
            && let Some(st) = read_state(dir)?
        {
            if st.seed != c.seed || st.loss != c.loss.name() {
                return Err(TrainError::Checkpoint {
                    path: dir.join(files::STATE),
                    reason: format!(
                        "was made with seed {} and loss {}, this run has seed {} and loss {}",
                        st.seed,
                        st.loss,
                        c.seed,
                        c.loss.name()
                    ),
                });
            }
            load_var_store(backbone.var_store(), &dir.join(files::BACKBONE))?;
            load_var_store(&self.head_vs, &dir.join(files::HEAD))?;
            state = st;
        }
        if let Some(dir) = c.checkpoint_dir.as_deref() {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let started_at = state.epochs_done;
        for _ in 0..started_at {
            let _ = sampler.next_epoch();
        }

        let adam = nn::AdamW {
            wd: c.weight_decay,
            ..Default::default()
        };
        let train_backbone = c.freeze != Freeze::Backbone && c.lr_backbone > 0.0;
        let mut opt_b = if train_backbone {
            Some(adam.build(backbone.var_store(), c.lr_backbone)?)
        } else {
            None
        };
        let mut opt_h = adam.build(&self.head_vs, c.lr_head)?;
        let mut params: Vec<Tensor> = self.head_vs.trainable_variables();
        if train_backbone {
            params.extend(
                backbone
                    .var_store()
                    .trainable_variables()
                    .into_iter()
                    .filter(|t| t.requires_grad()),
            );
        }

        let mut epochs_run = 0usize;
        let ctx = AugmentContext::default();
        while state.epochs_done < c.epochs
            && !state.stopped_early
            && c.max_epochs_this_run.is_none_or(|m| epochs_run < m)
        {
            let epoch = state.epochs_done;
            let t0 = Instant::now();
            tch::manual_seed(mix(c.seed, epoch as u64, 1) as i64);
            let batches = sampler.next_epoch();
            let mut loss_sum = 0.0;
            let mut n = 0usize;
            let mut lr = (0.0, 0.0);
            for (step, idx) in batches.iter().take(steps).enumerate() {
                let g = epoch * steps + step;
                let f = lr_factor(g, warmup, total);
                lr = (c.lr_head * f, c.lr_backbone * f);
                opt_h.set_lr(lr.0);
                if let Some(o) = opt_b.as_mut() {
                    o.set_lr(lr.1);
                }
                let imgs: Vec<&RgbImage> = idx.iter().map(|&i| &cache.images[i]).collect();
                let x = if c.augment {
                    let (w, h) = (s as usize, s as usize);
                    let mut arr = Array4::<f32>::zeros((imgs.len(), 3, h, w));
                    arr.axis_iter_mut(Axis(0))
                        .into_par_iter()
                        .zip(imgs.par_iter().enumerate())
                        .try_for_each(|(view, (j, img))| -> Result<()> {
                            let a = augment.apply_seeded(
                                (*img).clone(),
                                &ctx,
                                mix(c.seed, g as u64, j as u64),
                            );
                            norm_pre.normalize_into(&a, view)?;
                            Ok(())
                        })?;
                    array_to_tensor(arr)?
                } else {
                    Self::eval_tensor(&eval_pre, &imgs)?
                };
                let y: Vec<i64> = idx.iter().map(|&i| labels[i]).collect();
                let y = Tensor::from_slice(&y).to_device(self.device);
                let forward = || -> Result<Tensor> {
                    let pooled = if train_backbone {
                        backbone.pooled_features(&x, !c.frozen_batch_norm)?
                    } else {
                        tch::no_grad(|| backbone.pooled_features(&x, false))?
                    };
                    let emb = self.head.forward(&pooled.to_kind(Kind::Float), true);
                    self.criterion.loss(&emb, &y)
                };
                let loss = if c.autocast {
                    tch::autocast(true, forward)?
                } else {
                    forward()?
                };
                opt_h.zero_grad();
                if let Some(o) = opt_b.as_mut() {
                    o.zero_grad();
                }
                loss.backward();
                if let Some(max) = c.clip_norm {
                    clip_global_norm(&params, max);
                }
                opt_h.step();
                if let Some(o) = opt_b.as_mut() {
                    o.step();
                }
                let l = loss.double_value(&[]);
                if !l.is_finite() {
                    return Err(TrainError::NonFinite {
                        what: format!("training loss at epoch {epoch} step {step}"),
                        shape: "[]".into(),
                    });
                }
                loss_sum += l;
                n += 1;
                progress(&Progress::Step {
                    epoch,
                    epochs: c.epochs,
                    step,
                    steps,
                    loss: l,
                    lr: lr.0,
                });
            }
            let val_score = match &val {
                Some((qc, q)) => {
                    let gi: Vec<&RgbImage> = cache.images.iter().collect();
                    let qi: Vec<&RgbImage> = qc.images.iter().collect();
                    let ge = self.embed_images(backbone, &eval_pre, &gi)?;
                    let qe = self.embed_images(backbone, &eval_pre, &qi)?;
                    Some(openset_validation(&ge, train, &qe, q)?)
                }
                None => None,
            };
            let entry = EpochLog {
                epoch,
                loss: loss_sum / n.max(1) as f64,
                lr_head: lr.0,
                lr_backbone: lr.1,
                val: val_score,
                seconds: t0.elapsed().as_secs_f64(),
                steps: n,
            };
            let mut improved = false;
            if let Some(v) = val_score {
                if state.best.is_none_or(|(b, _)| v.score > b) {
                    state.best = Some((v.score, epoch));
                    state.bad_epochs = 0;
                    improved = true;
                } else {
                    state.bad_epochs += 1;
                    if c.patience.is_some_and(|p| state.bad_epochs >= p) {
                        state.stopped_early = true;
                    }
                }
            }
            state.log.push(entry.clone());
            state.epochs_done = epoch + 1;
            epochs_run += 1;
            if let Some(dir) = c.checkpoint_dir.as_deref() {
                self.checkpoint(backbone, dir, &state, improved)?;
            }
            progress(&Progress::Epoch(&entry));
        }
        Ok(TrainReport {
            state,
            epochs_run,
            started_at,
        })
    }
}

fn array_to_tensor(arr: Array4<f32>) -> Result<Tensor> {
    let shape: Vec<i64> = arr.shape().iter().map(|&d| d as i64).collect();
    let data = arr.as_standard_layout();
    let slice = data.as_slice().ok_or_else(|| TrainError::Shape {
        what: "image batch".into(),
        expected: "a contiguous array".into(),
        got: format!("{shape:?}"),
    })?;
    Ok(Tensor::from_slice(slice).view(shape.as_slice()))
}

/// Scales the gradients of `params` so that their global L2 norm is at
/// most `max`; returns the norm before clipping.
pub fn clip_global_norm(params: &[Tensor], max: f64) -> f64 {
    tch::no_grad(|| {
        let grads: Vec<Tensor> = params
            .iter()
            .map(Tensor::grad)
            .filter(Tensor::defined)
            .collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads
            .iter()
            .map(|g| g.to_kind(Kind::Float).norm().unsqueeze(0))
            .collect();
        let total = Tensor::cat(&norms, 0).norm().double_value(&[]);
        let scale = max / (total + 1e-6);
        if scale < 1.0 {
            for mut g in grads {
                let scaled = &g * scale;
                g.copy_(&scaled);
            }
        }
        total
    })
}
