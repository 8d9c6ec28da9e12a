//! Crash safety of every writer, by SIGKILL: a child process (this test
//! binary, in child mode) rewrites a file over and over with ever newer
//! contents; the parent kills it at a seeded random moment of a rewrite, 20
//! times per writer. After each kill the file must hold one complete version
//! (it loads, every value of one version) or, for the caches, every entry
//! must read back whole or be reported damaged (recomputed), never torn; a
//! re-run (a write by this process) must then give the result an
//! uninterrupted run gives and leave no temporary file behind, the dead
//! writer's included. Writers: the gallery / embeddings file (what `embed`
//! writes), the embedding cache, the local-feature cache, the submission,
//! a training checkpoint. And two processes filling one embedding cache and
//! one local-feature cache at once lose and tear nothing.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use animal_reid::backbone::cache::{EmbeddingCache, Lookup};
use animal_reid::core::Record;
use animal_reid::eval::submission::{SubmissionRow, read_submission, write_submission};
use animal_reid::index::Gallery;
use animal_reid::local::cache::{CacheKey, FeatureCache};
use animal_reid::local::{Features, Keypoint};
use animal_reid::openset::Decision;
use ndarray::Array2;

const CHILD: &str = "ANIMAL_REID_KILL_WRITER";
const WRITERS: [&str; 5] = [
    "gallery",
    "embedding-cache",
    "feature-cache",
    "submission",
    "checkpoint",
];
const TRIALS: u64 = 20;
const ROWS: usize = 300;
const DIM: usize = 64;
const ENTRIES: usize = 40;

fn gallery(v: f32) -> Gallery {
    let records: Vec<Record> = (0..ROWS)
        .map(|i| Record::new(format!("r{i}"), format!("r{i}.jpg")))
        .collect();
    let m = Array2::from_elem((ROWS, DIM), v);
    Gallery::from_parts("kill-test", m.view(), records).unwrap()
}

fn features(v: f32) -> Features {
    let kp = Keypoint {
        x: 1.0,
        y: 2.0,
        sigma: 1.6,
        angle: 0.0,
        response: v,
        octave: 0,
    };
    Features::builder((64, 64), vec![kp; 200], vec![v; 200 * 32])
        .dim(32)
        .build()
        .unwrap()
}

fn feature_key(i: usize) -> CacheKey {
    CacheKey::from_parts("kill-test", 1, b"params", format!("image {i}").as_bytes())
}

fn rows(v: u64) -> Vec<SubmissionRow> {
    (0..2000)
        .map(|i| SubmissionRow {
            image_id: format!("q{i}"),
            decision: Decision::Known(format!("id{v}")),
        })
        .collect()
}

fn var_store(v: f64) -> tch::nn::VarStore {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let root = vs.root();
    for k in 0..8 {
        let _ = root.var(&format!("w{k}"), &[64, 256], tch::nn::Init::Const(v));
    }
    vs
}

/// One complete write of version `v` by `writer` into `dir`.
fn write(writer: &str, dir: &Path, v: u64) {
    let f = v as f32;
    match writer {
        "gallery" => gallery(f).save(dir.join("g.reidx")).unwrap(),
        "embedding-cache" => {
            let c = EmbeddingCache::open(&dir.join("emb"), "config", DIM).unwrap();
            for i in 0..ENTRIES {
                c.put(&format!("key{i}"), &[f; DIM]).unwrap();
            }
        }
        "feature-cache" => {
            let c = FeatureCache::new(dir.join("feat")).unwrap();
            for i in 0..ENTRIES {
                c.store(&feature_key(i), &features(f)).unwrap();
            }
        }
        "submission" => write_submission(&dir.join("submission.csv"), &rows(v)).unwrap(),
        "checkpoint" => animal_reid::train::train::save_var_store(
            &var_store(v as f64),
            &dir.join("ckpt.safetensors"),
        )
        .unwrap(),
        other => panic!("unknown writer {other}"),
    }
}

/// What the files hold after a kill: checks every rule and returns the
/// versions seen (empty when nothing was ever complete).
fn check(writer: &str, dir: &Path, last: u64) -> Vec<u64> {
    let one = |vals: &mut dyn Iterator<Item = f32>| -> u64 {
        let first = vals.next().unwrap();
        for x in vals {
            assert_eq!(x, first, "{writer}: a torn file mixes versions");
        }
        let v = first as u64;
        // Any complete version the child wrote (`ready` itself may be cut).
        assert!(
            v >= 1 && v <= last.max(1000),
            "{writer}: version {v} out of range"
        );
        v
    };
    match writer {
        "gallery" => {
            let g = Gallery::load(dir.join("g.reidx")).unwrap();
            vec![one(&mut g.embeddings().iter().copied())]
        }
        "embedding-cache" => {
            let c = EmbeddingCache::open(&dir.join("emb"), "config", DIM).unwrap();
            (0..ENTRIES)
                .filter_map(|i| match c.get(&format!("key{i}")) {
                    Lookup::Hit(v) => Some(one(&mut v.into_iter())),
                    Lookup::Damaged | Lookup::Miss => None,
                })
                .collect()
        }
        "feature-cache" => {
            let c = FeatureCache::new(dir.join("feat")).unwrap();
            (0..ENTRIES)
                .filter_map(|i| {
                    c.load(&feature_key(i)).ok().flatten().map(|f| {
                        let resp = f.keypoints().iter().map(|k| k.response);
                        one(&mut resp.chain(f.descriptors().iter().copied()))
                    })
                })
                .collect()
        }
        "submission" => {
            let r = read_submission(&dir.join("submission.csv")).unwrap();
            assert_eq!(r.len(), 2000, "submission: a partial file");
            let mut ids = r.iter().map(|row| {
                row.decision.identity().unwrap()[2..]
                    .parse::<f32>()
                    .unwrap()
            });
            vec![one(&mut ids)]
        }
        "checkpoint" => {
            let vs = var_store(0.0);
            animal_reid::train::train::load_var_store(&vs, &dir.join("ckpt.safetensors")).unwrap();
            let mut vals = Vec::new();
            for (_, t) in vs.variables() {
                let flat = t.flatten(0, -1);
                vals.extend(Vec::<f32>::try_from(&flat).unwrap());
            }
            vec![one(&mut vals.into_iter())]
        }
        other => panic!("{other}"),
    }
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap().to_string_lossy().contains(".tmp-") {
                out.push(p);
            }
        }
    }
    out
}

/// Child mode: rewrite forever (at most 30 s), marking the first complete
/// version with a `ready` file.
fn child(spec: &str) {
    let (writer, dir) = spec.split_once(':').unwrap();
    let dir = Path::new(dir);
    let start = Instant::now();
    let mut v = 1;
    while start.elapsed() < Duration::from_secs(30) {
        write(writer, dir, v);
        std::fs::write(dir.join("ready"), v.to_string()).unwrap();
        v += 1;
    }
}

fn spawn(writer: &str, dir: &Path) -> Child {
    spawn_as("writers_survive_sigkill", writer, dir)
}

/// This test binary running only the test `test`, in child mode.
fn spawn_as(test: &str, writer: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(CHILD, format!("{writer}:{}", dir.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn writers_survive_sigkill() {
    if let Ok(spec) = std::env::var(CHILD) {
        child(&spec);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut summary = Vec::new();
    for (w, writer) in WRITERS.iter().enumerate() {
        // A seeded generator for the kill moments.
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1);
        let mut mid_write = 0;
        for trial in 0..TRIALS {
            let dir = tmp.path().join(format!("{writer}-{trial}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut child = spawn(writer, &dir);
            let ready = dir.join("ready");
            let t0 = Instant::now();
            while !ready.exists() {
                assert!(
                    t0.elapsed() < Duration::from_secs(60),
                    "{writer}: child never wrote"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            std::thread::sleep(Duration::from_micros(state % 40_000));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            let last: u64 = std::fs::read_to_string(&ready)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(1);
            if !temp_files(&dir).is_empty() {
                mid_write += 1;
            }
            let seen = check(writer, &dir, last);
            assert!(
                writer.ends_with("cache") || !seen.is_empty(),
                "{writer}: trial {trial}: nothing complete"
            );
            // The re-run: one uninterrupted write, then the same result as
            // a run that was never killed, and no temporary file left.
            write(writer, &dir, 1000);
            let again = check(writer, &dir, 1000);
            assert!(again.iter().all(|&v| v == 1000), "{writer}: {again:?}");
            let n = if writer.ends_with("cache") {
                ENTRIES
            } else {
                1
            };
            assert_eq!(again.len(), n, "{writer}: entries after the re-run");
            let left = temp_files(&dir);
            assert!(left.is_empty(), "{writer}: temporary files left: {left:?}");
        }
        summary.push(format!(
            "{writer}: {TRIALS} kills, {mid_write} mid-write (a temporary file left), all recovered"
        ));
    }
    for s in &summary {
        eprintln!("{s}");
    }
}

/// Two processes fill the same embedding cache and the same local-feature
/// cache at once, each writing every entry many times (as two jobs on the
/// same photos would): afterwards every entry reads back whole with the
/// value one process alone writes, and no temporary file is left.
#[test]
fn two_processes_share_a_cache() {
    if let Ok(spec) = std::env::var(CHILD) {
        let (writer, dir) = spec.split_once(':').unwrap();
        for _ in 0..25 {
            write(writer, Path::new(dir), 7);
        }
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for writer in ["embedding-cache", "feature-cache"] {
        let dir = tmp.path().join(writer);
        std::fs::create_dir_all(&dir).unwrap();
        let mut a = spawn_as("two_processes_share_a_cache", writer, &dir);
        let mut b = spawn_as("two_processes_share_a_cache", writer, &dir);
        assert!(
            a.wait().unwrap().success() && b.wait().unwrap().success(),
            "{writer}"
        );
        let seen = check(writer, &dir, 7);
        assert_eq!(seen, vec![7; ENTRIES], "{writer}: an entry lost or torn");
        let left = temp_files(&dir);
        assert!(left.is_empty(), "{writer}: temporary files left: {left:?}");
        eprintln!("{writer}: two processes x 25 rounds x {ENTRIES} entries, all whole");
    }
}
