//! Learned matching as a pair scorer of the open-set fusion.
//!
//! [`GlueScorer`] is a [`reid_openset::PairScorer`]: the score of a
//! (query, gallery) pair is the number of matches its [`PairMatcher`]
//! (LightGlue) finds with a confidence above
//! [`ScoreParams::min_confidence`] (wildlife-tools' rule, 0.5 by default),
//! or, with [`PairScore::Inliers`], the RANSAC inliers among them
//! (`reid-local`'s RANSAC). The pairs of one query go to the matcher
//! together, in batches of [`ScoreParams::batch_size`] gallery images.

use std::collections::HashMap;
use std::sync::Mutex;

use reid_core::ParamGuard;
use reid_local::{Features, RansacParams, ValidRansacParams, ransac};
use reid_openset::PairScorer;

use crate::error::{GlueError, Result};

/// Matches between one image's keypoints (`a`) and another's (`b`): for each
/// match, `(index in a, index in b, confidence)`.
pub type PairMatches = Vec<(usize, usize, f32)>;

/// Something that matches the keypoints of one image against those of
/// several others at once (LightGlue, LighterGlue).
pub trait PairMatcher {
    /// A name for errors and reports.
    fn name(&self) -> &str;
    /// The matches of `query` with each of `others`, in order.
    fn match_one_to_many(&self, query: &Features, others: &[&Features])
    -> Result<Vec<PairMatches>>;
}

/// What the score of a pair counts.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum PairScore {
    /// Matches above the confidence threshold.
    #[default]
    Matches,
    /// RANSAC inliers among those matches.
    Inliers,
}

/// How pairs are scored.
#[derive(Debug, Clone)]
pub struct ScoreParams {
    min_confidence: f32,
    score: PairScore,
    ransac: RansacParams,
    batch_size: usize,
}

impl Default for ScoreParams {
    fn default() -> Self {
        ScoreParams {
            min_confidence: 0.5,
            score: PairScore::Matches,
            ransac: RansacParams::default(),
            batch_size: 16,
        }
    }
}

impl ScoreParams {
    reid_core::setters! {
        /// A match counts when its confidence is above this; in `[0, 1)`,
        /// default 0.5 (WildFusion's count threshold).
        min_confidence: f32,
        /// What the score counts; default [`PairScore::Matches`].
        score: PairScore,
        /// RANSAC for [`PairScore::Inliers`]; default `reid-local`'s.
        ransac: RansacParams,
        /// Gallery images matched with one query per matcher call; 1 to
        /// 1024, default 16.
        batch_size: usize,
    }
}

/// [`ScoreParams`], checked.
#[derive(Debug, Clone)]
pub struct ValidScoreParams {
    params: ScoreParams,
    ransac: ValidRansacParams,
}

impl ParamGuard for ScoreParams {
    type Checked = ValidScoreParams;
    type Error = GlueError;

    fn check_ref(&self) -> Result<()> {
        if !(self.min_confidence.is_finite() && (0.0..1.0).contains(&self.min_confidence)) {
            return Err(GlueError::param(
                "min_confidence",
                format!("must be in [0, 1), got {}", self.min_confidence),
            ));
        }
        if !(1..=1024).contains(&self.batch_size) {
            return Err(GlueError::param(
                "batch_size",
                format!("must be in 1..=1024, got {}", self.batch_size),
            ));
        }
        self.ransac.check_ref()?;
        Ok(())
    }

    fn check(self) -> Result<ValidScoreParams> {
        self.check_ref()?;
        let ransac = self.ransac.check()?;
        Ok(ValidScoreParams {
            params: self,
            ransac,
        })
    }
}

impl ValidScoreParams {
    /// The checked values.
    pub fn get(&self) -> &ScoreParams {
        &self.params
    }
}

/// The score of one pair from its matches.
pub fn pair_score(
    a: &Features,
    b: &Features,
    matches: &PairMatches,
    params: &ValidScoreParams,
) -> Result<f32> {
    let kept = matches
        .iter()
        .filter(|m| m.2 > params.params.min_confidence);
    match params.params.score {
        PairScore::Matches => Ok(kept.count() as f32),
        PairScore::Inliers => {
            let (ka, kb) = (a.keypoints(), b.keypoints());
            let mut src = Vec::new();
            let mut dst = Vec::new();
            for &(i, j, _) in kept {
                let (Some(p), Some(q)) = (ka.get(i), kb.get(j)) else {
                    return Err(GlueError::Shape {
                        what: "match indices".into(),
                        expected: format!("below {} and {}", ka.len(), kb.len()),
                        got: format!("({i}, {j})"),
                    });
                };
                src.push([f64::from(p.x), f64::from(p.y)]);
                dst.push([f64::from(q.x), f64::from(q.y)]);
            }
            Ok(ransac(&src, &dst, &params.ransac)?.inliers.len() as f32)
        }
    }
}

/// A [`PairScorer`] over query and gallery features and a matcher; pairs
/// already scored are remembered.
pub struct GlueScorer<'a> {
    name: String,
    matcher: &'a dyn PairMatcher,
    queries: &'a [Features],
    gallery: &'a [Features],
    params: ValidScoreParams,
    known: Mutex<HashMap<(usize, usize), f32>>,
}

impl<'a> GlueScorer<'a> {
    /// Scores query row `q` (`queries[q]`) against gallery row `g`
    /// (`gallery[g]`) with `matcher`.
    pub fn new(
        matcher: &'a dyn PairMatcher,
        queries: &'a [Features],
        gallery: &'a [Features],
        params: ValidScoreParams,
    ) -> Self {
        GlueScorer {
            name: matcher.name().to_string(),
            matcher,
            queries,
            gallery,
            params,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Renames the scorer (reports, errors).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How many distinct pairs have been scored.
    pub fn known_pairs(&self) -> usize {
        self.known.lock().map(|k| k.len()).unwrap_or(0)
    }

    fn score_all(
        &self,
        pairs: &[(usize, usize)],
    ) -> std::result::Result<Vec<f32>, (usize, String)> {
        let mut known = self.known.lock().map_err(|_| {
            (
                0,
                "the score memo was poisoned by an earlier panic".to_string(),
            )
        })?;
        // The pairs still to score, grouped by query (first-seen order).
        let mut todo: Vec<(usize, Vec<(usize, usize)>)> = Vec::new();
        let mut slot: HashMap<usize, usize> = HashMap::new();
        for (i, &(q, g)) in pairs.iter().enumerate() {
            if q >= self.queries.len() || g >= self.gallery.len() {
                return Err((
                    i,
                    format!(
                        "pair ({q}, {g}) outside [{}, {}]",
                        self.queries.len(),
                        self.gallery.len()
                    ),
                ));
            }
            if known.contains_key(&(q, g)) {
                continue;
            }
            let k = *slot.entry(q).or_insert_with(|| {
                todo.push((q, Vec::new()));
                todo.len() - 1
            });
            if !todo[k].1.iter().any(|&(_, gg)| gg == g) {
                todo[k].1.push((i, g));
            }
        }
        for (q, gs) in todo {
            let query = &self.queries[q];
            for chunk in gs.chunks(self.params.params.batch_size) {
                let others: Vec<&Features> = chunk.iter().map(|&(_, g)| &self.gallery[g]).collect();
                let first = chunk[0].0;
                let matches = self
                    .matcher
                    .match_one_to_many(query, &others)
                    .map_err(|e| (first, e.to_string()))?;
                if matches.len() != chunk.len() {
                    return Err((
                        first,
                        format!(
                            "{} gave {} results for {} pairs",
                            self.matcher.name(),
                            matches.len(),
                            chunk.len()
                        ),
                    ));
                }
                for ((i, g), m) in chunk.iter().zip(&matches) {
                    let s = pair_score(query, &self.gallery[*g], m, &self.params)
                        .map_err(|e| (*i, e.to_string()))?;
                    known.insert((q, *g), s);
                }
            }
        }
        Ok(pairs.iter().map(|p| known[p]).collect())
    }
}

impl PairScorer for GlueScorer<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, query: usize, gallery: usize) -> std::result::Result<f32, String> {
        self.score_all(&[(query, gallery)])
            .map(|v| v[0])
            .map_err(|(_, e)| e)
    }

    fn score_many(
        &self,
        pairs: &[(usize, usize)],
    ) -> std::result::Result<Vec<f32>, (usize, String)> {
        self.score_all(pairs)
    }
}
