//! Recall and speed of HNSW search against exact search on clustered
//! synthetic data; prints one JSON line per `ef` (`approx_s` and `exact_s`
//! are for the whole batch of `nq` queries, `speedup` is their ratio).
//!
//! ```text
//! cargo run --release -p reid-index --features hnsw --example hnsw_recall -- \
//!     --n 1000000 --dim 256 --nq 1000 --m 16 --efc 100 --ef 16,32,64,128 --threads 2
//! ```
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
use reid_index::{Gallery, HnswParams, ParamGuard, Record, exact_topk};

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

    let t = Instant::now();
    pool.install(|| g.build_hnsw(HnswParams::default().m(m).ef_construction(efc).check()?))?;
    let build_s = t.elapsed().as_secs_f64();
    eprintln!("HNSW build (M={m}, efc={efc}): {build_s:.1}s");

    for ef in efs {
        let t = Instant::now();
        let approx = pool.install(|| g.search_approx(queries.view(), k, ef, None))?;
        let s = t.elapsed().as_secs_f64();
        let mut r1 = 0.0;
        let mut r10 = 0.0;
        for (qi, hits) in approx.iter().enumerate() {
            let truth: HashSet<usize> = exact.indices.row(qi).iter().copied().collect();
            if hits.first().map(|h| h.row) == exact.indices.row(qi).first().copied() {
                r1 += 1.0;
            }
            r10 += hits.iter().filter(|h| truth.contains(&h.row)).count() as f64 / k as f64;
        }
        println!(
            "{}",
            serde_json::json!({
                "n": n, "dim": dim, "nq": nq, "clusters": clusters, "sigma": sigma, "threads": threads,
                "m": m, "ef_construction": efc, "ef": ef, "build_s": build_s,
                "exact_s": exact_s, "approx_s": s, "speedup": exact_s / s,
                "recall_at_1": r1 / nq as f64, "recall_at_10": r10 / nq as f64,
            })
        );
    }
    Ok(())
}
