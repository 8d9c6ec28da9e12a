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

use cli_support::{cli, run, run_with};

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

/// A synthetic set of `individuals` × 8 photos in a fresh folder, and the
/// rows of its metadata CSV.
fn synthetic(individuals: usize, seed: u64) -> Result<(tempfile::TempDir, Vec<csv::StringRecord>)> {
    let data = tempfile::tempdir()?;
    SyntheticParams::default()
        .n_individuals(individuals)
        .images_per_individual(8)
        .seed(seed)
        .check()?
        .generate(data.path())?;
    let mut r = csv::Reader::from_path(data.path().join("metadata.csv"))?;
    let rows = r.records().collect::<Result<Vec<_>, _>>()?;
    Ok((data, rows))
}

/// The largest difference between `got` and `reference`, each photo of
/// `reference` present in `got`.
fn largest_difference(
    reference: &HashMap<String, Vec<f32>>,
    got: &HashMap<String, Vec<f32>>,
) -> Result<f32> {
    let mut worst = 0f32;
    for (h, v) in reference {
        let w = got.get(h).with_context(|| format!("{h} missing"))?;
        let d = v
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        worst = worst.max(d);
    }
    Ok(worst)
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
            // More attempts than kills: a photo held by every victim is
            // still done in the end, whatever the timing (leases of live
            // workers are renewed, so load cannot take their batches).
            "--max-attempts",
            "4",
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
    // Every photo labelled (the archive of a programme), plus one
    // undecodable file.
    let (data, rows) = synthetic(30, 17)?;
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
            && failure[2] == 4,
        "{failure}"
    );
    // Exactly one embedding per photo, equal to the single-process run.
    let stats: Value = serde_json::from_str(&run(&url, &["stats", "--json"])?)?;
    let model = stats["model"].as_str().context("model")?;
    assert_eq!(stats["embeddings"][model], n, "{stats}");
    let got = embeddings(&url, &data.path().join("pg-export"))?;
    assert_eq!(got.len(), n);
    let worst = largest_difference(&reference, &got)?;
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

/// Photos registered by http(s) URL (shared object storage): `ingest`
/// downloads them to hash them, workers embed them (equal to a local-path
/// run), a batch slower than its lease stays with its live worker (renewed
/// leases), `identify` and its review page read them by URL, `check
/// --files` fetches them again when the cache is gone; an unreachable URL
/// is an error naming it; a moved share is read through `--path-map`.
#[test]
fn photos_by_url_and_slow_batches() -> Result<()> {
    let (data, rows) = synthetic(6, 23)?;
    let server = animal_reid::catalogue::testing::StaticHttp::serve(data.path())?;
    let cache = tempfile::tempdir()?;
    let cache_dir = cache.path().join("photos");
    let cache_s = cache_dir.display().to_string();
    let env = [("ANIMAL_REID_PHOTO_CACHE", cache_s.as_str())];
    // Database: 6 photos of each individual; queries: the other 2, unlabelled.
    let write_csv = |name: &str, keep: &dyn Fn(usize) -> bool, url: bool| -> Result<String> {
        let p = data.path().join(name);
        let mut w = csv::Writer::from_path(&p)?;
        w.write_record([
            "image_id", "identity", "path", "species", "split", "dataset",
        ])?;
        for (i, r) in rows.iter().enumerate().filter(|(i, _)| keep(*i)) {
            let db = i % 8 < 6;
            let path = if url {
                server.url(&r[2])
            } else {
                r[2].to_string()
            };
            let (identity, split) = if db {
                (&r[1], "database")
            } else {
                ("", "query")
            };
            w.write_record([&r[0], identity, &path, "cow", split, "herd"])?;
        }
        w.flush()?;
        Ok(p.display().to_string())
    };
    let db_urls = write_csv("db-urls.csv", &|i| i % 8 < 6, true)?;
    let db_local = write_csv("db-local.csv", &|i| i % 8 < 6, false)?;
    let queries = write_csv("queries.csv", &|i| i % 8 >= 6, true)?;
    let n_db = rows.iter().enumerate().filter(|(i, _)| i % 8 < 6).count();

    // The reference: the same photos enrolled from their files.
    let reference_db = data.path().join("reference.db").display().to_string();
    run(
        &reference_db,
        &["init", "--backbone", "mobilenet_v2", "--local", "none"],
    )?;
    run(&reference_db, &["enrol", "--csv", &db_local])?;
    let reference = embeddings(&reference_db, &data.path().join("ref-export"))?;

    let pg = ThrowawayPostgres::shared().map_err(|e| anyhow::anyhow!(e))?;
    let url = pg
        .fresh_database("by_url")
        .map_err(|e| anyhow::anyhow!(e))?;
    run(
        &url,
        &["init", "--backbone", "mobilenet_v2", "--local", "none"],
    )?;
    let out = run_with(&url, &["ingest", "--csv", &db_urls], &env)?;
    assert!(out.contains(&format!("{n_db} pending")), "{out}");
    let requests = server.requests();
    assert_eq!(requests, n_db as u64, "ingest downloads each photo once");

    // One worker claims every photo in one batch that takes 4 times its
    // lease; a second worker, started once the batch is claimed, finds
    // nothing to take.
    let slow_args = |id: &str| -> Vec<String> {
        [
            "worker",
            "--exit-when-idle",
            "--batch",
            "100",
            "--batch-size",
            "8",
            "--lease",
            "2",
            "--poll",
            "0.2",
            "--max-attempts",
            "1",
            "--id",
            id,
        ]
        .map(String::from)
        .to_vec()
    };
    let args: Vec<String> = slow_args("slow");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let slow = cli(&url, &args)
        .envs(env)
        .env("ANIMAL_REID_FAULT_SLOW_BATCH_MS", "8000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let t = Instant::now();
    loop {
        let s: Value = serde_json::from_str(&run(&url, &["status", "--json"])?)?;
        if s["leased_by"]["slow"].as_u64() == Some(n_db as u64) {
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(120),
            "the slow worker never claimed: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let args: Vec<String> = slow_args("second");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let second = cli(&url, &args)
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut photos = HashMap::new();
    for (name, w) in [("slow", slow), ("second", second)] {
        let o = w.wait_with_output()?;
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim())?;
        photos.insert(name, v["photos"].as_i64().unwrap_or(-1));
    }
    assert_eq!(photos["slow"], n_db as i64, "{photos:?}");
    assert_eq!(
        photos["second"], 0,
        "the slow batch stayed with its worker: {photos:?}"
    );
    assert_eq!(
        server.requests(),
        requests,
        "workers read the downloads of ingest"
    );
    let got = embeddings(&url, &data.path().join("pg-export"))?;
    assert_eq!(got.len(), reference.len());
    let worst = largest_difference(&reference, &got)?;
    assert!(worst < 1e-4, "by URL and from the file differ by {worst}");

    // The cache is gone (another machine): identify downloads what it needs.
    std::fs::remove_dir_all(&cache_dir)?;
    let review = data.path().join("review");
    let review_s = review.display().to_string();
    run_with(
        &url,
        &["identify", "--csv", &queries, "--out", &review_s],
        &env,
    )?;
    let html = std::fs::read_to_string(review.join("review.html"))?;
    let n_q = rows.len() - n_db;
    // Every query photo and at least one candidate per photo shown.
    assert!(
        html.matches("data:image/jpeg;base64,").count() >= 2 * n_q,
        "thumbnails"
    );
    assert!(!html.contains("image unavailable"), "a thumbnail failed");
    let mut r = csv::Reader::from_path(review.join("decisions.csv"))?;
    let paths: Vec<String> = r
        .deserialize::<HashMap<String, String>>()
        .map(|row| row.map(|mut m| m.remove("path").unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    assert_eq!(paths.len(), n_q);
    assert!(
        paths.iter().all(|p| p.starts_with("http://127.0.0.1:")),
        "{paths:?}"
    );
    // check --files reads every photo again by URL.
    std::fs::remove_dir_all(&cache_dir)?;
    assert!(run_with(&url, &["check", "--files"], &env)?.starts_with("ok"));

    // An unreachable URL: an error naming it, nothing registered; skipped
    // with --skip-bad.
    let bad_csv = data.path().join("bad.csv");
    let missing = server.url("images/nobody/0.jpg");
    std::fs::write(
        &bad_csv,
        format!(
            "image_id,identity,path,species,split,dataset\nx,cow,{missing},cow,database,herd\ny,cow,{},cow,database,herd\n",
            server.url(&rows[0][2])
        ),
    )?;
    let bad_s = bad_csv.display().to_string();
    let o = cli(&url, &["ingest", "--csv", &bad_s]).envs(env).output()?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains(&missing) && err.contains("404"),
        "{err}"
    );
    let out = run_with(&url, &["ingest", "--csv", &bad_s, "--skip-bad"], &env)?;
    assert!(out.contains("0 photos registered"), "{out}");

    // A share seen under another prefix: enrolled from files, the folder
    // moved; check --files fails, and passes with --path-map.
    let local_db = data.path().join("local.db").display().to_string();
    run(
        &local_db,
        &["init", "--backbone", "mobilenet_v2", "--local", "none"],
    )?;
    run(&local_db, &["enrol", "--csv", &db_local])?;
    let moved = data.path().join("moved-images");
    std::fs::rename(data.path().join("images"), &moved)?;
    let o = cli(&local_db, &["check", "--files"]).output()?;
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let from = std::fs::canonicalize(data.path())?.join("images");
    let map = format!("{}={}", from.display(), moved.display());
    assert!(run(&local_db, &["--path-map", &map, "check", "--files"])?.starts_with("ok"));
    Ok(())
}
