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
//! open-set episodes as [`crate::selfcal`].

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayView2, Axis};
use reid_index::{TopK, exact_topk};

use crate::calibrate::{CalibrationMethod, Calibrator};
use crate::decision::Gallery;
use crate::selfcal::{
    EpisodeQuery, SelfCalibration, SelfCalibrationParams, identity_numbers, simulate_episodes,
    summarise_episodes,
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
    check_sources(sources)?;
    let total: f64 = sources.iter().map(|s| f64::from(s.weight)).sum();
    let (q, b) = shortlist.indices.dim();
    let pairs: Vec<(usize, usize)> = shortlist
        .indices
        .outer_iter()
        .enumerate()
        .flat_map(|(qi, row)| row.iter().map(move |&g| (qi, g)).collect::<Vec<_>>())
        .collect();
    let mut fused = vec![0.0f64; pairs.len()];
    for s in sources.iter().filter(|s| s.weight != 0.0) {
        let raw = checked_scores(s.scorer, &pairs)?;
        for (acc, &r) in fused.iter_mut().zip(&raw) {
            let p = s.calibrator.map_or(r, |c| c.probability(r));
            *acc += f64::from(s.weight) * f64::from(p);
        }
    }
    let mut indices = Array2::zeros((q, b));
    let mut scores = Array2::zeros((q, b));
    for qi in 0..q {
        let mut cand: Vec<(usize, f32)> = (qi * b..(qi + 1) * b)
            .map(|e| (pairs[e].1, (fused[e] / total) as f32))
            .collect();
        cand.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        for (j, (g, s)) in cand.into_iter().enumerate() {
            indices[[qi, j]] = g;
            scores[[qi, j]] = s;
        }
    }
    Ok(TopK { indices, scores })
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

/// A fusion calibrated from the database alone
/// ([`self_calibrate_fusion`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FusionCalibration {
    /// One calibrator per source, in the order given: score → probability
    /// that a shortlisted database pair shows the same individual.
    pub calibrators: Vec<Calibrator>,
    /// The threshold on the fused probability (known iff the re-ranked top
    /// candidate's fused score is at least this), with its episode report.
    pub selfcal: SelfCalibration,
    /// Distinct database pairs each source scored.
    pub pairs: usize,
    /// How many of them show the same individual.
    pub positives: usize,
}

/// Calibrates a fusion from the database alone, as [`crate::selfcal`]
/// calibrates a cosine threshold: the open-set episodes of `params` split
/// the database (`gallery`) into pseudo-galleries and pseudo-queries; each
/// pseudo-query shortlists its top `shortlist` pseudo-gallery rows by
/// cosine; every source (`scorers[s]`, scoring **database row × database
/// row**, with weight `weights[s]`) scores each distinct shortlisted pair
/// once; each source's `method` calibrator is fitted on those pairs
/// (positive = same identity); each pseudo-query's shortlist is re-ranked by
/// the weighted mean of the calibrated probabilities, and the threshold on
/// the top fused score that maximises the mean episode `sqrt(BAKS · BAUS)`
/// is chosen from `params`' grid (give it a grid over `[0, 1]`).
///
/// Use the result with [`fuse`] (sources with these calibrators, scoring
/// query × database rows) and [`crate::decide_topk`] with [`crate::Rule::Top1`]
/// at [`FusionCalibration::selfcal`]'s threshold.
pub fn self_calibrate_fusion(
    gallery: &Gallery,
    scorers: &[&dyn PairScorer],
    weights: &[f32],
    shortlist: usize,
    method: CalibrationMethod,
    params: &SelfCalibrationParams,
) -> Result<FusionCalibration> {
    check::same_len("fusion weights", scorers.len(), weights.len())?;
    if shortlist == 0 {
        return Err(OpensetError::InvalidParam {
            name: "shortlist",
            reason: "must be at least 1".into(),
        });
    }
    let probe: Vec<FusionSource<'_>> = scorers
        .iter()
        .zip(weights)
        .map(|(&scorer, &weight)| FusionSource {
            scorer,
            calibrator: None,
            weight,
        })
        .collect();
    check_sources(&probe)?;
    let labels = gallery.labels();
    let episodes = simulate_episodes(labels, params)?;
    let identity_of = identity_numbers(labels);
    let emb = gallery.embeddings();
    // Each pseudo-query's shortlist, as database rows.
    let mut lists: Vec<Vec<(usize, Vec<usize>)>> = Vec::with_capacity(episodes.len());
    let mut unique: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for ep in &episodes {
        let g_rows = emb.select(Axis(0), &ep.gallery);
        let q_rows = emb.select(Axis(0), &ep.queries);
        let top = exact_topk(q_rows.view(), g_rows.view(), shortlist)?;
        let mut one = Vec::with_capacity(ep.queries.len());
        for (row, idx) in top.indices.outer_iter().enumerate() {
            let q = ep.queries[row];
            let cands: Vec<usize> = idx.iter().map(|&g| ep.gallery[g]).collect();
            for &g in &cands {
                let next = unique.len();
                unique.entry((q, g)).or_insert(next);
            }
            one.push((q, cands));
        }
        lists.push(one);
    }
    let mut pairs = vec![(0, 0); unique.len()];
    for (&pair, &e) in &unique {
        pairs[e] = pair;
    }
    let same: Vec<bool> = pairs.iter().map(|&(q, g)| labels[q] == labels[g]).collect();
    let mut calibrators = Vec::with_capacity(scorers.len());
    let mut fused = vec![0.0f64; pairs.len()];
    let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    for (&scorer, &w) in scorers.iter().zip(weights) {
        let raw = checked_scores(scorer, &pairs)?;
        let cal = Calibrator::fit(method, &raw, &same)?;
        for (acc, &r) in fused.iter_mut().zip(&raw) {
            *acc += f64::from(w) * f64::from(cal.probability(r));
        }
        calibrators.push(cal);
    }
    let runs: Vec<Vec<EpisodeQuery>> = episodes
        .iter()
        .zip(&lists)
        .map(|(ep, one)| {
            one.iter()
                .zip(&ep.is_new)
                .map(|((q, cands), &is_new)| {
                    // Best fused score; ties keep the cosine order.
                    let mut best: Option<(usize, f64)> = None;
                    for &g in cands {
                        let f = unique.get(&(*q, g)).map_or(0.0, |&e| fused[e] / total);
                        if best.is_none_or(|(_, b)| f > b) {
                            best = Some((g, f));
                        }
                    }
                    let (correct, score) = match best {
                        Some((g, f)) => (labels[g] == labels[*q], f as f32),
                        None => (false, f32::NEG_INFINITY),
                    };
                    EpisodeQuery {
                        identity: identity_of[*q],
                        is_new,
                        correct,
                        score,
                    }
                })
                .collect()
        })
        .collect();
    Ok(FusionCalibration {
        calibrators,
        selfcal: summarise_episodes(runs, params.grid()),
        positives: same.iter().filter(|&&s| s).count(),
        pairs: pairs.len(),
    })
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
