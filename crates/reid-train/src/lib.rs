//! # reid-train
//!
//! Fine-tuning of re-identification backbones on libtorch: ArcFace,
//! sub-center ArcFace, batch-hard triplet and softmax losses
//! ([`loss`]), a projection head ([`head`]), and a trainer ([`train`]) over
//! class-balanced P×K batches from `reid-data` with AdamW, cosine schedule
//! with warm-up, a lower backbone learning rate, frozen stages (and
//! frozen batch-norm statistics, for tuning a few blocks), gradient
//! clipping, per-epoch open-set validation (through `reid-pipeline`: each
//! validation query matched within its own dataset, each dataset's
//! threshold from its own training images), early stopping and atomic
//! safetensors checkpoints that `reid_backbone::BackboneBuilder::weights_file`
//! loads back.
//!
//! Settings follow the workspace convention ([`ParamGuard`]):
//! [`TrainParams`] → [`ValidTrainParams`], [`LossParams`] →
//! [`ValidLossParams`]; the losses' own params check into the loss
//! operators ([`loss::ArcFaceParams`] → [`loss::ArcFace`], and so on).
//!
//! ```
//! use reid_train::ParamGuard;
//! use reid_train::loss::{ArcFaceParams, TripletParams, Distance};
//! use tch::Tensor;
//!
//! let arc = ArcFaceParams::default().margin(0.5).scale(64.0).check()?;
//! let x = Tensor::randn([4, 8], (tch::Kind::Float, tch::Device::Cpu));
//! let w = Tensor::randn([3, 8], (tch::Kind::Float, tch::Device::Cpu));
//! let labels = Tensor::from_slice(&[0i64, 1, 2, 0]);
//! let l = arc.loss(&x, &w, &labels)?;
//! assert!(l.double_value(&[]) > 0.0);
//! // Bad labels are a typed error naming the shape.
//! assert!(arc.loss(&x, &w, &Tensor::from_slice(&[0i64, 1, 5, 0])).is_err());
//! let bad = TripletParams::default().margin(0.0).distance(Distance::Cosine);
//! assert!(bad.check().is_err());
//! # Ok::<(), reid_train::TrainError>(())
//! ```

pub mod error;
pub mod head;
pub mod loss;

pub use error::{Result, TrainError};
pub mod train;

/// The workspace convention for checked parameters (see `reid_core::params`).
pub use reid_core::ParamGuard;

pub use head::{Criterion, LossParams, ProjectionHead, ValidLossParams};
pub use train::{
    EpochLog, Freeze, Progress, TrainParams, TrainReport, TrainState, Trainer, ValScore,
    ValidTrainParams, load_var_store, openset_validation,
};
