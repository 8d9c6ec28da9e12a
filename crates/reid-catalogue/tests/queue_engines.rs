//! The work queue on both engines: every scenario runs once on SQLite (a
//! file in a temporary folder) and once on PostgreSQL (a fresh database of
//! the test binary's throwaway server), with the expected values worked out
//! by hand.
//!
//! Photos are fake: their content hashes are 64 hex digits made from a
//! number ([`hash`]), their paths need not exist (the queue never reads
//! them), their embeddings synthetic unit vectors of dimension 4.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use reid_catalogue::catalogue::{Catalogue, ChangeContext, EnrolPhoto, Model};
use reid_catalogue::queue::{BatchResult, Completed, Job, QueueStatus, WorkerInfo};
use reid_catalogue::store::{Value, transact};
use reid_catalogue::testing::ThrowawayPostgres;

// ---------------------------------------------------------------------------
// The two engines.

/// Where a scenario keeps its catalogue.
trait Db {
    /// The catalogue's location (nothing there yet).
    fn location(&self) -> &str;
}

struct Sqlite {
    _dir: tempfile::TempDir,
    path: String,
}

impl Sqlite {
    fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = utf8(&dir.path().join("catalogue.db"))?;
        Ok(Sqlite { _dir: dir, path })
    }
}

impl Db for Sqlite {
    fn location(&self) -> &str {
        &self.path
    }
}

struct Pg {
    url: String,
}

impl Pg {
    fn new(name: &str) -> Result<Self> {
        let server = ThrowawayPostgres::shared()
            .map_err(|e| anyhow::anyhow!("cannot start a throwaway PostgreSQL server: {e}"))?;
        let url = server.fresh_database(name).map_err(anyhow::Error::msg)?;
        Ok(Pg { url })
    }
}

impl Db for Pg {
    fn location(&self) -> &str {
        &self.url
    }
}

fn utf8(p: &Path) -> Result<String> {
    Ok(p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))?
        .to_string())
}

/// A test of `scenario` per engine: `scenario::sqlite` and
/// `scenario::postgres`.
macro_rules! on_both_engines {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn sqlite() -> anyhow::Result<()> {
                super::$scenario(&super::Sqlite::new()?)
            }

            #[test]
            fn postgres() -> anyhow::Result<()> {
                super::$scenario(&super::Pg::new(concat!("queue_", stringify!($scenario)))?)
            }
        }
    )*};
}

on_both_engines!(
    ingest_queues,
    claims_are_disjoint,
    complete_writes_held_rows,
    lease_expiry,
    failures_park,
    outside_the_queue,
    concurrent_workers,
    workers_report,
    generation,
    abandoned_rows_park,
);

// ---------------------------------------------------------------------------
// Helpers.

const LONG: Duration = Duration::from_secs(600);

fn ctx() -> ChangeContext {
    ChangeContext::new("tester").reason("a queue test")
}

/// A fake sha256: `n` as 64 hex digits.
fn hash(n: u32) -> String {
    format!("{n:064x}")
}

fn path(dataset: &str, n: u32) -> PathBuf {
    PathBuf::from(format!("/photos/{dataset}/{n}.jpg"))
}

fn model_a() -> Model {
    Model {
        id: "model-a".into(),
        description: "model A".into(),
        dim: 4,
    }
}

fn model_b() -> Model {
    Model {
        id: "model-b".into(),
        description: "model B".into(),
        dim: 4,
    }
}

/// Photo `n` of `dataset`; an empty `individual` keeps it unassigned.
fn photo(n: u32, dataset: &str, individual: &str) -> EnrolPhoto {
    EnrolPhoto {
        path: path(dataset, n),
        content_hash: hash(n),
        dataset: dataset.into(),
        species: Some("lynx".into()),
        individual: individual.into(),
    }
}

/// A unit vector of dimension 4 that differs for each `n` (and for each
/// `salt`: two workers computing the same photo hand back different ones,
/// so which was stored shows).
fn vec_of(n: u32, salt: f32) -> Vec<f32> {
    let v = [n as f32, 1.0 + salt, 2.0, 3.0];
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

/// Photos `1..=n` of dataset `d1`, labelled `a`, `b`, `c` in turn.
fn labelled(n: u32) -> Vec<EnrolPhoto> {
    (1..=n)
        .map(|i| photo(i, "d1", ["a", "b", "c"][(i % 3) as usize]))
        .collect()
}

/// A new catalogue at `db`, model A current, `photos` ingested.
fn ingested(db: &dyn Db, photos: &[EnrolPhoto]) -> Result<Catalogue> {
    let mut cat = Catalogue::init(db.location(), &ctx())?;
    ensure!(cat.use_model(&model_a(), &ctx())?.is_none());
    let r = cat.ingest(photos, &model_a(), &ctx())?;
    ensure!(r.photos_added == photos.len(), "ingest: {r:?}");
    Ok(cat)
}

/// (pending, leased, done, parked).
fn states(s: &QueueStatus) -> (usize, usize, usize, usize) {
    let get = |k: &str| s.states.get(k).copied().unwrap_or(usize::MAX);
    (get("pending"), get("leased"), get("done"), get("parked"))
}

/// The content hashes of a claim, sorted (a claim takes the first pending
/// rows in content hash order, but returns them in no promised order).
fn hashes(jobs: &[Job]) -> Vec<String> {
    let mut h: Vec<String> = jobs.iter().map(|j| j.content_hash.clone()).collect();
    h.sort();
    h
}

fn hashes_of(ns: impl IntoIterator<Item = u32>) -> Vec<String> {
    ns.into_iter().map(hash).collect()
}

fn int(cat: &mut Catalogue, query: &str, params: &[Value]) -> Result<i64> {
    Ok(transact(cat.store(), |tx| tx.query_one_int(query, params))?)
}

fn embeddings_count(cat: &mut Catalogue, model: &str) -> Result<i64> {
    int(
        cat,
        "SELECT COUNT(*) FROM embeddings WHERE model = ?1",
        &[model.into()],
    )
}

/// The queue row of (hash, model): (state, lease owner, attempts, done by,
/// path), `None` when there is none.
type JobRow = (String, Option<String>, i64, Option<String>, String);

fn job_row(cat: &mut Catalogue, hash: &str, model: &str) -> Result<Option<JobRow>> {
    let rows = transact(cat.store(), |tx| {
        tx.query(
            "SELECT state, lease_owner, attempts, done_by, path FROM jobs \
             WHERE content_hash = ?1 AND model = ?2",
            &[hash.into(), model.into()],
        )
    })?;
    ensure!(rows.len() <= 1, "{} rows for {hash} {model}", rows.len());
    rows.first()
        .map(|r| -> Result<JobRow> {
            Ok((
                r[0].text("state")?,
                r[1].opt_text("owner")?,
                r[2].int("attempts")?,
                r[3].opt_text("done_by")?,
                r[4].text("path")?,
            ))
        })
        .transpose()
}

fn done(pairs: impl IntoIterator<Item = (u32, Vec<f32>)>) -> BatchResult {
    BatchResult {
        done: pairs.into_iter().map(|(n, v)| (hash(n), v)).collect(),
        failed: Vec::new(),
    }
}

fn failed(n: u32, error: &str) -> BatchResult {
    BatchResult {
        done: Vec::new(),
        failed: vec![(hash(n), error.into())],
    }
}

fn completed(written: usize, lost_lease: usize, retried: usize, parked: usize) -> Completed {
    Completed {
        written,
        lost_lease,
        retried,
        parked,
    }
}

fn approx_eq(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

/// The stored embedding of photo `n` under `model`.
fn stored(cat: &mut Catalogue, model: &Model, n: u32) -> Result<Option<Vec<f32>>> {
    Ok(cat.embeddings_for(model, &[hash(n)])?.remove(&hash(n)))
}

// ---------------------------------------------------------------------------
// Scenarios.

/// Scenario 1: Ingesting queues every photo without an embedding of the model, once.
fn ingest_queues(db: &dyn Db) -> Result<()> {
    let mut cat = Catalogue::init(db.location(), &ctx())?;
    ensure!(cat.use_model(&model_a(), &ctx())?.is_none());
    // Ten photos: 1, 2, 9, 10 `a`; 3 `b`; 6, 7 `c`; 4, 5, 8 unassigned.
    let who = ["a", "a", "b", "", "", "c", "c", "", "a", "a"];
    let ten: Vec<EnrolPhoto> = (1..=10u32)
        .map(|n| photo(n, "d1", who[n as usize - 1]))
        .collect();
    let r = cat.ingest(&ten, &model_a(), &ctx())?;
    ensure!(
        (r.photos_added, r.individuals_created, r.already_present) == (10, 3, 0)
            && r.conflicts.is_empty()
            && r.change.is_some(),
        "first ingest: {r:?}"
    );
    let unassigned = cat
        .photos(None)?
        .iter()
        .filter(|p| p.individual.is_none())
        .count();
    ensure!(
        unassigned == 3,
        "{unassigned} unassigned photos, expected 3"
    );
    let s = cat.queue_status("model-a")?;
    ensure!(states(&s) == (10, 0, 0, 0), "after ingest: {s:?}");
    ensure!(
        s.leased_by.is_empty() && s.failures.is_empty() && s.expired_leases == 0,
        "{s:?}"
    );
    let row = job_row(&mut cat, &hash(4), "model-a")?;
    ensure!(
        row == Some(("pending".into(), None, 0, None, "/photos/d1/4.jpg".into())),
        "job of photo 4: {row:?}"
    );
    // Nothing for model B yet.
    ensure!(
        states(&cat.queue_status("model-b")?) == (0, 0, 0, 0),
        "model B queued before it was used"
    );

    // Again: nothing new, nothing queued twice.
    let r = cat.ingest(&ten, &model_a(), &ctx())?;
    ensure!(
        (r.photos_added, r.already_present) == (0, 10) && r.change.is_none(),
        "second ingest: {r:?}"
    );
    ensure!(
        cat.enqueue_missing("model-a")? == 0,
        "enqueue_missing again"
    );
    ensure!(states(&cat.queue_status("model-a")?) == (10, 0, 0, 0));
    ensure!(int(&mut cat, "SELECT COUNT(*) FROM jobs", &[])? == 10);

    // Photo 11's embedding is already stored: ingesting it queues nothing.
    ensure!(cat.put_embeddings(&model_a(), &[(hash(11), vec_of(11, 0.0))])? == 1);
    let r = cat.ingest(&[photo(11, "d1", "a")], &model_a(), &ctx())?;
    ensure!(r.photos_added == 1, "photo 11: {r:?}");
    ensure!(
        job_row(&mut cat, &hash(11), "model-a")?.is_none(),
        "photo 11 queued"
    );
    ensure!(states(&cat.queue_status("model-a")?) == (10, 0, 0, 0));

    // Dataset d2 has photo 3 too (same content): one row per content hash.
    let r = cat.ingest(&[photo(3, "d2", "x")], &model_a(), &ctx())?;
    ensure!(r.photos_added == 1, "d2/3: {r:?}");
    ensure!(states(&cat.queue_status("model-a")?) == (10, 0, 0, 0));
    ensure!(
        int(
            &mut cat,
            "SELECT COUNT(*) FROM jobs WHERE content_hash = ?1",
            &[hash(3).into()]
        )? == 1
    );

    // Model B: every photo again, one row per content hash (11 hashes in
    // 12 photos), less photo 2 whose B embedding is already stored.
    ensure!(cat.use_model(&model_b(), &ctx())?.as_deref() == Some("model-a"));
    ensure!(cat.put_embeddings(&model_b(), &[(hash(2), vec_of(2, 0.0))])? == 1);
    let n = cat.enqueue_missing("model-b")?;
    ensure!(n == 10, "enqueue_missing(model-b) queued {n}, expected 10");
    let s = cat.queue_status("model-b")?;
    ensure!(states(&s) == (10, 0, 0, 0), "model B: {s:?}");
    ensure!(job_row(&mut cat, &hash(2), "model-b")?.is_none());
    let row = job_row(&mut cat, &hash(3), "model-b")?;
    ensure!(
        row == Some(("pending".into(), None, 0, None, "/photos/d1/3.jpg".into())),
        "job of photo 3 for model B: {row:?}"
    );
    ensure!(job_row(&mut cat, &hash(11), "model-b")?.is_some());
    ensure!(
        cat.enqueue_missing("model-b")? == 0,
        "enqueue_missing(B) again"
    );
    ensure!(
        cat.enqueue_missing("model-a")? == 0,
        "enqueue_missing(A) again"
    );
    ensure!(states(&cat.queue_status("model-a")?) == (10, 0, 0, 0));
    ensure!(int(&mut cat, "SELECT COUNT(*) FROM jobs", &[])? == 20);
    Ok(())
}

/// Scenario 2: Claims by three workers take disjoint rows, in content hash order.
fn claims_are_disjoint(db: &dyn Db) -> Result<()> {
    let mut cat = ingested(db, &labelled(10))?;
    let a = cat.claim(&model_a(), "A", 4, LONG)?;
    let b = cat.claim(&model_a(), "B", 4, LONG)?;
    let c = cat.claim(&model_a(), "C", 10, LONG)?;
    ensure!(hashes(&a) == hashes_of(1..=4), "A: {a:?}");
    ensure!(hashes(&b) == hashes_of(5..=8), "B: {b:?}");
    ensure!(hashes(&c) == hashes_of(9..=10), "C: {c:?}");
    let mut jobs: Vec<&Job> = a.iter().chain(&b).chain(&c).collect();
    jobs.sort_by(|x, y| x.content_hash.cmp(&y.content_hash));
    ensure!(jobs.len() == 10, "{} jobs claimed", jobs.len());
    for (n, j) in (1..=10u32).zip(jobs) {
        ensure!(j.path == path("d1", n) && j.attempts == 1, "job {n}: {j:?}");
    }
    let all: BTreeSet<String> = a
        .iter()
        .chain(&b)
        .chain(&c)
        .map(|j| j.content_hash.clone())
        .collect();
    ensure!(all.len() == 10, "claims overlap");
    ensure!(
        cat.claim(&model_a(), "D", 10, LONG)?.is_empty(),
        "D got rows"
    );
    // Another model's queue is another queue.
    ensure!(
        cat.claim(&model_b(), "D", 10, LONG)?.is_empty(),
        "D got model B rows"
    );

    let s = cat.queue_status("model-a")?;
    ensure!(states(&s) == (0, 10, 0, 0), "{s:?}");
    let want: BTreeMap<String, usize> = [("A".into(), 4), ("B".into(), 4), ("C".into(), 2)].into();
    ensure!(s.leased_by == want, "leased_by: {:?}", s.leased_by);
    ensure!(s.expired_leases == 0, "{s:?}");
    let row = job_row(&mut cat, &hash(6), "model-a")?;
    ensure!(
        row.as_ref().map(|r| (r.0.as_str(), r.1.as_deref(), r.2)) == Some(("leased", Some("B"), 1)),
        "photo 6: {row:?}"
    );
    Ok(())
}

/// Scenario 3: `complete` writes only rows still leased to the worker, once.
fn complete_writes_held_rows(db: &dyn Db) -> Result<()> {
    let mut cat = ingested(db, &labelled(10))?;
    ensure!(hashes(&cat.claim(&model_a(), "A", 4, LONG)?) == hashes_of(1..=4));
    ensure!(hashes(&cat.claim(&model_a(), "B", 4, LONG)?) == hashes_of(5..=8));

    let c = cat.complete(
        &model_a(),
        "A",
        &done((1..=4).map(|n| (n, vec_of(n, 0.0)))),
        3,
    )?;
    ensure!(c == completed(4, 0, 0, 0), "A's complete: {c:?}");
    ensure!(embeddings_count(&mut cat, "model-a")? == 4);
    for n in 1..=4 {
        let v = stored(&mut cat, &model_a(), n)?;
        ensure!(
            v.as_deref().is_some_and(|v| approx_eq(v, &vec_of(n, 0.0))),
            "photo {n}: {v:?}"
        );
        let row = job_row(&mut cat, &hash(n), "model-a")?;
        ensure!(
            row.as_ref()
                .map(|r| (r.0.as_str(), r.1.as_deref(), r.3.as_deref()))
                == Some(("done", None, Some("A"))),
            "photo {n}: {row:?}"
        );
    }
    let s = cat.queue_status("model-a")?;
    ensure!(states(&s) == (2, 4, 4, 0), "{s:?}");
    ensure!(
        s.leased_by == BTreeMap::from([("B".to_string(), 4)]),
        "{s:?}"
    );

    // B completes one of A's rows (done), a pending row and a failure for
    // a row it does not hold: all dropped.
    let c = cat.complete(
        &model_a(),
        "B",
        &BatchResult {
            done: vec![(hash(1), vec_of(1, 5.0)), (hash(9), vec_of(9, 5.0))],
            failed: vec![(hash(10), "not mine".into())],
        },
        3,
    )?;
    ensure!(c == completed(0, 3, 0, 0), "B's foreign complete: {c:?}");
    ensure!(embeddings_count(&mut cat, "model-a")? == 4);
    let v = stored(&mut cat, &model_a(), 1)?;
    ensure!(
        v.as_deref().is_some_and(|v| approx_eq(v, &vec_of(1, 0.0))),
        "photo 1: {v:?}"
    );
    ensure!(stored(&mut cat, &model_a(), 9)?.is_none(), "photo 9 stored");
    let row = job_row(&mut cat, &hash(10), "model-a")?;
    ensure!(
        row.as_ref().map(|r| (r.0.as_str(), r.2)) == Some(("pending", 0)),
        "photo 10: {row:?}"
    );
    ensure!(cat.queue_status("model-a")?.failures.is_empty());

    // A completes one of B's rows (leased to B): dropped, still B's.
    let c = cat.complete(&model_a(), "A", &done([(6, vec_of(6, 7.0))]), 3)?;
    ensure!(c == completed(0, 1, 0, 0), "A on B's row: {c:?}");
    let row = job_row(&mut cat, &hash(6), "model-a")?;
    ensure!(
        row.as_ref().map(|r| (r.0.as_str(), r.1.as_deref())) == Some(("leased", Some("B"))),
        "photo 6: {row:?}"
    );

    // B completes its photo 5 twice: written once, the first vector kept.
    let c = cat.complete(&model_a(), "B", &done([(5, vec_of(5, 0.0))]), 3)?;
    ensure!(c == completed(1, 0, 0, 0), "B's first complete: {c:?}");
    let c = cat.complete(&model_a(), "B", &done([(5, vec_of(5, 9.0))]), 3)?;
    ensure!(c == completed(0, 1, 0, 0), "B's second complete: {c:?}");
    let v = stored(&mut cat, &model_a(), 5)?;
    ensure!(
        v.as_deref().is_some_and(|v| approx_eq(v, &vec_of(5, 0.0))),
        "photo 5: {v:?}"
    );
    ensure!(embeddings_count(&mut cat, "model-a")? == 5);
    let s = cat.queue_status("model-a")?;
    ensure!(states(&s) == (2, 3, 5, 0), "{s:?}");
    ensure!(
        s.leased_by == BTreeMap::from([("B".to_string(), 3)]),
        "{s:?}"
    );

    // A result of the wrong dimension is refused before anything is written.
    ensure!(
        cat.complete(&model_a(), "B", &done([(6, vec![1.0, 0.0])]), 3)
            .is_err(),
        "a 2-d vector for a 4-d model was accepted"
    );
    ensure!(embeddings_count(&mut cat, "model-a")? == 5);
    Ok(())
}

/// Scenario 4: A lease that ran out is claimed again; the late worker writes nothing.
fn lease_expiry(db: &dyn Db) -> Result<()> {
    let mut cat = ingested(db, &labelled(3))?;
    let a = cat.claim(&model_a(), "A", 10, Duration::from_secs(1))?;
    ensure!(hashes(&a) == hashes_of(1..=3), "A: {a:?}");
    // Not expired yet: nothing for B.
    ensure!(
        cat.claim(&model_a(), "B", 10, LONG)?.is_empty(),
        "B took live leases"
    );
    ensure!(cat.queue_status("model-a")?.expired_leases == 0);

    std::thread::sleep(Duration::from_millis(1600));
    let s = cat.queue_status("model-a")?;
    ensure!(s.expired_leases == 3, "expired: {s:?}");
    ensure!(states(&s) == (0, 3, 0, 0), "{s:?}");
    ensure!(
        s.leased_by == BTreeMap::from([("A".to_string(), 3)]),
        "{s:?}"
    );

    let b = cat.claim(&model_a(), "B", 10, LONG)?;
    ensure!(hashes(&b) == hashes_of(1..=3), "B: {b:?}");
    ensure!(b.iter().all(|j| j.attempts == 2), "B's attempts: {b:?}");
    let s = cat.queue_status("model-a")?;
    ensure!(s.expired_leases == 0, "{s:?}");
    ensure!(
        s.leased_by == BTreeMap::from([("B".to_string(), 3)]),
        "{s:?}"
    );
    ensure!(
        cat.renew(&model_a(), "A", LONG)? == 0,
        "A renewed B's leases"
    );
    ensure!(cat.renew(&model_a(), "B", LONG)? == 3, "B's renew");

    let late = cat.complete(
        &model_a(),
        "A",
        &done((1..=3).map(|n| (n, vec_of(n, 1.0)))),
        3,
    )?;
    ensure!(late == completed(0, 3, 0, 0), "A's late complete: {late:?}");
    ensure!(embeddings_count(&mut cat, "model-a")? == 0);
    let s = cat.queue_status("model-a")?;
    ensure!(states(&s) == (0, 3, 0, 0), "{s:?}");

    let c = cat.complete(
        &model_a(),
        "B",
        &done((1..=3).map(|n| (n, vec_of(n, 2.0)))),
        3,
    )?;
    ensure!(c == completed(3, 0, 0, 0), "B's complete: {c:?}");
    for n in 1..=3 {
        let v = stored(&mut cat, &model_a(), n)?;
        ensure!(
            v.as_deref().is_some_and(|v| approx_eq(v, &vec_of(n, 2.0))),
            "photo {n}: {v:?} is not B's"
        );
        let row = job_row(&mut cat, &hash(n), "model-a")?;
        ensure!(
            row.as_ref().map(|r| (r.0.as_str(), r.2, r.3.as_deref()))
                == Some(("done", 2, Some("B"))),
            "photo {n}: {row:?}"
        );
    }
    ensure!(states(&cat.queue_status("model-a")?) == (0, 0, 3, 0));
    Ok(())
}

/// Scenario 5: Failures go back to pending with their error, then are parked.
fn failures_park(db: &dyn Db) -> Result<()> {
    let mut cat = ingested(db, &labelled(2))?;
    let p1 = "/photos/d1/1.jpg".to_string();
    ensure!(hashes(&cat.claim(&model_a(), "A", 10, LONG)?) == hashes_of(1..=2));
    let c = cat.complete(
        &model_a(),
        "A",
        &BatchResult {
            done: vec![(hash(2), vec_of(2, 0.0))],
            failed: vec![(hash(1), "cannot decode".into())],
        },
        3,
    )?;
    ensure!(c == completed(1, 0, 1, 0), "first: {c:?}");
    let s = cat.queue_status("model-a")?;
    ensure!(states(&s) == (1, 0, 1, 0), "{s:?}");
    ensure!(
        s.failures == vec![(hash(1), p1.clone(), 1, "cannot decode".to_string())],
        "failures: {:?}",
        s.failures
    );

    // Second try (attempt 2), by another worker: fails again, retried.
    let j = cat.claim(&model_a(), "B", 10, LONG)?;
    ensure!(
        hashes(&j) == hashes_of([1]) && j[0].attempts == 2,
        "second claim: {j:?}"
    );
    let c = cat.complete(&model_a(), "B", &failed(1, "truncated"), 3)?;
    ensure!(c == completed(0, 0, 1, 0), "second: {c:?}");
    let s = cat.queue_status("model-a")?;
    ensure!(states(&s) == (1, 0, 1, 0), "{s:?}");
    ensure!(
        s.failures == vec![(hash(1), p1.clone(), 2, "truncated".to_string())],
        "failures: {:?}",
        s.failures
    );

    // Third try (attempt 3 of 3): parked.
    let j = cat.claim(&model_a(), "C", 10, LONG)?;
    ensure!(
        hashes(&j) == hashes_of([1]) && j[0].attempts == 3,
        "third claim: {j:?}"
    );
    let c = cat.complete(&model_a(), "C", &failed(1, "still bad"), 3)?;
    ensure!(c == completed(0, 0, 0, 1), "third: {c:?}");
    let s = cat.queue_status("model-a")?;
    ensure!(states(&s) == (0, 0, 1, 1), "{s:?}");
    ensure!(
        s.failures == vec![(hash(1), p1, 3, "still bad".to_string())],
        "failures: {:?}",
        s.failures
    );
    ensure!(s.leased_by.is_empty() && s.expired_leases == 0, "{s:?}");

    // Parked rows are not claimed again, nor queued again.
    ensure!(
        cat.claim(&model_a(), "D", 10, LONG)?.is_empty(),
        "parked row claimed"
    );
    ensure!(cat.enqueue_missing("model-a")? == 0);
    let row = job_row(&mut cat, &hash(1), "model-a")?;
    ensure!(
        row.as_ref().map(|r| (r.0.as_str(), r.1.as_deref(), r.2)) == Some(("parked", None, 3)),
        "photo 1: {row:?}"
    );
    ensure!(embeddings_count(&mut cat, "model-a")? == 1);
    Ok(())
}

/// Scenario 6: An embedding stored outside the queue marks its row done.
fn outside_the_queue(db: &dyn Db) -> Result<()> {
    let mut cat = ingested(db, &labelled(3))?;
    ensure!(cat.put_embeddings(&model_a(), &[(hash(2), vec_of(2, 0.0))])? == 1);
    let row = job_row(&mut cat, &hash(2), "model-a")?;
    ensure!(
        row.as_ref().map(|r| (r.0.as_str(), r.3.as_deref()))
            == Some(("done", Some("outside the queue"))),
        "photo 2: {row:?}"
    );
    ensure!(states(&cat.queue_status("model-a")?) == (2, 0, 1, 0));
    let j = cat.claim(&model_a(), "W", 10, LONG)?;
    ensure!(hashes(&j) == hashes_of([1, 3]), "claim: {j:?}");

    // Stored outside the queue while leased: the worker's result is dropped.
    ensure!(cat.put_embeddings(&model_a(), &[(hash(1), vec_of(1, 3.0))])? == 1);
    let c = cat.complete(
        &model_a(),
        "W",
        &done([(1, vec_of(1, 0.0)), (3, vec_of(3, 0.0))]),
        3,
    )?;
    ensure!(c == completed(1, 1, 0, 0), "W's complete: {c:?}");
    let v = stored(&mut cat, &model_a(), 1)?;
    ensure!(
        v.as_deref().is_some_and(|v| approx_eq(v, &vec_of(1, 3.0))),
        "photo 1: {v:?}"
    );
    ensure!(embeddings_count(&mut cat, "model-a")? == 3);
    let s = cat.queue_status("model-a")?;
    ensure!(
        states(&s) == (0, 0, 3, 0) && s.leased_by.is_empty(),
        "{s:?}"
    );
    Ok(())
}

/// Scenario 7: Four workers, each with its own connection, share 60 photos: each is
/// embedded exactly once.
fn concurrent_workers(db: &dyn Db) -> Result<()> {
    let mut cat = ingested(db, &labelled(60))?;
    ensure!(states(&cat.queue_status("model-a")?) == (60, 0, 0, 0));
    let location = db.location().to_string();
    let results: Vec<Result<(Completed, Vec<String>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let location = location.clone();
                scope.spawn(move || -> Result<(Completed, Vec<String>)> {
                    let mut cat = Catalogue::open(&location)?;
                    let owner = format!("worker-{w}");
                    let mut total = Completed::default();
                    let mut claimed = Vec::new();
                    loop {
                        let jobs = cat.claim(&model_a(), &owner, 3, LONG)?;
                        if jobs.is_empty() {
                            break;
                        }
                        let mut batch = BatchResult::default();
                        for j in &jobs {
                            let n = u32::from_str_radix(&j.content_hash, 16)?;
                            batch.done.push((j.content_hash.clone(), vec_of(n, 0.0)));
                            claimed.push(j.content_hash.clone());
                        }
                        let c = cat.complete(&model_a(), &owner, &batch, 3)?;
                        total.written += c.written;
                        total.lost_lease += c.lost_lease;
                        total.retried += c.retried;
                        total.parked += c.parked;
                    }
                    Ok((total, claimed))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker panicked")))
            })
            .collect()
    });
    let mut total = Completed::default();
    let mut claimed = Vec::new();
    for r in results {
        let (c, h) = r?;
        total.written += c.written;
        total.lost_lease += c.lost_lease;
        total.retried += c.retried;
        total.parked += c.parked;
        claimed.extend(h);
    }
    ensure!(total == completed(60, 0, 0, 0), "overall: {total:?}");
    claimed.sort();
    ensure!(
        claimed == hashes_of(1..=60),
        "claimed: {} rows, not each once",
        claimed.len()
    );
    ensure!(embeddings_count(&mut cat, "model-a")? == 60);
    let s = cat.queue_status("model-a")?;
    ensure!(states(&s) == (0, 0, 60, 0), "{s:?}");
    ensure!(s.leased_by.is_empty() && s.expired_leases == 0, "{s:?}");
    ensure!(
        int(
            &mut cat,
            "SELECT COUNT(*) FROM jobs WHERE attempts <> 1",
            &[]
        )? == 0,
        "a row was claimed twice"
    );
    ensure!(
        int(
            &mut cat,
            "SELECT COUNT(*) FROM jobs WHERE done_by LIKE 'worker-%'",
            &[]
        )? == 60
    );
    for n in [1, 30, 60] {
        let v = stored(&mut cat, &model_a(), n)?;
        ensure!(
            v.as_deref().is_some_and(|v| approx_eq(v, &vec_of(n, 0.0))),
            "photo {n}: {v:?}"
        );
    }
    Ok(())
}

/// Scenario 8: One row per worker, inserted then updated.
fn workers_report(db: &dyn Db) -> Result<()> {
    let mut cat = ingested(db, &labelled(2))?;
    let w1 = WorkerInfo {
        id: "host1-100-t0".into(),
        host: "host1".into(),
        model: "model-a".into(),
        device: "cpu".into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        last_seen: "2025-01-01T00:01:00Z".into(),
        photos: 5,
        failed: 1,
        compute_seconds: 1.5,
        queue_seconds: 0.25,
        running_seconds: 2.0,
    };
    cat.report_worker(&w1)?;
    let s = cat.queue_status("model-a")?;
    ensure!(
        s.workers == vec![w1.clone()],
        "after the first report: {:?}",
        s.workers
    );
    ensure!((s.workers[0].photos_per_second() - 2.5).abs() < 1e-12);

    let w1b = WorkerInfo {
        last_seen: "2025-01-01T00:05:00Z".into(),
        photos: 12,
        failed: 2,
        compute_seconds: 6.75,
        queue_seconds: 0.5,
        running_seconds: 8.0,
        ..w1.clone()
    };
    cat.report_worker(&w1b)?;
    let w2 = WorkerInfo {
        id: "host2-7-t1".into(),
        host: "host2".into(),
        device: "cuda:0".into(),
        started_at: "2025-01-01T00:02:00Z".into(),
        last_seen: "2025-01-01T00:03:00Z".into(),
        photos: 0,
        failed: 0,
        compute_seconds: 0.0,
        queue_seconds: 0.0,
        running_seconds: 0.0,
        ..w1.clone()
    };
    cat.report_worker(&w2)?;
    let wb = WorkerInfo {
        id: "host3-1-t0".into(),
        model: "model-b".into(),
        ..w1.clone()
    };
    cat.report_worker(&wb)?;

    let s = cat.queue_status("model-a")?;
    ensure!(
        s.workers == vec![w1b.clone(), w2.clone()],
        "model A's workers: {:?}",
        s.workers
    );
    ensure!((s.workers[0].photos_per_second() - 1.5).abs() < 1e-12);
    ensure!(s.workers[1].photos_per_second() == 0.0);
    ensure!(cat.queue_status("model-b")?.workers == vec![wb]);
    ensure!(int(&mut cat, "SELECT COUNT(*) FROM workers", &[])? == 3);
    ensure!(
        int(
            &mut cat,
            "SELECT photos FROM workers WHERE id = ?1",
            &["host1-100-t0".into()]
        )? == 12
    );
    // Reporting the same again changes nothing.
    cat.report_worker(&w1b)?;
    ensure!(cat.queue_status("model-a")?.workers == vec![w1b, w2]);
    ensure!(int(&mut cat, "SELECT COUNT(*) FROM workers", &[])? == 3);
    Ok(())
}

/// Scenario 9: The generation moves with embeddings of catalogue photos only.
fn generation(db: &dyn Db) -> Result<()> {
    let mut cat = ingested(db, &labelled(3))?;
    let g0 = cat.generation()?;
    ensure!(hashes(&cat.claim(&model_a(), "A", 10, LONG)?) == hashes_of(1..=3));
    ensure!(cat.generation()? == g0, "a claim moved the generation");

    // A complete writing nothing (a failure, a lost lease) leaves it.
    let c = cat.complete(
        &model_a(),
        "A",
        &BatchResult {
            done: vec![(hash(9), vec_of(9, 0.0))],
            failed: vec![(hash(3), "bad".into())],
        },
        3,
    )?;
    ensure!(c == completed(0, 1, 1, 0), "{c:?}");
    ensure!(
        cat.generation()? == g0,
        "a complete writing nothing moved it"
    );

    // Embeddings of catalogue photos: one bump per complete.
    let c = cat.complete(
        &model_a(),
        "A",
        &done((1..=2).map(|n| (n, vec_of(n, 0.0)))),
        3,
    )?;
    ensure!(c == completed(2, 0, 0, 0), "{c:?}");
    ensure!(cat.generation()? == g0 + 1, "complete of photos 1, 2");

    // An embedding of no photo's content (a query's, kept): no bump.
    ensure!(cat.put_embeddings(&model_a(), &[(hash(99), vec_of(99, 0.0))])? == 1);
    ensure!(cat.generation()? == g0 + 1, "put_embeddings of a non-photo");
    // Already stored: nothing written, no bump.
    ensure!(cat.put_embeddings(&model_a(), &[(hash(1), vec_of(1, 4.0))])? == 0);
    ensure!(
        cat.generation()? == g0 + 1,
        "put_embeddings of a stored one"
    );

    // Photo 3 (pending after its failure), stored outside the queue: bump.
    ensure!(cat.put_embeddings(&model_a(), &[(hash(3), vec_of(3, 0.0))])? == 1);
    ensure!(cat.generation()? == g0 + 2, "put_embeddings of photo 3");
    ensure!(states(&cat.queue_status("model-a")?) == (0, 0, 3, 0));
    Ok(())
}

/// Scenario 10: a photo whose worker dies each time it holds it (a decoder
/// that crashes the process) is parked after `max_attempts` expired leases,
/// not claimed forever; rows with fewer expired claims are claimed again.
fn abandoned_rows_park(db: &dyn Db) -> Result<()> {
    let mut cat = ingested(db, &labelled(2))?;
    let short = Duration::from_millis(300);
    let model = model_a();
    // Photo 1 held and abandoned twice, photo 2 once.
    ensure!(hashes(&cat.claim(&model, "A", 10, short)?) == hashes_of(1..=2));
    std::thread::sleep(Duration::from_millis(500));
    ensure!(
        cat.park_abandoned(&model, 2)? == 0,
        "one expired claim each: not yet"
    );
    ensure!(hashes(&cat.claim(&model, "B", 1, short)?) == hashes_of([1]));
    std::thread::sleep(Duration::from_millis(500));
    ensure!(
        cat.park_abandoned(&model, 2)? == 1,
        "photo 1: two expired claims"
    );
    let s = cat.queue_status("model-a")?;
    ensure!(states(&s) == (0, 1, 0, 1), "{s:?}");
    ensure!(
        s.failures.len() == 1
            && s.failures[0].0 == hash(1)
            && s.failures[0].2 == 2
            && s.failures[0].3.contains("stopped"),
        "{:?}",
        s.failures
    );
    // Photo 2's lease expired once: claimed again, not parked.
    let j = cat.claim(&model, "C", 10, LONG)?;
    ensure!(hashes(&j) == hashes_of([2]) && j[0].attempts == 2, "{j:?}");
    Ok(())
}
