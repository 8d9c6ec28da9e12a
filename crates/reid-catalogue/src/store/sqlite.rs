//! The SQLite engine: one file in WAL mode, every unit of work one
//! `BEGIN IMMEDIATE` transaction (the write lock is taken up front, so two
//! writers never both read and then fail to upgrade), waiting up to a
//! busy timeout for another process's lock and retrying with backoff after
//! that. `synchronous = FULL`: a committed command survives a power cut.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, ToSql};

use super::{EngineKind, MAX_ATTEMPTS, Row, Store, Tx, Value, backoff};
use crate::error::{CatalogueError, Result};

/// A SQLite catalogue file.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    location: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn err(e: rusqlite::Error) -> CatalogueError {
    CatalogueError::Engine {
        engine: "sqlite",
        message: e.to_string(),
    }
}

fn is_busy(e: &CatalogueError) -> bool {
    matches!(e, CatalogueError::Engine { engine: "sqlite", message } if message.contains("database is locked") || message.contains("database table is locked") || message.contains("busy"))
}

fn busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

impl SqliteStore {
    /// Opens (creating when missing) the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(CatalogueError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("folder {} does not exist", parent.display()),
                ),
            });
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        // journal_mode needs the lock briefly: retry it like any work.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
                .and_then(|_| {
                    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
                });
            match r {
                Ok(()) => break,
                Err(e) if busy(&e) && attempt < MAX_ATTEMPTS => backoff(attempt),
                Err(e) => {
                    return Err(CatalogueError::Engine {
                        engine: "sqlite",
                        message: format!("{}: {e}", path.display()),
                    });
                }
            }
        }
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            location: path.display().to_string(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

struct Param<'a>(&'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Real(v) => ToSqlOutput::Borrowed(ValueRef::Real(*v)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

struct SqliteTx<'c> {
    conn: &'c Connection,
}

fn bind(params: &[Value]) -> Vec<Param<'_>> {
    params.iter().map(Param).collect()
}

impl Tx for SqliteTx<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let p = bind(params);
        let mut stmt = self.conn.prepare_cached(sql).map_err(err)?;
        let n = stmt
            .execute(rusqlite::params_from_iter(p.iter()))
            .map_err(err)?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let p = bind(params);
        let mut stmt = self.conn.prepare_cached(sql).map_err(err)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(p.iter()))
            .map_err(err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(err)? {
            // Counted per row: a statement re-prepared after a schema
            // change may have other columns than before its first step.
            let cols = r.as_ref().column_count();
            let mut row = Vec::with_capacity(cols);
            for i in 0..cols {
                row.push(match r.get_ref(i).map_err(err)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Real(v),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            out.push(row);
        }
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn kind(&self) -> EngineKind {
        EngineKind::Sqlite
    }

    fn location(&self) -> &str {
        &self.location
    }

    fn transaction(&mut self, work: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = (|| {
                self.conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
                let mut tx = SqliteTx { conn: &self.conn };
                match work(&mut tx) {
                    Ok(()) => self.conn.execute_batch("COMMIT").map_err(err),
                    Err(e) => Err(e),
                }
            })();
            match r {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if !self.conn.is_autocommit() {
                        // Best effort: a failed rollback leaves the
                        // connection to be closed, which rolls back too.
                        let _ = self.conn.execute_batch("ROLLBACK");
                    }
                    if is_busy(&e) {
                        if attempt >= MAX_ATTEMPTS {
                            return Err(CatalogueError::Contention {
                                engine: "sqlite",
                                attempts: attempt,
                                message: e.to_string(),
                            });
                        }
                        backoff(attempt);
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    fn size_bytes(&mut self) -> Result<Option<u64>> {
        let mut total = 0u64;
        for suffix in ["", "-wal"] {
            let mut p = self.path.as_os_str().to_owned();
            p.push(suffix);
            if let Ok(m) = std::fs::metadata(PathBuf::from(p)) {
                total += m.len();
            }
        }
        Ok(Some(total))
    }
}
