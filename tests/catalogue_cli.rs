//! The `animal-reid` catalogue program end to end, on both engines (a
//! SQLite file, and a throwaway PostgreSQL server started by the test):
//! the README's walkthrough on the synthetic set and on the cattle set,
//! two processes at once, kill -9 at random moments of `enrol` and `apply`,
//! and a changed model or weights file.
#![cfg(feature = "torch")]
#![allow(clippy::print_stderr, clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use animal_reid::catalogue::testing::ThrowawayPostgres;
use animal_reid::core::ParamGuard;
use animal_reid::data::synthetic::SyntheticParams;
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use serde_json::Value;

use cli_support::{cli, run};

/// Image embeddings shared by every run of these tests (by content and
/// model), so that reruns and the second engine do not embed again.
fn embedding_cache() -> PathBuf {
    animal_reid::backbone::weights::cache_dir().join("test-catalogue-embeddings")
}

/// A catalogue location on each engine.
struct Engines {
    _dir: tempfile::TempDir,
    _pg: Arc<ThrowawayPostgres>,
}

fn engines(name: &str) -> Result<(Engines, Vec<(&'static str, String)>)> {
    let dir = tempfile::tempdir()?;
    let sqlite = dir.path().join(format!("{name}.db")).display().to_string();
    let pg = ThrowawayPostgres::shared().map_err(|e| anyhow::anyhow!(e))?;
    let url = pg.fresh_database(name).map_err(|e| anyhow::anyhow!(e))?;
    let list = vec![("sqlite", sqlite), ("postgres", url)];
    Ok((Engines { _dir: dir, _pg: pg }, list))
}

fn json(location: &str, args: &[&str]) -> Result<Value> {
    let s = run(location, args)?;
    serde_json::from_str(&s).with_context(|| format!("not JSON: {s}"))
}

/// The synthetic set: `n` individuals, `m` photos each.
fn synthetic(dir: &Path, n: usize, m: usize, seed: u64) -> Result<PathBuf> {
    SyntheticParams::default()
        .n_individuals(n)
        .images_per_individual(m)
        .new_identity_fraction(0.3)
        .seed(seed)
        .check()?
        .generate(dir)?;
    Ok(dir.join("metadata.csv"))
}

/// The rows of a metadata CSV, by column name.
fn rows(csv: &Path) -> Result<Vec<BTreeMap<String, String>>> {
    let mut r = csv::Reader::from_path(csv)?;
    let headers = r.headers()?.clone();
    r.records()
        .map(|rec| {
            let rec = rec?;
            Ok(headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect())
        })
        .collect()
}

/// Writes `rows` as a CSV with `columns`, absolute paths (relative to
/// `root`).
fn write_rows(path: &Path, root: &Path, rows: &[BTreeMap<String, String>]) -> Result<()> {
    let columns = [
        "image_id", "identity", "path", "species", "split", "dataset",
    ];
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(columns)?;
    for r in rows {
        w.write_record(columns.iter().map(|c| {
            let v = r.get(*c).cloned().unwrap_or_default();
            if *c == "path" {
                root.join(v).display().to_string()
            } else {
                v
            }
        }))?;
    }
    w.flush()?;
    Ok(())
}

/// What a person does with the decisions CSV, knowing the truth: confirm
/// the individual the catalogue has under that name, or a new individual
/// named after it; rows not in `truth` are left undecided.
fn fill_decisions(
    decisions: &Path,
    truth: &HashMap<String, String>,
    known_names: &BTreeSet<String>,
) -> Result<usize> {
    let mut r = csv::Reader::from_path(decisions)?;
    let headers = r.headers()?.clone();
    let col = |n: &str| headers.iter().position(|h| h == n).context(n.to_string());
    let (photo, verdict, individual, reviewer, note) = (
        col("photo")?,
        col("verdict")?,
        col("individual")?,
        col("reviewer")?,
        col("note")?,
    );
    let mut out = Vec::new();
    let mut decided = 0;
    for rec in r.records() {
        let mut fields: Vec<String> = rec?.iter().map(str::to_string).collect();
        if let Some(who) = truth.get(&fields[photo]) {
            let v = if known_names.contains(who) {
                "confirm"
            } else {
                "new"
            };
            fields[verdict] = v.into();
            fields[individual] = who.clone();
            fields[reviewer] = "tester".into();
            fields[note] = "from the truth".into();
            decided += 1;
        }
        out.push(fields);
    }
    let mut w = csv::Writer::from_path(decisions)?;
    w.write_record(&headers)?;
    for f in out {
        w.write_record(f)?;
    }
    w.flush()?;
    Ok(decided)
}

/// The decisions `identify` wrote: photo -> (suggestion, suggested
/// individual's name when known).
fn suggestions(decisions: &Path) -> Result<HashMap<String, (String, Option<String>)>> {
    let mut out = HashMap::new();
    for r in rows(decisions)? {
        let suggested = &r["suggested"];
        // candidates: id:name:score;...
        let name = r["candidates"].split(';').find_map(|c| {
            let mut it = c.splitn(3, ':');
            let (id, name) = (it.next()?, it.next()?);
            (id == suggested).then(|| name.to_string())
        });
        out.insert(r["photo"].clone(), (r["suggestion"].clone(), name));
    }
    Ok(out)
}

fn names(location: &str, dir: &Path) -> Result<BTreeSet<String>> {
    run(location, &["export", "--out", &dir.display().to_string()])?;
    Ok(rows(&dir.join("metadata.csv"))?
        .into_iter()
        .map(|r| r["name"].clone())
        .filter(|n| !n.is_empty())
        .collect())
}

/// The walkthrough: enrol the database split, identify a batch of
/// queries, apply the truth as a person would, identify again; returns
/// (share of re-identified batch photos found as the confirmed
/// individual, share of the held-out batch's photos of individuals the
/// apply created that are now found).
fn walkthrough(
    location: &str,
    csv: &Path,
    init: &[&str],
    work: &Path,
) -> Result<(f64, f64, usize)> {
    let root = csv.parent().context("csv folder")?;
    let all = rows(csv)?;
    let database: Vec<_> = all
        .iter()
        .filter(|r| r["split"] == "database")
        .cloned()
        .collect();
    let queries: Vec<_> = all
        .iter()
        .filter(|r| r["split"] == "query")
        .cloned()
        .collect();
    // Two batches of queries: by video where there is one (cattle), else
    // alternating photos.
    let key = |r: &BTreeMap<String, String>| {
        r.get("video")
            .cloned()
            .unwrap_or_else(|| r["image_id"].clone())
    };
    let keys: BTreeSet<String> = queries.iter().map(key).collect();
    let first: BTreeSet<&String> = keys.iter().step_by(2).collect();
    let (a, b): (Vec<_>, Vec<_>) = queries
        .iter()
        .cloned()
        .partition(|r| first.contains(&key(r)));
    std::fs::create_dir_all(work)?;
    let (db_csv, a_csv, b_csv) = (work.join("db.csv"), work.join("a.csv"), work.join("b.csv"));
    write_rows(&db_csv, root, &database)?;
    write_rows(&a_csv, root, &a)?;
    write_rows(&b_csv, root, &b)?;
    let cache = embedding_cache().display().to_string();
    let mut args = vec!["init"];
    args.extend_from_slice(init);
    run(location, &args)?;
    run(
        location,
        &[
            "enrol",
            "--csv",
            &db_csv.display().to_string(),
            "--embedding-cache",
            &cache,
        ],
    )?;
    let out = |n: &str| work.join(n).display().to_string();
    run(
        location,
        &[
            "identify",
            "--csv",
            &a_csv.display().to_string(),
            "--out",
            &out("a1"),
            "--embedding-cache",
            &cache,
        ],
    )?;
    // The person: the truth for every photo of batch a.
    let before = names(location, &work.join("export0"))?;
    let truth: HashMap<String, String> = a
        .iter()
        .map(|r| (r["image_id"].clone(), r["identity"].clone()))
        .collect();
    let decided = fill_decisions(&work.join("a1/decisions.csv"), &truth, &before)?;
    assert_eq!(decided, a.len());
    let applied = run(
        location,
        &[
            "--actor",
            "tester",
            "--reason",
            "batch a",
            "apply",
            &out("a1/decisions.csv"),
        ],
    )?;
    assert!(applied.contains("confirmed"), "{applied}");
    assert!(run(location, &["check"])?.starts_with("ok"));
    let after = names(location, &work.join("export1"))?;
    let created: BTreeSet<&String> = after.difference(&before).collect();
    // Every individual of batch a is in the catalogue now, under its name.
    for who in truth.values() {
        assert!(after.contains(who), "{who} missing after apply");
    }
    // Identify batch a again: each photo is found as the individual the
    // person confirmed or created.
    run(
        location,
        &[
            "identify",
            "--csv",
            &a_csv.display().to_string(),
            "--out",
            &out("a2"),
            "--embedding-cache",
            &cache,
        ],
    )?;
    let s = suggestions(&work.join("a2/decisions.csv"))?;
    let found = a
        .iter()
        .filter(|r| s[&r["image_id"]] == ("known".to_string(), Some(r["identity"].clone())))
        .count();
    let again = found as f64 / a.len() as f64;
    // The held-out batch b: photos of the individuals the apply created.
    run(
        location,
        &[
            "identify",
            "--csv",
            &b_csv.display().to_string(),
            "--out",
            &out("b1"),
            "--embedding-cache",
            &cache,
        ],
    )?;
    let s = suggestions(&work.join("b1/decisions.csv"))?;
    let of_created: Vec<_> = b
        .iter()
        .filter(|r| created.contains(&r["identity"]))
        .collect();
    let found_b = of_created
        .iter()
        .filter(|r| s[&r["image_id"]] == ("known".to_string(), Some(r["identity"].clone())))
        .count();
    let held_out = if of_created.is_empty() {
        0.0
    } else {
        found_b as f64 / of_created.len() as f64
    };
    // The journal: init, config, model, enrol, apply — who and why kept.
    let log = json(location, &["log", "--json"])?;
    let apply = log
        .as_array()
        .and_then(|l| l.iter().find(|c| c["command"] == "apply"))
        .context("no apply in the journal")?;
    assert_eq!(apply["actor"], "tester");
    assert_eq!(apply["reason"], "batch a");
    Ok((again, held_out, of_created.len()))
}

#[test]
fn walkthrough_synthetic_both_engines() -> Result<()> {
    let data = tempfile::tempdir()?;
    let csv = synthetic(data.path(), 16, 6, 11)?;
    let (_e, list) = engines("walk_synth")?;
    for (engine, loc) in &list {
        let work = data.path().join(format!("work-{engine}"));
        let (again, held_out, n) = walkthrough(
            loc,
            &csv,
            &[
                "--backbone",
                "mobilenet_v2",
                "--local",
                "sift",
                "--shortlist",
                "10",
            ],
            &work,
        )?;
        eprintln!(
            "synthetic on {engine}: re-identified {again:.3}; held-out photos of created individuals found {held_out:.3} of {n}"
        );
        assert_eq!(again, 1.0, "{engine}: every confirmed photo found again");
        // Review page: every photo and candidate thumbnail present.
        let html = std::fs::read_to_string(work.join("a2/review.html"))?;
        let photos = rows(&work.join("a2/decisions.csv"))?.len();
        assert!(
            html.matches("data:image/jpeg;base64,").count() > photos,
            "{engine}: thumbnails"
        );
    }
    Ok(())
}

#[test]
fn walkthrough_cattle() -> Result<()> {
    let csv = animal_reid::core::paths::shared_dir().join("datasets/cattle/cattle.csv");
    let dir = tempfile::tempdir()?;
    let loc = dir.path().join("cattle.db").display().to_string();
    let t = Instant::now();
    let (again, held_out, n) = walkthrough(
        &loc,
        &csv,
        &["--backbone", "mobilenet_v2", "--local", "none"],
        &dir.path().join("work"),
    )?;
    eprintln!(
        "cattle: re-identified {again:.3}; held-out photos of created individuals found {held_out:.3} of {n}; {:.0} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(again, 1.0, "every confirmed photo found again");
    assert!(n > 0, "batch b has photos of individuals batch a created");
    assert!(
        held_out > 0.0,
        "some held-out photos of the new individuals are found"
    );
    Ok(())
}

/// (photos, changes) of a catalogue.
fn counts(location: &str) -> Result<(u64, u64)> {
    let s = json(location, &["stats", "--json"])?;
    let photos = s["datasets"]
        .as_object()
        .map(|d| {
            d.values()
                .map(|v| v["photos"].as_u64().unwrap_or(0) + v["unassigned"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    Ok((photos, s["changes"].as_u64().unwrap_or(0)))
}

/// Starts a command with the fault pause after every row of its
/// transaction and kills it with SIGKILL `after` its start, or, with
/// `inside`, `after` the moment it says it is inside its transaction
/// (unless it ended first); returns whether it was killed.
fn kill_after(mut c: Command, after: Duration, pause_ms: u64, inside: bool) -> Result<bool> {
    use std::io::BufRead;
    let mut child = c
        .env("ANIMAL_REID_FAULT_PAUSE_MS", pause_ms.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("inside the transaction") {
                let _ = tx.send(());
            }
        }
    });
    let mut t = Instant::now();
    let mut waiting = inside;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(false);
        }
        if waiting {
            if rx.try_recv().is_ok() {
                waiting = false;
                t = Instant::now();
            }
        } else if t.elapsed() >= after {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill()?;
    child.wait()?;
    Ok(true)
}

#[test]
fn kill_nine_leaves_each_command_wholly_in_or_out_both_engines() -> Result<()> {
    let data = tempfile::tempdir()?;
    let csv = synthetic(data.path(), 24, 8, 5)?;
    let root = data.path();
    let all = rows(&csv)?;
    let cache = embedding_cache().display().to_string();
    let (_e, list) = engines("kill9")?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let trials = 12;
    for (engine, loc) in &list {
        run(
            loc,
            &["init", "--backbone", "mobilenet_v2", "--local", "none"],
        )?;
        // Batch i: the photos of individual i (8 each), one enrol each.
        let ids: Vec<String> = all
            .iter()
            .map(|r| r["identity"].clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let batch = |i: usize| -> Result<PathBuf> {
            let p = data.path().join(format!("{engine}-batch{i}.csv"));
            let rs: Vec<_> = all
                .iter()
                .filter(|r| r["identity"] == ids[i])
                .map(|r| {
                    let mut r = r.clone();
                    r.insert("split".into(), "database".into());
                    r
                })
                .collect();
            write_rows(&p, root, &rs)?;
            Ok(p)
        };
        // A clean run first: warms the embedding cache, times a command.
        let t = Instant::now();
        run(
            loc,
            &[
                "enrol",
                "--csv",
                &batch(0)?.display().to_string(),
                "--embedding-cache",
                &cache,
            ],
        )?;
        let clean = t.elapsed();
        let pause = 40;
        let span = clean + Duration::from_millis(pause * 8 + 300);
        let (mut whole_in, mut whole_out, mut killed_inside) = (0, 0, 0);
        for i in 1..=trials {
            let (photos0, changes0) = counts(loc)?;
            let b = batch(i)?;
            // Odd trials: a random moment of the whole command; even ones:
            // a random moment of its transaction.
            let inside = i % 2 == 0;
            let after = if inside {
                Duration::from_millis(rng.gen_range(0..pause * 8 + 20))
            } else {
                Duration::from_secs_f64(rng.gen_range(0.0..span.as_secs_f64()))
            };
            let c = cli(
                loc,
                &[
                    "enrol",
                    "--csv",
                    &b.display().to_string(),
                    "--embedding-cache",
                    &cache,
                ],
            );
            let killed = kill_after(c, after, pause, inside)?;
            killed_inside += usize::from(killed && inside);
            let check = cli(loc, &["check"]).output()?;
            assert!(
                check.status.success(),
                "{engine} enrol trial {i} (killed {killed} at {after:?}): check failed: {}",
                String::from_utf8_lossy(&check.stdout)
            );
            let (photos1, changes1) = counts(loc)?;
            // The model change of the first command may be in; the enrol
            // is all 8 photos or none.
            match photos1 - photos0 {
                0 => whole_out += 1,
                8 => whole_in += 1,
                d => panic!("{engine} enrol trial {i}: {d} of 8 photos in"),
            }
            assert!(
                changes1 - changes0 <= 1,
                "{engine}: one journal entry at most"
            );
        }
        // apply: a decisions CSV over all photos of individuals 13..23,
        // each trial deciding one individual's photos.
        let q_csv = data.path().join(format!("{engine}-rest.csv"));
        let rest: Vec<_> = all
            .iter()
            .filter(|r| ids[13..].contains(&r["identity"]))
            .cloned()
            .collect();
        write_rows(&q_csv, root, &rest)?;
        let out = data.path().join(format!("{engine}-review"));
        run(
            loc,
            &[
                "identify",
                "--csv",
                &q_csv.display().to_string(),
                "--out",
                &out.display().to_string(),
                "--embedding-cache",
                &cache,
            ],
        )?;
        for i in 0..trials.min(ids.len() - 13) {
            let who = &ids[13 + i];
            let truth: HashMap<String, String> = rest
                .iter()
                .filter(|r| &r["identity"] == who)
                .map(|r| (r["image_id"].clone(), r["identity"].clone()))
                .collect();
            let dec = data.path().join(format!("{engine}-dec{i}.csv"));
            std::fs::copy(out.join("decisions.csv"), &dec)?;
            fill_decisions(&dec, &truth, &BTreeSet::new())?;
            let (photos0, _) = counts(loc)?;
            let inside = i % 2 == 0;
            let after = Duration::from_millis(
                rng.gen_range(0..(pause * 8 + if inside { 20 } else { 250 })),
            );
            let killed = kill_after(
                cli(loc, &["apply", &dec.display().to_string()]),
                after,
                pause,
                inside,
            )?;
            killed_inside += usize::from(killed && inside);
            let check = cli(loc, &["check"]).output()?;
            assert!(
                check.status.success(),
                "{engine} apply trial {i} (killed {killed}): check failed: {}",
                String::from_utf8_lossy(&check.stdout)
            );
            let (photos1, _) = counts(loc)?;
            match photos1 - photos0 {
                0 => whole_out += 1,
                8 => whole_in += 1,
                d => panic!("{engine} apply trial {i}: {d} of 8 photos in"),
            }
        }
        eprintln!(
            "{engine}: kill -9 trials: {whole_in} wholly in, {whole_out} wholly out; \
             {killed_inside} killed inside their transaction"
        );
        assert!(whole_in + whole_out >= 20);
        assert!(
            killed_inside >= 5,
            "{engine}: the kills reach into the transactions"
        );
    }
    Ok(())
}

#[test]
fn two_processes_at_once_lose_and_duplicate_nothing_both_engines() -> Result<()> {
    let data = tempfile::tempdir()?;
    let csv = synthetic(data.path(), 12, 6, 9)?;
    let root = data.path();
    let all: Vec<_> = rows(&csv)?
        .into_iter()
        .map(|mut r| {
            r.insert("split".into(), "database".into());
            r
        })
        .collect();
    let cache = embedding_cache().display().to_string();
    let (_e, list) = engines("concurrent")?;
    for (engine, loc) in &list {
        run(
            loc,
            &["init", "--backbone", "mobilenet_v2", "--local", "none"],
        )?;
        // Warm the model record and the cache with one photo.
        let one = data.path().join(format!("{engine}-one.csv"));
        write_rows(&one, root, &all[..1])?;
        run(
            loc,
            &[
                "enrol",
                "--csv",
                &one.display().to_string(),
                "--embedding-cache",
                &cache,
            ],
        )?;
        // Overlapping halves: photos 0..48 and 24..72, enrolled at once.
        let (p1, p2) = (
            data.path().join(format!("{engine}-p1.csv")),
            data.path().join(format!("{engine}-p2.csv")),
        );
        write_rows(&p1, root, &all[..48])?;
        write_rows(&p2, root, &all[24..])?;
        let spawn = |p: &Path| {
            cli(
                loc,
                &[
                    "enrol",
                    "--csv",
                    &p.display().to_string(),
                    "--embedding-cache",
                    &cache,
                ],
            )
            .env("ANIMAL_REID_FAULT_PAUSE_MS", "5")
            .output()
        };
        let (o1, o2) = std::thread::scope(|s| {
            let a = s.spawn(|| spawn(&p1));
            let b = s.spawn(|| spawn(&p2));
            (a.join(), b.join())
        });
        for o in [o1, o2] {
            let o = o.map_err(|_| anyhow::anyhow!("thread"))??;
            assert!(
                o.status.success(),
                "{engine}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let exp = data.path().join(format!("{engine}-export"));
        run(loc, &["export", "--out", &exp.display().to_string()])?;
        let exported = rows(&exp.join("metadata.csv"))?;
        assert_eq!(exported.len(), all.len(), "{engine}: every photo once");
        let hashes: BTreeSet<_> = exported.iter().map(|r| r["content_hash"].clone()).collect();
        assert_eq!(hashes.len(), all.len(), "{engine}: no duplicate photo");
        let names: BTreeSet<_> = exported.iter().map(|r| r["name"].clone()).collect();
        let individuals: BTreeSet<_> = exported.iter().map(|r| r["identity"].clone()).collect();
        assert_eq!(names.len(), 12, "{engine}");
        assert_eq!(individuals.len(), 12, "{engine}: one individual per name");
        // Every photo under its own name.
        let truth: HashMap<_, _> = all
            .iter()
            .map(|r| {
                (
                    root.join(&r["path"]).canonicalize().unwrap(),
                    r["identity"].clone(),
                )
            })
            .collect();
        for r in &exported {
            assert_eq!(truth[&PathBuf::from(&r["path"])], r["name"], "{engine}");
        }
        // Two applies at once of decisions creating new individuals in a
        // new dataset: each group created once.
        let other: Vec<_> = all
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.insert("dataset".into(), "site-b".into());
                r
            })
            .collect();
        let q = data.path().join(format!("{engine}-siteb.csv"));
        write_rows(&q, root, &other)?;
        let out = data.path().join(format!("{engine}-rev"));
        run(
            loc,
            &[
                "identify",
                "--csv",
                &q.display().to_string(),
                "--out",
                &out.display().to_string(),
                "--embedding-cache",
                &cache,
            ],
        )?;
        let truth: HashMap<String, String> = other
            .iter()
            .map(|r| (r["image_id"].clone(), r["identity"].clone()))
            .collect();
        let (d1, d2) = (
            data.path().join(format!("{engine}-d1.csv")),
            data.path().join(format!("{engine}-d2.csv")),
        );
        for d in [&d1, &d2] {
            std::fs::copy(out.join("decisions.csv"), d)?;
            fill_decisions(d, &truth, &BTreeSet::new())?;
        }
        let (o1, o2) = std::thread::scope(|s| {
            let a = s.spawn(|| {
                cli(loc, &["apply", &d1.display().to_string()])
                    .env("ANIMAL_REID_FAULT_PAUSE_MS", "5")
                    .output()
            });
            let b = s.spawn(|| {
                cli(loc, &["apply", &d2.display().to_string()])
                    .env("ANIMAL_REID_FAULT_PAUSE_MS", "5")
                    .output()
            });
            (a.join(), b.join())
        });
        for o in [o1, o2] {
            let o = o.map_err(|_| anyhow::anyhow!("thread"))??;
            assert!(
                o.status.success(),
                "{engine}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let s = json(loc, &["stats", "--json"])?;
        assert_eq!(s["datasets"]["site-b"]["individuals"], 12, "{engine}: {s}");
        assert_eq!(
            s["datasets"]["site-b"]["photos"],
            all.len(),
            "{engine}: {s}"
        );
        assert!(run(loc, &["check"])?.starts_with("ok"));
    }
    Ok(())
}

#[test]
fn a_changed_model_or_weights_file_is_embedded_again_never_mixed_both_engines() -> Result<()> {
    use animal_reid::backbone::backbone::BackboneBuilder;
    let data = tempfile::tempdir()?;
    let csv = synthetic(data.path(), 6, 4, 3)?;
    let root = data.path();
    let all = rows(&csv)?;
    let (db, q): (Vec<_>, Vec<_>) = all.into_iter().partition(|r| r["split"] == "database");
    let (db_csv, q_csv) = (data.path().join("db.csv"), data.path().join("q.csv"));
    write_rows(&db_csv, root, &db)?;
    write_rows(&q_csv, root, &q)?;
    // A weights file of the same model with one tensor changed.
    let bb = BackboneBuilder::new("mobilenet_v2").build()?;
    let write_changed = |path: &Path| -> Result<()> {
        let mut vars: Vec<(String, tch::Tensor)> = bb
            .var_store()
            .variables()
            .into_iter()
            .map(|(k, t)| (k, t.contiguous()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let (_, t) = vars
            .iter_mut()
            .find(|(k, _)| k.ends_with("weight"))
            .context("a weight")?;
        *t = tch::no_grad(|| t.g_mul_scalar(1.5));
        tch::Tensor::write_safetensors(&vars, path)?;
        Ok(())
    };
    let cache = embedding_cache().display().to_string();
    let (_e, list) = engines("modelchange")?;
    for (engine, loc) in &list {
        run(
            loc,
            &["init", "--backbone", "mobilenet_v2", "--local", "none"],
        )?;
        run(
            loc,
            &[
                "enrol",
                "--csv",
                &db_csv.display().to_string(),
                "--embedding-cache",
                &cache,
            ],
        )?;
        let s0 = json(loc, &["stats", "--json"])?;
        let m0 = s0["model"].as_str().context("model")?.to_string();
        assert_eq!(s0["embeddings"][&m0], db.len(), "{engine}: {s0}");
        // Another backbone.
        run(loc, &["config", "--backbone", "efficientnet_lite0"])?;
        let out = data.path().join(format!("{engine}-r1"));
        run(
            loc,
            &[
                "identify",
                "--csv",
                &q_csv.display().to_string(),
                "--out",
                &out.display().to_string(),
            ],
        )?;
        let s1 = json(loc, &["stats", "--json"])?;
        let m1 = s1["model"].as_str().context("model")?.to_string();
        assert_ne!(m1, m0, "{engine}");
        assert!(m1.starts_with("efficientnet_lite0-"), "{m1}");
        assert_eq!(
            s1["embeddings"][&m0],
            db.len(),
            "{engine}: old model's embeddings kept apart"
        );
        assert_eq!(
            s1["embeddings"][&m1],
            db.len() + q.len(),
            "{engine}: catalogue + queries with the new model"
        );
        let summary: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("identify.json"))?)?;
        assert_eq!(summary["model"], m1.as_str());
        assert_eq!(summary["gallery_photos"], db.len());
        // Back to mobilenet_v2 with a weights file of the same bytes as the
        // bundled one: the same model, nothing embedded again.
        let same = data.path().join("same.pth");
        std::fs::copy(
            animal_reid::backbone::weights::cache_dir().join("weights/mobilenet_v2-b0353104.pth"),
            &same,
        )?;
        run(
            loc,
            &[
                "config",
                "--backbone",
                "mobilenet_v2",
                "--weights",
                &same.display().to_string(),
            ],
        )?;
        run(
            loc,
            &[
                "identify",
                "--csv",
                &q_csv.display().to_string(),
                "--out",
                &out.display().to_string(),
            ],
        )?;
        let s2 = json(loc, &["stats", "--json"])?;
        assert_eq!(
            s2["model"],
            m0.as_str(),
            "{engine}: same weights bytes, same model"
        );
        assert_eq!(s2["embeddings"][&m0], db.len() + q.len(), "{engine}");
        // Changed weights: a new model, everything embedded again.
        let changed = data.path().join(format!("{engine}-changed.safetensors"));
        write_changed(&changed)?;
        run(
            loc,
            &["config", "--weights", &changed.display().to_string()],
        )?;
        run(
            loc,
            &[
                "identify",
                "--csv",
                &q_csv.display().to_string(),
                "--out",
                &out.display().to_string(),
            ],
        )?;
        let s3 = json(loc, &["stats", "--json"])?;
        let m3 = s3["model"].as_str().context("model")?.to_string();
        assert!(
            m3 != m0 && m3 != m1 && m3.starts_with("mobilenet_v2-"),
            "{engine}: {m3}"
        );
        assert_eq!(s3["embeddings"][&m3], db.len() + q.len(), "{engine}");
        assert_eq!(
            s3["embeddings"][&m0],
            db.len() + q.len(),
            "{engine}: kept apart"
        );
        // The same weights path rewritten in place is detected too.
        std::fs::copy(&same, &changed)?;
        run(
            loc,
            &[
                "identify",
                "--csv",
                &q_csv.display().to_string(),
                "--out",
                &out.display().to_string(),
            ],
        )?;
        let s4 = json(loc, &["stats", "--json"])?;
        assert_eq!(
            s4["model"],
            m0.as_str(),
            "{engine}: file content decides the model"
        );
        assert!(run(loc, &["check"])?.starts_with("ok"));
    }
    Ok(())
}

#[test]
fn bad_input_gives_clear_errors() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let loc = dir.path().join("c.db").display().to_string();
    // No catalogue yet.
    let o = cli(&loc, &["stats"]).output()?;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("init"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !Path::new(&loc).exists(),
        "opening left no empty file behind"
    );
    run(
        &loc,
        &["init", "--backbone", "mobilenet_v2", "--local", "none"],
    )?;
    let o = cli(&loc, &["init"]).output()?;
    assert!(String::from_utf8_lossy(&o.stderr).contains("exists"));
    // A bad pipeline option is refused before anything is stored.
    let o = cli(&loc, &["config", "--local", "surf"]).output()?;
    assert_eq!(o.status.code(), Some(2));
    // A decisions file with an unknown verdict names its line.
    let dec = dir.path().join("d.csv");
    std::fs::write(
        &dec,
        format!(
            "photo,path,content_hash,dataset,species,suggestion,suggested,score,threshold,candidates,verdict,individual,reviewer,note\n\
             a,/x.jpg,{h},d,,new,new_0001,,,,maybe,,,\n",
            h = "0".repeat(64)
        ),
    )?;
    let o = cli(&loc, &["apply", &dec.display().to_string()]).output()?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line 2") && err.contains("maybe"), "{err}");
    // Confirming an individual the catalogue lacks names the line too, and
    // changes nothing.
    std::fs::write(
        &dec,
        format!(
            "photo,path,content_hash,dataset,species,suggestion,suggested,score,threshold,candidates,verdict,individual,reviewer,note\n\
             a,/x.jpg,{h},d,,new,new_0001,,,,new,,,\n\
             b,/y.jpg,{g},d,,known,ind-000009,,,,confirm,,,\n",
            h = "0".repeat(64),
            g = "1".repeat(64)
        ),
    )?;
    let (p0, c0) = counts(&loc)?;
    let o = cli(&loc, &["apply", &dec.display().to_string()]).output()?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("line 3") && err.contains("ind-000009"),
        "{err}"
    );
    assert_eq!(counts(&loc)?, (p0, c0));
    // Undo with nothing to undo.
    let o = cli(&loc, &["undo"]).output()?;
    assert!(String::from_utf8_lossy(&o.stderr).contains("no enrol or apply"));
    // A missing photo folder.
    let o = cli(
        &loc,
        &["enrol", "--folder", "/nonexistent/photos", "--dataset", "d"],
    )
    .output()?;
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/photos"));
    Ok(())
}
