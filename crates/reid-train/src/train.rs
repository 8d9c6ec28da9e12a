//! The trainer: P×K batches with augmentations, AdamW with a cosine
//! schedule and linear warm-up (a lower learning rate for the backbone than
//! for the head), frozen stages, global-norm gradient clipping, per-epoch
//! open-set validation with early stopping, a JSON log, and atomic
//! safetensors checkpoints that resume after a kill.
//!
//! **Resume** is optimizer-free: a checkpoint holds the weights (backbone
//! and head), the number of finished epochs, the seed and the log; the
//! sampler, augmentations and the schedule are functions of (seed, epoch,
//! step), so a resumed run continues the same schedule at the next epoch.
//! AdamW's moment estimates restart from zero (tch 0.24 does not expose
//! them), which a warm-up-free resume tolerates in practice.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::RgbImage;
use ndarray::{Array2, Array4, Axis};
use rayon::prelude::*;
use reid_backbone::backbone::Backbone;
use reid_backbone::backbone::Precision;
use reid_core::fs::{AtomicWrite, TempFile};
use reid_data::augment::{AugmentContext, ColorJitter, Compose, HorizontalFlip, RandomResizedCrop};
use reid_data::preprocess::{Preprocess, PreprocessConfig};
use reid_data::{Dataset, DecodeOptions, PkParams, Record, decode_image};
use reid_openset::score::{animalclef_score, new_flags};
use reid_openset::{DecisionParams, Gallery, Rule, SelfCalibrationParams, decide_topk};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor, nn, nn::OptimizerConfig};

use crate::error::{Result, TrainError};
use crate::head::{Criterion, LossConfig, ProjectionHead};
use crate::loss::l2_normalize;

/// Which backbone variables are trained.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Freeze {
    /// Train everything (default).
    #[default]
    None,
    /// Train only the head: the backbone runs in eval mode without gradients.
    Backbone,
    /// Freeze the variables whose names start with one of these prefixes
    /// (original key names, e.g. `_conv_stem.`, `_bn0.`, `_blocks.0.`);
    /// their batch-norm statistics still update in training mode.
    Prefixes(Vec<String>),
}

/// Settings of a training run; [`TrainConfig::check`] validates them once.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Epochs in total (default 10).
    pub epochs: usize,
    /// Identities per batch (default 8).
    pub p: usize,
    /// Images per identity in a batch (default 4).
    pub k: usize,
    /// Cap on batches per epoch (default: the sampler's full epoch).
    pub batches_per_epoch: Option<usize>,
    /// Peak learning rate of the head and loss weights (default 1e-3).
    pub lr_head: f64,
    /// Peak learning rate of the backbone (default 1e-4).
    pub lr_backbone: f64,
    /// AdamW weight decay (default 1e-4).
    pub weight_decay: f64,
    /// Linear warm-up, in epochs (default 1; fractions allowed).
    pub warmup_epochs: f64,
    /// Clip the global gradient norm to this (default `Some(5.0)`).
    pub clip_norm: Option<f64>,
    /// Frozen backbone parts.
    pub freeze: Freeze,
    /// Projection to this embedding size (default `None`: the loss acts on
    /// the pooled backbone features, so the saved backbone is the whole model).
    pub embedding_dim: Option<i64>,
    /// Batch norm after the projection (default false).
    pub head_bn: bool,
    /// The loss (default ArcFace m=0.5, s=64... scaled down to s=30 here).
    pub loss: LossConfig,
    /// CUDA autocast for the forward pass (see [`TrainConfig::autocast`]).
    pub autocast: bool,
    /// Training augmentations (random resized crop, flip, colour jitter; default on).
    pub augment: bool,
    /// Seed of everything random (default 0).
    pub seed: u64,
    /// Stop after this many epochs without a better validation score.
    pub patience: Option<usize>,
    /// Folder for checkpoints and the log (`None`: keep nothing on disk).
    pub checkpoint_dir: Option<PathBuf>,
    /// Resume from `checkpoint_dir` when it holds a checkpoint (default true).
    pub resume: bool,
    /// Run at most this many epochs in this call (a time-boxed job; the
    /// schedule is still that of `epochs`).
    pub max_epochs_this_run: Option<usize>,
    /// Images per forward pass when embedding for validation (default 32).
    pub eval_batch: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            p: 8,
            k: 4,
            batches_per_epoch: None,
            lr_head: 1e-3,
            lr_backbone: 1e-4,
            weight_decay: 1e-4,
            warmup_epochs: 1.0,
            clip_norm: Some(5.0),
            freeze: Freeze::None,
            embedding_dim: None,
            head_bn: false,
            loss: LossConfig::ArcFace(crate::loss::ArcFaceParams::new(0.5, 30.0)),
            autocast: false,
            augment: true,
            seed: 0,
            patience: None,
            checkpoint_dir: None,
            resume: true,
            max_epochs_this_run: None,
            eval_batch: 32,
        }
    }
}

/// A validated [`TrainConfig`].
#[derive(Debug, Clone)]
pub struct CheckedTrainConfig(TrainConfig);

impl CheckedTrainConfig {
    /// The settings.
    pub fn get(&self) -> &TrainConfig {
        &self.0
    }
}

impl TrainConfig {
    /// CUDA autocast of the forward pass. Refused on CPU by
    /// [`Trainer::new`] with [`TrainError::Unsupported`]. libtorch picks the
    /// reduced type (its CUDA default); tch 0.24 has no setter for it.
    pub fn autocast(mut self, on: bool) -> Self {
        self.autocast = on;
        self
    }

    /// Validates every setting.
    pub fn check(self) -> Result<CheckedTrainConfig> {
        let c = &self;
        if c.epochs == 0 {
            return Err(TrainError::param("epochs", "must be at least 1"));
        }
        PkParams::new(c.p, c.k, c.seed).check()?;
        if c.batches_per_epoch == Some(0) {
            return Err(TrainError::param("batches_per_epoch", "must be at least 1"));
        }
        for (name, lr) in [("lr_head", c.lr_head), ("lr_backbone", c.lr_backbone)] {
            if !(lr.is_finite() && lr >= 0.0) {
                return Err(TrainError::param(name, format!("{lr}; must be >= 0")));
            }
        }
        if !(c.weight_decay.is_finite() && c.weight_decay >= 0.0) {
            return Err(TrainError::param(
                "weight_decay",
                format!("{}; must be >= 0", c.weight_decay),
            ));
        }
        if !(c.warmup_epochs.is_finite() && c.warmup_epochs >= 0.0) {
            return Err(TrainError::param(
                "warmup_epochs",
                format!("{}; must be >= 0", c.warmup_epochs),
            ));
        }
        if let Some(n) = c.clip_norm {
            if !(n.is_finite() && n > 0.0) {
                return Err(TrainError::param("clip_norm", format!("{n}; must be > 0")));
            }
        }
        if c.patience == Some(0) {
            return Err(TrainError::param("patience", "must be at least 1"));
        }
        if c.max_epochs_this_run == Some(0) {
            return Err(TrainError::param(
                "max_epochs_this_run",
                "must be at least 1",
            ));
        }
        if c.eval_batch == 0 {
            return Err(TrainError::param("eval_batch", "must be at least 1"));
        }
        if c.resume && c.checkpoint_dir.is_none() {
            // Nothing to resume from: fine, resume is a no-op.
        }
        match &c.loss {
            LossConfig::ArcFace(a) => {
                a.check()?;
            }
            LossConfig::SubCenter(s) => {
                s.check()?;
            }
            LossConfig::Triplet(t) => {
                t.check()?;
            }
            LossConfig::Softmax => {}
        }
        Ok(CheckedTrainConfig(self))
    }
}

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

/// The open-set score of one validation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValScore {
    /// Balanced accuracy on known identities (`None` without known queries).
    pub baks: Option<f64>,
    /// Balanced accuracy on new identities (`None` without new queries).
    pub baus: Option<f64>,
    /// `sqrt(baks * baus)` (AnimalCLEF's score); with no new queries, BAKS.
    pub score: f64,
    /// Closed-set top-1 accuracy of the known queries.
    pub top1: f64,
    /// The self-calibrated threshold.
    pub threshold: f32,
}

/// Self-calibrated open-set score of queries against a gallery: the
/// threshold comes from the gallery alone (`reid_openset::self_calibrate`),
/// the decision is top-1 cosine. Rows L2-normalised.
pub fn openset_validation(
    gallery: &Array2<f32>,
    gallery_labels: &[String],
    queries: &Array2<f32>,
    query_labels: &[String],
) -> Result<ValScore> {
    let g = Gallery::new(gallery.clone(), gallery_labels.to_vec())?;
    let rule = Rule::Top1;
    let groups = vec!["all"; gallery_labels.len()];
    let cal =
        reid_openset::self_calibrate_groups(&g, &groups, &rule, &SelfCalibrationParams::default())?;
    let threshold = cal.thresholds.get(Some("all"));
    let topk = reid_index::exact_topk(queries.view(), g.embeddings(), 1)
        .map_err(reid_openset::OpensetError::from)?;
    let qgroups = vec!["all"; query_labels.len()];
    let dp = DecisionParams::new(rule, cal.thresholds.clone())?;
    let preds = decide_topk(&topk, g.labels(), Some(&qgroups), &dp)?;
    let is_new = new_flags(query_labels, gallery_labels);
    let decisions: Vec<_> = preds.iter().map(|p| p.decision.clone()).collect();
    let s = animalclef_score(query_labels, &decisions, &is_new, &qgroups)?;
    let (baks, baus) = s
        .per_dataset
        .get("all")
        .map(|v| (v.baks, v.baus))
        .unwrap_or((None, None));
    let known: Vec<usize> = (0..query_labels.len()).filter(|&i| !is_new[i]).collect();
    let right = known
        .iter()
        .filter(|&&i| preds[i].candidate == query_labels[i])
        .count();
    let top1 = if known.is_empty() {
        0.0
    } else {
        right as f64 / known.len() as f64
    };
    Ok(ValScore {
        baks,
        baus,
        score: s.score,
        top1,
        threshold,
    })
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

/// The state saved with each checkpoint (`state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs finished.
    pub epochs_done: usize,
    /// The run's seed.
    pub seed: u64,
    /// The loss name.
    pub loss: String,
    /// Best validation score so far, and its epoch.
    pub best: Option<(f64, usize)>,
    /// Epochs since the best.
    pub bad_epochs: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// The log so far.
    pub log: Vec<EpochLog>,
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

/// File names inside the checkpoint folder.
pub mod files {
    /// Backbone weights after the last finished epoch (original key names).
    pub const BACKBONE: &str = "backbone.safetensors";
    /// Backbone weights of the best validation epoch.
    pub const BEST: &str = "best.safetensors";
    /// Projection head and loss weights.
    pub const HEAD: &str = "head.safetensors";
    /// [`super::TrainState`] as JSON.
    pub const STATE: &str = "state.json";
    /// The per-epoch log (the `log` of the state) as JSON.
    pub const LOG: &str = "log.json";
}

fn io_err(path: &Path, e: std::io::Error) -> TrainError {
    TrainError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Writes every variable of `vs` (sorted by name, contiguous, f32 on the
/// CPU) as safetensors to a temporary file beside `path`; committing it
/// renames it over `path`.
fn write_var_store_tmp(vs: &nn::VarStore, path: &Path) -> Result<TempFile> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let vars: Vec<(String, Tensor)> = tch::no_grad(|| {
        vars.into_iter()
            .map(|(k, t)| (k, t.to_device(Device::Cpu).contiguous()))
            .collect()
    });
    let tmp = AtomicWrite::new().create_dirs(true).temp_file(path)?;
    Tensor::write_safetensors(&vars, tmp.path()).map_err(|e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(tmp)
}

/// Saves `vs` as safetensors with its variable names (for a backbone, the
/// original key names: `BackboneBuilder::weights_file` loads it back),
/// atomically (temporary file, then rename).
pub fn save_var_store(vs: &nn::VarStore, path: &Path) -> Result<()> {
    Ok(write_var_store_tmp(vs, path)?.commit()?)
}

/// Copies the tensors of a safetensors file into the variables of `vs` of
/// the same names; every variable must be present with its shape.
pub fn load_var_store(vs: &nn::VarStore, path: &Path) -> Result<()> {
    let bad = |reason: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|e| bad(e.to_string()))?
        .into_iter()
        .collect();
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            let t = tensors
                .get(&name)
                .ok_or_else(|| bad(format!("has no `{name}`")))?;
            if t.size() != var.size() {
                return Err(bad(format!(
                    "`{name}` is {:?}, the model wants {:?}",
                    t.size(),
                    var.size()
                )));
            }
            var.copy_(&t.to_device(var.device()).to_kind(var.kind()));
        }
        Ok(())
    })
}

/// `value` as pretty JSON in a temporary file beside `path`, to commit.
fn write_json_tmp<T: Serialize>(value: &T, path: &Path) -> Result<TempFile> {
    let text = serde_json::to_string_pretty(value).map_err(|e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let tmp = AtomicWrite::new().create_dirs(true).temp_file(path)?;
    std::fs::write(tmp.path(), text).map_err(|e| io_err(path, e))?;
    Ok(tmp)
}

/// Reads `state.json` of a checkpoint folder, `None` when there is none.
pub fn read_state(dir: &Path) -> Result<Option<TrainState>> {
    let path = dir.join(files::STATE);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| TrainError::Checkpoint {
            path,
            reason: e.to_string(),
        })
}

/// Decoded training images, resized once, with their class index.
struct ImageCache {
    images: Vec<RgbImage>,
}

impl ImageCache {
    fn load(records: &[Record], pre: &Preprocess) -> Result<Self> {
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
    cfg: CheckedTrainConfig,
    head_vs: nn::VarStore,
    head: ProjectionHead,
    criterion: Criterion,
    classes: Vec<String>,
    device: Device,
    size: i64,
}

impl Trainer {
    /// A trainer for `backbone` over the identities of `train` (every
    /// record needs an identity). Makes the backbone's variables trainable
    /// (except frozen ones). The backbone must be f32; autocast needs CUDA.
    pub fn new(backbone: &Backbone, train: &[Record], cfg: CheckedTrainConfig) -> Result<Self> {
        let c = cfg.get();
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
        let mut classes: Vec<String> = Vec::new();
        for r in train {
            let id = r.identity.clone().ok_or_else(|| {
                TrainError::param("train", format!("record {} has no identity", r.image_id))
            })?;
            classes.push(id);
        }
        classes.sort();
        classes.dedup();
        let head_vs = nn::VarStore::new(device);
        tch::manual_seed(c.seed as i64);
        let width = info.dim.max(net.num_features());
        let head = ProjectionHead::new(&head_vs.root(), width, c.embedding_dim, c.head_bn)?;
        let criterion = Criterion::new(
            &head_vs.root(),
            &c.loss,
            head.out_dim(),
            classes.len() as i64,
        )?;
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

    /// The identities, in class-index order.
    pub fn classes(&self) -> &[String] {
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

    fn embed_images(
        &self,
        backbone: &Backbone,
        pre: &Preprocess,
        imgs: &[&RgbImage],
    ) -> Result<Array2<f32>> {
        let mut rows: Vec<f32> = Vec::new();
        let mut dim = 0usize;
        for chunk in imgs.chunks(self.cfg.get().eval_batch) {
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

    /// The self-calibrated open-set score of `queries` (labelled) against
    /// `gallery` (labelled) with this trainer's embedding (eval mode).
    pub fn evaluate(
        &self,
        backbone: &Backbone,
        gallery: &[Record],
        queries: &[Record],
    ) -> Result<ValScore> {
        let s = u32::try_from(self.size).unwrap_or(224);
        let big = (f64::from(s) * 8.0 / 7.0).round() as u32;
        let cache_pre = PreprocessConfig::timm_eval(big, 1.0).check()?;
        let eval_pre = backbone.preprocess_config().check()?;
        let labels = |rs: &[Record], what: &'static str| -> Result<Vec<String>> {
            rs.iter()
                .map(|r| {
                    r.identity.clone().ok_or_else(|| {
                        TrainError::param(what, format!("record {} has no identity", r.image_id))
                    })
                })
                .collect()
        };
        let (gl, ql) = (labels(gallery, "gallery")?, labels(queries, "queries")?);
        let gc = ImageCache::load(gallery, &cache_pre)?;
        let qc = ImageCache::load(queries, &cache_pre)?;
        let ge = self.embed_images(backbone, &eval_pre, &gc.images.iter().collect::<Vec<_>>())?;
        let qe = self.embed_images(backbone, &eval_pre, &qc.images.iter().collect::<Vec<_>>())?;
        openset_validation(&ge, &gl, &qe, &ql)
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
        let c = self.cfg.get().clone();
        let s = u32::try_from(self.size).unwrap_or(224);
        let big = (f64::from(s) * 8.0 / 7.0).round() as u32;
        let cache_pre = PreprocessConfig::timm_eval(big, 1.0).check()?;
        let bc = backbone.preprocess_config();
        let eval_pre = bc.check()?;
        let mean = backbone.info().mean;
        let std = backbone.info().std;
        let norm_pre = PreprocessConfig::new(s, s).normalize(mean, std).check()?;

        let mut labels = Vec::with_capacity(train.len());
        for r in train {
            let id = r.identity.as_deref().unwrap_or_default();
            let l = self
                .classes
                .binary_search_by(|c| c.as_str().cmp(id))
                .map_err(|_| {
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
                let qc = ImageCache::load(q, &cache_pre)?;
                let ql: Vec<String> = q
                    .iter()
                    .map(|r| {
                        r.identity.clone().ok_or_else(|| {
                            TrainError::param(
                                "val_queries",
                                format!("record {} has no identity", r.image_id),
                            )
                        })
                    })
                    .collect::<Result<_>>()?;
                Some((qc, ql))
            }
            None => None,
        };
        progress(&Progress::Loaded {
            images: cache.images.len() + val.as_ref().map_or(0, |v| v.0.images.len()),
        });
        let train_labels: Vec<String> = train
            .iter()
            .map(|r| r.identity.clone().unwrap_or_default())
            .collect();

        let augment = Compose::new()
            .then(RandomResizedCrop::with_ranges(
                s,
                s,
                (0.35, 1.0),
                (0.75, 4.0 / 3.0),
            )?)
            .then(HorizontalFlip::new(0.5)?)
            .then(ColorJitter::new(0.3, 0.3, 0.2, 0.0)?);

        let ds = Dataset::new(PathBuf::new(), train.to_vec());
        let mut sampler = PkParams::new(c.p, c.k, c.seed).check()?.sampler(&ds)?;
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
        if let (true, Some(dir)) = (c.resume, c.checkpoint_dir.as_deref()) {
            if let Some(st) = read_state(dir)? {
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
                        backbone.pooled_features(&x, true)?
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
                Some((qc, ql)) => {
                    let gi: Vec<&RgbImage> = cache.images.iter().collect();
                    let qi: Vec<&RgbImage> = qc.images.iter().collect();
                    let ge = self.embed_images(backbone, &eval_pre, &gi)?;
                    let qe = self.embed_images(backbone, &eval_pre, &qi)?;
                    Some(openset_validation(&ge, &train_labels, &qe, ql)?)
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

    /// Writes the checkpoint: all files to temporaries first, then renamed,
    /// `state.json` last, so a kill leaves the previous epoch's state (or
    /// weights one epoch ahead of it, which a resume re-trains from).
    fn checkpoint(
        &self,
        backbone: &Backbone,
        dir: &Path,
        state: &TrainState,
        best: bool,
    ) -> Result<()> {
        let bb = dir.join(files::BACKBONE);
        let hd = dir.join(files::HEAD);
        let st = dir.join(files::STATE);
        let lg = dir.join(files::LOG);
        let t_bb = write_var_store_tmp(backbone.var_store(), &bb)?;
        let t_hd = write_var_store_tmp(&self.head_vs, &hd)?;
        let t_lg = write_json_tmp(&state.log, &lg)?;
        let t_st = write_json_tmp(state, &st)?;
        if best {
            let best_path = dir.join(files::BEST);
            let t_best = AtomicWrite::new().temp_file(&best_path)?;
            std::fs::copy(t_bb.path(), t_best.path()).map_err(|e| io_err(&best_path, e))?;
            t_best.commit()?;
        }
        t_bb.commit()?;
        t_hd.commit()?;
        t_lg.commit()?;
        Ok(t_st.commit()?)
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
