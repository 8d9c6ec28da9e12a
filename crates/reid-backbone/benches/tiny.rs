//! Tiny-image descriptors (`reid_backbone::tiny`): files → 16 × 16
//! descriptors for the cattle and lion photos of `$ANIMAL_REID_SHARED`
//! (default `../shared` next to the workspace: decode, resize, centre,
//! normalise, in parallel), and one descriptor of a decoded 1024 × 768
//! photo. `cargo bench -p reid-backbone --bench tiny`.

#![allow(clippy::print_stderr, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reid_backbone::ParamGuard;
use reid_backbone::tiny::{TinyParams, tiny_descriptor, tiny_embeddings};
use reid_core::Record;
use reid_core::paths::shared_dir;
use reid_data::DecodeOptions;

/// The records of `datasets/<name>/<name>.csv` (path in the third column),
/// at most `limit`; none when the data is missing.
fn records(name: &str, limit: usize) -> Vec<Record> {
    let root = shared_dir().join("datasets").join(name);
    let Ok(csv) = std::fs::read_to_string(root.join(format!("{name}.csv"))) else {
        eprintln!("{}: missing, {name} skipped", root.display());
        return Vec::new();
    };
    csv.lines()
        .skip(1)
        .filter_map(|line| line.split(',').nth(2))
        .take(limit)
        .enumerate()
        .map(|(i, rel)| Record::new(i.to_string(), root.join(rel)))
        .collect()
}

fn bench(c: &mut Criterion) {
    let p = TinyParams::default().check().expect("default settings");
    let opts = DecodeOptions::default();
    let mut g = c.benchmark_group("tiny16_files");
    g.sample_size(10);
    for name in ["cattle", "lion"] {
        let recs = records(name, 500);
        if recs.is_empty() {
            continue;
        }
        g.throughput(Throughput::Elements(recs.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| tiny_embeddings(black_box(&recs), &p, &opts).map(|e| e.matrix.nrows()))
        });
    }
    g.finish();
    let img = image::RgbImage::from_fn(1024, 768, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 256) as u8])
    });
    c.bench_function("tiny16_one_1024x768", |b| {
        b.iter(|| tiny_descriptor(black_box(&img), &p).map(|d| d.len()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
