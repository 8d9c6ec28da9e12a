//! Files-to-embeddings throughput of one backbone, as JSON on stdout, for the
//! side-by-side comparison with PyTorch (`scripts/compare/extract_torch.py`).
//!
//! Three timings over the same files: preprocessing alone (decode, resize,
//! normalise, in parallel), the model alone (on an already prepared batch),
//! and the whole pipeline (`reid_backbone::pipeline::extract`, which prepares
//! the next batch on a background thread while the model runs).
//!
//! ```text
//! cargo run --release -p reid-backbone --example extract_throughput -- \
//!     --backbone efficientnet_lite2 --list files.txt --threads 2 --batch-size 32
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use reid_backbone::backbone::{BackboneBuilder, WeightsSource, array4_to_tensor};
use reid_backbone::pipeline::{ExtractParams, extract};
use reid_data::Record;

#[derive(Parser, Debug)]
#[command(about = "Files-to-embeddings throughput of one backbone (JSON on stdout)")]
struct Args {
    /// Registry name of the backbone.
    #[arg(long, default_value = "efficientnet_lite2")]
    backbone: String,
    /// Weights file (safetensors or .pth with the original key names);
    /// default: the bundled pretrained weights.
    #[arg(long, conflicts_with = "random_init")]
    weights: Option<PathBuf>,
    /// Random weights with this seed (speed does not depend on the values).
    #[arg(long)]
    random_init: Option<i64>,
    /// A text file with one image path per line.
    #[arg(long)]
    list: PathBuf,
    /// Images per batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// libtorch intra-op threads (0: libtorch's default); rayon uses the same number.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Timed repetitions of each measurement (the best is reported).
    #[arg(long, default_value_t = 2)]
    repeat: usize,
}

fn best_of<F: FnMut() -> anyhow::Result<()>>(n: usize, mut f: F) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..n.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.threads > 0 {
        tch::set_num_threads(args.threads as i32);
        rayon::ThreadPoolBuilder::new()
            .num_threads(args.threads)
            .build_global()?;
    }
    let paths: Vec<PathBuf> = std::fs::read_to_string(&args.list)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(PathBuf::from)
        .collect();
    anyhow::ensure!(
        !paths.is_empty(),
        "{}: no files listed",
        args.list.display()
    );
    let records: Vec<Record> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| Record::new(format!("img{i}"), p.clone()))
        .collect();
    let mut builder = BackboneBuilder::new(&args.backbone);
    if let Some(w) = &args.weights {
        builder = builder.weights_file(w);
    }
    if let Some(seed) = args.random_init {
        builder = builder.weights(WeightsSource::Random(seed));
    }
    let bb = builder.build()?;
    let pre = bb.preprocess_config().check()?;
    let n = records.len();

    // Warm-up: one batch through the whole pipeline.
    let params = ExtractParams::new(args.batch_size).check()?;
    extract(&bb, &records[..args.batch_size.min(n)], &params, |_| {})?;

    let pre_s = best_of(args.repeat, || {
        for chunk in records.chunks(args.batch_size) {
            pre.batch(chunk)?;
        }
        Ok(())
    })?;
    let batch = pre.batch(&records[..args.batch_size.min(n)])?;
    let x = array4_to_tensor(batch.images.view());
    let b = batch.ids.len();
    let model_s = best_of(args.repeat, || {
        for _ in 0..n.div_ceil(b) {
            let _ = bb.embed_tensor(&x)?;
        }
        Ok(())
    })? * n as f64
        / (n.div_ceil(b) * b) as f64;
    let total_s = best_of(args.repeat, || {
        extract(&bb, &records, &params, |_| {})?;
        Ok(())
    })?;
    let out = serde_json::json!({
        "backbone": bb.info().name,
        "input_size": bb.info().input_size,
        "crop_pct": bb.info().crop_pct,
        "interpolation": bb.info().interpolation,
        "mean": bb.info().mean,
        "std": bb.info().std,
        "images": n,
        "batch_size": args.batch_size,
        "threads": tch::get_num_threads(),
        "preprocess_img_per_s": n as f64 / pre_s,
        "model_img_per_s": n as f64 / model_s,
        "end_to_end_img_per_s": n as f64 / total_s,
        "end_to_end_s": total_s,
    });
    println!("{out}");
    Ok(())
}
