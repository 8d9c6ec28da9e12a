//! The native engine: Barnes-Hut t-SNE (van der Maaten, "Accelerating t-SNE
//! using tree-based algorithms", JMLR 15, 2014), with the optimiser and the
//! conventions of scikit-learn's `TSNE(method="barnes_hut")`, parallel on the
//! rayon pool.
//!
//! * Input affinities: exact k-NN (`k = min(n - 1, ⌊3·perplexity + 1⌋)`,
//!   squared Euclidean distances from blocked GEMMs), the perplexity binary
//!   search of [`super::calibrate_row`] on those neighbours, then
//!   `P = (P + Pᵀ) / ΣP` kept sparse (CSR).
//! * Initial embedding: the first principal components (oversampled subspace
//!   iteration with a Rayleigh-Ritz step), scaled so the first column has
//!   standard deviation 1e-4; or N(0, 1e-4²) from the seeded generator.
//! * Gradient of `KL(P ‖ Q)` with its factor 4 (scikit-learn's units, so its
//!   learning rates carry over unchanged): the attractive part exactly over
//!   the sparse P, the repulsive part through a quadtree (octree in 3-D)
//!   rebuilt every iteration, a cell summarised by its centre of mass when
//!   `width² < θ² · distance²` and the point lies outside it.
//! * Optimiser: momentum 0.5 during early exaggeration, then 0.8; the
//!   delta-bar-delta gains (+0.2 / ×0.8, at least 0.01); update and gains
//!   restart when exaggeration ends, as scikit-learn's two stages do.
//!
//! Every point's forces are computed independently and every reduction runs
//! in a fixed order, so the result is the same bit for bit for any number of
//! threads.

// Coordinate loops `for k in 0..D` index several fixed-size arrays at once.
#![allow(clippy::needless_range_loop)]

use ndarray::{Array2, Axis, s};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use rayon::prelude::*;

use super::{calibrate_row, standard_normal};
use crate::error::Result;

/// Rows per block of the brute-force k-NN reference (tests).
#[cfg(test)]
const KNN_BLOCK: usize = 128;
/// Points a tree leaf holds before it splits.
const LEAF_SIZE: usize = 8;
/// Depth at which a cell stops splitting (coincident points).
const MAX_DEPTH: usize = 48;
/// scikit-learn's `min_gain`.
const MIN_GAIN: f64 = 0.01;
/// Standard deviation of the first column of the initial embedding.
const INIT_STD: f64 = 1e-4;
/// Subspace iterations of the PCA initialisation.
const PCA_ITERS: usize = 60;
/// Extra vectors of the PCA subspace iteration.
const PCA_OVERSAMPLE: usize = 8;

/// The resolved settings of one run (checked by the caller).
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub dims: usize,
    pub perplexity: f64,
    pub theta: f64,
    pub max_iter: usize,
    pub exaggeration_iter: usize,
    pub exaggeration: f64,
    pub learning_rate: f64,
    pub pca_init: bool,
    pub seed: u64,
}

/// The symmetric joint affinities, one CSR row per point.
pub(super) struct SparseP {
    indptr: Vec<usize>,
    cols: Vec<u32>,
    vals: Vec<f64>,
}

/// Exact `k` nearest neighbours of every row by squared Euclidean distance
/// (itself excluded), nearest first, ties by the lower index; `k < n`.
///
/// The candidates come from reid-index's f32 GEMM top-k on augmented rows:
/// for the centred rows, `[x_i, 1] · [x_j, -‖x_j‖²/2] = -(‖x_i - x_j‖² -
/// ‖x_i‖²) / 2`, so the largest inner products of row `i` are its nearest
/// rows. `k + 1` are kept (row `i` itself is among them unless it has
/// duplicates), their distances recomputed in f64, and the nearest `k`
/// other rows kept. The search's own errors (none for the checked, finite
/// input) pass through as [`crate::EvalError::Index`].
fn knn(x: &Array2<f64>, k: usize) -> Result<(Vec<u32>, Vec<f64>)> {
    let (n, d) = x.dim();
    let mut xc = x.clone();
    if let Some(mean) = x.mean_axis(Axis(0)) {
        xc -= &mean;
    }
    let sq: Vec<f64> = xc.rows().into_iter().map(|r| r.dot(&r)).collect();
    let queries =
        Array2::<f32>::from_shape_fn(
            (n, d + 1),
            |(i, j)| {
                if j < d { xc[[i, j]] as f32 } else { 1.0 }
            },
        );
    let gallery = Array2::<f32>::from_shape_fn((n, d + 1), |(i, j)| {
        if j < d {
            xc[[i, j]] as f32
        } else {
            (-0.5 * sq[i]) as f32
        }
    });
    let want = usize::min(k + 1, n);
    let candidates = reid_index::exact_topk(queries.view(), gallery.view(), want)?.indices;
    let order = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    let rows: Vec<Vec<(f64, u32)>> = candidates
        .outer_iter()
        .into_par_iter()
        .enumerate()
        .map(|(i, row)| {
            let xi = xc.row(i);
            let mut near: Vec<(f64, u32)> = row
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| {
                    let dist: f64 = xi
                        .iter()
                        .zip(xc.row(j))
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum();
                    (dist, j as u32)
                })
                .collect();
            near.sort_unstable_by(order);
            near.truncate(k);
            near
        })
        .collect();
    let mut idx = Vec::with_capacity(n * k);
    let mut dist = Vec::with_capacity(n * k);
    for row in rows {
        for (dj, j) in row {
            idx.push(j);
            dist.push(dj);
        }
    }
    Ok((idx, dist))
}

/// The f64 brute-force k-NN (blocked GEMMs), the reference [`knn`] is
/// tested against.
#[cfg(test)]
fn knn_brute(x: &Array2<f64>, sq: &[f64], k: usize) -> (Vec<u32>, Vec<f64>) {
    let n = x.nrows();
    let starts: Vec<usize> = (0..n).step_by(KNN_BLOCK).collect();
    let blocks: Vec<(Vec<u32>, Vec<f64>)> = starts
        .par_iter()
        .map(|&start| {
            let end = usize::min(start + KNN_BLOCK, n);
            let gram = x.slice(s![start..end, ..]).dot(&x.t());
            let mut cand: Vec<(f64, u32)> = Vec::with_capacity(n);
            let mut idx = Vec::with_capacity((end - start) * k);
            let mut dist = Vec::with_capacity((end - start) * k);
            let order = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
            for (r, g) in gram.rows().into_iter().enumerate() {
                let i = start + r;
                cand.clear();
                cand.extend(
                    g.iter()
                        .zip(sq)
                        .enumerate()
                        .filter(|&(j, _)| j != i)
                        .map(|(j, (&gj, &sj))| ((sq[i] + sj - 2.0 * gj).max(0.0), j as u32)),
                );
                if k < cand.len() {
                    cand.select_nth_unstable_by(k - 1, order);
                }
                let top = &mut cand[..k];
                top.sort_unstable_by(order);
                for &(d, j) in top.iter() {
                    idx.push(j);
                    dist.push(d);
                }
            }
            (idx, dist)
        })
        .collect();
    let mut idx = Vec::with_capacity(n * k);
    let mut dist = Vec::with_capacity(n * k);
    for (i, d) in blocks {
        idx.extend(i);
        dist.extend(d);
    }
    (idx, dist)
}

impl SparseP {
    /// scikit-learn's `_joint_probabilities_nn`: conditional Gaussians over
    /// the k nearest neighbours at `perplexity`, symmetrised, normalised.
    pub(super) fn new(x: &Array2<f64>, perplexity: f64) -> Result<Self> {
        let n = x.nrows();
        let k = usize::min(n - 1, (3.0 * perplexity + 1.0) as usize).max(1);
        let (idx, dist) = knn(x, k)?;
        let desired = perplexity.ln();
        let cond: Vec<f64> = dist
            .par_chunks(k)
            .flat_map_iter(|d| {
                let (beta, sum_p, _) = calibrate_row(d, None, desired);
                d.iter().map(move |&dj| (-dj * beta).exp() / sum_p)
            })
            .collect();
        // P + Pᵀ as (row, col, value) triples, merged per (row, col).
        let mut triples: Vec<(u32, u32, f64)> = Vec::with_capacity(2 * n * k);
        for (e, (&j, &p)) in idx.iter().zip(&cond).enumerate() {
            let i = (e / k) as u32;
            triples.push((i, j, p));
            triples.push((j, i, p));
        }
        triples.par_sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut indptr = vec![0usize; n + 1];
        let mut cols = Vec::with_capacity(triples.len());
        let mut vals: Vec<f64> = Vec::with_capacity(triples.len());
        let mut last: Option<(u32, u32)> = None;
        for &(i, j, p) in &triples {
            if last == Some((i, j)) {
                if let Some(v) = vals.last_mut() {
                    *v += p;
                }
                continue;
            }
            last = Some((i, j));
            cols.push(j);
            vals.push(p);
            indptr[i as usize + 1] += 1;
        }
        for i in 0..n {
            indptr[i + 1] += indptr[i];
        }
        let total: f64 = vals.iter().sum::<f64>().max(f64::EPSILON);
        vals.iter_mut().for_each(|v| *v /= total);
        Ok(Self { indptr, cols, vals })
    }

    /// Every stored `(i, j, P_ij)`, rows ascending, columns ascending.
    pub(super) fn entries(&self) -> impl Iterator<Item = (usize, usize, f64)> + '_ {
        (0..self.indptr.len() - 1).flat_map(move |i| {
            let (cols, vals) = self.row(i);
            cols.iter()
                .zip(vals)
                .map(move |(&j, &p)| (i, j as usize, p))
        })
    }

    fn row(&self, i: usize) -> (&[u32], &[f64]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        (&self.cols[a..b], &self.vals[a..b])
    }
}

/// Orthonormalises the columns of `v` in place (modified Gram-Schmidt,
/// twice); a column that vanishes against the earlier ones becomes zero.
fn orthonormalise(v: &mut Array2<f64>) {
    let m = v.ncols();
    for _ in 0..2 {
        for c in 0..m {
            for p in 0..c {
                let (earlier, mut col) = v.multi_slice_mut((s![.., p], s![.., c]));
                let dot = earlier.dot(&col);
                col.scaled_add(-dot, &earlier);
            }
            let mut col = v.column_mut(c);
            let norm = col.dot(&col).sqrt();
            if norm > 1e-150 {
                col /= norm;
            } else {
                col.fill(0.0);
            }
        }
    }
}

/// Eigenvalues (descending) and eigenvectors (columns) of the symmetric
/// `a` by cyclic Jacobi rotations.
fn symmetric_eigen(mut a: Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let m = a.nrows();
    let mut v = Array2::<f64>::eye(m);
    for _ in 0..100 {
        let off: f64 = (0..m)
            .flat_map(|i| (0..m).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]] * a[[i, j]])
            .sum();
        let scale: f64 = a.iter().map(|x| x * x).sum();
        if off <= 1e-30 * scale.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..m {
            for q in (p + 1)..m {
                let apq = a[[p, q]];
                if apq == 0.0 {
                    continue;
                }
                let tau = (a[[q, q]] - a[[p, p]]) / (2.0 * apq);
                let t = tau.signum() / (tau.abs() + (1.0 + tau * tau).sqrt());
                let t = if tau == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let sn = t * c;
                for k in 0..m {
                    let (akp, akq) = (a[[k, p]], a[[k, q]]);
                    a[[k, p]] = c * akp - sn * akq;
                    a[[k, q]] = sn * akp + c * akq;
                }
                for k in 0..m {
                    let (apk, aqk) = (a[[p, k]], a[[q, k]]);
                    a[[p, k]] = c * apk - sn * aqk;
                    a[[q, k]] = sn * apk + c * aqk;
                }
                for k in 0..m {
                    let (vkp, vkq) = (v[[k, p]], v[[k, q]]);
                    v[[k, p]] = c * vkp - sn * vkq;
                    v[[k, q]] = sn * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| a[[j, j]].total_cmp(&a[[i, i]]).then(i.cmp(&j)));
    let values = order.iter().map(|&i| a[[i, i]]).collect();
    let vectors = Array2::from_shape_fn((m, m), |(r, c)| v[[r, order[c]]]);
    (values, vectors)
}

/// The initial embedding: the projection of the centred `x` on its first
/// `dims` principal axes (each axis signed so its largest-magnitude
/// coefficient is positive), scaled so the first column has standard
/// deviation [`INIT_STD`]. A column without variance (rank below `dims`)
/// is filled from `rng` instead, so no coordinate starts degenerate.
pub(super) fn pca_init(x: &Array2<f64>, dims: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    let (n, d) = x.dim();
    let mut xc = x.clone();
    if let Some(mean) = x.mean_axis(Axis(0)) {
        xc -= &mean;
    }
    let m = usize::min(dims + PCA_OVERSAMPLE, d);
    let mut v = Array2::from_shape_fn((d, m), |_| standard_normal(rng));
    orthonormalise(&mut v);
    // Iterate on the d × d covariance when it is the smaller side.
    let cov = (d <= n).then(|| xc.t().dot(&xc));
    for _ in 0..PCA_ITERS {
        v = match &cov {
            Some(c) => c.dot(&v),
            None => xc.t().dot(&xc.dot(&v)),
        };
        orthonormalise(&mut v);
    }
    let w = xc.dot(&v);
    let (_, vecs) = symmetric_eigen(w.t().dot(&w));
    let mut axes = v.dot(&vecs.slice(s![.., ..dims]));
    for mut axis in axes.columns_mut() {
        let big = axis
            .iter()
            .copied()
            .fold(0.0_f64, |acc, a| if a.abs() > acc.abs() { a } else { acc });
        if big < 0.0 {
            axis.mapv_inplace(|a| -a);
        }
    }
    let mut y = xc.dot(&axes);
    let std0 = y.column(0).std(0.0);
    let scale = if std0 > 0.0 { INIT_STD / std0 } else { 0.0 };
    y.mapv_inplace(|a| a * scale);
    for mut col in y.columns_mut() {
        let spread = col.std(0.0);
        if spread.is_nan() || spread <= INIT_STD * 1e-6 {
            col.iter_mut()
                .for_each(|a| *a = INIT_STD * standard_normal(rng));
        }
    }
    debug_assert_eq!(y.dim(), (n, dims));
    y
}

/// One cell of the space-partitioning tree.
#[derive(Debug, Clone, Copy)]
struct Cell<const D: usize> {
    centre: [f64; D],
    half: f64,
    com: [f64; D],
    count: u32,
    /// Index of the first of the 2^D children; 0 for a leaf.
    children: u32,
    start: u32,
    end: u32,
}

/// A quadtree (D = 2) or octree (D = 3) over the current embedding; its
/// buffers are reused from one iteration to the next.
struct Tree<const D: usize> {
    cells: Vec<Cell<D>>,
    /// Point indices, grouped by leaf (each cell covers `start..end`).
    order: Vec<u32>,
    /// The coordinates of `order`, in that order.
    points: Vec<[f64; D]>,
    scratch: Vec<u32>,
    codes: Vec<u8>,
    todo: Vec<(u32, usize)>,
}

impl<const D: usize> Tree<D> {
    fn new() -> Self {
        Self {
            cells: Vec::new(),
            order: Vec::new(),
            points: Vec::new(),
            scratch: Vec::new(),
            codes: Vec::new(),
            todo: Vec::new(),
        }
    }

    fn cell(
        &self,
        centre: [f64; D],
        half: f64,
        start: usize,
        end: usize,
        y: &[[f64; D]],
    ) -> Cell<D> {
        let mut com = [0.0; D];
        for &i in &self.order[start..end] {
            for (c, v) in com.iter_mut().zip(y[i as usize]) {
                *c += v;
            }
        }
        let count = end - start;
        if count > 0 {
            com.iter_mut().for_each(|c| *c /= count as f64);
        }
        Cell {
            centre,
            half,
            com,
            count: count as u32,
            children: 0,
            start: start as u32,
            end: end as u32,
        }
    }

    fn build(&mut self, y: &[[f64; D]]) {
        let n = y.len();
        let mut lo = [f64::INFINITY; D];
        let mut hi = [f64::NEG_INFINITY; D];
        for p in y {
            for b in 0..D {
                lo[b] = lo[b].min(p[b]);
                hi[b] = hi[b].max(p[b]);
            }
        }
        let mut centre = [0.0; D];
        let mut half = 0.0_f64;
        for b in 0..D {
            centre[b] = 0.5 * (lo[b] + hi[b]);
            half = half.max(0.5 * (hi[b] - lo[b]));
        }
        // A little slack so the extreme points fall strictly inside.
        half = half * (1.0 + 1e-9) + 1e-300;
        self.order.clear();
        self.order.extend(0..n as u32);
        self.cells.clear();
        let root = self.cell(centre, half, 0, n, y);
        self.cells.push(root);
        self.todo.clear();
        self.todo.push((0, 0));
        while let Some((ci, depth)) = self.todo.pop() {
            let cell = self.cells[ci as usize];
            let (start, end) = (cell.start as usize, cell.end as usize);
            if end - start <= LEAF_SIZE || depth >= MAX_DEPTH {
                continue;
            }
            // Counting sort of the cell's points by child (one bit per axis).
            self.codes.clear();
            let mut counts = vec![0usize; 1 << D];
            for &i in &self.order[start..end] {
                let p = y[i as usize];
                let mut code = 0u8;
                for b in 0..D {
                    if p[b] >= cell.centre[b] {
                        code |= 1 << b;
                    }
                }
                counts[code as usize] += 1;
                self.codes.push(code);
            }
            let mut offsets = vec![0usize; (1 << D) + 1];
            for c in 0..(1 << D) {
                offsets[c + 1] = offsets[c] + counts[c];
            }
            self.scratch.clear();
            self.scratch.resize(end - start, 0);
            let mut fill = offsets.clone();
            for (&i, &code) in self.order[start..end].iter().zip(&self.codes) {
                self.scratch[fill[code as usize]] = i;
                fill[code as usize] += 1;
            }
            self.order[start..end].copy_from_slice(&self.scratch);
            let first = self.cells.len() as u32;
            self.cells[ci as usize].children = first;
            let h = 0.5 * cell.half;
            for c in 0..(1 << D) {
                let mut cc = cell.centre;
                for (b, v) in cc.iter_mut().enumerate() {
                    *v += if c & (1 << b) != 0 { h } else { -h };
                }
                let child = self.cell(cc, h, start + offsets[c], start + offsets[c + 1], y);
                self.cells.push(child);
                if child.count as usize > LEAF_SIZE {
                    self.todo.push((first + c as u32, depth + 1));
                }
            }
        }
        self.points.clear();
        self.points
            .extend(self.order.iter().map(|&i| y[i as usize]));
    }

    /// `(Σ_j q_ij² (y_i − y_j), Σ_j q_ij)` over all `j ≠ i`, with
    /// `q_ij = 1 / (1 + ‖y_i − y_j‖²)`, cells far enough summarised.
    fn repulsion(
        &self,
        i: u32,
        yi: [f64; D],
        theta2: f64,
        stack: &mut Vec<u32>,
    ) -> ([f64; D], f64) {
        let mut force = [0.0; D];
        let mut z = 0.0;
        stack.clear();
        stack.push(0);
        while let Some(ci) = stack.pop() {
            let cell = &self.cells[ci as usize];
            if cell.count == 0 {
                continue;
            }
            if cell.children == 0 {
                let (a, b) = (cell.start as usize, cell.end as usize);
                for (&j, pj) in self.order[a..b].iter().zip(&self.points[a..b]) {
                    if j != i {
                        z += add_repulsion(&mut force, yi, pj);
                    }
                }
                continue;
            }
            let mut diff = [0.0; D];
            let mut d2 = 0.0;
            let mut inside = true;
            for k in 0..D {
                diff[k] = yi[k] - cell.com[k];
                d2 += diff[k] * diff[k];
                inside &= (yi[k] - cell.centre[k]).abs() <= cell.half;
            }
            let width = 2.0 * cell.half;
            if !inside && width * width < theta2 * d2 {
                let q = 1.0 / (1.0 + d2);
                let c = f64::from(cell.count);
                z += c * q;
                let cqq = c * q * q;
                for k in 0..D {
                    force[k] += cqq * diff[k];
                }
            } else {
                stack.extend((0..(1u32 << D)).map(|c| cell.children + c));
            }
        }
        (force, z)
    }

    /// Exact repulsion (θ = 0): every pair.
    fn repulsion_exact(y: &[[f64; D]], i: usize) -> ([f64; D], f64) {
        let mut force = [0.0; D];
        let mut z = 0.0;
        let yi = y[i];
        for (j, pj) in y.iter().enumerate() {
            if j != i {
                z += add_repulsion(&mut force, yi, pj);
            }
        }
        (force, z)
    }
}

/// Adds one point's repulsion `q² (y_i − y_j)` to `force` and returns its
/// kernel `q = 1 / (1 + ‖y_i − y_j‖²)`.
#[inline]
fn add_repulsion<const D: usize>(force: &mut [f64; D], yi: [f64; D], yj: &[f64; D]) -> f64 {
    let mut diff = [0.0; D];
    let mut d2 = 0.0;
    for k in 0..D {
        diff[k] = yi[k] - yj[k];
        d2 += diff[k] * diff[k];
    }
    let q = 1.0 / (1.0 + d2);
    let qq = q * q;
    for k in 0..D {
        force[k] += qq * diff[k];
    }
    q
}

/// Runs the optimisation on the standard-layout `x`; `progress` gets the
/// number of finished iterations after each one.
pub(super) fn embed(
    x: &Array2<f64>,
    settings: &Settings,
    progress: &mut dyn FnMut(usize),
) -> Result<Array2<f64>> {
    match settings.dims {
        3 => run::<3>(x, settings, progress),
        _ => run::<2>(x, settings, progress),
    }
}

fn run<const D: usize>(
    x: &Array2<f64>,
    st: &Settings,
    progress: &mut dyn FnMut(usize),
) -> Result<Array2<f64>> {
    let n = x.nrows();
    let p = SparseP::new(x, st.perplexity)?;
    let mut rng = ChaCha8Rng::seed_from_u64(st.seed);
    let init = if st.pca_init {
        pca_init(x, D, &mut rng)
    } else {
        Array2::from_shape_fn((n, D), |_| INIT_STD * standard_normal(&mut rng))
    };
    let mut y: Vec<[f64; D]> = init
        .rows()
        .into_iter()
        .map(|r| std::array::from_fn(|k| r[k]))
        .collect();
    let mut update = vec![[0.0_f64; D]; n];
    let mut gains = vec![[1.0_f64; D]; n];
    let mut tree = Tree::<D>::new();
    let theta2 = st.theta * st.theta;
    let mut forces: Vec<(u32, [f64; D], [f64; D], f64)> = Vec::with_capacity(n);
    for it in 0..st.max_iter {
        if it == st.exaggeration_iter {
            update.iter_mut().for_each(|u| *u = [0.0; D]);
            gains.iter_mut().for_each(|g| *g = [1.0; D]);
        }
        let (exaggeration, momentum) = if it < st.exaggeration_iter {
            (st.exaggeration, 0.5)
        } else {
            (1.0, 0.8)
        };
        let attraction = |i: usize| {
            let (cols, vals) = p.row(i);
            let yi = y[i];
            let mut f = [0.0; D];
            for (&j, &pij) in cols.iter().zip(vals) {
                let yj = y[j as usize];
                let mut diff = [0.0; D];
                let mut d2 = 0.0;
                for k in 0..D {
                    diff[k] = yi[k] - yj[k];
                    d2 += diff[k] * diff[k];
                }
                let w = pij / (1.0 + d2);
                for k in 0..D {
                    f[k] += w * diff[k];
                }
            }
            f
        };
        forces.clear();
        if st.theta > 0.0 {
            tree.build(&y);
            let tree = &tree;
            forces.par_extend(tree.order.par_iter().map_init(
                || Vec::with_capacity(64 * (1 << D)),
                |stack, &i| {
                    let (rep, z) = tree.repulsion(i, y[i as usize], theta2, stack);
                    (i, attraction(i as usize), rep, z)
                },
            ));
        } else {
            let y = &y;
            forces.par_extend((0..n).into_par_iter().map(|i| {
                let (rep, z) = Tree::<D>::repulsion_exact(y, i);
                (i as u32, attraction(i), rep, z)
            }));
        }
        let z_total = forces.iter().map(|f| f.3).sum::<f64>().max(f64::EPSILON);
        for &(i, attr, rep, _) in &forces {
            let i = i as usize;
            for k in 0..D {
                let grad = 4.0 * (exaggeration * attr[k] - rep[k] / z_total);
                let g = &mut gains[i][k];
                let u = &mut update[i][k];
                if *u * grad < 0.0 {
                    *g += 0.2;
                } else {
                    *g *= 0.8;
                }
                *g = (*g).max(MIN_GAIN);
                *u = momentum * *u - st.learning_rate * *g * grad;
                y[i][k] += *u;
            }
        }
        progress(it + 1);
    }
    Ok(Array2::from_shape_fn((n, D), |(i, k)| y[i][k]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The GEMM-candidate k-NN equals the f64 brute force, duplicates and
    /// an offset far from the origin included.
    #[test]
    fn knn_matches_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut x = Array2::from_shape_fn((300, 20), |_| 50.0 + standard_normal(&mut rng));
        let dup = x.row(10).to_owned();
        x.row_mut(11).assign(&dup);
        x.row_mut(12).assign(&dup);
        for k in [1, 5, 31] {
            let (idx, dist) = knn(&x, k).unwrap();
            let mut xc = x.clone();
            let mean = x.mean_axis(Axis(0)).unwrap();
            xc -= &mean;
            let sq: Vec<f64> = xc.rows().into_iter().map(|r| r.dot(&r)).collect();
            let (bi, bd) = knn_brute(&xc, &sq, k);
            assert_eq!(idx.len(), 300 * k);
            for i in 0..300 {
                for t in 0..k {
                    let e = i * k + t;
                    assert!(
                        (dist[e] - bd[e]).abs() < 1e-9,
                        "row {i}: {} vs {}",
                        dist[e],
                        bd[e]
                    );
                    // Equal distances may come in either order only when tied.
                    if idx[e] != bi[e] {
                        assert!((dist[e] - bd[e]).abs() < 1e-9);
                    }
                }
                assert!(
                    !idx[i * k..(i + 1) * k].contains(&(i as u32)),
                    "row {i} lists itself"
                );
            }
        }
        // Row 10's nearest are its two copies, at distance 0.
        let (idx, dist) = knn(&x, 2).unwrap();
        let mut near = idx[20..22].to_vec();
        near.sort_unstable();
        assert_eq!(near, vec![11, 12]);
        assert_eq!(&dist[20..22], &[0.0, 0.0]);
    }

    /// The eigen solver on a matrix with known spectrum.
    #[test]
    fn jacobi_eigen() {
        let a = ndarray::array![[4.0, 1.0, 0.0], [1.0, 3.0, 0.0], [0.0, 0.0, 1.0]];
        let (vals, vecs) = symmetric_eigen(a.clone());
        let s5 = 5.0_f64.sqrt();
        let want = [(7.0 + s5) / 2.0, (7.0 - s5) / 2.0, 1.0];
        for (v, w) in vals.iter().zip(want) {
            assert!((v - w).abs() < 1e-12, "{vals:?}");
        }
        for c in 0..3 {
            let v = vecs.column(c);
            let av = a.dot(&v);
            for r in 0..3 {
                assert!((av[r] - vals[c] * v[r]).abs() < 1e-12);
            }
        }
    }
}
