//! Model-only throughput (images/s) of the backbones on CPU, batch 32:
//! EfficientNet-Lite2 @260 and MobileNetV2 @224 with their ImageNet weights,
//! ConvNeXt-T @224 and ViT-B/16 @224 with seeded random weights (speed does
//! not depend on the values). `cargo bench -p reid-backbone --bench backbones`.

#![allow(clippy::print_stderr)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reid_backbone::backbone::{BackboneBuilder, WeightsSource};
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
    for (name, weights) in models {
        let bb = match BackboneBuilder::new(name).weights(weights).build() {
            Ok(bb) => bb,
            Err(e) => {
                eprintln!("skipping {name}: {e}");
                continue;
            }
        };
        let s = bb.info().input_size;
        let x = Tensor::randn([BATCH, 3, s, s], (Kind::Float, tch::Device::Cpu));
        g.bench_function(format!("{name}@{s}"), |b| {
            b.iter(|| bb.embed_tensor(&x).map(|e| e.size()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
