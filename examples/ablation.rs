//! What each part of the default pipeline buys, on a split CSV with the
//! truth (as `evaluate` takes, e.g. `../shared/datasets/lion/lion.csv`):
//! the stages one by one and together, every choice made from the database
//! alone, in one table and `<out>/ablation.json`:
//!
//! - `cosine`: the embeddings as given, a self-calibrated threshold;
//! - `cosine + whiten(…)`, `cosine + lda(…)`: each projection `--adapt
//!   auto` tries, then the neighbourhood steps it tries on the best of
//!   them (`+ dba K`: database-side augmentation within identities; `+ qe
//!   K`: α-query expansion), the one it chooses (the best episode score on
//!   the database) marked `*`;
//! - `cosine & tiny16 …`: the same with tiny-image descriptors appended to
//!   the embeddings (`--tiny auto`, the default, tries the embeddings with
//!   and without them and keeps the better on the database's episodes, as
//!   the programs do; `--tiny off` or `on` keeps one);
//! - `cosine on grid4@features.13 …`: the same on the grid descriptors
//!   of the backbone's last stride-16 block (`--grid auto`, the default,
//!   as the programs; `off` or `on` keeps one);
//! - `cosine on grid4@features.13:tuned …`: the same on the grid
//!   descriptors of the last three blocks fine-tuned on the database
//!   (`--tune auto` or `on`; off by default, as in the programs; then
//!   every row's episodes draw their pseudo-queries among the photos held
//!   out of fine-tuning);
//! - `cosine + sift`: local matching fused on each query's shortlist
//!   (`--local`, `--shortlist`); with several matchers (`--local
//!   sift,xfeat,disk,aliked`) each alone, then all together (each pair
//!   scored once: the all-together row's time is the sum of the matchers'
//!   own, measured on their rows);
//! - `default`: the chosen projection and the local matching together
//!   (what `evaluate`, `demo` and `animalclef` run; `--no-default` leaves
//!   it out).
//!
//! Columns: the mean episode score on the database (what the choices
//! see), then the dev set's score, BAKS, BAUS, closed-set top-1 and mAP
//! (evidence only: no choice reads them), milliseconds per query (search,
//! decide, local matching) and the seconds spent on the database alone
//! (projection fits, self-calibration, the fusion's calibration).
//!
//! ```sh
//! cargo run --release --example ablation -- --csv ../shared/datasets/lion/lion.csv \
//!     --backbone mobilenet_v2 --out out/ablation-lion
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use serde::Serialize;

use animal_reid::data::loaders::load_animalclef;
use animal_reid::pipeline::{
    Headline, Identification, OpenSetParams, ParamGuard, Record, ValidFusionParams,
    ValidOpenSetParams, choose_features, default_adapt_candidates,
    default_neighbourhood_candidates, default_rerank_candidates, evaluate, fuse, identify,
};
use ndarray::ArrayView2;
use reid_examples::{
    BackboneArgs, EpisodeArgs, LocalArgs, feature_bases, feature_sets, feature_views, shared_dir,
};

/// Run the pipeline's stages one by one and together on a split CSV and
/// print what each buys.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Split CSV with the truth (default: lion.csv in the shared data folder).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Embedding cache folder (reused across runs); none if not given.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Folder for ablation.json.
    #[arg(long, default_value = "out/ablation")]
    out: PathBuf,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    episodes: EpisodeArgs,
    #[command(flatten)]
    model: BackboneArgs,
    #[command(flatten)]
    local: LocalArgs,
    /// Tiny-image descriptors appended to the embeddings: `auto` (rows
    /// with and without them), `on` or `off`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "on", "off"])]
    tiny: String,
    /// Grid descriptors of the backbone's last stride-16 block: `auto`
    /// (rows for them and for the global embedding), `on` or `off`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "on", "off"])]
    grid: String,
    /// Grid descriptors of the last blocks fine-tuned on the database
    /// (`reid_examples::tune`): `off` (the default, as the programs),
    /// `auto` (rows for them when the database has encounters; every row
    /// is then scored on the same held-out episodes) or `on`.
    #[arg(long, default_value = "off", value_parser = ["auto", "on", "off"])]
    tune: String,
    /// Leave out the `default` rows (the chosen projection with local
    /// matching): with slow learned matchers they score every pair of the
    /// projected shortlists again.
    #[arg(long)]
    no_default: bool,
}

/// One row of the table.
#[derive(Debug, Serialize)]
struct Row {
    stage: String,
    /// The projection `--adapt auto` chooses.
    chosen: bool,
    /// Mean self-calibration episode score on the database.
    episode_score: f64,
    #[serde(flatten)]
    figures: Headline,
    ms_per_query: f64,
    fit_seconds: f64,
    per_dataset: std::collections::BTreeMap<String, Headline>,
}

fn row(
    stage: String,
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    ident: &Identification,
    episode_score: f64,
    extra_fit: f64,
) -> Result<Row> {
    let summary = evaluate(records, embeddings, ident)?.summary(records, ident, 0.0);
    Ok(Row {
        stage,
        chosen: false,
        episode_score,
        figures: summary.all,
        ms_per_query: 1000.0 * ident.seconds.queries / ident.queries.len().max(1) as f64,
        fit_seconds: ident.seconds.database + extra_fit,
        per_dataset: summary.per_dataset,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let start = Instant::now();
    let base = OpenSetParams::default()
        .episodes(args.episodes.params())
        .check()?;
    let fusions = args.local.fusions()?;
    reid_examples::prepare_out_dir("--out", &args.out)?;
    let csv = args
        .csv
        .clone()
        .unwrap_or_else(|| shared_dir().join("datasets/lion/lion.csv"));
    let (ds, _) = load_animalclef(&csv, &reid_examples::load_options(false))
        .with_context(|| format!("loading {}", csv.display()))?;
    print!("{}", ds.stats());
    println!("{}", args.episodes.encounters_summary(&ds.records));
    let run = args
        .model
        .embed(&ds.records, args.cache.as_deref(), args.quiet)?;
    let records = &ds.records;
    println!(
        "embedded {} images with {} in {:.1} s",
        ds.len(),
        run.describe(),
        run.seconds
    );
    let name = run.name();
    let plain = run.embeddings.clone();
    let emb = plain.matrix.view();
    let tuned = reid_examples::tune::tuned_base(
        &args.tune,
        &args.grid,
        &args.model,
        &run,
        records,
        args.cache.as_deref(),
        args.quiet,
    )?;
    let mut bases = feature_bases(
        &args.grid,
        &args.model,
        run,
        records,
        args.cache.as_deref(),
        args.quiet,
    )?;
    let base = match tuned {
        Some(t) => t.offer(&mut bases, &base)?,
        None => base,
    };
    let sets = feature_sets(&args.tiny, records, bases)?;

    // Every set's and projection's episode score on the database, and the choice.
    let t = Instant::now();
    let views = feature_views(&sets);
    let choice = choose_features(
        records,
        &views,
        &base,
        &default_adapt_candidates(),
        default_neighbourhood_candidates,
        &default_rerank_candidates(),
    )?;
    let choose_seconds = t.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    let mut chosen_ident = None;
    for (si, (set, c)) in views.iter().zip(&choice.choices).enumerate() {
        // `cosine` on the backbone's embeddings, `cosine & tiny16` with the
        // thumbnails appended, `cosine on grid4@features.13` on the grid
        // descriptors.
        let rest = set.name.strip_prefix(&name).unwrap_or(&set.name);
        let what = format!("cosine{}", rest.replace(':', " on ").replace('+', " & "));
        for (i, trial) in c.trials.iter().enumerate() {
            let params = base.with_adapt(trial.adapt)?;
            let ident = identify(records, set.embeddings, &params)?;
            let stage = match &trial.adapt {
                None => what.clone(),
                Some(a) => format!("{what} + {a}"),
            };
            let is_chosen = si == choice.chosen && i == c.chosen;
            let mut r = row(stage, records, set.embeddings, &ident, trial.score, 0.0)?;
            r.chosen = is_chosen;
            println!("{}: episode score {:.3}", r.stage, r.episode_score);
            rows.push(r);
            if is_chosen {
                chosen_ident = Some((ident, params));
            }
        }
    }
    let (chosen, chosen_params) = chosen_ident.context("no projection was chosen")?;
    let chosen_emb = views[choice.chosen].embeddings;

    // Local matching, alone and with the chosen projection.
    if !fusions.is_empty() {
        let kp = args.local.keypoints(records, args.quiet)?;
        kp.announce("", None);
        let cosine = identify(records, emb, &base)?;
        // The same shortlist sizes, in the same order, for one matcher.
        let singles = args.local.fusions_for(1)?;
        for (fusion, single) in fusions.iter().zip(&singles) {
            rows.extend(source_rows(
                &kp, records, emb, &base, &cosine, fusion, single,
            )?);
        }
        if !args.no_default {
            // One row per shortlist size (and further SIFT contrast); the
            // best episode score is the one the programs keep (marked `*`).
            let scorers = kp.scorers();
            let refs = reid_examples::scorer_refs(&scorers);
            let mut stage_rows = Vec::new();
            for fusion in &fusions {
                let fused = fuse(&chosen, records, chosen_emb, &chosen_params, &refs, fusion)?;
                let name = format!("default, B = {}", fusion.shortlist());
                stage_rows.push(fused_row(
                    name,
                    records,
                    chosen_emb,
                    &fused,
                    choose_seconds,
                )?);
            }
            // Each further SIFT contrast at the best size, as the programs
            // try them.
            let scores: Vec<f64> = stage_rows.iter().map(|r| r.episode_score).collect();
            if let Some(at) = reid_examples::best_index(&scores).and_then(|b| fusions.get(b)) {
                for c in args.local.further_contrasts() {
                    let (_, fused) = args.local.fuse_at_contrast(
                        c,
                        at,
                        &chosen,
                        records,
                        chosen_emb,
                        &chosen_params,
                        args.quiet,
                    )?;
                    let name = format!("default, B = {}, SIFT contrast {c}", at.shortlist());
                    stage_rows.push(fused_row(
                        name,
                        records,
                        chosen_emb,
                        &fused,
                        choose_seconds,
                    )?);
                }
            }
            let scores: Vec<f64> = stage_rows.iter().map(|r| r.episode_score).collect();
            if let Some(b) = reid_examples::best_index(&scores) {
                stage_rows[b].chosen = true;
            }
            rows.extend(stage_rows);
        }
    }
    print_table(&rows, choice.name(), &chosen_params);
    let json = serde_json::json!({
        "csv": csv,
        "backbone": name,
        "episodes": args.episodes.episodes,
        "seed": args.episodes.seed,
        "local": args.local.kinds().iter().map(|k| k.name()).collect::<Vec<_>>(),
        "shortlist": args.local.shortlist,
        "chosen_features": choice.name(),
        "chosen_projection": chosen_params.adapt().map(ToString::to_string),
        "choose_seconds": choose_seconds,
        "seconds": start.elapsed().as_secs_f64(),
        "rows": rows,
    });
    let path = args.out.join("ablation.json");
    reid_examples::write_json(&path, &json)?;
    println!(
        "wrote {} ({:.1} s in all)",
        path.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A row for a fused identification, printing how its sources were
/// combined and its episode score.
fn fused_row(
    name: String,
    records: &[Record],
    emb: ArrayView2<'_, f32>,
    fused: &Identification,
    extra_fit: f64,
) -> Result<Row> {
    let episode = fused
        .fusion
        .as_ref()
        .map_or(f64::NAN, |f| f.episode_score());
    if let Some(f) = &fused.fusion {
        println!("{name}: sources combined by: {}", f.combine_summary());
        for c in &f.sources {
            println!("{}", reid_examples::cost_summary(c, fused.queries.len()));
        }
    }
    let r = row(name, records, emb, fused, episode, extra_fit)?;
    println!("{}: episode score {:.3}", r.stage, r.episode_score);
    Ok(r)
}

/// The rows of one shortlist size on the plain cosine: with several local
/// matchers, each alone beside cosine, then all of them together; with
/// one, that one. The scorers remember their pairs (fresh ones for each
/// shortlist size), so the all-together row scores nothing new: the
/// matchers' cost measured on the rows alone is added to its time per
/// query and fit time, which then read what it costs when run by itself.
/// `single` is `fusion` for one matcher.
fn source_rows(
    kp: &reid_examples::Keypoints,
    records: &[Record],
    emb: ArrayView2<'_, f32>,
    base: &ValidOpenSetParams,
    cosine: &Identification,
    fusion: &ValidFusionParams,
    single: &ValidFusionParams,
) -> Result<Vec<Row>> {
    let b = fusion.shortlist();
    let scorers = kp.scorers();
    let refs = reid_examples::scorer_refs(&scorers);
    let mut rows = Vec::new();
    // Each source's own cost: (database seconds, query seconds).
    let mut costs = Vec::new();
    if refs.len() > 1 {
        for (r, s) in refs.iter().zip(&kp.sources) {
            let fused = fuse(cosine, records, emb, base, &[*r], single)?;
            if let Some(f) = &fused.fusion {
                costs.push((f.database_seconds, f.query_seconds));
            }
            let name = format!("cosine + {}, B = {b}", s.kind.name());
            rows.push(fused_row(name, records, emb, &fused, 0.0)?);
        }
    }
    let names: Vec<&str> = kp.sources.iter().map(|s| s.kind.name()).collect();
    let fused = fuse(cosine, records, emb, base, &refs, fusion)?;
    let mut all = fused_row(
        format!("cosine + {}, B = {b}", names.join(" + ")),
        records,
        emb,
        &fused,
        0.0,
    )?;
    let nq = fused.queries.len().max(1) as f64;
    all.fit_seconds += costs.iter().map(|c| c.0).sum::<f64>();
    all.ms_per_query += 1000.0 * costs.iter().map(|c| c.1).sum::<f64>() / nq;
    rows.push(all);
    println!(
        "pairs at B = {b}:\n{}",
        reid_examples::memo_summary(&scorers)
    );
    Ok(rows)
}

/// The table, one stage a line; `*` marks the projection `--adapt auto`
/// chose.
fn print_table(rows: &[Row], features: &str, chosen: &ValidOpenSetParams) {
    let f = |v: Option<f64>| v.map_or_else(|| "  n/a".to_owned(), |v| format!("{v:.3}"));
    let width = rows.iter().map(|r| r.stage.len()).max().unwrap_or(5) + 2;
    println!(
        "\n{:width$} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9} {:>7}",
        "stage", "episodes", "score", "BAKS", "BAUS", "top-1", "mAP", "ms/query", "fit s"
    );
    for r in rows {
        let mark = if r.chosen { "*" } else { " " };
        println!(
            "{:width$} {:>8.3} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9.2} {:>7.2}",
            format!("{mark}{}", r.stage),
            r.episode_score,
            f(r.figures.score),
            f(r.figures.baks),
            f(r.figures.baus),
            f(r.figures.top1),
            f(r.figures.map),
            r.ms_per_query,
            r.fit_seconds
        );
    }
    println!(
        "(* the features and projection chosen on the database's episodes: {features}, {}; `default` = them + local matching, * at the shortlist size and SIFT contrast kept)",
        chosen
            .adapt()
            .map_or_else(|| "none".to_owned(), ToString::to_string)
    );
}
