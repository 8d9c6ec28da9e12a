//! Learned matching speed: each extractor on one photo at the default
//! 512-pixel side, and each LightGlue on one pair and on one query against
//! 16 gallery images (a padded batch), at wildlife-tools' 256 keypoints per
//! image, for every precision the device runs (LightGlue's linear layers:
//! f32, and bf16 where the CPU has AVX-512 BF16; f32, f16 and bf16 on CUDA).
//!
//! Uses cow photos from `$ANIMAL_REID_SHARED/datasets/cattle` and the
//! weights `scripts/setup.sh` provisions; a bench whose weights or photos
//! are missing says so and is skipped. `ANIMAL_REID_BENCH_DEVICE=cuda`
//! (or `cuda:N`) runs it on that GPU, waiting for the GPU in every
//! iteration (`scripts/gpu_check.sh`).
#![allow(clippy::expect_used, clippy::print_stderr)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use reid_backbone::backbone::{Precision, cpu_has_bf16};
use reid_backbone::device::{BENCH_DEVICE_ENV, bench_device};
use reid_core::paths::shared_dir;
use reid_glue::{
    LearnedKind, LearnedMatcher, LearnedParams, PairMatcher, ParamGuard, image_tensor,
};
use reid_local::{Features, downscale_to_fit};
use tch::{Device, Tensor};

/// The first `count` cow photos of cattle.csv, each at most 512 px on its
/// longer side, as `[1, 3, H, W]` tensors on `device`.
fn photos(count: usize, device: Device) -> Vec<Tensor> {
    let root = shared_dir().join("datasets/cattle");
    let Ok(csv) = std::fs::read_to_string(root.join("cattle.csv")) else {
        return Vec::new();
    };
    csv.lines()
        .skip(1)
        .filter_map(|line| line.split(',').nth(2).map(|rel| root.join(rel)))
        .filter_map(|p| reid_data::decode_file(&p, &Default::default()).ok())
        .filter_map(|img| downscale_to_fit(&img, 512).ok().map(|i| i.into_owned()))
        .take(count)
        .map(|img| image_tensor(&img, device))
        .collect()
}

fn features(m: &LearnedMatcher, images: &[Tensor]) -> Vec<Features> {
    images
        .iter()
        .filter_map(|t| {
            let s = t.size();
            let k = m.extractor().extract_batch(t).ok()?.pop()?;
            k.to_features((s[3] as u32, s[2] as u32), (s[3] as u32, s[2] as u32))
                .ok()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let device = bench_device().unwrap_or_else(|e| {
        eprintln!("{BENCH_DEVICE_ENV}: {e}; benchmarking the CPU");
        Device::Cpu
    });
    let precisions = if device.is_cuda() {
        vec![Precision::F32, Precision::F16, Precision::Bf16]
    } else if cpu_has_bf16() {
        vec![Precision::F32, Precision::Bf16]
    } else {
        vec![Precision::F32]
    };
    let images = photos(17, device);
    if images.len() < 17 {
        eprintln!(
            "glue benches skipped: cattle photos not found under {}",
            shared_dir().display()
        );
        return;
    }
    let mut g = c.benchmark_group(if device.is_cuda() {
        "glue_cuda"
    } else {
        "glue"
    });
    g.sample_size(10);
    for kind in LearnedKind::ALL {
        for &precision in &precisions {
            let params = LearnedParams::default()
                .precision(precision)
                .check()
                .expect("default params");
            let m = match LearnedMatcher::load(kind, &params, device) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("{} {} skipped: {e}", kind.name(), precision.name());
                    continue;
                }
            };
            // The extractors run in f32 whatever LightGlue's precision.
            if precision == Precision::F32 {
                g.bench_function(format!("{}/extract 512 px", kind.name()), |b| {
                    b.iter(|| black_box(m.extractor().extract_batch(&images[0]).map(|v| v.len())))
                });
            }
            let f = features(&m, &images);
            let others: Vec<&Features> = f[1..].iter().collect();
            let p = precision.name();
            // The matches come back to the CPU: each iteration waits for the GPU.
            g.bench_function(format!("{}/lightglue {p} 1 pair", kind.name()), |b| {
                b.iter(|| black_box(m.match_one_to_many(&f[0], &others[..1]).map(|v| v.len())))
            });
            g.bench_function(format!("{}/lightglue {p} 1 x 16 pairs", kind.name()), |b| {
                b.iter(|| black_box(m.match_one_to_many(&f[0], &others).map(|v| v.len())))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
