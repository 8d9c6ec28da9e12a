//! The settings of a training run.

use std::path::PathBuf;

use reid_core::ParamGuard;
use reid_data::PkParams;

use crate::error::{Result, TrainError};
use crate::head::{LossParams, ValidLossParams};
use crate::loss::ArcFaceParams;

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

impl std::str::FromStr for Freeze {
    type Err = TrainError;

    /// `none`, `backbone`, or comma-separated variable-name prefixes.
    ///
    /// ```
    /// use reid_train::Freeze;
    /// assert_eq!("none".parse::<Freeze>()?, Freeze::None);
    /// assert_eq!(
    ///     "_conv_stem.,_bn0.".parse::<Freeze>()?,
    ///     Freeze::Prefixes(vec!["_conv_stem.".into(), "_bn0.".into()])
    /// );
    /// assert!(",".parse::<Freeze>().is_err());
    /// # Ok::<(), reid_train::TrainError>(())
    /// ```
    fn from_str(s: &str) -> Result<Self, TrainError> {
        match s.trim() {
            "none" => Ok(Freeze::None),
            "backbone" => Ok(Freeze::Backbone),
            list => {
                let prefixes: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
                if prefixes.is_empty() {
                    return Err(TrainError::param(
                        "freeze",
                        format!("`{s}`: use none, backbone or comma-separated name prefixes"),
                    ));
                }
                Ok(Freeze::Prefixes(prefixes))
            }
        }
    }
}

/// Settings of a training run, unchecked: a builder with [`Default`] and
/// one setter per setting (fields are public to read); [`ParamGuard::check`]
/// validates them once into the [`ValidTrainParams`] that
/// [`super::Trainer::new`] takes.
///
/// ```
/// use reid_train::ParamGuard;
/// use reid_train::loss::ArcFaceParams;
/// use reid_train::{LossParams, TrainParams};
///
/// let p = TrainParams::default()
///     .epochs(4)
///     .p(6)
///     .k(3)
///     .lr_backbone(5e-5)
///     .patience(2)
///     .loss(LossParams::ArcFace(ArcFaceParams::default().margin(0.3).scale(30.0)))
///     .check()?;
/// assert_eq!(p.params().epochs, 4);
/// assert!(TrainParams::default().epochs(0).check().is_err());
/// # Ok::<(), reid_train::TrainError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TrainParams {
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
    /// The loss (default ArcFace with margin 0.5 and scale 30).
    pub loss: LossParams,
    /// CUDA autocast for the forward pass (see [`TrainParams::autocast`]).
    pub autocast: bool,
    /// Training augmentations (random resized crop, flip, colour jitter; default on).
    pub augment: bool,
    /// Share of the image the random crop keeps, `(min, max)` in `(0, 1]`
    /// (default `(0.35, 1.0)`).
    pub crop_scale: (f64, f64),
    /// Probability of a horizontal flip, in `[0, 1]` (default 0.5; 0 where
    /// left and right differ, as a face's patch layout does).
    pub flip: f64,
    /// Run the backbone in eval mode while its unfrozen variables learn:
    /// batch norm keeps its running statistics (as timm's `freeze_bn`) and
    /// dropout is off (default false). For fine-tuning a few blocks on
    /// small batches.
    pub frozen_batch_norm: bool,
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

impl Default for TrainParams {
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
            loss: LossParams::ArcFace(ArcFaceParams::default().margin(0.5).scale(30.0)),
            autocast: false,
            augment: true,
            crop_scale: (0.35, 1.0),
            flip: 0.5,
            frozen_batch_norm: false,
            seed: 0,
            patience: None,
            checkpoint_dir: None,
            resume: true,
            max_epochs_this_run: None,
            eval_batch: 32,
        }
    }
}

impl TrainParams {
    reid_core::setters! {
        /// Sets [`TrainParams::epochs`] (at least 1).
        epochs: usize,

        /// Sets [`TrainParams::p`], identities per batch (at least 1).
        p: usize,

        /// Sets [`TrainParams::k`], images per identity in a batch (at least 1).
        k: usize,

        /// Sets [`TrainParams::lr_head`] (`>= 0`).
        lr_head: f64,

        /// Sets [`TrainParams::lr_backbone`] (`>= 0`; 0 leaves the backbone as it is).
        lr_backbone: f64,

        /// Sets [`TrainParams::weight_decay`] (`>= 0`).
        weight_decay: f64,

        /// Sets [`TrainParams::warmup_epochs`] (`>= 0`).
        warmup_epochs: f64,

        /// Sets [`TrainParams::freeze`].
        freeze: Freeze,

        /// Sets [`TrainParams::head_bn`] (needs an embedding size).
        head_bn: bool,

        /// Sets [`TrainParams::loss`].
        loss: LossParams,

        /// CUDA autocast of the forward pass. Refused on CPU by
        /// [`super::Trainer::new`] with [`TrainError::Unsupported`]. libtorch
        /// picks the reduced type (its CUDA default); tch 0.24 has no setter for
        /// it.
        autocast: bool,

        /// Sets [`TrainParams::augment`].
        augment: bool,

        /// Sets [`TrainParams::crop_scale`].
        crop_scale: (f64, f64),

        /// Sets [`TrainParams::flip`].
        flip: f64,

        /// Sets [`TrainParams::frozen_batch_norm`].
        frozen_batch_norm: bool,

        /// Sets [`TrainParams::seed`].
        seed: u64,

        /// Sets [`TrainParams::resume`].
        resume: bool,

        /// Sets [`TrainParams::eval_batch`] (at least 1).
        eval_batch: usize,
    }

    /// Sets [`TrainParams::batches_per_epoch`] (`None`: the sampler's full epoch).
    #[must_use]
    pub fn batches_per_epoch(mut self, v: impl Into<Option<usize>>) -> Self {
        self.batches_per_epoch = v.into();
        self
    }

    /// Sets [`TrainParams::clip_norm`] (`> 0`; `None`: no clipping).
    #[must_use]
    pub fn clip_norm(mut self, v: impl Into<Option<f64>>) -> Self {
        self.clip_norm = v.into();
        self
    }

    /// Sets [`TrainParams::embedding_dim`] (1 to 65536; `None`: no projection).
    #[must_use]
    pub fn embedding_dim(mut self, v: impl Into<Option<i64>>) -> Self {
        self.embedding_dim = v.into();
        self
    }

    /// Sets [`TrainParams::patience`] (at least 1; `None`: no early stop).
    #[must_use]
    pub fn patience(mut self, v: impl Into<Option<usize>>) -> Self {
        self.patience = v.into();
        self
    }

    /// Sets [`TrainParams::checkpoint_dir`] (`None`: nothing on disk).
    #[must_use]
    pub fn checkpoint_dir(mut self, v: impl Into<Option<PathBuf>>) -> Self {
        self.checkpoint_dir = v.into();
        self
    }

    /// Sets [`TrainParams::max_epochs_this_run`] (at least 1).
    #[must_use]
    pub fn max_epochs_this_run(mut self, v: impl Into<Option<usize>>) -> Self {
        self.max_epochs_this_run = v.into();
        self
    }
}

impl ParamGuard for TrainParams {
    type Checked = ValidTrainParams;
    type Error = TrainError;

    /// Checks every setting, the loss's included; the error names the
    /// setting and its value.
    fn check_ref(&self) -> Result<()> {
        self.check_settings().map(|_| ())
    }

    fn check(self) -> Result<ValidTrainParams> {
        let loss = self.check_settings()?;
        Ok(ValidTrainParams { params: self, loss })
    }
}

impl TrainParams {
    fn check_settings(&self) -> Result<ValidLossParams> {
        let c = self;
        if c.epochs == 0 {
            return Err(TrainError::param("epochs", "0; must be at least 1"));
        }
        PkParams::default().p(c.p).k(c.k).seed(c.seed).check_ref()?;
        if c.batches_per_epoch == Some(0) {
            return Err(TrainError::param(
                "batches_per_epoch",
                "0; must be at least 1",
            ));
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
        if let Some(n) = c.clip_norm
            && !(n.is_finite() && n > 0.0)
        {
            return Err(TrainError::param("clip_norm", format!("{n}; must be > 0")));
        }
        if c.patience == Some(0) {
            return Err(TrainError::param("patience", "0; must be at least 1"));
        }
        if c.max_epochs_this_run == Some(0) {
            return Err(TrainError::param(
                "max_epochs_this_run",
                "0; must be at least 1",
            ));
        }
        if c.eval_batch == 0 {
            return Err(TrainError::param("eval_batch", "0; must be at least 1"));
        }
        let (lo, hi) = c.crop_scale;
        if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
            return Err(TrainError::param(
                "crop_scale",
                format!("({lo}, {hi}); must satisfy 0 < min <= max <= 1"),
            ));
        }
        if !(0.0..=1.0).contains(&c.flip) {
            return Err(TrainError::param(
                "flip",
                format!("{}; must be in [0, 1]", c.flip),
            ));
        }
        c.loss.check()
    }
}

/// Validated [`TrainParams`], with the checked loss; made by
/// [`ParamGuard::check`].
#[derive(Debug, Clone)]
pub struct ValidTrainParams {
    params: TrainParams,
    loss: ValidLossParams,
}

impl ValidTrainParams {
    /// The settings.
    pub fn params(&self) -> &TrainParams {
        &self.params
    }

    /// The checked loss.
    pub fn loss(&self) -> &ValidLossParams {
        &self.loss
    }
}
