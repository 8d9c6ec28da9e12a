//! Measures `reid-data`'s decode → resize → normalise throughput in images/s:
//! the lion set (parallel and single-threaded) and 32 synthetic 2000×1500
//! JPEGs (parallel and single-threaded), plus the gain of reduced-scale (DCT)
//! JPEG decoding over full decoding on the large JPEGs.
//!
//! Run: `cargo run --release --example decode_throughput`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
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
        let n = (s >> 27) as f32;
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

fn large_jpegs(dir: &Path, n: u32) -> Result<Vec<PathBuf>> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("large_{i:02}.jpg"));
            let f = std::io::BufWriter::new(std::fs::File::create(&p)?);
            image::codecs::jpeg::JpegEncoder::new_with_quality(f, 90)
                .encode_image(&synthetic(i))?;
            Ok(p)
        })
        .collect()
}

fn preprocess(reduced: bool) -> Result<Preprocess> {
    Ok(PreprocessConfig::timm_eval(224, 0.875)
        .decode(DecodeOptions::new().with_reduced_scale(reduced))
        .check()?)
}

/// Best-of-`reps` images/s for preprocessing all `files` (after one warm-up run).
fn images_per_s(
    pre: &Preprocess,
    files: &[PathBuf],
    pool: &rayon::ThreadPool,
    reps: usize,
) -> Result<f64> {
    pool.install(|| pre.files(files))?;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        let out = pool.install(|| pre.files(files))?;
        best = best.min(t.elapsed().as_secs_f64());
        std::hint::black_box(out);
    }
    Ok(files.len() as f64 / best)
}

fn main() -> Result<()> {
    let threads = rayon::current_num_threads();
    let parallel = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let serial = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let pre = preprocess(true)?;
    println!(
        "decode -> resize (shorter 256, bicubic) -> centre crop 224 -> normalise; {threads} threads"
    );

    let lion = lion_files();
    if lion.is_empty() {
        println!("lion: {LION_ROOT} not found, skipped");
    } else {
        let p = images_per_s(&pre, &lion, &parallel, 3)?;
        let s = images_per_s(&pre, &lion, &serial, 3)?;
        println!(
            "lion ({} images): parallel {p:.0} img/s, serial {s:.0} img/s, speed-up {:.2}x",
            lion.len(),
            p / s
        );
    }

    let dir = tempfile::tempdir()?;
    let large = large_jpegs(dir.path(), 32)?;
    let p = images_per_s(&pre, &large, &parallel, 3)?;
    let s = images_per_s(&pre, &large, &serial, 3)?;
    println!(
        "large 2000x1500 JPEG (32): parallel {p:.1} img/s, serial {s:.1} img/s, speed-up {:.2}x",
        p / s
    );
    let full = preprocess(false)?;
    let pf = images_per_s(&full, &large, &parallel, 3)?;
    let sf = images_per_s(&full, &large, &serial, 3)?;
    println!(
        "large, full-resolution decode: parallel {pf:.1} img/s, serial {sf:.1} img/s; reduced-scale gain {:.2}x parallel, {:.2}x serial",
        p / pf,
        s / sf
    );
    Ok(())
}
