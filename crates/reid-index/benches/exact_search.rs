//! Exact search throughput: 1000 queries x {10k, 100k, 1M} gallery x 512-d,
//! k = 10, on the current rayon pool (set RAYON_NUM_THREADS to pin it), for
//! each score kernel this CPU runs (f32; bf16 with AVX-512 BF16; amx with AMX
//! tiles). The 1M case takes 10 samples (criterion's minimum).
//!
//! `CARGO_TARGET_DIR=/work/target-idx cargo bench -p reid-index --bench exact_search`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reid_index::{ExactParams, Kernel, ParamGuard, exact_topk_with};

fn unit_rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut a = Array2::from_shape_fn((n, d), |_| rng.gen_range(-1.0f32..1.0));
    for mut r in a.rows_mut() {
        let norm = r.dot(&r).sqrt();
        r /= norm;
    }
    a
}

fn bench(c: &mut Criterion) {
    let d = 512;
    let nq = 1000;
    let q = unit_rows(nq, d, 1);
    let mut kernels = vec![("f32", Kernel::F32)];
    if reid_index::bf16::available() {
        kernels.push(("bf16", Kernel::Bf16Prefilter));
    }
    if reid_index::amx::available() {
        kernels.push(("amx", Kernel::AmxPrefilter));
    }
    let mut group = c.benchmark_group("exact_topk_1000q_512d_k10");
    for n in [10_000usize, 100_000, 1_000_000] {
        let g = unit_rows(n, d, 2);
        // Throughput in multiply-adds x 2 = flops, reported as "elements".
        group.throughput(Throughput::Elements((2 * nq * n * d) as u64));
        if n >= 1_000_000 {
            group.sample_size(10);
        } else {
            group.sample_size(20);
        }
        for &(name, kernel) in &kernels {
            let cfg = ExactParams::default().kernel(kernel).check().unwrap();
            group.bench_with_input(BenchmarkId::new(name, n), &g, |b, g| {
                b.iter(|| exact_topk_with(q.view(), g.view(), 10, &cfg).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
