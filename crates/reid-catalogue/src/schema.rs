//! The catalogue's tables, one definition per engine (they differ only in
//! the byte type), and the schema version a catalogue records.
//!
//! - `meta`: key / value facts (schema version, catalogue uid, current model);
//! - `counters`: the id sequences (`individual`, `photo`, `change`) and the
//!   `generation` bumped by every change to photos, individuals or
//!   embeddings (the key of the search-index cache);
//! - `models`: each embedding model seen (id, description, dimension);
//! - `individuals`: id (`ind-000001`, never reused), dataset, name (unique
//!   within the dataset), the change that created it;
//! - `photos`: id, dataset, sha256 of the file, path, species, individual
//!   (NULL: kept but unassigned, e.g. rejected), the change that last
//!   touched it; unique by (dataset, content hash);
//! - `embeddings`: one vector per (content hash, model), little-endian f32;
//! - `changes` and `change_items`: the journal (who, when, why, what), from
//!   which `undo` reverts a change;
//! - `jobs` (version 2): the work queue of embeddings to compute, one row per
//!   (content hash, model): pending, leased (owner, lease end in the
//!   database's clock, ms), done, or parked after too many failures (with
//!   the last error); `workers`: each worker's progress.

use crate::store::EngineKind;

/// The schema version this build writes and reads (older ones are
/// upgraded when opened: [`upgrade_statements`]).
pub const SCHEMA_VERSION: i64 = 2;

/// The statements of version 2: the work queue, and photos indexed by
/// content hash.
fn queue_statements() -> Vec<String> {
    vec![
        "CREATE TABLE jobs (content_hash TEXT NOT NULL, model TEXT NOT NULL, \
         path TEXT NOT NULL, state TEXT NOT NULL, lease_owner TEXT, lease_until BIGINT, \
         attempts BIGINT NOT NULL, last_error TEXT, done_by TEXT, updated_at TEXT NOT NULL, \
         PRIMARY KEY (content_hash, model))"
            .into(),
        "CREATE INDEX jobs_state ON jobs (model, state)".into(),
        // Photos by content alone (embeddings and jobs join on it).
        "CREATE INDEX photos_hash ON photos (content_hash)".into(),
        "CREATE TABLE workers (id TEXT PRIMARY KEY, host TEXT NOT NULL, model TEXT NOT NULL, \
         device TEXT NOT NULL, started_at TEXT NOT NULL, last_seen TEXT NOT NULL, \
         photos BIGINT NOT NULL, failed BIGINT NOT NULL, compute_seconds DOUBLE PRECISION NOT NULL, \
         queue_seconds DOUBLE PRECISION NOT NULL, running_seconds DOUBLE PRECISION NOT NULL)"
            .into(),
    ]
}

/// The statements that bring a catalogue of schema `from` to
/// [`SCHEMA_VERSION`] (empty when it is current).
pub fn upgrade_statements(from: i64) -> Vec<String> {
    if from < 2 {
        queue_statements()
    } else {
        Vec::new()
    }
}

/// The statements creating an empty catalogue on `kind`.
pub fn create_statements(kind: EngineKind) -> Vec<String> {
    let bytes = match kind {
        EngineKind::Sqlite => "BLOB",
        EngineKind::Postgres => "BYTEA",
    };
    vec![
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)".into(),
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)".into(),
        "CREATE TABLE models (id TEXT PRIMARY KEY, description TEXT NOT NULL, \
         dim BIGINT NOT NULL, created_at TEXT NOT NULL)"
            .into(),
        "CREATE TABLE changes (id BIGINT PRIMARY KEY, command TEXT NOT NULL, \
         actor TEXT NOT NULL, at TEXT NOT NULL, reason TEXT, summary TEXT NOT NULL, \
         undoes BIGINT, undone_by BIGINT)"
            .into(),
        "CREATE TABLE individuals (id TEXT PRIMARY KEY, dataset TEXT NOT NULL, \
         name TEXT NOT NULL, created_by BIGINT NOT NULL REFERENCES changes(id), \
         UNIQUE (dataset, name))"
            .into(),
        "CREATE TABLE photos (id BIGINT PRIMARY KEY, dataset TEXT NOT NULL, \
         content_hash TEXT NOT NULL, path TEXT NOT NULL, species TEXT, \
         individual TEXT REFERENCES individuals(id), changed_by BIGINT NOT NULL REFERENCES changes(id), \
         UNIQUE (dataset, content_hash))"
            .into(),
        "CREATE INDEX photos_individual ON photos (individual)".into(),
        format!(
            "CREATE TABLE embeddings (content_hash TEXT NOT NULL, model TEXT NOT NULL \
             REFERENCES models(id), vector {bytes} NOT NULL, PRIMARY KEY (content_hash, model))"
        ),
        "CREATE TABLE change_items (change_id BIGINT NOT NULL REFERENCES changes(id), \
         seq BIGINT NOT NULL, kind TEXT NOT NULL, photo BIGINT, individual TEXT, \
         before_individual TEXT, before_change BIGINT, reviewer TEXT, note TEXT, \
         PRIMARY KEY (change_id, seq))"
            .into(),
    ]
    .into_iter()
    .chain(queue_statements())
    .collect()
}
