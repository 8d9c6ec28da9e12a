//! Measures `reid-data`'s decode → resize → normalise throughput in images/s:
//! the lion set (parallel and single-threaded) and 32 synthetic 2000×1500
//! JPEGs (parallel and single-threaded), plus the gain of reduced-scale (DCT)
//! JPEG decoding over full decoding on the large JPEGs.
//!
//! Run: `cargo run --release --example decode_throughput`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use reid_data::decode::DecodeOptions;
use reid_data::preprocess::{Preprocess, PreprocessConfig};

#[path = "../benches/support/mod.rs"]
mod support;
use support::{large_jpegs, lion_files};

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

    match lion_files() {
        Err(root) => println!("lion: {} not found, skipped", root.display()),
        Ok(lion) => {
            let p = images_per_s(&pre, &lion, &parallel, 3)?;
            let s = images_per_s(&pre, &lion, &serial, 3)?;
            println!(
                "lion ({} images): parallel {p:.0} img/s, serial {s:.0} img/s, speed-up {:.2}x",
                lion.len(),
                p / s
            );
        }
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
