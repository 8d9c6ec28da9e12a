//! Criterion benchmark of t-SNE (the native engine and linfa-tsne, both
//! Barnes-Hut) and of the exact KL divergence on 1000 clustered unit vectors
//! of 128 dims.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use reid_eval::ParamGuard;
use reid_eval::tsne::{TsneEngine, TsneParams, kl_divergence};
use reid_index::synthetic::ClusteredParams;

fn bench(c: &mut Criterion) {
    let x = ClusteredParams::default()
        .rows(1000)
        .dim(128)
        .clusters(20)
        .noise(0.5 / 128f64.sqrt())
        .seed(1)
        .check()
        .unwrap()
        .generate();
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
