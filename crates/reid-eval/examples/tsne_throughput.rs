//! Times t-SNE (the native engine, or linfa-tsne) on clustered embeddings, scores
//! embeddings with the exact KL divergence, and prints one JSON line.
//!
//! ```text
//! # generate 5000 x 512 unit vectors in 100 clusters, save them, embed, score:
//! tsne_throughput --n 5000 --dim 512 --clusters 100 --save-data data.npy \
//!     --out-embedding ours.npy --threads 2
//! # or embed a saved matrix:
//! tsne_throughput --input data.npy --out-embedding ours.npy
//! # score other embeddings of the same data (no t-SNE run):
//! tsne_throughput --input data.npy --score sklearn.npy,opentsne.npy
//! ```
//! Files are `.npy` (version 1, little-endian `<f4` or `<f8`, C order, 2-D):
//! what `numpy.save` writes. `--threads` sizes the rayon pool: the native
//! t-SNE and the exact KL run on it (linfa-tsne is single-threaded).
//!
//! Options: `--perplexity 30 --theta 0.5 --max-iter 1000
//! --exaggeration-iter 250 --seed 0 --dims 2 --engine native|linfa
//! --learning-rate auto|RATE (scikit-learn's units) --init pca|random`
//! (t-SNE; the last two for the native engine only), `--data-seed 0
//! --spread 0.5` (generated data: `unit(c + spread * g / sqrt(dim))` with `c`
//! a random unit centre and `g` standard normal, rows assigned to clusters
//! round-robin), `--no-kl` (skip the exact KL of our embedding).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reid_eval::ParamGuard;
use reid_eval::tsne::{Affinities, TsneEngine, TsneInit, TsneParams};

/// Writes a 2-D little-endian f32 (`<f4`) or f64 (`<f8`) C-order `.npy`.
fn write_npy_f32(path: &str, x: &Array2<f32>) -> Result<()> {
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_npy(path, "<f4", x.dim(), &bytes)
}

fn write_npy_f64(path: &str, x: &Array2<f64>) -> Result<()> {
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_npy(path, "<f8", x.dim(), &bytes)
}

fn write_npy(path: &str, descr: &str, (n, d): (usize, usize), data: &[u8]) -> Result<()> {
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({n}, {d}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n', padded to 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let len = u16::try_from(header.len()).context("npy header too long")?;
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    std::fs::write(path, out).with_context(|| format!("writing {path}"))
}

/// Reads a 2-D little-endian `<f4` / `<f8` C-order `.npy` as f64.
fn read_npy(path: &str) -> Result<Array2<f64>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("{path}: not a .npy file");
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => bail!("{path}: unsupported .npy version {v}"),
    };
    let header = std::str::from_utf8(
        bytes
            .get(start..start + hlen)
            .with_context(|| format!("{path}: truncated header"))?,
    )
    .with_context(|| format!("{path}: header is not UTF-8"))?;
    let field = |key: &str| -> Result<&str> {
        let at = header
            .find(&format!("'{key}'"))
            .with_context(|| format!("{path}: header lacks '{key}': {header}"))?;
        Ok(header[at + key.len() + 2..].trim_start_matches([':', ' ']))
    };
    let descr = field("descr")?;
    let size = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        bail!("{path}: dtype {descr:.6} is not <f4 or <f8");
    };
    if !field("fortran_order")?.starts_with("False") {
        bail!("{path}: Fortran-order arrays are not supported");
    }
    let shape = field("shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .with_context(|| format!("{path}: bad shape {shape}"))?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{path}: bad shape {inner}"))?;
    let [n, d] = dims[..] else {
        bail!("{path}: expected a 2-D array, shape ({inner})");
    };
    let data = &bytes[start + hlen..];
    if data.len() != n * d * size {
        bail!(
            "{path}: {} data bytes for shape ({n}, {d}) of {size}-byte floats",
            data.len()
        );
    }
    let values: Vec<f64> = if size == 4 {
        data.chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()
    };
    Ok(Array2::from_shape_vec((n, d), values)?)
}

fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `n` unit rows of `d` dims around `clusters` random unit centres.
fn clustered(n: usize, d: usize, clusters: usize, spread: f64, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut centres = Array2::from_shape_fn((clusters, d), |_| gaussian(&mut rng));
    for mut c in centres.rows_mut() {
        let norm = c.dot(&c).sqrt();
        c /= norm;
    }
    let mut x = Array2::<f32>::zeros((n, d));
    let scale = spread / (d as f64).sqrt();
    for (i, mut row) in x.rows_mut().into_iter().enumerate() {
        let c = centres.row(i % clusters);
        let v: Vec<f64> = c
            .iter()
            .map(|&ci| ci + scale * gaussian(&mut rng))
            .collect();
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        for (o, a) in row.iter_mut().zip(v) {
            *o = (a / norm) as f32;
        }
    }
    x
}

struct Args {
    n: usize,
    dim: usize,
    clusters: usize,
    spread: f64,
    data_seed: u64,
    input: Option<String>,
    save_data: Option<String>,
    out_embedding: Option<String>,
    score: Vec<String>,
    params: TsneParams,
    perplexity: f64,
    threads: usize,
    kl: bool,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        n: 5000,
        dim: 512,
        clusters: 100,
        spread: 0.5,
        data_seed: 0,
        input: None,
        save_data: None,
        out_embedding: None,
        score: Vec::new(),
        params: TsneParams::new(2),
        perplexity: 30.0,
        threads: 2,
        kl: true,
    };
    let (mut dims, mut theta, mut max_iter, mut exag, mut seed) = (2, 0.5, 1000, 250, 0);
    let (mut engine, mut rate, mut init) = (TsneEngine::Native, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--n" => a.n = value()?.parse()?,
            "--dim" => a.dim = value()?.parse()?,
            "--clusters" => a.clusters = value()?.parse()?,
            "--spread" => a.spread = value()?.parse()?,
            "--data-seed" => a.data_seed = value()?.parse()?,
            "--input" => a.input = Some(value()?),
            "--save-data" => a.save_data = Some(value()?),
            "--out-embedding" => a.out_embedding = Some(value()?),
            "--score" => {
                a.score = value()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "--perplexity" => a.perplexity = value()?.parse()?,
            "--theta" => theta = value()?.parse()?,
            "--max-iter" => max_iter = value()?.parse()?,
            "--exaggeration-iter" => exag = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--dims" => dims = value()?.parse()?,
            "--threads" => a.threads = value()?.parse()?,
            "--no-kl" => a.kl = false,
            "--engine" => {
                engine = match value()?.as_str() {
                    "native" => TsneEngine::Native,
                    "linfa" => TsneEngine::Linfa,
                    other => bail!("--engine: native or linfa, not {other}"),
                }
            }
            "--learning-rate" => {
                rate = match value()?.as_str() {
                    "auto" => None,
                    v => Some(v.parse::<f64>()?),
                }
            }
            "--init" => {
                init = Some(match value()?.as_str() {
                    "pca" => TsneInit::Pca,
                    "random" => TsneInit::Random,
                    other => bail!("--init: pca or random, not {other}"),
                })
            }
            "-h" | "--help" => {
                println!("see the doc comment of crates/reid-eval/examples/tsne_throughput.rs");
                std::process::exit(0);
            }
            other => bail!("unknown option {other}"),
        }
    }
    a.params = TsneParams::new(dims)
        .perplexity(a.perplexity)
        .theta(theta)
        .max_iter(max_iter)
        .exaggeration_iter(exag)
        .engine(engine)
        .seed(seed);
    if let Some(rate) = rate {
        a.params = a.params.learning_rate(rate);
    }
    if let Some(init) = init {
        a.params = a.params.init(init);
    }
    Ok(a)
}

fn main() -> Result<()> {
    let args = parse()?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .context("building the rayon pool")?;
    let x: Array2<f64> = match &args.input {
        Some(path) => read_npy(path)?,
        None => {
            let x = clustered(args.n, args.dim, args.clusters, args.spread, args.data_seed);
            if let Some(path) = &args.save_data {
                write_npy_f32(path, &x)?;
            }
            x.mapv(f64::from)
        }
    };
    let (n, d) = x.dim();
    if !args.score.is_empty() {
        let t = Instant::now();
        let aff = Affinities::new(x.view(), args.perplexity)?;
        let affinity_s = t.elapsed().as_secs_f64();
        let mut scores = Vec::new();
        for path in &args.score {
            let y = read_npy(path)?;
            let t = Instant::now();
            let kl = aff.kl_divergence(y.view())?;
            scores.push(serde_json::json!({
                "path": path, "kl": kl, "seconds": t.elapsed().as_secs_f64(),
            }));
        }
        let out = serde_json::json!({
            "n": n, "dim": d, "perplexity": args.perplexity, "threads": args.threads,
            "affinity_s": affinity_s, "scores": scores,
        });
        println!("{out}");
        return Ok(());
    }
    let valid = args.params.check()?;
    let t = Instant::now();
    let embedding = valid.embed(x.view())?;
    let tsne_s = t.elapsed().as_secs_f64();
    if let Some(path) = &args.out_embedding {
        write_npy_f64(path, &embedding)?;
    }
    let (kl, kl_s) = if args.kl {
        let t = Instant::now();
        let kl = Affinities::new(x.view(), valid.perplexity())?.kl_divergence(embedding.view())?;
        (Some(kl), Some(t.elapsed().as_secs_f64()))
    } else {
        (None, None)
    };
    let out = serde_json::json!({
        "n": n, "dim": d, "dims": valid.dims(), "perplexity": valid.perplexity(),
        "theta": valid.theta(), "max_iter": valid.max_iter(),
        "exaggeration_iter": valid.exaggeration_iter(), "seed": valid.seed(),
        "threads_kl": args.threads, "tsne_s": tsne_s, "kl": kl, "kl_s": kl_s,
        "learning_rate": valid.learning_rate_for(n), "init": format!("{:?}", valid.init()),
        "implementation": match valid.engine() {
            TsneEngine::Native => "reid-eval native Barnes-Hut (rayon)",
            TsneEngine::Linfa => "linfa-tsne 0.8 (bhtsne 0.4), Barnes-Hut, single-threaded",
        },
    });
    println!("{out}");
    Ok(())
}
