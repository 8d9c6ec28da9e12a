//! Recall and speed of HNSW search against exact search on clustered
//! synthetic data; prints one JSON line per `ef` (`approx_s` and `exact_s`
//! are for the whole batch of `nq` queries, `speedup` is their ratio).
//!
//! ```text
//! cargo run --release -p reid-index --features hnsw --example hnsw_recall -- \
//!     --n 1000000 --dim 256 --nq 1000 --m 16 --efc 100 --ef 16,32,64,128 --threads 2
//! ```
//!
//! `--engines ivf` (or `ours,ivf`) puts the inverted file
//! (`Gallery::build_ivf`, `--lists`, default `4·√n`) beside the graph, one
//! line per `--nprobe` (default `1,2,4,8,16`; reported in the `ef` field).
//!
//! With `--features usearch` and `--engines ours,usearch:f32,usearch:bf16,usearch:i8`
//! the same data and queries also go through USearch (same M, ef_construction
//! and thread count; its vectors stored in f32, bf16 or i8), one JSON line
//! per engine and `ef` with its build time and memory. `--dump DIR` writes
//! the gallery, queries and exact top-k for `scripts/compare/faiss_hnsw.py`
//! (faiss `IndexHNSWFlat` on the same data).
//!
//! The data: `n / 100` random unit centres (100 photos per "individual"),
//! each point its centre plus Gaussian noise of `--sigma` per coordinate,
//! L2-normalised; queries are fresh points of the same clusters. In `dim`
//! dimensions two points of one cluster have cosine about
//! `1 / (1 + dim·sigma²)`: 0.61 at the default sigma 0.05 and 256-d, the
//! range in which photos of one individual sit under a re-identification
//! embedding. At sigma 0.1 it falls to 0.28, below the best cosine of a
//! random unit vector among a million others in 256-d (about 0.31): such a
//! set is close to uniform noise, on which the nearest neighbour means
//! little and graph indexes lose their recall.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashSet;
use std::time::Instant;

use anyhow::{Context, Result};
use reid_index::synthetic::ClusteredParams;
use reid_index::{Gallery, HnswParams, IvfParams, ParamGuard, Record, exact_topk};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let num = |name: &str, default: usize| -> Result<usize> {
        get(name).map_or(Ok(default), |v| {
            v.parse().with_context(|| format!("{name} {v}"))
        })
    };
    let n = num("--n", 100_000)?;
    let dim = num("--dim", 256)?;
    let nq = num("--nq", 1000)?;
    let clusters = num("--clusters", (n / 100).max(1))?;
    let m = num("--m", 16)?;
    let efc = num("--efc", 100)?;
    let threads = num("--threads", 2)?;
    let sigma: f32 = get("--sigma").map_or(Ok(0.05), |v| v.parse())?;
    let efs: Vec<usize> = get("--ef")
        .unwrap_or_else(|| "16,32,64,128,256".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let k = 10;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;

    let t = Instant::now();
    // Gallery and queries share their clusters (seed 1), not their noise.
    let data = |rows: usize, point_seed: u64| {
        ClusteredParams::default()
            .rows(rows)
            .dim(dim)
            .clusters(clusters)
            .noise(f64::from(sigma))
            .seed(1)
            .point_seed(point_seed)
            .check()
            .map(|p| p.generate())
    };
    let (emb, queries) = (data(n, 2)?, data(nq, 3)?);
    let recs = (0..n)
        .map(|i| Record::new(i.to_string(), "").with_identity((i % clusters).to_string()))
        .collect();
    let mut g = Gallery::from_parts("synthetic", emb.view(), recs)?;
    drop(emb);
    eprintln!(
        "data {n} x {dim} ({clusters} clusters) in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let exact = pool.install(|| exact_topk(queries.view(), g.embeddings(), k))?;
    let exact_s = t.elapsed().as_secs_f64();
    eprintln!("exact search {nq} queries: {exact_s:.2}s");
    if let Some(dir) = get("--dump") {
        // For scripts/compare/faiss_hnsw.py: the same data, raw little-endian.
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir)?;
        let f32s = |a: ndarray::ArrayView2<'_, f32>| -> Vec<u8> {
            a.iter().flat_map(|x| x.to_le_bytes()).collect()
        };
        std::fs::write(dir.join("gallery.f32"), f32s(g.embeddings()))?;
        std::fs::write(dir.join("queries.f32"), f32s(queries.view()))?;
        let idx: Vec<u8> = exact
            .indices
            .iter()
            .flat_map(|&i| (i as u64).to_le_bytes())
            .collect();
        std::fs::write(dir.join("exact.u64"), idx)?;
        std::fs::write(
            dir.join("meta.json"),
            serde_json::json!({"n": n, "dim": dim, "nq": nq, "k": k, "exact_s": exact_s,
                               "threads": threads, "sigma": sigma, "clusters": clusters})
            .to_string(),
        )?;
        eprintln!("data written to {}", dir.display());
    }

    let engines: Vec<String> = get("--engines")
        .unwrap_or_else(|| "ours".into())
        .split(',')
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    let recall = |rows: &[Vec<usize>]| {
        let mut r1 = 0.0;
        let mut r10 = 0.0;
        for (qi, hits) in rows.iter().enumerate() {
            let truth: HashSet<usize> = exact.indices.row(qi).iter().copied().collect();
            if hits.first() == exact.indices.row(qi).first() {
                r1 += 1.0;
            }
            r10 += hits.iter().filter(|h| truth.contains(h)).count() as f64 / k as f64;
        }
        (r1 / nq as f64, r10 / nq as f64)
    };
    let report = |engine: &str,
                  ef: usize,
                  build_s: f64,
                  bytes: usize,
                  s: f64,
                  rows: &[Vec<usize>]| {
        let (r1, r10) = recall(rows);
        println!(
            "{}",
            serde_json::json!({
                "engine": engine, "n": n, "dim": dim, "nq": nq, "clusters": clusters, "sigma": sigma,
                "threads": threads, "m": m, "ef_construction": efc, "ef": ef, "build_s": build_s,
                "index_bytes": bytes, "exact_s": exact_s, "approx_s": s, "speedup": exact_s / s,
                "recall_at_1": r1, "recall_at_10": r10,
            })
        );
    };
    for engine in &engines {
        match engine.as_str() {
            "ours" => {
                let t = Instant::now();
                pool.install(|| {
                    g.build_hnsw(HnswParams::default().m(m).ef_construction(efc).check()?)
                })?;
                let build_s = t.elapsed().as_secs_f64();
                eprintln!("ours: HNSW build (M={m}, efc={efc}): {build_s:.1}s");
                // The graph's own memory: u8 codes, links of M (2M at layer 0) u32s.
                let bytes = n * dim + n * 2 * m * 4;
                for &ef in &efs {
                    let t = Instant::now();
                    let approx = pool.install(|| g.search_approx(queries.view(), k, ef, None))?;
                    let s = t.elapsed().as_secs_f64();
                    let rows: Vec<Vec<usize>> = approx
                        .iter()
                        .map(|hits| hits.iter().map(|h| h.row).collect())
                        .collect();
                    report("ours", ef, build_s, bytes, s, &rows);
                }
            }
            "ivf" => {
                let lists = get("--lists").map(|v| v.parse()).transpose()?;
                let t = Instant::now();
                pool.install(|| g.build_ivf(IvfParams::default().lists(lists).check()?))?;
                let build_s = t.elapsed().as_secs_f64();
                let nlists = lists.unwrap_or(((4.0 * (n as f64).sqrt()).round() as usize).min(n));
                eprintln!("ivf: build ({nlists} lists): {build_s:.1}s");
                // Centroids in f32 and one u64 serial number per row.
                let bytes = nlists * dim * 4 + n * 8;
                let probes: Vec<usize> = get("--nprobe")
                    .unwrap_or_else(|| "1,2,4,8,16".into())
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
                for &nprobe in &probes {
                    let t = Instant::now();
                    let approx = pool.install(|| g.search_ivf(queries.view(), k, nprobe, None))?;
                    let s = t.elapsed().as_secs_f64();
                    let rows: Vec<Vec<usize>> = approx
                        .iter()
                        .map(|hits| hits.iter().map(|h| h.row).collect())
                        .collect();
                    report("ivf", nprobe, build_s, bytes, s, &rows);
                }
            }
            #[cfg(feature = "usearch")]
            other if other.starts_with("usearch") => {
                let kind = other.strip_prefix("usearch:").unwrap_or("f32");
                usearch_engine(
                    kind,
                    &g,
                    &queries,
                    (m, efc, threads, k),
                    &efs,
                    &pool,
                    &report,
                )?;
            }
            other => anyhow::bail!(
                "unknown engine {other} (ours, ivf; usearch:f32|bf16|i8 with --features usearch)"
            ),
        }
    }
    Ok(())
}

/// Prints one result line: engine, ef, build seconds, index bytes, search
/// seconds, the found rows of each query.
#[cfg(feature = "usearch")]
type Report<'a> = dyn Fn(&str, usize, f64, usize, f64, &[Vec<usize>]) + 'a;

/// Builds a USearch index of the gallery (inner product, `kind` storage,
/// `m` links, `efc`) with `threads` threads adding in parallel, then times
/// each `ef` on the queries.
#[cfg(feature = "usearch")]
fn usearch_engine(
    kind: &str,
    g: &Gallery,
    queries: &ndarray::Array2<f32>,
    (m, efc, threads, k): (usize, usize, usize, usize),
    efs: &[usize],
    pool: &rayon::ThreadPool,
    report: &Report<'_>,
) -> Result<()> {
    use rayon::prelude::*;
    use usearch::{Index, IndexOptions, MetricKind, ScalarKind};
    let quantization = match kind {
        "f32" => ScalarKind::F32,
        "bf16" => ScalarKind::BF16,
        "i8" => ScalarKind::I8,
        other => anyhow::bail!("usearch storage {other}: f32, bf16 or i8"),
    };
    let emb = g.embeddings();
    let (n, dim) = emb.dim();
    let options = IndexOptions {
        dimensions: dim,
        metric: MetricKind::IP,
        quantization,
        connectivity: m,
        expansion_add: efc,
        expansion_search: 64,
        multi: false,
    };
    let index = Index::new(&options).map_err(|e| anyhow::anyhow!("usearch: {e}"))?;
    index
        .reserve_capacity_and_threads(n, threads)
        .map_err(|e| anyhow::anyhow!("usearch: {e}"))?;
    let t = Instant::now();
    pool.install(|| {
        (0..n).into_par_iter().try_for_each(|i| {
            let row = emb.row(i);
            let row = row.as_slice().context("gallery rows are contiguous")?;
            index
                .add(i as u64, row)
                .map_err(|e| anyhow::anyhow!("usearch add: {e}"))
        })
    })?;
    let build_s = t.elapsed().as_secs_f64();
    let bytes = index.memory_usage();
    let engine = format!("usearch-{}-{kind}", usearch::version());
    eprintln!("{engine}: build (M={m}, efc={efc}): {build_s:.1}s, {bytes} bytes");
    for &ef in efs {
        index.change_expansion_search(ef);
        let t = Instant::now();
        let rows: Vec<Vec<usize>> = pool.install(|| {
            (0..queries.nrows())
                .into_par_iter()
                .map(|qi| {
                    let q = queries.row(qi);
                    let q = q.as_slice().context("query rows are contiguous")?;
                    let found = index
                        .search(q, k)
                        .map_err(|e| anyhow::anyhow!("usearch search: {e}"))?;
                    Ok(found.keys.iter().map(|&key| key as usize).collect())
                })
                .collect::<Result<_>>()
        })?;
        let s = t.elapsed().as_secs_f64();
        report(&engine, ef, build_s, bytes, s, &rows);
    }
    Ok(())
}
