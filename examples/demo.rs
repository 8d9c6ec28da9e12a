//! The main job on the embedded default: a seeded synthetic re-identification
//! dataset, generated, loaded back like real data, described, and pushed
//! through the decoding and preprocessing pipeline.
//!
//! What exists of the pipeline runs here and nothing more: embedding, gallery
//! search, open-set decisions and evaluation join as their crates land.
//!
//! ```sh
//! cargo run --release --example demo -- --help
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use animal_reid::data::loaders::{LoadOptions, load_animalclef};
use animal_reid::data::synthetic::SyntheticParams;
use animal_reid::data::{BatchIter, PrefetchOptions, PreprocessConfig, SplitRole};

/// Generate the synthetic dataset, load it, print its statistics and run the
/// preprocessing pipeline over it.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Folder for the generated images and metadata.csv.
    #[arg(long, default_value = "out/synthetic")]
    out: PathBuf,
    /// Number of individuals.
    #[arg(long, default_value_t = 100)]
    individuals: usize,
    /// Photos per individual.
    #[arg(long, default_value_t = 10)]
    images: usize,
    /// Fraction of individuals that appear only as queries (new individuals).
    #[arg(long, default_value_t = 0.2)]
    new_fraction: f64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 2025)]
    seed: u64,
    /// Side of the model input, pixels (EfficientNet-Lite2 uses 260).
    #[arg(long, default_value_t = 260)]
    input_size: u32,
    /// Images per preprocessed batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

fn bar(len: usize, what: &str, quiet: bool) -> ProgressBar {
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

fn main() -> Result<()> {
    let args = Args::parse();

    // 1. Generate.
    let params = SyntheticParams::default()
        .n_individuals(args.individuals)
        .images_per_individual(args.images)
        .new_identity_fraction(args.new_fraction)
        .seed(args.seed)
        .check()?;
    let t = Instant::now();
    let pb = bar(args.individuals * args.images, "generating", args.quiet);
    params.generate_with_progress(&args.out, |_, _| pb.inc(1))?;
    pb.finish_and_clear();
    println!(
        "generated {} individuals x {} photos in {:.2} s into {}",
        args.individuals,
        args.images,
        t.elapsed().as_secs_f64(),
        args.out.display()
    );

    // 2. Load it back through the same loader as AnimalCLEF data.
    let csv = args.out.join("metadata.csv");
    let (ds, report) = load_animalclef(&csv, &LoadOptions::default().with_check_files(true))
        .with_context(|| format!("loading {}", csv.display()))?;
    println!("\nloaded {} ({} records)", csv.display(), ds.len());
    for s in &report.skipped {
        eprintln!("skipped {}: {}", s.location, s.error);
    }
    print!("{}", ds.stats());

    // 3. The open-set structure: which query identities are new.
    let gallery: BTreeSet<String> = ds
        .by_split(&SplitRole::Database)
        .identities()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let queries = ds.by_split(&SplitRole::Query);
    let new_queries = queries
        .records
        .iter()
        .filter(|r| r.identity.as_ref().is_some_and(|id| !gallery.contains(id)))
        .count();
    println!(
        "open set: {} gallery identities; {} queries, {} of known individuals, {} of new ones",
        gallery.len(),
        queries.len(),
        queries.len() - new_queries,
        new_queries
    );

    // 4. Decode, resize and normalise every image into [B, 3, H, W] batches,
    //    prefetched on a background thread.
    let pre = PreprocessConfig::new(args.input_size, args.input_size).check()?;
    let t = Instant::now();
    let pb = bar(ds.len(), "preprocessing", args.quiet);
    let mut shape = None;
    let mut checksum = 0.0f64;
    for batch in BatchIter::new(
        ds.records.clone(),
        pre,
        PrefetchOptions::new(args.batch_size)?,
    ) {
        let batch = batch?;
        pb.inc(batch.ids.len() as u64);
        shape.get_or_insert_with(|| batch.images.shape().to_vec());
        checksum += batch.images.iter().map(|&v| f64::from(v)).sum::<f64>();
    }
    pb.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "preprocessed {} images to {}x{} in {:.2} s ({:.0} images/s); first batch shape {:?}; mean value {:.4}",
        ds.len(),
        args.input_size,
        args.input_size,
        secs,
        ds.len() as f64 / secs,
        shape.unwrap_or_default(),
        checksum / (ds.len() as f64 * 3.0 * f64::from(args.input_size).powi(2)),
    );
    println!(
        "\nnot yet wired: embedding (reid-backbone), gallery search (reid-index), \
         open-set decisions (reid-openset), evaluation (reid-eval)."
    );
    Ok(())
}
