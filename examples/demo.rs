//! The main job on the embedded default: a seeded synthetic re-identification
//! dataset, generated, loaded back like real data, described, embedded with a
//! pretrained backbone (EfficientNet-Lite2 by default) and searched against
//! the gallery.
//!
//! ```sh
//! cargo run --release --example demo -- --help
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

#[path = "support/cli.rs"]
mod cli;

use anyhow::{Context, Result};
use clap::Parser;
use cli::bar;

use animal_reid::backbone::pipeline::extract;
use animal_reid::data::SplitRole;
use animal_reid::data::loaders::{LoadOptions, load_animalclef};
use animal_reid::data::synthetic::SyntheticParams;
use animal_reid::index::exact_topk;
use ndarray::Axis;

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
    /// Do not keep embeddings in <out>/embedding-cache.
    #[arg(long)]
    no_cache: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    model: cli::BackboneArgs,
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

    // 4. Embed every image: decode, resize and normalise on a background
    //    thread while the backbone runs; finished images come from the cache.
    let bb = args.model.build()?;
    let info = bb.info();
    println!(
        "\nbackbone {} @{} px, {}-d embeddings, weights {}",
        info.name,
        info.input_size,
        info.dim,
        info.weights
            .as_ref()
            .map_or_else(|| "random".into(), |p| p.display().to_string())
    );
    let cache = (!args.no_cache).then(|| args.out.join("embedding-cache"));
    let params = args.model.extract_params(cache.as_deref())?;
    let t = Instant::now();
    let pb = bar(ds.len(), "embedding", args.quiet);
    let emb = extract(&bb, &ds.records, &params, |p| {
        pb.set_position(p.done as u64)
    })?;
    pb.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "embedded {} images in {:.2} s ({:.1} images/s)",
        ds.len(),
        secs,
        ds.len() as f64 / secs
    );

    // 5. Closed-set accuracy: nearest gallery image of each known query.
    let rows = |role: SplitRole| -> Vec<usize> {
        ds.records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.split.as_ref() == Some(&role))
            .map(|(i, _)| i)
            .collect()
    };
    let (gal_rows, query_rows) = (rows(SplitRole::Database), rows(SplitRole::Query));
    let gal = emb.matrix.select(Axis(0), &gal_rows);
    let known_rows: Vec<usize> = query_rows
        .into_iter()
        .filter(|&i| {
            ds.records[i]
                .identity
                .as_ref()
                .is_some_and(|id| gallery.contains(id))
        })
        .collect();
    let q = emb.matrix.select(Axis(0), &known_rows);
    let top = exact_topk(q.view(), gal.view(), 1)?;
    let correct = known_rows
        .iter()
        .zip(top.indices.column(0))
        .filter(|&(&qi, &gi)| ds.records[qi].identity == ds.records[gal_rows[gi]].identity)
        .count();
    println!(
        "closed-set top-1 nearest-neighbour accuracy on the {} known queries: {:.3}",
        known_rows.len(),
        correct as f64 / known_rows.len().max(1) as f64
    );
    Ok(())
}
