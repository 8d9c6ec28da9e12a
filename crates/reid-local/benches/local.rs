//! Local-feature speed: extraction of one image at the default size, and
//! scoring of one pair and of a batch of pairs.
//!
//! Uses a real lion photo from `$ANIMAL_REID_SHARED` (default `../shared`
//! next to the workspace), upscaled to the default 512-pixel side as a
//! stand-in for a full-size photo, or a synthetic texture when it is missing.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use image::{Rgb, RgbImage};
use reid_local::ParamGuard;
use reid_local::{FeatureStore, LocalParams, extract_image, match_pair};

use reid_core::paths::shared_dir;

/// Seeded random squares, when no real photo is around.
fn synthetic(w: u32, h: u32, seed: u32) -> RgbImage {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    let mut next = move || {
        s = s.wrapping_mul(1664525).wrapping_add(1013904223);
        s >> 8
    };
    let mut img = RgbImage::from_pixel(w, h, Rgb([128, 128, 128]));
    for _ in 0..400 {
        let (x0, y0, r, v) = (
            next() % w,
            next() % h,
            2 + next() % 20,
            (next() % 256) as u8,
        );
        for y in y0..(y0 + r).min(h) {
            for x in x0..(x0 + r).min(w) {
                img.put_pixel(x, y, Rgb([v, v / 2, 255 - v]));
            }
        }
    }
    img
}

/// `count` images: lion photos (each upscaled so its longer side is
/// `side`) or, when `real` is false or the data is missing, synthetic ones.
fn images(count: usize, side: u32, real: bool) -> (Vec<RgbImage>, &'static str) {
    let root = shared_dir().join("datasets/lion");
    let mut out = Vec::new();
    if let Some(csv) = real
        .then(|| std::fs::read_to_string(root.join("lion.csv")).ok())
        .flatten()
    {
        for line in csv.lines().skip(1) {
            let Some(rel) = line.split(',').nth(2) else {
                continue;
            };
            if let Ok(img) = reid_data::decode_file(root.join(rel), &Default::default()) {
                let (w, h) = img.dimensions();
                let s = f64::from(side) / f64::from(w.max(h));
                let (nw, nh) = ((f64::from(w) * s) as u32, (f64::from(h) * s) as u32);
                out.push(image::imageops::resize(
                    &img,
                    nw,
                    nh,
                    image::imageops::FilterType::CatmullRom,
                ));
            }
            if out.len() == count {
                return (out, "lion");
            }
        }
    }
    (
        (0..count as u32)
            .map(|i| synthetic(side, side * 3 / 4, i))
            .collect(),
        "synthetic",
    )
}

fn bench(c: &mut Criterion) {
    // Lion photos (about 350 keypoints at 512 px: they are upscaled crops)
    // and dense synthetic textures (the full 1000 keypoints).
    bench_set(c, true);
    bench_set(c, false);
}

fn bench_set(c: &mut Criterion, real: bool) {
    let Ok(params) = LocalParams::default().check() else {
        return;
    };
    let side = params.extract().get().max_side;
    let (imgs, source) = images(12, side, real);
    if !real && source != "synthetic" {
        return;
    }
    let mut g = c.benchmark_group(format!("local_{source}"));
    g.sample_size(10);
    if let Some(img) = imgs.first() {
        g.bench_function(format!("extract_{}x{}", img.width(), img.height()), |b| {
            b.iter(|| black_box(extract_image(black_box(img), params.extract())))
        });
        let mut single = LocalParams::default();
        single.extract.double_image = false;
        if let Ok(single) = single.check() {
            g.bench_function(
                format!("extract_{}x{}_not_doubled", img.width(), img.height()),
                |b| b.iter(|| black_box(extract_image(black_box(img), single.extract()))),
            );
        }
    }
    let feats: Vec<_> = imgs
        .iter()
        .filter_map(|i| extract_image(i, params.extract()).ok())
        .collect();
    let kps = feats.iter().map(|f| f.len()).sum::<usize>() / feats.len().max(1);
    if let (Some(a), Some(b)) = (feats.first(), feats.get(1)) {
        g.bench_function(format!("pair_{}x{}_keypoints", a.len(), b.len()), |bch| {
            bch.iter(|| black_box(match_pair(a, b, &params)))
        });
    }
    // A query against a 50-image shortlist (the other images, repeated).
    let store = FeatureStore::from_features(feats, &params);
    let n = store.len();
    if n >= 2 {
        let pairs: Vec<(usize, usize)> = (0..50).map(|k| (0, 1 + k % (n - 1))).collect();
        g.bench_function(format!("shortlist_50_pairs_{kps}_keypoints"), |bch| {
            bch.iter(|| black_box(store.score_pairs(&pairs)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
