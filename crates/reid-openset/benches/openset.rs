//! Speed of self-calibration, k-reciprocal re-ranking and new-individual
//! clustering on synthetic embeddings (`cargo bench -p reid-openset`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reid_index::Gallery;
use reid_openset::{
    ClusterParams, KReciprocalParams, Linkage, ParamGuard, Reranker, Rule,
    ValidSelfCalibrationParams, cluster, self_calibrate,
};

/// `n` unit rows of `d` dims around `ids` random centres.
fn data(n: usize, d: usize, ids: usize, seed: u64) -> (Array2<f32>, Vec<String>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres = Array2::from_shape_fn((ids, d), |_| rng.gen_range(-1.0f32..1.0));
    let mut x = Array2::<f32>::zeros((n, d));
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = rng.gen_range(0..ids);
        for j in 0..d {
            x[[i, j]] = centres[[c, j]] + 0.7 * rng.gen_range(-1.0f32..1.0);
        }
        let norm = x.row(i).dot(&x.row(i)).sqrt();
        x.row_mut(i).mapv_inplace(|v| v / norm);
        labels.push(format!("id{c}"));
    }
    (x, labels)
}

fn benches(c: &mut Criterion) {
    let (x, labels) = data(2000, 256, 400, 1);
    let g = Gallery::from_labels(x.view(), &labels).unwrap();
    let params = ValidSelfCalibrationParams::default(); // 10 episodes, 201 thresholds
    c.bench_function("self_calibrate top1 2000x256 10 episodes", |b| {
        b.iter(|| self_calibrate(&g, &Rule::Top1, &params).unwrap())
    });
    let (q, _) = data(500, 256, 100, 2);
    let rerank = KReciprocalParams::default().check().unwrap();
    c.bench_function("k-reciprocal gallery 2000x256 (k1 20, k2 6)", |b| {
        b.iter(|| Reranker::new(&g, &rerank).unwrap())
    });
    let reranker = Reranker::new(&g, &rerank).unwrap();
    c.bench_function("k-reciprocal search 500 queries, top 200", |b| {
        b.iter(|| reranker.search(q.view(), 200).unwrap())
    });
    c.bench_function("cosine search 500 queries, top 200 (beside it)", |b| {
        b.iter(|| g.search_topk(q.view(), 200, None).unwrap())
    });
    let p = ClusterParams::new(0.5)
        .linkage(Linkage::Average)
        .check()
        .unwrap();
    c.bench_function("cluster average 500x256", |b| {
        b.iter(|| cluster(q.view(), &p).unwrap())
    });
}

criterion_group! {
    name = openset;
    config = Criterion::default().sample_size(10);
    targets = benches
}
criterion_main!(openset);
