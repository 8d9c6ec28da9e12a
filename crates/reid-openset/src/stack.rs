//! Logistic stacking of calibrated sources: the fused probability that a
//! (query, candidate) pair shows the same animal is
//! `σ(b + Σ_s w_s · logit(p_s))`, where `p_s` is source `s`'s calibrated
//! probability (clipped to `[ε, 1 - ε]`, `ε` = [`LogisticStack::EPS`]) and
//! `w`, `b` are fitted by L2-regularised logistic regression on the same
//! database pairs that fit the calibrators. Where the weighted mean of
//! [`crate::fuse`] gives each source a fixed say, the stack learns how much
//! each is worth and yields a calibrated fused probability (the mean of two
//! calibrated probabilities is not one).
//!
//! The fit minimises `Σ_i [log(1 + e^{z_i}) - y_i z_i] + λ/2 |w|²` (the
//! intercept not penalised) by Newton's method with backtracking; `λ` is
//! [`LogisticStack::RIDGE`], small against the thousands of pairs a
//! calibration sees, there only to keep separable data finite.
//!
//! ```
//! use reid_openset::stack::LogisticStack;
//! // Source 0 says nothing; source 1 separates the outcomes.
//! let probs = vec![vec![0.5f32; 6], vec![0.1, 0.2, 0.3, 0.7, 0.8, 0.9]];
//! let labels = [false, false, true, false, true, true];
//! let s = LogisticStack::fit(&probs, &labels)?;
//! assert!(s.weights()[1] > 0.5);
//! assert!(s.predict(&[0.5, 0.9]) > s.predict(&[0.5, 0.1]));
//! # Ok::<(), reid_openset::OpensetError>(())
//! ```

use crate::probability::{armijo_step, softplus};
use crate::{OpensetError, Result, check};

/// A fitted logistic stack over `n` sources.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticStack {
    weights: Vec<f64>,
    intercept: f64,
}

fn logit(p: f32) -> f64 {
    let p = f64::from(p).clamp(LogisticStack::EPS, 1.0 - LogisticStack::EPS);
    (p / (1.0 - p)).ln()
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Solves `a x = b` for a small symmetric positive definite `a` (Cholesky);
/// `None` when it is not.
fn solve_spd(a: &[Vec<f64>], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = a[i][i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i][i] = d.sqrt();
            } else {
                l[i][j] = (a[i][j] - s) / l[j][j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i][k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i][i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k][i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i][i];
    }
    Some(x)
}

impl LogisticStack {
    /// Probabilities are clipped to `[EPS, 1 - EPS]` before the logit (an
    /// isotonic calibrator says 0 or 1 at its ends).
    pub const EPS: f64 = 1e-4;
    /// L2 penalty on the weights.
    pub const RIDGE: f64 = 1e-3;

    /// Fits on `probs[s][i]`, source `s`'s calibrated probability of pair
    /// `i`, with outcomes `labels[i]` (same animal). Errors on no source,
    /// sources of different lengths, no pair, a non-finite probability, or
    /// outcomes all equal.
    pub fn fit(probs: &[Vec<f32>], labels: &[bool]) -> Result<Self> {
        if probs.is_empty() {
            return Err(OpensetError::Empty {
                what: "sources to stack",
            });
        }
        for p in probs {
            check::same_len("stacked probabilities", labels.len(), p.len())?;
            check::finite_1d(p, "stacked probabilities")?;
        }
        if labels.is_empty() {
            return Err(OpensetError::Empty {
                what: "pairs to fit a stack on",
            });
        }
        let n_pos = labels.iter().filter(|&&l| l).count();
        if n_pos == 0 || n_pos == labels.len() {
            return Err(OpensetError::InvalidParam {
                name: "labels",
                reason: format!(
                    "a stack needs both outcomes among its {} pairs, got {n_pos} positive",
                    labels.len()
                ),
            });
        }
        let d = probs.len();
        // Features: logits, then 1 for the intercept.
        let x: Vec<Vec<f64>> = probs
            .iter()
            .map(|p| p.iter().map(|&v| logit(v)).collect())
            .collect();
        let y: Vec<f64> = labels.iter().map(|&l| f64::from(u8::from(l))).collect();
        let z_of = |theta: &[f64], i: usize| -> f64 {
            theta[d] + (0..d).map(|s| theta[s] * x[s][i]).sum::<f64>()
        };
        let loss = |theta: &[f64]| -> f64 {
            let data: f64 = (0..y.len())
                .map(|i| {
                    let z = z_of(theta, i);
                    softplus(z) - y[i] * z
                })
                .sum();
            data + 0.5 * Self::RIDGE * theta[..d].iter().map(|w| w * w).sum::<f64>()
        };
        let mut theta = vec![0.0; d + 1];
        let pos = n_pos as f64;
        theta[d] = (pos / (y.len() as f64 - pos)).ln();
        let mut cur = loss(&theta);
        for _ in 0..100 {
            let m = d + 1;
            let mut g = vec![0.0; m];
            // The Hessian, row-major, lower triangle accumulated.
            let mut h = vec![0.0; m * m];
            let mut feat = vec![1.0; m];
            for (i, &yi) in y.iter().enumerate() {
                let p = sigmoid(z_of(&theta, i));
                let r = p - yi;
                let w = (p * (1.0 - p)).max(1e-12);
                for (s, f) in feat.iter_mut().take(d).enumerate() {
                    *f = x[s][i];
                }
                for (a, &fa) in feat.iter().enumerate() {
                    g[a] += r * fa;
                    for (b, &fb) in feat.iter().enumerate().take(a + 1) {
                        h[a * m + b] += w * fa * fb;
                    }
                }
            }
            for (a, t) in theta.iter().enumerate().take(d) {
                g[a] += Self::RIDGE * t;
                h[a * m + a] += Self::RIDGE;
            }
            let h: Vec<Vec<f64>> = (0..m)
                .map(|a| (0..m).map(|b| h[a.max(b) * m + a.min(b)]).collect())
                .collect();
            if g.iter().map(|v| v.abs()).fold(0.0, f64::max) < 1e-9 * y.len() as f64 {
                break;
            }
            let Some(step_dir) = solve_spd(&h, &g.iter().map(|v| -v).collect::<Vec<_>>()) else {
                break;
            };
            let slope: f64 = g.iter().zip(&step_dir).map(|(a, b)| a * b).sum();
            let Some((next, nl)) = armijo_step(&theta, &step_dir, slope, cur, &loss) else {
                break;
            };
            (theta, cur) = (next, nl);
        }
        let intercept = theta[d];
        theta.truncate(d);
        Ok(Self {
            weights: theta,
            intercept,
        })
    }

    /// A stack with the given weights (one per source) and intercept, for
    /// one fitted elsewhere. Errors on no weight or a non-finite value.
    pub fn new(weights: Vec<f64>, intercept: f64) -> Result<Self> {
        if weights.is_empty() {
            return Err(OpensetError::Empty {
                what: "stack weights",
            });
        }
        if let Some(v) = weights
            .iter()
            .chain(std::iter::once(&intercept))
            .find(|v| !v.is_finite())
        {
            return Err(OpensetError::InvalidParam {
                name: "stack",
                reason: format!("weights and intercept must be finite, got {v}"),
            });
        }
        Ok(Self { weights, intercept })
    }

    /// The weight of each source's logit.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The intercept `b`.
    pub fn intercept(&self) -> f64 {
        self.intercept
    }

    /// The fused probability of one pair from each source's calibrated
    /// probability (in the order fitted; a missing source counts as 0.5,
    /// logit 0).
    pub fn predict(&self, probs: &[f32]) -> f32 {
        let z = self.intercept
            + self
                .weights
                .iter()
                .zip(probs.iter().copied().chain(std::iter::repeat(0.5)))
                .map(|(w, p)| w * logit(p))
                .sum::<f64>();
        sigmoid(z) as f32
    }
}
