//! Times exact top-k search and prints one JSON line.
//!
//! ```text
//! search_throughput --queries Q.f32 --gallery G.f32 --dim 512 --k 10 --threads 2 [--repeat 3]
//! search_throughput --nq 1000 --ng 100000 --dim 512 --k 10 --threads 2      # synthetic data
//! ```
//! Files are raw little-endian `f32`, row-major, `dim` values per row
//! (what `numpy.ndarray.tofile` writes). With `--out-indices PATH` the top-k
//! row indices of the last run are written as little-endian `u64`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reid_index::{ExactConfig, exact_topk_with};

fn read_f32(path: &str, dim: usize) -> Result<Array2<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    if dim == 0 || bytes.len() % (4 * dim) != 0 {
        bail!(
            "{path}: {} bytes is not a whole number of {dim}-d f32 rows",
            bytes.len()
        );
    }
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Array2::from_shape_vec((v.len() / dim, dim), v)?)
}

fn synthetic(n: usize, dim: usize, seed: u64) -> Array2<f32> {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut a = Array2::from_shape_fn((n, dim), |_| rng.gen_range(-1.0f32..1.0));
    for mut row in a.rows_mut() {
        let norm = row.dot(&row).sqrt().max(1e-12);
        row /= norm;
    }
    a
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| -> Option<&str> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let num = |name: &str, default: usize| -> Result<usize> {
        Ok(match get(name) {
            Some(v) => v.parse().with_context(|| format!("{name} {v}"))?,
            None => default,
        })
    };
    let dim = num("--dim", 512)?;
    let k = num("--k", 10)?;
    let threads = num("--threads", 2)?;
    let repeat = num("--repeat", 3)?;
    let cfg = ExactConfig::new(num("--query-tile", 128)?, num("--gallery-tile", 1024)?)?;
    let (queries, gallery) = match (get("--queries"), get("--gallery")) {
        (Some(q), Some(g)) => (read_f32(q, dim)?, read_f32(g, dim)?),
        _ => (
            synthetic(num("--nq", 1000)?, dim, 1),
            synthetic(num("--ng", 100_000)?, dim, 2),
        ),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let top = pool.install(|| exact_topk_with(queries.view(), gallery.view(), k, &cfg))?;
        times.push(t.elapsed().as_secs_f64());
        last = Some(top);
    }
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    let flops = 2.0 * queries.nrows() as f64 * gallery.nrows() as f64 * dim as f64;
    if let (Some(path), Some(top)) = (get("--out-indices"), &last) {
        let bytes: Vec<u8> = top
            .indices
            .iter()
            .flat_map(|&i| (i as u64).to_le_bytes())
            .collect();
        std::fs::write(path, bytes).with_context(|| format!("writing {path}"))?;
    }
    println!(
        "{}",
        serde_json::json!({
            "engine": "reid-index exact_topk",
            "nq": queries.nrows(), "ng": gallery.nrows(), "dim": dim, "k": k,
            "threads": threads, "query_tile": cfg.query_tile(), "gallery_tile": cfg.gallery_tile(),
            "seconds_best": best, "seconds_all": times,
            "gflops": flops / best / 1e9,
        })
    );
    Ok(())
}
