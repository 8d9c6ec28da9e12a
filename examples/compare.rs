//! The Rust side of the side-by-side scripts in `scripts/compare/`: each
//! subcommand times one part of this project on data a script gives it (or
//! makes here, seeded) and prints one JSON line, which the script sets
//! against its Python peer measured in the same run. Not a benchmark of its
//! own: the criterion benches are (`cargo bench`).
//!
//! ```sh
//! cargo build --release --example compare
//! # exact search against faiss (scripts/compare/faiss_search.py):
//! target/release/examples/compare search --queries q.f32 --gallery g.f32 --dim 512 --k 10
//! # t-SNE against scikit-learn and openTSNE (scripts/compare/tsne_compare.py):
//! target/release/examples/compare tsne --n 5000 --dim 512 --save-data x.npy --out-embedding y.npy
//! target/release/examples/compare tsne --input x.npy --score sklearn.npy,opentsne.npy
//! # files to embeddings against PyTorch (scripts/compare/extract_torch.py):
//! target/release/examples/compare extract --backbone efficientnet_lite2 --list files.txt
//! ```
//!
//! Files: `search` reads raw little-endian `f32` rows (`numpy.ndarray.tofile`);
//! `tsne` reads and writes `.npy` (version 1, `<f4` / `<f8`, C order, 2-D).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use ndarray::Array2;

use animal_reid::backbone::backbone::{
    BackboneBuilder, Precision, WeightsSource, array4_to_tensor,
};
use animal_reid::backbone::pipeline::{ExtractParams, extract};
use animal_reid::data::Record;
use animal_reid::eval::tsne::{Affinities, TsneEngine, TsneInit, TsneParams};
use animal_reid::index::synthetic::ClusteredParams;
use animal_reid::index::{ExactParams, Kernel, ParamGuard, exact_topk_with};

/// One side of a side-by-side comparison, as one JSON line.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Exact top-k search (reid-index) on raw f32 files or generated rows.
    Search(SearchArgs),
    /// t-SNE of clustered vectors, or the exact KL of given embeddings.
    Tsne(TsneArgs),
    /// Files to embeddings: preprocessing alone, the model alone, end to end.
    Extract(ExtractArgs),
    /// Learned matching: keypoints of each file, LightGlue on pairs.
    Glue(GlueArgs),
}

#[derive(Debug, clap::Args)]
struct GlueArgs {
    /// xfeat, disk or aliked.
    #[arg(long)]
    matcher: String,
    /// A text file with one image path per line (used as they are: the
    /// script gives images already at their working size).
    #[arg(long)]
    list: PathBuf,
    /// Keypoints per image.
    #[arg(long, default_value_t = 256)]
    keypoints: usize,
    /// Gallery images per query in the batched matching.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// libtorch intra-op threads (0: libtorch's default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Timed repetitions of each measurement (the best is reported).
    #[arg(long, default_value_t = 2)]
    repeat: usize,
    /// Pairs per padded batch in the batched matching (LightGlue's
    /// `batch_size`; the default: the library's).
    #[arg(long)]
    chunk: Option<usize>,
    /// Precision of the linear layers of LightGlue's attention blocks: f32
    /// or bf16 (the extractors run in f32).
    #[arg(long, default_value = "f32")]
    precision: String,
}

#[derive(Debug, clap::Args)]
struct SearchArgs {
    /// Query rows (raw little-endian f32); generated when absent.
    #[arg(long, requires = "gallery")]
    queries: Option<PathBuf>,
    /// Gallery rows (raw little-endian f32); generated when absent.
    #[arg(long)]
    gallery: Option<PathBuf>,
    /// Values per row.
    #[arg(long, default_value_t = 512)]
    dim: usize,
    /// Generated queries.
    #[arg(long, default_value_t = 1000)]
    nq: usize,
    /// Generated gallery rows.
    #[arg(long, default_value_t = 100_000)]
    ng: usize,
    /// Matches per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// rayon threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed repetitions (the best is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Queries per tile.
    #[arg(long, default_value_t = 128)]
    query_tile: usize,
    /// Gallery rows per tile.
    #[arg(long, default_value_t = 1024)]
    gallery_tile: usize,
    /// Write the top-k row indices of the last run here (little-endian u64).
    #[arg(long)]
    out_indices: Option<PathBuf>,
    /// Score kernel: f32, bf16 (bf16 pre-filter re-scored in f32; CPUs with
    /// AVX-512 BF16), amx (the same pre-filter on AMX tiles) or auto.
    #[arg(long, default_value = "auto")]
    kernel: String,
}

#[derive(Debug, clap::Args)]
struct TsneArgs {
    /// Generated rows.
    #[arg(long, default_value_t = 5000)]
    n: usize,
    /// Generated dimensions.
    #[arg(long, default_value_t = 512)]
    dim: usize,
    /// Generated clusters.
    #[arg(long, default_value_t = 100)]
    clusters: usize,
    /// Spread of the generated clusters (noise `spread / sqrt(dim)` per coordinate).
    #[arg(long, default_value_t = 0.5)]
    spread: f64,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 0)]
    data_seed: u64,
    /// Embed this `.npy` matrix instead of generating one.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Save the generated data here (`.npy`).
    #[arg(long)]
    save_data: Option<PathBuf>,
    /// Save our embedding here (`.npy`).
    #[arg(long)]
    out_embedding: Option<PathBuf>,
    /// Only score these embeddings of the same data (comma-separated `.npy`).
    #[arg(long, value_delimiter = ',')]
    score: Vec<PathBuf>,
    /// Perplexity.
    #[arg(long, default_value_t = 30.0)]
    perplexity: f64,
    /// Barnes-Hut θ.
    #[arg(long, default_value_t = 0.5)]
    theta: f64,
    /// Iterations.
    #[arg(long, default_value_t = 1000)]
    max_iter: usize,
    /// Early-exaggeration iterations.
    #[arg(long, default_value_t = 250)]
    exaggeration_iter: usize,
    /// Seed of the t-SNE.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output dimensions.
    #[arg(long, default_value_t = 2)]
    dims: usize,
    /// `native` or `linfa`.
    #[arg(long, default_value = "native")]
    engine: String,
    /// `auto` or a rate in scikit-learn's units (native engine).
    #[arg(long, default_value = "auto")]
    learning_rate: String,
    /// `pca` or `random` (native engine; default PCA).
    #[arg(long)]
    init: Option<String>,
    /// rayon threads (the native t-SNE and the exact KL).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Skip the exact KL of our embedding.
    #[arg(long)]
    no_kl: bool,
}

#[derive(Debug, clap::Args)]
struct ExtractArgs {
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
    /// Precision: f32, or bf16 (CUDA, or a CPU with AVX-512 BF16).
    #[arg(long, default_value = "f32")]
    precision: String,
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

fn main() -> Result<()> {
    match Args::parse().what {
        What::Search(a) => search(&a),
        What::Tsne(a) => tsne(&a),
        What::Extract(a) => extract_files(&a),
        What::Glue(a) => glue(&a),
    }
}

/// Times extraction per image, LightGlue per pair one at a time at full
/// depth (wildlife-tools' settings), and per pair in padded batches of
/// `--batch` gallery images.
fn glue(a: &GlueArgs) -> Result<()> {
    use animal_reid::glue::lightglue::MatchInput;
    use animal_reid::glue::{LearnedKind, LearnedMatcher, LearnedParams, image_tensor};
    use animal_reid::local::Features;

    if a.threads > 0 {
        tch::set_num_threads(a.threads as i32);
    }
    let kind = match a.matcher.as_str() {
        "xfeat" => LearnedKind::XFeat,
        "disk" => LearnedKind::Disk,
        "aliked" => LearnedKind::Aliked,
        other => bail!("--matcher: xfeat, disk or aliked, not {other}"),
    };
    let precision = Precision::parse(&a.precision)?;
    let params = LearnedParams::default()
        .max_keypoints(a.keypoints)
        .precision(precision)
        .check()?;
    let mut m = LearnedMatcher::load(kind, &params, tch::Device::Cpu)?;
    let list = std::fs::read_to_string(&a.list).with_context(|| a.list.display().to_string())?;
    let images = list
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|p| {
            let img = animal_reid::data::decode_file(p.trim(), &Default::default())?;
            Ok(image_tensor(&img, tch::Device::Cpu))
        })
        .collect::<Result<Vec<_>>>()?;
    if images.len() < a.batch + 1 {
        bail!(
            "{} images; --batch {} needs {}",
            images.len(),
            a.batch,
            a.batch + 1
        );
    }
    let mut feats: Vec<Features> = Vec::new();
    let extract = best_of(a.repeat, || {
        feats.clear();
        for t in &images {
            let s = t.size();
            let size = (s[3] as u32, s[2] as u32);
            let k = m.extractor().extract_batch(t)?.pop().context("no output")?;
            feats.push(k.to_features(size, size)?);
        }
        Ok(())
    })?;
    // One pair at a time, full depth and width (what the batched path computes).
    let mut full = (*m.glue().params().get()).full_depth();
    if let Some(chunk) = a.chunk {
        full = full.batch_size(chunk);
    }
    let full = full.check()?;
    m.set_glue_params(full);
    let tensors: Vec<(tch::Tensor, tch::Tensor)> = feats
        .iter()
        .map(|f| animal_reid::glue::learned::feature_tensors(f, tch::Device::Cpu))
        .collect();
    let input = |i: usize| MatchInput::new(&tensors[i].0, &tensors[i].1, feats[i].scaled_size());
    let pairs = a.batch;
    let mut matched = 0usize;
    let single = best_of(a.repeat, || {
        matched = 0;
        for j in 1..=pairs {
            matched += m.glue().match_pair(input(0), input(j))?.pairs.len();
        }
        Ok(())
    })?;
    let others: Vec<MatchInput<'_>> = (1..=pairs).map(input).collect();
    let batched = best_of(a.repeat, || {
        m.glue().match_batch(input(0), &others)?;
        Ok(())
    })?;
    let kp = feats.iter().map(Features::len).sum::<usize>() as f64 / feats.len() as f64;
    println!(
        "{}",
        serde_json::json!({
            "matcher": kind.name(),
            "images": images.len(),
            "keypoints_mean": kp,
            "threads": tch::get_num_threads(),
            "extract_ms_per_image": 1000.0 * extract / images.len() as f64,
            "pair_ms_single_full_depth": 1000.0 * single / pairs as f64,
            "pair_ms_batched": 1000.0 * batched / pairs as f64,
            "batch": pairs,
            "precision": precision.name(),
            "matches_first_query": matched,
        })
    );
    Ok(())
}

/// The best of `n` timed runs of `f`, in seconds.
fn best_of<F: FnMut() -> Result<()>>(n: usize, mut f: F) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..n.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn read_f32(path: &Path, dim: usize) -> Result<Array2<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if dim == 0 || bytes.len() % (4 * dim) != 0 {
        bail!(
            "{}: {} bytes is not a whole number of {dim}-d f32 rows",
            path.display(),
            bytes.len()
        );
    }
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Array2::from_shape_vec((v.len() / dim, dim), v)?)
}

fn search(a: &SearchArgs) -> Result<()> {
    let kernel = match a.kernel.as_str() {
        "f32" => Kernel::F32,
        "bf16" => Kernel::Bf16Prefilter,
        "amx" => Kernel::AmxPrefilter,
        "auto" => Kernel::Auto,
        other => bail!("--kernel: f32, bf16, amx or auto, not {other}"),
    };
    let cfg = ExactParams::default()
        .query_tile(a.query_tile)
        .gallery_tile(a.gallery_tile)
        .kernel(kernel)
        .check()?;
    let random = |n: usize, seed: u64| {
        // Spread over the sphere: one cluster per row.
        ClusteredParams::default()
            .rows(n)
            .dim(a.dim)
            .clusters(n.max(1))
            .noise(0.0)
            .seed(seed)
            .check()
            .map(|p| p.generate())
    };
    let (queries, gallery) = match (&a.queries, &a.gallery) {
        (Some(q), Some(g)) => (read_f32(q, a.dim)?, read_f32(g, a.dim)?),
        _ => (random(a.nq, 1)?, random(a.ng, 2)?),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()?;
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..a.repeat.max(1) {
        let t = Instant::now();
        let top = pool.install(|| exact_topk_with(queries.view(), gallery.view(), a.k, &cfg))?;
        times.push(t.elapsed().as_secs_f64());
        last = Some(top);
    }
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    let flops = 2.0 * queries.nrows() as f64 * gallery.nrows() as f64 * a.dim as f64;
    if let (Some(path), Some(top)) = (&a.out_indices, &last) {
        let bytes: Vec<u8> = top
            .indices
            .iter()
            .flat_map(|&i| (i as u64).to_le_bytes())
            .collect();
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "{}",
        serde_json::json!({
            "engine": "reid-index exact_topk",
            "nq": queries.nrows(), "ng": gallery.nrows(), "dim": a.dim, "k": a.k,
            "threads": a.threads, "query_tile": cfg.query_tile(), "gallery_tile": cfg.gallery_tile(),
            "kernel": format!("{:?}", cfg.kernel_for(queries.nrows())),
            "seconds_best": best, "seconds_all": times, "gflops": flops / best / 1e9,
        })
    );
    Ok(())
}

/// Writes a 2-D little-endian C-order `.npy` of `descr` (`<f4`, `<f8`).
fn write_npy(path: &Path, descr: &str, (n, d): (usize, usize), data: &[u8]) -> Result<()> {
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
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// Reads a 2-D little-endian `<f4` / `<f8` C-order `.npy` as f64.
fn read_npy(path: &Path) -> Result<Array2<f64>> {
    let p = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("reading {p}"))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("{p}: not a .npy file");
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => bail!("{p}: unsupported .npy version {v}"),
    };
    let header = std::str::from_utf8(
        bytes
            .get(start..start + hlen)
            .with_context(|| format!("{p}: truncated header"))?,
    )
    .with_context(|| format!("{p}: header is not UTF-8"))?;
    let field = |key: &str| -> Result<&str> {
        let at = header
            .find(&format!("'{key}'"))
            .with_context(|| format!("{p}: header lacks '{key}': {header}"))?;
        Ok(header[at + key.len() + 2..].trim_start_matches([':', ' ']))
    };
    let descr = field("descr")?;
    let size = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        bail!("{p}: dtype {descr:.6} is not <f4 or <f8");
    };
    if !field("fortran_order")?.starts_with("False") {
        bail!("{p}: Fortran-order arrays are not supported");
    }
    let shape = field("shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .with_context(|| format!("{p}: bad shape {shape}"))?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{p}: bad shape {inner}"))?;
    let [n, d] = dims[..] else {
        bail!("{p}: expected a 2-D array, shape ({inner})");
    };
    let data = &bytes[start + hlen..];
    if Some(data.len()) != n.checked_mul(d).and_then(|x| x.checked_mul(size)) {
        bail!(
            "{p}: {} data bytes for shape ({n}, {d}) of {size}-byte floats",
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

fn tsne(a: &TsneArgs) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build_global()
        .context("building the rayon pool")?;
    let mut params = TsneParams::new(a.dims)
        .perplexity(a.perplexity)
        .theta(a.theta)
        .max_iter(a.max_iter)
        .exaggeration_iter(a.exaggeration_iter)
        .seed(a.seed)
        .engine(match a.engine.as_str() {
            "native" => TsneEngine::Native,
            "linfa" => TsneEngine::Linfa,
            other => bail!("--engine: native or linfa, not {other}"),
        });
    if a.learning_rate != "auto" {
        params = params.learning_rate(
            a.learning_rate
                .parse()
                .with_context(|| format!("--learning-rate {}", a.learning_rate))?,
        );
    }
    if let Some(init) = &a.init {
        params = params.init(match init.as_str() {
            "pca" => TsneInit::Pca,
            "random" => TsneInit::Random,
            other => bail!("--init: pca or random, not {other}"),
        });
    }
    let x: Array2<f64> = match &a.input {
        Some(path) => read_npy(path)?,
        None => {
            let x = ClusteredParams::default()
                .rows(a.n)
                .dim(a.dim)
                .clusters(a.clusters)
                .noise(a.spread / (a.dim.max(1) as f64).sqrt())
                .seed(a.data_seed)
                .point_seed(a.data_seed.wrapping_add(1))
                .check()?
                .generate();
            if let Some(path) = &a.save_data {
                let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
                write_npy(path, "<f4", x.dim(), &bytes)?;
            }
            x.mapv(f64::from)
        }
    };
    let (n, d) = x.dim();
    if !a.score.is_empty() {
        let t = Instant::now();
        let aff = Affinities::new(x.view(), a.perplexity)?;
        let affinity_s = t.elapsed().as_secs_f64();
        let mut scores = Vec::new();
        for path in &a.score {
            let y = read_npy(path)?;
            let t = Instant::now();
            let kl = aff.kl_divergence(y.view())?;
            scores.push(serde_json::json!({
                "path": path, "kl": kl, "seconds": t.elapsed().as_secs_f64(),
            }));
        }
        println!(
            "{}",
            serde_json::json!({
                "n": n, "dim": d, "perplexity": a.perplexity, "threads": a.threads,
                "affinity_s": affinity_s, "scores": scores,
            })
        );
        return Ok(());
    }
    let valid = params.check()?;
    let t = Instant::now();
    let embedding = valid.embed(x.view())?;
    let tsne_s = t.elapsed().as_secs_f64();
    if let Some(path) = &a.out_embedding {
        let bytes: Vec<u8> = embedding.iter().flat_map(|v| v.to_le_bytes()).collect();
        write_npy(path, "<f8", embedding.dim(), &bytes)?;
    }
    let (kl, kl_s) = if a.no_kl {
        (None, None)
    } else {
        let t = Instant::now();
        let kl = Affinities::new(x.view(), valid.perplexity())?.kl_divergence(embedding.view())?;
        (Some(kl), Some(t.elapsed().as_secs_f64()))
    };
    println!(
        "{}",
        serde_json::json!({
            "n": n, "dim": d, "dims": valid.dims(), "perplexity": valid.perplexity(),
            "theta": valid.theta(), "max_iter": valid.max_iter(),
            "exaggeration_iter": valid.exaggeration_iter(), "seed": valid.seed(),
            "threads_kl": a.threads, "tsne_s": tsne_s, "kl": kl, "kl_s": kl_s,
            "learning_rate": valid.learning_rate_for(n), "init": format!("{:?}", valid.init()),
            "implementation": match valid.engine() {
                TsneEngine::Native => "reid-eval native Barnes-Hut (rayon)",
                TsneEngine::Linfa => "linfa-tsne 0.8 (bhtsne 0.4), Barnes-Hut, single-threaded",
            },
        })
    );
    Ok(())
}

fn extract_files(a: &ExtractArgs) -> Result<()> {
    if a.threads > 0 {
        tch::set_num_threads(i32::try_from(a.threads)?);
        rayon::ThreadPoolBuilder::new()
            .num_threads(a.threads)
            .build_global()?;
    }
    let text = std::fs::read_to_string(&a.list)
        .with_context(|| format!("reading {}", a.list.display()))?;
    let records: Vec<Record> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, p)| Record::new(format!("img{i}"), p.trim()))
        .collect();
    anyhow::ensure!(!records.is_empty(), "{}: no files listed", a.list.display());
    let mut builder = BackboneBuilder::new(&a.backbone).precision(Precision::parse(&a.precision)?);
    if let Some(w) = &a.weights {
        builder = builder.weights_file(w);
    }
    if let Some(seed) = a.random_init {
        builder = builder.weights(WeightsSource::Random(seed));
    }
    let bb = builder.build()?;
    let pre = bb.preprocess_params().check()?;
    let n = records.len();
    let params = ExtractParams::default().batch_size(a.batch_size).check()?;
    // Warm-up: one batch through the whole pipeline.
    extract(&bb, &records[..a.batch_size.min(n)], &params, |_| {})?;
    let pre_s = best_of(a.repeat, || {
        for chunk in records.chunks(a.batch_size) {
            pre.batch(chunk)?;
        }
        Ok(())
    })?;
    let batch = pre.batch(&records[..a.batch_size.min(n)])?;
    let x = array4_to_tensor(batch.images.view());
    let b = batch.ids.len();
    let model_s = best_of(a.repeat, || {
        for _ in 0..n.div_ceil(b) {
            let _ = bb.embed_tensor(&x)?;
        }
        Ok(())
    })? * n as f64
        / (n.div_ceil(b) * b) as f64;
    let total_s = best_of(a.repeat, || {
        extract(&bb, &records, &params, |_| {})?;
        Ok(())
    })?;
    let info = bb.info();
    println!(
        "{}",
        serde_json::json!({
            "backbone": info.name, "precision": info.precision.name(), "input_size": info.input_size, "crop_pct": info.crop_pct,
            "interpolation": info.interpolation, "mean": info.mean, "std": info.std,
            "images": n, "batch_size": a.batch_size, "threads": tch::get_num_threads(),
            "preprocess_img_per_s": n as f64 / pre_s, "model_img_per_s": n as f64 / model_s,
            "end_to_end_img_per_s": n as f64 / total_s, "end_to_end_s": total_s,
        })
    );
    Ok(())
}
