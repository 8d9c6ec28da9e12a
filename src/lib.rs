//! # animal-reid
//!
//! Open-set animal re-identification in Rust: for each new photo, which known
//! individual it shows, or that it is a new individual.
//!
//! This facade re-exports the workspace crates, one per concern, with the
//! arrows pointing one way (data → backbone → index → openset → eval):
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`data`] | `reid-data` | records, loaders, decoding, preprocessing, splits, sampler, synthetic set |
//! | [`backbone`] | `reid-backbone` | libtorch backbones, weights, devices |
//! | [`index`] | `reid-index` | gallery index and top-k search |
//! | [`openset`] | `reid-openset` | open-set decisions |
//! | [`eval`] | `reid-eval` | metrics, t-SNE, reports |
//! | [`train`] | `reid-train` | fine-tuning |
//! | [`local`] | `reid-local` | local keypoints (RootSIFT), matching, RANSAC |
//!
//! and [`job`] wires the libtorch-free part together: database / query
//! split, self-calibrated thresholds per dataset, decisions, new-individual
//! ids and the score against the truth, optionally with a second similarity
//! source (local keypoints) fused in ([`job::run_openset_fused`]).
//!
//! ```
//! use animal_reid::data::{Record, SplitRole};
//!
//! let r = Record::new("0", "a.jpg");
//! assert_eq!(r.split, None::<SplitRole>);
//! ```

pub mod job;

pub use reid_backbone as backbone;
pub use reid_data as data;
pub use reid_eval as eval;
pub use reid_index as index;
pub use reid_local as local;
pub use reid_openset as openset;
pub use reid_train as train;
