//! Embedding workers coordinated through the catalogue's PostgreSQL (a
//! throwaway server started by the test): three worker processes on one
//! catalogue, one of them killed with SIGKILL mid-batch at seeded random
//! moments (and started again); afterwards every photo has exactly one
//! embedding, equal to a single-process run, nothing is left leased, and an
//! undecodable photo is parked with its error.
#![cfg(feature = "torch")]
#![allow(clippy::print_stderr)]

mod cli_support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use animal_reid::catalogue::testing::ThrowawayPostgres;
use animal_reid::core::ParamGuard;
use animal_reid::data::synthetic::SyntheticParams;
use animal_reid::index::Gallery;
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use serde_json::Value;

use cli_support::{cli, run};

/// content hash -> embedding, from an export of the catalogue.
fn embeddings(location: &str, dir: &Path) -> Result<HashMap<String, Vec<f32>>> {
    run(location, &["export", "--out", &dir.display().to_string()])?;
    let g = Gallery::load(dir.join("embeddings.gallery"))?;
    let m = g.embeddings();
    g.records()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let h = r
                .attributes
                .get("content_hash")
                .context("content_hash attribute")?;
            Ok((h.clone(), m.row(i).to_vec()))
        })
        .collect()
}

fn worker(location: &str, id: &str) -> Result<Child> {
    Ok(cli(
        location,
        &[
            "worker",
            "--exit-when-idle",
            "--batch",
            "8",
            "--batch-size",
            "8",
            "--lease",
            "4",
            "--poll",
            "0.3",
            "--max-attempts",
            "2",
            "--id",
            id,
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()?)
}

#[test]
fn three_workers_one_killed_mid_batch_leave_exactly_one_embedding_per_photo() -> Result<()> {
    let data = tempfile::tempdir()?;
    SyntheticParams::default()
        .n_individuals(30)
        .images_per_individual(8)
        .seed(17)
        .check()?
        .generate(data.path())?;
    // Every photo labelled (the archive of a programme), plus one
    // undecodable file.
    let rows: Vec<_> = {
        let mut r = csv::Reader::from_path(data.path().join("metadata.csv"))?;
        r.records().collect::<Result<Vec<_>, _>>()?
    };
    let bad = data.path().join("images/broken.jpg");
    std::fs::write(&bad, b"\xFF\xD8\xFF\xE0 this is not a JPEG")?;
    let csv = data.path().join("archive.csv");
    {
        let mut w = csv::Writer::from_path(&csv)?;
        w.write_record([
            "image_id", "identity", "path", "species", "split", "dataset",
        ])?;
        for r in &rows {
            w.write_record([&r[0], &r[1], &r[2], &r[5], "database", "archive"])?;
        }
        // Unlabelled: registered unassigned.
        w.write_record(["broken", "", "images/broken.jpg", "", "query", "archive"])?;
        w.flush()?;
    }
    let n = rows.len();

    // The single-process reference: enrol on SQLite.
    let reference_db = data.path().join("reference.db").display().to_string();
    run(
        &reference_db,
        &["init", "--backbone", "mobilenet_v2", "--local", "none"],
    )?;
    let reference_csv = data.path().join("reference.csv");
    {
        let mut w = csv::Writer::from_path(&reference_csv)?;
        w.write_record([
            "image_id", "identity", "path", "species", "split", "dataset",
        ])?;
        for r in &rows {
            w.write_record([&r[0], &r[1], &r[2], &r[5], "database", "archive"])?;
        }
        w.flush()?;
    }
    run(
        &reference_db,
        &["enrol", "--csv", &reference_csv.display().to_string()],
    )?;
    let reference = embeddings(&reference_db, &data.path().join("ref-export"))?;
    assert_eq!(reference.len(), n);

    // The team's PostgreSQL: ingest, then three workers.
    let pg = ThrowawayPostgres::shared().map_err(|e| anyhow::anyhow!(e))?;
    let url = pg
        .fresh_database("workers")
        .map_err(|e| anyhow::anyhow!(e))?;
    run(
        &url,
        &["init", "--backbone", "mobilenet_v2", "--local", "none"],
    )?;
    let out = run(&url, &["ingest", "--csv", &csv.display().to_string()])?;
    assert!(out.contains(&format!("{} pending", n + 1)), "{out}");

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20);
    let t = Instant::now();
    let mut steady = vec![worker(&url, "steady-1")?, worker(&url, "steady-2")?];
    let mut kills = 0;
    let mut killed_holding = 0;
    for round in 0..3 {
        let mut victim = worker(&url, &format!("victim-{round}"))?;
        // A seeded random moment: after its first claim (it has loaded the
        // model by then), during its batches.
        let after = Duration::from_millis(rng.gen_range(1500..4000));
        std::thread::sleep(after);
        if victim.try_wait()?.is_none() {
            let s: Value = serde_json::from_str(&run(&url, &["status", "--json"])?)?;
            let leased = s["leased_by"][format!("victim-{round}")]
                .as_u64()
                .unwrap_or(0);
            victim.kill()?;
            victim.wait()?;
            kills += 1;
            killed_holding += usize::from(leased > 0);
            eprintln!(
                "round {round}: killed victim-{round} after {after:?} (holding {leased} photos)"
            );
        }
    }
    // The last victim instance runs to the end, with the two others.
    steady.push(worker(&url, "victim-final")?);
    let mut reports = Vec::new();
    for w in steady {
        let o = w.wait_with_output()?;
        assert!(
            o.status.success(),
            "worker failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let line = String::from_utf8_lossy(&o.stdout);
        let v: Value = serde_json::from_str(line.trim()).with_context(|| line.to_string())?;
        reports.push(v);
    }
    eprintln!(
        "{n} photos by 3 workers ({kills} kills, {killed_holding} of them mid-batch) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(kills >= 2, "the victim was killed mid-run");
    assert!(killed_holding >= 1, "at least one kill landed mid-batch");

    // Nothing leased, every decodable photo done, the broken one parked
    // with its error.
    let s: Value = serde_json::from_str(&run(&url, &["status", "--json"])?)?;
    assert_eq!(s["states"]["leased"], 0, "{s}");
    assert_eq!(s["states"]["pending"], 0, "{s}");
    assert_eq!(s["states"]["done"], n, "{s}");
    assert_eq!(s["states"]["parked"], 1, "{s}");
    let failure = &s["failures"][0];
    assert!(
        failure[1]
            .as_str()
            .is_some_and(|p| p.ends_with("broken.jpg"))
            && failure[2] == 2,
        "{failure}"
    );
    // Exactly one embedding per photo, equal to the single-process run.
    let stats: Value = serde_json::from_str(&run(&url, &["stats", "--json"])?)?;
    let model = stats["model"].as_str().context("model")?;
    assert_eq!(stats["embeddings"][model], n, "{stats}");
    let got = embeddings(&url, &data.path().join("pg-export"))?;
    assert_eq!(got.len(), n);
    let mut worst = 0f32;
    for (h, v) in &reference {
        let w = got.get(h).with_context(|| format!("{h} missing"))?;
        let d = v
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        worst = worst.max(d);
    }
    eprintln!("largest difference from the single-process run: {worst:e}");
    assert!(worst < 1e-4, "embeddings differ by {worst}");
    let photos: i64 = reports
        .iter()
        .map(|r| r["photos"].as_i64().unwrap_or(0))
        .sum();
    assert!(
        photos <= n as i64,
        "no photo written twice by the surviving workers"
    );
    assert!(run(&url, &["check"])?.starts_with("ok"));
    Ok(())
}
