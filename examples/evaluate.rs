//! Open-set evaluation of a split CSV with the truth (AnimalCLEF columns:
//! `image_id,identity,path,species,split,dataset`, queries keeping their true
//! identity), such as `../shared/datasets/lion/lion.csv`:
//! embed every image, search the database, decide known/new with a fixed
//! threshold and with one self-calibrated from the database alone (one per
//! dataset), print BAKS, BAUS and the AnimalCLEF score of each, the ranking
//! and clustering figures, and write a t-SNE plot, match sheets and a JSON
//! and HTML report into `--out`.
//!
//! ```sh
//! cargo run --release --example evaluate -- --csv ../shared/datasets/lion/lion.csv --out out/lion
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "support/cli.rs"]
mod cli;
#[path = "support/outputs.rs"]
mod outputs;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;

use animal_reid::data::loaders::load_animalclef;
use animal_reid::eval::report::Report;
use animal_reid::job::{JobParams, run_openset};
use animal_reid::openset::{Aggregate, Rule};

/// Embed, search, decide (fixed and self-calibrated threshold) and score a split CSV.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Split CSV with the truth (default: lion.csv in the shared data folder).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Embedding cache folder (reused across runs); none if not given.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Folder for the report, plots and match sheets.
    #[arg(long, default_value = "out/evaluate")]
    out: PathBuf,
    /// One self-calibrated threshold for all datasets instead of one each.
    #[arg(long)]
    one_threshold: bool,
    /// The fixed threshold to report (the AnimalCLEF 2025 baseline uses 0.6).
    #[arg(long, default_value_t = 0.6)]
    threshold: f32,
    /// Decision rule: `top1`, or `knn:K` (best identity by the max of its
    /// similarities among the K nearest).
    #[arg(long, default_value = "top1")]
    rule: String,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    selfcal: cli::SelfCalArgs,
    #[command(flatten)]
    model: cli::BackboneArgs,
    #[command(flatten)]
    output: outputs::OutputArgs,
}

fn parse_rule(s: &str) -> Result<Rule> {
    if s == "top1" {
        return Ok(Rule::Top1);
    }
    if let Some(k) = s.strip_prefix("knn:") {
        let k: usize = k.parse().with_context(|| format!("--rule {s}"))?;
        return Ok(Rule::Knn {
            k,
            per_identity: k,
            aggregate: Aggregate::Max,
        });
    }
    bail!("--rule {s}: use top1 or knn:K")
}

fn main() -> Result<()> {
    let args = Args::parse();
    let start = Instant::now();
    let csv = args
        .csv
        .clone()
        .unwrap_or_else(|| cli::shared_dir().join("datasets/lion/lion.csv"));
    let (ds, _) = load_animalclef(&csv, &cli::load_options(false))
        .with_context(|| format!("loading {}", csv.display()))?;
    print!("{}", ds.stats());
    let rule = parse_rule(&args.rule)?;
    let mut report = Report::new(format!(
        "animal-reid: open-set evaluation of {}",
        csv.display()
    ));

    // Embed.
    let run = args
        .model
        .embed(&ds.records, args.cache.as_deref(), args.quiet)?;
    let (bb, emb) = (run.backbone, run.embeddings);
    report.timing("embed", run.seconds);
    println!(
        "embedded {} images with {} @{} ({}-d) in {:.1} s",
        ds.len(),
        bb.info().name,
        bb.info().input_size,
        bb.info().dim,
        run.seconds
    );

    // The fixed threshold, for comparison.
    let fixed = run_openset(
        &ds.records,
        emb.matrix.view(),
        &JobParams::default()
            .rule(rule)
            .fixed_threshold(Some(args.threshold))
            .check()?,
    )?;
    println!(
        "{} database images, {} queries",
        fixed.database.len(),
        fixed.queries.len()
    );
    let lowest = fixed
        .predictions
        .iter()
        .map(|p| p.similarity)
        .fold(f32::INFINITY, f32::min);
    println!("lowest best-match similarity of any query: {lowest:.3}");
    println!("\nfixed threshold {:.3}:", args.threshold);
    let fixed_score = fixed.score(&ds.records)?;
    if let Some(s) = &fixed_score {
        outputs::print_score(s);
    }

    // Self-calibrated from the database alone.
    let sc = args.selfcal.params()?;
    let t = Instant::now();
    let job = run_openset(
        &ds.records,
        emb.matrix.view(),
        &JobParams::default()
            .rule(rule)
            .selfcal(sc)
            .per_dataset(!args.one_threshold)
            .check()?,
    )?;
    report.timing_since("self-calibrate, search, decide, cluster", t);
    println!(
        "\nself-calibrated from the database alone ({} episodes, {:.2} s):",
        args.selfcal.episodes,
        t.elapsed().as_secs_f64()
    );

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    report
        .version("backbone", bb.info().name.clone())
        .config(serde_json::json!({
            "csv": csv, "backbone": args.model.backbone, "input_size": bb.info().input_size,
            "rule": args.rule, "fixed_threshold": args.threshold, "episodes": args.selfcal.episodes,
            "new_fraction": args.selfcal.new_fraction, "query_fraction": args.selfcal.query_fraction,
            "seed": args.selfcal.seed, "per_dataset": !args.one_threshold,
        }));
    if let Some(s) = &fixed_score {
        report.section(format!("Fixed threshold {:.3}", args.threshold));
        report.value_from("score", s)?;
    }
    outputs::finish(
        &mut report,
        &ds.records,
        emb.matrix.view(),
        &job,
        &args.out,
        &args.output,
        args.selfcal.seed,
        start,
    )?;
    Ok(())
}
