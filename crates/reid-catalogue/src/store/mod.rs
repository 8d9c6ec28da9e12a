//! Storage behind one trait: a [`Store`] runs a unit of work as one
//! transaction of its engine, retrying it when the engine reports contention
//! (SQLite busy, PostgreSQL serialization failure or deadlock), and rolling
//! it back on any error. The work talks to the engine through [`Tx`] with a
//! small portable SQL: `?1`, `?2`, ... placeholders, `INSERT ... ON CONFLICT
//! DO NOTHING`, `RETURNING`, and the [`Value`] types below (no engine-specific
//! auto-increment, booleans or dates: ids come from the `counters` table and
//! times are RFC 3339 text).
//!
//! ```
//! use reid_catalogue::store::{self, Value, transact};
//! let dir = tempfile::tempdir()?;
//! let mut db = store::open(dir.path().join("c.db").to_str().unwrap())?;
//! transact(&mut *db, |tx| {
//!     tx.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT NOT NULL)", &[])?;
//!     tx.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", &[Value::from("a"), Value::Int(1)])?;
//!     Ok(())
//! })?;
//! let n = transact(&mut *db, |tx| tx.query_one_int("SELECT COUNT(*) FROM t", &[]))?;
//! assert_eq!(n, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod postgres;
pub mod sqlite;

use crate::error::{CatalogueError, Result};

/// A value bound to, or read from, a SQL statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer (`BIGINT`).
    Int(i64),
    /// A double (`DOUBLE PRECISION` / `REAL`).
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes (`BYTEA` / `BLOB`).
    Blob(Vec<u8>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        v.map_or(Value::Null, Value::Text)
    }
}

impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Value::Null, Value::from)
    }
}

impl Value {
    /// The integer, or an error naming `what`.
    pub fn int(&self, what: &str) -> Result<i64> {
        match self {
            Value::Int(v) => Ok(*v),
            other => Err(CatalogueError::Invalid(format!(
                "{what}: expected an integer, found {other:?}"
            ))),
        }
    }

    /// The text, or an error naming `what`.
    pub fn text(&self, what: &str) -> Result<String> {
        match self {
            Value::Text(v) => Ok(v.clone()),
            other => Err(CatalogueError::Invalid(format!(
                "{what}: expected text, found {other:?}"
            ))),
        }
    }

    /// The text, `None` for NULL, or an error naming `what`.
    pub fn opt_text(&self, what: &str) -> Result<Option<String>> {
        match self {
            Value::Null => Ok(None),
            v => v.text(what).map(Some),
        }
    }

    /// The integer, `None` for NULL, or an error naming `what`.
    pub fn opt_int(&self, what: &str) -> Result<Option<i64>> {
        match self {
            Value::Null => Ok(None),
            v => v.int(what).map(Some),
        }
    }

    /// The bytes, or an error naming `what`.
    pub fn blob(&self, what: &str) -> Result<&[u8]> {
        match self {
            Value::Blob(v) => Ok(v),
            other => Err(CatalogueError::Invalid(format!(
                "{what}: expected bytes, found {other:?}"
            ))),
        }
    }
}

/// One result row.
pub type Row = Vec<Value>;

/// The engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// SQLite, one file (embedded default).
    Sqlite,
    /// PostgreSQL, a server shared by a team.
    Postgres,
}

impl EngineKind {
    /// `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Sqlite => "sqlite",
            EngineKind::Postgres => "postgres",
        }
    }
}

/// How a transaction is isolated from concurrent ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// As if transactions ran one after another (the default).
    Serializable,
    /// Each statement sees what was committed before it started.
    ReadCommitted,
}

/// The statements of one transaction.
pub trait Tx {
    /// Runs a statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    /// Runs a query; returns every row.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;

    /// The first column of the only row of a query returning one integer.
    fn query_one_int(&mut self, sql: &str, params: &[Value]) -> Result<i64> {
        let rows = self.query(sql, params)?;
        match rows.first().and_then(|r| r.first()) {
            Some(v) => v.int(sql),
            None => Err(CatalogueError::Invalid(format!("no row from {sql}"))),
        }
    }
}

/// A catalogue's database.
pub trait Store: Send {
    /// Which engine.
    fn kind(&self) -> EngineKind;
    /// Where it is (a path, or the connection string without its password).
    fn location(&self) -> &str;
    /// Runs `work` as one transaction: committed when it returns `Ok`, rolled
    /// back when it returns an error; run again from the start (at most a
    /// bounded number of times) when the engine reports contention, so `work`
    /// must not have effects outside the transaction that a rerun would
    /// repeat.
    fn transaction(&mut self, work: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()>;
    /// [`Store::transaction`] at another isolation level, where the engine
    /// has one: the work queue claims rows with `FOR UPDATE SKIP LOCKED` at
    /// read committed, where serializable would make concurrent claims
    /// abort each other. SQLite runs every transaction alone.
    fn transaction_at(
        &mut self,
        isolation: Isolation,
        work: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Result<()> {
        let _ = isolation;
        self.transaction(work)
    }
    /// The engine's size on disk of this catalogue, in bytes, if known.
    fn size_bytes(&mut self) -> Result<Option<u64>>;
}

/// [`Store::transaction_at`] with a result.
pub fn transact_at<T>(
    store: &mut dyn Store,
    isolation: Isolation,
    mut work: impl FnMut(&mut dyn Tx) -> Result<T>,
) -> Result<T> {
    let mut out = None;
    store.transaction_at(isolation, &mut |tx| {
        out = Some(work(tx)?);
        Ok(())
    })?;
    out.ok_or_else(|| CatalogueError::Invalid("transaction finished without a result".into()))
}

/// [`Store::transaction`] with a result.
pub fn transact<T>(
    store: &mut dyn Store,
    mut work: impl FnMut(&mut dyn Tx) -> Result<T>,
) -> Result<T> {
    let mut out = None;
    store.transaction(&mut |tx| {
        out = Some(work(tx)?);
        Ok(())
    })?;
    out.ok_or_else(|| CatalogueError::Invalid("transaction finished without a result".into()))
}

/// Opens the catalogue database at `location`: `postgres://...` or
/// `postgresql://...` for PostgreSQL, `sqlite://PATH` or a plain path for
/// SQLite (the file is created when missing).
pub fn open(location: &str) -> Result<Box<dyn Store>> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        return Ok(Box::new(postgres::PgStore::connect(location)?));
    }
    let path = location.strip_prefix("sqlite://").unwrap_or(location);
    if path.is_empty() || path.contains("://") {
        return Err(CatalogueError::Location(location.to_string()));
    }
    Ok(Box::new(sqlite::SqliteStore::open(std::path::Path::new(
        path,
    ))?))
}

/// Sleeps before retry `attempt` (1-based): exponential from 5 ms, capped
/// at 500 ms, with jitter from the clock so that two contenders drift apart.
pub(crate) fn backoff(attempt: u32) {
    let base = 5u64.saturating_mul(1 << attempt.min(7)).min(500);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()) % (base + 1))
        .unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_millis(base / 2 + jitter / 2));
}

/// Most attempts of one transaction under contention.
pub(crate) const MAX_ATTEMPTS: u32 = 60;
