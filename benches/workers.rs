//! Embedding workers on one machine: N = 1, 2, 4 `animal-reid worker`
//! processes on one catalogue in a throwaway PostgreSQL, each run on a
//! fresh database with the same photos. Prints the throughput and the
//! queue's coordination cost per photo (the seconds the workers spent in
//! the queue's transactions: claim, write-back, progress report), as a
//! markdown table, and writes it as JSON.
//!
//! ```text
//! cargo bench --bench workers -- [--photos 400] [--workers 1,2,4] [--batch 16]
//!                                [--backbone mobilenet_v2] [--json target/workers-bench.json]
//! ```
//!
//! The workers share this machine's cores: with 2 cores, more than two
//! workers only interleave. The number to read across machines is the
//! coordination cost per photo, which does not depend on the cores.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use animal_reid::catalogue::testing::ThrowawayPostgres;
use animal_reid::core::ParamGuard;
use animal_reid::data::synthetic::SyntheticParams;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_animal-reid");

struct Args {
    photos: usize,
    workers: Vec<usize>,
    batch: usize,
    backbone: String,
    json: PathBuf,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        photos: 400,
        workers: vec![1, 2, 4],
        batch: 16,
        backbone: "mobilenet_v2".into(),
        json: PathBuf::from("target/workers-bench.json"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--photos" => a.photos = v()?.parse()?,
            "--workers" => a.workers = v()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--batch" => a.batch = v()?.parse()?,
            "--backbone" => a.backbone = v()?,
            "--json" => a.json = PathBuf::from(v()?),
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

fn run(location: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(BIN)
        .arg("--catalogue")
        .arg(location)
        .arg("--quiet")
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!(
            "animal-reid {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() -> Result<()> {
    let a = parse()?;
    let data = tempfile::tempdir()?;
    let per = 10;
    SyntheticParams::default()
        .n_individuals(a.photos.div_ceil(per))
        .images_per_individual(per)
        .seed(1)
        .check()?
        .generate(data.path())?;
    let csv = data.path().join("metadata.csv");
    let pg = ThrowawayPostgres::start().map_err(|e| anyhow::anyhow!(e))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Vec::new();
    println!(
        "| workers | photos | wall s | photos/s | per worker photos/s | compute s (sum) | queue s (sum) | coordination ms/photo |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &a.workers {
        let url = pg
            .fresh_database(&format!("bench_{n}"))
            .map_err(|e| anyhow::anyhow!(e))?;
        run(
            &url,
            &["init", "--backbone", &a.backbone, "--local", "none"],
        )?;
        run(&url, &["ingest", "--csv", &csv.display().to_string()])?;
        // Torch threads split between the workers (at least one each).
        let threads = (cores / n).max(1).to_string();
        let t = Instant::now();
        let children: Vec<_> = (0..n)
            .map(|i| {
                Command::new(BIN)
                    .args(["--catalogue", &url, "--quiet", "worker", "--exit-when-idle"])
                    .args([
                        "--batch",
                        &a.batch.to_string(),
                        "--batch-size",
                        &a.batch.to_string(),
                    ])
                    .args(["--poll", "0.2", "--id", &format!("bench-{n}-{i}")])
                    .env("OMP_NUM_THREADS", &threads)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
            })
            .collect::<Result<_, _>>()?;
        let mut reports = Vec::new();
        for c in children {
            let o = c.wait_with_output()?;
            if !o.status.success() {
                bail!("worker: {}", String::from_utf8_lossy(&o.stderr));
            }
            reports.push(serde_json::from_str::<Value>(
                String::from_utf8_lossy(&o.stdout).trim(),
            )?);
        }
        let wall = t.elapsed().as_secs_f64();
        let sum = |k: &str| {
            reports
                .iter()
                .map(|r| r[k].as_f64().unwrap_or(0.0))
                .sum::<f64>()
        };
        let photos = sum("photos");
        let (compute, queue) = (sum("compute_seconds"), sum("queue_seconds"));
        let per_worker: Vec<String> = reports
            .iter()
            .map(|r| {
                format!(
                    "{:.1}",
                    r["photos"].as_f64().unwrap_or(0.0)
                        / r["running_seconds"].as_f64().unwrap_or(1.0)
                )
            })
            .collect();
        println!(
            "| {n} | {photos} | {wall:.1} | {:.1} | {} | {compute:.1} | {queue:.2} | {:.3} |",
            photos / wall,
            per_worker.join(" / "),
            1e3 * queue / photos.max(1.0)
        );
        rows.push(json!({
            "workers": n, "photos": photos, "wall_seconds": wall,
            "photos_per_second": photos / wall, "compute_seconds": compute,
            "queue_seconds": queue, "coordination_ms_per_photo": 1e3 * queue / photos.max(1.0),
            "torch_threads_per_worker": threads, "reports": reports,
        }));
    }
    let out = json!({
        "backbone": a.backbone, "batch": a.batch, "cores": cores,
        "postgres": "throwaway server, fsync=off", "runs": rows,
    });
    if let Some(d) = a.json.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(&a.json, serde_json::to_string_pretty(&out)?)?;
    eprintln!("wrote {}", a.json.display());
    Ok(())
}
