//! Files → decisions on the lion set (`../shared/datasets/lion/lion.csv`),
//! the path a user waits on: load the split CSV, decode and embed every
//! image with MobileNetV2 (ImageNet weights, CPU, f32), self-calibrate one
//! threshold per dataset from the database alone, search each query within
//! its dataset, decide and group the new animals. Also each stage alone:
//! embedding, and the open-set pipeline on ready embeddings.
//!
//! Run: `cargo bench --bench end_to_end` (skipped when the shared data
//! folder or the weights are absent; `scripts/setup.sh` fetches the weights).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Duration;

use animal_reid::backbone::backbone::BackboneBuilder;
use animal_reid::backbone::pipeline::{ExtractParams, extract};
use animal_reid::data::loaders::{LoadOptions, load_animalclef};
use animal_reid::pipeline::{OpenSetParams, ParamGuard, SelfCalibrationParams, identify};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn lion_csv() -> PathBuf {
    animal_reid::core::paths::shared_dir().join("datasets/lion/lion.csv")
}

fn bench(c: &mut Criterion) {
    let csv = lion_csv();
    let Ok((ds, _)) = load_animalclef(&csv, &LoadOptions::default()) else {
        eprintln!("skipping: {} not found", csv.display());
        return;
    };
    let backbone = match BackboneBuilder::new("mobilenet_v2").build() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skipping: {e}");
            return;
        }
    };
    let extract_params = ExtractParams::default().batch_size(32).check().unwrap();
    let params = OpenSetParams::default()
        .episodes(
            SelfCalibrationParams::default()
                .new_fraction(0.3)
                .query_fraction(0.3)
                .episodes(20)
                .seed(2025)
                .grid_steps(-0.2..=1.0, 240),
        )
        .check()
        .unwrap();

    let mut g = c.benchmark_group("lion_files_to_decisions");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(60))
        .throughput(Throughput::Elements(ds.len() as u64));
    g.bench_function("mobilenet_v2_cpu_f32", |b| {
        b.iter(|| {
            let (ds, _) = load_animalclef(&csv, &LoadOptions::default()).unwrap();
            let emb = extract(&backbone, &ds.records, &extract_params, |_| {}).unwrap();
            identify(&ds.records, emb.matrix.view(), &params)
                .unwrap()
                .predictions
                .len()
        })
    });
    g.bench_function("embed_only", |b| {
        b.iter(|| {
            extract(&backbone, &ds.records, &extract_params, |_| {})
                .unwrap()
                .matrix
                .nrows()
        })
    });
    let emb = extract(&backbone, &ds.records, &extract_params, |_| {}).unwrap();
    g.bench_function("openset_only", |b| {
        b.iter(|| {
            identify(&ds.records, emb.matrix.view(), &params)
                .unwrap()
                .predictions
                .len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
