//! The work queue: embeddings to compute, claimed by any number of workers
//! on any number of machines through the catalogue's own database.
//!
//! One row per (content hash, model) in `jobs`. A worker claims a batch of
//! pending rows, or rows whose lease ran out, with a lease (`FOR UPDATE SKIP
//! LOCKED` on PostgreSQL, so concurrent claims never wait for or take each
//! other's rows; SQLite runs claims one at a time), computes, then writes
//! the results and releases the batch in one transaction. A result is only
//! written while its row is still leased to that worker (a worker that lost
//! its lease, because it stalled past it, writes nothing), and each
//! embedding has one row per (content hash, model), so nothing is written
//! twice, nor for another model than the one the row asks for. A worker
//! killed mid-batch leaves its rows leased until the lease ends; the next
//! claim takes them again. A photo that fails (an undecodable image) goes
//! back to pending with its error, and is parked after `max_attempts`.
//!
//! Lease times are the database's clock, so workers on machines whose
//! clocks disagree still agree on when a lease ends.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::catalogue::{
    Catalogue, Model, bump_generation, check_vector, now_rfc3339, vector_bytes,
};
use crate::error::{CatalogueError, Result};
use crate::store::{EngineKind, Isolation, Tx, Value, transact, transact_at};

/// One photo to embed, as claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// sha256 hex of the file.
    pub content_hash: String,
    /// The file, as the catalogue knows it.
    pub path: PathBuf,
    /// Claims so far, this one included.
    pub attempts: i64,
}

/// What a worker hands back for a claimed batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchResult {
    /// (content hash, embedding) computed.
    pub done: Vec<(String, Vec<f32>)>,
    /// (content hash, error) that failed.
    pub failed: Vec<(String, String)>,
}

/// What [`Catalogue::complete`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Completed {
    /// Embeddings written.
    pub written: usize,
    /// Results dropped: the row was no longer leased to this worker.
    pub lost_lease: usize,
    /// Failures sent back to pending.
    pub retried: usize,
    /// Failures parked (too many attempts).
    pub parked: usize,
}

/// Progress of the queue of one model.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct QueueStatus {
    /// The model.
    pub model: String,
    /// Rows by state: pending, leased, done, parked.
    pub states: BTreeMap<String, usize>,
    /// Leased rows whose lease has ended (their worker died or stalled).
    pub expired_leases: usize,
    /// Leased rows by the worker holding them.
    pub leased_by: BTreeMap<String, usize>,
    /// Parked and retried rows with their last error: (content hash,
    /// path, attempts, error).
    pub failures: Vec<(String, String, i64, String)>,
    /// The workers seen.
    pub workers: Vec<WorkerInfo>,
}

/// A worker's progress.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkerInfo {
    /// Its id (host, process, start).
    pub id: String,
    /// The machine.
    pub host: String,
    /// The model it computes.
    pub model: String,
    /// Where it computes (cpu, cuda:0).
    pub device: String,
    /// When it started.
    pub started_at: String,
    /// When it last reported.
    pub last_seen: String,
    /// Photos embedded.
    pub photos: i64,
    /// Photos that failed.
    pub failed: i64,
    /// Seconds computing (reading, decoding, the network).
    pub compute_seconds: f64,
    /// Seconds in the queue's transactions (claim, complete, report).
    pub queue_seconds: f64,
    /// Seconds since it started.
    pub running_seconds: f64,
}

impl WorkerInfo {
    /// Photos per second of running time.
    pub fn photos_per_second(&self) -> f64 {
        if self.running_seconds > 0.0 {
            self.photos as f64 / self.running_seconds
        } else {
            0.0
        }
    }
}

/// The database's clock, in milliseconds since the epoch.
fn db_now_ms(tx: &mut dyn Tx, kind: EngineKind) -> Result<i64> {
    let sql = match kind {
        EngineKind::Postgres => {
            "SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT)"
        }
        EngineKind::Sqlite => "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    };
    tx.query_one_int(sql, &[])
}

impl Catalogue {
    /// Queues every catalogue photo that has no embedding of `model` and
    /// no row in the queue yet; returns how many were queued. Run by
    /// `ingest`, and by any command that finds the model changed.
    pub fn enqueue_missing(&mut self, model: &str) -> Result<usize> {
        let now = now_rfc3339();
        let n = transact(self.store(), |tx| {
            let n = tx.execute(
                "INSERT INTO jobs (content_hash, model, path, state, attempts, updated_at) \
                 SELECT p.content_hash, ?1, MIN(p.path), 'pending', 0, ?2 FROM photos p \
                 WHERE NOT EXISTS (SELECT 1 FROM embeddings e \
                                   WHERE e.content_hash = p.content_hash AND e.model = ?1) \
                 GROUP BY p.content_hash \
                 ON CONFLICT (content_hash, model) DO NOTHING",
                &[model.into(), now.as_str().into()],
            )?;
            Ok(n as usize)
        })?;
        Ok(n)
    }

    /// Claims up to `n` photos to embed with `model` for `owner`, leased
    /// for `lease`: pending rows, and leased rows whose lease has ended.
    pub fn claim(
        &mut self,
        model: &Model,
        owner: &str,
        n: usize,
        lease: Duration,
    ) -> Result<Vec<Job>> {
        let kind = self.store().kind();
        let lock = match kind {
            EngineKind::Postgres => " FOR UPDATE SKIP LOCKED",
            EngineKind::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'leased', lease_owner = ?1, lease_until = ?2, \
             attempts = attempts + 1, updated_at = ?3 \
             WHERE (content_hash, model) IN (SELECT content_hash, model FROM jobs \
             WHERE model = ?4 AND (state = 'pending' OR (state = 'leased' AND lease_until < ?5)) \
             ORDER BY content_hash LIMIT ?6{lock}) \
             RETURNING content_hash, path, attempts"
        );
        let now = now_rfc3339();
        transact_at(self.store(), Isolation::ReadCommitted, |tx| {
            let t = db_now_ms(tx, kind)?;
            let rows = tx.query(
                &sql,
                &[
                    owner.into(),
                    Value::Int(t + lease.as_millis() as i64),
                    now.as_str().into(),
                    model.id.as_str().into(),
                    Value::Int(t),
                    Value::Int(n as i64),
                ],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(Job {
                        content_hash: r[0].text("content hash")?,
                        path: PathBuf::from(r[1].text("path")?),
                        attempts: r[2].int("attempts")?,
                    })
                })
                .collect()
        })
    }

    /// Parks the rows of `model` whose lease ran out after `max_attempts`
    /// claims: a photo whose worker dies every time it holds it (a decoder
    /// that crashes the process, say) would otherwise be claimed forever.
    /// Returns the rows parked. Workers call it before each claim.
    pub fn park_abandoned(&mut self, model: &Model, max_attempts: i64) -> Result<usize> {
        let kind = self.store().kind();
        let now = now_rfc3339();
        transact_at(self.store(), Isolation::ReadCommitted, |tx| {
            let t = db_now_ms(tx, kind)?;
            Ok(tx.execute(
                "UPDATE jobs SET state = 'parked', lease_owner = NULL, lease_until = NULL, \
                 last_error = ?4, updated_at = ?5 \
                 WHERE model = ?1 AND state = 'leased' AND lease_until < ?2 AND attempts >= ?3",
                &[
                    model.id.as_str().into(),
                    Value::Int(t),
                    Value::Int(max_attempts),
                    format!(
                        "its worker stopped (died or stalled past the lease) each of the \
                         {max_attempts} times it held it"
                    )
                    .into(),
                    now.as_str().into(),
                ],
            )? as usize)
        })
    }

    /// Extends `owner`'s leases on `model` by `lease` from now; returns the
    /// rows still leased to it.
    pub fn renew(&mut self, model: &Model, owner: &str, lease: Duration) -> Result<usize> {
        let kind = self.store().kind();
        transact_at(self.store(), Isolation::ReadCommitted, |tx| {
            let t = db_now_ms(tx, kind)?;
            Ok(tx.execute(
                "UPDATE jobs SET lease_until = ?1 WHERE model = ?2 AND state = 'leased' \
                 AND lease_owner = ?3",
                &[
                    Value::Int(t + lease.as_millis() as i64),
                    model.id.as_str().into(),
                    owner.into(),
                ],
            )? as usize)
        })
    }

    /// Writes a claimed batch's results and releases it, in one
    /// transaction: each embedding only while its row is still leased to
    /// `owner` (else dropped: `lost_lease`); failures back to pending, or
    /// parked once they were tried `max_attempts` times.
    pub fn complete(
        &mut self,
        model: &Model,
        owner: &str,
        result: &BatchResult,
        max_attempts: i64,
    ) -> Result<Completed> {
        for (h, v) in &result.done {
            check_vector(v, model.dim, h)?;
        }
        let now = now_rfc3339();
        transact_at(self.store(), Isolation::ReadCommitted, |tx| {
            let mut c = Completed::default();
            for (h, v) in &result.done {
                // Lock the row: a concurrent claim of an expired lease waits
                // for this transaction, then finds the row done.
                let held = tx.query(
                    "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, \
                     done_by = ?3, updated_at = ?4, last_error = NULL \
                     WHERE content_hash = ?1 AND model = ?2 AND state = 'leased' AND lease_owner = ?3 \
                     RETURNING content_hash",
                    &[
                        h.as_str().into(),
                        model.id.as_str().into(),
                        owner.into(),
                        now.as_str().into(),
                    ],
                )?;
                if held.is_empty() {
                    c.lost_lease += 1;
                    continue;
                }
                c.written += tx.execute(
                    "INSERT INTO embeddings (content_hash, model, vector) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (content_hash, model) DO NOTHING",
                    &[
                        h.as_str().into(),
                        model.id.as_str().into(),
                        Value::Blob(vector_bytes(v)),
                    ],
                )? as usize;
            }
            for (h, e) in &result.failed {
                let rows = tx.query(
                    "UPDATE jobs SET state = CASE WHEN attempts >= ?5 THEN 'parked' ELSE 'pending' END, \
                     lease_owner = NULL, lease_until = NULL, last_error = ?4, updated_at = ?6 \
                     WHERE content_hash = ?1 AND model = ?2 AND state = 'leased' AND lease_owner = ?3 \
                     RETURNING state",
                    &[
                        h.as_str().into(),
                        model.id.as_str().into(),
                        owner.into(),
                        e.as_str().into(),
                        Value::Int(max_attempts),
                        now.as_str().into(),
                    ],
                )?;
                match rows.first().map(|r| r[0].text("state")).transpose()? {
                    Some(s) if s == "parked" => c.parked += 1,
                    Some(_) => c.retried += 1,
                    None => c.lost_lease += 1,
                }
            }
            if c.written > 0 {
                bump_generation(tx)?;
            }
            Ok(c)
        })
    }

    /// Records a worker's progress (insert or update).
    pub fn report_worker(&mut self, w: &WorkerInfo) -> Result<()> {
        transact_at(self.store(), Isolation::ReadCommitted, |tx| {
            let params = [
                w.id.as_str().into(),
                w.host.as_str().into(),
                w.model.as_str().into(),
                w.device.as_str().into(),
                w.started_at.as_str().into(),
                w.last_seen.as_str().into(),
                Value::Int(w.photos),
                Value::Int(w.failed),
                Value::Real(w.compute_seconds),
                Value::Real(w.queue_seconds),
                Value::Real(w.running_seconds),
            ];
            let n = tx.execute(
                "UPDATE workers SET host = ?2, model = ?3, device = ?4, started_at = ?5, \
                 last_seen = ?6, photos = ?7, failed = ?8, compute_seconds = ?9, \
                 queue_seconds = ?10, running_seconds = ?11 WHERE id = ?1",
                &params,
            )?;
            if n == 0 {
                tx.execute(
                    "INSERT INTO workers (id, host, model, device, started_at, last_seen, photos, \
                     failed, compute_seconds, queue_seconds, running_seconds) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    &params,
                )?;
            }
            Ok(())
        })
    }

    /// The queue's progress for `model`, with the workers seen.
    pub fn queue_status(&mut self, model: &str) -> Result<QueueStatus> {
        let kind = self.store().kind();
        transact(self.store(), |tx| {
            let mut s = QueueStatus {
                model: model.to_string(),
                ..QueueStatus::default()
            };
            for st in ["pending", "leased", "done", "parked"] {
                s.states.insert(st.into(), 0);
            }
            for r in tx.query(
                "SELECT state, COUNT(*) FROM jobs WHERE model = ?1 GROUP BY state",
                &[model.into()],
            )? {
                s.states
                    .insert(r[0].text("state")?, r[1].int("count")? as usize);
            }
            let t = db_now_ms(tx, kind)?;
            s.expired_leases = tx.query_one_int(
                "SELECT COUNT(*) FROM jobs WHERE model = ?1 AND state = 'leased' AND lease_until < ?2",
                &[model.into(), Value::Int(t)],
            )? as usize;
            for r in tx.query(
                "SELECT lease_owner, COUNT(*) FROM jobs WHERE model = ?1 AND state = 'leased' \
                 GROUP BY lease_owner",
                &[model.into()],
            )? {
                s.leased_by.insert(
                    r[0].opt_text("owner")?.unwrap_or_default(),
                    r[1].int("count")? as usize,
                );
            }
            for r in tx.query(
                "SELECT content_hash, path, attempts, last_error FROM jobs \
                 WHERE model = ?1 AND last_error IS NOT NULL AND state <> 'done' \
                 ORDER BY state, content_hash",
                &[model.into()],
            )? {
                s.failures.push((
                    r[0].text("hash")?,
                    r[1].text("path")?,
                    r[2].int("attempts")?,
                    r[3].text("error")?,
                ));
            }
            for r in tx.query(
                "SELECT id, host, model, device, started_at, last_seen, photos, failed, \
                 compute_seconds, queue_seconds, running_seconds FROM workers WHERE model = ?1 \
                 ORDER BY started_at, id",
                &[model.into()],
            )? {
                let real = |v: &Value, what: &str| match v {
                    Value::Real(x) => Ok(*x),
                    Value::Int(x) => Ok(*x as f64),
                    other => Err(CatalogueError::Invalid(format!(
                        "{what}: expected a number, found {other:?}"
                    ))),
                };
                s.workers.push(WorkerInfo {
                    id: r[0].text("id")?,
                    host: r[1].text("host")?,
                    model: r[2].text("model")?,
                    device: r[3].text("device")?,
                    started_at: r[4].text("started_at")?,
                    last_seen: r[5].text("last_seen")?,
                    photos: r[6].int("photos")?,
                    failed: r[7].int("failed")?,
                    compute_seconds: real(&r[8], "compute_seconds")?,
                    queue_seconds: real(&r[9], "queue_seconds")?,
                    running_seconds: real(&r[10], "running_seconds")?,
                });
            }
            Ok(s)
        })
    }
}
