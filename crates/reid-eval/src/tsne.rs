//! t-SNE of embeddings, and the exact KL divergence of any embedding of any
//! input.
//!
//! Two engines run the same checked parameters ([`TsneParams`]):
//!
//! * [`TsneEngine::Native`] (the default): this crate's parallel Barnes-Hut
//!   t-SNE with scikit-learn's conventions: exact k-NN affinities
//!   (`k = ⌊3·perplexity + 1⌋`) from blocked GEMMs, PCA initialisation,
//!   learning rate `max(n / early_exaggeration / 4, 50)` (scikit-learn's
//!   `"auto"`), momentum 0.5 then 0.8 with delta-bar-delta gains, a quadtree
//!   (octree in 3-D) for the repulsive forces, every point's forces in
//!   parallel. Reproducible bit for bit under [`TsneParams::seed`], whatever
//!   the thread count, and it reports progress
//!   ([`ValidTsneParams::embed_with_progress`]).
//! * [`TsneEngine::Linfa`]: [linfa-tsne] 0.8 (the `bhtsne` 0.4 crate), kept
//!   for comparison. What it fixes: learning rate 200 in its own units (a
//!   gradient without the factor 4, so 800 in scikit-learn's), momentum 0.5
//!   then 0.8, early exaggeration 12, random initialisation, one thread, no
//!   progress. Its θ > 0 path is **not** reproducible: bhtsne 0.4's
//!   vantage-point tree draws its vantage points from the unseeded
//!   `rand::thread_rng()` and partitions each node at an index relative to
//!   the wrong slice start, so its "exact" k-NN misses a few true neighbours
//!   (measured recall ≈ 0.9995 at k = 91), differently each run. θ = 0 is
//!   reproducible.
//!
//! Why a native engine: on 5000 × 512 embeddings linfa-tsne took 2.4× as
//! long as scikit-learn's Barnes-Hut and reached a worse KL (one thread,
//! an unvectorised vantage-point-tree k-NN, a tree reallocated each
//! iteration); see `scripts/compare/tsne_compare.py` for the side-by-side.
//!
//! [`ParamGuard::check`] turns [`TsneParams`] into [`ValidTsneParams`],
//! validating what can be validated without the data; [`tsne`] /
//! [`ValidTsneParams::embed`] validate the rest (sample count, perplexity
//! against it, finite values) before any work starts.
//! [`tsne`] returns the embedding and its exact KL divergence
//! ([`TsneOutput`]).
//!
//! [`kl_divergence`] (one pair) and [`Affinities`] (one input, many
//! embeddings) score any embedding — ours, scikit-learn's, openTSNE's — the
//! same way, with exactly scikit-learn's exact-method objective: P from
//! perplexity-calibrated Gaussians over *all* other points (binary search as
//! `sklearn.manifold._utils._binary_search_perplexity`), symmetrised and
//! normalised, entries clamped below at `f64::EPSILON`; Q a Student-t with
//! one degree of freedom (the kernel Barnes-Hut t-SNE optimises), also
//! clamped; `KL = Σ_{i≠j} P_ij ln(P_ij / Q_ij)`. It takes O(n²·d) time but
//! only O(n·d) memory (row blocks, in parallel on the rayon pool).
//!
//! ```
//! use ndarray::Array2;
//! use reid_eval::ParamGuard;
//! use reid_eval::tsne::{tsne, TsneParams};
//!
//! // Two tight groups of 10 points in 8 dims.
//! let x = Array2::from_shape_fn((20, 8), |(i, j)| {
//!     let centre = if i < 10 { 0.0 } else { 5.0 };
//!     centre + 0.01 * ((i * 8 + j) as f64).sin()
//! });
//! let params = TsneParams::new(2).perplexity(3.0).max_iter(300).seed(7).check()?;
//! let out = tsne(x.view(), &params)?;
//! assert_eq!(out.embedding.dim(), (20, 2));
//! assert!(out.kl_divergence.is_finite() && out.kl_divergence >= 0.0);
//! // Same seed, same embedding.
//! assert_eq!(tsne(x.view(), &params)?.embedding, out.embedding);
//! # Ok::<(), reid_eval::EvalError>(())
//! ```
//!
//! [linfa-tsne]: https://docs.rs/linfa-tsne/0.8

use linfa::traits::Transformer;
use ndarray::{Array2, ArrayView2, Axis, s};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use rayon::prelude::*;

use reid_core::ParamGuard;

use crate::error::{EvalError, Result};

mod bh;

/// The fewest samples [`tsne`] accepts.
pub const MIN_SAMPLES: usize = 5;

/// Rows per block of the exact affinity computation (one GEMM per block).
const BLOCK_ROWS: usize = 64;
/// scikit-learn's `MACHINE_EPSILON` (`np.finfo(np.double).eps`).
const MACHINE_EPSILON: f64 = f64::EPSILON;
/// scikit-learn's `PERPLEXITY_TOLERANCE` (on the entropy, in nats).
const PERPLEXITY_TOLERANCE: f64 = 1e-5;
/// scikit-learn's binary-search step limit.
const PERPLEXITY_STEPS: usize = 100;
/// scikit-learn's `EPSILON_DBL`, a C `float` there (hence the cast).
const EPSILON_DBL: f64 = 1e-8_f32 as f64;
/// The early-exaggeration factor of scikit-learn, openTSNE and bhtsne.
const DEFAULT_EXAGGERATION: f64 = 12.0;

/// Which implementation runs the optimisation (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TsneEngine {
    /// This crate's parallel, seeded Barnes-Hut t-SNE.
    #[default]
    Native,
    /// linfa-tsne 0.8 (bhtsne 0.4): single-threaded, fixed optimiser.
    Linfa,
}

/// How the native engine places the points before optimising.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsneInit {
    /// The first principal components, scaled to standard deviation 1e-4
    /// (scikit-learn's default since 1.2): stable global layout.
    Pca,
    /// N(0, 1e-4²) per coordinate, from the seeded generator.
    Random,
}

/// t-SNE parameters, built fluently and checked once by
/// [`ParamGuard::check`] into [`ValidTsneParams`].
///
/// Defaults: the native engine, 2 output dims, perplexity 30, θ = 0.5, 1000
/// iterations, early exaggeration 12 for `min(max_iter / 2, 250)`
/// iterations, learning rate `max(n / 12 / 4, 50)`, PCA initialisation
/// (random for linfa), seed 0.
#[derive(Debug, Clone, PartialEq)]
pub struct TsneParams {
    dims: usize,
    perplexity: f64,
    theta: f64,
    max_iter: usize,
    exaggeration_iter: Option<usize>,
    exaggeration: Option<f64>,
    learning_rate: Option<f64>,
    init: Option<TsneInit>,
    engine: TsneEngine,
    seed: u64,
}

impl Default for TsneParams {
    fn default() -> Self {
        Self::new(2)
    }
}

impl TsneParams {
    /// Parameters for an embedding of `dims` dimensions (2 or 3), the other
    /// values at their defaults (the same as `TsneParams::default().dims(dims)`).
    pub fn new(dims: usize) -> Self {
        Self {
            dims,
            perplexity: 30.0,
            theta: 0.5,
            max_iter: 1000,
            exaggeration_iter: None,
            exaggeration: None,
            learning_rate: None,
            init: None,
            engine: TsneEngine::Native,
            seed: 0,
        }
    }

    reid_core::setters! {
        /// Output dimensions: 2 or 3 (default 2).
        dims: usize,

        /// Perplexity of the input affinities (the effective number of
        /// neighbours): at least 1, and at most `(samples - 1) / 3`.
        perplexity: f64,

        /// Barnes-Hut approximation threshold θ (scikit-learn's `angle`,
        /// linfa's `approx_threshold`): a cell is summarised by its centre of
        /// mass when `width / distance < θ`. 0 runs the exact
        /// O(n²)-per-iteration t-SNE (small inputs only).
        theta: f64,

        /// Total gradient-descent iterations, early exaggeration included.
        max_iter: usize,

        /// Which implementation runs (default [`TsneEngine::Native`]).
        engine: TsneEngine,

        /// Seed of the initial embedding.
        seed: u64,
    }

    /// Iterations with early exaggeration (P × the factor, momentum 0.5)
    /// before the true P and momentum 0.8 take over; must be below
    /// `max_iter`.
    #[must_use]
    pub fn exaggeration_iter(mut self, iterations: usize) -> Self {
        self.exaggeration_iter = Some(iterations);
        self
    }

    /// The early-exaggeration factor (native engine; finite, at least 1;
    /// default 12).
    #[must_use]
    pub fn early_exaggeration(mut self, factor: f64) -> Self {
        self.exaggeration = Some(factor);
        self
    }

    /// The learning rate in scikit-learn's units (native engine; finite and
    /// positive). Unset: `max(n / early_exaggeration / 4, 50)`,
    /// scikit-learn's `"auto"` (Belkina et al. 2019). openTSNE's and
    /// bhtsne's rates are 4× these numbers for the same step.
    #[must_use]
    pub fn learning_rate(mut self, rate: f64) -> Self {
        self.learning_rate = Some(rate);
        self
    }

    /// The initial embedding (native engine; linfa is always random).
    #[must_use]
    pub fn init(mut self, init: TsneInit) -> Self {
        self.init = Some(init);
        self
    }

    /// The early-exaggeration iterations: as set, else `min(max_iter / 2,
    /// 250)`.
    fn resolved_exaggeration_iter(&self) -> usize {
        self.exaggeration_iter
            .unwrap_or(usize::min(self.max_iter / 2, 250))
    }
}

impl ParamGuard for TsneParams {
    type Checked = ValidTsneParams;
    type Error = EvalError;

    /// Checks everything that does not depend on the data.
    fn check_ref(&self) -> Result<()> {
        if !(self.dims == 2 || self.dims == 3) {
            return Err(EvalError::InvalidParam {
                name: "dims",
                reason: format!("t-SNE embeds into 2 or 3 dimensions, got {}", self.dims),
            });
        }
        if !(self.perplexity.is_finite() && self.perplexity >= 1.0) {
            return Err(EvalError::InvalidParam {
                name: "perplexity",
                reason: format!("must be finite and at least 1, got {}", self.perplexity),
            });
        }
        if !(self.theta.is_finite() && self.theta >= 0.0) {
            return Err(EvalError::InvalidParam {
                name: "theta",
                reason: format!("must be finite and >= 0, got {}", self.theta),
            });
        }
        if self.max_iter < 2 {
            return Err(EvalError::InvalidParam {
                name: "max_iter",
                reason: format!("must be at least 2, got {}", self.max_iter),
            });
        }
        let exaggeration_iter = self.resolved_exaggeration_iter();
        if exaggeration_iter >= self.max_iter {
            return Err(EvalError::InvalidParam {
                name: "exaggeration_iter",
                reason: format!(
                    "must be below max_iter = {} (or early exaggeration never ends), got {}",
                    self.max_iter, exaggeration_iter
                ),
            });
        }
        if let Some(f) = self.exaggeration
            && !(f.is_finite() && f >= 1.0)
        {
            return Err(EvalError::InvalidParam {
                name: "early_exaggeration",
                reason: format!("must be finite and at least 1, got {f}"),
            });
        }
        if let Some(r) = self.learning_rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err(EvalError::InvalidParam {
                name: "learning_rate",
                reason: format!("must be finite and > 0, got {r}"),
            });
        }
        if self.engine == TsneEngine::Linfa {
            let fixed = [
                ("learning_rate", self.learning_rate.map(|r| r.to_string())),
                (
                    "early_exaggeration",
                    self.exaggeration
                        .filter(|&f| f != DEFAULT_EXAGGERATION)
                        .map(|f| f.to_string()),
                ),
                (
                    "init",
                    self.init
                        .filter(|&i| i != TsneInit::Random)
                        .map(|i| format!("{i:?}")),
                ),
            ];
            if let Some((name, Some(value))) = fixed.into_iter().find(|(_, set)| set.is_some()) {
                return Err(EvalError::InvalidParam {
                    name,
                    reason: format!(
                        "linfa-tsne fixes it (learning rate 200 in its units, early \
                         exaggeration 12, random initialisation), got {value}; use the native \
                         engine"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Checks everything that does not depend on the data and resolves the
    /// defaults that depend on other settings.
    fn check(self) -> Result<ValidTsneParams> {
        self.check_ref()?;
        let default_init = match self.engine {
            TsneEngine::Native => TsneInit::Pca,
            TsneEngine::Linfa => TsneInit::Random,
        };
        Ok(ValidTsneParams {
            dims: self.dims,
            perplexity: self.perplexity,
            theta: self.theta,
            max_iter: self.max_iter,
            exaggeration_iter: self.resolved_exaggeration_iter(),
            exaggeration: self.exaggeration.unwrap_or(DEFAULT_EXAGGERATION),
            learning_rate: self.learning_rate,
            init: self.init.unwrap_or(default_init),
            engine: self.engine,
            seed: self.seed,
        })
    }
}

/// [`TsneParams`] that passed [`ParamGuard::check`]; the data-dependent
/// checks run in [`ValidTsneParams::embed`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidTsneParams {
    dims: usize,
    perplexity: f64,
    theta: f64,
    max_iter: usize,
    exaggeration_iter: usize,
    exaggeration: f64,
    learning_rate: Option<f64>,
    init: TsneInit,
    engine: TsneEngine,
    seed: u64,
}

/// The result of [`tsne`].
#[derive(Debug, Clone, PartialEq)]
pub struct TsneOutput {
    /// `samples × dims`, one row per input row, in input order.
    pub embedding: Array2<f64>,
    /// Exact KL divergence of the embedding ([`kl_divergence`] at the same
    /// perplexity).
    pub kl_divergence: f64,
}

impl ValidTsneParams {
    /// Output dimensions.
    pub fn dims(&self) -> usize {
        self.dims
    }
    /// Perplexity.
    pub fn perplexity(&self) -> f64 {
        self.perplexity
    }
    /// Barnes-Hut θ.
    pub fn theta(&self) -> f64 {
        self.theta
    }
    /// Total iterations.
    pub fn max_iter(&self) -> usize {
        self.max_iter
    }
    /// Early-exaggeration iterations (resolved from the default if unset).
    pub fn exaggeration_iter(&self) -> usize {
        self.exaggeration_iter
    }
    /// Early-exaggeration factor.
    pub fn early_exaggeration(&self) -> f64 {
        self.exaggeration
    }
    /// The learning rate for `samples` points (scikit-learn's units; the
    /// `"auto"` rule when unset).
    pub fn learning_rate_for(&self, samples: usize) -> f64 {
        self.learning_rate
            .unwrap_or_else(|| f64::max(samples as f64 / self.exaggeration / 4.0, 50.0))
    }
    /// Initialisation.
    pub fn init(&self) -> TsneInit {
        self.init
    }
    /// Engine.
    pub fn engine(&self) -> TsneEngine {
        self.engine
    }
    /// Seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Checks the data against the parameters: enough samples, perplexity
    /// within `(samples - 1) / 3`, at least `dims` features, all finite, not
    /// all rows equal.
    pub fn check_data<A: Copy + Into<f64>>(&self, x: ArrayView2<'_, A>) -> Result<()> {
        let (n, d) = x.dim();
        if n < MIN_SAMPLES {
            return Err(EvalError::TooFewSamples {
                what: "t-SNE",
                min: MIN_SAMPLES,
                samples: n,
            });
        }
        if d < self.dims {
            return Err(EvalError::Shape {
                expected: format!("at least {} features (the output dims)", self.dims),
                got: format!("{n} x {d}"),
            });
        }
        // linfa-tsne's check, in floating point (bhtsne's own truncates);
        // the native engine keeps it so both accept the same inputs.
        if ((n - 1) as f64) < 3.0 * self.perplexity {
            return Err(EvalError::PerplexityTooLarge {
                perplexity: self.perplexity,
                samples: n,
            });
        }
        check_finite("x", x)?;
        let first = x.row(0);
        let constant = x.rows().into_iter().all(|r| {
            r.iter()
                .zip(first.iter())
                .all(|(&a, &b)| a.into() == b.into())
        });
        if constant {
            return Err(EvalError::ConstantInput {
                name: "x",
                samples: n,
            });
        }
        Ok(())
    }

    /// The t-SNE embedding of the rows of `x` (`samples × dims`), without its
    /// KL divergence. `x` may have any memory layout.
    pub fn embed<A: Copy + Into<f64>>(&self, x: ArrayView2<'_, A>) -> Result<Array2<f64>> {
        self.embed_with_progress(x, &mut |_| {})
    }

    /// As [`ValidTsneParams::embed`], calling `progress(done)` after each of
    /// the [`ValidTsneParams::max_iter`] iterations (the native engine; the
    /// linfa engine calls it once, at the end).
    pub fn embed_with_progress<A: Copy + Into<f64>>(
        &self,
        x: ArrayView2<'_, A>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Array2<f64>> {
        self.check_data(x)?;
        let n = x.nrows();
        let embedding = match self.engine {
            TsneEngine::Native => {
                let data = Array2::<f64>::from_shape_fn(x.dim(), |(i, j)| x[[i, j]].into());
                let settings = bh::Settings {
                    dims: self.dims,
                    perplexity: self.perplexity,
                    theta: self.theta,
                    max_iter: self.max_iter,
                    exaggeration_iter: self.exaggeration_iter,
                    exaggeration: self.exaggeration,
                    learning_rate: self.learning_rate_for(n),
                    pca_init: self.init == TsneInit::Pca,
                    seed: self.seed,
                };
                bh::embed(&data, &settings, progress)?
            }
            TsneEngine::Linfa => {
                let data = with_anchors(x);
                let rng = ChaCha8Rng::seed_from_u64(self.seed);
                let embedding = linfa_tsne::TSneParams::embedding_size_with_rng(self.dims, rng)
                    .perplexity(self.perplexity)
                    .approx_threshold(self.theta)
                    .max_iter(self.max_iter)
                    .preliminary_iter(self.exaggeration_iter)
                    .transform(data)
                    .map_err(EvalError::Tsne)?;
                progress(self.max_iter);
                embedding.slice(s![..n, ..]).to_owned()
            }
        };
        check_finite("embedding", embedding.view())?;
        Ok(embedding)
    }

    /// The embedding and its exact KL divergence.
    pub fn run<A: Copy + Into<f64>>(&self, x: ArrayView2<'_, A>) -> Result<TsneOutput> {
        let embedding = self.embed(x)?;
        let kl_divergence = kl_divergence(x, embedding.view(), self.perplexity)?;
        Ok(TsneOutput {
            embedding,
            kl_divergence,
        })
    }
}

/// t-SNE of the rows of `x` (f32 or f64, any memory layout) with the
/// checked `params` (the data is checked against them first); returns the
/// embedding and its exact KL divergence. The same as
/// [`ValidTsneParams::run`].
pub fn tsne<A: Copy + Into<f64>>(
    x: ArrayView2<'_, A>,
    params: &ValidTsneParams,
) -> Result<TsneOutput> {
    params.run(x)
}

/// The sparse joint affinities the native engine optimises, scikit-learn's
/// `_joint_probabilities_nn`: each row's Gaussian calibrated to
/// `perplexity` over its `min(n - 1, ⌊3·perplexity + 1⌋)` nearest rows
/// (squared Euclidean), then `P = (P + Pᵀ) / ΣP`. Returned as `(i, j, P_ij)`
/// for every stored pair (both orders), rows then columns ascending; they
/// sum to 1.
pub fn sparse_joint_probabilities<A: Copy + Into<f64>>(
    x: ArrayView2<'_, A>,
    perplexity: f64,
) -> Result<Vec<(usize, usize, f64)>> {
    let x = checked_copy(x, "sparse affinities")?;
    if !(perplexity.is_finite() && perplexity > 0.0) {
        return Err(EvalError::InvalidParam {
            name: "perplexity",
            reason: format!("must be finite and > 0, got {perplexity}"),
        });
    }
    Ok(bh::SparseP::new(&x, perplexity)?.entries().collect())
}

/// The native engine's PCA initialisation ([`TsneInit::Pca`]) of `x`
/// (`samples × dims`): the centred rows projected on their first `dims`
/// principal axes (each signed so its largest-magnitude coefficient is
/// positive), scaled so the first column has standard deviation 1e-4, as
/// scikit-learn's `init="pca"` does. `seed` starts the subspace iteration
/// (the result does not depend on it beyond rounding when the leading
/// eigenvalues are distinct).
pub fn pca_initialisation<A: Copy + Into<f64>>(
    x: ArrayView2<'_, A>,
    dims: usize,
    seed: u64,
) -> Result<Array2<f64>> {
    let x = checked_copy(x, "PCA initialisation")?;
    if dims == 0 || dims > x.ncols() {
        return Err(EvalError::InvalidParam {
            name: "dims",
            reason: format!("must be in 1..={} (the features), got {dims}", x.ncols()),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Ok(bh::pca_init(&x, dims, &mut rng))
}

/// A standard-layout f64 copy of `x` after checking it has at least 2 rows,
/// 1 column and only finite values.
fn checked_copy<A: Copy + Into<f64>>(
    x: ArrayView2<'_, A>,
    what: &'static str,
) -> Result<Array2<f64>> {
    let (n, d) = x.dim();
    if n < 2 {
        return Err(EvalError::TooFewSamples {
            what,
            min: 2,
            samples: n,
        });
    }
    if d == 0 {
        return Err(EvalError::Shape {
            expected: "at least 1 feature".into(),
            got: format!("{n} x {d}"),
        });
    }
    check_finite("x", x)?;
    Ok(Array2::<f64>::from_shape_fn((n, d), |(i, j)| {
        x[[i, j]].into()
    }))
}

/// One standard normal draw (Box-Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A standard-layout f64 copy of `x`, centred, with one more column (zero)
/// and two more rows, the *anchors*, at `±M` on that column alone
/// (`M` = 20 × the largest row norm): the rows linfa-tsne is given.
///
/// Why: bhtsne 0.4 (which linfa-tsne 0.8 runs) divides its input by the
/// largest magnitude and then searches each point's Gaussian precision
/// starting at 1; when the point's neighbours are far apart in those units
/// its entropy starts below the target, and its search then steps to
/// *negative* precisions (`beta = -0.5`, then doubling), which overflow to
/// NaN affinities, NaN gradients and an unbounded recursion in its
/// space-partitioning tree (a stack overflow, seen on 740 lion embeddings).
/// The anchors make `M` the largest magnitude, so every distance between
/// real points is below 0.1 in bhtsne's units, every search starts with
/// near-uniform weights over the `3·perplexity` neighbours (entropy
/// `ln(3·perplexity)` above the target `ln(perplexity)`) and only raises the
/// precision, as it should. Distances between the real points are
/// unchanged (a translation, then one constant column); the anchors hold
/// 2 of the `n + 2` rows of the affinity matrix, spread over their nearest
/// real points, and are dropped from the result.
fn with_anchors<A: Copy + Into<f64>>(x: ArrayView2<'_, A>) -> Array2<f64> {
    let (n, d) = x.dim();
    let mut data = Array2::<f64>::zeros((n + 2, d + 1));
    for ((i, j), v) in x.indexed_iter() {
        data[[i, j]] = (*v).into();
    }
    let mut real = data.slice_mut(s![..n, ..d]);
    if let Some(mean) = real.mean_axis(Axis(0)) {
        real -= &mean;
    }
    let norm = real
        .rows()
        .into_iter()
        .map(|r| r.dot(&r).sqrt())
        .fold(0.0_f64, f64::max);
    let m = 20.0 * if norm > 0.0 { norm } else { 1.0 };
    data[[n, d]] = m;
    data[[n + 1, d]] = -m;
    data
}

fn check_finite<A: Copy + Into<f64>>(name: &'static str, x: ArrayView2<'_, A>) -> Result<()> {
    for (row, r) in x.rows().into_iter().enumerate() {
        if let Some(&v) = r.iter().find(|v| !(**v).into().is_finite()) {
            return Err(EvalError::NonFinite {
                name,
                row,
                value: v.into(),
            });
        }
    }
    Ok(())
}

/// Exact KL divergence of the embedding `y` of the input `x` (rows paired;
/// any element types convertible to f64, any layout) at `perplexity`:
/// scikit-learn's exact t-SNE objective with one degree of freedom (see the
/// module doc). Use [`Affinities`] to score several embeddings of one input.
pub fn kl_divergence<A, B>(
    x: ArrayView2<'_, A>,
    y: ArrayView2<'_, B>,
    perplexity: f64,
) -> Result<f64>
where
    A: Copy + Into<f64>,
    B: Copy + Into<f64>,
{
    Affinities::new(x, perplexity)?.kl_divergence(y)
}

/// The joint input affinities P of one input at one perplexity, kept as one
/// precision and one normaliser per row (O(n) besides the input), so that
/// several embeddings of the same input are scored without repeating the
/// binary searches.
#[derive(Debug, Clone)]
pub struct Affinities {
    x: Array2<f64>,
    sq_norms: Vec<f64>,
    /// Gaussian precision β_i of row i (`p_{j|i} ∝ exp(-β_i ‖x_i - x_j‖²)`).
    beta: Vec<f64>,
    /// The normaliser of row i's conditional distribution.
    row_norm: Vec<f64>,
    /// Σ over all (i, j) of `p_{j|i} + p_{i|j}` (2n up to rounding).
    total: f64,
    perplexity: f64,
}

impl Affinities {
    /// Calibrates the conditional Gaussians of every row of `x` (at least 2
    /// finite rows) to `perplexity` (> 0) over all other rows.
    pub fn new<A: Copy + Into<f64>>(x: ArrayView2<'_, A>, perplexity: f64) -> Result<Self> {
        let x = checked_copy(x, "KL divergence")?;
        let n = x.nrows();
        if !(perplexity.is_finite() && perplexity > 0.0) {
            return Err(EvalError::InvalidParam {
                name: "perplexity",
                reason: format!("must be finite and > 0, got {perplexity}"),
            });
        }
        let sq_norms: Vec<f64> = x.rows().into_iter().map(|r| r.dot(&r)).collect();
        if let Some(row) = sq_norms.iter().position(|v| !v.is_finite()) {
            return Err(EvalError::NonFinite {
                name: "x (squared row norm)",
                row,
                value: sq_norms[row],
            });
        }
        let desired_entropy = perplexity.ln();
        let starts: Vec<usize> = (0..n).step_by(BLOCK_ROWS).collect();
        let rows: Vec<(f64, f64, f64)> = starts
            .par_iter()
            .flat_map_iter(|&start| {
                let end = usize::min(start + BLOCK_ROWS, n);
                let gram = x.slice(s![start..end, ..]).dot(&x.t());
                let mut dist = vec![0.0_f64; n];
                let mut out = Vec::with_capacity(end - start);
                for (r, g) in gram.rows().into_iter().enumerate() {
                    let i = start + r;
                    for (j, (dj, &gj)) in dist.iter_mut().zip(g.iter()).enumerate() {
                        *dj = (sq_norms[i] + sq_norms[j] - 2.0 * gj).max(0.0);
                    }
                    out.push(calibrate_row(&dist, Some(i), desired_entropy));
                }
                out
            })
            .collect();
        let beta = rows.iter().map(|r| r.0).collect();
        let row_norm = rows.iter().map(|r| r.1).collect();
        let total = 2.0 * rows.iter().map(|r| r.2).sum::<f64>();
        Ok(Self {
            x,
            sq_norms,
            beta,
            row_norm,
            total: total.max(MACHINE_EPSILON),
            perplexity,
        })
    }

    /// Number of samples.
    pub fn samples(&self) -> usize {
        self.x.nrows()
    }

    /// The perplexity calibrated to.
    pub fn perplexity(&self) -> f64 {
        self.perplexity
    }

    /// The calibrated Gaussian precision β_i of every row.
    pub fn betas(&self) -> &[f64] {
        &self.beta
    }

    /// The joint probability `P_ij` (symmetrised, normalised over all
    /// ordered pairs, clamped at `f64::EPSILON`; `i != j`). O(d).
    pub fn joint(&self, i: usize, j: usize) -> f64 {
        let d = self.sq_dist(i, j);
        self.joint_from_dist(i, j, d)
    }

    fn sq_dist(&self, i: usize, j: usize) -> f64 {
        let g = self.x.row(i).dot(&self.x.row(j));
        (self.sq_norms[i] + self.sq_norms[j] - 2.0 * g).max(0.0)
    }

    fn joint_from_dist(&self, i: usize, j: usize, d: f64) -> f64 {
        let cij = (-d * self.beta[i]).exp() / self.row_norm[i];
        let cji = (-d * self.beta[j]).exp() / self.row_norm[j];
        ((cij + cji) / self.total).max(MACHINE_EPSILON)
    }

    /// Exact KL divergence `KL(P ‖ Q)` of the embedding `y` (one row per
    /// input row, finite), Q the Student-t (one degree of freedom) joint
    /// distribution of `y`.
    pub fn kl_divergence<B: Copy + Into<f64>>(&self, y: ArrayView2<'_, B>) -> Result<f64> {
        let n = self.samples();
        if y.nrows() != n || y.ncols() == 0 {
            return Err(EvalError::Shape {
                expected: format!("{n} x (at least 1) embedding rows"),
                got: format!("{} x {}", y.nrows(), y.ncols()),
            });
        }
        check_finite("y", y)?;
        let y = Array2::<f64>::from_shape_fn(y.dim(), |(i, j)| y[[i, j]].into());
        let student = |i: usize, j: usize| {
            let d: f64 = y
                .row(i)
                .iter()
                .zip(y.row(j).iter())
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            1.0 / (1.0 + d)
        };
        // Σ_{i<j} of the Student-t kernel: Q_ij = kernel / (2 · half_sum).
        let half_sum: f64 = (0..n)
            .into_par_iter()
            .map(|i| ((i + 1)..n).map(|j| student(i, j)).sum::<f64>())
            .sum();
        let q_norm = 2.0 * half_sum;
        let starts: Vec<usize> = (0..n).step_by(BLOCK_ROWS).collect();
        let half_kl: f64 = starts
            .par_iter()
            .map(|&start| {
                let end = usize::min(start + BLOCK_ROWS, n);
                // Only columns from `start` on: the pairs i < j of this block.
                let gram = self
                    .x
                    .slice(s![start..end, ..])
                    .dot(&self.x.slice(s![start.., ..]).t());
                let mut acc = 0.0;
                for (r, g) in gram.rows().into_iter().enumerate() {
                    let i = start + r;
                    for j in (i + 1)..n {
                        let d = (self.sq_norms[i] + self.sq_norms[j] - 2.0 * g[j - start]).max(0.0);
                        let p = self.joint_from_dist(i, j, d);
                        let q = (student(i, j) / q_norm).max(MACHINE_EPSILON);
                        acc += p * (p / q).ln();
                    }
                }
                acc
            })
            .sum();
        Ok(2.0 * half_kl)
    }
}

/// scikit-learn's binary search for one row (`dist` the squared distances
/// to the candidate neighbours; `skip`, the row itself when `dist` covers
/// every row, is excluded). Returns (β, the normaliser
/// of the final conditional distribution, that distribution's sum).
fn calibrate_row(dist: &[f64], skip: Option<usize>, desired_entropy: f64) -> (f64, f64, f64) {
    let mut beta = 1.0_f64;
    let mut beta_min = f64::NEG_INFINITY;
    let mut beta_max = f64::INFINITY;
    let mut used = (beta, EPSILON_DBL, 0.0);
    for _ in 0..PERPLEXITY_STEPS {
        let mut sum_p = 0.0;
        let mut sum_dp = 0.0;
        for (j, &dj) in dist.iter().enumerate() {
            if Some(j) != skip {
                let p = (-dj * beta).exp();
                sum_p += p;
                sum_dp += dj * p;
            }
        }
        let raw_sum = sum_p;
        if sum_p == 0.0 {
            sum_p = EPSILON_DBL;
        }
        let entropy = sum_p.ln() + beta * (sum_dp / sum_p);
        used = (beta, sum_p, raw_sum / sum_p);
        let diff = entropy - desired_entropy;
        if diff.abs() <= PERPLEXITY_TOLERANCE {
            break;
        }
        if diff > 0.0 {
            beta_min = beta;
            beta = if beta_max == f64::INFINITY {
                beta * 2.0
            } else {
                (beta + beta_max) / 2.0
            };
        } else {
            beta_max = beta;
            beta = if beta_min == f64::NEG_INFINITY {
                beta / 2.0
            } else {
                (beta + beta_min) / 2.0
            };
        }
    }
    used
}
