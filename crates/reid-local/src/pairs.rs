//! Scoring image pairs: descriptor matching, then RANSAC; in parallel over
//! many pairs.

use rayon::prelude::*;

use crate::error::{LocalError, Result};
use crate::features::Features;
use crate::geometry::{Model, Point};
use crate::matching::{Match, MatchScratch, check_dims, match_unchecked};
use crate::params::ValidLocalParams;
use crate::ransac::ransac_unchecked;

/// The verified matches of one image pair.
#[derive(Debug, Clone, PartialEq)]
pub struct PairMatch {
    /// Tentative matches (mutual nearest neighbours passing the ratio test).
    pub matches: usize,
    /// Matches consistent with [`PairMatch::model`]: the pair's score.
    pub inliers: usize,
    /// `inliers / matches` (0 when there are no matches).
    pub inlier_ratio: f32,
    /// The model mapping the first image's scaled frame to the second's;
    /// `None` with fewer matches than a minimal sample.
    pub model: Option<Model>,
    /// The inlier matches, ordered by the first image's keypoint index.
    pub inlier_matches: Vec<Match>,
    /// RANSAC samples drawn.
    pub iterations: u32,
}

impl PairMatch {
    /// The score used for ranking and fusion: the inlier count.
    pub fn score(&self) -> f32 {
        self.inliers as f32
    }
}

/// Matches and verifies one pair of images (`a` is the first, whose
/// keypoints the model maps onto `b`'s). Errors only when the descriptor
/// lengths differ.
pub fn match_pair(a: &Features, b: &Features, params: &ValidLocalParams) -> Result<PairMatch> {
    check_dims(a, b)?;
    Ok(match_pair_with(a, b, params, &mut MatchScratch::default()))
}

pub(crate) fn match_pair_with(
    a: &Features,
    b: &Features,
    params: &ValidLocalParams,
    scratch: &mut MatchScratch,
) -> PairMatch {
    let matches = match_unchecked(
        a.descriptors(),
        b.descriptors(),
        a.dim(),
        params.matching(),
        scratch,
    );
    let (ka, kb) = (a.keypoints(), b.keypoints());
    let mut src: Vec<Point> = Vec::with_capacity(matches.len());
    let mut dst: Vec<Point> = Vec::with_capacity(matches.len());
    for m in &matches {
        if let (Some(p), Some(q)) = (ka.get(m.a as usize), kb.get(m.b as usize)) {
            src.push([f64::from(p.x), f64::from(p.y)]);
            dst.push([f64::from(q.x), f64::from(q.y)]);
        }
    }
    let r = ransac_unchecked(&src, &dst, params.ransac());
    let inlier_matches: Vec<Match> = r
        .inliers
        .iter()
        .filter_map(|&i| matches.get(i).copied())
        .collect();
    let n = matches.len();
    PairMatch {
        matches: n,
        inliers: inlier_matches.len(),
        inlier_ratio: if n == 0 {
            0.0
        } else {
            inlier_matches.len() as f32 / n as f32
        },
        model: r.model,
        inlier_matches,
        iterations: r.iterations,
    }
}

/// Scores `pairs` of (`a` index, `b` index) in parallel on the current rayon
/// pool; the result is in the order of `pairs` and identical to scoring them
/// one by one. Every index and descriptor length is checked first.
pub fn score_pairs(
    a: &[Features],
    b: &[Features],
    pairs: &[(usize, usize)],
    params: &ValidLocalParams,
) -> Result<Vec<PairMatch>> {
    for &(i, j) in pairs {
        let fa = a.get(i).ok_or(LocalError::OutOfRange {
            what: "first image",
            index: i,
            len: a.len(),
        })?;
        let fb = b.get(j).ok_or(LocalError::OutOfRange {
            what: "second image",
            index: j,
            len: b.len(),
        })?;
        check_dims(fa, fb)?;
    }
    Ok(pairs
        .par_iter()
        .map_init(MatchScratch::default, |scratch, &(i, j)| {
            match (a.get(i), b.get(j)) {
                (Some(fa), Some(fb)) => match_pair_with(fa, fb, params, scratch),
                // Checked above.
                _ => PairMatch {
                    matches: 0,
                    inliers: 0,
                    inlier_ratio: 0.0,
                    model: None,
                    inlier_matches: Vec::new(),
                    iterations: 0,
                },
            }
        })
        .collect())
}
