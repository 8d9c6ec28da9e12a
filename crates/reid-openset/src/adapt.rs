//! Projections of the embeddings fitted on the database's own labels.
//!
//! Generic (ImageNet) features put every photo of an animal species close
//! together: all cosines are high and the differences between individuals
//! sit in a few directions. The database is labelled, so those directions
//! can be learnt from it, as retrieval systems do with learned whitening:
//!
//! - [`Adaptation::Center`]: subtract the database mean (cosines stop being
//!   all high);
//! - [`Adaptation::PcaWhiten`]: centre, rotate onto the principal axes and
//!   scale each to unit variance (scikit-learn's `PCA(whiten=True)`), with
//!   optional shrinkage of the variances towards their mean;
//! - [`Adaptation::Whiten`]: supervised whitening: centre and whiten by the
//!   **within-identity** scatter, so directions in which photos of the same
//!   animal differ (pose, light) weigh little and the others much;
//! - [`Adaptation::Lda`]: linear discriminant analysis (scikit-learn's
//!   `LinearDiscriminantAnalysis(solver="eigen", shrinkage=s)`): the
//!   directions that best separate identities relative to the within-identity
//!   scatter, at most `identities - 1` of them.
//!
//! The scatter matrices are shrunk as scikit-learn's LDA does (each
//! covariance towards a multiple of the identity, its own mean variance
//! `mu`): `(1 - s) C + s mu I`; shrinkage makes the within-identity scatter
//! invertible when the database has fewer photos than dimensions.
//!
//! A [`Projection`] is fitted on database rows only. Inside self-calibration
//! ([`crate::SelfCalibrationParams::adapt`]) it is refitted on each episode's
//! pseudo-gallery, so the pseudo-queries it is scored on never shape it,
//! exactly as the real queries never shape the projection they meet.
//!
//! ```
//! use ndarray::array;
//! use reid_openset::{AdaptParams, Adaptation, ParamGuard, Projection};
//!
//! // Two identities that differ along the second axis only; the first axis
//! // is shared noise.
//! let x = array![[1.0f32, 0.1], [0.2, 0.12], [0.9, -0.1], [0.1, -0.09]];
//! let labels = ["a", "a", "b", "b"];
//! let p = AdaptParams::new(Adaptation::Whiten).shrinkage(0.1).check()?;
//! let proj = Projection::fit(x.view(), &labels, &p)?;
//! let y = proj.transform(x.view())?;
//! // Rows 0 and 1 (same animal) now agree better than rows 0 and 2.
//! let cos = |i: usize, j: usize| y.row(i).dot(&y.row(j));
//! assert!(cos(0, 1) > cos(0, 2));
//! # Ok::<(), reid_openset::OpensetError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use faer::{Mat, Side};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use reid_core::ParamGuard;

use crate::rerank::{KReciprocalParams, ValidKReciprocalParams};
use crate::{OpensetError, Result, check};

/// Which projection [`Projection::fit`] learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Adaptation {
    /// Subtract the database mean.
    Center,
    /// Principal axes, each scaled to unit variance (unsupervised).
    PcaWhiten,
    /// Whitening by the within-identity scatter (supervised, all dims).
    Whiten,
    /// Linear discriminant analysis (supervised, at most `identities - 1`
    /// dims).
    Lda,
}

impl Adaptation {
    /// All of them, in the order of their names.
    pub const ALL: [Adaptation; 4] = [
        Adaptation::Center,
        Adaptation::PcaWhiten,
        Adaptation::Whiten,
        Adaptation::Lda,
    ];

    /// The name used on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Adaptation::Center => "center",
            Adaptation::PcaWhiten => "pca",
            Adaptation::Whiten => "whiten",
            Adaptation::Lda => "lda",
        }
    }

    /// Whether fitting needs identity labels.
    pub fn supervised(self) -> bool {
        matches!(self, Adaptation::Whiten | Adaptation::Lda)
    }
}

impl fmt::Display for Adaptation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Adaptation {
    type Err = OpensetError;
    fn from_str(s: &str) -> Result<Self> {
        Adaptation::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| OpensetError::InvalidParam {
                name: "adaptation",
                reason: format!("unknown `{s}`: one of center, pca, whiten, lda"),
            })
    }
}

/// Settings of a [`Projection`]; checked by [`ParamGuard::check`] into
/// [`ValidAdaptParams`].
///
/// ```
/// use reid_openset::{AdaptParams, Adaptation, ParamGuard};
/// let p = AdaptParams::new(Adaptation::Lda).shrinkage(0.5).dim(Some(64)).check()?;
/// assert_eq!((p.method(), p.dim(), p.shrinkage()), (Adaptation::Lda, Some(64), 0.5));
/// assert!(AdaptParams::new(Adaptation::Whiten).shrinkage(1.5).check().is_err());
/// assert!(AdaptParams::new(Adaptation::Lda).dim(Some(0)).check().is_err());
/// # Ok::<(), reid_openset::OpensetError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptParams {
    method: Adaptation,
    shrinkage: f64,
    dim: Option<usize>,
    dba: usize,
    qe: usize,
    alpha: f32,
    rerank: Option<KReciprocalParams>,
}

/// Checked [`AdaptParams`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidAdaptParams(AdaptParams);

impl AdaptParams {
    /// `method` with shrinkage 0.5, every dimension it can give, and no
    /// neighbourhood step (`dba` and `qe` 0, `alpha` 1, no `rerank`).
    pub fn new(method: Adaptation) -> Self {
        Self {
            method,
            shrinkage: 0.5,
            dim: None,
            dba: 0,
            qe: 0,
            alpha: 1.0,
            rerank: None,
        }
    }

    reid_core::setters! {
        /// The projection learnt.
        method: Adaptation,
        /// Shrinkage of the scatter matrices towards a multiple of the
        /// identity, in `[0, 1]` (0: none, as scikit-learn's default; 1: the
        /// identity scaled by the mean variance).
        /// For [`Adaptation::PcaWhiten`], the variances are shrunk towards
        /// their mean instead.
        shrinkage: f64,
        /// Dimensions kept (`None`: all the method gives: the rank of the
        /// data for PCA, `identities - 1` for LDA, all for the others, which
        /// ignore it).
        dim: Option<usize>,
        /// After the projection, database-side augmentation within
        /// identities over this many same-identity neighbours, the row
        /// itself included ([`crate::expand::augment_database`]; 0 or 1:
        /// none).
        dba: usize,
        /// After the projection, α-query expansion with this many nearest
        /// database rows ([`crate::expand::expand_queries`]; 0: none).
        qe: usize,
        /// Exponent of the neighbour weights `max(cos, 0)^alpha` of `dba`
        /// and `qe`.
        alpha: f32,
        /// After the other steps, k-reciprocal re-ranking of every search
        /// ([`crate::rerank`]; `None`: rank by cosine).
        rerank: Option<KReciprocalParams>,
    }
}

impl ParamGuard for AdaptParams {
    type Checked = ValidAdaptParams;
    type Error = OpensetError;

    fn check_ref(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.shrinkage) {
            return Err(OpensetError::InvalidParam {
                name: "shrinkage",
                reason: format!("must be in [0, 1], got {}", self.shrinkage),
            });
        }
        if self.dim == Some(0) {
            return Err(OpensetError::InvalidParam {
                name: "dim",
                reason: "must be at least 1".into(),
            });
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(OpensetError::InvalidParam {
                name: "alpha",
                reason: format!("must be finite and at least 0, got {}", self.alpha),
            });
        }
        if let Some(r) = &self.rerank {
            r.check_ref()?;
        }
        Ok(())
    }

    fn check(self) -> Result<ValidAdaptParams> {
        self.check_ref()?;
        Ok(ValidAdaptParams(self))
    }
}

impl ValidAdaptParams {
    reid_core::getters! {
        /// The projection learnt.
        method: Adaptation,
        /// Shrinkage of the scatter matrices, in `[0, 1]`.
        shrinkage: f64,
        /// Dimensions kept, when set.
        dim: Option<usize>,
        /// Same-identity neighbours of database-side augmentation (0 or 1:
        /// none).
        dba: usize,
        /// Database rows of α-query expansion (0: none).
        qe: usize,
        /// Exponent of the neighbour weights.
        alpha: f32,
    }

    /// The re-ranking of every search, when set (checked with the rest).
    pub fn rerank(&self) -> Option<ValidKReciprocalParams> {
        self.0.rerank.and_then(|r| r.check().ok())
    }

    /// Back to the builder, to change a setting.
    pub fn into_params(self) -> AdaptParams {
        self.0
    }
}

impl fmt::Display for ValidAdaptParams {
    /// `lda(shrinkage 0.5)`, `pca(shrinkage 0, dim 64)`, `center`,
    /// `whiten(shrinkage 0.1) + dba 3 + qe 2 (alpha 1)`,
    /// `lda(shrinkage 0.1) + k-reciprocal(k1 20, k2 6, lambda 0.3)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.0;
        if p.method == Adaptation::Center {
            f.write_str("center")?;
        } else {
            write!(f, "{}(shrinkage {}", p.method, p.shrinkage)?;
            if let Some(d) = p.dim {
                write!(f, ", dim {d}")?;
            }
            f.write_str(")")?;
        }
        if p.dba > 1 {
            write!(f, " + dba {}", p.dba)?;
        }
        if p.qe > 0 {
            write!(f, " + qe {}", p.qe)?;
        }
        if p.dba > 1 || p.qe > 0 {
            write!(f, " (alpha {})", p.alpha)?;
        }
        if let Some(r) = self.rerank() {
            write!(f, " + {r}")?;
        }
        Ok(())
    }
}

/// The database and query rows as every cosine of the pipeline sees them
/// under `params`: both through a [`Projection`] fitted on `database` and
/// its `labels` alone, then the database augmented within identities and
/// the queries expanded with the augmented database ([`crate::expand`]).
/// No query row shapes the projection or another query.
///
/// ```
/// use ndarray::array;
/// use reid_openset::{AdaptParams, Adaptation, ParamGuard, adapt::adapt_split};
/// let db = array![[1.0f32, 0.1], [0.2, 0.12], [0.9, -0.1], [0.1, -0.09]];
/// let labels = ["a", "a", "b", "b"];
/// let q = array![[0.5f32, 0.11]];
/// let p = AdaptParams::new(Adaptation::Whiten).shrinkage(0.1).dba(2).qe(1).check()?;
/// let (g, y) = adapt_split(db.view(), &labels, q.view(), &p)?;
/// assert_eq!((g.dim(), y.dim()), ((4, 2), (1, 2)));
/// # Ok::<(), reid_openset::OpensetError>(())
/// ```
pub fn adapt_split<S: AsRef<str>>(
    database: ArrayView2<'_, f32>,
    labels: &[S],
    queries: ArrayView2<'_, f32>,
    params: &ValidAdaptParams,
) -> Result<(Array2<f32>, Array2<f32>)> {
    let proj = Projection::fit(database, labels, params)?;
    let g = proj.transform(database)?;
    let q = proj.transform(queries)?;
    let g = crate::expand::augment_database(g.view(), labels, params.dba(), params.alpha())?;
    let q = crate::expand::expand_queries(q.view(), g.view(), params.qe(), params.alpha())?;
    Ok((g, q))
}

/// A fitted projection: `y = (x - mean) W`, rows then L2-normalised by
/// [`Projection::transform`].
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    method: Adaptation,
    mean: Array1<f32>,
    /// `[dim_in, dim_out]`; `None` for [`Adaptation::Center`] (identity).
    matrix: Option<Array2<f32>>,
}

/// A scatter matrix whose Cholesky pivot falls below this fraction of its
/// mean diagonal is treated as singular.
const SINGULAR: f64 = 1e-12;

impl Projection {
    /// Fits `params.method()` on the rows of `x` (`[n, d]`, finite) with
    /// identity `labels[i]` for row `i` (used by the supervised methods;
    /// ignored by the others).
    ///
    /// Errors on an empty or non-finite `x`, labels of the wrong length,
    /// fewer than two rows, fewer than two identities for a supervised
    /// method, a `dim` larger than the method can give, or a scatter matrix
    /// that cannot be factorised (say which and suggest shrinkage).
    pub fn fit<S: AsRef<str>>(
        x: ArrayView2<'_, f32>,
        labels: &[S],
        params: &ValidAdaptParams,
    ) -> Result<Self> {
        let (n, d) = x.dim();
        if n == 0 || d == 0 {
            return Err(OpensetError::Empty {
                what: "embeddings to fit a projection on",
            });
        }
        check::finite_2d(x, "embeddings")?;
        check::same_len("labels", n, labels.len())?;
        if n < 2 {
            return Err(OpensetError::InvalidParam {
                name: "embeddings",
                reason: "a projection needs at least 2 rows".into(),
            });
        }
        let method = params.method();
        let mean64: Vec<f64> = (0..d)
            .map(|j| x.column(j).iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64)
            .collect();
        let mean = Array1::from_iter(mean64.iter().map(|&m| m as f32));
        let matrix = match method {
            Adaptation::Center => None,
            Adaptation::PcaWhiten => Some(pca_whiten(x, &mean64, params)?),
            Adaptation::Whiten | Adaptation::Lda => {
                let classes = classes(labels);
                if classes.len() < 2 {
                    return Err(OpensetError::InvalidParam {
                        name: "labels",
                        reason: format!(
                            "{method} needs at least 2 identities, found {}",
                            classes.len()
                        ),
                    });
                }
                let s = params.shrinkage();
                if let Some(w) = span_fit(x, &mean64, &classes, params)? {
                    return Ok(Self {
                        method,
                        mean,
                        matrix: Some(w),
                    });
                }
                let within = within_scatter(x, &classes, s);
                let l = cholesky(&within, "within-identity scatter", s)?;
                if method == Adaptation::Whiten {
                    // y = (x - m) L^-T: the Mahalanobis inner product of the
                    // within-identity scatter.
                    let mut eye = Mat::<f64>::identity(d, d);
                    l.solve_lower_triangular_in_place(eye.as_mut());
                    Some(to_ndarray(eye.transpose()))
                } else {
                    Some(lda(x, &mean64, &within, &l, classes.len(), params)?)
                }
            }
        };
        Ok(Self {
            method,
            mean,
            matrix,
        })
    }

    /// The method fitted.
    pub fn method(&self) -> Adaptation {
        self.method
    }

    /// Input dimension.
    pub fn input_dim(&self) -> usize {
        self.mean.len()
    }

    /// Output dimension.
    pub fn output_dim(&self) -> usize {
        self.matrix.as_ref().map_or(self.mean.len(), |m| m.ncols())
    }

    /// The mean subtracted (of the rows it was fitted on).
    pub fn mean(&self) -> &Array1<f32> {
        &self.mean
    }

    /// The matrix `W` (`[input_dim, output_dim]`); `None` for centring.
    pub fn matrix(&self) -> Option<&Array2<f32>> {
        self.matrix.as_ref()
    }

    /// `(x - mean) W` with rows L2-normalised (a row that projects to zero
    /// stays zero), ready for cosine search. Errors on a wrong width or a
    /// non-finite value.
    pub fn transform(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        if x.ncols() != self.input_dim() {
            return Err(OpensetError::Shape {
                expected: format!(
                    "[n, {}] (the dimension the projection was fitted on)",
                    self.input_dim()
                ),
                got: format!("[{}, {}]", x.nrows(), x.ncols()),
            });
        }
        check::finite_2d(x, "embeddings")?;
        let centred = &x - &self.mean.view().insert_axis(Axis(0));
        let mut y = match &self.matrix {
            Some(w) => centred.dot(w),
            None => centred,
        };
        y.rows_mut().into_iter().for_each(check::normalise_row);
        Ok(y)
    }
}

/// The rows of each identity, in label order.
fn classes<S: AsRef<str>>(labels: &[S]) -> Vec<Vec<usize>> {
    let mut by: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, l) in labels.iter().enumerate() {
        by.entry(l.as_ref()).or_default().push(i);
    }
    by.into_values().collect()
}

fn to_ndarray(m: faer::MatRef<'_, f64>) -> Array2<f32> {
    Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| m[(i, j)] as f32)
}

/// The rows of `x` minus `centre(row)`, as a faer matrix.
fn centred(
    x: ArrayView2<'_, f32>,
    centre: impl Fn(usize) -> usize,
    means: &[Vec<f64>],
) -> Mat<f64> {
    Mat::from_fn(x.nrows(), x.ncols(), |i, j| {
        f64::from(x[[i, j]]) - means[centre(i)][j]
    })
}

/// The shrinkage target of a covariance, scikit-learn's
/// `shrunk_covariance(C, s)`: `s mu` on every diagonal entry, `mu` the mean
/// variance `trace(C) / d`.
fn shrink_target(trace: f64, d: usize, s: f64) -> f64 {
    s * trace / d as f64
}

/// `(1 - s) cov + diag(extra)`.
fn shrunk(mut cov: Mat<f64>, s: f64, extra: &[f64]) -> Mat<f64> {
    let d = cov.nrows();
    for j in 0..d {
        for i in 0..d {
            cov[(i, j)] *= 1.0 - s;
        }
        cov[(j, j)] += extra[j];
    }
    cov
}

/// The biased covariance of the rows of `c` (already centred).
fn scatter(c: &Mat<f64>) -> Mat<f64> {
    let n = c.nrows() as f64;
    let mut s = c.transpose() * c;
    for j in 0..s.ncols() {
        for i in 0..s.nrows() {
            s[(i, j)] /= n;
        }
    }
    s
}

/// The within-identity scatter, scikit-learn's `_class_cov` with shrinkage
/// `s`: `sum_k (n_k / n) cov_k`, each class covariance shrunk on its own.
fn within_scatter(x: ArrayView2<'_, f32>, classes: &[Vec<usize>], s: f64) -> Mat<f64> {
    let (n, d) = x.dim();
    let mut class_of = vec![0usize; n];
    let mut means = Vec::with_capacity(classes.len());
    for (k, rows) in classes.iter().enumerate() {
        let mut m = vec![0.0f64; d];
        for &r in rows {
            class_of[r] = k;
            for (acc, &v) in m.iter_mut().zip(x.row(r)) {
                *acc += f64::from(v);
            }
        }
        m.iter_mut().for_each(|v| *v /= rows.len() as f64);
        means.push(m);
    }
    let c = centred(x, |i| class_of[i], &means);
    let pooled = scatter(&c);
    // Each class covariance is shrunk towards its own mean variance; weighted
    // by the priors n_k / n those targets add up to the pooled mean variance.
    let mut trace = (0..d).map(|j| pooled[(j, j)]).sum::<f64>();
    if trace <= f64::EPSILON * d as f64 {
        // No identity has two photos (a tiny database, or an episode's
        // pseudo-gallery): no within-identity spread is observed, so the
        // shrinkage target takes its scale from the spread of all rows and
        // the whitening reduces to centring.
        let all: Vec<f64> = (0..d)
            .map(|j| x.column(j).iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64)
            .collect();
        trace = x
            .outer_iter()
            .map(|r| {
                r.iter()
                    .zip(&all)
                    .map(|(&v, m)| (f64::from(v) - m).powi(2))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / n as f64;
    }
    shrunk(pooled, s, &vec![shrink_target(trace, d, s); d])
}

/// The lower Cholesky factor of `m`; an error names what could not be
/// factorised (singular, or so close that a pivot is below [`SINGULAR`]
/// of the mean diagonal: a dimension the database never varies in).
fn cholesky(m: &Mat<f64>, what: &str, s: f64) -> Result<Mat<f64>> {
    let d = m.nrows();
    let scale = (0..d).map(|j| m[(j, j)]).sum::<f64>() / d as f64;
    let singular = || OpensetError::InvalidParam {
        name: "shrinkage",
        reason: format!(
            "the {what} ({d} x {d}) is singular at shrinkage {s}: the database has too few \
             photos per dimension, or a dimension that never varies; raise the shrinkage"
        ),
    };
    let llt = m.llt(Side::Lower).map_err(|_| singular())?;
    let l = llt.L().to_owned();
    if scale.is_nan() || scale <= 0.0 || (0..d).any(|j| l[(j, j)] * l[(j, j)] < SINGULAR * scale) {
        return Err(singular());
    }
    Ok(l)
}

/// Makes the largest-magnitude entry of each column positive (the sign
/// convention of scikit-learn's PCA: eigenvectors have no sign of their own).
fn fix_signs(v: &mut Mat<f64>) {
    for j in 0..v.ncols() {
        let mut best = 0.0f64;
        for i in 0..v.nrows() {
            if v[(i, j)].abs() > best.abs() {
                best = v[(i, j)];
            }
        }
        if best < 0.0 {
            for i in 0..v.nrows() {
                v[(i, j)] = -v[(i, j)];
            }
        }
    }
}

/// Eigen-decomposition of a symmetric matrix, largest eigenvalue first.
fn eigh_desc(m: &Mat<f64>, what: &str) -> Result<(Vec<f64>, Mat<f64>)> {
    let e = m
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| OpensetError::InvalidParam {
            name: "embeddings",
            reason: format!("the eigen-decomposition of the {what} did not converge"),
        })?;
    let d = m.nrows();
    let vals: Vec<f64> = (0..d).rev().map(|j| e.S()[j]).collect();
    let u = e.U();
    let vecs = Mat::from_fn(d, d, |i, j| u[(i, d - 1 - j)]);
    Ok((vals, vecs))
}

/// The number of dims kept: `wanted` when set (at most `max`, else an
/// error), else `max`.
fn kept(wanted: Option<usize>, max: usize, method: Adaptation) -> Result<usize> {
    match wanted {
        Some(k) if k > max => Err(OpensetError::InvalidParam {
            name: "dim",
            reason: format!("{method} can give at most {max} dimensions here, asked for {k}"),
        }),
        Some(k) => Ok(k),
        None => Ok(max),
    }
}

/// PCA whitening: `W = V_k diag(1 / sqrt(lambda_k + s mean(lambda)))` with
/// the unbiased covariance (scikit-learn's `explained_variance_`).
fn pca_whiten(x: ArrayView2<'_, f32>, mean: &[f64], p: &ValidAdaptParams) -> Result<Array2<f32>> {
    let (n, d) = x.dim();
    let c = centred(x, |_| 0, std::slice::from_ref(&mean.to_vec()));
    let mut cov = c.transpose() * &c;
    for j in 0..d {
        for i in 0..d {
            cov[(i, j)] /= (n - 1) as f64;
        }
    }
    let (vals, mut vecs) = eigh_desc(&cov, "covariance")?;
    let top = vals.first().copied().unwrap_or(0.0).max(0.0);
    let rank = vals
        .iter()
        .take(n - 1)
        .take_while(|&&v| v > top * 1e-10 && v > 0.0)
        .count();
    if rank == 0 {
        return Err(OpensetError::InvalidParam {
            name: "embeddings",
            reason: "all rows are equal: no principal axis to whiten".into(),
        });
    }
    let k = kept(p.dim(), rank, Adaptation::PcaWhiten)?;
    fix_signs(&mut vecs);
    let floor = p.shrinkage() * vals.iter().map(|v| v.max(0.0)).sum::<f64>() / d as f64;
    Ok(Array2::from_shape_fn((d, k), |(i, j)| {
        (vecs[(i, j)] / (vals[j] + floor).sqrt()) as f32
    }))
}

/// Whitening or LDA fitted inside the span of the centred rows, when it is
/// smaller than the input dimension (fewer photos than dimensions, as in
/// most databases and every episode's pseudo-gallery): the same projection
/// as the full fit at a fraction of its cost (`O(n^2 d + n^3 + d^2 n)`
/// instead of `O(d^3)`), or `None` to fit in full.
///
/// With `U` (`d x r`) an orthonormal basis of that span, every scatter is
/// `U B U^T` inside it, and the shrinkage adds `s mu I` everywhere (`mu`
/// the mean variance over all `d` dimensions), so
/// `S_w = U B_w U^T + s mu_w (I - U U^T)`:
/// - whitening: `W = U B_w^-1/2 U^T + (s mu_w)^-1/2 (I - U U^T)`, whose
///   `W W^T = S_w^-1` gives the same cosines as the full fit's Cholesky
///   factor (the two differ by a rotation);
/// - LDA: the between scatter is `U B_b U^T + s (mu_t - mu_w) (I - U U^T)`,
///   so every generalised eigenvector is inside the span or outside it
///   with the one eigenvalue `(mu_t - mu_w) / mu_w`; those inside come from
///   the `r x r` problem `(B_b, B_w)`, normalised as the full fit's. When
///   an outside direction would rank among the kept ones (the full fit's
///   choice among them is arbitrary), the full fit decides: `None`.
///
/// Shrinkage 0 leaves `S_w` singular outside the span: the full fit's
/// error, here at once.
fn span_fit(
    x: ArrayView2<'_, f32>,
    mean: &[f64],
    classes: &[Vec<usize>],
    p: &ValidAdaptParams,
) -> Result<Option<Array2<f32>>> {
    let (n, d) = x.dim();
    if n >= d {
        return Ok(None);
    }
    let s = p.shrinkage();
    let c = centred(x, |_| 0, std::slice::from_ref(&mean.to_vec()));
    // U from the eigenvectors of the n x n Gram matrix: C^T v / sqrt(lambda).
    let gram = &c * c.transpose();
    let (vals, vecs) = eigh_desc(&gram, "Gram matrix of the rows")?;
    let top = vals.first().copied().unwrap_or(0.0).max(0.0);
    let r = vals
        .iter()
        .take_while(|&&v| v > top * 1e-12 && v > 0.0)
        .count();
    if r == 0 || r >= d {
        return Ok(None);
    }
    let coef = Mat::from_fn(n, r, |i, j| vecs[(i, j)] / vals[j].sqrt());
    let u = c.transpose() * &coef;
    // Coordinates in the span, and the class-centred ones.
    let z = &c * &u;
    let mut class_of = vec![0usize; n];
    let mut means = Vec::with_capacity(classes.len());
    for (k, rows) in classes.iter().enumerate() {
        let mut m = vec![0.0f64; r];
        for &i in rows {
            class_of[i] = k;
            for (j, acc) in m.iter_mut().enumerate() {
                *acc += z[(i, j)];
            }
        }
        m.iter_mut().for_each(|v| *v /= rows.len() as f64);
        means.push(m);
    }
    let zw = Mat::from_fn(n, r, |i, j| z[(i, j)] - means[class_of[i]][j]);
    let within_raw = scatter(&zw);
    let total_raw = scatter(&z);
    let trace_t = (0..r).map(|j| total_raw[(j, j)]).sum::<f64>();
    let mut trace_w = (0..r).map(|j| within_raw[(j, j)]).sum::<f64>();
    if trace_w <= f64::EPSILON * d as f64 {
        // As `within_scatter`: no repeated identity, the total spread.
        trace_w = trace_t;
    }
    let floor_w = shrink_target(trace_w, d, s);
    let singular = || OpensetError::InvalidParam {
        name: "shrinkage",
        reason: format!(
            "the within-identity scatter ({d} x {d}) is singular at shrinkage {s}: the \
             database has too few photos per dimension ({n} rows), or a dimension that never \
             varies; raise the shrinkage"
        ),
    };
    if floor_w.is_nan() || floor_w <= 0.0 || floor_w < SINGULAR * trace_w / d as f64 {
        return Err(singular());
    }
    let within = shrunk(within_raw, s, &vec![floor_w; r]);
    let outside = 1.0 / floor_w.sqrt();
    if p.method() == Adaptation::Whiten {
        let (wv, wu) = eigh_desc(&within, "within-identity scatter")?;
        if wv.iter().any(|&v| v.is_nan() || v <= SINGULAR * floor_w) {
            return Err(singular());
        }
        // F = U (B_w^-1/2 - outside I) U^T, then W = F + outside I.
        let scaled = Mat::from_fn(r, r, |i, k| wu[(i, k)] * (1.0 / wv[k].sqrt() - outside));
        let inner = &scaled * wu.transpose();
        let mut w = &u * &inner * u.transpose();
        for j in 0..d {
            w[(j, j)] += outside;
        }
        return Ok(Some(to_ndarray(w.as_ref())));
    }
    // LDA inside the span.
    let total = shrunk(total_raw, s, &vec![shrink_target(trace_t, d, s); r]);
    let l = cholesky(&within, "within-identity scatter", s)?;
    let mut a = &total - &within;
    l.solve_lower_triangular_in_place(a.as_mut());
    let mut m = a.transpose().to_owned();
    l.solve_lower_triangular_in_place(m.as_mut());
    let m = Mat::from_fn(r, r, |i, j| 0.5 * (m[(i, j)] + m[(j, i)]));
    let (ev, eu) = eigh_desc(&m, "between-identity scatter")?;
    let k = kept(p.dim(), (classes.len() - 1).min(d), Adaptation::Lda)?;
    let outside_value = (trace_t - trace_w) / trace_w;
    let margin = 1e-9 * ev.first().copied().unwrap_or(0.0).abs().max(1.0);
    if k > r || ev[k - 1] <= outside_value + margin {
        return Ok(None);
    }
    let mut vr = Mat::from_fn(r, k, |i, j| eu[(i, j)]);
    l.transpose().solve_upper_triangular_in_place(vr.as_mut());
    let mut v = &u * &vr;
    fix_signs(&mut v);
    Ok(Some(to_ndarray(v.as_ref())))
}

/// LDA: the generalised eigenvectors of (between, within) scatter,
/// normalised so `V^T S_w V = I`, the `k` of largest eigenvalue.
fn lda(
    x: ArrayView2<'_, f32>,
    mean: &[f64],
    within: &Mat<f64>,
    l: &Mat<f64>,
    n_classes: usize,
    p: &ValidAdaptParams,
) -> Result<Array2<f32>> {
    let d = x.ncols();
    let s = p.shrinkage();
    let c = centred(x, |_| 0, std::slice::from_ref(&mean.to_vec()));
    let total_raw = scatter(&c);
    let trace = (0..d).map(|j| total_raw[(j, j)]).sum::<f64>();
    let total = shrunk(total_raw, s, &vec![shrink_target(trace, d, s); d]);
    let between = &total - within;
    // M = L^-1 S_b L^-T, symmetric.
    let mut a = between;
    l.solve_lower_triangular_in_place(a.as_mut());
    let mut m = a.transpose().to_owned();
    l.solve_lower_triangular_in_place(m.as_mut());
    let m = Mat::from_fn(d, d, |i, j| 0.5 * (m[(i, j)] + m[(j, i)]));
    let (_, u) = eigh_desc(&m, "between-identity scatter")?;
    let k = kept(p.dim(), (n_classes - 1).min(d), Adaptation::Lda)?;
    // V = L^-T U_k: solve L^T V = U_k.
    let mut v = Mat::from_fn(d, k, |i, j| u[(i, j)]);
    l.transpose().solve_upper_triangular_in_place(v.as_mut());
    fix_signs(&mut v);
    Ok(to_ndarray(v.as_ref()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ndarray::array;

    fn params(m: Adaptation, s: f64) -> ValidAdaptParams {
        AdaptParams::new(m).shrinkage(s).check().unwrap()
    }

    /// Cosines between the rows of `[x; q]` after the projection.
    fn cosines(p: &Projection, x: &Array2<f32>, q: &Array2<f32>) -> Array2<f32> {
        let all = ndarray::concatenate(Axis(0), &[x.view(), q.view()]).unwrap();
        let y = p.transform(all.view()).unwrap();
        y.dot(&y.t())
    }

    /// Fewer rows than dimensions: the fit inside the span of the rows
    /// gives the cosines of the full fit (forced here by stacking the rows
    /// twice, which changes no scatter), for rows outside that span too.
    #[test]
    fn the_fit_inside_the_span_of_the_rows_equals_the_full_fit() {
        let (n, d) = (7, 10);
        let val = |i: usize| ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * 2.0;
        let x = Array2::from_shape_fn((n, d), |(i, j)| val(i * d + j) + 0.3 * (i % 3) as f32);
        let q = Array2::from_shape_fn((4, d), |(i, j)| val(500 + i * d + j));
        let labels = ["a", "a", "a", "b", "b", "c", "c"];
        let twice = ndarray::concatenate(Axis(0), &[x.view(), x.view()]).unwrap();
        let labels2: Vec<&str> = labels.iter().chain(labels.iter()).copied().collect();
        for method in [Adaptation::Whiten, Adaptation::Lda] {
            for s in [0.1, 0.5, 0.9] {
                let p = params(method, s);
                let mean: Vec<f64> = (0..d)
                    .map(|j| x.column(j).iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64)
                    .collect();
                let inside = span_fit(x.view(), &mean, &classes(&labels), &p).unwrap();
                assert!(inside.is_some(), "{method} {s}: fitted in full");
                let span = Projection::fit(x.view(), &labels, &p).unwrap();
                let full = Projection::fit(twice.view(), &labels2, &p).unwrap();
                assert_eq!(span.output_dim(), full.output_dim(), "{method} {s}");
                let (a, b) = (cosines(&span, &x, &q), cosines(&full, &x, &q));
                let err = (&a - &b).mapv(f32::abs).fold(0.0f32, |m, &v| m.max(v));
                assert!(err < 1e-5, "{method} {s}: {err}\n{a}\n{b}");
            }
            // Shrinkage 0 leaves the scatter singular outside the span.
            let e = Projection::fit(x.view(), &labels, &params(method, 0.0)).unwrap_err();
            assert!(e.to_string().contains("singular"), "{e}");
        }
    }

    #[test]
    fn names_round_trip() {
        for a in Adaptation::ALL {
            assert_eq!(a.name().parse::<Adaptation>().unwrap(), a);
        }
        assert!("zca".parse::<Adaptation>().is_err());
    }

    #[test]
    fn centring_subtracts_the_mean() {
        let x = array![[1.0f32, 2.0], [3.0, 2.0]];
        let p = Projection::fit(x.view(), &["a", "b"], &params(Adaptation::Center, 0.0)).unwrap();
        assert_eq!(p.mean(), &array![2.0f32, 2.0]);
        let y = p.transform(x.view()).unwrap();
        assert_eq!(y, array![[-1.0f32, 0.0], [1.0, 0.0]]);
    }

    #[test]
    fn whitening_makes_the_within_scatter_the_identity() {
        // Worked by hand: class a deviates by (+-1, 0) from its mean, class
        // b by (0, +-2): pooled biased scatter S_w = (1/4) diag(2, 8) =
        // diag(0.5, 2); at shrinkage 0, W = L^-T = diag(1/sqrt(0.5), 1/sqrt(2)).
        let x = array![[1.0f32, 0.0], [-1.0, 0.0], [5.0, 2.0], [5.0, -2.0]];
        let p = Projection::fit(
            x.view(),
            &["a", "a", "b", "b"],
            &params(Adaptation::Whiten, 0.0),
        )
        .unwrap();
        let w = p.matrix().unwrap();
        assert!((w[[0, 0]] - 2f32.sqrt()).abs() < 1e-6, "{w}");
        assert!((w[[1, 1]] - 0.5f32.sqrt()).abs() < 1e-6, "{w}");
        assert!(w[[0, 1]].abs() < 1e-6 && w[[1, 0]].abs() < 1e-6, "{w}");
        // Shrinkage 0.5: each class covariance becomes 0.5 C_k + 0.5 mu_k I
        // with mu_k its mean variance: class a: C = diag(1, 0), mu = 1/2;
        // class b: C = diag(0, 4), mu = 2; priors 1/2 each:
        // S_w = 0.5 diag(0.5, 2) + 0.5 * 0.5 * (1/2 + 2) I = diag(0.875, 1.625).
        let p = Projection::fit(
            x.view(),
            &["a", "a", "b", "b"],
            &params(Adaptation::Whiten, 0.5),
        )
        .unwrap();
        let w = p.matrix().unwrap();
        assert!((w[[0, 0]] - 0.875f32.powf(-0.5)).abs() < 1e-6, "{w}");
        assert!((w[[1, 1]] - 1.625f32.powf(-0.5)).abs() < 1e-6, "{w}");
    }

    #[test]
    fn bad_inputs_are_named() {
        let x = array![[1.0f32, 0.0], [0.0, 1.0]];
        let p = params(Adaptation::Lda, 0.5);
        assert!(matches!(
            Projection::fit(x.view(), &["a"], &p),
            Err(OpensetError::Length { .. })
        ));
        assert!(Projection::fit(x.view(), &["a", "a"], &p).is_err());
        let nan = array![[f32::NAN, 0.0], [0.0, 1.0]];
        assert!(matches!(
            Projection::fit(nan.view(), &["a", "b"], &p),
            Err(OpensetError::NonFinite { .. })
        ));
        let ok = Projection::fit(x.view(), &["a", "b"], &params(Adaptation::Center, 0.0)).unwrap();
        let wrong = array![[1.0f32, 0.0, 0.0]];
        assert!(matches!(
            ok.transform(wrong.view()),
            Err(OpensetError::Shape { .. })
        ));
        let too_many = AdaptParams::new(Adaptation::Lda)
            .dim(Some(5))
            .check()
            .unwrap();
        let x3 = array![[1.0f32, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]];
        assert!(Projection::fit(x3.view(), &["a", "a", "b", "b"], &too_many).is_err());
    }

    #[test]
    fn without_a_repeated_identity_whitening_reduces_to_centring() {
        // Every identity has one photo: no within-identity spread is seen,
        // so shrinkage gives an isotropic scatter and the projected rows are
        // the centred rows, normalised.
        let x = array![[1.0f32, 0.0, 0.2], [0.0, 1.0, 0.1], [0.5, 0.5, 0.9]];
        let labels = ["a", "b", "c"];
        let w = Projection::fit(x.view(), &labels, &params(Adaptation::Whiten, 0.5)).unwrap();
        let c = Projection::fit(x.view(), &labels, &params(Adaptation::Center, 0.0)).unwrap();
        let (yw, yc) = (
            w.transform(x.view()).unwrap(),
            c.transform(x.view()).unwrap(),
        );
        assert!(
            yw.iter().zip(&yc).all(|(a, b)| (a - b).abs() < 1e-5),
            "{yw} {yc}"
        );
        assert!(Projection::fit(x.view(), &labels, &params(Adaptation::Whiten, 0.0)).is_err());
    }

    #[test]
    fn singular_within_scatter_asks_for_shrinkage() {
        // 3 dims, 2 classes of 2: within scatter has rank 2.
        let x = array![
            [1.0f32, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [1.0, 1.0, 1.0],
            [2.0, 1.0, 1.0]
        ];
        let labels = ["a", "a", "b", "b"];
        let err = Projection::fit(x.view(), &labels, &params(Adaptation::Whiten, 0.0)).unwrap_err();
        assert!(err.to_string().contains("shrinkage"), "{err}");
        assert!(Projection::fit(x.view(), &labels, &params(Adaptation::Whiten, 0.3)).is_ok());
    }
}
