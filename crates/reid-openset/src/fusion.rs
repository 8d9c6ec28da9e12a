//! Fusion of several similarity sources over a shortlist (the WildFusion
//! idea): the first source (usually a global embedding) shortlists the top
//! `B` gallery items of each query; every source scores each
//! (query, shortlisted item) pair, each score is turned into a probability
//! by that source's [`Calibrator`], and the candidates are re-ranked by the
//! weighted mean of those probabilities. The result is a [`TopK`], so the
//! decision rules of [`crate::decision`] apply unchanged (thresholds are then
//! on the fused probability).
//!
//! Sources are [`PairScorer`]s: [`EmbeddingScorer`] for a second backbone,
//! or any callback (local keypoint matching, ...) through [`FnScorer`].
//!
//! [`self_calibrate_fusion`] fits each source's calibrator and the
//! threshold on the fused score from the database alone, through the same
//! open-set episodes as [`crate::threshold`], inside each group (dataset).

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayView2};
#[cfg(doc)]
use reid_core::ParamGuard;
use reid_index::{Gallery, TopK, exact_topk};

use crate::adapt::ValidAdaptParams;
use crate::decision::{Rule, Thresholds};
use crate::episodes::{
    EpisodeQuery, ValidSelfCalibrationParams, episode_view, gallery_episodes, identity_numbers,
    labels,
};
use crate::probability::{CalibrationMethod, Calibrator};
use crate::stack::LogisticStack;
use crate::threshold::{
    EpisodeCurve, SelfCalibration, episode_curves, no_group_calibrates, pool_curves, rows_by_group,
    summarise,
};
use crate::{OpensetError, Result, check};

/// Scores one (query, gallery item) pair; higher means more alike.
pub trait PairScorer {
    /// A name used in errors.
    fn name(&self) -> &str;
    /// The score of query row `query` against gallery row `gallery`; an
    /// `Err` carries a message (it becomes [`OpensetError::Scorer`]).
    fn score(&self, query: usize, gallery: usize) -> std::result::Result<f32, String>;

    /// The scores of many `(query, gallery)` pairs, in order; an `Err`
    /// carries the index of the failing pair and the message. The default
    /// calls [`PairScorer::score`] pair by pair; scorers that can work in
    /// parallel (local feature matching) override it. [`fuse`] and
    /// [`self_calibrate_fusion`] score through this.
    fn score_many(
        &self,
        pairs: &[(usize, usize)],
    ) -> std::result::Result<Vec<f32>, (usize, String)> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, &(q, g))| self.score(q, g).map_err(|e| (i, e)))
            .collect()
    }
}

impl<S: PairScorer + ?Sized> PairScorer for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn score(&self, query: usize, gallery: usize) -> std::result::Result<f32, String> {
        (**self).score(query, gallery)
    }
    fn score_many(
        &self,
        pairs: &[(usize, usize)],
    ) -> std::result::Result<Vec<f32>, (usize, String)> {
        (**self).score_many(pairs)
    }
}

/// Cosine similarity of L2-normalised embeddings (inner product).
#[derive(Debug, Clone)]
pub struct EmbeddingScorer<'a> {
    name: String,
    queries: ArrayView2<'a, f32>,
    gallery: ArrayView2<'a, f32>,
}

impl<'a> EmbeddingScorer<'a> {
    /// Checks equal dimensions and finite values.
    pub fn new(
        name: impl Into<String>,
        queries: ArrayView2<'a, f32>,
        gallery: ArrayView2<'a, f32>,
    ) -> Result<Self> {
        if gallery.nrows() == 0 {
            return Err(OpensetError::EmptyGallery);
        }
        check::queries(queries, gallery.ncols())?;
        check::finite_2d(gallery, "gallery embeddings")?;
        Ok(Self {
            name: name.into(),
            queries,
            gallery,
        })
    }
}

impl PairScorer for EmbeddingScorer<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, query: usize, gallery: usize) -> std::result::Result<f32, String> {
        if query >= self.queries.nrows() || gallery >= self.gallery.nrows() {
            return Err(format!(
                "pair ({query}, {gallery}) outside [{}, {}]",
                self.queries.nrows(),
                self.gallery.nrows()
            ));
        }
        Ok(self.queries.row(query).dot(&self.gallery.row(gallery)))
    }
}

/// A [`PairScorer`] from a closure.
pub struct FnScorer<F> {
    name: String,
    f: F,
}

impl<F> FnScorer<F>
where
    F: Fn(usize, usize) -> std::result::Result<f32, String>,
{
    /// Wraps `f(query, gallery)`.
    pub fn new(name: impl Into<String>, f: F) -> Self {
        Self {
            name: name.into(),
            f,
        }
    }
}

impl<F> PairScorer for FnScorer<F>
where
    F: Fn(usize, usize) -> std::result::Result<f32, String>,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, query: usize, gallery: usize) -> std::result::Result<f32, String> {
        (self.f)(query, gallery)
    }
}

/// A [`PairScorer`] that remembers every score its inner scorer gave, so
/// that a pair scored again costs a lookup: several fusions over the same
/// records (shortlist sizes, one source alone then with others) score
/// their shared pairs once. Scores are keyed by the `(query, gallery)` rows
/// as given, so it must see the same rows every time (wrap the scorer of
/// records, not a row-mapped view of it); the inner scorer must give a
/// pair the same score whenever asked (true of every scorer here: RANSAC
/// is seeded per pair). Errors are not remembered.
///
/// ```
/// use reid_openset::{FnScorer, MemoScorer, PairScorer};
///
/// let memo = MemoScorer::new(FnScorer::new("sum", |q, g| Ok((q + g) as f32)));
/// assert_eq!(memo.score_many(&[(0, 1), (2, 3)]).unwrap(), [1.0, 5.0]);
/// assert_eq!(memo.score_many(&[(2, 3), (4, 4), (2, 3)]).unwrap(), [5.0, 8.0, 5.0]);
/// assert_eq!((memo.computed(), memo.reused()), (3, 2));
/// ```
pub struct MemoScorer<S> {
    inner: S,
    memo: std::cell::RefCell<std::collections::HashMap<(usize, usize), f32>>,
    computed: std::cell::Cell<usize>,
    reused: std::cell::Cell<usize>,
}

impl<S: PairScorer> MemoScorer<S> {
    /// Wraps `inner`, remembering nothing yet.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            memo: Default::default(),
            computed: std::cell::Cell::new(0),
            reused: std::cell::Cell::new(0),
        }
    }

    /// Pairs the inner scorer has scored (each distinct pair once).
    pub fn computed(&self) -> usize {
        self.computed.get()
    }

    /// Pairs answered from memory.
    pub fn reused(&self) -> usize {
        self.reused.get()
    }

    /// The inner scorer.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: PairScorer> PairScorer for MemoScorer<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn score(&self, query: usize, gallery: usize) -> std::result::Result<f32, String> {
        if let Some(&v) = self.memo.borrow().get(&(query, gallery)) {
            self.reused.set(self.reused.get() + 1);
            return Ok(v);
        }
        let v = self.inner.score(query, gallery)?;
        self.memo.borrow_mut().insert((query, gallery), v);
        self.computed.set(self.computed.get() + 1);
        Ok(v)
    }

    /// The pairs not yet remembered go to the inner scorer's `score_many`
    /// in one call (each distinct pair once, in order of first
    /// appearance), so a batching scorer still batches.
    fn score_many(
        &self,
        pairs: &[(usize, usize)],
    ) -> std::result::Result<Vec<f32>, (usize, String)> {
        // Where each distinct missing pair first appears in `pairs`.
        let mut missing: Vec<(usize, usize)> = Vec::new();
        let mut first_at: Vec<usize> = Vec::new();
        {
            let memo = self.memo.borrow();
            let mut seen = std::collections::HashSet::new();
            for (i, p) in pairs.iter().enumerate() {
                if !memo.contains_key(p) && seen.insert(*p) {
                    missing.push(*p);
                    first_at.push(i);
                }
            }
        }
        if !missing.is_empty() {
            let fresh = self
                .inner
                .score_many(&missing)
                .map_err(|(i, e)| (first_at.get(i).copied().unwrap_or(i), e))?;
            if fresh.len() != missing.len() {
                return Err((
                    0,
                    format!(
                        "`{}` gave {} scores for {} pairs",
                        self.inner.name(),
                        fresh.len(),
                        missing.len()
                    ),
                ));
            }
            let mut memo = self.memo.borrow_mut();
            memo.extend(missing.iter().copied().zip(fresh));
            self.computed.set(self.computed.get() + missing.len());
        }
        self.reused
            .set(self.reused.get() + pairs.len() - missing.len());
        let memo = self.memo.borrow();
        Ok(pairs
            .iter()
            .map(|p| memo.get(p).copied().unwrap_or(f32::NAN))
            .collect())
    }
}

/// One similarity source of a fusion.
pub struct FusionSource<'a> {
    /// Scores pairs.
    pub scorer: &'a dyn PairScorer,
    /// Maps its scores to probabilities; `None` uses the raw score.
    pub calibrator: Option<&'a Calibrator>,
    /// Weight in the mean (finite, `>= 0`; the weights must not all be 0).
    pub weight: f32,
}

fn check_sources(sources: &[FusionSource<'_>]) -> Result<()> {
    if sources.is_empty() {
        return Err(OpensetError::InvalidParam {
            name: "sources",
            reason: "needs at least one similarity source".into(),
        });
    }
    for s in sources {
        if !(s.weight.is_finite() && s.weight >= 0.0) {
            return Err(OpensetError::InvalidParam {
                name: "weight",
                reason: format!(
                    "source `{}`: must be finite and >= 0, got {}",
                    s.scorer.name(),
                    s.weight
                ),
            });
        }
    }
    if sources.iter().all(|s| s.weight == 0.0) {
        return Err(OpensetError::InvalidParam {
            name: "weight",
            reason: "all weights are 0".into(),
        });
    }
    Ok(())
}

/// Re-ranks the candidates of `shortlist` (from the first source, e.g.
/// [`reid_index::exact_topk`]) by the weighted mean of the calibrated
/// scores of `sources`. Output rows hold the same candidates, ordered by
/// decreasing fused score, ties by the lower gallery index.
pub fn fuse(shortlist: &TopK, sources: &[FusionSource<'_>]) -> Result<TopK> {
    Ok(fuse_with_sources(shortlist, sources)?.top)
}

/// What [`fuse_with_sources`] gives: the re-ranked shortlist and what each
/// source said of each of its candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedShortlist {
    /// The re-ranked shortlist (as [`fuse`] gives it).
    pub top: TopK,
    /// Per source, in the order given: its calibrated score (its raw score
    /// when it has no calibrator) of the candidate at each position of
    /// [`FusedShortlist::top`]; `None` for a source of weight 0, which is
    /// not scored.
    pub sources: Vec<Option<Array2<f32>>>,
}

/// [`fuse`], also keeping each source's calibrated score of every
/// re-ranked candidate (to draw, say, a reliability diagram per source).
pub fn fuse_with_sources(shortlist: &TopK, sources: &[FusionSource<'_>]) -> Result<FusedShortlist> {
    fuse_stacked(shortlist, sources, None)
}

/// [`fuse_with_sources`], the fused score given by `stack` (a
/// [`LogisticStack`] over the sources of non-zero weight, in order; see
/// [`FusionCalibration::stack`]) instead of the weighted mean when set.
pub fn fuse_stacked(
    shortlist: &TopK,
    sources: &[FusionSource<'_>],
    stack: Option<&LogisticStack>,
) -> Result<FusedShortlist> {
    check_sources(sources)?;
    if let Some(st) = stack {
        let used = sources.iter().filter(|s| s.weight > 0.0).count();
        check::same_len("stacked sources", st.weights().len(), used)?;
    }
    let (q, b) = shortlist.indices.dim();
    let pairs: Vec<(usize, usize)> = shortlist
        .indices
        .outer_iter()
        .enumerate()
        .flat_map(|(qi, row)| row.iter().map(move |&g| (qi, g)).collect::<Vec<_>>())
        .collect();
    let mut per_source: Vec<Option<Vec<f32>>> = Vec::with_capacity(sources.len());
    for s in sources {
        if s.weight == 0.0 {
            per_source.push(None);
            continue;
        }
        let raw = checked_scores(s.scorer, &pairs)?;
        let probs: Vec<f32> = raw
            .iter()
            .map(|&r| s.calibrator.map_or(r, |c| c.probability(r)))
            .collect();
        per_source.push(Some(probs));
    }
    let weights: Vec<f32> = sources.iter().map(|s| s.weight).collect();
    let fused = fused_scores(&per_source, &weights, stack, pairs.len());
    let mut indices = Array2::zeros((q, b));
    let mut scores = Array2::zeros((q, b));
    let mut out_sources: Vec<Option<Array2<f32>>> = per_source
        .iter()
        .map(|p| p.as_ref().map(|_| Array2::zeros((q, b))))
        .collect();
    for qi in 0..q {
        let mut cand: Vec<(usize, f32, usize)> = (qi * b..(qi + 1) * b)
            .map(|e| (pairs[e].1, fused[e] as f32, e))
            .collect();
        cand.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        for (j, (g, s, e)) in cand.into_iter().enumerate() {
            indices[[qi, j]] = g;
            scores[[qi, j]] = s;
            for (out, probs) in out_sources.iter_mut().zip(&per_source) {
                if let (Some(out), Some(probs)) = (out.as_mut(), probs) {
                    out[[qi, j]] = probs[e];
                }
            }
        }
    }
    Ok(FusedShortlist {
        top: TopK { indices, scores },
        sources: out_sources,
    })
}

/// Every one of `n` pairs' fused score from each source's calibrated
/// probabilities (`probs[s]`; `None` for a source of weight 0, not
/// scored): the `stack` over the scored sources when given, else their
/// mean weighted by `weights` (divided by the sum of all weights).
fn fused_scores(
    probs: &[Option<Vec<f32>>],
    weights: &[f32],
    stack: Option<&LogisticStack>,
    n: usize,
) -> Vec<f64> {
    let scored: Vec<&Vec<f32>> = probs.iter().flatten().collect();
    if let Some(st) = stack {
        return (0..n)
            .map(|e| {
                let one: Vec<f32> = scored.iter().map(|p| p[e]).collect();
                f64::from(st.predict(&one))
            })
            .collect();
    }
    let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    let mut fused = vec![0.0f64; n];
    for (p, &w) in probs.iter().zip(weights) {
        if let Some(p) = p {
            for (acc, &v) in fused.iter_mut().zip(p) {
                *acc += f64::from(w) * f64::from(v);
            }
        }
    }
    fused.iter_mut().for_each(|v| *v /= total);
    fused
}

/// `scorer`'s scores of `pairs`, every one finite, failures located.
fn checked_scores(scorer: &dyn PairScorer, pairs: &[(usize, usize)]) -> Result<Vec<f32>> {
    let located = |e: usize, reason: String| {
        let (query, gallery) = pairs.get(e).copied().unwrap_or_default();
        OpensetError::Scorer {
            source_name: scorer.name().to_owned(),
            query,
            gallery,
            reason,
        }
    };
    let raw = scorer
        .score_many(pairs)
        .map_err(|(e, reason)| located(e, reason))?;
    if raw.len() != pairs.len() {
        return Err(located(
            pairs.len().min(raw.len()),
            format!("{} scores for {} pairs", raw.len(), pairs.len()),
        ));
    }
    if let Some(e) = raw.iter().position(|v| !v.is_finite()) {
        return Err(located(e, format!("non-finite score {}", raw[e])));
    }
    Ok(raw)
}

/// The settings of a fusion: the cosine shortlist each query keeps, the
/// weight of each source in the mean, and the calibration of each source;
/// [`ParamGuard::check`] gives [`ValidFusionParams`].
///
/// ```
/// use reid_openset::{CalibrationMethod, FusionParams, ParamGuard};
/// let p = FusionParams::default().shortlist(50).weights(vec![1.0, 0.5]).check()?;
/// assert_eq!((p.shortlist(), p.weights()), (50, &[1.0, 0.5][..]));
/// assert_eq!(p.method(), CalibrationMethod::Isotonic);
/// assert!(FusionParams::default().weights(vec![0.0, 0.0]).check().is_err());
/// # Ok::<(), reid_openset::OpensetError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FusionParams {
    shortlist: usize,
    weights: Vec<f32>,
    method: CalibrationMethod,
    calibration_episodes: Option<usize>,
    combine: Combine,
    rules: Vec<Rule>,
}

/// How the calibrated sources of a fusion become one score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Combine {
    /// The weighted mean of the calibrated probabilities.
    Mean,
    /// A [`LogisticStack`] fitted on the calibration's database pairs
    /// (the weights only say which sources are scored: weight 0, none).
    Logistic,
    /// Both, each group keeping the one whose episode score on the
    /// database is higher (the mean on a tie).
    Auto,
}

impl Combine {
    /// The name used on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Combine::Mean => "mean",
            Combine::Logistic => "logistic",
            Combine::Auto => "auto",
        }
    }
}

impl std::fmt::Display for Combine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Combine {
    type Err = OpensetError;
    fn from_str(s: &str) -> Result<Self> {
        [Combine::Mean, Combine::Logistic, Combine::Auto]
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| OpensetError::InvalidParam {
                name: "combine",
                reason: format!("unknown `{s}`: one of mean, logistic, auto"),
            })
    }
}

/// Checked [`FusionParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidFusionParams(FusionParams);

impl Default for FusionParams {
    /// Shortlist 10, two sources of weight 1 (cosine and one more),
    /// isotonic calibration on every episode.
    fn default() -> Self {
        Self {
            shortlist: 10,
            weights: vec![1.0, 1.0],
            method: CalibrationMethod::Isotonic,
            calibration_episodes: None,
            combine: Combine::Mean,
            rules: vec![Rule::Top1],
        }
    }
}

impl FusionParams {
    reid_core::setters! {
        /// The cosine shortlist `B` of each query that the sources re-score
        /// (at least 1).
        shortlist: usize,

        /// One weight per source, in the order the sources are given (finite,
        /// `>= 0`, not all 0).
        weights: Vec<f32>,

        /// How each source's scores become probabilities.
        method: CalibrationMethod,

        /// Calibrate the fusion on only the first `n` of each group's
        /// self-calibration episodes (at least 1; `None`: all of them). The
        /// costly sources score every shortlisted pair of every episode's
        /// pseudo-queries, so this divides the calibration's cost by about
        /// `episodes / n`; the episodes are random draws, so the first `n`
        /// are an unbiased subsample.
        calibration_episodes: Option<usize>,

        /// How the calibrated sources become one score (default: the
        /// weighted mean).
        combine: Combine,

        /// The decision rules to try on the fused shortlist (at least one;
        /// default: [`Rule::Top1`]); each group keeps the one whose episode
        /// score on the database is highest, the earliest of equals. A rule
        /// that aggregates an identity's photos
        /// (`knn:B:noisyor:3`) lets several good matches of one animal add
        /// up.
        rules: Vec<Rule>,
    }
}

reid_core::param_guard!(FusionParams => ValidFusionParams, OpensetError, |p| {
    if p.shortlist == 0 {
        return Err(OpensetError::InvalidParam {
            name: "shortlist",
            reason: "must be at least 1".into(),
        });
    }
    if p.weights.is_empty() {
        return Err(OpensetError::InvalidParam {
            name: "weights",
            reason: "needs one weight per similarity source".into(),
        });
    }
    if let Some(w) = p.weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
        return Err(OpensetError::InvalidParam {
            name: "weights",
            reason: format!("must be finite and >= 0, got {w}"),
        });
    }
    if p.weights.iter().all(|&w| w == 0.0) {
        return Err(OpensetError::InvalidParam {
            name: "weights",
            reason: "all weights are 0".into(),
        });
    }
    if p.rules.is_empty() {
        return Err(OpensetError::InvalidParam {
            name: "rules",
            reason: "at least one decision rule to try".into(),
        });
    }
    for r in &p.rules {
        r.validate()?;
    }
    if p.calibration_episodes == Some(0) {
        return Err(OpensetError::InvalidParam {
            name: "calibration_episodes",
            reason: "must be at least 1 (or None for all)".into(),
        });
    }
    Ok(())
});

impl ValidFusionParams {
    reid_core::getters! {
        /// The shortlist `B`.
        shortlist: usize,
        /// The calibration method.
        method: CalibrationMethod,
        /// How many episodes per group calibrate the fusion (`None`: all).
        calibration_episodes: Option<usize>,
        /// How the sources are combined.
        combine: Combine,
    }
    /// The decision rules tried on the fused shortlist.
    pub fn rules(&self) -> &[Rule] {
        &self.0.rules
    }
    /// The weight of each source.
    pub fn weights(&self) -> &[f32] {
        &self.0.weights
    }
}

/// A fusion calibrated from the database alone
/// ([`self_calibrate_fusion`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FusionCalibration {
    /// One calibrator per source, in the order given: score → probability
    /// that a shortlisted database pair shows the same individual.
    pub calibrators: Vec<Calibrator>,
    /// The threshold on the fused probability (known iff the re-ranked top
    /// candidate's fused score is at least this), with its episode report.
    pub self_calibration: SelfCalibration,
    /// Distinct database pairs each source scored.
    pub pairs: usize,
    /// How many of them show the same individual.
    pub positives: usize,
    /// The stack that combines the sources when it was chosen
    /// ([`Combine::Logistic`], or [`Combine::Auto`] finding it better);
    /// `None`: the weighted mean.
    pub stack: Option<LogisticStack>,
    /// The decision rule on the fused shortlist (the best of
    /// [`ValidFusionParams::rules`] on the episodes).
    pub rule: Rule,
    /// Each (combination, rule) tried and its mean episode score (one entry
    /// for one combination and one rule).
    pub trials: Vec<FusionTrial>,
}

/// One way of deciding from a fused shortlist, scored on the database's
/// episodes ([`FusionCalibration::trials`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusionTrial {
    /// How the sources were combined.
    pub combine: Combine,
    /// The decision rule.
    pub rule: Rule,
    /// Mean episode score at the best threshold.
    pub score: f64,
}

/// Fusions calibrated per group ([`self_calibrate_fusion_groups`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FusionGroupCalibration {
    /// Each group's threshold on the fused probability, and the default
    /// ([`FusionGroupCalibration::all`]'s).
    pub thresholds: Thresholds,
    /// The default, for groups that cannot form episodes: calibrators
    /// fitted on the pairs of every group together, and the threshold that
    /// maximises the mean over groups of each group's episode score.
    pub all: FusionCalibration,
    /// Each calibrated group's own fusion.
    pub per_group: BTreeMap<String, FusionCalibration>,
    /// Groups that could not form episodes, with the reason.
    pub skipped: BTreeMap<String, String>,
}

impl FusionGroupCalibration {
    /// The fusion of `group`: its own, else the default.
    pub fn get(&self, group: &str) -> &FusionCalibration {
        self.per_group.get(group).unwrap_or(&self.all)
    }
}

/// A combination's calibration: the fitted sources, the stack when it was
/// kept, the episode report, and each combination's episode score.
type Calibrated = (
    FittedSources,
    Option<LogisticStack>,
    Rule,
    SelfCalibration,
    Vec<FusionTrial>,
);

/// Draws the episode curves under a fused score and a decision rule.
type CurvesOf<'a> = dyn Fn(&[f64], &Rule) -> Result<Vec<EpisodeCurve>> + 'a;

/// Calibrators fitted on some of a calibration's pairs.
struct FittedSources {
    calibrators: Vec<Calibrator>,
    /// Per source, every pair's calibrated probability (`None`: weight 0).
    probs: Vec<Option<Vec<f32>>>,
    /// The pairs fitted on, and their outcomes.
    sel: Vec<usize>,
    labels: Vec<bool>,
}

/// One group's episodes with each pseudo-query's shortlist, as gallery rows.
struct GroupEpisodes {
    name: String,
    is_new: Vec<Vec<bool>>,
    /// Per episode: (pseudo-query row, shortlisted gallery rows).
    lists: Vec<Vec<(usize, Vec<usize>)>>,
    /// Identity number of each gallery row (numbering within the group).
    identity_of: BTreeMap<usize, usize>,
}

/// Calibrates a fusion from the database alone, as [`crate::threshold`]
/// calibrates a cosine threshold, with every episode drawn inside one group
/// (`groups[i]` for gallery row `i`): the open-set episodes of `episodes` (the first
/// `params.calibration_episodes()` of them, if set)
/// split each group into pseudo-galleries and pseudo-queries; each
/// pseudo-query shortlists its top `params.shortlist()` pseudo-gallery rows
/// by cosine; every source (`scorers[s]`, scoring **gallery row × gallery
/// row**, with weight `params.weights()[s]`) scores each distinct
/// shortlisted pair once; each source's calibrator is fitted on those pairs
/// (positive = same identity), per group and on all groups together; each
/// pseudo-query's shortlist is re-ranked by the weighted mean of the
/// calibrated probabilities, and the threshold on the top fused score that
/// maximises the mean episode `sqrt(BAKS · BAUS)` is chosen from the grid
/// of `episodes` (give it a grid over `[0, 1]`): per group, and for the
/// default the mean over groups (as in [`crate::self_calibrate_groups`]).
///
/// With a projection in `episodes` ([`ValidSelfCalibrationParams::adapt`]),
/// every episode shortlists through a projection refitted on its
/// pseudo-gallery ([`crate::episodes::episode_view`]) and the first source's
/// pair scores are those projected cosines (the first source is then the
/// cosine of the embeddings; its scorer is not called). When the projection
/// re-ranks ([`crate::AdaptParams::rerank`]) the shortlist and those scores
/// are the re-ranked ones, the pseudo-gallery's neighbourhoods computed in
/// each episode.
///
/// Use the result with [`fuse_stacked`] (sources with these calibrators
/// and the calibration's stack, scoring query × gallery rows) and
/// [`crate::decide_topk`] with the calibration's
/// [`FusionCalibration::rule`] at the group's threshold.
pub fn self_calibrate_fusion_groups<S: AsRef<str>>(
    gallery: &Gallery,
    groups: &[S],
    scorers: &[&dyn PairScorer],
    params: &ValidFusionParams,
    episodes: &ValidSelfCalibrationParams,
) -> Result<FusionGroupCalibration> {
    check::same_len("fusion weights", scorers.len(), params.weights().len())?;
    let weights = params.weights();
    let labels = labels(gallery)?;
    let rerank = episodes.adapt().and_then(ValidAdaptParams::rerank);
    let mut unique: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut order: Vec<(usize, usize)> = Vec::new();
    // The cosine of each pair in the first episode that shortlisted it (the
    // projected cosine when the episodes adapt the embeddings).
    let mut episode_cosine: Vec<f32> = Vec::new();
    let mut prepared: Vec<GroupEpisodes> = Vec::new();
    let mut skipped = BTreeMap::new();
    for (name, idx) in rows_by_group(gallery, groups)? {
        let sub_labels: Vec<&str> = idx.iter().map(|&r| labels[r]).collect();
        let sub = gallery.select_rows(&idx)?;
        let eps = match gallery_episodes(&sub, &sub_labels, episodes) {
            Ok(mut e) => {
                if let Some(n) = params.calibration_episodes() {
                    e.truncate(n);
                }
                e
            }
            Err(OpensetError::Episodes(reason)) => {
                skipped.insert(name, reason);
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut lists = Vec::with_capacity(eps.len());
        for ep in &eps {
            let (pseudo, q) = episode_view(&sub, &sub_labels, ep, episodes.adapt())?;
            let top =
                crate::rerank::search(&pseudo, q.view(), params.shortlist(), rerank.as_ref())?;
            let mut one = Vec::with_capacity(ep.queries.len());
            for (row, (cand, cos)) in top
                .indices
                .outer_iter()
                .zip(top.scores.outer_iter())
                .enumerate()
            {
                let q = idx[ep.queries[row]];
                let cands: Vec<usize> = cand.iter().map(|&g| idx[ep.gallery[g]]).collect();
                for (&g, &c) in cands.iter().zip(cos.iter()) {
                    unique.entry((q, g)).or_insert_with(|| {
                        order.push((q, g));
                        episode_cosine.push(c);
                        order.len() - 1
                    });
                }
                one.push((q, cands));
            }
            lists.push(one);
        }
        let numbers = identity_numbers(&sub_labels);
        prepared.push(GroupEpisodes {
            name,
            is_new: eps.into_iter().map(|e| e.is_new).collect(),
            lists,
            identity_of: idx.iter().copied().zip(numbers).collect(),
        });
    }
    if prepared.is_empty() {
        return Err(no_group_calibrates(&skipped));
    }
    let pairs = order;
    let same: Vec<bool> = pairs.iter().map(|&(q, g)| labels[q] == labels[g]).collect();
    let raw: Vec<Vec<f32>> = scorers
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            if i == 0 && episodes.adapt().is_some() {
                // Projections are refitted per episode, so the first source
                // (the cosine) is read from the episode that shortlisted the
                // pair: a projection its pseudo-query never shaped.
                Ok(episode_cosine.clone())
            } else {
                checked_scores(s, &pairs)
            }
        })
        .collect::<Result<_>>()?;
    // Calibrators fitted on the pairs `keep` selects, and every pair's
    // calibrated probability per source (`None` for a source of weight 0).
    let fit = |keep: &dyn Fn(usize) -> bool| -> Result<FittedSources> {
        let sel: Vec<usize> = (0..pairs.len()).filter(|&e| keep(e)).collect();
        let y: Vec<bool> = sel.iter().map(|&e| same[e]).collect();
        let mut cals = Vec::with_capacity(raw.len());
        let mut probs = Vec::with_capacity(raw.len());
        for (r, &w) in raw.iter().zip(weights) {
            let x: Vec<f32> = sel.iter().map(|&e| r[e]).collect();
            let cal = Calibrator::fit(params.method(), &x, &y)?;
            probs.push((w > 0.0).then(|| r.iter().map(|&v| cal.probability(v)).collect()));
            cals.push(cal);
        }
        Ok(FittedSources {
            calibrators: cals,
            probs,
            sel,
            labels: y,
        })
    };
    // The fused score of every pair under one combination (the stack
    // fitted on the pairs `f` was fitted on).
    let combined = |f: &FittedSources, how: Combine| -> Result<(Option<LogisticStack>, Vec<f64>)> {
        let stack = if how == Combine::Mean {
            None
        } else {
            let on_sel: Vec<Vec<f32>> = f
                .probs
                .iter()
                .flatten()
                .map(|p| f.sel.iter().map(|&e| p[e]).collect())
                .collect();
            Some(LogisticStack::fit(&on_sel, &f.labels)?)
        };
        let fused = fused_scores(&f.probs, weights, stack.as_ref(), pairs.len());
        Ok((stack, fused))
    };
    let tried: Vec<Combine> = match params.combine() {
        Combine::Auto => vec![Combine::Mean, Combine::Logistic],
        c => vec![c],
    };
    // Each combination's calibration from the pairs `keep` selects and the
    // curves `curves` draws under a fused score; the best episode score
    // wins, the earlier of equals.
    let calibrate = |keep: &dyn Fn(usize) -> bool, curves: &CurvesOf<'_>| -> Result<Calibrated> {
        let f = fit(keep)?;
        let mut best: Option<(Option<LogisticStack>, Rule, SelfCalibration)> = None;
        let mut trials = Vec::with_capacity(tried.len() * params.rules().len());
        for &how in &tried {
            let (stack, fused) = combined(&f, how)?;
            for rule in params.rules() {
                let cal = summarise(&curves(&fused, rule)?, episodes.grid());
                trials.push(FusionTrial {
                    combine: how,
                    rule: *rule,
                    score: cal.score_mean,
                });
                if best
                    .as_ref()
                    .is_none_or(|(_, _, b)| cal.score_mean > b.score_mean)
                {
                    best = Some((stack.clone(), *rule, cal));
                }
            }
        }
        let (stack, rule, cal) = best.ok_or_else(|| OpensetError::InvalidParam {
            name: "combine",
            reason: "no combination to try".into(),
        })?;
        Ok((f, stack, rule, cal, trials))
    };
    // A group's episode curves under the fused scores `fused`, each
    // pseudo-query decided by `rule` over its shortlist ranked by them.
    let curves_of = |g: &GroupEpisodes, fused: &[f64], rule: &Rule| -> Result<Vec<EpisodeCurve>> {
        let mut runs: Vec<Vec<EpisodeQuery>> = Vec::with_capacity(g.lists.len());
        for (one, is_new) in g.lists.iter().zip(&g.is_new) {
            let mut run = Vec::with_capacity(one.len());
            for ((q, cands), &is_new) in one.iter().zip(is_new) {
                // Ranked by fused score; ties keep the cosine order.
                let mut ranked: Vec<(usize, f32)> = cands
                    .iter()
                    .map(|&c| (c, unique.get(&(*q, c)).map_or(0.0, |&e| fused[e]) as f32))
                    .collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                let idx: Vec<usize> = ranked.iter().map(|r| r.0).collect();
                let sc: Vec<f32> = ranked.iter().map(|r| r.1).collect();
                let (correct, score) = match rule.candidate(&idx, &sc, &labels)? {
                    Some((c, f)) => (labels[c] == labels[*q], f),
                    None => (false, f32::NEG_INFINITY),
                };
                run.push(EpisodeQuery {
                    identity: g.identity_of.get(q).copied().unwrap_or_default(),
                    is_new,
                    correct,
                    score,
                });
            }
            runs.push(run);
        }
        Ok(episode_curves(&runs, episodes.grid()))
    };
    let group_of_pair: Vec<usize> = pairs
        .iter()
        .map(|(q, _)| {
            prepared
                .iter()
                .position(|g| g.identity_of.contains_key(q))
                .unwrap_or_default()
        })
        .collect();
    let counts = |keep: &dyn Fn(usize) -> bool| {
        let sel: Vec<usize> = (0..pairs.len()).filter(|&e| keep(e)).collect();
        (sel.len(), sel.iter().filter(|&&e| same[e]).count())
    };
    let mut per_group = BTreeMap::new();
    for (gi, g) in prepared.iter().enumerate() {
        let keep = |e: usize| group_of_pair[e] == gi;
        let (f, stack, rule, self_calibration, trials) =
            calibrate(&keep, &|fused: &[f64], rule: &Rule| {
                curves_of(g, fused, rule)
            })?;
        let (n, positives) = counts(&keep);
        per_group.insert(
            g.name.clone(),
            FusionCalibration {
                calibrators: f.calibrators,
                self_calibration,
                pairs: n,
                positives,
                stack,
                rule,
                trials,
            },
        );
    }
    // One group: its pairs are all the pairs and pooling its curves gives
    // them back, so the pooled calibration is the group's (not redone).
    let only = match prepared.as_slice() {
        [_] => per_group.values().next().cloned(),
        _ => None,
    };
    let all = match only {
        Some(c) => c,
        None => {
            let (f, stack, rule, self_calibration, trials) =
                calibrate(&|_| true, &|fused: &[f64], rule: &Rule| {
                    let pooled = prepared
                        .iter()
                        .map(|g| curves_of(g, fused, rule))
                        .collect::<Result<Vec<_>>>()?;
                    Ok(pool_curves(&pooled))
                })?;
            FusionCalibration {
                calibrators: f.calibrators,
                self_calibration,
                pairs: pairs.len(),
                positives: same.iter().filter(|&&s| s).count(),
                stack,
                rule,
                trials,
            }
        }
    };
    let mut thresholds = Thresholds::new(all.self_calibration.threshold)?;
    for (g, c) in &per_group {
        thresholds = thresholds.with_group(g, c.self_calibration.threshold)?;
    }
    Ok(FusionGroupCalibration {
        thresholds,
        all,
        per_group,
        skipped,
    })
}

/// [`self_calibrate_fusion_groups`] with the whole gallery as one group.
pub fn self_calibrate_fusion(
    gallery: &Gallery,
    scorers: &[&dyn PairScorer],
    params: &ValidFusionParams,
    episodes: &ValidSelfCalibrationParams,
) -> Result<FusionCalibration> {
    let groups = vec![""; gallery.len()];
    Ok(self_calibrate_fusion_groups(gallery, &groups, scorers, params, episodes)?.all)
}

/// Shortlists the top `shortlist` gallery rows of each query by cosine on
/// the first embedding (`queries` against `gallery`), then [`fuse`]s.
pub fn fuse_embeddings(
    queries: ArrayView2<'_, f32>,
    gallery: ArrayView2<'_, f32>,
    shortlist: usize,
    sources: &[FusionSource<'_>],
) -> Result<TopK> {
    if shortlist == 0 {
        return Err(OpensetError::InvalidParam {
            name: "shortlist",
            reason: "must be at least 1".into(),
        });
    }
    check_sources(sources)?;
    if gallery.nrows() == 0 {
        return Err(OpensetError::EmptyGallery);
    }
    check::queries(queries, gallery.ncols())?;
    check::finite_2d(gallery, "gallery embeddings")?;
    let top = exact_topk(queries, gallery, shortlist)?;
    fuse(&top, sources)
}
