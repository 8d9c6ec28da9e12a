//! The open-set identification of every query: search within its scope,
//! decide known / new against a self-calibrated threshold, and give the new
//! animals consistent new ids.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use ndarray::{ArrayView2, Axis};
use reid_core::{ParamGuard, Record, Scope};
use reid_index::{Filter, Gallery, TopK};
use reid_openset::{
    ClusterParams, Decision, DecisionParams, GroupCalibration, Prediction, Thresholds,
    ValidAdaptParams, ValidDecisionParams, ValidKReciprocalParams, assign_new_ids, decide_topk,
    self_calibrate_groups,
};

use crate::adapt::{Adapted, adapt_embeddings};
use crate::fusion::FusionReport;
use crate::params::ValidOpenSetParams;
use crate::split::OpenSetSplit;
use crate::{PipelineError, Result};

/// One ranked match of a query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// Position of the matched record in [`Identification::database`].
    pub database: usize,
    /// Its score: the cosine, or the fused probability after a fusion.
    pub score: f32,
}

/// The outcome of [`identify`]; every per-query vector is in the order of
/// [`Identification::queries`].
#[derive(Debug, Clone)]
pub struct Identification {
    /// Record indices of the database.
    pub database: Vec<usize>,
    /// Record indices of the queries.
    pub queries: Vec<usize>,
    /// Identity of each database record.
    pub database_labels: Vec<String>,
    /// The scope (dataset, else species, else all) of each query: it is
    /// only ever matched with the database records of that scope.
    pub scopes: Vec<Scope>,
    /// Thresholds used, by scope name.
    pub thresholds: Thresholds,
    /// The self-calibration, when not fixed.
    pub calibration: Option<GroupCalibration>,
    /// The best matches of each query, best first, all inside its scope
    /// (fewer than asked when its scope has fewer database records).
    pub matches: Vec<Vec<Match>>,
    /// The decision of each query.
    pub predictions: Vec<Prediction>,
    /// Each query's final identity: the known one, or `new_NNNN` shared by
    /// the queries judged to be the same new animal.
    pub final_ids: Vec<String>,
    /// What [`crate::fuse`] did (`None` from [`identify`]).
    pub fusion: Option<FusionReport>,
    /// The projected embeddings every search used, when the parameters
    /// adapt them ([`crate::OpenSetParams::adapt`]).
    pub adapted: Option<Adapted>,
    /// Where the time went.
    pub seconds: StageSeconds,
}

/// Where an identification's time went: the work on the database alone
/// (fitting any projection, self-calibration; after [`crate::fuse`], also
/// the fusion's calibration), and the work for the queries (projecting,
/// searching, deciding, new ids; after a fusion, its re-ranking instead).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StageSeconds {
    /// Seconds on the database alone: `projection` + `calibration` +
    /// `fusion_calibration` and the bookkeeping around them.
    pub database: f64,
    /// Seconds for the queries: `search` + `local` + `decide`.
    pub queries: f64,
    /// Of `database`: fitting the projection on the database and
    /// projecting every embedding (0 without a projection).
    pub projection: f64,
    /// Of `database`: the self-calibration episodes that choose each
    /// dataset's cosine threshold (0 with a fixed threshold).
    pub calibration: f64,
    /// Of `database`: calibrating the fusion on database pairs (0 without
    /// a fusion).
    pub fusion_calibration: f64,
    /// Of `queries`: searching each query's database (its shortlist).
    pub search: f64,
    /// Of `queries`: the local matchers scoring the shortlisted pairs (0
    /// without a fusion).
    pub local: f64,
    /// Of `queries`: fusing, deciding known / new and naming the new
    /// animals.
    pub decide: f64,
}

impl Identification {
    /// The decisions, in query order.
    pub fn decisions(&self) -> Vec<Decision> {
        self.predictions
            .iter()
            .map(|p| p.decision.clone())
            .collect()
    }

    /// The embeddings the searches used: the projected ones when adapted,
    /// else `embeddings` (the ones given to [`identify`]).
    pub fn working<'a>(&'a self, embeddings: ArrayView2<'a, f32>) -> ArrayView2<'a, f32> {
        self.adapted
            .as_ref()
            .map_or(embeddings, |a| a.embeddings.view())
    }

    /// The scope name of each query (the key of its threshold and score).
    pub fn scope_names(&self) -> Vec<&str> {
        self.scopes.iter().map(Scope::name).collect()
    }

    /// The database / query split this was made from.
    pub(crate) fn split(&self) -> OpenSetSplit {
        OpenSetSplit {
            database: self.database.clone(),
            queries: self.queries.clone(),
            database_labels: self.database_labels.clone(),
            scopes: self.scopes.clone(),
        }
    }

    /// Checks that this was made from `records` and `embeddings` (same
    /// number of rows, every index in range).
    pub(crate) fn check_inputs(
        &self,
        records: &[Record],
        embeddings: ArrayView2<'_, f32>,
    ) -> Result<()> {
        check_rows(records, embeddings)?;
        if let Some(&i) = self
            .database
            .iter()
            .chain(&self.queries)
            .find(|&&i| i >= records.len())
        {
            return Err(PipelineError::InvalidParam {
                name: "identification",
                reason: format!(
                    "refers to record {i} of {}: not made from these records",
                    records.len()
                ),
            });
        }
        Ok(())
    }
}

/// Records and embedding rows line up.
pub(crate) fn check_rows(records: &[Record], embeddings: ArrayView2<'_, f32>) -> Result<()> {
    if records.len() != embeddings.nrows() {
        return Err(PipelineError::Rows {
            records: records.len(),
            rows: embeddings.nrows(),
        });
    }
    Ok(())
}

/// Searches `database` for the queries of each scope (rows of `q`, which
/// hold every query in split order) among that scope's records only, keeping
/// `k` matches; returns each scope's query positions and their matches.
/// With `rerank`, each scope's matches are k-reciprocal re-ranked
/// ([`reid_openset::rerank`]) against that scope's records alone.
pub(crate) fn search_by_scope(
    split: &OpenSetSplit,
    database: &Gallery,
    q: ArrayView2<'_, f32>,
    k: usize,
    rerank: Option<&ValidKReciprocalParams>,
) -> Result<Vec<(Scope, Vec<usize>, TopK)>> {
    split
        .queries_by_scope()
        .into_iter()
        .map(|(scope, rows)| {
            let part = q.select(Axis(0), &rows);
            let filter = Filter::scope(scope);
            let top = match rerank {
                None => database.search_topk(part.view(), k, Some(&filter))?,
                Some(p) => {
                    let in_scope = database.matching_rows(&filter);
                    if in_scope.is_empty() {
                        database.search_topk(part.view(), k, Some(&filter))?
                    } else {
                        let sub = database.select_rows(&in_scope)?;
                        let mut top = reid_openset::rerank::search(&sub, part.view(), k, Some(p))?;
                        top.indices.mapv_inplace(|i| in_scope[i]);
                        top
                    }
                }
            };
            Ok((scope.clone(), rows, top))
        })
        .collect()
}

/// Decides the queries of every scope from its matches, by the decision
/// parameters `params_of` gives the scope; returns the predictions and
/// matches in query order.
pub(crate) fn decide_by_scope(
    parts: &[(Scope, Vec<usize>, TopK)],
    n_queries: usize,
    labels: &[String],
    params_of: &dyn Fn(&Scope) -> Result<ValidDecisionParams>,
) -> Result<(Vec<Prediction>, Vec<Vec<Match>>)> {
    let mut predictions: Vec<Option<Prediction>> = vec![None; n_queries];
    let mut matches = vec![Vec::new(); n_queries];
    for (scope, rows, top) in parts {
        let names = vec![scope.name(); rows.len()];
        let preds = decide_topk(top, labels, Some(&names), &params_of(scope)?)?;
        for ((&qi, p), (idx, sc)) in rows
            .iter()
            .zip(preds)
            .zip(top.indices.outer_iter().zip(top.scores.outer_iter()))
        {
            predictions[qi] = Some(p);
            matches[qi] = idx
                .iter()
                .zip(sc.iter())
                .map(|(&database, &score)| Match { database, score })
                .collect();
        }
    }
    let predictions = predictions
        .into_iter()
        .enumerate()
        .map(|(qi, p)| {
            p.ok_or_else(|| PipelineError::InvalidParam {
                name: "queries",
                reason: format!("query {qi} belongs to no scope"),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((predictions, matches))
}

/// Identifies every query of `records` (split `query`) against the database
/// (split `database`), with `embeddings` row `i` for record `i`
/// (L2-normalised rows, from any model):
///
/// 1. each query is searched only among the database records of its scope
///    (its dataset, else its species, else all: [`Scope`]), so an identity
///    of another dataset is never proposed;
/// 2. the threshold of each dataset is self-calibrated from that dataset's
///    database alone, on episodes that never leave it
///    ([`reid_openset::self_calibrate_groups`]), unless fixed;
/// 3. each query is decided known / new by the rule at its scope's
///    threshold;
/// 4. the queries judged new are clustered within their scope (cosine
///    distance `1 - threshold` unless set), each cluster a new id
///    `new_NNNN`.
///
/// With a projection ([`crate::OpenSetParams::adapt`]), every cosine above
/// is taken after projecting the embeddings by one projection per dataset,
/// fitted on that dataset's database alone; the self-calibration episodes
/// refit it on each pseudo-gallery, so the threshold is chosen as the real
/// queries will meet it: through a projection they never shaped.
pub fn identify(
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    params: &ValidOpenSetParams,
) -> Result<Identification> {
    check_rows(records, embeddings)?;
    let start = Instant::now();
    let split = OpenSetSplit::new(records)?;
    let adapted = params
        .adapt()
        .map(|a| adapt_embeddings(records, embeddings, &split, a))
        .transpose()?;
    let projection_seconds = match &adapted {
        Some(_) => start.elapsed().as_secs_f64(),
        None => 0.0,
    };
    let working = adapted
        .as_ref()
        .map_or(embeddings.view(), |a| a.embeddings.view());
    let database = split.database_gallery(records, working)?;
    let q = working.select(Axis(0), &split.queries);

    let calibration_start = Instant::now();
    let (thresholds, calibration) = match &params.fixed {
        Some(t) => (t.clone(), None),
        None => {
            let groups = split.database_groups(records);
            // The episodes refit any projection on their pseudo-galleries,
            // so they start from the embeddings as given.
            let raw_owned = match &adapted {
                Some(_) => Some(split.database_gallery(records, embeddings)?),
                None => None,
            };
            let raw = raw_owned.as_ref().unwrap_or(&database);
            let cal = self_calibrate_groups(raw, &groups, &params.rule, &params.episodes)?;
            let t = if params.per_dataset {
                cal.thresholds.clone()
            } else {
                Thresholds::new(cal.all.threshold)?
            };
            (t, Some(cal))
        }
    };
    let calibration_seconds = match &calibration {
        Some(_) => calibration_start.elapsed().as_secs_f64(),
        None => 0.0,
    };
    let database_seconds = start.elapsed().as_secs_f64();
    let queries_start = Instant::now();
    let k = params.shortlist.max(params.rule.neighbours());
    let rerank = params.adapt().and_then(ValidAdaptParams::rerank);
    let parts = search_by_scope(&split, &database, q.view(), k, rerank.as_ref())?;
    let search_seconds = queries_start.elapsed().as_secs_f64();
    let decide_start = Instant::now();
    let dp = DecisionParams::new(thresholds.clone())
        .rule(params.rule)
        .check()?;
    let (predictions, matches) =
        decide_by_scope(&parts, split.queries.len(), &split.database_labels, &|_| {
            Ok(dp.clone())
        })?;
    let final_ids = final_ids(&predictions, &split.scopes, q.view(), &thresholds, params)?;
    // The part first, then the whole, so the parts never exceed it.
    let decide_seconds = decide_start.elapsed().as_secs_f64();
    let queries_seconds = queries_start.elapsed().as_secs_f64();
    Ok(Identification {
        database: split.database,
        queries: split.queries,
        database_labels: split.database_labels,
        scopes: split.scopes,
        thresholds,
        calibration,
        matches,
        predictions,
        final_ids,
        fusion: None,
        adapted,
        seconds: StageSeconds {
            database: database_seconds,
            queries: queries_seconds,
            projection: projection_seconds,
            calibration: calibration_seconds,
            search: search_seconds,
            decide: decide_seconds,
            ..StageSeconds::default()
        },
    })
}

/// Each query's final identity: the known one, or `new_NNNN` shared by the
/// queries judged new that cluster together within their scope, at the
/// cosine distance `1 - threshold` of that scope unless one is given.
pub(crate) fn final_ids(
    predictions: &[Prediction],
    scopes: &[Scope],
    q: ArrayView2<'_, f32>,
    thresholds: &Thresholds,
    p: &ValidOpenSetParams,
) -> Result<Vec<String>> {
    let mut final_ids: Vec<String> = predictions
        .iter()
        .map(|pr| pr.decision.identity().unwrap_or_default().to_owned())
        .collect();
    let names: BTreeSet<&str> = scopes.iter().map(Scope::name).collect();
    let mut next = 0usize;
    for g in names {
        let idx: Vec<usize> = (0..predictions.len())
            .filter(|&i| scopes[i].name() == g && predictions[i].decision.is_new())
            .collect();
        if idx.is_empty() {
            continue;
        }
        let d = p
            .cluster_threshold
            .unwrap_or_else(|| (1.0 - thresholds.get(Some(g))).clamp(0.0, 2.0));
        let cp = ClusterParams::new(d).linkage(p.linkage).check()?;
        let sub_preds: Vec<Prediction> = idx.iter().map(|&i| predictions[i].clone()).collect();
        let ids = assign_new_ids(&sub_preds, q.select(Axis(0), &idx).view(), &cp, "")?;
        let mut seen = BTreeMap::new();
        for (&i, id) in idx.iter().zip(ids) {
            let n = *seen.entry(id).or_insert_with(|| {
                next += 1;
                next
            });
            final_ids[i] = format!("new_{n:04}");
        }
    }
    Ok(final_ids)
}
