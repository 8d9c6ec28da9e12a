//! The pictures and the report of an evaluation (feature `report`): the
//! figures of [`crate::evaluate`] as report sections, a t-SNE plot of every
//! embedding, match sheets of the first queries, and the JSON and
//! self-contained HTML report. Nothing is printed: the caller gets what was
//! written and how long it took.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{ArrayView2, Axis};
use reid_core::{ParamGuard, Record};
use reid_eval::matchsheet::{
    Candidate, MatchSheetParams, MatchSheets, QueryMatches, SheetImage, Truth, write_match_sheets,
};
use reid_eval::plot::{ScatterFiles, ScatterParams, ScatterPlot};
use reid_eval::report::{Cell, Report, Table};
use reid_eval::tsne::TsneParams;

use crate::evaluate::Evaluation;
use crate::identify::Identification;
use crate::score::IdentificationScore;
use crate::{PipelineError, Result};

/// What [`write_pictures`] draws; [`ParamGuard::check`] gives
/// [`ValidPictureParams`].
///
/// ```
/// use reid_pipeline::ParamGuard;
/// use reid_pipeline::report::PictureParams;
/// let p = PictureParams::default().sheets(4).tsne(false).check()?;
/// assert_eq!(p.sheets(), 4);
/// assert!(PictureParams::default().perplexity(-1.0).check().is_err());
/// # Ok::<(), reid_pipeline::PipelineError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PictureParams {
    sheets: usize,
    tsne: bool,
    perplexity: f64,
    tsne_iter: usize,
    seed: u64,
}

/// Checked [`PictureParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidPictureParams(PictureParams);

impl Default for PictureParams {
    /// Match sheets for 12 queries; a t-SNE plot with perplexity 30, 1000
    /// iterations, seed 0.
    fn default() -> Self {
        Self {
            sheets: 12,
            tsne: true,
            perplexity: 30.0,
            tsne_iter: 1000,
            seed: 0,
        }
    }
}

impl PictureParams {
    reid_core::setters! {
        /// Match sheets for this many queries (0: none).
        sheets: usize,
        /// Draw the t-SNE plot.
        tsne: bool,
        /// t-SNE perplexity (finite, > 0; at most (images - 1) / 3 when run).
        perplexity: f64,
        /// t-SNE iterations (at least 1).
        tsne_iter: usize,
        /// Seed of the t-SNE.
        seed: u64,
    }
}

reid_core::param_guard!(PictureParams => ValidPictureParams, PipelineError, |p| {
    if !(p.perplexity.is_finite() && p.perplexity > 0.0) {
        return Err(PipelineError::InvalidParam {
            name: "perplexity",
            reason: format!("must be finite and > 0, got {}", p.perplexity),
        });
    }
    if p.tsne_iter == 0 {
        return Err(PipelineError::InvalidParam {
            name: "tsne_iter",
            reason: "must be at least 1".into(),
        });
    }
    Ok(())
});

impl ValidPictureParams {
    reid_core::getters! {
        /// Match sheets for this many queries.
        sheets: usize,
    }
}

/// The t-SNE plot [`write_pictures`] drew.
#[derive(Debug, Clone)]
pub struct TsnePicture {
    /// The PNG and SVG files.
    pub files: ScatterFiles,
    /// Points drawn (database and queries).
    pub points: usize,
    /// KL divergence of the embedding.
    pub kl_divergence: f64,
    /// Seconds taken.
    pub seconds: f64,
}

/// What [`write_pictures`] wrote.
#[derive(Debug, Clone, Default)]
pub struct Pictures {
    /// The t-SNE plot, when drawn.
    pub tsne: Option<TsnePicture>,
    /// Why the t-SNE was skipped (too few images for the perplexity, ...).
    pub tsne_skipped: Option<String>,
    /// The match sheets, when written.
    pub sheets: Option<MatchSheets>,
    /// Seconds the match sheets took.
    pub sheet_seconds: f64,
}

impl Pictures {
    /// Every file written.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Some(t) = &self.tsne {
            v.push(t.files.png.clone());
            v.push(t.files.svg.clone());
        }
        if let Some(s) = &self.sheets {
            v.extend(s.pages.iter().cloned());
        }
        v
    }
}

/// Adds the figures of `evaluation` (of `ident`) to `report`: the
/// thresholds and their self-calibration, the open-set score per dataset,
/// the closed-set ranking, the new-individual discovery and the silhouette.
pub fn add_figures(
    report: &mut Report,
    ident: &Identification,
    evaluation: &Evaluation,
) -> Result<()> {
    add_thresholds(report, ident)?;
    add_scores(report, evaluation)
}

/// The open-set scores of several stages of one job (cosine alone, with a
/// projection, fused, ...) in one table: per stage, a row per dataset (BAKS,
/// BAUS, score) and a row `all` (the means over datasets, the closed-set
/// top-1 and the new-id ARI).
pub fn score_table(caption: &str, stages: &[(String, &IdentificationScore)]) -> Result<Table> {
    let mut t = Table::new(
        caption,
        [
            "stage",
            "dataset",
            "BAKS",
            "BAUS",
            "score",
            "closed-set top-1",
            "new-id ARI",
        ],
    );
    for (stage, s) in stages {
        let per = &s.animalclef.per_dataset;
        for (g, d) in per {
            t.push_row([
                stage.clone().into(),
                g.clone().into(),
                d.baks.into(),
                d.baus.into(),
                d.geometric_mean().into(),
                Cell::Null,
                Cell::Null,
            ])?;
        }
        let mean = |f: fn(&reid_openset::score::OpenSetScore) -> Option<f64>| {
            let v: Vec<f64> = per.values().filter_map(f).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        t.push_row([
            stage.clone().into(),
            "all".into(),
            mean(|d| d.baks).into(),
            mean(|d| d.baus).into(),
            s.animalclef.score.into(),
            s.closed_top1.into(),
            s.new_id_ari.into(),
        ])?;
    }
    Ok(t)
}

/// Adds the thresholds of `ident` and their self-calibration to `report`.
pub fn add_thresholds(report: &mut Report, ident: &Identification) -> Result<()> {
    report.section("Thresholds");
    let source = if ident.calibration.is_some() {
        "self-calibrated from the database"
    } else {
        "fixed"
    };
    let mut t = Table::new("threshold per dataset", ["dataset", "threshold", "source"]);
    for (g, th) in ident.thresholds.groups() {
        t.push_row([g.clone().into(), f64::from(*th).into(), source.into()])?;
    }
    t.push_row([
        "(default)".into(),
        f64::from(ident.thresholds.default_threshold()).into(),
        source.into(),
    ])?;
    report.table(t);
    let (on, per_group): (&str, Vec<(&String, &reid_openset::SelfCalibration)>) =
        match (&ident.fusion, &ident.calibration) {
            (Some(f), _) => (
                "fused probability",
                f.calibration
                    .per_group
                    .iter()
                    .map(|(g, c)| (g, &c.self_calibration))
                    .collect(),
            ),
            (None, Some(cal)) => ("cosine", cal.per_group.iter().collect()),
            (None, None) => ("", Vec::new()),
        };
    if !per_group.is_empty() {
        let mut t = Table::new(
            format!("self-calibration on the database (threshold on the {on})"),
            [
                "dataset",
                "threshold",
                "episode optima, mean",
                "episode optima, std",
                "episode score, mean",
                "episode score, std",
                "episodes",
            ],
        );
        for (g, c) in per_group {
            t.push_row([
                g.clone().into(),
                c.threshold.into(),
                c.threshold_mean.into(),
                c.threshold_std.into(),
                c.score_mean.into(),
                c.score_std.into(),
                c.episodes.len().into(),
            ])?;
        }
        report.table(t);
    }
    Ok(())
}

/// Adds the figures of `evaluation` to `report`: the open-set score per
/// dataset, the closed-set ranking, the new-individual discovery and the
/// silhouette.
fn add_scores(report: &mut Report, evaluation: &Evaluation) -> Result<()> {
    if let Some(s) = &evaluation.score {
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
    }
    if let Some(r) = &evaluation.ranking {
        report.section("Closed-set ranking (known queries)");
        for (k, a) in &r.top_k {
            report.metric(format!("top-{k}"), *a);
        }
        report.metric("mAP", r.mean_ap);
    }
    if let Some(d) = &evaluation.discovery {
        report.section("New-individual discovery");
        report
            .metric("ARI", d.ari)
            .metric("NMI", d.nmi)
            .metric("homogeneity", d.hcv.homogeneity)
            .metric("completeness", d.hcv.completeness)
            .metric("V-measure", d.hcv.v_measure);
    }
    if let Some(s) = evaluation.silhouette {
        report.section("Embedding space");
        report.metric("silhouette (cosine, database by identity)", s);
    }
    Ok(())
}

fn sheet_image(r: &Record) -> SheetImage {
    let mut s = SheetImage::new(r.path.clone());
    s.bbox = r.bbox;
    s
}

/// Query `qi` of `ident` for a match sheet: its image, decision, truth (when
/// known) and ranked matches.
pub(crate) fn query_matches(
    records: &[Record],
    ident: &Identification,
    truth: Option<&[String]>,
    is_new: Option<&[bool]>,
    qi: usize,
) -> QueryMatches {
    let r = &records[ident.queries[qi]];
    let mut m = QueryMatches::new(
        r.image_id.clone(),
        sheet_image(r),
        ident.predictions[qi].decision.clone(),
    );
    if let (Some(t), Some(n)) = (truth, is_new) {
        let id = t[qi].clone();
        m = m.truth(if n[qi] {
            Truth::new_individual(id)
        } else {
            Truth::known(id)
        });
    }
    for hit in &ident.matches[qi] {
        let dr = &records[ident.database[hit.database]];
        m = m.candidate(Candidate::new(
            sheet_image(dr),
            dr.identity.clone().unwrap_or_default(),
            f64::from(hit.score),
        ));
    }
    m
}

/// Draws the t-SNE plot of every database and query embedding (colour by
/// identity; new animals as triangles, wrong answers marked, when the truth
/// is known) into `out/tsne.{png,svg}` and the match sheets of the first
/// queries into `out/match-sheets/`, and adds both to `report`.
pub fn write_pictures(
    report: &mut Report,
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    ident: &Identification,
    out: &Path,
    params: &ValidPictureParams,
) -> Result<Pictures> {
    ident.check_inputs(records, embeddings)?;
    let p = &params.0;
    let mut pictures = Pictures::default();
    let truth = ident.truth(records);
    let is_new = truth.as_ref().map(|t| ident.new_flags(records, t));
    if p.tsne {
        let t0 = Instant::now();
        let rows: Vec<usize> = ident
            .database
            .iter()
            .chain(&ident.queries)
            .copied()
            .collect();
        let x = embeddings.select(Axis(0), &rows);
        let tsne = TsneParams::new(2)
            .perplexity(p.perplexity)
            .max_iter(p.tsne_iter)
            .seed(p.seed);
        match tsne.check().and_then(|v| v.run(x.view())) {
            Ok(ts) => {
                let labels: Vec<String> = rows
                    .iter()
                    .map(|&i| records[i].identity.clone().unwrap_or_else(|| "?".into()))
                    .collect();
                let mut known = vec![true; ident.database.len()];
                let mut correct = vec![true; ident.database.len()];
                for qi in 0..ident.queries.len() {
                    let new = is_new.as_ref().is_some_and(|n| n[qi]);
                    known.push(!new);
                    let decision = &ident.predictions[qi].decision;
                    correct.push(truth.as_ref().is_none_or(|t| {
                        if new {
                            decision.is_new()
                        } else {
                            decision.identity() == Some(t[qi].as_str())
                        }
                    }));
                }
                let plot = ScatterPlot::new(
                    ts.embedding.view(),
                    &labels,
                    ScatterParams::new()
                        .title(format!(
                            "t-SNE of {} embeddings (KL {:.3})",
                            rows.len(),
                            ts.kl_divergence
                        ))
                        .check()?,
                )?
                .known(&known)?
                .correct(&correct)?;
                let files = plot.write(out.join("tsne"))?;
                report.timing_since("t-SNE", t0);
                report.section("t-SNE");
                report.metric("KL divergence", ts.kl_divergence);
                report.scatter(&files, "t-SNE of the database and query embeddings");
                pictures.tsne = Some(TsnePicture {
                    files,
                    points: rows.len(),
                    kl_divergence: ts.kl_divergence,
                    seconds: t0.elapsed().as_secs_f64(),
                });
            }
            Err(e) => pictures.tsne_skipped = Some(e.to_string()),
        }
    }
    if p.sheets > 0 {
        let t0 = Instant::now();
        let qs: Vec<QueryMatches> = (0..ident.queries.len().min(p.sheets))
            .map(|qi| query_matches(records, ident, truth.as_deref(), is_new.as_deref(), qi))
            .collect();
        let sheets = write_match_sheets(
            &qs,
            out.join("match-sheets"),
            &MatchSheetParams::new().check()?,
        )?;
        report.timing_since("match sheets", t0);
        report.section("Match sheets");
        report.match_sheets(&sheets, 4);
        pictures.sheet_seconds = t0.elapsed().as_secs_f64();
        pictures.sheets = Some(sheets);
    }
    Ok(pictures)
}

/// Writes `report` as `report.json` and `report.html` into `out`; returns
/// both paths (JSON, HTML).
pub fn write_report(report: &Report, out: &Path) -> Result<(PathBuf, PathBuf)> {
    let json = report.write_json(out.join("report.json"))?;
    let html = report.write_html(out.join("report.html"))?;
    Ok((json, html))
}
