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
//!
//! One file per job: `params` ([`TrainParams`] → [`ValidTrainParams`],
//! [`Freeze`]), `trainer` ([`Trainer`]: the fit loop, the schedule, the log),
//! `checkpoint` (the files of a checkpoint folder, [`TrainState`], saving and
//! loading weights) and `validation` ([`openset_validation`] and
//! [`Trainer::evaluate`], the open-set scoring); everything is re-exported
//! here.

mod checkpoint;
mod params;
mod trainer;
mod validation;

pub use checkpoint::{TrainState, files, load_var_store, read_state, save_var_store};
pub use params::{Freeze, TrainParams, ValidTrainParams};
pub use trainer::{EpochLog, Progress, TrainReport, Trainer, clip_global_norm, lr_factor};
pub use validation::{ValScore, openset_validation};
