//! # reid-pipeline
//!
//! The open-set re-identification pipeline, on embeddings from anywhere
//! (no libtorch): what the example programs run and what a user who brings
//! an `Array2<f32>` of L2-normalised rows calls.
//!
//! - [`OpenSetSplit`]: the database (split `database`) and the queries
//!   (split `query`) of a set of [`Record`]s, and each query's [`Scope`]:
//!   its dataset, else its species, else everything. **A query is only ever
//!   compared with the database of its own scope**: each dataset is its own
//!   catalogue, as in AnimalCLEF (lynx, salamanders and turtles never
//!   match each other, nor do two sites' catalogues of cows).
//! - [`identify`]: per-scope search in the one gallery
//!   ([`reid_index::Gallery`]), a threshold per dataset self-calibrated from
//!   that dataset's database alone (episodes that never leave it), known /
//!   new decisions, and consistent ids for the new animals.
//! - [`choose_adaptation`]: which projection of the embeddings (none,
//!   within-identity whitening, LDA; [`OpenSetParams::adapt`]) scores best
//!   on the database's own self-calibration episodes; [`choose_features`]:
//!   the same over several sets of embeddings (a backbone's alone, or with
//!   tiny-image descriptors appended), the best set and projection kept.
//! - [`fuse`]: a second similarity source (local keypoints, another model)
//!   fused into each query's cosine shortlist of an identification,
//!   calibrated per dataset from the database alone.
//! - [`Identification::score`]: BAKS, BAUS and the AnimalCLEF score per
//!   dataset, closed-set top-1 and the new-id adjusted Rand index;
//!   [`evaluate`]: with the closed-set ranking (within each scope), the
//!   new-individual discovery metrics and the silhouette, as the examples
//!   print them; [`Identification::submission_rows`] for AnimalCLEF.
//! - `report` (feature `report`, on by default): those figures as a JSON
//!   and self-contained HTML report, with a t-SNE plot and match sheets;
//! - `figures` (feature `report`): the pictures of each dataset (known and
//!   new queries' scores with the threshold, the self-calibration curve,
//!   reliability diagrams, CMC, confusions), computed and drawn.
//!
//! ```
//! use ndarray::array;
//! use reid_pipeline::{OpenSetParams, ParamGuard, Record, SplitRole, identify};
//!
//! let rec = |id: &str, who: &str, split: SplitRole| {
//!     Record::new(id, format!("{id}.jpg")).with_identity(who).with_split(split)
//! };
//! let records = vec![
//!     rec("0", "a", SplitRole::Database),
//!     rec("1", "a", SplitRole::Database),
//!     rec("2", "b", SplitRole::Database),
//!     rec("3", "b", SplitRole::Database),
//!     rec("4", "a", SplitRole::Query),
//!     rec("5", "c", SplitRole::Query),
//! ];
//! let emb = array![
//!     [1.0, 0.0, 0.0], [0.98, 0.199, 0.0], [0.0, 1.0, 0.0], [0.199, 0.98, 0.0],
//!     [0.99, 0.141, 0.0], [0.0, 0.0, 1.0],
//! ];
//! let params = OpenSetParams::default().fixed_threshold(Some(0.5)).check()?;
//! let out = identify(&records, emb.view(), &params)?;
//! assert_eq!(out.final_ids, vec!["a".to_string(), "new_0001".to_string()]);
//! let s = out.score(&records)?.expect("queries carry the truth");
//! assert_eq!(s.animalclef.score, 1.0);
//! # Ok::<(), reid_pipeline::PipelineError>(())
//! ```

pub mod adapt;
pub mod error;
pub mod evaluate;
#[cfg(feature = "report")]
pub mod figures;
pub mod fusion;
pub mod identify;
pub mod params;
#[cfg(feature = "report")]
pub mod report;
pub mod score;
pub mod split;

pub use adapt::{
    AdaptChoice, AdaptTrial, Adapted, AdaptedGroup, DEFAULT_DBA, DEFAULT_QE, FeatureChoice,
    FeatureSet, best_index, choose_adaptation, choose_adaptation_staged, choose_features,
    default_adapt_candidates, default_neighbourhood_candidates, default_rerank_candidates,
    neighbourhood_candidates,
};
pub use error::{PipelineError, Result};
pub use evaluate::{Discovery, Evaluation, Headline, Summary, evaluate};
pub use fusion::{FusionReport, SourceCost, fuse};
pub use identify::{Identification, Match, StageSeconds, identify};
pub use params::{OpenSetParams, ValidOpenSetParams};
pub use reid_core::{ParamGuard, Record, Scope, SplitRole};
pub use reid_openset::{
    AdaptParams, Adaptation, CalibrationMethod, Decision, FnScorer, FusionParams,
    KReciprocalParams, Linkage, PairScorer, Rule, SelfCalibrationParams, ValidFusionParams,
};
pub use score::IdentificationScore;
pub use split::OpenSetSplit;
