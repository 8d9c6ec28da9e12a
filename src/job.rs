//! The open-set job the examples share, on embeddings from anywhere: split
//! the records into database and queries, self-calibrate a threshold per
//! dataset from the database alone, search, decide known / new, give the
//! new animals consistent new ids by clustering, and score the result when
//! the queries carry their true identity.
//!
//! No libtorch is touched here: bring an `Array2<f32>` of L2-normalised
//! rows aligned with the records.
//!
//! ```
//! use animal_reid::data::{Record, SplitRole};
//! use animal_reid::job::{JobParams, run_openset};
//! use ndarray::array;
//!
//! let rec = |id: &str, who: &str, split: SplitRole| {
//!     let mut r = Record::new(id, format!("{id}.jpg"));
//!     r.identity = Some(who.into());
//!     r.split = Some(split);
//!     r
//! };
//! let records = vec![
//!     rec("0", "a", SplitRole::Database),
//!     rec("1", "a", SplitRole::Database),
//!     rec("2", "b", SplitRole::Database),
//!     rec("3", "b", SplitRole::Database),
//!     rec("4", "a", SplitRole::Query),
//!     rec("5", "c", SplitRole::Query),
//! ];
//! let emb = array![
//!     [1.0, 0.0, 0.0], [0.98, 0.199, 0.0], [0.0, 1.0, 0.0], [0.199, 0.98, 0.0],
//!     [0.99, 0.141, 0.0], [0.0, 0.0, 1.0],
//! ];
//! let params = JobParams::default().fixed_threshold(Some(0.5)).check()?;
//! let job = run_openset(&records, emb.view(), &params)?;
//! assert_eq!(job.final_ids, vec!["a".to_string(), "new_0001".to_string()]);
//! let s = job.score(&records)?.expect("queries carry the truth");
//! assert_eq!(s.animalclef.score, 1.0);
//! # Ok::<(), animal_reid::job::JobError>(())
//! ```

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use ndarray::{ArrayView2, Axis};
use serde::Serialize;

use reid_data::{Record, SplitRole};
use reid_openset::score::{AnimalClefScore, adjusted_rand_index, animalclef_score, new_flags};
use reid_openset::{
    CalibrationMethod, ClusterParams, Decision, DecisionParams, EmbeddingScorer, FusionCalibration,
    FusionSource, Gallery, GroupCalibration, Linkage, OpensetError, PairScorer, Prediction, Rule,
    SelfCalibrationParams, Thresholds, TopK, assign_new_ids, decide_topk, fuse,
    self_calibrate_fusion, self_calibrate_groups,
};

/// Errors of the open-set job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A database record has no identity.
    #[error("database record {image_id} has no identity")]
    Unlabelled {
        /// The record.
        image_id: String,
    },
    /// Embeddings and records do not line up.
    #[error("{records} records but {rows} embedding rows")]
    Rows {
        /// Records given.
        records: usize,
        /// Embedding rows given.
        rows: usize,
    },
    /// No database or no query records.
    #[error("no {what} records (split column `database` / `query`)")]
    Empty {
        /// `database` or `query`.
        what: &'static str,
    },
    /// A parameter is out of range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// From the open-set crate.
    #[error(transparent)]
    Openset(#[from] OpensetError),
}

/// Result alias of the job.
pub type Result<T, E = JobError> = std::result::Result<T, E>;

/// Settings of [`run_openset`]; [`JobParams::check`] validates them.
#[derive(Debug, Clone)]
pub struct JobParams {
    rule: Rule,
    shortlist: usize,
    fixed: Option<f32>,
    selfcal: SelfCalibrationParams,
    per_dataset: bool,
    linkage: Linkage,
    cluster_threshold: Option<f32>,
}

impl Default for JobParams {
    fn default() -> Self {
        Self {
            rule: Rule::Top1,
            shortlist: 5,
            fixed: None,
            selfcal: SelfCalibrationParams::default(),
            per_dataset: true,
            linkage: Linkage::Average,
            cluster_threshold: None,
        }
    }
}

/// Checked [`JobParams`].
#[derive(Debug, Clone)]
pub struct ValidJobParams(JobParams);

impl JobParams {
    /// Decision rule (default top-1).
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rule = rule;
        self
    }
    /// Matches kept per query, for match sheets and ranking metrics (default 5).
    pub fn shortlist(mut self, k: usize) -> Self {
        self.shortlist = k;
        self
    }
    /// Use this threshold instead of self-calibrating (default: self-calibrate).
    pub fn fixed_threshold(mut self, t: Option<f32>) -> Self {
        self.fixed = t;
        self
    }
    /// Self-calibration episodes.
    pub fn selfcal(mut self, p: SelfCalibrationParams) -> Self {
        self.selfcal = p;
        self
    }
    /// One threshold per dataset (default), or one for all.
    pub fn per_dataset(mut self, on: bool) -> Self {
        self.per_dataset = on;
        self
    }
    /// Linkage of the new-individual clustering (default average).
    pub fn linkage(mut self, l: Linkage) -> Self {
        self.linkage = l;
        self
    }
    /// Cosine distance below which two new queries are the same animal;
    /// default `1 - threshold` of their dataset: as close as a known match.
    pub fn cluster_threshold(mut self, d: Option<f32>) -> Self {
        self.cluster_threshold = d;
        self
    }
    /// Validates the settings.
    pub fn check(self) -> Result<ValidJobParams> {
        self.rule.validate()?;
        if self.shortlist == 0 {
            return Err(JobError::InvalidParam {
                name: "shortlist",
                reason: "must be at least 1".into(),
            });
        }
        if let Some(t) = self.fixed {
            Thresholds::new(t)?;
        }
        if let Some(d) = self.cluster_threshold {
            ClusterParams::new(self.linkage, d)?;
        }
        Ok(ValidJobParams(self))
    }
}

/// The outcome of [`run_openset`]; every per-query vector is in the order
/// of [`OpenSetJob::queries`].
#[derive(Debug, Clone)]
pub struct OpenSetJob {
    /// Record indices of the database.
    pub database: Vec<usize>,
    /// Record indices of the queries.
    pub queries: Vec<usize>,
    /// Identity of each database record.
    pub database_labels: Vec<String>,
    /// The dataset (else species, else `all`) of each query.
    pub groups: Vec<String>,
    /// Thresholds used, per dataset.
    pub thresholds: Thresholds,
    /// The self-calibration, when not fixed.
    pub calibration: Option<GroupCalibration>,
    /// The best matches of each query, indices into [`OpenSetJob::database`].
    pub topk: TopK,
    /// The decision of each query.
    pub predictions: Vec<Prediction>,
    /// Each query's final identity: the known one, or `new_NNNN` shared by
    /// the queries judged to be the same new animal.
    pub final_ids: Vec<String>,
    /// What [`run_openset_fused`] did (`None` from [`run_openset`]).
    pub fusion: Option<FusionReport>,
}

/// Figures of a job against the truth.
#[derive(Debug, Clone, Serialize)]
pub struct JobScore {
    /// Queries of known / new individuals.
    pub known_queries: usize,
    /// Queries of new individuals.
    pub new_queries: usize,
    /// BAKS, BAUS and score per dataset, and their mean.
    #[serde(serialize_with = "ser_animalclef")]
    pub animalclef: AnimalClefScore,
    /// Closed-set top-1 accuracy of the known queries (threshold ignored).
    pub closed_top1: Option<f64>,
    /// Adjusted Rand index of the new-individual ids against the truth,
    /// over the queries of new individuals (`None` with fewer than 2).
    pub new_id_ari: Option<f64>,
}

fn ser_animalclef<S: serde::Serializer>(
    s: &AnimalClefScore,
    ser: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = ser.serialize_map(Some(2))?;
    let per: std::collections::BTreeMap<&str, serde_json::Value> = s
        .per_dataset
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                serde_json::json!({"baks": v.baks, "baus": v.baus, "score": v.geometric_mean()}),
            )
        })
        .collect();
    m.serialize_entry("per_dataset", &per)?;
    m.serialize_entry("score", &s.score)?;
    m.end()
}

fn group_of(r: &Record) -> String {
    r.dataset
        .clone()
        .or_else(|| r.species.clone())
        .unwrap_or_else(|| "all".into())
}

/// Runs the open-set job over `records` and their `embeddings` (row `i` is
/// record `i`): database = split `database`, queries = split `query`.
pub fn run_openset(
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    params: &ValidJobParams,
) -> Result<OpenSetJob> {
    let p = &params.0;
    if records.len() != embeddings.nrows() {
        return Err(JobError::Rows {
            records: records.len(),
            rows: embeddings.nrows(),
        });
    }
    let rows = |role: SplitRole| -> Vec<usize> {
        (0..records.len())
            .filter(|&i| records.get(i).and_then(|r| r.split.as_ref()) == Some(&role))
            .collect()
    };
    let (database, queries) = (rows(SplitRole::Database), rows(SplitRole::Query));
    if database.is_empty() {
        return Err(JobError::Empty { what: "database" });
    }
    if queries.is_empty() {
        return Err(JobError::Empty { what: "query" });
    }
    let rec = |i: usize| &records[i];
    let database_labels = database
        .iter()
        .map(|&i| {
            rec(i).identity.clone().ok_or_else(|| JobError::Unlabelled {
                image_id: rec(i).image_id.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let db_groups: Vec<String> = database.iter().map(|&i| group_of(rec(i))).collect();
    let groups: Vec<String> = queries.iter().map(|&i| group_of(rec(i))).collect();
    let gallery = Gallery::new(
        embeddings.select(Axis(0), &database),
        database_labels.clone(),
    )?;
    let q = embeddings.select(Axis(0), &queries);

    let (thresholds, calibration) = match p.fixed {
        Some(t) => (Thresholds::new(t)?, None),
        None => {
            let g: Vec<&str> = if p.per_dataset {
                db_groups.iter().map(String::as_str).collect()
            } else {
                vec!["all"; database.len()]
            };
            let cal = self_calibrate_groups(&gallery, &g, &p.rule, &p.selfcal)?;
            (cal.thresholds.clone(), Some(cal))
        }
    };
    let k = p.shortlist.max(p.rule.neighbours()).min(gallery.len());
    let topk =
        reid_index::exact_topk(q.view(), gallery.embeddings(), k).map_err(OpensetError::from)?;
    let dp = DecisionParams::new(p.rule, thresholds.clone())?;
    let predictions = decide_topk(&topk, gallery.labels(), Some(&groups), &dp)?;

    let final_ids = final_ids(&predictions, &groups, q.view(), &thresholds, p)?;
    Ok(OpenSetJob {
        database,
        queries,
        database_labels,
        groups,
        thresholds,
        calibration,
        topk,
        predictions,
        final_ids,
        fusion: None,
    })
}

/// Each query's final identity: the known one, or `new_NNNN` shared by the
/// queries judged new that cluster together within their group, at the
/// cosine distance `1 - threshold` of that group unless one is given.
fn final_ids(
    predictions: &[Prediction],
    groups: &[String],
    q: ArrayView2<'_, f32>,
    thresholds: &Thresholds,
    p: &JobParams,
) -> Result<Vec<String>> {
    let mut final_ids: Vec<String> = predictions
        .iter()
        .map(|pr| pr.decision.identity().unwrap_or_default().to_owned())
        .collect();
    let group_names: BTreeSet<&str> = groups.iter().map(String::as_str).collect();
    let mut next = 0usize;
    for g in group_names {
        let idx: Vec<usize> = (0..predictions.len())
            .filter(|&i| groups[i] == g && predictions[i].decision.is_new())
            .collect();
        if idx.is_empty() {
            continue;
        }
        let d = p
            .cluster_threshold
            .unwrap_or_else(|| (1.0 - thresholds.get(Some(g))).clamp(0.0, 2.0));
        let cp = ClusterParams::new(p.linkage, d)?;
        let sub_preds: Vec<Prediction> = idx.iter().map(|&i| predictions[i].clone()).collect();
        let ids = assign_new_ids(&sub_preds, q.select(Axis(0), &idx).view(), &cp, "")?;
        let mut seen = std::collections::BTreeMap::new();
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

impl OpenSetJob {
    /// The decisions, in query order.
    pub fn decisions(&self) -> Vec<Decision> {
        self.predictions
            .iter()
            .map(|p| p.decision.clone())
            .collect()
    }

    /// Scores the job against the queries' true identities; `None` when any
    /// query has no identity (an unlabelled test set, as AnimalCLEF's).
    pub fn score(&self, records: &[Record]) -> Result<Option<JobScore>> {
        let Some(truth) = self
            .queries
            .iter()
            .map(|&i| records.get(i).and_then(|r| r.identity.clone()))
            .collect::<Option<Vec<String>>>()
        else {
            return Ok(None);
        };
        let is_new = new_flags(&truth, &self.database_labels);
        let animalclef = animalclef_score(&truth, &self.decisions(), &is_new, &self.groups)?;
        let new_queries = is_new.iter().filter(|n| **n).count();
        let known_queries = truth.len() - new_queries;
        let closed_top1 = (known_queries > 0).then(|| {
            let right = self
                .predictions
                .iter()
                .zip(&truth)
                .zip(&is_new)
                .filter(|((p, t), n)| !**n && p.candidate == **t)
                .count();
            right as f64 / known_queries as f64
        });
        let new_rows: Vec<usize> = (0..truth.len()).filter(|&i| is_new[i]).collect();
        let new_id_ari = if new_rows.len() >= 2 {
            let a: Vec<&str> = new_rows.iter().map(|&i| truth[i].as_str()).collect();
            let b: Vec<&str> = new_rows
                .iter()
                .map(|&i| self.final_ids[i].as_str())
                .collect();
            Some(adjusted_rand_index(&a, &b)?)
        } else {
            None
        };
        Ok(Some(JobScore {
            known_queries,
            new_queries,
            animalclef,
            closed_top1,
            new_id_ari,
        }))
    }
}

/// Settings of the fusion in [`run_openset_fused`].
#[derive(Debug, Clone)]
pub struct FusionParams {
    shortlist: usize,
    weight: f32,
    method: CalibrationMethod,
}

impl Default for FusionParams {
    /// Shortlist 10, equal weights, isotonic calibration.
    fn default() -> Self {
        Self {
            shortlist: 10,
            weight: 1.0,
            method: CalibrationMethod::Isotonic,
        }
    }
}

impl FusionParams {
    /// The cosine shortlist `B` the second source re-scores (default 10).
    pub fn shortlist(mut self, b: usize) -> Self {
        self.shortlist = b;
        self
    }
    /// Weight of the second source against cosine's 1 (default 1).
    pub fn weight(mut self, w: f32) -> Self {
        self.weight = w;
        self
    }
    /// Calibration of both sources (default isotonic).
    pub fn method(mut self, m: CalibrationMethod) -> Self {
        self.method = m;
        self
    }
    fn check(&self) -> Result<()> {
        if self.shortlist == 0 {
            return Err(JobError::InvalidParam {
                name: "shortlist",
                reason: "must be at least 1".into(),
            });
        }
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return Err(JobError::InvalidParam {
                name: "weight",
                reason: format!("must be finite and >= 0, got {}", self.weight),
            });
        }
        Ok(())
    }
}

/// What [`run_openset_fused`] did.
#[derive(Debug, Clone)]
pub struct FusionReport {
    /// The shortlist `B`.
    pub shortlist: usize,
    /// The calibration from all database rows (the default).
    pub all: FusionCalibration,
    /// Each dataset's own calibration (with one threshold per dataset).
    pub per_group: BTreeMap<String, FusionCalibration>,
    /// Datasets that could not form episodes (they use the default).
    pub skipped: BTreeMap<String, String>,
    /// Pairs the second source scored: database × database (calibration)
    /// and query × database.
    pub database_pairs: usize,
    /// Query × database pairs scored.
    pub query_pairs: usize,
    /// Seconds the second source spent on database pairs.
    pub database_seconds: f64,
    /// Seconds it spent on query pairs.
    pub query_seconds: f64,
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

/// [`run_openset`] with a second similarity source fused in (the
/// WildFusion recipe): `local` scores pairs of **records** (indices into
/// `records`; e.g. keypoint inlier counts). For each dataset, the fusion is
/// self-calibrated from its database alone
/// ([`reid_openset::self_calibrate_fusion`]: cosine and `local`, each
/// calibrated to the probability of the same individual, averaged with
/// weights 1 and [`FusionParams::weight`], a threshold on the fused
/// probability from the open-set episodes of `params`); each query's cosine
/// shortlist of [`FusionParams::shortlist`] database images is re-ranked by
/// the fused probability, and the top one is accepted when it clears its
/// dataset's threshold. New individuals are grouped as in [`run_openset`],
/// by cosine at the cosine threshold's distance. `local` only ever sees
/// shortlisted pairs.
pub fn run_openset_fused(
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    params: &ValidJobParams,
    local: &dyn PairScorer,
    fusion: &FusionParams,
) -> Result<OpenSetJob> {
    fusion.check()?;
    let job = run_openset(records, embeddings, params)?;
    fuse_openset(&job, records, embeddings, params, local, fusion)
}

/// The fusion step of [`run_openset_fused`] on a `job` that [`run_openset`]
/// already made from the same `records`, `embeddings` and `params` (so
/// several fusions, e.g. shortlist sizes, share one cosine job).
pub fn fuse_openset(
    job: &OpenSetJob,
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    params: &ValidJobParams,
    local: &dyn PairScorer,
    fusion: &FusionParams,
) -> Result<OpenSetJob> {
    fusion.check()?;
    if records.len() != embeddings.nrows() {
        return Err(JobError::Rows {
            records: records.len(),
            rows: embeddings.nrows(),
        });
    }
    if let Some(&i) = job
        .database
        .iter()
        .chain(&job.queries)
        .find(|&&i| i >= records.len())
    {
        return Err(JobError::InvalidParam {
            name: "job",
            reason: format!(
                "refers to record {i} of {}: not made from these records",
                records.len()
            ),
        });
    }
    let p = &params.0;
    let mut job = job.clone();
    let db_emb = embeddings.select(Axis(0), &job.database);
    let sc = &p.selfcal;
    let fsc = SelfCalibrationParams::new(
        sc.new_fraction(),
        sc.query_fraction(),
        sc.episodes(),
        sc.seed(),
        SelfCalibrationParams::linear_grid(0.0, 1.0, 200),
    )?;
    let weights = [1.0, fusion.weight];
    let mut database_pairs = 0;
    let mut database_seconds = 0.0;
    // Calibrates on the database rows `rows` (indices into job.database).
    let mut calibrate = |rows: &[usize]| -> Result<FusionCalibration> {
        let sub = Gallery::new(
            db_emb.select(Axis(0), rows),
            rows.iter()
                .map(|&r| job.database_labels[r].clone())
                .collect(),
        )?;
        let recs: Vec<usize> = rows.iter().map(|&r| job.database[r]).collect();
        let cosine = EmbeddingScorer::new("cosine", sub.embeddings(), sub.embeddings())?;
        let mapped = Mapped::new(local, &recs, &recs);
        let cal = self_calibrate_fusion(
            &sub,
            &[&cosine, &mapped],
            &weights,
            fusion.shortlist,
            fusion.method,
            &fsc,
        )?;
        database_pairs += mapped.pairs.get();
        database_seconds += mapped.seconds.get();
        Ok(cal)
    };
    let all_rows: Vec<usize> = (0..job.database.len()).collect();
    let all = calibrate(&all_rows)?;
    let mut thresholds = Thresholds::new(all.selfcal.threshold)?;
    let mut per_group = BTreeMap::new();
    let mut skipped = BTreeMap::new();
    if p.per_dataset {
        let mut by_group: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (r, &i) in job.database.iter().enumerate() {
            by_group.entry(group_of(&records[i])).or_default().push(r);
        }
        if by_group.len() > 1 {
            for (g, rows) in by_group {
                match calibrate(&rows) {
                    Ok(cal) => {
                        thresholds = thresholds.with_group(&g, cal.selfcal.threshold)?;
                        per_group.insert(g, cal);
                    }
                    Err(JobError::Openset(OpensetError::Episodes(reason))) => {
                        skipped.insert(g, reason);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    // Each query's cosine shortlist, re-ranked with its dataset's calibrators.
    let q_emb = embeddings.select(Axis(0), &job.queries);
    let b = fusion.shortlist.min(job.database.len());
    let short =
        reid_index::exact_topk(q_emb.view(), db_emb.view(), b).map_err(OpensetError::from)?;
    let mut fused = short.clone();
    let mut query_pairs = 0;
    let mut query_seconds = 0.0;
    let names: BTreeSet<&str> = job.groups.iter().map(String::as_str).collect();
    for g in names {
        let cal = per_group.get(g).unwrap_or(&all);
        let rows: Vec<usize> = (0..job.queries.len())
            .filter(|&i| job.groups[i] == g)
            .collect();
        let part = TopK {
            indices: short.indices.select(Axis(0), &rows),
            scores: short.scores.select(Axis(0), &rows),
        };
        let q_part = q_emb.select(Axis(0), &rows);
        let q_recs: Vec<usize> = rows.iter().map(|&i| job.queries[i]).collect();
        let cosine = EmbeddingScorer::new("cosine", q_part.view(), db_emb.view())?;
        let mapped = Mapped::new(local, &q_recs, &job.database);
        let sources: Vec<FusionSource<'_>> = [&cosine as &dyn PairScorer, &mapped]
            .into_iter()
            .zip(&cal.calibrators)
            .zip(weights)
            .map(|((scorer, calibrator), weight)| FusionSource {
                scorer,
                calibrator: Some(calibrator),
                weight,
            })
            .collect();
        let out = fuse(&part, &sources)?;
        for (k, &i) in rows.iter().enumerate() {
            fused.indices.row_mut(i).assign(&out.indices.row(k));
            fused.scores.row_mut(i).assign(&out.scores.row(k));
        }
        query_pairs += mapped.pairs.get();
        query_seconds += mapped.seconds.get();
    }
    let dp = DecisionParams::new(Rule::Top1, thresholds.clone())?;
    let predictions = decide_topk(&fused, &job.database_labels, Some(&job.groups), &dp)?;
    // New individuals cluster by cosine, at the cosine thresholds.
    job.final_ids = final_ids(&predictions, &job.groups, q_emb.view(), &job.thresholds, p)?;
    job.predictions = predictions;
    job.topk = fused;
    job.thresholds = thresholds;
    job.fusion = Some(FusionReport {
        shortlist: b,
        all,
        per_group,
        skipped,
        database_pairs,
        query_pairs,
        database_seconds,
        query_seconds,
    });
    Ok(job)
}
