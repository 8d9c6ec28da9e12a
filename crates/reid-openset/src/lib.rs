//! # reid-openset
//!
//! The open-set decision of re-identification: given a query's similarities
//! to the database (gallery), answer "individual X" or "new individual",
//! and score the answers as AnimalCLEF 2025 does. The gallery is the
//! workspace's one gallery, [`reid_index::Gallery`] (embeddings with
//! L2-normalised rows and their records, each with an identity); no
//! libtorch. Parameters follow the workspace convention
//! ([`ParamGuard`]: `FooParams` checked into `ValidFooParams`).
//!
//! - [`score`]: BAKS, BAUS, the AnimalCLEF score (geometric mean, averaged
//!   over datasets; empty cases as the competition metric) and the adjusted
//!   Rand index.
//! - [`decision`]: [`Decision`], top-1 with a threshold, k-NN vote over
//!   identities, the margin of the winning identity over the runner-up,
//!   thresholds per species or dataset ([`Thresholds`]).
//! - [`adapt`]: projections fitted on the database's labels (centring, PCA
//!   whitening, supervised whitening, LDA), refitted inside every episode,
//!   followed by [`expand`]: database-side augmentation within identities
//!   and α-query expansion, and [`rerank`]: k-reciprocal re-ranking of
//!   each query against the database's own neighbourhoods.
//! - [`episodes`]: open-set episodes simulated inside the database, on
//!   which every choice below is made (never on the queries).
//! - [`threshold`]: a threshold chosen from the database alone on those
//!   episodes, with its spread over episodes; per group (dataset), episodes
//!   never crossing groups.
//! - [`probability`]: similarity → match probability (isotonic, Platt),
//!   fitted on database episodes, with expected calibration error.
//! - [`fusion`]: calibrated similarity sources over a shortlist of the
//!   first source (embeddings, keypoints through [`fusion::PairScorer`]),
//!   combined by their weighted mean or a [`stack::LogisticStack`], decided
//!   by a rule chosen on the episodes (top-1, or an identity-level
//!   noisy-or); a [`fusion::MemoScorer`] lets several fusions (shortlist
//!   sizes) score a shared pair once.
//! - [`cluster`](mod@cluster): queries judged new are clustered so each new animal gets
//!   one id (`new_0001`, ...), scored by the adjusted Rand index.
//!
//! ```
//! use ndarray::array;
//! use reid_index::Gallery;
//! use reid_openset::{
//!     Decision, ParamGuard, Rule, SelfCalibrationParams, ValidDecisionParams, decide,
//!     self_calibrate, score,
//! };
//!
//! // Two identities with two photos each, as unit vectors.
//! let emb = array![[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]];
//! let gallery = Gallery::from_labels(emb.view(), &["a", "a", "b", "b"])?;
//! let queries = array![[0.96, 0.28], [-0.8, -0.6]];
//! let params = ValidDecisionParams::top1(0.5)?;
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
//! let cal = self_calibrate(&gallery, &Rule::Top1, &SelfCalibrationParams::default().check()?)?;
//! assert!(cal.threshold.is_finite() && cal.episodes.len() == 10);
//! # Ok::<(), reid_openset::OpensetError>(())
//! ```

pub mod adapt;
mod check;
pub mod cluster;
pub mod decision;
pub mod episodes;
pub mod error;
pub mod expand;
pub mod fusion;
pub mod probability;
pub mod rerank;
pub mod score;
pub mod stack;
pub mod threshold;

pub use adapt::{AdaptParams, Adaptation, Projection, ValidAdaptParams};
pub use cluster::{ClusterParams, Linkage, ValidClusterParams, assign_new_ids, cluster};
pub use decision::{
    Aggregate, Decision, DecisionParams, NEW_INDIVIDUAL, Prediction, Rule, Thresholds,
    ValidDecisionParams, decide, decide_topk,
};
pub use episodes::{
    Encounters, Episode, HeldOut, SelfCalibrationParams, ValidSelfCalibrationParams,
    held_out_split, linear_grid, simulate_episodes, simulate_episodes_in_encounters,
    simulate_held_out_episodes,
};
pub use error::{OpensetError, Result};
pub use fusion::{
    Combine, EmbeddingScorer, FnScorer, FusedShortlist, FusionCalibration, FusionGroupCalibration,
    FusionParams, FusionSource, FusionTrial, MemoScorer, PairScorer, ValidFusionParams, fuse,
    fuse_embeddings, fuse_stacked, fuse_with_sources, self_calibrate_fusion,
    self_calibrate_fusion_groups,
};
pub use probability::{
    CalibrationFit, CalibrationMethod, Calibrator, IsotonicModel, PlattModel,
    calibrate_from_database, expected_calibration_error,
};
pub use reid_core::ParamGuard;
pub use reid_index::TopK;
pub use rerank::{KReciprocalParams, Reranker, ValidKReciprocalParams};
pub use stack::LogisticStack;
pub use threshold::{
    CurvePoint, EpisodeOutcome, GroupCalibration, SelfCalibration, self_calibrate,
    self_calibrate_groups,
};
