//! Helpers shared by the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Random rows with small integer entries: every dot product is an exact
/// small integer in f32 whatever the summation order, so ties are real.
pub fn int_rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| rng.gen_range(-2i32..=2) as f32)
}

/// Random L2-normalised rows.
pub fn unit_rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut a = Array2::from_shape_fn((n, d), |_| rng.gen_range(-1.0f32..1.0));
    for mut r in a.rows_mut() {
        let norm = r.dot(&r).sqrt();
        r /= norm;
    }
    a
}

/// `n` unit rows around `centres` random unit centres (row `i` around
/// centre `i % centres`), each centre plus `noise` times a random unit row,
/// renormalised.
pub fn clustered_rows(n: usize, d: usize, seed: u64, centres: usize, noise: f32) -> Array2<f32> {
    let c = unit_rows(centres, d, 1000);
    let e = unit_rows(n, d, seed);
    let mut a = Array2::from_shape_fn((n, d), |(i, j)| c[[i % centres, j]] + noise * e[[i, j]]);
    for mut r in a.rows_mut() {
        let norm = r.dot(&r).sqrt();
        r /= norm;
    }
    a
}

/// Brute force: every score in f64, sorted by score desc then index asc.
pub fn brute(q: ArrayView2<'_, f32>, g: ArrayView2<'_, f32>, k: usize) -> Vec<Vec<(usize, f64)>> {
    q.rows()
        .into_iter()
        .map(|qr| {
            let mut all: Vec<(usize, f64)> = g
                .rows()
                .into_iter()
                .enumerate()
                .map(|(i, gr)| {
                    (
                        i,
                        qr.iter()
                            .zip(gr)
                            .map(|(&a, &b)| a as f64 * b as f64)
                            .sum::<f64>()
                            + 0.0,
                    )
                })
                .collect();
            // Numeric order (-0.0 == 0.0), ties by lower index.
            all.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
            all.truncate(k);
            all
        })
        .collect()
}
