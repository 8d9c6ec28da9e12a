//! Model-only throughput (images/s) of the backbones on CPU, batch 32:
//! EfficientNet-Lite2 @260 and MobileNetV2 @224 with their ImageNet weights,
//! ConvNeXt-T @224 and ViT-B/16 @224 with seeded random weights (speed does
//! not depend on the values), in f32 and, where the CPU has AVX-512 BF16, in
//! bf16 (stem and first block in f32). `cargo bench -p reid-backbone --bench
//! backbones`.

#![allow(clippy::print_stderr)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reid_backbone::backbone::{BackboneBuilder, Precision, WeightsSource, cpu_has_bf16};
use tch::{Kind, Tensor};

const BATCH: i64 = 32;

fn bench(c: &mut Criterion) {
    let models: [(&str, WeightsSource); 4] = [
        ("efficientnet_lite2", WeightsSource::Pretrained),
        ("mobilenet_v2", WeightsSource::Pretrained),
        ("convnext_tiny", WeightsSource::Random(0)),
        ("vit_base_patch16_224", WeightsSource::Random(0)),
    ];
    let mut g = c.benchmark_group("backbone_cpu_batch32");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BATCH as u64));
    let precisions: &[Precision] = if cpu_has_bf16() {
        &[Precision::F32, Precision::Bf16]
    } else {
        eprintln!("this CPU has no AVX-512 BF16: f32 only");
        &[Precision::F32]
    };
    for (name, weights) in models {
        for &precision in precisions {
            let built = BackboneBuilder::new(name)
                .weights(weights.clone())
                .precision(precision)
                .build();
            let bb = match built {
                Ok(bb) => bb,
                Err(e) => {
                    eprintln!("skipping {name} {}: {e}", precision.name());
                    continue;
                }
            };
            let s = bb.info().input_size;
            let x = Tensor::randn([BATCH, 3, s, s], (Kind::Float, tch::Device::Cpu));
            g.bench_function(format!("{name}@{s}/{}", precision.name()), |b| {
                b.iter(|| bb.embed_tensor(&x).map(|e| e.size()))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
