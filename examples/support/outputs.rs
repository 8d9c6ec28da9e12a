//! What `demo` and `evaluate` print and write after the open-set job:
//! the figures (open-set score per dataset, ranking, new-individual
//! clustering, silhouette), the t-SNE plot, match sheets and the JSON and
//! HTML report. Included with `#[path]`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use ndarray::{ArrayView2, Axis};

use animal_reid::data::Record;
use animal_reid::eval::matchsheet::{
    Candidate, MatchSheetParams, QueryMatches, SheetImage, Truth, write_match_sheets,
};
use animal_reid::eval::metrics::{
    RankingParams, SilhouetteMetric, homogeneity_completeness_v_measure, normalized_mutual_info,
    ranking_metrics, silhouette_score,
};
use animal_reid::eval::plot::{ScatterParams, ScatterPlot};
use animal_reid::eval::report::{Report, Table};
use animal_reid::eval::tsne::TsneParams;
use animal_reid::job::{JobScore, OpenSetJob};
use animal_reid::openset::score::new_flags;

/// The output options `demo` and `evaluate` share.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Match sheets for this many queries (0: none).
    #[arg(long, default_value_t = 12)]
    pub sheets: usize,
    /// No t-SNE plot.
    #[arg(long)]
    pub no_tsne: bool,
    /// t-SNE perplexity (at most (images - 1) / 3).
    #[arg(long, default_value_t = 30.0)]
    pub perplexity: f64,
    /// t-SNE iterations.
    #[arg(long, default_value_t = 1000)]
    pub tsne_iter: usize,
}

fn sheet_image(r: &Record) -> SheetImage {
    let mut s = SheetImage::new(r.path.clone());
    s.bbox = r.bbox;
    s
}

/// Prints the figures of `job` against the truth (when the queries carry
/// it) and adds them to `report`; writes the t-SNE plot and match sheets
/// into `out`. Returns the paths written.
pub fn figures_and_pictures(
    report: &mut Report,
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    job: &OpenSetJob,
    out: &Path,
    args: &OutputArgs,
    seed: u64,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let score = job.score(records)?;
    let truth: Option<Vec<String>> = job
        .queries
        .iter()
        .map(|&i| records[i].identity.clone())
        .collect();

    report.section("Thresholds");
    let mut t = Table::new("threshold per dataset", ["dataset", "threshold", "source"]);
    let source = if job.calibration.is_some() {
        "self-calibrated from the database"
    } else {
        "fixed"
    };
    for (g, th) in job.thresholds.groups() {
        t.push_row([g.clone().into(), f64::from(*th).into(), source.into()])?;
    }
    t.push_row([
        "(default)".into(),
        f64::from(job.thresholds.default_threshold()).into(),
        source.into(),
    ])?;
    report.table(t);
    if let Some(cal) = &job.calibration {
        for (g, c) in &cal.per_group {
            println!(
                "  {g}: threshold {:.3} (episode optima {:.3} ± {:.3}, episode score {:.3} ± {:.3})",
                c.threshold, c.threshold_mean, c.threshold_std, c.score_mean, c.score_std
            );
            report.value(
                format!("self-calibration {g}"),
                serde_json::json!({
                    "threshold": c.threshold, "threshold_mean": c.threshold_mean,
                    "threshold_std": c.threshold_std, "episode_score_mean": c.score_mean,
                    "episode_score_std": c.score_std, "episodes": c.episodes.len(),
                }),
            );
        }
        for (g, why) in &cal.skipped {
            println!("  {g}: not calibrated on its own ({why}); uses the default");
        }
    }

    if let (Some(s), Some(truth)) = (&score, &truth) {
        print_score(s);
        report.section("Open-set score");
        report
            .metric("AnimalCLEF score", s.animalclef.score)
            .metric("known queries", s.known_queries as f64)
            .metric("new queries", s.new_queries as f64);
        let mut t = Table::new("per dataset", ["dataset", "BAKS", "BAUS", "score"]);
        for (d, v) in &s.animalclef.per_dataset {
            t.push_row([
                d.clone().into(),
                v.baks.into(),
                v.baus.into(),
                v.geometric_mean().into(),
            ])?;
        }
        report.table(t);

        // Closed-set ranking of the known queries over the whole database.
        let is_new = new_flags(truth, &job.database_labels);
        let known: Vec<usize> = (0..truth.len()).filter(|&i| !is_new[i]).collect();
        if !known.is_empty() {
            let db = embeddings.select(Axis(0), &job.database);
            let qrows: Vec<usize> = known.iter().map(|&i| job.queries[i]).collect();
            let q = embeddings.select(Axis(0), &qrows);
            let sims = q.dot(&db.t());
            let labels: Vec<&str> = known.iter().map(|&i| truth[i].as_str()).collect();
            let ks: Vec<usize> = [1usize, 5, 10]
                .into_iter()
                .filter(|&k| k <= job.database.len())
                .collect();
            let rp = RankingParams::new(&ks, 20.min(job.database.len()))?;
            let r = ranking_metrics(sims.view(), &labels, &job.database_labels, &rp)?;
            println!(
                "closed set, known queries: {}  mAP {:.3}",
                r.top_k
                    .iter()
                    .map(|(k, a)| format!("top-{k} {a:.3}"))
                    .collect::<Vec<_>>()
                    .join("  "),
                r.mean_ap
            );
            report.section("Closed-set ranking (known queries)");
            for (k, a) in &r.top_k {
                report.metric(format!("top-{k}"), *a);
            }
            report.metric("mAP", r.mean_ap);
            report.value("CMC", serde_json::json!(r.cmc));
        }

        // New individuals: how well the new ids group the new queries.
        let new_rows: Vec<usize> = (0..truth.len()).filter(|&i| is_new[i]).collect();
        if new_rows.len() >= 2 {
            let a: Vec<&str> = new_rows.iter().map(|&i| truth[i].as_str()).collect();
            let b: Vec<&str> = new_rows
                .iter()
                .map(|&i| job.final_ids[i].as_str())
                .collect();
            let nmi = normalized_mutual_info(&a, &b)?;
            let hcv = homogeneity_completeness_v_measure(&a, &b)?;
            let ari = s.new_id_ari.unwrap_or(f64::NAN);
            println!(
                "new individuals ({} queries): ARI {ari:.3}  NMI {nmi:.3}  V-measure {:.3}",
                new_rows.len(),
                hcv.v_measure
            );
            report.section("New-individual discovery");
            report
                .metric("ARI", ari)
                .metric("NMI", nmi)
                .metric("homogeneity", hcv.homogeneity)
                .metric("completeness", hcv.completeness)
                .metric("V-measure", hcv.v_measure);
        }
    }

    // Silhouette of the database embeddings by identity.
    let db = embeddings.select(Axis(0), &job.database);
    if let Ok(sil) = silhouette_score(db.view(), &job.database_labels, SilhouetteMetric::Cosine) {
        println!("silhouette of the database by identity (cosine): {sil:.3}");
        report.section("Embedding space");
        report.metric("silhouette (cosine, database by identity)", sil);
    }

    // t-SNE of every image, coloured by identity.
    if !args.no_tsne {
        let t0 = Instant::now();
        let rows: Vec<usize> = job.database.iter().chain(&job.queries).copied().collect();
        let x = embeddings.select(Axis(0), &rows);
        let params = TsneParams::new(2)
            .perplexity(args.perplexity)
            .max_iter(args.tsne_iter)
            .seed(seed);
        match params.check().and_then(|p| p.run(x.view())) {
            Ok(ts) => {
                report.timing_since("t-SNE", t0);
                let labels: Vec<String> = rows
                    .iter()
                    .map(|&i| records[i].identity.clone().unwrap_or_else(|| "?".into()))
                    .collect();
                let is_new = truth.as_ref().map(|t| new_flags(t, &job.database_labels));
                let mut known = vec![true; job.database.len()];
                let mut correct = vec![true; job.database.len()];
                for (qi, _) in job.queries.iter().enumerate() {
                    let new = is_new.as_ref().is_some_and(|n| n[qi]);
                    known.push(!new);
                    let right = truth.as_ref().is_none_or(|t| {
                        if new {
                            job.predictions[qi].decision.is_new()
                        } else {
                            job.predictions[qi].decision.identity() == Some(t[qi].as_str())
                        }
                    });
                    correct.push(right);
                }
                let plot = ScatterPlot::new(
                    ts.embedding.view(),
                    &labels,
                    ScatterParams::new().title(format!(
                        "t-SNE of {} embeddings (KL {:.3})",
                        rows.len(),
                        ts.kl_divergence
                    )),
                )?
                .known(&known)?
                .correct(&correct)?;
                let files = plot.write(out.join("tsne"))?;
                println!(
                    "t-SNE of {} embeddings in {:.1} s (KL {:.3}): {}",
                    rows.len(),
                    t0.elapsed().as_secs_f64(),
                    ts.kl_divergence,
                    files.png.display()
                );
                report.section("t-SNE");
                report.metric("KL divergence", ts.kl_divergence);
                report.scatter(&files, "t-SNE of the database and query embeddings");
                written.push(files.png.clone());
                written.push(files.svg.clone());
            }
            Err(e) => println!("t-SNE skipped: {e}"),
        }
    }

    // Match sheets for the first queries.
    if args.sheets > 0 {
        let t0 = Instant::now();
        let mut qs = Vec::new();
        for (qi, &ri) in job.queries.iter().enumerate().take(args.sheets) {
            let r = &records[ri];
            let mut m = QueryMatches::new(
                r.image_id.clone(),
                sheet_image(r),
                job.predictions[qi].decision.clone(),
            );
            if let Some(t) = &truth {
                let id = t[qi].clone();
                m = m.truth(if job.database_labels.contains(&id) {
                    Truth::known(id)
                } else {
                    Truth::new_individual(id)
                });
            }
            for (&g, &s) in job.topk.indices.row(qi).iter().zip(job.topk.scores.row(qi)) {
                let dr = &records[job.database[g]];
                m = m.candidate(Candidate::new(
                    sheet_image(dr),
                    dr.identity.clone().unwrap_or_default(),
                    f64::from(s),
                ));
            }
            qs.push(m);
        }
        let sheets = write_match_sheets(&qs, out.join("match-sheets"), &MatchSheetParams::new())?;
        report.timing_since("match sheets", t0);
        println!(
            "{} match sheets in {}{}",
            sheets.pages.len(),
            out.join("match-sheets").display(),
            if sheets.failures.is_empty() {
                String::new()
            } else {
                format!(" ({} images could not be shown)", sheets.failures.len())
            }
        );
        report.section("Match sheets");
        report.match_sheets(&sheets, 4);
        written.extend(sheets.pages);
    }
    Ok(written)
}

/// Prints a job's score.
pub fn print_score(s: &JobScore) {
    let f = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.3}"));
    for (d, v) in &s.animalclef.per_dataset {
        println!(
            "  {d}: BAKS {}  BAUS {}  score {:.3}",
            f(v.baks),
            f(v.baus),
            v.geometric_mean()
        );
    }
    println!(
        "AnimalCLEF score {:.3} ({} known, {} new queries); closed-set top-1 {}; new-id ARI {}",
        s.animalclef.score,
        s.known_queries,
        s.new_queries,
        f(s.closed_top1),
        f(s.new_id_ari)
    );
}

/// The end of `demo` and `evaluate`: [`figures_and_pictures`], the total
/// time since `start`, and the report written into `out`.
#[allow(clippy::too_many_arguments)]
pub fn finish(
    report: &mut Report,
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    job: &OpenSetJob,
    out: &Path,
    args: &OutputArgs,
    seed: u64,
    start: Instant,
) -> Result<()> {
    figures_and_pictures(report, records, embeddings, job, out, args, seed)?;
    report.timing_since("total", start);
    write_report(report, out)?;
    Ok(())
}

/// Writes `report` as `report.json` and `report.html` into `out`.
pub fn write_report(report: &Report, out: &Path) -> Result<(PathBuf, PathBuf)> {
    let json = report.write_json(out.join("report.json"))?;
    let html = report.write_html(out.join("report.html"))?;
    println!("report: {} and {}", html.display(), json.display());
    Ok((json, html))
}
