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

use ndarray::{Array2, ArrayView2};
use reid_index::{TopK, exact_topk};

use crate::calibrate::Calibrator;
use crate::{OpensetError, Result, check};

/// Scores one (query, gallery item) pair; higher means more alike.
pub trait PairScorer {
    /// A name used in errors.
    fn name(&self) -> &str;
    /// The score of query row `query` against gallery row `gallery`; an
    /// `Err` carries a message (it becomes [`OpensetError::Scorer`]).
    fn score(&self, query: usize, gallery: usize) -> std::result::Result<f32, String>;
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
    let mut indices = Array2::zeros((q, b));
    let mut scores = Array2::zeros((q, b));
    for (qi, row) in shortlist.indices.outer_iter().enumerate() {
        let mut cand: Vec<(usize, f32)> = Vec::with_capacity(b);
        for &g in row {
            let mut acc = 0.0f64;
            for s in sources {
                if s.weight == 0.0 {
                    continue;
                }
                let raw = s
                    .scorer
                    .score(qi, g)
                    .map_err(|reason| OpensetError::Scorer {
                        source_name: s.scorer.name().to_owned(),
                        query: qi,
                        gallery: g,
                        reason,
                    })?;
                if !raw.is_finite() {
                    return Err(OpensetError::Scorer {
                        source_name: s.scorer.name().to_owned(),
                        query: qi,
                        gallery: g,
                        reason: format!("non-finite score {raw}"),
                    });
                }
                let p = s.calibrator.map_or(raw, |c| c.probability(raw));
                acc += f64::from(s.weight) * f64::from(p);
            }
            cand.push((g, (acc / total) as f32));
        }
        cand.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        for (j, (g, s)) in cand.into_iter().enumerate() {
            if let Some(v) = indices.get_mut((qi, j)) {
                *v = g;
            }
            if let Some(v) = scores.get_mut((qi, j)) {
                *v = s;
            }
        }
    }
    Ok(TopK { indices, scores })
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
