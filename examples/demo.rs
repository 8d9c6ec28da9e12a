//! The main job on the embedded default: a seeded synthetic re-identification
//! dataset, generated, loaded back like real data, described, embedded with a
//! pretrained backbone (EfficientNet-Lite2 by default), indexed, a threshold
//! self-calibrated from the database alone, every query decided known or
//! new, the new animals given consistent new ids, scored, drawn (t-SNE,
//! match sheets) and reported (`<out>/report.html`, `<out>/report.json`,
//! and the headline figures in `<out>/summary.json`).
//! The default pipeline: a projection of the embeddings chosen on the
//! database's own episodes (`--adapt auto`; `--adapt none` turns it off),
//! then each query's cosine shortlist of 50 re-ranked by RootSIFT matching
//! fused with cosine, calibrated from the database alone (`--local sift`;
//! `--local none` turns it off; `xfeat`, `disk`, `aliked` are the learned
//! matchers).
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

use animal_reid::data::SplitRole;
use animal_reid::data::loaders::load_animalclef;
use animal_reid::data::synthetic::SyntheticParams;
use animal_reid::eval::report::Report;
use animal_reid::pipeline::figures::FigureInputs;
use animal_reid::pipeline::{OpenSetParams, ParamGuard, identify};
use reid_examples::{
    AdaptArgs, BackboneArgs, EpisodeArgs, LocalArgs, OutputArgs, bar, finish, load_options,
};

/// Generate the synthetic dataset, embed it, decide every query known or
/// new with a threshold calibrated on the database alone, score, plot and
/// report.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Folder for the generated images and metadata.csv.
    #[arg(long, default_value = "out/synthetic")]
    data: PathBuf,
    /// Folder for the report, plots and match sheets.
    #[arg(long, default_value = "out/demo")]
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
    /// Do not keep embeddings in <data>/embedding-cache.
    #[arg(long)]
    no_cache: bool,
    /// Self-calibration episodes.
    #[arg(long, default_value_t = 20)]
    episodes: usize,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    model: BackboneArgs,
    #[command(flatten)]
    adapt: AdaptArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    local: LocalArgs,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let start = Instant::now();
    // Every setting is checked before any work starts.
    let episodes = EpisodeArgs {
        episodes: args.episodes,
        new_fraction: 0.3,
        query_fraction: 0.3,
        seed: args.seed,
        encounters: "none".into(),
    };
    let openset = OpenSetParams::default()
        .episodes(episodes.params())
        .adapt(args.adapt.params()?)
        .check()?;
    let fusions = args.local.fusions()?;
    args.output.pictures(args.seed).check()?;
    reid_examples::prepare_out_dir("--out", &args.out)?;
    let mut report = Report::new("animal-reid demo: synthetic open-set re-identification");

    // 1. Generate.
    let params = SyntheticParams::default()
        .n_individuals(args.individuals)
        .images_per_individual(args.images)
        .new_identity_fraction(args.new_fraction)
        .seed(args.seed)
        .check()?;
    let t = Instant::now();
    let pb = bar(args.individuals * args.images, "generating", args.quiet);
    params.generate_with_progress(&args.data, |_, _| pb.inc(1))?;
    pb.finish_and_clear();
    println!(
        "generated {} individuals x {} photos in {:.2} s into {}",
        args.individuals,
        args.images,
        t.elapsed().as_secs_f64(),
        args.data.display()
    );
    report.timing_since("generate", t);

    // 2. Load it back through the same loader as AnimalCLEF data.
    let csv = args.data.join("metadata.csv");
    let (ds, loaded) = load_animalclef(&csv, &load_options(false))
        .with_context(|| format!("loading {}", csv.display()))?;
    println!("\nloaded {} ({} records)", csv.display(), ds.len());
    for s in &loaded.skipped {
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
    let info = bb.info().clone();
    println!(
        "\nbackbone {} @{} px, {}-d embeddings, weights {}",
        info.name,
        info.input_size,
        info.dim,
        info.weights
            .as_ref()
            .map_or_else(|| "random".into(), |p| p.display().to_string())
    );
    let cache = (!args.no_cache).then(|| args.data.join("embedding-cache"));
    let (emb, secs, last) =
        args.model
            .embed_with(&bb, &ds.records, cache.as_deref(), args.quiet)?;
    println!(
        "embedded {} images in {:.2} s ({:.1} images/s)",
        ds.len(),
        secs,
        ds.len() as f64 / secs
    );

    reid_examples::record_extraction(&mut report, secs, last.as_ref());

    // 5. Open set: a projection and a threshold from the database alone,
    //    decisions, new ids.
    let t = Instant::now();
    let run = reid_examples::Embedded {
        backbones: vec![bb],
        embeddings: emb,
        seconds: secs,
        last,
    };
    let resolved = args.adapt.resolve_run(
        &args.model,
        run,
        &ds.records,
        cache.as_deref(),
        args.quiet,
        openset,
    )?;
    if resolved.choice.is_some() {
        report.timing_since("choose the features and projection", t);
    }
    let (emb, openset) = (resolved.embeddings, resolved.params);
    let cosine = identify(&ds.records, emb.matrix.view(), &openset)?;
    reid_examples::record_identification(&mut report, "cosine", &cosine.seconds);
    let fused = args.local.refine(
        &fusions,
        &cosine,
        &ds.records,
        emb.matrix.view(),
        &openset,
        args.quiet,
        Some(&mut report),
    )?;
    let ident = fused.as_ref().unwrap_or(&cosine);
    println!(
        "\nopen set: {} queries decided in {:.2} s; {} called new, grouped into {} new ids",
        ident.queries.len(),
        t.elapsed().as_secs_f64(),
        ident
            .predictions
            .iter()
            .filter(|p| p.decision.is_new())
            .count(),
        ident
            .final_ids
            .iter()
            .filter(|id| id.starts_with("new_"))
            .collect::<BTreeSet<_>>()
            .len()
    );

    // 6. Figures, t-SNE, match sheets, report.
    report.version("backbone", info.name.clone()).config(serde_json::json!({
        "individuals": args.individuals, "images": args.images, "new_fraction": args.new_fraction,
        "seed": args.seed, "backbone": args.model.backbone, "input_size": info.input_size,
        "episodes": args.episodes, "rule": "top1", "perplexity": args.output.perplexity,
        "local": args.local.kinds().iter().map(|k| k.name()).collect::<Vec<_>>(),
        "adapt": openset.adapt().map(ToString::to_string), "features": resolved.features,
        "shortlist": args.local.shortlist,
    }));
    let inputs = FigureInputs {
        cosine: fused.as_ref().map(|_| &cosine),
        fixed: None,
    };
    finish(
        &mut report,
        &ds.records,
        emb.matrix.view(),
        ident,
        &inputs,
        &args.out,
        &args.output,
        args.seed,
        start,
    )?;
    println!("demo finished in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}
