//! Open-set evaluation of a split CSV with the truth (AnimalCLEF columns:
//! `image_id,identity,path,species,split,dataset`, queries keeping their true
//! identity), such as `../shared/datasets/lion/lion.csv`:
//! embed every image, search the database, decide known/new with a fixed
//! threshold and with one self-calibrated from the database alone (one per
//! dataset), print BAKS, BAUS and the AnimalCLEF score of each, the ranking
//! and clustering figures, and write a t-SNE plot, match sheets and a JSON
//! and HTML report into `--out`.
//!
//! With `--local 10,50`, local keypoints join in: RootSIFT features of every
//! image (cached on disk), matched with a ratio test and verified by RANSAC
//! for the cosine shortlist of each query only; the inlier count is fused
//! with cosine, both calibrated from the database alone, and the fused job
//! is scored for each shortlist size, with the time per query.
//!
//! ```sh
//! cargo run --release --example evaluate -- --csv ../shared/datasets/lion/lion.csv --out out/lion
//! cargo run --release --example evaluate -- --local 10,50 --out out/lion-local
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
use animal_reid::job::{FusionParams, JobParams, fuse_openset, run_openset};
use animal_reid::local::{ExtractParams, FeatureCache, FeatureStore, LocalParams, LocalScorer};
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
    #[command(flatten)]
    local: LocalArgs,
}

/// Local keypoint fusion.
#[derive(Debug, Clone, clap::Args)]
struct LocalArgs {
    /// Also fuse local keypoint matching (RootSIFT, ratio test, RANSAC
    /// inliers) into each query's cosine shortlist of this many database
    /// images; several sizes comma-separated (e.g. `10,50`), each scored.
    #[arg(long, value_delimiter = ',')]
    local: Vec<usize>,
    /// Weight of the local score against cosine's 1 in the fusion.
    #[arg(long, default_value_t = 1.0)]
    local_weight: f32,
    /// Longer image side for keypoint detection (images are downscaled).
    #[arg(long, default_value_t = 512)]
    local_max_side: u32,
    /// Keypoints kept per image (the strongest).
    #[arg(long, default_value_t = 1000)]
    local_keypoints: usize,
    /// Feature cache folder (default: `local-features` in the animal-reid
    /// cache, `$ANIMAL_REID_CACHE` or `~/.cache/animal-reid`).
    #[arg(long)]
    local_cache: Option<PathBuf>,
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
    let params = JobParams::default()
        .rule(rule)
        .selfcal(args.selfcal.params()?)
        .per_dataset(!args.one_threshold)
        .check()?;
    let t = Instant::now();
    let job = run_openset(&ds.records, emb.matrix.view(), &params)?;
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
    if !args.local.local.is_empty() {
        local_fusion(
            &args,
            &ds.records,
            emb.matrix.view(),
            &job,
            &params,
            &mut report,
        )?;
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

/// Extracts (or reads back) every image's local features, then runs and
/// scores the fused job for each `--local` shortlist size.
fn local_fusion(
    args: &Args,
    records: &[animal_reid::data::Record],
    embeddings: ndarray::ArrayView2<'_, f32>,
    job: &animal_reid::job::OpenSetJob,
    params: &animal_reid::job::ValidJobParams,
    report: &mut Report,
) -> Result<()> {
    let la = &args.local;
    let lp = LocalParams {
        extract: ExtractParams {
            max_side: la.local_max_side,
            max_keypoints: la.local_keypoints,
            ..ExtractParams::default()
        },
        ..LocalParams::default()
    }
    .check()?;
    let dir = la
        .local_cache
        .clone()
        .unwrap_or_else(|| animal_reid::backbone::weights::cache_dir().join("local-features"));
    let cache = FeatureCache::new(&dir)?;
    let paths: Vec<&std::path::Path> = records.iter().map(|r| r.path.as_path()).collect();
    let t = Instant::now();
    let bar = cli::bar(paths.len(), "keypoints", args.quiet);
    let store = FeatureStore::extract_with(&paths, &lp, Some(&cache), |_, _| bar.inc(1))?;
    bar.finish_and_clear();
    let extract_s = t.elapsed().as_secs_f64();
    let cached = store
        .cache_status()
        .iter()
        .filter(|s| matches!(s, animal_reid::local::CacheStatus::Hit))
        .count();
    let kp: usize = store.features().iter().map(|f| f.len()).sum();
    println!(
        "\nlocal features of {} images in {extract_s:.1} s ({cached} from the cache {}), {:.0} keypoints per image",
        store.len(),
        dir.display(),
        kp as f64 / store.len().max(1) as f64
    );
    report.section("Local keypoints (RootSIFT + RANSAC), fused with cosine");
    report.metric("feature extraction seconds", extract_s);
    report.metric("keypoints per image", kp as f64 / store.len().max(1) as f64);
    let scorer = LocalScorer::new(
        "keypoints",
        store.features(),
        store.features(),
        store.params(),
    );
    for &b in &la.local {
        let t = Instant::now();
        let fused = fuse_openset(
            job,
            records,
            embeddings,
            params,
            &scorer,
            &FusionParams::default().shortlist(b).weight(la.local_weight),
        )?;
        let wall = t.elapsed().as_secs_f64();
        let Some(f) = &fused.fusion else {
            bail!("the fused job returned no fusion report");
        };
        let nq = fused.queries.len().max(1) as f64;
        println!(
            "\nfused with local keypoints, shortlist B = {} (threshold {:.3} on the fused probability, {:.1} s in all):",
            f.shortlist, f.all.selfcal.threshold, wall
        );
        println!(
            "  local matching: {} database pairs in {:.1} s (calibration), {} query pairs in {:.1} s = {:.1} ms per query",
            f.database_pairs,
            f.database_seconds,
            f.query_pairs,
            f.query_seconds,
            1000.0 * f.query_seconds / nq
        );
        report.metric(
            format!("B={b}: ms per query (local matching)"),
            1000.0 * f.query_seconds / nq,
        );
        report.metric(
            format!("B={b}: database calibration seconds"),
            f.database_seconds,
        );
        if let Some(s) = fused.score(records)? {
            outputs::print_score(&s);
            report.value_from(format!("B={b}: score"), &s)?;
        }
    }
    Ok(())
}
