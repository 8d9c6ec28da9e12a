//! # reid-eval
//!
//! Evaluation of re-identification: top-k accuracy, CMC, mAP, BAKS, BAUS and
//! the AnimalCLEF score; clustering scores (ARI, NMI, silhouette); t-SNE of
//! embeddings (a parallel, seeded Barnes-Hut engine of its own, or
//! linfa-tsne); plots, reports and the submission CSV.
//!
//! # Features
//!
//! All on by default. With `default-features = false` the crate is the
//! metrics ([`metrics`]) and the submission CSV ([`submission`]) alone, and
//! builds none of the drawing, t-SNE or JSON dependencies.
//!
//! | feature | modules | dependencies it adds |
//! |---|---|---|
//! | `tsne` | `tsne` | linfa, linfa-tsne, rand, rand_chacha, reid-index |
//! | `plot` | `plot`, `chart` | plotters, plotters-backend, ab_glyph, dejavu, image |
//! | `report` (implies `plot`) | `matchsheet`, `report` | serde, serde_json |
//!
//! The variants of [`EvalError`] that only a feature's code can produce
//! exist only with that feature (each says which).
//!
//! # Parameters
//!
//! Every set of settings follows the workspace's one convention
//! ([`ParamGuard`], re-exported from `reid-core`): a `FooParams` builder
//! with one setter per setting, checked once by [`ParamGuard::check`] into
//! a `ValidFooParams`, which the functions doing the work take. A rejected
//! setting is an [`EvalError::InvalidParam`] naming it and its value.
//!
//! Metrics and the submission:
//! - [`metrics`]: closed-set ranking metrics from a query × gallery
//!   similarity matrix or from ranked top-k lists (top-k accuracy, CMC, mAP;
//!   ties broken by the lower gallery index; queries without a correct
//!   gallery item left out and counted); BAKS, BAUS, the AnimalCLEF score,
//!   new-individual flags and ARI (re-exported from `reid-openset`);
//!   clustering scores with scikit-learn's definitions (NMI, AMI,
//!   homogeneity, completeness, V-measure, silhouette with Euclidean or
//!   cosine distance);
//! - [`submission`]: the AnimalCLEF 2025 Kaggle submission CSV
//!   (`image_id,identity`, `new_individual` for new animals), written
//!   atomically, read back, and validated against the competition's
//!   `metadata.csv` (every query once, no unknown image, identities from the
//!   database of the query's own dataset).
//!
//! ```
//! use ndarray::array;
//! use reid_eval::ParamGuard;
//! use reid_eval::metrics::{RankingParams, normalized_mutual_info, ranking_metrics};
//!
//! // Two queries against a gallery of four photos of "a", "b", "a", "c".
//! let scores = array![[0.9f32, 0.2, 0.7, 0.1], [0.3, 0.8, 0.9, 0.5]];
//! let params = RankingParams::default().ks(&[1]).cmc_len(4).check()?;
//! let m = ranking_metrics(scores.view(), &["a", "b"], &["a", "b", "a", "c"], &params)?;
//! // Query 0 finds both "a" at ranks 1 and 2 (AP 1); query 1 finds "b" at rank 2 (AP 1/2).
//! assert_eq!(m.top_k(1), Some(0.5));
//! assert_eq!(m.mean_ap, 0.75);
//! assert_eq!(normalized_mutual_info(&[0, 0, 1, 1], &["x", "x", "y", "y"])?, 1.0);
//! # Ok::<(), reid_eval::EvalError>(())
//! ```
//!
//! Pictures and reports (features `plot` and `report`):
//! - `plot`: scatter plots of 2-D points (t-SNE) coloured by identity, with
//!   known/new and right/wrong markers, as PNG and SVG;
//! - `chart`: line charts and histograms with threshold rules (CMC, the
//!   self-calibration curve, known-vs-new score histograms, reliability
//!   diagrams) as PNG and SVG, and the figures they show (`Histogram` with
//!   a threshold on a bin edge, `Reliability` bins and their ECE);
//! - `matchsheet`: match sheets (a query beside its top-k gallery matches,
//!   with identities, scores and the decision) as PNG pages to check by eye;
//! - `report`: a JSON report of metrics, config, versions and timings, and
//!   a self-contained HTML report embedding the plots and match sheets.
//!
//! t-SNE (feature `tsne`):
//! - `tsne`: checked `TsneParams`, Barnes-Hut t-SNE of embeddings
//!   (the native engine, parallel and reproducible, with scikit-learn's
//!   affinities, initialisation and optimiser; or linfa-tsne), and the exact
//!   KL divergence of any embedding of any input
//!   (`kl_divergence`), scored as scikit-learn's exact objective.
//!
//! ```
//! use reid_eval::EvalError;
//!
//! let e = EvalError::InvalidParam { name: "perplexity", reason: "must be < n/3".into() };
//! assert!(e.to_string().contains("perplexity"));
//! ```

#[cfg(feature = "plot")]
pub mod chart;
pub mod error;
mod io;
#[cfg(feature = "report")]
pub mod matchsheet;
pub mod metrics;
#[cfg(feature = "plot")]
pub mod plot;
#[cfg(feature = "report")]
pub mod report;
pub mod submission;
#[cfg(feature = "tsne")]
pub mod tsne;

pub use error::{EvalError, Result};
pub use reid_core::ParamGuard;
