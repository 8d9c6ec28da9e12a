//! # animal-reid
//!
//! Open-set animal re-identification in Rust: for each new photo, which known
//! individual it shows, or that it is a new individual.
//!
//! This facade re-exports the workspace crates, one per concern, with the
//! arrows pointing one way (data → backbone → index → openset → pipeline →
//! eval):
//!
//! | module | crate | libtorch | what |
//! |---|---|---|---|
//! | [`core`] | `reid-core` | no | the one record type, dataset scopes, the parameter convention, atomic writes |
//! | [`data`] | `reid-data` | no | loaders, decoding, preprocessing, splits, sampler, synthetic set |
//! | `backbone` | `reid-backbone` | yes (`torch` feature) | libtorch backbones, weights, devices, extraction |
//! | [`index`] | `reid-index` | no | the gallery: exact and approximate top-k search, filters, files |
//! | [`openset`] | `reid-openset` | no | decisions, self-calibrated thresholds, calibration, fusion, clustering |
//! | [`local`] | `reid-local` | no | local keypoints (RootSIFT), matching, RANSAC |
//! | `glue` | `reid-glue` | yes (`torch` feature) | learned local matching: XFeat, DISK, ALIKED keypoints, LightGlue |
//! | [`pipeline`] | `reid-pipeline` | no | the open-set pipeline: per-dataset search, self-calibration, decisions, fusion, new ids, scores, evaluation |
//! | [`eval`] | `reid-eval` | no | metrics, t-SNE, plots, match sheets, reports, submission |
//! | `train` | `reid-train` | yes (`torch` feature) | fine-tuning |
//!
//! The `torch` feature (on by default) adds the two libtorch crates; with
//! `default-features = false` nothing links libtorch, and embeddings from
//! anywhere go through the same pipeline.
//!
//! ```
//! use animal_reid::pipeline::{OpenSetParams, ParamGuard, Record, SplitRole, identify};
//! use ndarray::array;
//!
//! let rec = |id: &str, who: &str, split| {
//!     Record::new(id, format!("{id}.jpg")).with_identity(who).with_split(split)
//! };
//! let records = vec![
//!     rec("0", "a", SplitRole::Database),
//!     rec("1", "b", SplitRole::Database),
//!     rec("2", "a", SplitRole::Query),
//! ];
//! let emb = array![[1.0f32, 0.0], [0.0, 1.0], [0.96, 0.28]];
//! let params = OpenSetParams::default().fixed_threshold(Some(0.5)).check()?;
//! let out = identify(&records, emb.view(), &params)?;
//! assert_eq!(out.final_ids, vec!["a".to_string()]);
//! # Ok::<(), animal_reid::pipeline::PipelineError>(())
//! ```

pub use ndarray;
#[cfg(feature = "torch")]
pub use reid_backbone as backbone;
pub use reid_catalogue as catalogue;
pub use reid_core as core;
pub use reid_data as data;
pub use reid_eval as eval;
#[cfg(feature = "torch")]
pub use reid_glue as glue;
pub use reid_index as index;
pub use reid_local as local;
pub use reid_openset as openset;
pub use reid_pipeline as pipeline;
#[cfg(feature = "torch")]
pub use reid_train as train;
