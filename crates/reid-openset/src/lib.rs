//! # reid-openset
//!
//! The open-set decision of re-identification: given a query's similarities
//! to the database (gallery), answer "individual X" or "new individual",
//! and score the answers as AnimalCLEF 2025 does. Everything works on
//! `ndarray::Array2<f32>` embeddings with L2-normalised rows and `String`
//! identity labels; no libtorch.
//!
//! - [`score`]: BAKS, BAUS, the AnimalCLEF score (geometric mean, averaged
//!   over datasets; empty cases as the competition metric) and the adjusted
//!   Rand index.
//! - [`decision`]: [`Decision`], top-1 with a threshold, k-NN vote over
//!   identities, thresholds per species or dataset ([`Thresholds`]).
//! - [`selfcal`]: a threshold chosen from the database alone by simulated
//!   open-set episodes, with its spread over episodes.
//! - [`calibrate`]: similarity → match probability (isotonic, Platt), fitted
//!   on database episodes, with expected calibration error.
//! - [`fusion`]: weighted mean of calibrated similarity sources over a
//!   shortlist of the first source (embeddings now, keypoints later through
//!   [`fusion::PairScorer`]).
//! - [`cluster`](mod@cluster): queries judged new are clustered so each new animal gets
//!   one id (`new_0001`, ...), scored by the adjusted Rand index.
//!
//! ```
//! use ndarray::array;
//! use reid_openset::{
//!     Decision, DecisionParams, Gallery, Rule, SelfCalibrationParams, decide, self_calibrate,
//!     score,
//! };
//!
//! // Two identities with two photos each, as unit vectors.
//! let gallery = Gallery::new(
//!     array![[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]],
//!     vec!["a".into(), "a".into(), "b".into(), "b".into()],
//! )?;
//! let queries = array![[0.96, 0.28], [-0.8, -0.6]];
//! let params = DecisionParams::top1(0.5)?;
//! let preds = decide::<&str>(&gallery, queries.view(), None, &params)?;
//! assert_eq!(preds[0].decision, Decision::Known("a".into()));
//! assert_eq!(preds[1].decision, Decision::New); // best cosine is -0.8
//!
//! // Scored against the truth: query 1 is a new individual "c".
//! let decisions: Vec<Decision> = preds.iter().map(|p| p.decision.clone()).collect();
//! let s = score::open_set_score(&["a", "c"], &decisions, &[false, true])?;
//! assert_eq!((s.baks, s.baus), (Some(1.0), Some(1.0)));
//!
//! // A threshold from the database alone (episodes inside the gallery).
//! let cal = self_calibrate(&gallery, &Rule::Top1, &SelfCalibrationParams::default())?;
//! assert!(cal.threshold.is_finite() && cal.episodes.len() == 10);
//! # Ok::<(), reid_openset::OpensetError>(())
//! ```

pub mod calibrate;
mod check;
pub mod cluster;
pub mod decision;
pub mod error;
pub mod fusion;
pub mod score;
pub mod selfcal;

pub use calibrate::{
    CalibrationFit, CalibrationMethod, Calibrator, IsotonicModel, PlattModel,
    calibrate_from_database, expected_calibration_error,
};
pub use cluster::{ClusterParams, Linkage, assign_new_ids, cluster};
pub use decision::{
    Aggregate, Decision, DecisionParams, Gallery, NEW_INDIVIDUAL, Prediction, Rule, Thresholds,
    decide, decide_topk,
};
pub use error::{OpensetError, Result};
pub use fusion::{
    EmbeddingScorer, FnScorer, FusionCalibration, FusionSource, PairScorer, fuse, fuse_embeddings,
    self_calibrate_fusion,
};
pub use reid_index::TopK;
pub use selfcal::{
    GroupCalibration, SelfCalibration, SelfCalibrationParams, self_calibrate,
    self_calibrate_groups, simulate_episodes,
};
