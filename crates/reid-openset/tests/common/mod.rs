//! Helpers shared by the integration tests of `reid-openset`.
#![allow(clippy::panic, dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use ndarray::{Array2, s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reid_index::Gallery;
use reid_openset::{ParamGuard, SelfCalibrationParams, ValidSelfCalibrationParams};

/// The folder of fixtures made by `scripts/fixtures/<stem>.py` (run by
/// `scripts/setup.sh test`). Missing fixtures fail the test with the command to run.
pub fn fixture_dir(stem: &str) -> PathBuf {
    reid_core::paths::fixture_dir(stem).unwrap_or_else(|e| panic!("{e}"))
}

/// The scikit-learn reference values of `scripts/fixtures/openset_sklearn.py`.
pub fn sklearn_fixture() -> serde_json::Value {
    let path = fixture_dir("openset_sklearn").join("openset_sklearn.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

pub fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

pub fn i64s(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

pub fn matrix(v: &serde_json::Value) -> Array2<f32> {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(f64s).collect();
    let (n, d) = (rows.len(), rows.first().map_or(0, Vec::len));
    Array2::from_shape_fn((n, d), |(i, j)| rows[i][j] as f32)
}

/// A random unit vector of `d` dims.
pub fn unit(rng: &mut ChaCha8Rng, d: usize) -> Vec<f64> {
    loop {
        let v: Vec<f64> = (0..d).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if n > 1e-3 {
            return v.into_iter().map(|x| x / n).collect();
        }
    }
}

/// Planted embeddings: `x = sqrt(shared) g + sqrt(own) e_id + sqrt(noise) n`
/// with `g` a direction shared by all, `e_id` a one-hot direction per
/// identity and `n` a random unit vector in `noise_dims` further dims, so
/// same-identity cosine ≈ shared + own and different-identity cosine ≈
/// shared (both ± noise · O(1/sqrt(noise_dims))). `sizes[i]` images of
/// identity `id{i:03}`.
pub fn planted(
    sizes: &[usize],
    shared: f64,
    own: f64,
    noise_dims: usize,
    seed: u64,
) -> (Array2<f32>, Vec<String>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = 1.0 - shared - own;
    let ids = sizes.len();
    let d = 1 + ids + noise_dims;
    let n: usize = sizes.iter().sum();
    let mut x = Array2::<f32>::zeros((n, d));
    let mut labels = Vec::with_capacity(n);
    let mut row = 0;
    for (i, &m) in sizes.iter().enumerate() {
        for _ in 0..m {
            let u = unit(&mut rng, noise_dims);
            x[[row, 0]] = shared.sqrt() as f32;
            x[[row, 1 + i]] = own.sqrt() as f32;
            for (j, v) in u.iter().enumerate() {
                x[[row, 1 + ids + j]] = (noise.sqrt() * v) as f32;
            }
            labels.push(format!("id{i:03}"));
            row += 1;
        }
    }
    (x, labels)
}

/// `n` random unit rows of `d` dims.
pub fn random_rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Array2::<f32>::zeros((n, d));
    for i in 0..n {
        for (j, v) in unit(&mut rng, d).into_iter().enumerate() {
            x[[i, j]] = v as f32;
        }
    }
    x
}

/// The workspace gallery of bare rows `x` with identity `labels[i]` for
/// row `i`.
pub fn gallery<S: AsRef<str>>(x: &Array2<f32>, labels: &[S]) -> Gallery {
    Gallery::from_labels(x.view(), labels).unwrap()
}

/// Checked episode settings.
pub fn episodes(
    new_fraction: f64,
    query_fraction: f64,
    episodes: usize,
    seed: u64,
    grid: Vec<f32>,
) -> ValidSelfCalibrationParams {
    SelfCalibrationParams::default()
        .new_fraction(new_fraction)
        .query_fraction(query_fraction)
        .episodes(episodes)
        .seed(seed)
        .grid(grid)
        .check()
        .unwrap()
}

/// Labels `{prefix}{i:02}` repeated `sizes[i]` times.
pub fn labels_of_sizes(sizes: &[usize], prefix: &str) -> Vec<String> {
    sizes
        .iter()
        .enumerate()
        .flat_map(|(i, &m)| std::iter::repeat_n(format!("{prefix}{i:02}"), m))
        .collect()
}

/// The blocks stacked on the diagonal (rows of different blocks are
/// orthogonal: cosine exactly 0).
pub fn block_diag(blocks: &[&Array2<f32>]) -> Array2<f32> {
    let n = blocks.iter().map(|b| b.nrows()).sum();
    let d = blocks.iter().map(|b| b.ncols()).sum();
    let mut x = Array2::<f32>::zeros((n, d));
    let (mut r, mut c) = (0, 0);
    for b in blocks {
        x.slice_mut(s![r..r + b.nrows(), c..c + b.ncols()])
            .assign(b);
        r += b.nrows();
        c += b.ncols();
    }
    x
}

/// Each row of `x` moved by `eps` times a random unit vector, renormalised:
/// cosine with the original row about `1 - eps^2 / 2`.
pub fn near_duplicates(x: &Array2<f32>, eps: f64, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut y = x.clone();
    for mut row in y.rows_mut() {
        let u = unit(&mut rng, row.len());
        for (v, du) in row.iter_mut().zip(&u) {
            *v += (eps * du) as f32;
        }
        let norm = row.dot(&row).sqrt();
        row /= norm;
    }
    y
}

/// Rows `rows` of `x` stacked.
pub fn rows_of(x: &Array2<f32>, rows: &[usize]) -> Array2<f32> {
    x.select(ndarray::Axis(0), rows)
}
