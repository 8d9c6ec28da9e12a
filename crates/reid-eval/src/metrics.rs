//! Metrics of re-identification: closed-set ranking (top-k accuracy, CMC,
//! mAP), the open-set scores of AnimalCLEF 2025 (re-exported from
//! `reid-openset`), and clustering scores (ARI, NMI, AMI, homogeneity,
//! completeness, V-measure, silhouette).
//!
//! # Ranking
//!
//! [`ranking_metrics`] takes a `[queries, gallery]` similarity matrix (higher
//! is more similar), the query labels and the gallery labels. Each query's
//! gallery is ranked by decreasing similarity, **ties broken by the lower
//! gallery index** (as `reid-index` orders its top-k lists), so the result
//! never depends on a sort's whims. A gallery item is *correct* for a query
//! when it has the query's label.
//!
//! - **CMC**: `cmc[r]` is the fraction of queries whose first correct gallery
//!   item is at rank `≤ r + 1`; ranks past the gallery's end count as
//!   reached (every evaluated query has a correct item somewhere).
//! - **Top-k accuracy**: `cmc[k - 1]`, for each `k` of [`RankingParams`].
//! - **Average precision** of one query, as in the re-identification
//!   literature (Zheng et al. 2015, Market-1501): the mean, over its correct
//!   gallery items, of the precision at each one's rank, i.e.
//!   `AP = (1/R) Σ_i i / rank_i` for the `R` correct items at ranks
//!   `rank_1 < … < rank_R`. **mAP** is the mean over queries.
//! - Queries with **no correct gallery item** (open-set queries of new
//!   individuals) have no rank to find: they are left out of CMC, top-k and
//!   mAP and counted in [`RankingMetrics::excluded`].
//!
//! [`ranking_metrics_from_lists`] does the same from ranked top-`w` lists of
//! gallery indices (e.g. [`reid_openset::TopK::indices`]) when only the
//! first `w` items were searched: CMC and top-k are exact up to rank `w`, and
//! AP becomes AP@w, whose correct items past rank `w` add nothing (the
//! denominator is still all `R` correct items of the gallery), so it is a
//! lower bound of the full AP and equal to it when `w` covers the gallery.
//!
//! # Open-set scores
//!
//! BAKS, BAUS, their geometric mean averaged over datasets (the AnimalCLEF
//! score), [`new_flags`] and the adjusted Rand index live in
//! [`reid_openset::score`], because the open-set self-calibration optimises
//! them; they are re-exported here unchanged.
//!
//! # Clustering
//!
//! With scikit-learn's definitions and edge cases (`sklearn.metrics`):
//! [`normalized_mutual_info`] (arithmetic-mean normalisation, sklearn's
//! default), [`adjusted_mutual_info`] (arithmetic), [`homogeneity_completeness_v_measure`]
//! (`beta = 1`) and [`silhouette_score`] / [`silhouette_samples`] with
//! Euclidean or cosine distance. Label values only name clusters; any
//! `Hash + Eq` type works. Sums run in an order fixed by the first appearance
//! of each label, so results are bit-for-bit reproducible.
//!
//! The silhouette is computed here rather than by
//! `linfa::metrics::SilhouetteScore` because linfa 0.8 knows only Euclidean
//! distance, returns 1 for a single cluster (scikit-learn raises) and gives a
//! singleton cluster's sample 1 instead of scikit-learn's 0.

use std::collections::HashMap;
use std::hash::Hash;

use ndarray::{Array2, ArrayView2, Axis, s};
use rayon::prelude::*;

use reid_core::ParamGuard;

use crate::error::{EvalError, Result};

pub use reid_openset::score::{
    AnimalClefScore, OpenSetScore, adjusted_rand_index, animalclef_score, baks, baus, new_flags,
    open_set_score,
};
pub use reid_openset::{Decision, NEW_INDIVIDUAL};

// ---------------------------------------------------------------------------
// Ranking

/// Which ranks the ranking metrics report: a builder, checked once by
/// [`ParamGuard::check`] into the [`ValidRankingParams`] that
/// [`ranking_metrics`] and [`ranking_metrics_from_lists`] take.
///
/// Defaults: top-1, top-5 and top-10 accuracy and a CMC curve of 20 ranks.
///
/// ```
/// use reid_eval::ParamGuard;
/// use reid_eval::metrics::RankingParams;
///
/// let p = RankingParams::default().ks(&[5, 1, 5]).cmc_len(10).check()?;
/// assert_eq!(p.ks(), &[1, 5]); // sorted and deduplicated
/// assert_eq!(p.cmc_len(), 10);
/// let e = RankingParams::default().ks(&[0, 1]).check().unwrap_err();
/// assert!(e.to_string().contains("`ks`") && e.to_string().contains("[0, 1]"));
/// # Ok::<(), reid_eval::EvalError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankingParams {
    ks: Vec<usize>,
    cmc_len: usize,
}

impl Default for RankingParams {
    /// Top-1, top-5 and top-10 accuracy and a CMC curve of 20 ranks.
    fn default() -> Self {
        RankingParams {
            ks: vec![1, 5, 10],
            cmc_len: 20,
        }
    }
}

impl RankingParams {
    /// The ranks of the top-k accuracies: at least one, each `>= 1`, in any
    /// order (sorted and deduplicated by the check). Default `[1, 5, 10]`.
    #[must_use]
    pub fn ks(mut self, ks: &[usize]) -> Self {
        self.ks = ks.to_vec();
        self
    }

    reid_core::setters! {
        /// The length of the CMC curve (`>= 1`). Default 20.
        cmc_len: usize,
    }
}

impl ParamGuard for RankingParams {
    type Checked = ValidRankingParams;
    type Error = EvalError;

    fn check_ref(&self) -> Result<()> {
        if self.ks.is_empty() {
            return Err(EvalError::InvalidParam {
                name: "ks",
                reason: "give at least one k, got []".into(),
            });
        }
        if self.ks.contains(&0) {
            return Err(EvalError::InvalidParam {
                name: "ks",
                reason: format!("ranks start at 1, got {:?}", self.ks),
            });
        }
        if self.cmc_len == 0 {
            return Err(EvalError::InvalidParam {
                name: "cmc_len",
                reason: "the CMC curve needs at least one rank, got 0".into(),
            });
        }
        Ok(())
    }

    fn check(self) -> Result<ValidRankingParams> {
        self.check_ref()?;
        let mut ks = self.ks;
        ks.sort_unstable();
        ks.dedup();
        Ok(ValidRankingParams {
            ks,
            cmc_len: self.cmc_len,
        })
    }
}

/// [`RankingParams`] that passed [`ParamGuard::check`]: the ranks ascending
/// and distinct. Its `Default` is the default [`RankingParams`], checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRankingParams {
    ks: Vec<usize>,
    cmc_len: usize,
}

impl Default for ValidRankingParams {
    fn default() -> Self {
        let RankingParams { ks, cmc_len } = RankingParams::default();
        ValidRankingParams { ks, cmc_len }
    }
}

impl ValidRankingParams {
    /// The ranks of the top-k accuracies, ascending.
    pub fn ks(&self) -> &[usize] {
        &self.ks
    }

    /// The length of the CMC curve.
    pub fn cmc_len(&self) -> usize {
        self.cmc_len
    }

    /// The deepest rank these parameters look at.
    fn deepest(&self) -> usize {
        self.ks.last().copied().unwrap_or(1).max(self.cmc_len)
    }
}

/// The ranking of one query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryRanking {
    /// Correct items (same label) in the whole gallery; 0 means the query is
    /// excluded from the metrics.
    pub relevant: usize,
    /// 1-based rank of the first correct item; `None` when the query is
    /// excluded or (ranked lists) no correct item is in its list.
    pub first_hit: Option<usize>,
    /// Average precision (AP@w for ranked lists); `None` when excluded.
    pub average_precision: Option<f64>,
}

/// Closed-set ranking metrics over the queries that have a correct gallery
/// item (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct RankingMetrics {
    /// `(k, accuracy)` for each `k` of the parameters, ascending in `k`.
    pub top_k: Vec<(usize, f64)>,
    /// `cmc[r]`: fraction of evaluated queries whose first correct item is
    /// at rank `≤ r + 1`; length [`ValidRankingParams::cmc_len`].
    pub cmc: Vec<f64>,
    /// Mean average precision over the evaluated queries.
    pub mean_ap: f64,
    /// Queries with at least one correct gallery item (the denominator).
    pub evaluated: usize,
    /// Queries without any correct gallery item, left out.
    pub excluded: usize,
    /// Each query's ranking, in query order.
    pub per_query: Vec<QueryRanking>,
}

impl RankingMetrics {
    /// The top-`k` accuracy, if `k` was among the parameters.
    pub fn top_k(&self, k: usize) -> Option<f64> {
        self.top_k.iter().find(|(kk, _)| *kk == k).map(|&(_, a)| a)
    }
}

/// Gallery labels as small integers (first-appearance order) and the number
/// of gallery items per label; query labels looked up (`None`: not in the
/// gallery).
struct Interned {
    gallery: Vec<usize>,
    counts: Vec<usize>,
    queries: Vec<Option<usize>>,
}

fn intern_labels<S: AsRef<str>, T: AsRef<str>>(queries: &[S], gallery: &[T]) -> Interned {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut counts = Vec::new();
    let gallery = gallery
        .iter()
        .map(|g| {
            let next = ids.len();
            let id = *ids.entry(g.as_ref()).or_insert(next);
            if id == counts.len() {
                counts.push(0);
            }
            if let Some(c) = counts.get_mut(id) {
                *c += 1;
            }
            id
        })
        .collect();
    let queries = queries
        .iter()
        .map(|q| ids.get(q.as_ref()).copied())
        .collect();
    Interned {
        gallery,
        counts,
        queries,
    }
}

impl Interned {
    /// The ranking of query `q`: excluded (no relevant item) when its label
    /// is not in the gallery, else from `ranks(label)`, the 1-based ranks of
    /// its correct items, best first.
    fn rank_query(&self, q: usize, ranks: impl FnOnce(usize) -> Vec<usize>) -> QueryRanking {
        let Some(label) = self.queries.get(q).copied().flatten() else {
            return QueryRanking {
                relevant: 0,
                first_hit: None,
                average_precision: None,
            };
        };
        let relevant = self.counts.get(label).copied().unwrap_or(0);
        let ranks = ranks(label);
        QueryRanking {
            relevant,
            first_hit: ranks.first().copied(),
            average_precision: Some(average_precision(&ranks, relevant)),
        }
    }
}

fn check_labels(queries: usize, gallery: usize) -> Result<()> {
    if queries == 0 {
        return Err(EvalError::Empty {
            what: "query labels",
        });
    }
    if gallery == 0 {
        return Err(EvalError::Empty {
            what: "gallery labels",
        });
    }
    Ok(())
}

/// `a` (score, index) is ranked before `b`: higher score, or the same score
/// and a lower index.
#[inline]
fn before(a: (f32, usize), b: (f32, usize)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

/// Ranks (1-based) of the correct items of one query over the full gallery
/// row, in rank order, in `O(G log R)`: each wrong item is placed among the
/// sorted correct ones and pushes the ones after it down by one.
fn correct_ranks(row: ndarray::ArrayView1<'_, f32>, gallery: &[usize], label: usize) -> Vec<usize> {
    let mut correct: Vec<(f32, usize)> = row
        .iter()
        .zip(gallery)
        .enumerate()
        .filter(|(_, (_, g))| **g == label)
        .map(|(j, (&s, _))| (s, j))
        .collect();
    correct.sort_unstable_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.cmp(&b.1))
    });
    let mut pushed = vec![0usize; correct.len() + 1];
    for (j, (&s, g)) in row.iter().zip(gallery).enumerate() {
        if *g != label {
            let p = correct.partition_point(|&c| before(c, (s, j)));
            if let Some(d) = pushed.get_mut(p) {
                *d += 1;
            }
        }
    }
    let mut above = 0;
    (0..correct.len())
        .map(|i| {
            above += pushed.get(i).copied().unwrap_or(0);
            i + 1 + above
        })
        .collect()
}

fn average_precision(ranks: &[usize], relevant: usize) -> f64 {
    let sum: f64 = ranks
        .iter()
        .enumerate()
        .map(|(i, &r)| (i + 1) as f64 / r as f64)
        .sum();
    sum / relevant as f64
}

fn summarise(per_query: Vec<QueryRanking>, params: &ValidRankingParams) -> Result<RankingMetrics> {
    let evaluated = per_query.iter().filter(|q| q.relevant > 0).count();
    if evaluated == 0 {
        return Err(EvalError::NoMatchableQuery {
            queries: per_query.len(),
        });
    }
    let reached = |rank: usize| {
        per_query
            .iter()
            .filter(|q| q.relevant > 0 && q.first_hit.is_some_and(|f| f <= rank))
            .count() as f64
            / evaluated as f64
    };
    let cmc = (1..=params.cmc_len).map(reached).collect();
    let top_k = params.ks.iter().map(|&k| (k, reached(k))).collect();
    let ap_sum: f64 = per_query.iter().filter_map(|q| q.average_precision).sum();
    Ok(RankingMetrics {
        top_k,
        cmc,
        mean_ap: ap_sum / evaluated as f64,
        evaluated,
        excluded: per_query.len() - evaluated,
        per_query,
    })
}

/// Top-k accuracy, CMC and mAP from a `[queries, gallery]` similarity matrix
/// (see the [module docs](self)).
///
/// Errors: a matrix shape other than `[query_labels.len(),
/// gallery_labels.len()]` ([`EvalError::Shape`]), no queries or no gallery
/// ([`EvalError::Empty`]), a NaN score ([`EvalError::NanScore`] naming its
/// row and column; `±inf` is allowed, e.g. to mask items out), no query with
/// a correct gallery item ([`EvalError::NoMatchableQuery`]).
///
/// ```
/// use ndarray::array;
/// use reid_eval::ParamGuard;
/// use reid_eval::metrics::{RankingParams, ranking_metrics};
///
/// // Query "a": its only correct item (column 1) is ranked 2nd.
/// let scores = array![[0.9f32, 0.8, 0.1]];
/// let params = RankingParams::default().ks(&[1, 2]).cmc_len(3).check()?;
/// let m = ranking_metrics(scores.view(), &["a"], &["b", "a", "c"], &params)?;
/// assert_eq!(m.top_k, vec![(1, 0.0), (2, 1.0)]);
/// assert_eq!(m.mean_ap, 0.5);
/// # Ok::<(), reid_eval::EvalError>(())
/// ```
pub fn ranking_metrics<S: AsRef<str>, T: AsRef<str>>(
    scores: ArrayView2<'_, f32>,
    query_labels: &[S],
    gallery_labels: &[T],
    params: &ValidRankingParams,
) -> Result<RankingMetrics> {
    let (nq, ng) = (query_labels.len(), gallery_labels.len());
    if scores.dim() != (nq, ng) {
        return Err(EvalError::Shape {
            expected: format!("[{nq}, {ng}] (query labels × gallery labels)"),
            got: format!("[{}, {}]", scores.nrows(), scores.ncols()),
        });
    }
    check_labels(nq, ng)?;
    if let Some(((row, col), _)) = scores.indexed_iter().find(|(_, v)| v.is_nan()) {
        return Err(EvalError::NanScore {
            name: "scores",
            row,
            col,
        });
    }
    let labels = intern_labels(query_labels, gallery_labels);
    let per_query: Vec<QueryRanking> = (0..nq)
        .into_par_iter()
        .map(|q| {
            labels.rank_query(q, |label| {
                correct_ranks(scores.row(q), &labels.gallery, label)
            })
        })
        .collect();
    summarise(per_query, params)
}

/// Top-k accuracy, CMC and AP@w from ranked lists: `indices[q]` holds the
/// gallery indices of query `q`'s first `w` results, best first (e.g.
/// [`reid_openset::TopK::indices`]). See the [module docs](self).
///
/// Errors: `indices` without one row per query label or with `w = 0` or
/// `w > gallery` columns ([`EvalError::Shape`], [`EvalError::Empty`]); an
/// index `≥ gallery` ([`EvalError::IndexOutOfRange`]) or repeated within a
/// row ([`EvalError::DuplicateIndex`]); a `k` or CMC length past `w` while
/// the lists do not cover the gallery ([`EvalError::InvalidParam`]: those
/// ranks are unknown); no query with a correct gallery item
/// ([`EvalError::NoMatchableQuery`]).
pub fn ranking_metrics_from_lists<S: AsRef<str>, T: AsRef<str>>(
    indices: ArrayView2<'_, usize>,
    query_labels: &[S],
    gallery_labels: &[T],
    params: &ValidRankingParams,
) -> Result<RankingMetrics> {
    let (nq, ng) = (query_labels.len(), gallery_labels.len());
    check_labels(nq, ng)?;
    let w = indices.ncols();
    if indices.nrows() != nq || w > ng {
        return Err(EvalError::Shape {
            expected: format!("[{nq}, w ≤ {ng}] (query labels × list width ≤ gallery labels)"),
            got: format!("[{}, {w}]", indices.nrows()),
        });
    }
    if w == 0 {
        return Err(EvalError::Empty {
            what: "ranked lists (width 0)",
        });
    }
    if w < ng && params.deepest() > w {
        return Err(EvalError::InvalidParam {
            name: "params",
            reason: format!(
                "ranks up to {} asked (ks {:?}, CMC length {}) but the lists hold only the first \
                 {w} of {ng} gallery items",
                params.deepest(),
                params.ks,
                params.cmc_len
            ),
        });
    }
    let mut seen = vec![usize::MAX; ng];
    for (row, list) in indices.axis_iter(Axis(0)).enumerate() {
        for &index in list {
            match seen.get_mut(index) {
                None => {
                    return Err(EvalError::IndexOutOfRange {
                        name: "indices",
                        row,
                        index,
                        len: ng,
                    });
                }
                Some(s) if *s == row => {
                    return Err(EvalError::DuplicateIndex {
                        name: "indices",
                        row,
                        index,
                    });
                }
                Some(s) => *s = row,
            }
        }
    }
    let labels = intern_labels(query_labels, gallery_labels);
    let per_query = indices
        .axis_iter(Axis(0))
        .enumerate()
        .map(|(q, list)| {
            labels.rank_query(q, |label| {
                list.iter()
                    .enumerate()
                    .filter(|(_, g)| labels.gallery.get(**g) == Some(&label))
                    .map(|(p, _)| p + 1)
                    .collect()
            })
        })
        .collect();
    summarise(per_query, params)
}

// ---------------------------------------------------------------------------
// Clustering scores (scikit-learn's definitions)

/// A contingency table of two labelings, labels numbered by first
/// appearance.
struct Contingency {
    n: usize,
    /// Items per label of the first labeling.
    rows: Vec<usize>,
    /// Items per label of the second labeling.
    cols: Vec<usize>,
    /// Non-zero cells `(row, col, count)`, sorted by `(row, col)`.
    cells: Vec<(usize, usize, usize)>,
}

fn intern<L: Hash + Eq>(labels: &[L]) -> (Vec<usize>, Vec<usize>) {
    let mut ids: HashMap<&L, usize> = HashMap::new();
    let mut counts: Vec<usize> = Vec::new();
    let idx = labels
        .iter()
        .map(|l| {
            let next = ids.len();
            let id = *ids.entry(l).or_insert(next);
            if id == counts.len() {
                counts.push(0);
            }
            if let Some(c) = counts.get_mut(id) {
                *c += 1;
            }
            id
        })
        .collect();
    (idx, counts)
}

fn contingency<A: Hash + Eq, B: Hash + Eq>(a: &[A], b: &[B]) -> Result<Contingency> {
    if a.len() != b.len() {
        return Err(EvalError::LengthMismatch {
            name: "labels_pred",
            expected: a.len(),
            got: b.len(),
        });
    }
    let (ia, rows) = intern(a);
    let (ib, cols) = intern(b);
    let mut map: HashMap<(usize, usize), usize> = HashMap::new();
    for (&x, &y) in ia.iter().zip(&ib) {
        *map.entry((x, y)).or_default() += 1;
    }
    let mut cells: Vec<(usize, usize, usize)> =
        map.into_iter().map(|((x, y), c)| (x, y, c)).collect();
    cells.sort_unstable();
    Ok(Contingency {
        n: a.len(),
        rows,
        cols,
        cells,
    })
}

/// Entropy (nats) of cluster sizes, as `sklearn.metrics.cluster.entropy`
/// (0 for a single cluster).
fn entropy(counts: &[usize]) -> f64 {
    if counts.len() <= 1 {
        return 0.0;
    }
    let n: usize = counts.iter().sum();
    let ln_n = (n as f64).ln();
    -counts
        .iter()
        .map(|&c| (c as f64 / n as f64) * ((c as f64).ln() - ln_n))
        .sum::<f64>()
}

/// Mutual information (nats), term by term as `mutual_info_score`.
fn mutual_info(c: &Contingency) -> f64 {
    if c.rows.len() == 1 || c.cols.len() == 1 {
        return 0.0;
    }
    let total = c.n as f64;
    // ln(Σ contingency), ln(Σ row sums), ln(Σ column sums): all ln(n).
    let (ln_total, ln_rows, ln_cols) = (total.ln(), total.ln(), total.ln());
    let mi: f64 = c
        .cells
        .iter()
        .map(|&(i, j, nij)| {
            let pi = c.rows.get(i).copied().unwrap_or(0) as f64;
            let pj = c.cols.get(j).copied().unwrap_or(0) as f64;
            let nm = nij as f64 / total;
            let log_outer = -(pi * pj).ln() + ln_rows + ln_cols;
            let term = nm * ((nij as f64).ln() - ln_total) + nm * log_outer;
            if term.abs() < f64::EPSILON { 0.0 } else { term }
        })
        .sum();
    mi.max(0.0)
}

/// Mutual information (nats) between two labelings of the same items
/// (`sklearn.metrics.mutual_info_score`; 0 when either has one cluster).
pub fn mutual_info_score<A: Hash + Eq, B: Hash + Eq>(truth: &[A], pred: &[B]) -> Result<f64> {
    let c = contingency(truth, pred)?;
    if c.n == 0 {
        return Ok(0.0);
    }
    Ok(mutual_info(&c))
}

/// Normalised mutual information with the arithmetic mean of the two
/// entropies as normaliser (`sklearn.metrics.normalized_mutual_info_score`
/// with its default `average_method="arithmetic"`): 1.0 when both labelings
/// have the same single cluster count of one (or no items), 0.0 when the
/// mutual information is 0.
pub fn normalized_mutual_info<A: Hash + Eq, B: Hash + Eq>(truth: &[A], pred: &[B]) -> Result<f64> {
    let c = contingency(truth, pred)?;
    let (kr, kc) = (c.rows.len(), c.cols.len());
    if (kr == 1 && kc == 1) || (kr == 0 && kc == 0) {
        return Ok(1.0);
    }
    let mi = mutual_info(&c);
    if mi == 0.0 {
        return Ok(0.0);
    }
    let normaliser = (entropy(&c.rows) + entropy(&c.cols)) / 2.0;
    Ok(mi / normaliser)
}

/// `ln(k!)` for `k = 0..=n`, by cumulative sums (exact to a few ulps).
fn log_factorials(n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    let mut acc = 0.0f64;
    out.push(0.0);
    for k in 1..=n {
        acc += (k as f64).ln();
        out.push(acc);
    }
    out
}

/// Expected mutual information under the permutation model (Vinh, Epps &
/// Bailey 2010), as scikit-learn's `expected_mutual_information`.
fn expected_mutual_info(c: &Contingency) -> f64 {
    if c.rows.len() == 1 || c.cols.len() == 1 {
        return 0.0;
    }
    let n = c.n;
    let lf = log_factorials(n);
    let lfac = |k: usize| lf.get(k).copied().unwrap_or(0.0);
    let nf = n as f64;
    let mut emi = 0.0;
    for &a in &c.rows {
        for &b in &c.cols {
            let start = (a + b).saturating_sub(n).max(1);
            let end = a.min(b);
            let fixed = lfac(a) + lfac(b) + lfac(n - a) + lfac(n - b) - lfac(n);
            for nij in start..=end {
                let x = nij as f64;
                let term2 = nf.ln() + x.ln() - (a as f64).ln() - (b as f64).ln();
                let gln = fixed - lfac(nij) - lfac(a - nij) - lfac(b - nij) - lfac(n + nij - a - b);
                emi += x / nf * term2 * gln.exp();
            }
        }
    }
    emi
}

/// Adjusted mutual information with arithmetic-mean normalisation
/// (`sklearn.metrics.adjusted_mutual_info_score`): mutual information
/// corrected for chance, `(MI - E[MI]) / (mean(H_true, H_pred) - E[MI])`;
/// 1.0 when both labelings have one cluster (or no items), 0.0 when only
/// one of them has (scikit-learn 1.9's special cases).
pub fn adjusted_mutual_info<A: Hash + Eq, B: Hash + Eq>(truth: &[A], pred: &[B]) -> Result<f64> {
    let c = contingency(truth, pred)?;
    let (kr, kc) = (c.rows.len(), c.cols.len());
    if (kr == 1 && kc == 1) || (kr == 0 && kc == 0) {
        return Ok(1.0);
    }
    if kr == 1 || kc == 1 {
        return Ok(0.0);
    }
    let mi = mutual_info(&c);
    let emi = expected_mutual_info(&c);
    let normaliser = (entropy(&c.rows) + entropy(&c.cols)) / 2.0;
    let mut denominator = normaliser - emi;
    denominator = if denominator < 0.0 {
        denominator.min(-f64::EPSILON)
    } else {
        denominator.max(f64::EPSILON)
    };
    // Both clamps keep the sign (scikit-learn 1.9): no 0/0 on a perfect match.
    let mut numerator = mi - emi;
    numerator = if numerator < 0.0 {
        numerator.min(-f64::EPSILON)
    } else {
        numerator.max(f64::EPSILON)
    };
    Ok(numerator / denominator)
}

/// Homogeneity, completeness and V-measure of a clustering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HomogeneityCompleteness {
    /// Each cluster holds members of one class only (`MI / H(truth)`; 1.0
    /// when the truth has one class).
    pub homogeneity: f64,
    /// All members of a class are in one cluster (`MI / H(pred)`; 1.0 when
    /// the prediction has one cluster).
    pub completeness: f64,
    /// Their harmonic mean (V-measure with `beta = 1`; 0.0 when both are 0).
    pub v_measure: f64,
}

/// Homogeneity, completeness and V-measure (`beta = 1`), as
/// `sklearn.metrics.homogeneity_completeness_v_measure` (all 1.0 for no
/// items).
pub fn homogeneity_completeness_v_measure<A: Hash + Eq, B: Hash + Eq>(
    truth: &[A],
    pred: &[B],
) -> Result<HomogeneityCompleteness> {
    let c = contingency(truth, pred)?;
    if c.n == 0 {
        return Ok(HomogeneityCompleteness {
            homogeneity: 1.0,
            completeness: 1.0,
            v_measure: 1.0,
        });
    }
    let (h_true, h_pred) = (entropy(&c.rows), entropy(&c.cols));
    let mi = mutual_info(&c);
    let homogeneity = if h_true == 0.0 { 1.0 } else { mi / h_true };
    let completeness = if h_pred == 0.0 { 1.0 } else { mi / h_pred };
    let v_measure = if homogeneity + completeness == 0.0 {
        0.0
    } else {
        2.0 * homogeneity * completeness / (homogeneity + completeness)
    };
    Ok(HomogeneityCompleteness {
        homogeneity,
        completeness,
        v_measure,
    })
}

/// The distance of a silhouette.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilhouetteMetric {
    /// `‖x - y‖`.
    Euclidean,
    /// `1 - cos(x, y)`, clipped to `[0, 2]`; a zero row has cosine 0 with
    /// everything (distance 1), as scikit-learn's `cosine_distances`.
    Cosine,
}

/// Rows per block of the distance computation (a `block × n` f64 tile).
const SILHOUETTE_BLOCK: usize = 256;

/// The silhouette of each sample (`sklearn.metrics.silhouette_samples`):
/// `s = (b - a) / max(a, b)` with `a` the mean distance to the other members
/// of its cluster and `b` the lowest mean distance to the members of another
/// cluster; 0 for a sample alone in its cluster (and where `a = b = 0`).
///
/// Errors: `labels.len() != x.nrows()` ([`EvalError::LengthMismatch`]), no
/// rows ([`EvalError::Empty`]), a NaN or infinite value
/// ([`EvalError::NonFinite`]), fewer than 2 or more than `n - 1` distinct
/// labels ([`EvalError::LabelCount`], as scikit-learn raises).
pub fn silhouette_samples<L: Hash + Eq>(
    x: ArrayView2<'_, f32>,
    labels: &[L],
    metric: SilhouetteMetric,
) -> Result<Vec<f64>> {
    let n = x.nrows();
    if labels.len() != n {
        return Err(EvalError::LengthMismatch {
            name: "labels",
            expected: n,
            got: labels.len(),
        });
    }
    if n == 0 {
        return Err(EvalError::Empty { what: "embeddings" });
    }
    if let Some(((row, _), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(EvalError::NonFinite {
            name: "embeddings",
            row,
            value: f64::from(*v),
        });
    }
    let (lab, counts) = intern(labels);
    let k = counts.len();
    if k < 2 || k > n - 1 {
        return Err(EvalError::LabelCount {
            labels: k,
            samples: n,
        });
    }
    let mut xf: Array2<f64> = x.mapv(f64::from);
    if metric == SilhouetteMetric::Cosine {
        for mut r in xf.rows_mut() {
            let norm = r.dot(&r).sqrt();
            if norm > 0.0 {
                r.mapv_inplace(|v| v / norm);
            }
        }
    }
    let sq: Vec<f64> = xf.rows().into_iter().map(|r| r.dot(&r)).collect();
    let xt = xf.t();
    let starts: Vec<usize> = (0..n).step_by(SILHOUETTE_BLOCK).collect();
    let blocks: Vec<Vec<f64>> = starts
        .par_iter()
        .map(|&start| {
            let end = (start + SILHOUETTE_BLOCK).min(n);
            let gram = xf.slice(s![start..end, ..]).dot(&xt);
            let mut out = Vec::with_capacity(end - start);
            let mut sums = vec![0.0f64; k];
            for (bi, g) in gram.axis_iter(Axis(0)).enumerate() {
                let i = start + bi;
                sums.iter_mut().for_each(|v| *v = 0.0);
                let sq_i = sq.get(i).copied().unwrap_or(0.0);
                for (j, (&dot, &lj)) in g.iter().zip(&lab).enumerate() {
                    if j == i {
                        continue;
                    }
                    let d = match metric {
                        SilhouetteMetric::Euclidean => (sq_i + sq.get(j).copied().unwrap_or(0.0)
                            - 2.0 * dot)
                            .max(0.0)
                            .sqrt(),
                        SilhouetteMetric::Cosine => (1.0 - dot).clamp(0.0, 2.0),
                    };
                    if let Some(s) = sums.get_mut(lj) {
                        *s += d;
                    }
                }
                let own = lab.get(i).copied().unwrap_or(0);
                let own_n = counts.get(own).copied().unwrap_or(1);
                if own_n <= 1 {
                    out.push(0.0);
                    continue;
                }
                let a = sums.get(own).copied().unwrap_or(0.0) / (own_n - 1) as f64;
                let b = sums
                    .iter()
                    .zip(&counts)
                    .enumerate()
                    .filter(|(c, _)| *c != own)
                    .map(|(_, (&s, &m))| s / m as f64)
                    .fold(f64::INFINITY, f64::min);
                let top = a.max(b);
                out.push(if top > 0.0 { (b - a) / top } else { 0.0 });
            }
            out
        })
        .collect();
    Ok(blocks.into_iter().flatten().collect())
}

/// The mean silhouette over all samples (`sklearn.metrics.silhouette_score`
/// without sampling); see [`silhouette_samples`] for the definition and the
/// errors.
pub fn silhouette_score<L: Hash + Eq>(
    x: ArrayView2<'_, f32>,
    labels: &[L],
    metric: SilhouetteMetric,
) -> Result<f64> {
    let s = silhouette_samples(x, labels, metric)?;
    Ok(s.iter().sum::<f64>() / s.len() as f64)
}
