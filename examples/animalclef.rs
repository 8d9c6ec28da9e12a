//! AnimalCLEF 2025: a competition folder (`metadata.csv` and its images) to
//! a Kaggle `submission.csv` (`image_id,identity`, `new_individual` for new
//! animals). Every image is embedded; each query is searched only within
//! its own dataset (lynx, salamanders, sea turtles: each dataset is its own
//! catalogue); one threshold per dataset is self-calibrated from that
//! dataset's database alone; each query is decided, and the submission is
//! checked against the metadata (one row per query, identities of the
//! query's own dataset) before it is written atomically. By default a
//! projection of the embeddings is chosen on each run's database episodes
//! (`--adapt auto`; `--adapt none` turns it off) and each query's cosine
//! shortlist of 50 is re-ranked by RootSIFT matching fused with cosine
//! (`--local sift`; `--local none` turns it off; `xfeat`, `disk`,
//! `aliked` are the learned matchers), calibrated per dataset from its
//! database alone. A report (`report.html`, `report.json` and the
//! pictures in `figures/`) shows each dataset's query scores against its
//! threshold and the self-calibration curve the threshold came from
//! (`--report DIR`; by default `animalclef-report` beside the submission).
//!
//! ```sh
//! cargo run --release --example animalclef -- --root AnimalCLEF2025 --out submission.csv
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;

use animal_reid::data::loaders::load_animalclef;
use animal_reid::eval::report::Report;
use animal_reid::eval::submission::{SubmissionReference, write_validated_submission};
use animal_reid::pipeline::figures::{FigureInputs, write_figures};
use animal_reid::pipeline::report::{add_thresholds, write_report};
use animal_reid::pipeline::{OpenSetParams, ParamGuard, identify};
use reid_examples::{AdaptArgs, BackboneArgs, EpisodeArgs, LocalArgs, load_options};

/// Embed an AnimalCLEF 2025 folder, decide every query with per-dataset
/// self-calibrated thresholds and write the submission CSV.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The competition folder holding metadata.csv and the images.
    #[arg(long)]
    root: PathBuf,
    /// The metadata file, if not <root>/metadata.csv.
    #[arg(long)]
    metadata: Option<PathBuf>,
    /// The submission file to write.
    #[arg(long, default_value = "submission.csv")]
    out: PathBuf,
    /// Folder for the report and its pictures (default: `animalclef-report`
    /// in the submission's folder).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Embedding cache folder (reused across runs); none if not given.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Use this threshold for every dataset instead of self-calibrating.
    #[arg(long)]
    threshold: Option<f32>,
    /// Skip rows whose image is missing, unreadable or cannot be decoded (a
    /// truncated JPEG, say): each is reported and left out of the job and of
    /// the submission check, instead of stopping at the first.
    #[arg(long)]
    skip_bad: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    episodes: EpisodeArgs,
    #[command(flatten)]
    adapt: AdaptArgs,
    #[command(flatten)]
    model: BackboneArgs,
    #[command(flatten)]
    local: LocalArgs,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let start = Instant::now();
    let params = OpenSetParams::default()
        .fixed_threshold(args.threshold)
        .episodes(args.episodes.params())
        .adapt(args.adapt.params()?)
        .check()?;
    let fusions = args.local.fusions()?;
    let report_dir = args.report.clone().unwrap_or_else(|| {
        args.out
            .parent()
            .unwrap_or(std::path::Path::new(""))
            .join("animalclef-report")
    });
    reid_examples::prepare_out_file("--out", &args.out)?;
    reid_examples::prepare_out_dir("--report", &report_dir)?;
    let csv = args
        .metadata
        .clone()
        .unwrap_or_else(|| args.root.join("metadata.csv"));
    let (mut ds, skipped) = load_animalclef(&csv, &load_options(args.skip_bad))
        .with_context(|| format!("loading {}", csv.display()))?;
    for s in &skipped.skipped {
        eprintln!("skipped {}: {}", s.location, s.error);
    }
    print!("{}", ds.stats());
    println!("{}", args.episodes.encounters_summary(&ds.records));

    // With --skip-bad, images that cannot be decoded leave the job here too.
    let run =
        args.model
            .embed_dataset(&mut ds, args.cache.as_deref(), args.quiet, args.skip_bad)?;
    let reference = SubmissionReference::from_dataset(&ds)?;
    println!(
        "embedded {} images with {} in {:.1} s",
        ds.len(),
        run.describe(),
        run.seconds
    );

    // The report: thresholds, each dataset's scores and calibration curve
    // (no truth, so no score), and where the time went.
    let mut report = Report::new(format!(
        "animal-reid: AnimalCLEF submission for {}",
        csv.display()
    ));
    reid_examples::record_embedding(&mut report, &run);
    let t = Instant::now();
    let name = run.name();
    let resolved = args.adapt.resolve_run(
        &args.model,
        run,
        &ds.records,
        args.cache.as_deref(),
        args.quiet,
        params,
    )?;
    if resolved.choice.is_some() {
        report.timing_since("choose the features and projection", t);
    }
    let (features, params) = (resolved.features, resolved.params);
    let emb = resolved.embeddings.matrix.view();
    let cosine = identify(&ds.records, emb, &params)?;
    reid_examples::record_identification(&mut report, "cosine", &cosine.seconds);
    let fused = args.local.refine(
        &fusions,
        &cosine,
        &ds.records,
        emb,
        &params,
        args.quiet,
        Some(&mut report),
    )?;
    let ident = fused.as_ref().unwrap_or(&cosine);
    for (g, th) in ident.thresholds.groups() {
        println!("threshold {g}: {th:.3}");
    }
    let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (g, p) in ident.scope_names().into_iter().zip(&ident.predictions) {
        let e = per.entry(g).or_default();
        e.0 += 1;
        e.1 += usize::from(p.decision.is_new());
    }
    for (g, (n, new)) in per {
        println!("{g}: {n} queries, {new} called new individuals");
    }

    let rows = ident.submission_rows(&ds.records)?;
    write_validated_submission(&args.out, &rows, &reference)?;
    println!("wrote {} rows to {}", rows.len(), args.out.display());

    report.version("backbone", name).config(serde_json::json!({
        "root": args.root, "submission": args.out, "backbone": args.model.backbone,
        "threshold": args.threshold, "episodes": args.episodes.episodes,
        "seed": args.episodes.seed, "adapt": params.adapt().map(ToString::to_string),
        "features": features,
        "local": args.local.kinds().iter().map(|k| k.name()).collect::<Vec<_>>(),
        "shortlist": args.local.shortlist,
    }));
    add_thresholds(&mut report, ident)?;
    let inputs = FigureInputs {
        cosine: fused.as_ref().map(|_| &cosine),
        fixed: None,
    };
    write_figures(&mut report, &ds.records, ident, None, &inputs, &report_dir)?;
    report.timing_since("total", start);
    println!(
        "\nwhere the time went:\n{}",
        reid_examples::timing_table(&report)
    );
    let (_, html) = write_report(&report, &report_dir)?;
    println!("report: {}", html.display());
    Ok(())
}
