//! # reid-train
//!
//! Fine-tuning of re-identification backbones on libtorch: ArcFace,
//! sub-center ArcFace, batch-hard triplet and softmax losses
//! ([`loss`]), a projection head ([`head`]), and a trainer ([`train`]) over
//! class-balanced P×K batches from `reid-data` with AdamW, cosine schedule
//! with warm-up, a lower backbone learning rate, frozen stages, gradient
//! clipping, per-epoch open-set validation, early stopping and atomic
//! safetensors checkpoints that `reid_backbone::BackboneBuilder::weights_file`
//! loads back.
//!
//! ```
//! use reid_train::loss::{ArcFaceParams, TripletParams, Distance};
//! use tch::Tensor;
//!
//! let arc = ArcFaceParams::new(0.5, 64.0).check()?;
//! let x = Tensor::randn([4, 8], (tch::Kind::Float, tch::Device::Cpu));
//! let w = Tensor::randn([3, 8], (tch::Kind::Float, tch::Device::Cpu));
//! let labels = Tensor::from_slice(&[0i64, 1, 2, 0]);
//! let l = arc.loss(&x, &w, &labels)?;
//! assert!(l.double_value(&[]) > 0.0);
//! // Bad labels are a typed error naming the shape.
//! assert!(arc.loss(&x, &w, &Tensor::from_slice(&[0i64, 1, 5, 0])).is_err());
//! assert!(TripletParams::new(0.0, Distance::Cosine).check().is_err());
//! # Ok::<(), reid_train::TrainError>(())
//! ```

pub mod error;
pub mod head;
pub mod loss;

pub use error::{Result, TrainError};
pub mod train;

pub use head::{Criterion, LossConfig, ProjectionHead};
pub use train::{
    EpochLog, Freeze, Progress, TrainConfig, TrainReport, TrainState, Trainer, ValScore,
    load_var_store, openset_validation,
};
