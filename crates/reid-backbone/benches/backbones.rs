//! Model-only throughput (images/s) of the backbones.
//!
//! On the CPU (the default), batch 32: EfficientNet-Lite2 @260 and
//! MobileNetV2 @224 with their ImageNet weights, ConvNeXt-T @224 and
//! ViT-B/16 @224 with seeded random weights (speed does not depend on the
//! values), in f32 and, where the CPU has AVX-512 BF16, in bf16 (stem and
//! first block in f32). `cargo bench -p reid-backbone --bench backbones`.
//!
//! With `ANIMAL_REID_BENCH_DEVICE=cuda` (or `cuda:N`), batch 64 on that
//! GPU: ConvNeXt-T, ViT-B/16 and EfficientNetV2-S (seeded) and MobileNetV2
//! (its ImageNet weights when provisioned, else seeded), each in f32, f16
//! and bf16; every iteration waits for the GPU (the embeddings are copied
//! back). `scripts/gpu_check.sh` runs it this way on a GPU machine.

#![allow(clippy::print_stderr)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reid_backbone::backbone::{BackboneBuilder, Precision, WeightsSource, cpu_has_bf16};
use reid_backbone::device::{BENCH_DEVICE_ENV, bench_device};
use tch::{Device, Kind, Tensor};

fn bench(c: &mut Criterion) {
    let device = bench_device().unwrap_or_else(|e| {
        eprintln!("{BENCH_DEVICE_ENV}: {e}; benchmarking the CPU");
        Device::Cpu
    });
    let (batch, models, precisions): (i64, Vec<(&str, WeightsSource)>, Vec<Precision>) =
        if device.is_cuda() {
            (
                64,
                vec![
                    ("convnext_tiny", WeightsSource::Random(0)),
                    ("vit_base_patch16_224", WeightsSource::Random(0)),
                    ("efficientnetv2_s", WeightsSource::Random(0)),
                    ("mobilenet_v2", WeightsSource::Pretrained),
                ],
                vec![Precision::F32, Precision::F16, Precision::Bf16],
            )
        } else {
            let precisions = if cpu_has_bf16() {
                vec![Precision::F32, Precision::Bf16]
            } else {
                eprintln!("this CPU has no AVX-512 BF16: f32 only");
                vec![Precision::F32]
            };
            (
                32,
                vec![
                    ("efficientnet_lite2", WeightsSource::Pretrained),
                    ("mobilenet_v2", WeightsSource::Pretrained),
                    ("convnext_tiny", WeightsSource::Random(0)),
                    ("vit_base_patch16_224", WeightsSource::Random(0)),
                ],
                precisions,
            )
        };
    let group = if device.is_cuda() {
        format!("backbone_cuda_batch{batch}")
    } else {
        format!("backbone_cpu_batch{batch}")
    };
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    g.throughput(Throughput::Elements(batch as u64));
    for (name, weights) in models {
        for &precision in &precisions {
            let build = |w: WeightsSource| {
                BackboneBuilder::new(name)
                    .weights(w)
                    .device(device)
                    .precision(precision)
                    .build()
            };
            let built = match build(weights.clone()) {
                Err(e) if weights == WeightsSource::Pretrained && device.is_cuda() => {
                    eprintln!("{name}: {e}; seeded weights instead");
                    build(WeightsSource::Random(0))
                }
                other => other,
            };
            let bb = match built {
                Ok(bb) => bb,
                Err(e) => {
                    eprintln!("skipping {name} {}: {e}", precision.name());
                    continue;
                }
            };
            let s = bb.info().input_size;
            let x = Tensor::randn([batch, 3, s, s], (Kind::Float, device));
            g.bench_function(format!("{name}@{s}/{}", precision.name()), |b| {
                // Copying the embeddings back waits for the GPU.
                b.iter(|| bb.embed_tensor(&x).map(|e| e.to_device(Device::Cpu).size()))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
