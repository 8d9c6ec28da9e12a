//! # reid-train
//!
//! Fine-tuning of re-identification backbones on libtorch: ArcFace,
//! sub-center ArcFace and batch-hard triplet losses over class-balanced
//! P×K batches from `reid-data`.
//!
//! **Status:** only the error type exists so far; training is tracked in the
//! project's fine-tuning issue and nothing here trains yet.
//!
//! ```
//! use reid_train::TrainError;
//!
//! let e = TrainError::InvalidParam { name: "margin", reason: "must be in [0, pi/2)".into() };
//! assert!(e.to_string().contains("margin"));
//! ```

pub mod error;

pub use error::{Result, TrainError};
