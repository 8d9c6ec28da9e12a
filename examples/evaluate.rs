//! Open-set evaluation of a split CSV with the truth (AnimalCLEF columns:
//! `image_id,identity,path,species,split,dataset`, queries keeping their true
//! identity), such as `../shared/datasets/lion/lion.csv`: embed every image,
//! and run the default pipeline, every choice made from each dataset's
//! database alone:
//!
//! 1. a projection of the embeddings (`--adapt auto`: none, within-identity
//!    whitening or LDA, whichever scores best on the database's own
//!    self-calibration episodes; `--adapt none` turns it off);
//! 2. cosine search within each query's dataset and a self-calibrated
//!    threshold (a fixed `--threshold` is printed beside it);
//! 3. local matching fused with cosine on each query's shortlist
//!    (`--local sift --shortlist 50,100,200` by default: each size
//!    calibrated and scored, then SIFT at each further `--local-contrast`
//!    (0.02 after OpenCV's 0.04) at the best size, the best episode score
//!    on the database kept;
//!    `--local none` turns it off; `xfeat`, `disk`, `aliked` are the
//!    learned matchers, several comma-separated in one fusion).
//!
//! It prints BAKS, BAUS and the AnimalCLEF score of each stage, the ranking
//! and clustering figures, where the time went (embedding: waiting for the
//! decoder, the network; the projection's choice; per identification: its
//! database work (projection fit, threshold self-calibration, the fusion's
//! calibration) and its queries' (search, local matching, deciding)), and
//! writes a t-SNE plot, match sheets, a JSON and HTML report and
//! `summary.json` (the default pipeline's score, BAKS, BAUS, top-1, mAP,
//! seconds, per dataset, and `stages`: the timings) into `--out`.
//! `--backbone a+b` embeds with an ensemble: each backbone's unit
//! embeddings concatenated, the cosine the mean of theirs.
//!
//! ```sh
//! cargo run --release --example evaluate -- --csv ../shared/datasets/lion/lion.csv --out out/lion
//! cargo run --release --example evaluate -- --adapt none --local none --out out/lion-cosine
//! cargo run --release --example evaluate -- --local sift,xfeat --shortlist 10,50 --out out/lion-local
//! cargo run --release --example evaluate -- --backbone mobilenet_v2+efficientnet_lite0 --out out/lion-ensemble
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;

use animal_reid::data::loaders::load_animalclef;
use animal_reid::eval::report::Report;
use animal_reid::pipeline::figures::FigureInputs;
use animal_reid::pipeline::report::score_table;
use animal_reid::pipeline::{
    Identification, IdentificationScore, OpenSetParams, ParamGuard, Record, Rule,
    ValidOpenSetParams, fuse, identify,
};
use ndarray::ArrayView2;
use reid_examples::{
    AdaptArgs, BackboneArgs, EpisodeArgs, LocalArgs, OutputArgs, cost_summary, finish, shared_dir,
};

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
    /// Decision rule: `top1`, `knn:K` (best identity by the max of its
    /// similarities among the K nearest) or `knn:K:mean:P`.
    #[arg(long, default_value = "top1")]
    rule: Rule,
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
    output: OutputArgs,
    #[command(flatten)]
    local: LocalArgs,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let start = Instant::now();
    // Every setting is checked before any work starts.
    let fixed_params = OpenSetParams::default()
        .rule(args.rule)
        .fixed_threshold(Some(args.threshold))
        .check()?;
    let params = OpenSetParams::default()
        .rule(args.rule)
        .episodes(args.episodes.params())
        .adapt(args.adapt.params()?)
        .per_dataset(!args.one_threshold)
        .check()?;
    let fusions = args.local.fusions()?;
    args.output.pictures(args.episodes.seed).check()?;
    reid_examples::prepare_out_dir("--out", &args.out)?;

    let csv = args
        .csv
        .clone()
        .unwrap_or_else(|| shared_dir().join("datasets/lion/lion.csv"));
    let (ds, _) = load_animalclef(&csv, &reid_examples::load_options(false))
        .with_context(|| format!("loading {}", csv.display()))?;
    print!("{}", ds.stats());
    println!("{}", args.episodes.encounters_summary(&ds.records));
    let mut report = Report::new(format!(
        "animal-reid: open-set evaluation of {}",
        csv.display()
    ));

    let run = args
        .model
        .embed(&ds.records, args.cache.as_deref(), args.quiet)?;
    reid_examples::record_embedding(&mut report, &run);
    let (described, name, embed_seconds) = (run.describe(), run.name(), run.seconds);
    let t = Instant::now();
    let resolved = args.adapt.resolve_run(
        &args.model,
        run,
        &ds.records,
        args.cache.as_deref(),
        args.quiet,
        params,
    )?;
    if let Some(c) = &resolved.choice {
        report.timing_since("choose the features and projection", t);
        report.section("Features and projection chosen on the database");
        for (trial, score) in c.trials() {
            report.metric(format!("{trial}: episode score on the database"), score);
        }
    }
    let (emb, params, features) = (resolved.embeddings, resolved.params, resolved.features);
    println!(
        "embedded {} images with {described} in {:.1} s",
        ds.len(),
        embed_seconds
    );

    // The fixed threshold, for comparison.
    let fixed = identify(&ds.records, emb.matrix.view(), &fixed_params)?;
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
        println!("{s}");
    }

    // Self-calibrated from each dataset's database alone.
    let t = Instant::now();
    let ident = identify(&ds.records, emb.matrix.view(), &params)?;
    reid_examples::record_identification(&mut report, "cosine", &ident.seconds);
    println!(
        "\nself-calibrated from the database alone ({} episodes, {:.2} s):",
        args.episodes.episodes,
        t.elapsed().as_secs_f64()
    );
    if let Some(a) = &ident.adapted {
        println!("{}", reid_examples::adapt_summary(a));
        report.metric("projection fit seconds", a.seconds);
    }
    report.version("backbone", name).config(serde_json::json!({
        "csv": csv, "backbone": args.model.backbone, "model": described, "features": features,
        "rule": args.rule.to_string(), "fixed_threshold": args.threshold,
        "episodes": args.episodes.episodes, "new_fraction": args.episodes.new_fraction,
        "query_fraction": args.episodes.query_fraction, "seed": args.episodes.seed,
        "encounters": args.episodes.encounters,
        "per_dataset": !args.one_threshold,
        "adapt": params.adapt().map(ToString::to_string), "adapt_flag": args.adapt.adapt,
        "local": args.local.kinds().iter().map(|k| k.name()).collect::<Vec<_>>(),
        "shortlist": args.local.shortlist,
    }));
    // The score of each stage, for one table.
    let mut stages: Vec<(String, IdentificationScore)> = Vec::new();
    if let Some(s) = fixed_score {
        stages.push((format!("cosine, fixed threshold {:.3}", args.threshold), s));
    }
    if let Some(s) = ident.score(&ds.records)? {
        println!("cosine{}:\n{s}", projection_name(&params));
        stages.push((format!("cosine{}", projection_name(&params)), s));
    }
    // The fusion at each shortlist size; the answer is chosen below.
    let fused = if args.local.enabled() {
        local_fusion(
            &args,
            &ds.records,
            emb.matrix.view(),
            &ident,
            &params,
            &fusions,
            &mut report,
        )?
    } else {
        Vec::new()
    };
    let matchers: Vec<&str> = args.local.kinds().iter().map(|k| k.name()).collect();
    for (label, f) in &fused {
        if let Some(s) = f.score(&ds.records)? {
            let name = format!(
                "cosine{} + {}, {}",
                projection_name(&params),
                matchers.join(" + "),
                label.strip_prefix("shortlist ").unwrap_or(label)
            );
            stages.push((name, s));
        }
    }
    report.section("Scores of each stage");
    let stage_refs: Vec<(String, &IdentificationScore)> =
        stages.iter().map(|(n, s)| (n.clone(), s)).collect();
    report.table(score_table(
        "each stage's open-set score (thresholds from the database alone)",
        &stage_refs,
    )?);
    // The answer: the shortlist size whose fusion scores best on the
    // database's episodes.
    println!();
    let fused = reid_examples::keep_best_fusion(fused);
    let inputs = FigureInputs {
        cosine: fused.as_ref().map(|_| &ident),
        fixed: Some(&fixed),
    };
    println!("\nthe pipeline's answer:");
    finish(
        &mut report,
        &ds.records,
        emb.matrix.view(),
        fused.as_ref().unwrap_or(&ident),
        &inputs,
        &args.out,
        &args.output,
        args.episodes.seed,
        start,
    )
}

/// ` + lda(shrinkage 0.1)` for the projection of `params`, or nothing.
fn projection_name(params: &ValidOpenSetParams) -> String {
    params
        .adapt()
        .map_or_else(String::new, |a| format!(" + {a}"))
}

/// Extracts (or reads back) every image's local features for each
/// `--local` matcher, then runs and scores the fused identification for
/// each `--shortlist` size and, at the size with the best episode score,
/// for each further SIFT `--local-contrast`; returns them in that order,
/// each with its label (`B = 200`, `B = 200, SIFT contrast 0.02`).
fn local_fusion(
    args: &Args,
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    ident: &Identification,
    params: &ValidOpenSetParams,
    fusions: &[animal_reid::pipeline::ValidFusionParams],
    report: &mut Report,
) -> Result<Vec<(String, Identification)>> {
    let kp = args.local.keypoints(records, args.quiet)?;
    let mut out = Vec::with_capacity(fusions.len());
    let names: Vec<&str> = kp.sources.iter().map(|s| s.kind.name()).collect();
    report.section(format!(
        "Local matching ({}), fused with cosine",
        names.join(" + ")
    ));
    describe_sources(&kp, "", report);
    let scorers = kp.scorers();
    let scorer_refs = reid_examples::scorer_refs(&scorers);
    let what = format!("cosine{} + {}", projection_name(params), names.join(" + "));
    for fusion in fusions {
        let label = format!("shortlist B = {}", fusion.shortlist());
        let t = Instant::now();
        let fused = fuse(ident, records, embeddings, params, &scorer_refs, fusion)?;
        describe_fusion(
            &what,
            &label,
            &fused,
            t.elapsed().as_secs_f64(),
            records,
            report,
        )?;
        out.push((label, fused));
    }
    if fusions.len() > 1 {
        println!(
            "\nlocal pairs over all shortlist sizes:\n{}",
            reid_examples::memo_summary(&scorers)
        );
    }
    if let Some(at) = args.local.contrast_stage_at(fusions, &out) {
        for c in args.local.further_contrasts() {
            let label = format!("shortlist B = {}, SIFT contrast {c}", at.shortlist());
            println!();
            let t = Instant::now();
            let (kp_c, fused) = args
                .local
                .fuse_at_contrast(c, at, ident, records, embeddings, params, args.quiet)?;
            describe_sources(&kp_c, &format!("SIFT contrast {c}: "), report);
            describe_fusion(
                &what,
                &label,
                &fused,
                t.elapsed().as_secs_f64(),
                records,
                report,
            )?;
            out.push((label, fused));
        }
    }
    Ok(out)
}

/// Records each local matcher's extraction time and keypoints per image,
/// the metric names prefixed by `prefix`.
fn describe_sources(kp: &reid_examples::Keypoints, prefix: &str, report: &mut Report) {
    for s in &kp.sources {
        println!("\n{}", s.summary(&kp.cache));
        report.timing(
            format!("{prefix}local features ({})", s.kind.name()),
            s.seconds,
        );
        report.metric(
            format!("{prefix}{}: feature extraction seconds", s.kind.name()),
            s.seconds,
        );
        report.metric(
            format!("{prefix}{}: keypoints per image", s.kind.name()),
            s.per_image(),
        );
    }
}

/// Prints and records one fusion (`what`, at `label`): its threshold and
/// episode score, how its sources were combined, what each cost, and its
/// score on the queries.
fn describe_fusion(
    what: &str,
    label: &str,
    fused: &Identification,
    wall: f64,
    records: &[Record],
    report: &mut Report,
) -> Result<()> {
    let stage = label.strip_prefix("shortlist ").unwrap_or(label);
    reid_examples::record_fusion(report, &format!("fusion {stage}"), &fused.seconds);
    let f = fused
        .fusion
        .as_ref()
        .context("the fused identification has no fusion report")?;
    let nq = fused.queries.len().max(1) as f64;
    println!(
        "\n{what}, {label} (threshold {:.3} on the fused probability, episode score {:.3}, {wall:.1} s in all):",
        f.all().self_calibration.threshold,
        f.all().self_calibration.score_mean
    );
    println!("  sources combined by: {}", f.combine_summary());
    report.metric(
        format!("{stage}: episode score on the database"),
        f.all().self_calibration.score_mean,
    );
    for c in &f.sources {
        println!("{}", cost_summary(c, fused.queries.len()));
        report.metric(
            format!("{stage}: {}: ms per query", c.name),
            1000.0 * c.query_seconds / nq,
        );
        report.metric(
            format!("{stage}: {}: database calibration seconds", c.name),
            c.database_seconds,
        );
    }
    if let Some(s) = fused.score(records)? {
        println!("{s}");
    }
    Ok(())
}
