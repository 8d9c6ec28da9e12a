//! The same checks of the [`Store`] contract on both engines: SQLite in a
//! temporary folder, PostgreSQL on a throwaway server (one per test binary,
//! a database per test). The PostgreSQL tests fail, with what to install,
//! when no server can be started.

use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use reid_catalogue::CatalogueError;
use reid_catalogue::store::{self, EngineKind, Store, Value, transact};
use reid_catalogue::testing::ThrowawayPostgres;

/// A database each test opens connections to.
trait Db: Sync {
    fn open(&self) -> Result<Box<dyn Store>>;
    fn kind(&self) -> EngineKind;
}

struct Sqlite {
    _dir: tempfile::TempDir,
    path: String,
}

impl Sqlite {
    fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = dir
            .path()
            .join("catalogue.db")
            .to_str()
            .context("temporary path is not UTF-8")?
            .to_string();
        Ok(Sqlite { _dir: dir, path })
    }
}

impl Db for Sqlite {
    fn open(&self) -> Result<Box<dyn Store>> {
        Ok(store::open(&self.path)?)
    }
    fn kind(&self) -> EngineKind {
        EngineKind::Sqlite
    }
}

struct Pg {
    server: Arc<ThrowawayPostgres>,
    url: String,
}

impl Pg {
    fn new(name: &str) -> Result<Self> {
        let server = ThrowawayPostgres::shared()
            .map_err(|e| anyhow::anyhow!("cannot start a throwaway PostgreSQL server: {e}"))?;
        let url = server.fresh_database(name).map_err(anyhow::Error::msg)?;
        Ok(Pg { server, url })
    }
}

impl Db for Pg {
    fn open(&self) -> Result<Box<dyn Store>> {
        Ok(store::open(&self.url)?)
    }
    fn kind(&self) -> EngineKind {
        EngineKind::Postgres
    }
}

/// A test of `check` per engine: `check::sqlite` and `check::postgres`.
macro_rules! on_both_engines {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            #[test]
            fn sqlite() -> anyhow::Result<()> {
                super::$check(&super::Sqlite::new()?)
            }

            #[test]
            fn postgres() -> anyhow::Result<()> {
                super::$check(&super::Pg::new(stringify!($check))?)
            }
        }
    )*};
}

on_both_engines!(
    value_round_trip,
    aggregates,
    placeholders,
    rollback_on_error,
    commit_failure_rolls_back,
    returning,
    on_conflict,
    contention_counter,
    contention_read_modify_write,
    size_bytes,
);

fn value_round_trip(db: &dyn Db) -> Result<()> {
    let mut s = db.open()?;
    ensure!(s.kind() == db.kind());
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let rows = vec![
        vec![
            Value::Int(1),
            Value::Int(i64::MIN),
            Value::Text(String::new()),
            Value::Blob(Vec::new()),
            Value::Real(0.0),
        ],
        vec![
            Value::Int(2),
            Value::Int(i64::MAX),
            Value::from("ünïcødé 🦊 日本語 \u{200d}"),
            Value::Blob(vec![0, 1, 0, 255]),
            Value::Real(-1.5e-300),
        ],
        vec![
            Value::Int(3),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ],
        vec![
            Value::Int(4),
            Value::Int(0),
            Value::from("it's \"quoted\" ?1 $1 \\ 'x'\n\ttab"),
            Value::Blob(all_bytes.clone()),
            Value::Real(f64::MAX),
        ],
    ];
    transact(&mut *s, |tx| {
        tx.execute(
            "CREATE TABLE v (id BIGINT PRIMARY KEY, i BIGINT, t TEXT, b BYTEA, r DOUBLE PRECISION)",
            &[],
        )?;
        for r in &rows {
            let n = tx.execute(
                "INSERT INTO v (id, i, t, b, r) VALUES (?1, ?2, ?3, ?4, ?5)",
                r,
            )?;
            assert_eq!(n, 1);
        }
        Ok(())
    })?;
    let back = transact(&mut *s, |tx| {
        tx.query("SELECT id, i, t, b, r FROM v ORDER BY id", &[])
    })?;
    assert_eq!(back, rows);
    // Parameters compare as they were written.
    let found =
        transact(&mut *s, |tx| {
            Ok((
            tx.query_one_int("SELECT id FROM v WHERE t = ?1", &[rows[1][2].clone()])?,
            tx.query_one_int("SELECT id FROM v WHERE b = ?1", &[Value::Blob(all_bytes.clone())])?,
            tx.query_one_int("SELECT id FROM v WHERE r = ?1", &[Value::Real(-1.5e-300)])?,
            tx.query_one_int("SELECT id FROM v WHERE i = ?1", &[Value::Int(i64::MIN)])?,
            tx.query_one_int(
                "SELECT COUNT(*) FROM v WHERE i IS NULL AND t IS NULL AND b IS NULL AND r IS NULL",
                &[],
            )?,
        ))
        })?;
    assert_eq!(found, (2, 4, 2, 1, 1));
    Ok(())
}

fn aggregates(db: &dyn Db) -> Result<()> {
    let mut s = db.open()?;
    let row = transact(&mut *s, |tx| {
        tx.execute(
            "CREATE TABLE a (id BIGINT PRIMARY KEY, x DOUBLE PRECISION)",
            &[],
        )?;
        for id in 1..=4 {
            tx.execute(
                "INSERT INTO a (id, x) VALUES (?1, ?2)",
                &[Value::Int(id), Value::Real(id as f64 / 4.0)],
            )?;
        }
        tx.query(
            "SELECT COUNT(*), SUM(id), AVG(id), SUM(x), MAX(id), MIN(x) FROM a",
            &[],
        )
    })?;
    assert_eq!(
        row,
        vec![vec![
            Value::Int(4),
            Value::Int(10),
            Value::Real(2.5),
            Value::Real(2.5),
            Value::Int(4),
            Value::Real(0.25),
        ]]
    );
    // Aggregates of no rows are NULL (COUNT is 0).
    let empty = transact(&mut *s, |tx| {
        tx.query(
            "SELECT COUNT(*), SUM(id), MAX(x) FROM a WHERE id > ?1",
            &[Value::Int(99)],
        )
    })?;
    assert_eq!(empty, vec![vec![Value::Int(0), Value::Null, Value::Null]]);
    Ok(())
}

fn placeholders(db: &dyn Db) -> Result<()> {
    let mut s = db.open()?;
    let rows = transact(&mut *s, |tx| {
        tx.execute("CREATE TABLE p (a TEXT, b BIGINT, c TEXT)", &[])?;
        // Out of order and repeated.
        tx.execute(
            "INSERT INTO p (a, b, c) VALUES (?2, ?1, ?2)",
            &[Value::Int(7), Value::from("x")],
        )?;
        tx.execute(
            "INSERT INTO p (a, b, c) VALUES ('?1', ?1, '?2 -- ?1')",
            &[Value::Int(8)],
        )?;
        tx.query(
            "SELECT a, '?1', b, c FROM p WHERE c = ?2 AND b = ?1 AND a = ?2",
            &[Value::Int(7), Value::from("x")],
        )
    })?;
    assert_eq!(
        rows,
        vec![vec![
            Value::from("x"),
            Value::from("?1"),
            Value::Int(7),
            Value::from("x"),
        ]]
    );
    let literal = transact(&mut *s, |tx| {
        tx.query(
            "SELECT a, b, c FROM p WHERE a = '?1' AND b = ?1",
            &[Value::Int(8)],
        )
    })?;
    assert_eq!(
        literal,
        vec![vec![
            Value::from("?1"),
            Value::Int(8),
            Value::from("?2 -- ?1")
        ]]
    );
    Ok(())
}

fn count(s: &mut dyn Store, table: &str) -> Result<i64> {
    Ok(transact(s, |tx| {
        tx.query_one_int(&format!("SELECT COUNT(*) FROM {table}"), &[])
    })?)
}

fn rollback_on_error(db: &dyn Db) -> Result<()> {
    let mut s = db.open()?;
    transact(&mut *s, |tx| {
        tx.execute("CREATE TABLE r (k TEXT PRIMARY KEY)", &[])?;
        Ok(())
    })?;
    // The work's own error.
    let mut runs = 0;
    let r = transact(&mut *s, |tx| {
        runs += 1;
        tx.execute("INSERT INTO r (k) VALUES (?1)", &[Value::from("a")])?;
        tx.execute("INSERT INTO r (k) VALUES (?1)", &[Value::from("b")])?;
        tx.execute("CREATE TABLE gone (x BIGINT)", &[])?;
        Err::<(), _>(CatalogueError::Invalid("stop".into()))
    });
    assert!(
        matches!(&r, Err(CatalogueError::Invalid(m)) if m == "stop"),
        "{r:?}"
    );
    assert_eq!(runs, 1, "an error of the work is not retried");
    assert_eq!(count(&mut *s, "r")?, 0);
    let gone = transact(&mut *s, |tx| tx.query("SELECT x FROM gone", &[]));
    assert!(
        gone.is_err(),
        "the table created in the rolled-back transaction exists"
    );
    // A statement's error (a duplicate key).
    let r = transact(&mut *s, |tx| {
        tx.execute("INSERT INTO r (k) VALUES (?1)", &[Value::from("x")])?;
        tx.execute("INSERT INTO r (k) VALUES (?1)", &[Value::from("x")])?;
        Ok(())
    });
    assert!(
        matches!(&r, Err(CatalogueError::Engine { engine, .. }) if *engine == db.kind().name()),
        "{r:?}"
    );
    assert_eq!(count(&mut *s, "r")?, 0);
    // The connection is usable afterwards.
    transact(&mut *s, |tx| {
        tx.execute("INSERT INTO r (k) VALUES (?1)", &[Value::from("y")])
    })?;
    assert_eq!(count(&mut *s, "r")?, 1);
    Ok(())
}

fn commit_failure_rolls_back(db: &dyn Db) -> Result<()> {
    let mut s = db.open()?;
    transact(&mut *s, |tx| {
        tx.execute("CREATE TABLE parent (id BIGINT PRIMARY KEY)", &[])?;
        tx.execute(
            "CREATE TABLE child (id BIGINT PRIMARY KEY, parent BIGINT NOT NULL \
             REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
            &[],
        )?;
        Ok(())
    })?;
    // Every statement succeeds; the deferred foreign key fails the COMMIT.
    let r = transact(&mut *s, |tx| {
        tx.execute("INSERT INTO parent (id) VALUES (1)", &[])?;
        tx.execute("INSERT INTO child (id, parent) VALUES (1, 99)", &[])?;
        Ok(())
    });
    assert!(
        matches!(&r, Err(CatalogueError::Engine { .. })),
        "COMMIT should fail: {r:?}"
    );
    assert_eq!(count(&mut *s, "parent")?, 0);
    assert_eq!(count(&mut *s, "child")?, 0);
    transact(&mut *s, |tx| {
        tx.execute("INSERT INTO parent (id) VALUES (1)", &[])?;
        tx.execute("INSERT INTO child (id, parent) VALUES (1, 1)", &[])
    })?;
    assert_eq!(count(&mut *s, "child")?, 1);
    Ok(())
}

fn returning(db: &dyn Db) -> Result<()> {
    let mut s = db.open()?;
    let (inserted, updated, deleted, left) = transact(&mut *s, |tx| {
        tx.execute(
            "CREATE TABLE ret (id BIGINT PRIMARY KEY, name TEXT NOT NULL)",
            &[],
        )?;
        let inserted = tx.query(
            "INSERT INTO ret (id, name) VALUES (?1, ?2), (?3, ?4) RETURNING id, name",
            &[
                Value::Int(1),
                Value::from("a"),
                Value::Int(2),
                Value::from("b"),
            ],
        )?;
        let updated = tx.query(
            "UPDATE ret SET name = name || ?1 WHERE id = ?2 RETURNING name",
            &[Value::from("!"), Value::Int(2)],
        )?;
        let deleted = tx.query(
            "DELETE FROM ret WHERE id = ?1 RETURNING id",
            &[Value::Int(1)],
        )?;
        let left = tx.query("SELECT id, name FROM ret", &[])?;
        Ok((inserted, updated, deleted, left))
    })?;
    let mut inserted = inserted;
    inserted.sort_by_key(|r| r.first().and_then(|v| v.int("id").ok()));
    assert_eq!(
        inserted,
        vec![
            vec![Value::Int(1), Value::from("a")],
            vec![Value::Int(2), Value::from("b")],
        ]
    );
    assert_eq!(updated, vec![vec![Value::from("b!")]]);
    assert_eq!(deleted, vec![vec![Value::Int(1)]]);
    assert_eq!(left, vec![vec![Value::Int(2), Value::from("b!")]]);
    Ok(())
}

fn on_conflict(db: &dyn Db) -> Result<()> {
    let mut s = db.open()?;
    let (first, second, returned, upserted, v) = transact(&mut *s, |tx| {
        tx.execute(
            "CREATE TABLE oc (k TEXT PRIMARY KEY, v BIGINT NOT NULL)",
            &[],
        )?;
        let first = tx.execute(
            "INSERT INTO oc (k, v) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            &[Value::from("a"), Value::Int(1)],
        )?;
        let second = tx.execute(
            "INSERT INTO oc (k, v) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            &[Value::from("a"), Value::Int(2)],
        )?;
        let returned = tx.query(
            "INSERT INTO oc (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO NOTHING RETURNING k",
            &[Value::from("a"), Value::Int(3)],
        )?;
        let upserted = tx.query(
            "INSERT INTO oc (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = oc.v + excluded.v RETURNING v",
            &[Value::from("a"), Value::Int(10)],
        )?;
        let v = tx.query_one_int("SELECT v FROM oc WHERE k = ?1", &[Value::from("a")])?;
        Ok((first, second, returned, upserted, v))
    })?;
    assert_eq!((first, second), (1, 0));
    assert!(returned.is_empty(), "{returned:?}");
    assert_eq!(upserted, vec![vec![Value::Int(11)]]);
    assert_eq!(v, 11);
    Ok(())
}

const INCREMENTS: i64 = 200;

fn counter_table(db: &dyn Db) -> Result<()> {
    let mut s = db.open()?;
    transact(&mut *s, |tx| {
        tx.execute(
            "CREATE TABLE c (k TEXT PRIMARY KEY, v BIGINT NOT NULL)",
            &[],
        )?;
        tx.execute("INSERT INTO c (k, v) VALUES (?1, 0)", &[Value::from("n")])
    })?;
    Ok(())
}

/// Two threads, each with its own connection, each running `INCREMENTS`
/// transactions of `step`; every value the counter took must have been seen
/// exactly once.
fn race(db: &dyn Db, step: fn(&mut dyn Store) -> reid_catalogue::Result<i64>) -> Result<()> {
    counter_table(db)?;
    let seen: Vec<Vec<i64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(move || -> Result<Vec<i64>> {
                    let mut s = db.open()?;
                    let mut seen = Vec::new();
                    for _ in 0..INCREMENTS {
                        seen.push(step(&mut *s)?);
                    }
                    Ok(seen)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a worker panicked"))
                    .and_then(|r| r)
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let mut s = db.open()?;
    let v = transact(&mut *s, |tx| {
        tx.query_one_int("SELECT v FROM c WHERE k = ?1", &[Value::from("n")])
    })?;
    assert_eq!(v, 2 * INCREMENTS);
    for thread in &seen {
        assert!(thread.windows(2).all(|w| w[0] < w[1]), "{thread:?}");
    }
    let mut all: Vec<i64> = seen.concat();
    all.sort_unstable();
    assert_eq!(all, (1..=2 * INCREMENTS).collect::<Vec<_>>());
    Ok(())
}

fn contention_counter(db: &dyn Db) -> Result<()> {
    race(db, |s| {
        transact(s, |tx| {
            let rows = tx.query(
                "UPDATE c SET v = v + 1 WHERE k = ?1 RETURNING v",
                &[Value::from("n")],
            )?;
            rows.first().and_then(|r| r.first()).map_or_else(
                || Err(CatalogueError::Invalid("no row".into())),
                |v| v.int("v"),
            )
        })
    })
}

/// The increment done by the program: read, then write what it computed.
/// Only a serializable transaction (or SQLite's single writer) keeps every
/// increment.
fn contention_read_modify_write(db: &dyn Db) -> Result<()> {
    race(db, |s| {
        transact(s, |tx| {
            let v = tx.query_one_int("SELECT v FROM c WHERE k = ?1", &[Value::from("n")])?;
            tx.execute(
                "UPDATE c SET v = ?2 WHERE k = ?1",
                &[Value::from("n"), Value::Int(v + 1)],
            )?;
            Ok(v + 1)
        })
    })
}

fn size_bytes(db: &dyn Db) -> Result<()> {
    let mut s = db.open()?;
    transact(&mut *s, |tx| {
        tx.execute("CREATE TABLE big (b BYTEA)", &[])?;
        tx.execute(
            "INSERT INTO big (b) VALUES (?1)",
            &[Value::Blob(vec![7; 100_000])],
        )
    })?;
    let size = s.size_bytes()?;
    assert!(size.is_some_and(|n| n > 0), "{size:?}");
    Ok(())
}

// PostgreSQL only.

fn pg_store(name: &str) -> Result<(Pg, Box<dyn Store>)> {
    let db = Pg::new(name)?;
    let s = db.open()?;
    Ok((db, s))
}

/// A conflicting commit from another connection while the work runs: the
/// first attempt fails with a serialization failure and the work runs again.
#[test]
fn postgres_retries_serialization_failure() -> Result<()> {
    let (db, mut s) = pg_store("retries_serialization_failure")?;
    counter_table(&db)?;
    let mut other = db.open()?;
    let mut runs = 0;
    let v = transact(&mut *s, |tx| {
        runs += 1;
        // Takes the snapshot.
        let before = tx.query_one_int("SELECT v FROM c WHERE k = ?1", &[Value::from("n")])?;
        if runs == 1 {
            transact(&mut *other, |tx2| {
                tx2.execute("UPDATE c SET v = v + 100 WHERE k = ?1", &[Value::from("n")])
            })?;
        }
        let after = tx.query_one_int(
            "UPDATE c SET v = v + 1 WHERE k = ?1 RETURNING v",
            &[Value::from("n")],
        )?;
        Ok((before, after))
    })?;
    assert_eq!(runs, 2);
    assert_eq!(v, (100, 101));
    Ok(())
}

/// Work that carries on after a failed statement and returns `Ok`: the
/// server has aborted the transaction, so the store must report an error
/// rather than a commit.
#[test]
fn postgres_swallowed_statement_error_is_an_error() -> Result<()> {
    let (_db, mut s) = pg_store("swallowed_statement_error")?;
    transact(&mut *s, |tx| {
        tx.execute("CREATE TABLE w (k TEXT PRIMARY KEY)", &[])
    })?;
    let r = transact(&mut *s, |tx| {
        tx.execute("INSERT INTO w (k) VALUES ('a')", &[])?;
        let _ignored = tx.execute("INSERT INTO w (k) VALUES ('a')", &[]);
        Ok(())
    });
    assert!(
        matches!(&r, Err(CatalogueError::Engine { message, .. }) if message.contains("23505")),
        "{r:?}"
    );
    assert_eq!(count(&mut *s, "w")?, 0);
    // A savepoint the work rolls back to recovers the transaction.
    transact(&mut *s, |tx| {
        tx.execute("INSERT INTO w (k) VALUES ('a')", &[])?;
        tx.execute("SAVEPOINT s", &[])?;
        let dup = tx.execute("INSERT INTO w (k) VALUES ('a')", &[]);
        assert!(dup.is_err());
        tx.execute("ROLLBACK TO SAVEPOINT s", &[])?;
        tx.execute("INSERT INTO w (k) VALUES ('b')", &[])
    })?;
    assert_eq!(count(&mut *s, "w")?, 2);
    Ok(())
}

/// The server ends the session: the next transaction reconnects.
#[test]
fn postgres_reconnects_after_the_session_ends() -> Result<()> {
    let (db, mut s) = pg_store("reconnects")?;
    transact(&mut *s, |tx| tx.execute("CREATE TABLE k (x BIGINT)", &[]))?;
    let mut killer = db.open()?;
    let killed = transact(&mut *killer, |tx| {
        tx.query_one_int(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
            &[],
        )
    })?;
    assert_eq!(killed, 1);
    std::thread::sleep(std::time::Duration::from_millis(100));
    transact(&mut *s, |tx| {
        tx.execute("INSERT INTO k (x) VALUES (1)", &[])
    })?;
    assert_eq!(count(&mut *s, "k")?, 1);
    Ok(())
}

/// Wrong parameter types and unreadable column types are errors that name
/// the types; the password is not shown in the location.
#[test]
fn postgres_type_errors_and_location() -> Result<()> {
    let (db, mut s) = pg_store("type_errors")?;
    transact(&mut *s, |tx| {
        tx.execute("CREATE TABLE t (n BIGINT, s SMALLINT)", &[])
    })?;
    let r = transact(&mut *s, |tx| {
        tx.execute("INSERT INTO t (n) VALUES (?1)", &[Value::from("seven")])
    });
    let m = format!("{:?}", r.err());
    ensure!(m.contains("cannot bind text") && m.contains("int8"), "{m}");
    let r = transact(&mut *s, |tx| {
        tx.execute("INSERT INTO t (s) VALUES (?1)", &[Value::Int(1 << 20)])
    });
    let m = format!("{:?}", r.err());
    ensure!(m.contains("does not fit") && m.contains("int2"), "{m}");
    let r = transact(&mut *s, |tx| tx.query("SELECT now()", &[]));
    let m = format!("{:?}", r.err());
    ensure!(m.contains("timestamptz"), "{m}");
    // Small integers, booleans, numerics and untyped NULL read fine.
    let row = transact(&mut *s, |tx| {
        tx.query(
            "SELECT 1, CAST(2 AS SMALLINT), 1 = 1, 1.25, CAST(NULL AS TEXT), CAST(?1 AS BIGINT) IS NULL",
            &[Value::Null],
        )
    })?;
    assert_eq!(
        row,
        vec![vec![
            Value::Int(1),
            Value::Int(2),
            Value::Int(1),
            Value::Real(1.25),
            Value::Null,
            Value::Int(1),
        ]]
    );
    let with_password = db.url.replace("reid@", "reid:hunter2@");
    let s2 = store::open(&with_password)?;
    ensure!(!s2.location().contains("hunter2"), "{}", s2.location());
    ensure!(s2.location().contains("reid:***@"), "{}", s2.location());
    ensure!(db.server.url().starts_with("postgres://reid@127.0.0.1:"));
    Ok(())
}

/// A statement run before and after its table changed: the kept prepared
/// statement fails ("cached plan must not change result type") and the
/// transaction runs again with statements prepared anew.
///
/// PostgreSQL only for now: `SqliteStore::query` reads the column count
/// before the first step, and SQLite re-prepares a statement after a schema
/// change at that step, so it returns the old number of columns.
#[test]
fn postgres_schema_change() -> Result<()> {
    let (_db, mut s) = pg_store("schema_change")?;
    let select = "SELECT * FROM sc ORDER BY a";
    let before = transact(&mut *s, |tx| {
        tx.execute("CREATE TABLE sc (a BIGINT)", &[])?;
        tx.execute("INSERT INTO sc (a) VALUES (1)", &[])?;
        tx.query(select, &[])
    })?;
    assert_eq!(before, vec![vec![Value::Int(1)]]);
    transact(&mut *s, |tx| {
        tx.execute("ALTER TABLE sc ADD COLUMN b TEXT", &[])?;
        tx.execute("UPDATE sc SET b = 'x'", &[])
    })?;
    let after = transact(&mut *s, |tx| tx.query(select, &[]))?;
    assert_eq!(after, vec![vec![Value::Int(1), Value::from("x")]]);
    Ok(())
}
