//! Decode → resize → normalise throughput (images/s) of `reid-data`:
//! the lion set (740 small JPEGs, skipped when absent) and 32 synthetic
//! 2000×1500 JPEGs, on all cores (rayon) versus one thread, and for the large
//! JPEGs with and without reduced-scale (DCT) decoding.
//!
//! Run: `cargo bench --bench data_pipeline`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use image::{Rgb, RgbImage};
use reid_data::decode::DecodeOptions;
use reid_data::preprocess::{Preprocess, PreprocessConfig};

const LION_ROOT: &str = "/work/shared/datasets/lion";

fn lion_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![PathBuf::from(LION_ROOT)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "png") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// A photo-like 2000×1500 image: smooth gradients, stripes and seeded noise.
fn synthetic(seed: u32) -> RgbImage {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    RgbImage::from_fn(2000, 1500, |x, y| {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let n = (s >> 27) as f32; // 0..32 noise
        let fx = x as f32 / 2000.0;
        let fy = y as f32 / 1500.0;
        let k = 1.0 + seed as f32 * 0.37;
        let r = 128.0 + 90.0 * (k * 9.0 * fx + 3.0 * fy).sin() + n;
        let g = 100.0 + 80.0 * (k * 5.0 * fy * fx + 2.0).cos() + n;
        let b = 60.0 + 120.0 * fy * (1.0 + (30.0 * fx).sin()) / 2.0 + n;
        Rgb([
            r.clamp(0.0, 255.0) as u8,
            g.clamp(0.0, 255.0) as u8,
            b.clamp(0.0, 255.0) as u8,
        ])
    })
}

fn large_jpegs(dir: &Path, n: u32) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("large_{i:02}.jpg"));
            let img = synthetic(i);
            let f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
            image::codecs::jpeg::JpegEncoder::new_with_quality(f, 90)
                .encode_image(&img)
                .unwrap();
            p
        })
        .collect()
}

fn preprocess(reduced: bool) -> Preprocess {
    PreprocessConfig::timm_eval(224, 0.875)
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
    let lion = lion_files();
    if lion.is_empty() {
        eprintln!("note: {LION_ROOT} not found; skipping the lion benchmarks");
    } else {
        bench_set(c, "lion", &lion, false);
    }
    let dir = tempfile::tempdir().unwrap();
    let large = large_jpegs(dir.path(), 32);
    bench_set(c, "large_jpeg_2000x1500", &large, true);
}

criterion_group!(data_pipeline, benches);
criterion_main!(data_pipeline);
