//! Open-set decision rules: top-1 with a threshold, k-NN vote over
//! identities, the winner's margin over the runner-up identity,
//! thresholds per species or dataset.
//!
//! Every rule turns a query's ranked gallery matches into one candidate
//! identity and a score; the query is [`Decision::Known`] when the score is
//! at least the threshold of its group, [`Decision::New`] otherwise.

use std::collections::BTreeMap;

use ndarray::ArrayView2;
use reid_core::ParamGuard;
use reid_index::{Gallery, TopK};

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
    /// `1 - Π(1 - p)` over the (up to `per_identity`) best scores, each
    /// clamped to `[0, 1]`: for probabilities (a fused shortlist), the
    /// chance that at least one of the identity's photos is a true match
    /// if each were independent evidence. Several good matches of one
    /// animal add up; one stays as it is.
    NoisyOr,
}

/// How a query's ranked matches become a candidate identity and a score.
#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// [`Rule::Knn`]'s vote, the winner scored by how far it stands above
    /// the best other identity among the `k`: `s1 - weight · s2`, with `s1`
    /// and `s2` the two best identity scores (`s2` is 0 when no other
    /// identity is among them). A new animal often resembles several known
    /// ones about equally; a known one stands out from the rest.
    Margin {
        /// Matches retrieved per query.
        k: usize,
        /// Similarities used per identity.
        per_identity: usize,
        /// How they are combined.
        aggregate: Aggregate,
        /// How much of the runner-up's score is taken off, in `[0, 1]`.
        weight: f32,
    },
}

impl Rule {
    /// Matches this rule needs per query.
    pub fn neighbours(&self) -> usize {
        match self {
            Rule::Top1 => 1,
            Rule::Knn { k, .. } | Rule::Margin { k, .. } => *k,
        }
    }

    /// Checks the rule's own numbers (`k`, `per_identity` at least 1, a
    /// margin's `weight` in `[0, 1]`).
    pub fn validate(&self) -> Result<()> {
        if let Rule::Margin { weight, .. } = self
            && !(weight.is_finite() && (0.0..=1.0).contains(weight))
        {
            return Err(OpensetError::InvalidParam {
                name: "weight",
                reason: format!("a margin's weight must be in [0, 1], got {weight}"),
            });
        }
        if let Rule::Knn {
            k, per_identity, ..
        }
        | Rule::Margin {
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
    pub(crate) fn candidate<S: AsRef<str>>(
        &self,
        indices: &[usize],
        scores: &[f32],
        labels: &[S],
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
        let (k, per_identity, aggregate, margin) = match self {
            Rule::Top1 => {
                return Ok(indices.first().zip(scores.first()).map(|(&g, &s)| (g, s)));
            }
            Rule::Knn {
                k,
                per_identity,
                aggregate,
            } => (*k, *per_identity, *aggregate, None),
            Rule::Margin {
                k,
                per_identity,
                aggregate,
                weight,
            } => (*k, *per_identity, *aggregate, Some(*weight)),
        };
        // Identities in order of first appearance: (first row, sims).
        let mut seen: Vec<(usize, Vec<f32>)> = Vec::new();
        for (&g, &s) in indices.iter().zip(scores).take(k) {
            let label = labels.get(g).map(AsRef::as_ref).unwrap_or_default();
            match seen
                .iter_mut()
                .find(|(first, _)| labels.get(*first).map(AsRef::as_ref) == Some(label))
            {
                Some((_, sims)) => sims.push(s),
                None => seen.push((g, vec![s])),
            }
        }
        let mut best: Option<(usize, f32)> = None;
        // The best score of any other identity (for a margin).
        let mut second = f32::NEG_INFINITY;
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
                Aggregate::NoisyOr if sims.is_empty() => f32::NEG_INFINITY,
                Aggregate::NoisyOr => {
                    let miss: f64 = sims
                        .iter()
                        .map(|&v| 1.0 - f64::from(v.clamp(0.0, 1.0)))
                        .product();
                    (1.0 - miss) as f32
                }
            };
            if best.is_none_or(|(_, b)| score > b) {
                if let Some((_, b)) = best {
                    second = second.max(b);
                }
                best = Some((first, score));
            } else {
                second = second.max(score);
            }
        }
        Ok(match margin {
            None => best,
            Some(w) => best.map(|(g, s1)| {
                let s2 = if second.is_finite() { second } else { 0.0 };
                (g, s1 - w * s2)
            }),
        })
    }
}

impl std::str::FromStr for Rule {
    type Err = OpensetError;

    /// `top1`; `knn:K` (the identity with the best similarity among the
    /// `K` nearest, [`Aggregate::Max`] over up to `K` per identity); or
    /// `knn:K:mean:P` / `knn:K:max:P` / `knn:K:noisyor:P` (each identity
    /// scored by the mean / max / noisy-or of its best `P` similarities
    /// among the `K` nearest); `margin:K:AGG:P:W` ([`Rule::Margin`]: the
    /// same vote less `W` times the runner-up's score). The numbers are checked;
    /// [`std::fmt::Display`] writes the same forms.
    ///
    /// ```
    /// use reid_openset::{Aggregate, Rule};
    /// assert_eq!("top1".parse::<Rule>()?, Rule::Top1);
    /// assert_eq!(
    ///     "knn:5".parse::<Rule>()?,
    ///     Rule::Knn { k: 5, per_identity: 5, aggregate: Aggregate::Max }
    /// );
    /// assert_eq!(
    ///     "knn:10:mean:3".parse::<Rule>()?,
    ///     Rule::Knn { k: 10, per_identity: 3, aggregate: Aggregate::Mean }
    /// );
    /// assert_eq!(
    ///     "knn:50:noisyor:3".parse::<Rule>()?.to_string(),
    ///     "knn:50:noisyor:3"
    /// );
    /// assert_eq!(
    ///     "margin:50:max:1:0.5".parse::<Rule>()?,
    ///     Rule::Margin { k: 50, per_identity: 1, aggregate: Aggregate::Max, weight: 0.5 }
    /// );
    /// assert_eq!("margin:9:noisyor:3:1".parse::<Rule>()?.to_string(), "margin:9:noisyor:3:1");
    /// assert!("knn:0".parse::<Rule>().is_err() && "best".parse::<Rule>().is_err());
    /// assert!("margin:9:max:1:1.5".parse::<Rule>().is_err());
    /// # Ok::<(), reid_openset::OpensetError>(())
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| OpensetError::InvalidParam {
            name: "rule",
            reason: format!(
                "`{s}`: {why} (use top1, knn:K or knn:K:mean:P, knn:K:max:P, knn:K:noisyor:P, \
                 margin:K:AGG:P:W)"
            ),
        };
        let number = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| bad(&format!("`{v}` is not a count")))
        };
        let aggregate = |a: &str| match a {
            "mean" => Aggregate::Mean,
            "max" => Aggregate::Max,
            _ => Aggregate::NoisyOr,
        };
        let parts: Vec<&str> = s.trim().split(':').collect();
        let rule = match parts.as_slice() {
            ["top1"] => Rule::Top1,
            ["knn", k] => {
                let k = number(k)?;
                Rule::Knn {
                    k,
                    per_identity: k,
                    aggregate: Aggregate::Max,
                }
            }
            ["knn", k, agg @ ("mean" | "max" | "noisyor"), p] => Rule::Knn {
                k: number(k)?,
                per_identity: number(p)?,
                aggregate: aggregate(agg),
            },
            ["margin", k, agg @ ("mean" | "max" | "noisyor"), p, w] => Rule::Margin {
                k: number(k)?,
                per_identity: number(p)?,
                aggregate: aggregate(agg),
                weight: w
                    .parse::<f32>()
                    .map_err(|_| bad(&format!("`{w}` is not a weight")))?,
            },
            _ => return Err(bad("unknown rule")),
        };
        rule.validate()?;
        Ok(rule)
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Top1 => f.write_str("top1"),
            Rule::Knn {
                k,
                per_identity,
                aggregate: Aggregate::Max,
            } if per_identity == k => write!(f, "knn:{k}"),
            Rule::Knn {
                k,
                per_identity,
                aggregate: Aggregate::Max,
            } => write!(f, "knn:{k}:max:{per_identity}"),
            Rule::Knn {
                k,
                per_identity,
                aggregate: Aggregate::Mean,
            } => write!(f, "knn:{k}:mean:{per_identity}"),
            Rule::Knn {
                k,
                per_identity,
                aggregate: Aggregate::NoisyOr,
            } => write!(f, "knn:{k}:noisyor:{per_identity}"),
            Rule::Margin {
                k,
                per_identity,
                aggregate,
                weight,
            } => {
                let agg = match aggregate {
                    Aggregate::Max => "max",
                    Aggregate::Mean => "mean",
                    Aggregate::NoisyOr => "noisyor",
                };
                write!(f, "margin:{k}:{agg}:{per_identity}:{weight}")
            }
        }
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

/// A decision rule with its thresholds; [`ParamGuard::check`] gives the
/// [`ValidDecisionParams`] the decision functions take.
///
/// ```
/// use reid_openset::{DecisionParams, ParamGuard, Rule, Thresholds};
/// let p = DecisionParams::new(Thresholds::new(0.7)?).rule(Rule::Top1).check()?;
/// assert_eq!(p.thresholds().get(None), 0.7);
/// # Ok::<(), reid_openset::OpensetError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionParams {
    rule: Rule,
    thresholds: Thresholds,
}

/// Checked [`DecisionParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidDecisionParams(DecisionParams);

impl DecisionParams {
    /// Top-1 with these thresholds.
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            rule: Rule::Top1,
            thresholds,
        }
    }

    reid_core::setters! {
        /// The rule (default top-1).
        rule: Rule,
    }
}

reid_core::param_guard!(DecisionParams => ValidDecisionParams, OpensetError, |p| {
    p.rule.validate()
});

impl ValidDecisionParams {
    /// Top-1 with one threshold (checked finite).
    pub fn top1(threshold: f32) -> Result<Self> {
        DecisionParams::new(Thresholds::new(threshold)?).check()
    }

    /// The rule.
    pub fn rule(&self) -> &Rule {
        &self.0.rule
    }

    /// The thresholds.
    pub fn thresholds(&self) -> &Thresholds {
        &self.0.thresholds
    }
}

/// Decides every query from ranked matches (`topk`, e.g. from
/// [`reid_index::exact_topk`] or fused by [`crate::fusion`]); `labels` are
/// the gallery identities, `groups` the group of each query (species or
/// dataset) for per-group thresholds, or `None` for the default threshold.
pub fn decide_topk<L: AsRef<str>, S: AsRef<str>>(
    topk: &TopK,
    labels: &[L],
    groups: Option<&[S]>,
    params: &ValidDecisionParams,
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
        let threshold = params.thresholds().get(group);
        let pred = match params.rule().candidate(&idx, &sc, labels)? {
            Some((g, s)) => {
                let id = labels
                    .get(g)
                    .map(|l| l.as_ref().to_owned())
                    .unwrap_or_default();
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
/// decides each one (see [`decide_topk`]). Every gallery record needs an
/// identity.
pub fn decide<S: AsRef<str>>(
    gallery: &Gallery,
    queries: ArrayView2<'_, f32>,
    groups: Option<&[S]>,
    params: &ValidDecisionParams,
) -> Result<Vec<Prediction>> {
    if let Some(g) = groups {
        check::same_len("query groups", queries.nrows(), g.len())?;
    }
    let labels = check::labels(gallery)?;
    check::queries(queries, gallery.dim())?;
    if queries.nrows() == 0 {
        return Ok(Vec::new());
    }
    if gallery.is_empty() {
        return Err(OpensetError::EmptyGallery);
    }
    let topk = gallery.search_topk(queries, params.rule().neighbours(), None)?;
    decide_topk(&topk, &labels, groups, params)
}
