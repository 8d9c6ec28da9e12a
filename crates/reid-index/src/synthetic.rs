//! Seeded clustered unit vectors: stand-ins for the embeddings of
//! individuals photographed several times, for benchmarks, recall
//! measurements and the side-by-side scripts (the same data on both sides).
//!
//! Cluster centres are standard normal vectors scaled to unit length; row
//! `i` belongs to cluster `i % clusters` and is its centre plus Gaussian
//! noise of standard deviation `noise` per coordinate, L2-normalised. The
//! centres come from `seed`, the noise from `point_seed`, so two sets drawn
//! with one `seed` and two point seeds share their clusters (a gallery and
//! its queries).
//!
//! ```
//! use reid_index::ParamGuard;
//! use reid_index::synthetic::ClusteredParams;
//! let p = ClusteredParams::default().rows(300).dim(64).clusters(30).noise(0.05).check()?;
//! let x = p.generate();
//! assert_eq!(x.dim(), (300, 64));
//! // Rows 0 and 30 share a cluster: far more alike than rows 0 and 1.
//! assert!(x.row(0).dot(&x.row(30)) > x.row(0).dot(&x.row(1)) + 0.3);
//! # Ok::<(), reid_index::IndexError>(())
//! ```

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::IndexError;

/// Settings of [`ValidClusteredParams::generate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusteredParams {
    rows: usize,
    dim: usize,
    clusters: usize,
    noise: f64,
    seed: u64,
    point_seed: u64,
}

/// Checked [`ClusteredParams`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidClusteredParams(ClusteredParams);

impl Default for ClusteredParams {
    /// 1000 rows of 128 dims in 20 clusters, noise `0.5 / sqrt(128)` per
    /// coordinate, seeds 0 and 1.
    fn default() -> Self {
        Self {
            rows: 1000,
            dim: 128,
            clusters: 20,
            noise: 0.5 / (128f64).sqrt(),
            seed: 0,
            point_seed: 1,
        }
    }
}

impl ClusteredParams {
    reid_core::setters! {
        /// Number of rows.
        rows: usize,
        /// Dimensions (at least 1).
        dim: usize,
        /// Number of clusters (at least 1).
        clusters: usize,
        /// Standard deviation of the noise per coordinate (finite, `>= 0`).
        noise: f64,
        /// Seed of the centres.
        seed: u64,
        /// Seed of the noise.
        point_seed: u64,
    }
}

reid_core::param_guard!(ClusteredParams => ValidClusteredParams, IndexError, |p| {
    if p.dim == 0 {
        return Err(IndexError::param("dim", "must be at least 1"));
    }
    if p.clusters == 0 {
        return Err(IndexError::param("clusters", "must be at least 1"));
    }
    if !(p.noise.is_finite() && p.noise >= 0.0) {
        return Err(IndexError::param(
            "noise",
            format!("must be finite and >= 0, got {}", p.noise),
        ));
    }
    Ok(())
});

/// A standard normal draw (Box-Muller).
fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl ValidClusteredParams {
    /// The rows (see the module docs).
    pub fn generate(&self) -> Array2<f32> {
        let p = &self.0;
        let mut crng = ChaCha8Rng::seed_from_u64(p.seed);
        let mut centres = Array2::from_shape_fn((p.clusters, p.dim), |_| gaussian(&mut crng));
        for mut c in centres.rows_mut() {
            let n = c.dot(&c).sqrt().max(1e-300);
            c /= n;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(p.point_seed);
        let mut x = Array2::<f32>::zeros((p.rows, p.dim));
        let mut v = vec![0.0f64; p.dim];
        for (i, mut row) in x.rows_mut().into_iter().enumerate() {
            let c = centres.row(i % p.clusters);
            for (o, &ci) in v.iter_mut().zip(c) {
                *o = ci + p.noise * gaussian(&mut rng);
            }
            let n = v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-300);
            for (o, &a) in row.iter_mut().zip(&v) {
                *o = (a / n) as f32;
            }
        }
        x
    }
}
