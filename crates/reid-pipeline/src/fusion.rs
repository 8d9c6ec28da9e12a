//! A second similarity source (local keypoints, another model) fused into
//! each query's cosine shortlist, calibrated from the database alone.

use std::cell::Cell;
use std::time::Instant;

use ndarray::{ArrayView2, Axis};
use reid_core::{ParamGuard, Record};
use reid_openset::{
    DecisionParams, EmbeddingScorer, FnScorer, FusionCalibration, FusionGroupCalibration,
    FusionSource, PairScorer, Thresholds, ValidAdaptParams, ValidFusionParams, fuse_stacked,
    self_calibrate_fusion_groups,
};

use crate::identify::{
    Identification, StageSeconds, check_rows, decide_by_scope, final_ids, search_by_scope,
};
use crate::params::ValidOpenSetParams;
use crate::{PipelineError, Result};

/// What [`fuse`] did.
#[derive(Debug, Clone)]
pub struct FusionReport {
    /// The shortlist `B`.
    pub shortlist: usize,
    /// The calibrations: per dataset, and the default.
    pub calibration: FusionGroupCalibration,
    /// Pairs the pair scorers scored for the calibration (database ×
    /// database, never across datasets), summed over the scorers.
    pub database_pairs: usize,
    /// Query × database pairs they scored, summed over the scorers.
    pub query_pairs: usize,
    /// Seconds the pair scorers spent on database pairs.
    pub database_seconds: f64,
    /// Seconds they spent on query pairs.
    pub query_seconds: f64,
    /// The same, per pair scorer, in the order they were given.
    pub sources: Vec<SourceCost>,
    /// The fused sources: `cosine`, then each pair scorer's name.
    pub source_names: Vec<String>,
    /// Per query (in query order), per source (as in
    /// [`FusionReport::source_names`]), its calibrated probability of each
    /// candidate of [`Identification::matches`], in the same order; empty
    /// for a source of weight 0.
    pub source_probabilities: Vec<Vec<Vec<f32>>>,
}

/// The work one pair scorer did in [`fuse`].
#[derive(Debug, Clone, PartialEq)]
pub struct SourceCost {
    /// [`PairScorer::name`].
    pub name: String,
    /// Database × database pairs scored for the calibration.
    pub database_pairs: usize,
    /// Seconds spent on them.
    pub database_seconds: f64,
    /// Query × database pairs scored.
    pub query_pairs: usize,
    /// Seconds spent on them.
    pub query_seconds: f64,
}

impl FusionReport {
    /// The calibration the default threshold comes from.
    pub fn all(&self) -> &FusionCalibration {
        &self.calibration.all
    }

    /// The fusion's mean episode score on the database: the mean over the
    /// calibrated datasets of each one's own, else the pooled one. What
    /// choosing between fusions (say two shortlist sizes) compares.
    pub fn episode_score(&self) -> f64 {
        let per: Vec<f64> = self
            .calibration
            .per_group
            .values()
            .map(|c| c.self_calibration.score_mean)
            .collect();
        if per.is_empty() {
            self.calibration.all.self_calibration.score_mean
        } else {
            per.iter().sum::<f64>() / per.len() as f64
        }
    }

    /// One line on how the sources were combined and decided, per dataset:
    /// each (combination, rule) tried with its episode score on the
    /// database, and the one kept (`cattle: mean + top1 0.714, logistic +
    /// top1 0.731 -> logistic + top1`).
    pub fn combine_summary(&self) -> String {
        let one = |name: &str, c: &FusionCalibration| {
            let tried: Vec<String> = c
                .trials
                .iter()
                .map(|t| format!("{} + {} {:.3}", t.combine, t.rule, t.score))
                .collect();
            let kept = if c.stack.is_some() {
                "logistic"
            } else {
                "mean"
            };
            format!("{name}: {} -> {kept} + {}", tried.join(", "), c.rule)
        };
        let mut parts: Vec<String> = self
            .calibration
            .per_group
            .iter()
            .map(|(g, c)| one(g, c))
            .collect();
        if parts.is_empty() {
            parts.push(one("all", &self.calibration.all));
        }
        parts.join("; ")
    }
}

/// A record-pair scorer seen through row maps: query row `q` is record
/// `queries[q]`, gallery row `g` is record `gallery[g]`; the time spent in
/// the inner scorer and the pairs it scored are counted.
struct Mapped<'a> {
    inner: &'a dyn PairScorer,
    queries: &'a [usize],
    gallery: &'a [usize],
    seconds: Cell<f64>,
    pairs: Cell<usize>,
}

impl<'a> Mapped<'a> {
    fn new(inner: &'a dyn PairScorer, queries: &'a [usize], gallery: &'a [usize]) -> Self {
        Self {
            inner,
            queries,
            gallery,
            seconds: Cell::new(0.0),
            pairs: Cell::new(0),
        }
    }
    fn map(&self, q: usize, g: usize) -> std::result::Result<(usize, usize), String> {
        match (self.queries.get(q), self.gallery.get(g)) {
            (Some(&a), Some(&b)) => Ok((a, b)),
            _ => Err(format!(
                "pair ({q}, {g}) outside [{}, {}]",
                self.queries.len(),
                self.gallery.len()
            )),
        }
    }
}

impl PairScorer for Mapped<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn score(&self, q: usize, g: usize) -> std::result::Result<f32, String> {
        let (a, b) = self.map(q, g)?;
        self.inner.score(a, b)
    }
    fn score_many(
        &self,
        pairs: &[(usize, usize)],
    ) -> std::result::Result<Vec<f32>, (usize, String)> {
        let mapped = pairs
            .iter()
            .enumerate()
            .map(|(i, &(q, g))| self.map(q, g).map_err(|e| (i, e)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let t = Instant::now();
        let out = self.inner.score_many(&mapped);
        self.seconds
            .set(self.seconds.get() + t.elapsed().as_secs_f64());
        self.pairs.set(self.pairs.get() + pairs.len());
        out
    }
}

fn check_sources(fusion: &ValidFusionParams, scorers: usize) -> Result<()> {
    if scorers == 0 {
        return Err(PipelineError::InvalidParam {
            name: "scorers",
            reason: "fusion needs at least one pair scorer beside cosine".into(),
        });
    }
    if fusion.weights().len() != scorers + 1 {
        return Err(PipelineError::InvalidParam {
            name: "weights",
            reason: format!(
                "one weight for cosine and one per pair scorer ({} in all), got {}",
                scorers + 1,
                fusion.weights().len()
            ),
        });
    }
    Ok(())
}

/// Pair scorers (local keypoints, learned matchers, another model) fused
/// into an identification that [`crate::identify`] made from the same
/// `records`, `embeddings` and `params` (the WildFusion recipe; several
/// fusions, e.g. shortlist sizes, share one cosine pass:
/// `fuse(&identify(..)?, ..)`).
///
/// Each of `scorers` scores pairs of **records** (indices into `records`;
/// e.g. keypoint inlier counts, LightGlue match counts). For each dataset,
/// the fusion is self-calibrated from its database alone
/// ([`reid_openset::self_calibrate_fusion_groups`]: cosine and every scorer,
/// each calibrated to the probability of the same individual, averaged with
/// the weights of `fusion` (cosine's first, then one per scorer), a
/// threshold on the fused probability from the open-set episodes of
/// `params`, never crossing datasets); each query's cosine shortlist of
/// `fusion.shortlist()` database images of its own scope is re-ranked by
/// the fused probability, and the top one is accepted when it clears its
/// dataset's threshold. New individuals are grouped as in
/// [`crate::identify`], by cosine at the cosine threshold's distance. The
/// scorers only ever see shortlisted pairs.
pub fn fuse(
    cosine: &Identification,
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    params: &ValidOpenSetParams,
    scorers: &[&dyn PairScorer],
    fusion: &ValidFusionParams,
) -> Result<Identification> {
    check_sources(fusion, scorers.len())?;
    check_rows(records, embeddings)?;
    cosine.check_inputs(records, embeddings)?;
    let start = Instant::now();
    let split = cosine.split();
    // Calibration starts from the embeddings as given (its episodes refit
    // any projection); the queries are searched through the projection.
    let raw_database = split.database_gallery(records, embeddings)?;
    let working = cosine.working(embeddings.view());
    let adapted_database = match &cosine.adapted {
        Some(_) => Some(split.database_gallery(records, working)?),
        None => None,
    };
    let database = adapted_database.as_ref().unwrap_or(&raw_database);
    let db_emb = database.embeddings();
    let episodes = params
        .episodes
        .with_grid(reid_openset::linear_grid(0.0..=1.0, 200))?;
    let groups = split.database_groups(records);

    // Calibration on database pairs, within each dataset.
    let db_cosine = EmbeddingScorer::new("cosine", db_emb, db_emb)?;
    let db_scorers: Vec<Mapped<'_>> = scorers
        .iter()
        .map(|&s| Mapped::new(s, &split.database, &split.database))
        .collect();
    let mut db_sources: Vec<&dyn PairScorer> = vec![&db_cosine];
    db_sources.extend(db_scorers.iter().map(|m| m as &dyn PairScorer));
    let calibration =
        self_calibrate_fusion_groups(&raw_database, &groups, &db_sources, fusion, &episodes)?;
    let thresholds = if params.per_dataset {
        calibration.thresholds.clone()
    } else {
        Thresholds::new(calibration.all.self_calibration.threshold)?
    };

    let database_seconds = start.elapsed().as_secs_f64();
    let queries_start = Instant::now();
    // Each query's cosine shortlist inside its scope, re-ranked with its
    // dataset's calibrators.
    let q_emb = working.select(Axis(0), &split.queries);
    let rerank = params.adapt().and_then(ValidAdaptParams::rerank);
    let parts = search_by_scope(
        &split,
        database,
        q_emb.view(),
        fusion.shortlist(),
        rerank.as_ref(),
    )?;
    let search_seconds = queries_start.elapsed().as_secs_f64();
    let mut query_cost = vec![(0usize, 0.0f64); scorers.len()];
    let mut fused_parts = Vec::with_capacity(parts.len());
    let mut source_probabilities = vec![vec![Vec::new(); scorers.len() + 1]; split.queries.len()];
    for (scope, rows, short) in parts {
        let cal = if params.per_dataset {
            calibration.get(scope.name())
        } else {
            &calibration.all
        };
        let q_part = q_emb.select(Axis(0), &rows);
        let q_recs: Vec<usize> = rows.iter().map(|&i| split.queries[i]).collect();
        let cosine = EmbeddingScorer::new("cosine", q_part.view(), db_emb.view())?;
        // Re-ranked, the first source is the shortlist's own score, as the
        // calibration's episodes read it.
        let reranked = FnScorer::new("cosine", |q: usize, g: usize| {
            short
                .indices
                .row(q)
                .iter()
                .position(|&c| c == g)
                .map(|j| short.scores[[q, j]])
                .ok_or_else(|| format!("database row {g} is not in query {q}'s shortlist"))
        });
        let mapped: Vec<Mapped<'_>> = scorers
            .iter()
            .map(|&s| Mapped::new(s, &q_recs, &split.database))
            .collect();
        let out = if short.indices.ncols() == 0 {
            short
        } else {
            let first: &dyn PairScorer = if rerank.is_some() { &reranked } else { &cosine };
            let mut all: Vec<&dyn PairScorer> = vec![first];
            all.extend(mapped.iter().map(|m| m as &dyn PairScorer));
            let sources: Vec<FusionSource<'_>> = all
                .into_iter()
                .zip(&cal.calibrators)
                .zip(fusion.weights())
                .map(|((scorer, calibrator), &weight)| FusionSource {
                    scorer,
                    calibrator: Some(calibrator),
                    weight,
                })
                .collect();
            let fused = fuse_stacked(&short, &sources, cal.stack.as_ref())?;
            for (s, probs) in fused.sources.iter().enumerate() {
                if let Some(probs) = probs {
                    for (&qi, row) in rows.iter().zip(probs.outer_iter()) {
                        source_probabilities[qi][s] = row.to_vec();
                    }
                }
            }
            fused.top
        };
        for (cost, m) in query_cost.iter_mut().zip(&mapped) {
            cost.0 += m.pairs.get();
            cost.1 += m.seconds.get();
        }
        fused_parts.push((scope, rows, out));
    }
    // Each scope decided by its calibration's rule.
    let (predictions, matches) = decide_by_scope(
        &fused_parts,
        split.queries.len(),
        &split.database_labels,
        &|scope| {
            Ok(DecisionParams::new(thresholds.clone())
                .rule(calibration.get(scope.name()).rule)
                .check()?)
        },
    )?;
    // New individuals cluster by cosine, at the cosine thresholds.
    let final_ids = final_ids(
        &predictions,
        &split.scopes,
        q_emb.view(),
        &cosine.thresholds,
        params,
    )?;
    let sources: Vec<SourceCost> = scorers
        .iter()
        .zip(&db_scorers)
        .zip(&query_cost)
        .map(|((s, db), &(query_pairs, query_seconds))| SourceCost {
            name: s.name().to_string(),
            database_pairs: db.pairs.get(),
            database_seconds: db.seconds.get(),
            query_pairs,
            query_seconds,
        })
        .collect();
    Ok(Identification {
        predictions,
        matches,
        final_ids,
        thresholds,
        fusion: Some(FusionReport {
            shortlist: fusion.shortlist(),
            calibration,
            database_pairs: sources.iter().map(|c| c.database_pairs).sum(),
            query_pairs: sources.iter().map(|c| c.query_pairs).sum(),
            database_seconds: sources.iter().map(|c| c.database_seconds).sum(),
            query_seconds: sources.iter().map(|c| c.query_seconds).sum(),
            source_names: std::iter::once("cosine".to_string())
                .chain(sources.iter().map(|c| c.name.clone()))
                .collect(),
            sources,
            source_probabilities,
        }),
        seconds: {
            let queries = queries_start.elapsed().as_secs_f64();
            let local: f64 = query_cost.iter().map(|c| c.1).sum();
            StageSeconds {
                database: cosine.seconds.database + database_seconds,
                queries,
                fusion_calibration: database_seconds,
                search: search_seconds,
                local,
                decide: (queries - search_seconds - local).max(0.0),
                ..cosine.seconds
            }
        },
        ..cosine.clone()
    })
}
