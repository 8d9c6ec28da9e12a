//! Decode → resize → normalise throughput (images/s) of `reid-data`:
//! the lion set (740 small JPEGs, skipped when absent) and 32 synthetic
//! 2000×1500 JPEGs, on all cores (rayon) versus one thread, and for the large
//! JPEGs with and without reduced-scale (DCT) decoding.
//!
//! Run: `cargo bench -p reid-data --bench data_pipeline`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reid_data::ParamGuard;
use reid_data::decode::DecodeOptions;
use reid_data::preprocess::{Preprocess, PreprocessParams};

mod support;
use support::{large_jpegs, lion_files};

fn preprocess(reduced: bool) -> Preprocess {
    PreprocessParams::timm_eval(224, 0.875)
        .decode(DecodeOptions::new().with_reduced_scale(reduced))
        .check()
        .unwrap()
}

fn bench_set(c: &mut Criterion, name: &str, files: &[PathBuf], reduced_variants: bool) {
    let serial_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g.throughput(Throughput::Elements(files.len() as u64));
    let variants: &[(bool, &str)] = if reduced_variants {
        &[(true, "reduced_scale"), (false, "full_decode")]
    } else {
        &[(true, "reduced_scale")]
    };
    for &(reduced, tag) in variants {
        let pre = preprocess(reduced);
        g.bench_function(format!("parallel/{tag}"), |b| {
            b.iter(|| pre.files(files).unwrap())
        });
        g.bench_function(format!("serial/{tag}"), |b| {
            b.iter(|| serial_pool.install(|| pre.files(files).unwrap()))
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    match lion_files() {
        Ok(lion) => bench_set(c, "lion", &lion, false),
        Err(root) => eprintln!(
            "note: {} not found; skipping the lion benchmarks",
            root.display()
        ),
    }
    let dir = tempfile::tempdir().unwrap();
    let large = large_jpegs(dir.path(), 32).unwrap();
    bench_set(c, "large_jpeg_2000x1500", &large, true);
}

criterion_group!(data_pipeline, benches);
criterion_main!(data_pipeline);
