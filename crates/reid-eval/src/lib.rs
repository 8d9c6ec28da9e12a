//! # reid-eval
//!
//! Evaluation of re-identification: top-k accuracy, CMC, mAP, BAKS, BAUS and
//! the AnimalCLEF score; clustering scores (ARI, NMI, silhouette); t-SNE of
//! embeddings through linfa-tsne; plots, reports and the submission CSV.
//!
//! **Status:** only the error type exists so far; the metrics are tracked in
//! the project's evaluation issue and nothing here computes them yet.
//!
//! ```
//! use reid_eval::EvalError;
//!
//! let e = EvalError::InvalidParam { name: "perplexity", reason: "must be < n/3".into() };
//! assert!(e.to_string().contains("perplexity"));
//! ```

pub mod error;

pub use error::{EvalError, Result};
