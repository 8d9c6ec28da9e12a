//! `animal-reid`: a catalogue of known individuals for a field team.
//!
//! ```text
//! animal-reid --catalogue cows.db init --backbone mobilenet_v2 --local sift
//! animal-reid --catalogue cows.db enrol --folder known/ --dataset farm-a
//! animal-reid --catalogue cows.db identify --folder batch-07/ --dataset farm-a --out review-07
//! #   a person opens review-07/review.html and fills review-07/decisions.csv
//! animal-reid --catalogue cows.db apply review-07/decisions.csv --actor maria
//! animal-reid --catalogue cows.db undo            # the latest apply or enrol
//! animal-reid --catalogue cows.db stats | log | check | export --out dump/
//! ```
//!
//! The catalogue is a SQLite file (the default) or a PostgreSQL database
//! shared by a team (`--catalogue postgres://user@host/db`). Every command
//! is one transaction; every change is journalled with who, when and why.

// A command-line program: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod commands;
mod config;
mod photos;
mod worker;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A catalogue of known individuals: enrol labelled photos, identify new
/// ones, review and apply the decisions, undo, check.
#[derive(Debug, Parser)]
#[command(
    name = "animal-reid",
    version,
    about = "A catalogue of known individual animals: enrol labelled photos, identify new ones, \
             review and apply the decisions (journalled, undoable), over SQLite or PostgreSQL",
    after_help = "Example:\n  \
        animal-reid --catalogue cows.db init --backbone mobilenet_v2 --local sift\n  \
        animal-reid --catalogue cows.db enrol --folder known/ --dataset farm-a\n  \
        animal-reid --catalogue cows.db identify --folder batch-07/ --dataset farm-a --out review-07\n  \
        animal-reid --catalogue cows.db apply review-07/decisions.csv --actor maria\n\n\
        `animal-reid COMMAND --help` for each command's options."
)]
pub struct Cli {
    /// The catalogue: a SQLite file (`cows.db`, `sqlite://cows.db`) or a
    /// PostgreSQL URL (`postgres://user@host:5432/db`). Default:
    /// `$ANIMAL_REID_CATALOGUE`.
    #[arg(long, global = true, env = "ANIMAL_REID_CATALOGUE")]
    pub catalogue: Option<String>,
    /// Who runs the command (kept in the journal). Default: `$USER`.
    #[arg(long, global = true)]
    pub actor: Option<String>,
    /// Why (kept in the journal).
    #[arg(long, global = true)]
    pub reason: Option<String>,
    /// No progress bars.
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Where this machine sees photos registered under another prefix,
    /// `FROM=TO` (repeatable; e.g. the share mounted at `/data/photos` where
    /// they were registered and at `/mnt/photos` here). Also
    /// `$ANIMAL_REID_PATH_MAP` (`FROM=TO;FROM=TO`). Photos registered by
    /// http(s) URL are downloaded into the animal-reid cache instead.
    #[arg(long, global = true, value_name = "FROM=TO")]
    pub path_map: Vec<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Where photos come from: a folder or a metadata CSV.
#[derive(Debug, Clone, clap::Args)]
pub struct PhotoSource {
    /// A folder of photos (`enrol`: one sub-folder per individual, named
    /// after it; `identify`: any layout).
    #[arg(long, conflicts_with = "csv")]
    pub folder: Option<PathBuf>,
    /// A metadata CSV (AnimalCLEF layout: image_id, identity, path, and
    /// optionally species, split, dataset), paths relative to its folder.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Only the CSV rows of this split (`database`, `query`).
    #[arg(long, requires = "csv")]
    pub split: Option<String>,
    /// The dataset (site, population) the photos belong to; a CSV's
    /// `dataset` column wins where it is filled.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Leave out unreadable or undecodable images (reported) instead of
    /// stopping.
    #[arg(long)]
    pub skip_bad: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a catalogue, with the pipeline its commands will use.
    ///
    /// Example: `animal-reid --catalogue cows.db init --backbone mobilenet_v2 --local sift --shortlist 20`
    Init(config::PipelineArgs),
    /// Show the configured pipeline, or change it (`config --backbone convnext_tiny`):
    /// the next command embeds the catalogue again with the new model.
    Config(config::PipelineArgs),
    /// Enrol labelled photos: a folder with one sub-folder per individual,
    /// or a CSV with an identity column.
    ///
    /// Example: `animal-reid enrol --folder known/ --dataset farm-a`
    Enrol(commands::EnrolArgs),
    /// Identify new photos against the catalogue: writes a review page and
    /// a decisions CSV for a person to fill.
    ///
    /// Example: `animal-reid identify --folder batch-07/ --dataset farm-a --out review-07`
    Identify(commands::IdentifyArgs),
    /// Apply an edited decisions CSV: confirmed matches, new individuals,
    /// rejections, all in one journalled change.
    ///
    /// Example: `animal-reid apply review-07/decisions.csv --actor maria --reason "batch 7"`
    Apply(commands::ApplyArgs),
    /// Undo a change (default: the latest enrol or apply not undone).
    ///
    /// Example: `animal-reid undo 12`
    Undo(commands::UndoArgs),
    /// The journal: every change with who, when, why and what.
    Log(commands::JsonArgs),
    /// Counts per dataset, embeddings per model, size on disk.
    Stats(commands::JsonArgs),
    /// Write the catalogue's metadata CSV and its embeddings (a gallery
    /// file that `reid_index::Gallery::load` reads).
    ///
    /// Example: `animal-reid export --out dump/`
    Export(commands::ExportArgs),
    /// Register photos (labelled ones under their individual, others
    /// unassigned) and queue their embeddings for the workers, computing
    /// nothing.
    ///
    /// Example: `animal-reid --catalogue postgres://team@db/cows ingest --csv archive.csv`
    Ingest(worker::IngestArgs),
    /// Compute queued embeddings: claim a batch with a lease, embed it,
    /// write it back; any number of workers, on any number of machines
    /// sharing the catalogue's PostgreSQL and the photos' storage.
    ///
    /// Example: `animal-reid --catalogue postgres://team@db/cows worker --device cuda --batch 64`
    Worker(worker::WorkerArgs),
    /// The queue's progress: pending, leased, done, parked (with each
    /// failed photo's error), and each worker's photos/s.
    Status(worker::StatusArgs),
    /// Verify the catalogue (and, with `--files`, every photo's file);
    /// exits with status 1 when anything is wrong.
    Check(commands::CheckArgs),
}

/// The `--path-map` options of this run.
static PATH_MAPS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Where this run reads photos from: paths (after `--path-map` and
/// `$ANIMAL_REID_PATH_MAP`), and http(s) URLs downloaded into the cache.
pub fn fetcher() -> anyhow::Result<reid_catalogue::storage::PhotoFetcher> {
    let mut f = reid_catalogue::storage::PhotoFetcher::new(reid_catalogue::storage::default_dir());
    for spec in PATH_MAPS.get().into_iter().flatten() {
        f = f.map_spec(spec)?;
    }
    Ok(f.with_env_maps()?)
}

fn main() {
    let cli = Cli::parse();
    let _ = PATH_MAPS.set(cli.path_map.clone());
    match commands::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
