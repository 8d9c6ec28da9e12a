//! Probability calibration: a similarity mapped to the probability that
//! the match is right (not to be confused with the self-calibrated
//! thresholds of [`crate::threshold`]).
//!
//! Two monotone maps, fitted on 0/1 outcomes:
//!
//! - [`IsotonicModel`]: isotonic regression by pool-adjacent-violators,
//!   predicting by linear interpolation between the fitted points and
//!   clipping outside them (as `sklearn.isotonic.IsotonicRegression(
//!   out_of_bounds="clip")`);
//! - [`PlattModel`]: Platt's sigmoid `P = 1 / (1 + exp(a * s + b))`, fitted
//!   by Newton's method on the log loss with Platt's smoothed targets
//!   (`(N+ + 1) / (N+ + 2)` for positives, `1 / (N- + 2)` for negatives), as
//!   `sklearn.calibration._sigmoid_calibration`.
//!
//! # Samples from the database
//! [`database_samples`] draws the open-set episodes of [`crate::episodes`]
//! and, for **every** pseudo-query of every episode, records the rule's score
//! (for [`Rule::Top1`] the top-1 similarity) and the outcome **positive =
//! the rule's candidate identity is the query's true identity** (so a
//! correct "known" answer at any threshold up to that score); negative
//! otherwise, which includes every pseudo-new query (its identity is not in
//! the episode's gallery, so no candidate can be right). The calibrated
//! probability is thus `P(candidate is right | score)`.

use reid_index::Gallery;

use crate::decision::Rule;
use crate::episodes::{
    ValidSelfCalibrationParams, gallery_episodes, identity_numbers, labels, run_episode,
};
use crate::{OpensetError, Result, check};

fn check_samples(scores: &[f32], labels: &[bool]) -> Result<()> {
    check::same_len("calibration labels", scores.len(), labels.len())?;
    if scores.is_empty() {
        return Err(OpensetError::Empty {
            what: "calibration samples",
        });
    }
    check::finite_1d(scores, "calibration scores")
}

/// Isotonic (non-decreasing) map fitted by pool-adjacent-violators.
#[derive(Debug, Clone, PartialEq)]
pub struct IsotonicModel {
    /// Distinct scores, ascending.
    x: Vec<f64>,
    /// Fitted probability at each of them, non-decreasing.
    y: Vec<f64>,
}

impl IsotonicModel {
    /// Fits on `scores` with outcomes `labels` (equal scores are pooled
    /// first, weighted by their count).
    pub fn fit(scores: &[f32], labels: &[bool]) -> Result<Self> {
        check_samples(scores, labels)?;
        let mut pairs: Vec<(f64, f64)> = scores
            .iter()
            .zip(labels)
            .map(|(&s, &l)| (f64::from(s), if l { 1.0 } else { 0.0 }))
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Distinct x with weighted mean y.
        let mut xs: Vec<f64> = Vec::new();
        let mut blocks: Vec<(f64, f64, usize)> = Vec::new(); // (sum y, weight, points)
        for (x, y) in pairs {
            if xs.last() == Some(&x) {
                if let Some(b) = blocks.last_mut() {
                    b.0 += y;
                    b.1 += 1.0;
                }
            } else {
                xs.push(x);
                blocks.push((y, 1.0, 1));
            }
        }
        // Pool adjacent violators: a stack of blocks with increasing means.
        let mut stack: Vec<(f64, f64, usize)> = Vec::with_capacity(blocks.len());
        for b in blocks {
            let mut cur = b;
            while let Some(&top) = stack.last() {
                if top.0 / top.1 >= cur.0 / cur.1 {
                    stack.pop();
                    cur = (top.0 + cur.0, top.1 + cur.1, top.2 + cur.2);
                } else {
                    break;
                }
            }
            stack.push(cur);
        }
        let mut y = Vec::with_capacity(xs.len());
        for (s, w, n) in stack {
            y.extend(std::iter::repeat_n(s / w, n));
        }
        Ok(Self { x: xs, y })
    }

    /// The fitted probability at `score` (interpolated, clipped).
    pub fn predict(&self, score: f32) -> f32 {
        let s = f64::from(score);
        let (Some(&x0), Some(&xn)) = (self.x.first(), self.x.last()) else {
            return 0.0;
        };
        let y0 = self.y.first().copied().unwrap_or_default();
        let yn = self.y.last().copied().unwrap_or_default();
        if s.is_nan() {
            return f32::NAN;
        }
        if s <= x0 {
            return y0 as f32;
        }
        if s >= xn {
            return yn as f32;
        }
        // First knot strictly above s.
        let hi = self.x.partition_point(|&v| v <= s);
        let lo = hi.saturating_sub(1);
        match (
            self.x.get(lo),
            self.x.get(hi),
            self.y.get(lo),
            self.y.get(hi),
        ) {
            (Some(&xa), Some(&xb), Some(&ya), Some(&yb)) if xb > xa => {
                (ya + (yb - ya) * (s - xa) / (xb - xa)) as f32
            }
            (_, _, Some(&ya), _) => ya as f32,
            _ => yn as f32,
        }
    }

    /// The fitted points `(score, probability)`.
    pub fn points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.x.iter().copied().zip(self.y.iter().copied())
    }
}

/// Platt's sigmoid `P = 1 / (1 + exp(a * s + b))` (a negative `a` makes it
/// increasing in `s`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlattModel {
    /// Slope (negative for scores where higher means more likely right).
    pub a: f64,
    /// Intercept.
    pub b: f64,
}

/// `log(1 + exp(z))` without overflow.
pub(crate) fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// One backtracking (Armijo) step of a Newton-type minimiser: from `theta`
/// along `dir` (whose directional derivative is `slope`, negative), the
/// first of steps 1, 1/2, 1/4, ... whose loss is finite and at most `cur +
/// 1e-4 · step · slope`; `None` when none above 1e-10 is.
pub(crate) fn armijo_step(
    theta: &[f64],
    dir: &[f64],
    slope: f64,
    cur: f64,
    loss: &dyn Fn(&[f64]) -> f64,
) -> Option<(Vec<f64>, f64)> {
    let mut step = 1.0;
    while step > 1e-10 {
        let next: Vec<f64> = theta.iter().zip(dir).map(|(t, d)| t + step * d).collect();
        let nl = loss(&next);
        if nl.is_finite() && nl <= cur + 1e-4 * step * slope {
            return Some((next, nl));
        }
        step *= 0.5;
    }
    None
}

impl PlattModel {
    /// Fits `a, b` on `scores` with outcomes `labels` (Newton's method with
    /// backtracking on the smoothed-target log loss; see the module docs).
    pub fn fit(scores: &[f32], labels: &[bool]) -> Result<Self> {
        check_samples(scores, labels)?;
        let f: Vec<f64> = scores.iter().map(|&s| f64::from(s)).collect();
        let n_pos = labels.iter().filter(|&&l| l).count() as f64;
        let n_neg = labels.len() as f64 - n_pos;
        let hi = (n_pos + 1.0) / (n_pos + 2.0);
        let lo = 1.0 / (n_neg + 2.0);
        let t: Vec<f64> = labels.iter().map(|&l| if l { hi } else { lo }).collect();
        // loss_i = log(1 + e^z) - (1 - t) z with z = a f + b.
        let loss = |a: f64, b: f64| -> f64 {
            f.iter()
                .zip(&t)
                .map(|(&fi, &ti)| {
                    let z = a * fi + b;
                    softplus(z) - (1.0 - ti) * z
                })
                .sum()
        };
        let mut a = 0.0;
        let mut b = ((n_neg + 1.0) / (n_pos + 1.0)).ln();
        let mut cur = loss(a, b);
        for _ in 0..200 {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (&fi, &ti) in f.iter().zip(&t) {
                let z = a * fi + b;
                let p = 1.0 / (1.0 + z.exp()); // P(positive)
                let d = ti - p; // d loss / d z
                let w = (p * (1.0 - p)).max(1e-300);
                ga += d * fi;
                gb += d;
                haa += w * fi * fi;
                hab += w * fi;
                hbb += w;
            }
            if ga.abs() < 1e-11 * f.len() as f64 && gb.abs() < 1e-11 * f.len() as f64 {
                break;
            }
            // Solve H [da, db] = -g with a tiny ridge.
            let (haa, hbb) = (haa + 1e-12, hbb + 1e-12);
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-300 {
                break;
            }
            let da = -(hbb * ga - hab * gb) / det;
            let db = -(haa * gb - hab * ga) / det;
            let Some((next, nl)) = armijo_step(
                &[a, b],
                &[da, db],
                ga * da + gb * db,
                cur,
                &|t: &[f64]| loss(t[0], t[1]),
            ) else {
                break;
            };
            (a, b, cur) = (next[0], next[1], nl);
        }
        Ok(Self { a, b })
    }

    /// The probability at `score`.
    pub fn predict(&self, score: f32) -> f32 {
        let z = self.a * f64::from(score) + self.b;
        (1.0 / (1.0 + z.exp())) as f32
    }
}

/// Which calibration map to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalibrationMethod {
    /// [`IsotonicModel`].
    Isotonic,
    /// [`PlattModel`].
    Platt,
}

/// A fitted similarity → probability map.
#[derive(Debug, Clone, PartialEq)]
pub enum Calibrator {
    /// Isotonic regression.
    Isotonic(IsotonicModel),
    /// Platt's sigmoid.
    Platt(PlattModel),
}

impl Calibrator {
    /// Fits `method` on `scores` and outcomes `labels`.
    pub fn fit(method: CalibrationMethod, scores: &[f32], labels: &[bool]) -> Result<Self> {
        Ok(match method {
            CalibrationMethod::Isotonic => Self::Isotonic(IsotonicModel::fit(scores, labels)?),
            CalibrationMethod::Platt => Self::Platt(PlattModel::fit(scores, labels)?),
        })
    }

    /// The probability at `score`.
    pub fn probability(&self, score: f32) -> f32 {
        match self {
            Self::Isotonic(m) => m.predict(score),
            Self::Platt(m) => m.predict(score),
        }
    }
}

/// Expected calibration error: probabilities put into `bins` equal-width
/// bins over `[0, 1]` (1.0 goes to the last bin); the sum over bins of
/// `(bin size / n) * |mean outcome - mean probability|`.
pub fn expected_calibration_error(probs: &[f32], labels: &[bool], bins: usize) -> Result<f64> {
    check_samples(probs, labels)?;
    if bins == 0 {
        return Err(OpensetError::InvalidParam {
            name: "bins",
            reason: "must be at least 1".into(),
        });
    }
    if let Some(col) = probs.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(OpensetError::InvalidParam {
            name: "probs",
            reason: format!("value at {col} is outside [0, 1]"),
        });
    }
    let mut acc = vec![(0.0f64, 0.0f64, 0usize); bins];
    for (&p, &l) in probs.iter().zip(labels) {
        let b = ((f64::from(p) * bins as f64) as usize).min(bins - 1);
        if let Some(e) = acc.get_mut(b) {
            e.0 += f64::from(p);
            e.1 += if l { 1.0 } else { 0.0 };
            e.2 += 1;
        }
    }
    let n = probs.len() as f64;
    Ok(acc
        .iter()
        .filter(|e| e.2 > 0)
        .map(|&(sp, sl, _)| (sl - sp).abs() / n)
        .sum())
}

/// Scores and outcomes drawn from database episodes (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationSamples {
    /// The rule's score of each pseudo-query.
    pub scores: Vec<f32>,
    /// Whether the rule's candidate was the true identity.
    pub correct: Vec<bool>,
    /// Whether the pseudo-query was pseudo-new.
    pub is_new: Vec<bool>,
}

/// Collects calibration samples from the episodes of `params` (its grid is
/// not used).
pub fn database_samples(
    gallery: &Gallery,
    rule: &Rule,
    params: &ValidSelfCalibrationParams,
) -> Result<CalibrationSamples> {
    rule.validate()?;
    let labels = labels(gallery)?;
    let episodes = gallery_episodes(gallery, &labels, params)?;
    let ids = identity_numbers(&labels);
    let mut out = CalibrationSamples {
        scores: Vec::new(),
        correct: Vec::new(),
        is_new: Vec::new(),
    };
    for ep in &episodes {
        for q in run_episode(gallery, &labels, &ids, rule, ep, params.adapt())? {
            out.scores.push(q.score);
            out.correct.push(q.correct);
            out.is_new.push(q.is_new);
        }
    }
    Ok(out)
}

/// A calibrator fitted on database episodes, with its quality.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationFit {
    /// The fitted map.
    pub calibrator: Calibrator,
    /// Expected calibration error on the fitting samples (in-sample), 10
    /// bins.
    pub ece: f64,
    /// Expected calibration error of the raw scores clipped to `[0, 1]`
    /// taken as probabilities, for comparison.
    pub ece_raw: f64,
    /// Number of samples.
    pub samples: usize,
    /// Number of positive samples.
    pub positives: usize,
}

/// Fits `method` on samples from database episodes and reports its
/// expected calibration error.
pub fn calibrate_from_database(
    gallery: &Gallery,
    rule: &Rule,
    params: &ValidSelfCalibrationParams,
    method: CalibrationMethod,
) -> Result<CalibrationFit> {
    let s = database_samples(gallery, rule, params)?;
    let calibrator = Calibrator::fit(method, &s.scores, &s.correct)?;
    let probs: Vec<f32> = s
        .scores
        .iter()
        .map(|&v| calibrator.probability(v))
        .collect();
    let raw: Vec<f32> = s.scores.iter().map(|&v| v.clamp(0.0, 1.0)).collect();
    Ok(CalibrationFit {
        ece: expected_calibration_error(&probs, &s.correct, 10)?,
        ece_raw: expected_calibration_error(&raw, &s.correct, 10)?,
        samples: s.scores.len(),
        positives: s.correct.iter().filter(|&&c| c).count(),
        calibrator,
    })
}
