//! Open-set evaluation of a split CSV with the truth (AnimalCLEF columns:
//! `image_id,identity,path,species,split,dataset`, queries keeping their true
//! identity), such as `../shared/datasets/lion/lion.csv`:
//! embed every image, search the database, decide known/new with a fixed
//! threshold and with one self-calibrated from the database alone, and print
//! BAKS, BAUS and the AnimalCLEF score of each.
//!
//! ```sh
//! cargo run --release --example evaluate -- --csv ../shared/datasets/lion/lion.csv
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "support/cli.rs"]
mod cli;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use ndarray::Axis;

use animal_reid::backbone::pipeline::extract;
use animal_reid::data::SplitRole;
use animal_reid::data::loaders::{LoadOptions, load_animalclef};
use animal_reid::openset::{
    Aggregate, Decision, DecisionParams, Gallery, Rule, SelfCalibrationParams, Thresholds, decide,
    score, self_calibrate,
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
    /// The fixed threshold to report (the AnimalCLEF 2025 baseline uses 0.6).
    #[arg(long, default_value_t = 0.6)]
    threshold: f32,
    /// Decision rule: `top1`, or `knn:K` (best identity by the max of its
    /// similarities among the K nearest).
    #[arg(long, default_value = "top1")]
    rule: String,
    /// Self-calibration episodes.
    #[arg(long, default_value_t = 20)]
    episodes: usize,
    /// Fraction of database identities held out as pseudo-new per episode.
    #[arg(long, default_value_t = 0.3)]
    new_fraction: f64,
    /// Fraction of the remaining images used as pseudo-queries per episode.
    #[arg(long, default_value_t = 0.3)]
    query_fraction: f64,
    /// Seed of the episodes.
    #[arg(long, default_value_t = 2025)]
    seed: u64,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    model: cli::BackboneArgs,
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
    let csv = args
        .csv
        .clone()
        .unwrap_or_else(|| cli::shared_dir().join("datasets/lion/lion.csv"));
    let (ds, _) = load_animalclef(&csv, &LoadOptions::default().with_check_files(true))
        .with_context(|| format!("loading {}", csv.display()))?;
    print!("{}", ds.stats());
    let rule = parse_rule(&args.rule)?;

    // Embed.
    let bb = args.model.build()?;
    let params = args.model.extract_params(args.cache.as_deref())?;
    let t = Instant::now();
    let pb = cli::bar(ds.len(), "embedding", args.quiet);
    let emb = extract(&bb, &ds.records, &params, |p| {
        pb.set_position(p.done as u64)
    })?;
    pb.finish_and_clear();
    println!(
        "embedded {} images with {} @{} ({}-d) in {:.1} s",
        ds.len(),
        bb.info().name,
        bb.info().input_size,
        bb.info().dim,
        t.elapsed().as_secs_f64()
    );

    // Database and queries, with the truth.
    let rows = |role: SplitRole| -> Vec<usize> {
        (0..ds.len())
            .filter(|&i| ds.records[i].split.as_ref() == Some(&role))
            .collect()
    };
    let (db, qs) = (rows(SplitRole::Database), rows(SplitRole::Query));
    let label = |i: usize| -> Result<String> {
        ds.records[i].identity.clone().with_context(|| {
            format!(
                "{}: row of {} has no identity",
                csv.display(),
                ds.records[i].image_id
            )
        })
    };
    let db_labels = db.iter().map(|&i| label(i)).collect::<Result<Vec<_>>>()?;
    let truth = qs.iter().map(|&i| label(i)).collect::<Result<Vec<_>>>()?;
    let gallery = Gallery::new(emb.matrix.select(Axis(0), &db), db_labels.clone())?;
    let queries = emb.matrix.select(Axis(0), &qs);
    let is_new = score::new_flags(&truth, &db_labels);
    let known = is_new.iter().filter(|n| !**n).count();
    println!(
        "{} database images of {} identities; {} queries: {} of known individuals, {} of new ones",
        db.len(),
        ds.by_split(&SplitRole::Database).num_individuals(),
        qs.len(),
        known,
        qs.len() - known
    );

    // Closed set: top-1 among known queries (a threshold below any cosine).
    let open = decide::<&str>(
        &gallery,
        queries.view(),
        None,
        &DecisionParams::new(rule, Thresholds::new(-2.0)?)?,
    )?;
    let right = open
        .iter()
        .zip(&truth)
        .zip(&is_new)
        .filter(|((p, t), n)| !**n && p.candidate == **t)
        .count();
    println!(
        "closed-set top-1 accuracy on known queries: {:.3}",
        right as f64 / known.max(1) as f64
    );
    let lowest = open
        .iter()
        .map(|p| p.similarity)
        .fold(f32::INFINITY, f32::min);
    println!("lowest best-match similarity of any query: {lowest:.3}");

    let report = |name: &str, threshold: f32| -> Result<()> {
        let preds = decide::<&str>(
            &gallery,
            queries.view(),
            None,
            &DecisionParams::new(rule, Thresholds::new(threshold)?)?,
        )?;
        let d: Vec<Decision> = preds.into_iter().map(|p| p.decision).collect();
        let s = score::open_set_score(&truth, &d, &is_new)?;
        let f = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.3}"));
        println!(
            "{name:<28} threshold {threshold:.3}: BAKS {}  BAUS {}  score {:.3}",
            f(s.baks),
            f(s.baus),
            s.geometric_mean()
        );
        Ok(())
    };
    report("fixed", args.threshold)?;
    let grid = SelfCalibrationParams::linear_grid(-0.2, 1.0, 240);
    let sc = SelfCalibrationParams::new(
        args.new_fraction,
        args.query_fraction,
        args.episodes,
        args.seed,
        grid,
    )?;
    let t = Instant::now();
    let cal = self_calibrate(&gallery, &rule, &sc)?;
    println!(
        "self-calibrated from the database alone ({} episodes, {:.2} s): threshold {:.3} \
         (episode optima {:.3} ± {:.3}); episode score {:.3} ± {:.3}",
        cal.episodes.len(),
        t.elapsed().as_secs_f64(),
        cal.threshold,
        cal.threshold_mean,
        cal.threshold_std,
        cal.score_mean,
        cal.score_std
    );
    report("self-calibrated", cal.threshold)?;
    Ok(())
}
