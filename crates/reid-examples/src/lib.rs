//! # reid-examples
//!
//! What the example programs of animal-reid (`demo`, `evaluate`,
//! `animalclef`, `embed`, `tsne`, `train`, `compare`) share, so that each
//! of them stays a thin `main` over the libraries (the way candle and burn
//! keep their examples' shared code in a crate of its own). Not published;
//! it prints, the libraries never do.
//!
//! - [`BackboneArgs`]: `--backbone`, `--weights`, `--device`, `--precision`,
//!   `--pooling`, `--flip`, `--batch-size`; builds the backbone and embeds
//!   records with a progress bar.
//! - [`EpisodeArgs`]: the self-calibration episodes (`--episodes`,
//!   `--new-fraction`, `--query-fraction`, `--seed`).
//! - [`AdaptArgs`]: what is searched and how it is projected (`--grid`,
//!   `--tiny`, `--tune`, `--adapt`, `--dba`, `--qe`), chosen on the
//!   database's episodes; [`tune`]: the blocks under the grid descriptors
//!   fine-tuned on the database, a share held out for the episodes.
//! - [`LocalArgs`]: local keypoint fusion (`--local 10,50`, ...).
//! - [`OutputArgs`] and [`finish`]: the figures printed and reported after
//!   an identification, the t-SNE plot, the match sheets and the report.
//! - [`record_embedding`], [`record_identification`], [`timing_table`]:
//!   where a run's time went, stage by stage (printed by [`finish`] and
//!   written to `summary.json` as `stages`).
//! - [`bar`], [`shared_dir`], [`load_options`].
//!
//! ```
//! use clap::Parser;
//! use reid_examples::EpisodeArgs;
//!
//! #[derive(Parser)]
//! struct Args {
//!     #[command(flatten)]
//!     episodes: EpisodeArgs,
//! }
//! let a = Args::parse_from(["prog", "--episodes", "5"]);
//! assert_eq!(a.episodes.episodes, 5);
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod backbone;
mod episodes;
mod local;
mod output;
mod timings;
pub mod tune;

use indicatif::{ProgressBar, ProgressStyle};

pub use backbone::{BackboneArgs, Embedded};
pub use episodes::{
    AdaptArgs, EpisodeArgs, Resolved, adapt_summary, choice_summary, feature_bases, feature_sets,
    feature_views,
};
pub use local::{Keypoints, LocalArgs, cost_summary, keep_best_fusion, memo_summary, scorer_refs};
pub use output::{
    OutputArgs, finish, prepare_out_dir, prepare_out_file, print_evaluation, write_json,
};
/// The index of the highest score, the earliest of equals (the pipeline's
/// rule for every choice on the database's episodes).
pub use reid_pipeline::best_index;
pub use timings::{
    record_embedding, record_extraction, record_fusion, record_identification, timing_table,
    timings_json,
};

/// A progress bar of `len` steps labelled `what`, hidden when `quiet`.
pub fn bar(len: usize, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

pub use reid_core::paths::shared_dir;

/// Loader options: fail on the first bad row or file, or skip and report
/// them; every image file checked.
pub fn load_options(skip_bad: bool) -> reid_data::loaders::LoadOptions {
    use reid_data::loaders::LoadOptions;
    if skip_bad {
        LoadOptions::skip()
    } else {
        LoadOptions::default()
    }
    .with_check_files(true)
}
