//! The pictures an open-set user reads a report by (feature `report`), one
//! set per dataset: the decision scores of known and of new queries with
//! the chosen threshold (and the fixed baseline's), the self-calibration
//! curve the threshold came from, a reliability diagram of each calibrated
//! source and of the fusion, the CMC curve, and the identities most often
//! confused, with thumbnails. [`dataset_figures`] computes the figures (so a
//! test can check them against the decisions and the metrics);
//! [`write_figures`] draws them and adds them to a report. Without the
//! truth (a competition's test set) only the score distribution and the
//! threshold curve are drawn.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reid_core::{ParamGuard, Record};
use reid_eval::chart::{Bars, Chart, Corner, Histogram, Line, Reliability, Rule, significant};
use reid_eval::matchsheet::{MatchSheetParams, write_match_sheets};
use reid_eval::report::{Report, Table};
use reid_openset::{CurvePoint, SelfCalibration};

use crate::Result;
use crate::evaluate::Evaluation;
use crate::identify::Identification;
use crate::report::query_matches;

/// What the figures compare the answer with.
#[derive(Debug, Clone, Copy, Default)]
pub struct FigureInputs<'a> {
    /// The cosine stage, when the answer is a fusion: its decision scores
    /// are drawn too, with its own threshold.
    pub cosine: Option<&'a Identification>,
    /// The fixed baseline: the same queries by raw cosine at a fixed
    /// threshold (the AnimalCLEF 2025 baseline's 0.6, say). Its threshold is
    /// drawn on the cosine scores when they are raw cosines; when they are
    /// projected (or there are none), its own scores are drawn.
    pub fixed: Option<&'a Identification>,
}

/// Histograms of the queries' decision scores, with bins placed so that
/// the threshold is a bin edge.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreFigure {
    /// What the score is (`cosine`, `fused probability`).
    pub score: String,
    /// The threshold the decisions used.
    pub threshold: f64,
    /// The fixed baseline's threshold, on the same score, if any (none on
    /// projected cosines).
    pub baseline: Option<f64>,
    /// `known individuals` and `new individuals` with the truth, else
    /// `queries`.
    pub series: Vec<(String, Histogram)>,
}

impl ScoreFigure {
    /// The queries whose score clears the threshold: those decided known.
    pub fn accepted(&self) -> usize {
        self.series
            .iter()
            .map(|(_, h)| h.count_at_least(h.anchor))
            .sum()
    }
}

/// The self-calibration curve a threshold came from: the mean episode score
/// at each threshold of the grid, with its spread over episodes.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveFigure {
    /// What the threshold is on.
    pub score: String,
    /// The curve.
    pub points: Vec<CurvePoint>,
    /// The threshold chosen.
    pub threshold: f64,
    /// Episodes averaged.
    pub episodes: usize,
    /// Whether the dataset was calibrated on its own (else the default
    /// calibration over every dataset).
    pub own: bool,
}

/// Queries of one true identity decided as another identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confusion {
    /// The true identity.
    pub truth: String,
    /// Whether it is a new individual (absent from the database).
    pub truth_is_new: bool,
    /// The identity it was taken for.
    pub answer: String,
    /// How many queries.
    pub count: usize,
    /// The first such query (position in [`Identification::queries`]).
    pub example: usize,
}

/// How the queries of one known identity were decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRow {
    /// The identity.
    pub identity: String,
    /// Its queries.
    pub queries: usize,
    /// Decided as itself.
    pub right: usize,
    /// Decided as another identity.
    pub wrong: usize,
    /// Called a new individual.
    pub called_new: usize,
    /// The identity it was most often taken for.
    pub confused_with: Option<String>,
}

/// The figures of one dataset (scope).
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetFigures {
    /// The dataset (scope name).
    pub dataset: String,
    /// Its queries (positions in [`Identification::queries`]).
    pub queries: Vec<usize>,
    /// The answer's decision scores.
    pub scores: ScoreFigure,
    /// The cosine stage's, when the answer is a fusion.
    pub cosine_scores: Option<ScoreFigure>,
    /// The fixed baseline's (raw cosine at its fixed threshold), when given
    /// and no other picture shows raw cosines.
    pub fixed_scores: Option<ScoreFigure>,
    /// The self-calibration curve of its threshold (none with a fixed one).
    pub curve: Option<CurveFigure>,
    /// Its CMC over its known queries (with the truth).
    pub cmc: Option<Vec<f64>>,
    /// Reliability of each calibrated source and of the fusion on the
    /// queries' top candidates (a fusion with the truth): `(name, diagram)`.
    pub reliability: Vec<(String, Reliability)>,
    /// Identity pairs confused, most first (with the truth).
    pub confusions: Vec<Confusion>,
    /// Per known identity, worst first (with the truth).
    pub identities: Vec<IdentityRow>,
}

/// Bins of the reliability diagrams.
pub const RELIABILITY_BINS: usize = 10;

/// The figures of every dataset of `ident` (made from `records`), in scope
/// name order; `evaluation` (of `ident`) gives the CMC.
pub fn dataset_figures(
    records: &[Record],
    ident: &Identification,
    evaluation: Option<&Evaluation>,
    inputs: &FigureInputs<'_>,
) -> Result<Vec<DatasetFigures>> {
    let truth = ident.truth(records);
    let is_new = truth.as_ref().map(|t| ident.new_flags(records, t));
    let cmc = evaluation.map(|e| e.cmc_by_dataset(records, ident));
    let mut by_scope: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (qi, s) in ident.scopes.iter().enumerate() {
        by_scope.entry(s.name()).or_default().push(qi);
    }
    let fused = ident.fusion.is_some();
    let mut out = Vec::with_capacity(by_scope.len());
    for (g, qs) in by_scope {
        let answer_score = if fused { "fused probability" } else { "cosine" };
        let baseline = inputs.fixed.map(|f| f.thresholds.get(Some(g)));
        let scores = score_figure(
            ident,
            &qs,
            g,
            is_new.as_deref(),
            answer_score,
            if fused { None } else { baseline },
        )?;
        let cosine_stage = if fused { inputs.cosine } else { Some(ident) };
        let cosine_scores = match (fused, inputs.cosine) {
            (true, Some(c)) => Some(score_figure(
                c,
                &qs,
                g,
                is_new.as_deref(),
                "cosine",
                baseline,
            )?),
            _ => None,
        };
        let raw_shown = cosine_stage.is_some_and(|c| c.adapted.is_none());
        let fixed_scores = match inputs.fixed {
            Some(f) if !raw_shown => Some(score_figure(
                f,
                &qs,
                g,
                is_new.as_deref(),
                "raw cosine",
                None,
            )?),
            _ => None,
        };
        let mut figures = DatasetFigures {
            dataset: g.to_string(),
            curve: curve_figure(ident, g, answer_score),
            cmc: cmc.as_ref().and_then(|c| c.get(g).cloned()),
            reliability: Vec::new(),
            confusions: Vec::new(),
            identities: Vec::new(),
            scores,
            cosine_scores,
            fixed_scores,
            queries: qs,
        };
        if let (Some(truth), Some(is_new)) = (&truth, &is_new) {
            figures.reliability = reliability(ident, &figures.queries, truth)?;
            (figures.confusions, figures.identities) =
                confusions(ident, &figures.queries, truth, is_new);
        }
        out.push(figures);
    }
    Ok(out)
}

fn score_figure(
    ident: &Identification,
    qs: &[usize],
    g: &str,
    is_new: Option<&[bool]>,
    score: &str,
    baseline: Option<f32>,
) -> Result<ScoreFigure> {
    let threshold = f64::from(ident.thresholds.get(Some(g)));
    let value = |qi: usize| f64::from(ident.predictions[qi].similarity);
    let finite: Vec<f64> = qs
        .iter()
        .map(|&q| value(q))
        .filter(|v| v.is_finite())
        .collect();
    let lo = finite.iter().copied().fold(threshold, f64::min);
    let hi = finite.iter().copied().fold(threshold, f64::max);
    let width = if hi > lo { (hi - lo) / 30.0 } else { 0.01 };
    let hist = |pick: &dyn Fn(usize) -> bool| -> Result<Histogram> {
        let v: Vec<f64> = qs.iter().filter(|&&q| pick(q)).map(|&q| value(q)).collect();
        Ok(Histogram::aligned(&v, threshold, width)?)
    };
    let series = match is_new {
        Some(n) => vec![
            ("known individuals".to_string(), hist(&|q| !n[q])?),
            ("new individuals".to_string(), hist(&|q| n[q])?),
        ],
        None => vec![("queries".to_string(), hist(&|_| true)?)],
    };
    Ok(ScoreFigure {
        score: score.to_string(),
        threshold,
        // A raw cosine threshold means nothing on projected cosines.
        baseline: baseline.filter(|_| ident.adapted.is_none()).map(f64::from),
        series,
    })
}

fn curve_figure(ident: &Identification, g: &str, score: &str) -> Option<CurveFigure> {
    let own = ident.thresholds.groups().contains_key(g);
    let pick = |per: &BTreeMap<String, SelfCalibration>, all: &SelfCalibration| {
        let c = if own { per.get(g).unwrap_or(all) } else { all };
        (c.clone(), own && per.contains_key(g))
    };
    let (c, own) = match (&ident.fusion, &ident.calibration) {
        (Some(f), _) => {
            let per: BTreeMap<String, SelfCalibration> = f
                .calibration
                .per_group
                .iter()
                .map(|(k, v)| (k.clone(), v.self_calibration.clone()))
                .collect();
            pick(&per, &f.calibration.all.self_calibration)
        }
        (None, Some(cal)) => pick(&cal.per_group, &cal.all),
        (None, None) => return None,
    };
    Some(CurveFigure {
        score: score.to_string(),
        points: c.curve.clone(),
        threshold: f64::from(ident.thresholds.get(Some(g))),
        episodes: c.episodes.len(),
        own,
    })
}

/// Each source's and the fusion's probability of each query's top
/// candidate against whether it shows the query's animal.
fn reliability(
    ident: &Identification,
    qs: &[usize],
    truth: &[String],
) -> Result<Vec<(String, Reliability)>> {
    let Some(f) = &ident.fusion else {
        return Ok(Vec::new());
    };
    let mut probs: Vec<Vec<f64>> = vec![Vec::new(); f.source_names.len() + 1];
    let mut outcome: Vec<Vec<bool>> = vec![Vec::new(); f.source_names.len() + 1];
    for &qi in qs {
        let Some(top) = ident.matches[qi].first() else {
            continue;
        };
        let right = ident.database_labels[top.database] == truth[qi];
        let mut push = |k: usize, p: f32| {
            probs[k].push(f64::from(p).clamp(0.0, 1.0));
            outcome[k].push(right);
        };
        for (s, p) in f.source_probabilities[qi].iter().enumerate() {
            if let Some(&p) = p.first() {
                push(s, p);
            }
        }
        push(f.source_names.len(), top.score);
    }
    let names = f.source_names.iter().cloned().chain(["fusion".to_string()]);
    let mut out = Vec::new();
    for ((name, p), o) in names.zip(&probs).zip(&outcome) {
        if !p.is_empty() {
            out.push((name, Reliability::new(p, o, RELIABILITY_BINS)?));
        }
    }
    Ok(out)
}

fn confusions(
    ident: &Identification,
    qs: &[usize],
    truth: &[String],
    is_new: &[bool],
) -> (Vec<Confusion>, Vec<IdentityRow>) {
    let mut pairs: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
    /// How one identity's queries went.
    #[derive(Default)]
    struct Tally<'a> {
        queries: usize,
        right: usize,
        wrong: usize,
        taken_for: BTreeMap<&'a str, usize>,
    }
    let mut rows: BTreeMap<&str, Tally<'_>> = BTreeMap::new();
    for &qi in qs {
        let answer = ident.predictions[qi].decision.identity();
        if let Some(a) = answer.filter(|a| *a != truth[qi]) {
            pairs.entry((truth[qi].as_str(), a)).or_insert((0, qi)).0 += 1;
        }
        if !is_new[qi] {
            let r = rows.entry(truth[qi].as_str()).or_default();
            r.queries += 1;
            match answer {
                Some(a) if a == truth[qi] => r.right += 1,
                Some(a) => {
                    r.wrong += 1;
                    *r.taken_for.entry(a).or_default() += 1;
                }
                None => {}
            }
        }
    }
    let new_of: BTreeMap<&str, bool> = qs.iter().map(|&q| (truth[q].as_str(), is_new[q])).collect();
    let mut confusions: Vec<Confusion> = pairs
        .into_iter()
        .map(|((t, a), (count, example))| Confusion {
            truth: t.to_string(),
            truth_is_new: new_of.get(t).copied().unwrap_or(false),
            answer: a.to_string(),
            count,
            example,
        })
        .collect();
    confusions.sort_by(|x, y| y.count.cmp(&x.count).then(x.example.cmp(&y.example)));
    let mut identities: Vec<IdentityRow> = rows
        .into_iter()
        .map(|(id, t)| IdentityRow {
            identity: id.to_string(),
            queries: t.queries,
            right: t.right,
            wrong: t.wrong,
            called_new: t.queries - t.right - t.wrong,
            confused_with: t
                .taken_for
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
                .map(|(a, _)| a.to_string()),
        })
        .collect();
    // Worst first: the lowest share right, then the most queries.
    identities.sort_by(|a, b| {
        (a.right * b.queries)
            .cmp(&(b.right * a.queries))
            .then(b.queries.cmp(&a.queries))
            .then(a.identity.cmp(&b.identity))
    });
    (confusions, identities)
}

/// A file name part for a dataset: ASCII letters, digits, `-` and `_` (others
/// become `_`), at most 40 characters, after its position, so that two
/// names never share a file and no name steers where a file goes.
fn slug(i: usize, name: &str) -> String {
    let clean: String = name
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{:02}-{clean}", i + 1)
}

fn score_chart(dataset: &str, f: &ScoreFigure) -> Chart {
    let mut chart = Chart::new(
        format!("{dataset}: each query's best {}", f.score),
        format!("best {} (known when at or above the threshold)", f.score),
        "queries",
    );
    for (name, h) in &f.series {
        chart = chart.bars(Bars::new(name.clone(), h.clone()));
    }
    chart = chart.rule(Rule::new("threshold", f.threshold));
    if let Some(b) = f.baseline {
        chart = chart.rule(Rule::new("fixed baseline", b).dashed());
    }
    chart
}

fn curve_chart(dataset: &str, c: &CurveFigure) -> Chart {
    let points: Vec<(f64, f64)> = c
        .points
        .iter()
        .map(|p| (f64::from(p.threshold), p.mean))
        .collect();
    let band: Vec<(f64, f64)> = c
        .points
        .iter()
        .map(|p| (p.mean - p.std, p.mean + p.std))
        .collect();
    Chart::new(
        format!(
            "{dataset}: self-calibration on the database ({} episodes{})",
            c.episodes,
            if c.own { "" } else { ", all datasets" }
        ),
        format!("threshold on the {}", c.score),
        "episode score sqrt(BAKS·BAUS), mean ± std",
    )
    .line(Line::new("mean episode score", points).band(band))
    .rule(Rule::new("chosen", c.threshold))
}

fn reliability_chart(dataset: &str, r: &[(String, Reliability)]) -> Chart {
    let mut chart = Chart::new(
        format!("{dataset}: reliability of the top candidate's probability"),
        "predicted probability that the top candidate is the query's animal",
        "observed frequency",
    )
    .x_range(0.0, 1.0)
    .y_range(0.0, 1.0)
    .diagonal()
    .legend(Corner::UpperLeft);
    for (name, rel) in r {
        chart = chart.line(
            Line::new(
                format!("{name} (ECE {})", significant(rel.ece, 3)),
                rel.points(),
            )
            .markers(true),
        );
    }
    chart
}

fn cmc_chart(dataset: &str, cmc: &[f64]) -> Chart {
    let points = cmc
        .iter()
        .enumerate()
        .map(|(r, &a)| ((r + 1) as f64, a))
        .collect();
    Chart::new(
        format!("{dataset}: CMC of the known queries"),
        "rank",
        "share with the right identity at or above the rank",
    )
    .line(Line::new("CMC", points).markers(true))
    .legend(Corner::LowerRight)
}

/// Draws the figures of every dataset of `ident` into `out/figures/` (and
/// the confusion sheets into `out/confusions/`) and adds them to `report`,
/// one section per kind of picture, one picture per dataset; returns the
/// figures and every file written.
pub fn write_figures(
    report: &mut Report,
    records: &[Record],
    ident: &Identification,
    evaluation: Option<&Evaluation>,
    inputs: &FigureInputs<'_>,
    out: &Path,
) -> Result<(Vec<DatasetFigures>, Vec<PathBuf>)> {
    let figures = dataset_figures(records, ident, evaluation, inputs)?;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut add =
        |report: &mut Report, chart: Chart, stem: PathBuf, caption: String| -> Result<()> {
            let f = report.chart(chart, stem, caption)?;
            files.extend([f.png, f.svg]);
            Ok(())
        };
    let dir = out.join("figures");
    std::fs::create_dir_all(&dir).map_err(|source| reid_eval::EvalError::Io {
        path: dir.clone(),
        source,
    })?;
    let stem = |kind: &str, i: usize, f: &DatasetFigures| {
        dir.join(format!("{kind}-{}", slug(i, &f.dataset)))
    };

    let with_truth = figures.iter().any(|f| f.scores.series.len() > 1);
    report.section(if with_truth {
        "Known and new queries"
    } else {
        "Query scores"
    });
    report.text(if with_truth {
        "Each query's best score, for queries of animals in the database (known) and of animals \
         it lacks (new), with the threshold that decides between them: a query at or above it is \
         given its best match's identity, one below it is called a new individual."
    } else {
        "Each query's best score, with the threshold that decides: a query at or above it is \
         given its best match's identity, one below it is called a new individual (the queries' \
         truth is not known, so known and new animals cannot be told apart here)."
    });
    for (i, f) in figures.iter().enumerate() {
        add(
            report,
            score_chart(&f.dataset, &f.scores),
            stem("scores", i, f),
            format!(
                "{}: {} of {} queries at or above the threshold {}",
                f.dataset,
                f.scores.accepted(),
                f.queries.len(),
                significant(f.scores.threshold, 3)
            ),
        )?;
        if let Some(c) = &f.cosine_scores {
            add(
                report,
                score_chart(&f.dataset, c),
                stem("cosine-scores", i, f),
                format!(
                    "{}: the same queries by cosine alone, before the fusion",
                    f.dataset
                ),
            )?;
        }
        if let Some(c) = &f.fixed_scores {
            add(
                report,
                score_chart(&f.dataset, c),
                stem("fixed-scores", i, f),
                format!(
                    "{}: the fixed baseline, raw cosine at the fixed threshold {} ({} of {} \
                     queries at or above it)",
                    f.dataset,
                    significant(c.threshold, 3),
                    c.accepted(),
                    f.queries.len()
                ),
            )?;
        }
    }
    if figures.iter().any(|f| f.curve.is_some()) {
        report.section("Self-calibration curve");
        report.text(
            "How the threshold was chosen, from the database alone: the open-set score of \
             simulated episodes (database identities held out as new) at every threshold, its \
             mean and spread over the episodes.",
        );
        for (i, f) in figures.iter().enumerate() {
            if let Some(c) = &f.curve {
                add(
                    report,
                    curve_chart(&f.dataset, c),
                    stem("calibration", i, f),
                    format!("{}: threshold {}", f.dataset, significant(c.threshold, 3)),
                )?;
            }
        }
    }
    if figures.iter().any(|f| !f.reliability.is_empty()) {
        report.section("Calibrated probabilities");
        report.text(
            "Whether the probabilities can be read as such: for each query, the probability each \
             source (and their fusion) gave its top candidate, binned, against how often that \
             candidate was the query's animal. Points on the diagonal are well calibrated.",
        );
        for (i, f) in figures.iter().enumerate() {
            if f.reliability.is_empty() {
                continue;
            }
            add(
                report,
                reliability_chart(&f.dataset, &f.reliability),
                stem("reliability", i, f),
                format!(
                    "{}: reliability diagram ({RELIABILITY_BINS} bins)",
                    f.dataset
                ),
            )?;
            let mut t = Table::new(
                format!("{}: expected calibration error", f.dataset),
                ["source", "ECE", "queries"],
            );
            for (name, r) in &f.reliability {
                t.push_row([name.clone().into(), r.ece.into(), r.samples.into()])?;
            }
            report.table(t);
        }
    }
    if figures.iter().any(|f| f.cmc.is_some()) {
        report.section("CMC");
        for (i, f) in figures.iter().enumerate() {
            if let Some(cmc) = &f.cmc {
                add(
                    report,
                    cmc_chart(&f.dataset, cmc),
                    stem("cmc", i, f),
                    format!(
                        "{}: top-1 {}, top-{} {}",
                        f.dataset,
                        significant(cmc.first().copied().unwrap_or(f64::NAN), 3),
                        cmc.len(),
                        significant(cmc.last().copied().unwrap_or(f64::NAN), 3)
                    ),
                )?;
            }
        }
    }
    if figures
        .iter()
        .any(|f| !f.identities.is_empty() || !f.confusions.is_empty())
    {
        report.section("Confusions");
        report.text(
            "Which individuals go wrong, and with whom: per known identity, how its queries were \
             decided (worst first), and the identity pairs most often confused, with the first \
             such query beside its best matches.",
        );
        let truth = ident.truth(records);
        let is_new = truth.as_ref().map(|t| ident.new_flags(records, t));
        for (i, f) in figures.iter().enumerate() {
            let mut t = Table::new(
                format!("{}: identities with the fewest right answers", f.dataset),
                [
                    "identity",
                    "queries",
                    "right",
                    "another identity",
                    "called new",
                    "most often taken for",
                ],
            );
            for r in f.identities.iter().take(15) {
                t.push_row([
                    r.identity.clone().into(),
                    r.queries.into(),
                    r.right.into(),
                    r.wrong.into(),
                    r.called_new.into(),
                    r.confused_with.clone().into(),
                ])?;
            }
            report.table(t);
            if f.confusions.is_empty() {
                continue;
            }
            let mut t = Table::new(
                format!("{}: identities most often taken for another", f.dataset),
                ["true identity", "taken for", "queries"],
            );
            for c in f.confusions.iter().take(15) {
                let truth = if c.truth_is_new {
                    format!("{} (new individual)", c.truth)
                } else {
                    c.truth.clone()
                };
                t.push_row([truth.into(), c.answer.clone().into(), c.count.into()])?;
            }
            report.table(t);
            let qs: Vec<_> = f
                .confusions
                .iter()
                .take(8)
                .map(|c| {
                    query_matches(
                        records,
                        ident,
                        truth.as_deref(),
                        is_new.as_deref(),
                        c.example,
                    )
                })
                .collect();
            let sheets = write_match_sheets(
                &qs,
                out.join("confusions"),
                &MatchSheetParams::new()
                    .thumb(160)
                    .queries_per_page(4)
                    .prefix(format!("confused-{}", slug(i, &f.dataset)))
                    .title(format!("{}: the most confused identities", f.dataset))
                    .check()?,
            )?;
            report.match_sheets(&sheets, sheets.pages.len());
            files.extend(sheets.pages.iter().cloned());
        }
    }
    Ok((figures, files))
}
