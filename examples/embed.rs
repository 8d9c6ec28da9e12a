//! Images to an embeddings file: an AnimalCLEF-style metadata CSV (or a
//! split CSV such as lion.csv) or a folder per individual, embedded with any
//! backbone of the registry, saved as one checked index file (magic,
//! version, sha256; written atomically) holding the L2-normalised
//! embeddings, the image ids, identities, the split / dataset / species /
//! path of each image and the model id. `reid_index::Gallery::load` reads it
//! back, and so does the `tsne` example.
//!
//! ```sh
//! cargo run --release --example embed -- --csv ../shared/datasets/lion/lion.csv --out lion.reidx
//! cargo run --release --example embed -- --folders my_animals --out mine.reidx
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;

use animal_reid::data::loaders::{load_animalclef, load_folders};
use animal_reid::index::Gallery;
use reid_examples::{BackboneArgs, load_options};

/// Embed a metadata CSV or a folder tree of images into one embeddings file.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// AnimalCLEF-style metadata CSV (paths relative to its folder).
    #[arg(long, conflicts_with = "folders")]
    csv: Option<PathBuf>,
    /// A folder per individual (identity = the folder holding the image).
    #[arg(long)]
    folders: Option<PathBuf>,
    /// The embeddings file to write.
    #[arg(long, default_value = "embeddings.reidx")]
    out: PathBuf,
    /// Embedding cache folder (reused across runs); none if not given.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Skip unreadable rows and images (reported) instead of stopping.
    #[arg(long)]
    skip_bad: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    model: BackboneArgs,
}

fn main() -> Result<()> {
    let args = Args::parse();
    reid_examples::prepare_out_file("--out", &args.out)?;
    let opts = load_options(args.skip_bad);
    let (mut ds, report) = match (&args.csv, &args.folders) {
        (Some(csv), None) => {
            load_animalclef(csv, &opts).with_context(|| format!("loading {}", csv.display()))?
        }
        (None, Some(dir)) => {
            load_folders(dir, &opts).with_context(|| format!("loading {}", dir.display()))?
        }
        _ => bail!("give --csv FILE or --folders DIR"),
    };
    for s in &report.skipped {
        eprintln!("skipped {}: {}", s.location, s.error);
    }
    print!("{}", ds.stats());

    let run =
        args.model
            .embed_dataset(&mut ds, args.cache.as_deref(), args.quiet, args.skip_bad)?;
    let secs = run.seconds;
    println!(
        "embedded {} images with {} in {:.1} s ({:.1} images/s)",
        ds.len(),
        run.describe(),
        secs,
        ds.len() as f64 / secs.max(1e-9)
    );

    // The loader's records as they are: identity, split, dataset, species,
    // path and every extra column travel into the file.
    let records = ds.records.clone();
    let model_id = format!(
        "{}{}",
        run.model_id(),
        args.model
            .weights
            .as_ref()
            .map_or_else(String::new, |w| format!(" ({})", w.display()))
    );
    let gallery = Gallery::from_parts(model_id, run.embeddings.matrix.view(), records)?;
    gallery.save(&args.out)?;
    println!(
        "wrote {} embeddings ({} x {}) to {}",
        gallery.len(),
        gallery.len(),
        gallery.dim(),
        args.out.display()
    );
    Ok(())
}
