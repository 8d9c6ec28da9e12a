//! Open-set decision rules: top-1 with a threshold, k-NN vote over
//! identities, thresholds per species or dataset.
//!
//! Every rule turns a query's ranked gallery matches into one candidate
//! identity and a score; the query is [`Decision::Known`] when the score is
//! at least the threshold of its group, [`Decision::New`] otherwise.

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayView2};
use reid_index::{TopK, exact_topk};

use crate::{OpensetError, Result, check};

/// The label AnimalCLEF submissions use for a new individual.
pub const NEW_INDIVIDUAL: &str = "new_individual";

/// The answer for one query: a known identity of the database, or a new
/// individual.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Decision {
    /// The query shows this identity of the database.
    Known(String),
    /// The query shows an individual that is not in the database.
    New,
}

impl Decision {
    /// The identity of a [`Decision::Known`], `None` for [`Decision::New`].
    pub fn identity(&self) -> Option<&str> {
        match self {
            Decision::Known(id) => Some(id),
            Decision::New => None,
        }
    }

    /// Whether this is [`Decision::New`].
    pub fn is_new(&self) -> bool {
        matches!(self, Decision::New)
    }

    /// The label written in an AnimalCLEF submission: the identity, or
    /// [`NEW_INDIVIDUAL`].
    pub fn submission_label(&self) -> &str {
        match self {
            Decision::Known(id) => id,
            Decision::New => NEW_INDIVIDUAL,
        }
    }
}

/// A decision with the score it was taken on.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The decision.
    pub decision: Decision,
    /// The score of the best candidate identity (also for a
    /// [`Decision::New`]: the score that fell below the threshold).
    pub similarity: f32,
    /// The best candidate identity, whatever the decision.
    pub candidate: String,
}

/// How the similarities of one identity's matches are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// The best similarity (the vote then picks the same identity and
    /// score as [`Rule::Top1`]).
    Max,
    /// The mean of the (up to `per_identity`) best similarities.
    Mean,
}

/// How a query's ranked matches become a candidate identity and a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The identity of the best match; its similarity is the score.
    Top1,
    /// A vote over the identities among the `k` best matches: each is scored
    /// by [`Aggregate`] over its `per_identity` best similarities among
    /// those `k`; the best-scored identity wins (ties: the identity met first
    /// in the ranking). Identities outside the `k` best are not considered.
    Knn {
        /// Matches retrieved per query.
        k: usize,
        /// Similarities used per identity.
        per_identity: usize,
        /// How they are combined.
        aggregate: Aggregate,
    },
}

impl Rule {
    /// Matches this rule needs per query.
    pub fn neighbours(&self) -> usize {
        match self {
            Rule::Top1 => 1,
            Rule::Knn { k, .. } => *k,
        }
    }

    /// Checks the rule's own numbers (`k`, `per_identity` at least 1).
    pub fn validate(&self) -> Result<()> {
        if let Rule::Knn {
            k, per_identity, ..
        } = self
        {
            if *k == 0 {
                return Err(OpensetError::InvalidParam {
                    name: "k",
                    reason: "must be at least 1".into(),
                });
            }
            if *per_identity == 0 {
                return Err(OpensetError::InvalidParam {
                    name: "per_identity",
                    reason: "must be at least 1".into(),
                });
            }
        }
        Ok(())
    }

    /// The candidate of one query from its ranked matches (`indices` and
    /// `scores` best first): the winning identity's label index into
    /// `labels` (a gallery row of that identity) and its score. `None` when
    /// there are no matches.
    pub(crate) fn candidate(
        &self,
        indices: &[usize],
        scores: &[f32],
        labels: &[String],
    ) -> Result<Option<(usize, f32)>> {
        for &g in indices {
            if g >= labels.len() {
                return Err(OpensetError::OutOfRange {
                    what: "gallery",
                    index: g,
                    len: labels.len(),
                });
            }
        }
        let (k, per_identity, aggregate) = match self {
            Rule::Top1 => {
                return Ok(indices.first().zip(scores.first()).map(|(&g, &s)| (g, s)));
            }
            Rule::Knn {
                k,
                per_identity,
                aggregate,
            } => (*k, *per_identity, *aggregate),
        };
        // Identities in order of first appearance: (first row, sims).
        let mut seen: Vec<(usize, Vec<f32>)> = Vec::new();
        for (&g, &s) in indices.iter().zip(scores).take(k) {
            let label = labels.get(g).map(String::as_str).unwrap_or_default();
            match seen
                .iter_mut()
                .find(|(first, _)| labels.get(*first).map(String::as_str) == Some(label))
            {
                Some((_, sims)) => sims.push(s),
                None => seen.push((g, vec![s])),
            }
        }
        let mut best: Option<(usize, f32)> = None;
        for (first, mut sims) in seen {
            // Matches arrive best first, but sort anyway: callers may pass
            // any ranking.
            sims.sort_by(|a, b| b.total_cmp(a));
            sims.truncate(per_identity);
            let score = match aggregate {
                Aggregate::Max => sims.first().copied().unwrap_or(f32::NEG_INFINITY),
                Aggregate::Mean => {
                    (sims.iter().map(|&v| f64::from(v)).sum::<f64>() / sims.len().max(1) as f64)
                        as f32
                }
            };
            if best.is_none_or(|(_, b)| score > b) {
                best = Some((first, score));
            }
        }
        Ok(best)
    }
}

/// Thresholds per group (species or dataset), with a default for groups
/// not listed. A query is known when its score is `>=` its threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    default: f32,
    by_group: BTreeMap<String, f32>,
}

fn check_threshold(name: &'static str, t: f32) -> Result<()> {
    if t.is_finite() {
        Ok(())
    } else {
        Err(OpensetError::InvalidParam {
            name,
            reason: format!("must be finite, got {t}"),
        })
    }
}

impl Thresholds {
    /// One threshold for every group. Must be finite.
    pub fn new(default: f32) -> Result<Self> {
        check_threshold("threshold", default)?;
        Ok(Self {
            default,
            by_group: BTreeMap::new(),
        })
    }

    /// Adds (or replaces) the threshold of `group`. Must be finite.
    pub fn with_group(mut self, group: impl Into<String>, threshold: f32) -> Result<Self> {
        check_threshold("threshold", threshold)?;
        self.by_group.insert(group.into(), threshold);
        Ok(self)
    }

    /// The threshold of `group` (the default when `None` or not listed).
    pub fn get(&self, group: Option<&str>) -> f32 {
        group
            .and_then(|g| self.by_group.get(g).copied())
            .unwrap_or(self.default)
    }

    /// The default threshold.
    pub fn default_threshold(&self) -> f32 {
        self.default
    }

    /// The thresholds of the listed groups.
    pub fn groups(&self) -> &BTreeMap<String, f32> {
        &self.by_group
    }
}

/// A validated decision rule with its thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionParams {
    rule: Rule,
    thresholds: Thresholds,
}

impl DecisionParams {
    /// Checks `rule` (see [`Rule::validate`]).
    pub fn new(rule: Rule, thresholds: Thresholds) -> Result<Self> {
        rule.validate()?;
        Ok(Self { rule, thresholds })
    }

    /// Top-1 with one threshold.
    pub fn top1(threshold: f32) -> Result<Self> {
        Self::new(Rule::Top1, Thresholds::new(threshold)?)
    }

    /// The rule.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// The thresholds.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }
}

/// The database: L2-normalised embeddings (one row per image) and the
/// identity of each row.
#[derive(Debug, Clone, PartialEq)]
pub struct Gallery {
    embeddings: Array2<f32>,
    labels: Vec<String>,
}

impl Gallery {
    /// Checks that there is at least one row, at least one column, one
    /// label per row and no NaN or infinity. Rows are taken as
    /// L2-normalised (similarity is the inner product); this is not checked.
    pub fn new(embeddings: Array2<f32>, labels: Vec<String>) -> Result<Self> {
        if embeddings.nrows() == 0 {
            return Err(OpensetError::EmptyGallery);
        }
        if embeddings.ncols() == 0 {
            return Err(OpensetError::Shape {
                expected: "[rows, dim >= 1]".into(),
                got: format!("[{}, 0]", embeddings.nrows()),
            });
        }
        check::same_len("gallery labels", embeddings.nrows(), labels.len())?;
        check::finite_2d(embeddings.view(), "gallery embeddings")?;
        Ok(Self { embeddings, labels })
    }

    /// The embeddings, `[rows, dim]`.
    pub fn embeddings(&self) -> ArrayView2<'_, f32> {
        self.embeddings.view()
    }

    /// The identity of each row.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.embeddings.ncols()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Always `false` (a gallery has at least one row).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The ranked matches of `queries` that `rule` needs.
    pub fn search(&self, queries: ArrayView2<'_, f32>, rule: &Rule) -> Result<TopK> {
        check::queries(queries, self.dim())?;
        Ok(exact_topk(
            queries,
            self.embeddings.view(),
            rule.neighbours(),
        )?)
    }
}

/// Decides every query from ranked matches (`topk`, e.g. from
/// [`reid_index::exact_topk`] or fused by [`crate::fusion`]); `labels` are
/// the gallery identities, `groups` the group of each query (species or
/// dataset) for per-group thresholds, or `None` for the default threshold.
pub fn decide_topk<S: AsRef<str>>(
    topk: &TopK,
    labels: &[String],
    groups: Option<&[S]>,
    params: &DecisionParams,
) -> Result<Vec<Prediction>> {
    let q = topk.indices.nrows();
    if topk.scores.dim() != topk.indices.dim() {
        return Err(OpensetError::Shape {
            expected: format!("scores {:?}", topk.indices.dim()),
            got: format!("{:?}", topk.scores.dim()),
        });
    }
    if let Some(g) = groups {
        check::same_len("query groups", q, g.len())?;
    }
    check::finite_2d(topk.scores.view(), "match scores")?;
    let mut out = Vec::with_capacity(q);
    for (row, (idx, sc)) in topk
        .indices
        .outer_iter()
        .zip(topk.scores.outer_iter())
        .enumerate()
    {
        let idx = idx.to_vec();
        let sc = sc.to_vec();
        let group = groups.and_then(|g| g.get(row)).map(AsRef::as_ref);
        let threshold = params.thresholds.get(group);
        let pred = match params.rule.candidate(&idx, &sc, labels)? {
            Some((g, s)) => {
                let id = labels.get(g).cloned().unwrap_or_default();
                Prediction {
                    decision: if s >= threshold {
                        Decision::Known(id.clone())
                    } else {
                        Decision::New
                    },
                    similarity: s,
                    candidate: id,
                }
            }
            None => Prediction {
                decision: Decision::New,
                similarity: f32::NEG_INFINITY,
                candidate: String::new(),
            },
        };
        out.push(pred);
    }
    Ok(out)
}

/// Searches `gallery` for `queries` (`[q, dim]`, L2-normalised rows) and
/// decides each one (see [`decide_topk`]).
pub fn decide<S: AsRef<str>>(
    gallery: &Gallery,
    queries: ArrayView2<'_, f32>,
    groups: Option<&[S]>,
    params: &DecisionParams,
) -> Result<Vec<Prediction>> {
    if let Some(g) = groups {
        check::same_len("query groups", queries.nrows(), g.len())?;
    }
    if queries.nrows() == 0 {
        check::queries(queries, gallery.dim())?;
        return Ok(Vec::new());
    }
    let topk = gallery.search(queries, &params.rule)?;
    decide_topk(&topk, gallery.labels(), groups, params)
}
