//! Criterion benchmark of t-SNE (the native engine and linfa-tsne, both
//! Barnes-Hut) and of the exact KL divergence on 1000 clustered unit vectors
//! of 128 dims.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reid_eval::ParamGuard;
use reid_eval::tsne::{TsneEngine, TsneParams, kl_divergence};

fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `n` unit rows of `d` dims around `clusters` random unit centres.
fn clustered(n: usize, d: usize, clusters: usize, spread: f64, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres = Array2::from_shape_fn((clusters, d), |_| gaussian(&mut rng));
    let mut x = Array2::<f32>::zeros((n, d));
    for i in 0..n {
        let c = centres.row(i % clusters);
        let cn = c.dot(&c).sqrt();
        let v: Vec<f64> = c
            .iter()
            .map(|&ci| ci / cn + spread * gaussian(&mut rng) / (d as f64).sqrt())
            .collect();
        let vn = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        for (j, a) in v.iter().enumerate() {
            x[[i, j]] = (a / vn) as f32;
        }
    }
    x
}

fn bench(c: &mut Criterion) {
    let x = clustered(1000, 128, 20, 0.5, 1);
    let params = TsneParams::new(2).perplexity(30.0).max_iter(500).seed(0);
    let valid = params.clone().check().unwrap();
    let linfa = params.clone().engine(TsneEngine::Linfa).check().unwrap();
    let mut group = c.benchmark_group("tsne_1000x128");
    group.sample_size(10);
    group.bench_function("embed_500_iter_native", |b| {
        b.iter(|| valid.embed(x.view()).unwrap())
    });
    group.bench_function("embed_500_iter_linfa", |b| {
        b.iter(|| linfa.embed(x.view()).unwrap())
    });
    let y = valid.embed(x.view()).unwrap();
    group.bench_function("exact_kl", |b| {
        b.iter(|| kl_divergence(x.view(), y.view(), 30.0).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
