//! The PostgreSQL engine: one connection (the synchronous `postgres` client,
//! no TLS), every unit of work one `SERIALIZABLE` transaction, run again
//! with backoff when the server reports a serialization failure (SQLSTATE
//! `40001`) or a deadlock (`40P01`), during the work or at `COMMIT`.
//!
//! The portable SQL's `?1`, `?2`, ... placeholders become `$1`, `$2`, ...
//! (outside quoted literals, quoted identifiers and comments); statements
//! are prepared once per connection and kept by their text. A parameter's
//! type is the one the server infers from where it stands (a column, a
//! comparison), and a [`Value`] is written as that type: an integer as
//! `BIGINT`, `INTEGER` or `SMALLINT` (range-checked), `DOUBLE PRECISION`,
//! `REAL` or `BOOLEAN` (0 / non-zero); a double as `DOUBLE PRECISION` or
//! `REAL`; text as any text type; bytes as `BYTEA`; NULL as any type. A
//! parameter whose type the server cannot infer (`?1 IS NULL`) needs a
//! cast: `CAST(?1 AS BIGINT) IS NULL`.
//!
//! Columns are read by their type: the integer types (and `BOOLEAN`, as 0 or
//! 1, and `OID`) as [`Value::Int`], the floating types as [`Value::Real`],
//! `NUMERIC` (what `SUM` and `AVG` of integers give) as [`Value::Int`] when
//! it has no fractional digits and as [`Value::Real`] otherwise, the text
//! types as [`Value::Text`], `BYTEA` as [`Value::Blob`], NULL as
//! [`Value::Null`]; any other type is an error naming it (cast it in the
//! query).

use std::collections::HashMap;
use std::error::Error as StdError;

use bytes::BytesMut;
use postgres::error::SqlState;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Statement};

use super::{EngineKind, Isolation, MAX_ATTEMPTS, Row, Store, Tx, Value, backoff};
use crate::error::{CatalogueError, Result};

const ENGINE: &str = "postgres";

/// Prepared statements kept per connection before the cache is emptied.
const CACHE_LIMIT: usize = 512;

/// A PostgreSQL catalogue: one database on a server.
pub struct PgStore {
    client: Client,
    url: String,
    location: String,
    statements: HashMap<String, Statement>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location)
            .finish()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`
    /// or a `key=value` connection string), without TLS.
    pub fn connect(url: &str) -> Result<Self> {
        let location = redact(url);
        let client = open_client(url, &location)?;
        Ok(PgStore {
            client,
            url: url.to_string(),
            location,
            statements: HashMap::new(),
        })
    }

    fn reconnect(&mut self) -> Result<()> {
        self.statements.clear();
        self.client = open_client(&self.url, &self.location)?;
        Ok(())
    }

    /// One run of `work` inside `BEGIN ... COMMIT`; on failure, the error,
    /// its SQLSTATE when the server gave one, and whether it came from
    /// `COMMIT` (after which a lost connection leaves the outcome unknown).
    fn attempt(
        &mut self,
        isolation: Isolation,
        work: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> std::result::Result<(), Failure> {
        let begin = match isolation {
            Isolation::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
            Isolation::ReadCommitted => "BEGIN ISOLATION LEVEL READ COMMITTED",
        };
        self.client
            .batch_execute(begin)
            .map_err(|e| Failure::from_pg(&e, "BEGIN", false))?;
        let mut tx = PgTx {
            client: &mut self.client,
            statements: &mut self.statements,
            failed: None,
        };
        let result = work(&mut tx);
        let failed = tx.failed.take();
        match (result, failed) {
            // A statement failed: the server has aborted the transaction,
            // whatever the work made of the error.
            (Err(error), Some(f)) => Err(Failure { error, ..f }),
            (Ok(()), Some(f)) => Err(Failure {
                error: CatalogueError::Engine {
                    engine: ENGINE,
                    message: format!(
                        "a statement failed inside the transaction, which was rolled back: {}",
                        f.error
                    ),
                },
                ..f
            }),
            (Err(error), None) => Err(Failure {
                error,
                code: None,
                server_message: String::new(),
                closed: false,
                at_commit: false,
            }),
            (Ok(()), None) => self
                .client
                .batch_execute("COMMIT")
                .map_err(|e| Failure::from_pg(&e, "COMMIT", true)),
        }
    }
}

fn open_client(url: &str, location: &str) -> Result<Client> {
    Client::connect(url, NoTls).map_err(|e| CatalogueError::Engine {
        engine: ENGINE,
        message: format!("{location}: {}", describe(&e)),
    })
}

/// A failed attempt.
struct Failure {
    error: CatalogueError,
    code: Option<SqlState>,
    /// The server's message (`error` may be the work's own wrapping of it).
    server_message: String,
    closed: bool,
    at_commit: bool,
}

impl Failure {
    fn from_pg(e: &postgres::Error, sql: &str, at_commit: bool) -> Self {
        let code = e.code().cloned();
        // The server ending the session (shutdown, pg_terminate_backend) or
        // a connection error: the connection is gone even if the client has
        // not noticed yet.
        let closed = e.is_closed()
            || code.as_ref().is_some_and(|c| {
                *c == SqlState::ADMIN_SHUTDOWN
                    || *c == SqlState::CRASH_SHUTDOWN
                    || c.code().starts_with("08")
            });
        Failure {
            error: engine_error(e, sql),
            code,
            server_message: e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_default(),
            closed,
            at_commit,
        }
    }

    fn retryable(&self) -> bool {
        self.code.as_ref().is_some_and(is_retryable)
    }

    /// A kept statement whose result columns changed under it (the table was
    /// altered): prepare everything again.
    fn stale_plan(&self) -> bool {
        self.code.as_ref() == Some(&SqlState::FEATURE_NOT_SUPPORTED)
            && self.server_message.contains("cached plan must not change")
    }
}

fn is_retryable(code: &SqlState) -> bool {
    *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
}

/// The error's text: `[SQLSTATE] message (detail; hint)` for the server's
/// errors, the client's error and its causes otherwise.
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut m = format!("[{}] {}", db.code().code(), db.message());
        if let Some(d) = db.detail() {
            m.push_str(&format!(" (detail: {d})"));
        }
        if let Some(h) = db.hint() {
            m.push_str(&format!(" (hint: {h})"));
        }
        return m;
    }
    let mut m = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        m.push_str(&format!(": {s}"));
        source = s.source();
    }
    m
}

fn engine_error(e: &postgres::Error, sql: &str) -> CatalogueError {
    const SHOWN: usize = 300;
    let sql = sql.trim();
    let shown = match sql.char_indices().nth(SHOWN) {
        Some((i, _)) => format!("{}...", &sql[..i]),
        None => sql.to_string(),
    };
    CatalogueError::Engine {
        engine: ENGINE,
        message: format!("{} in: {shown}", describe(e)),
    }
}

/// The connection string without its password: `postgres://user:***@host/db`,
/// `password=***`.
fn redact(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest_start = scheme_end + 3;
        let rest = &url[rest_start..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let mut out = url[..rest_start].to_string();
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        let tail = &rest[authority_end..];
        match tail.find('?') {
            Some(q) => {
                out.push_str(&tail[..=q]);
                let query: Vec<String> = tail[q + 1..]
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                        _ => kv.to_string(),
                    })
                    .collect();
                out.push_str(&query.join("&"));
            }
            None => out.push_str(tail),
        }
        return out;
    }
    // key=value form: blank out the value after `password=` (quoted or not).
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(pos) = find_key(rest, "password") {
        let after_key = &rest[pos + "password".len()..];
        let eq = after_key.len() - after_key.trim_start().len();
        let after_ws = &after_key[eq..];
        if !after_ws.starts_with('=') {
            out.push_str(&rest[..pos + "password".len()]);
            rest = after_key;
            continue;
        }
        let value = after_ws[1..].trim_start();
        let value_start = rest.len() - value.len();
        out.push_str(&rest[..value_start]);
        out.push_str("***");
        let value_len = if let Some(quoted) = value.strip_prefix('\'') {
            let mut end = quoted.len();
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '\'' {
                    end = i + 1;
                    break;
                }
            }
            1 + end
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        rest = &value[value_len.min(value.len())..];
    }
    out.push_str(rest);
    out
}

/// Where `key` starts as a word of `s`.
fn find_key(s: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find(key) {
        let at = from + i;
        if at == 0 || s[..at].ends_with(char::is_whitespace) {
            return Some(at);
        }
        from = at + key.len();
    }
    None
}

/// `?N` placeholders to `$N`, outside `'...'` literals (also `E'...'` with
/// backslash escapes), `"..."` identifiers, `--` and `/* */` comments. A `?`
/// not followed by a digit stays.
pub(crate) fn placeholders(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' => {
                let backslashes = i > 0
                    && matches!(b[i - 1], b'E' | b'e')
                    && (i < 2 || !(b[i - 2].is_ascii_alphanumeric() || b[i - 2] == b'_'));
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    if backslashes && b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'?' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.push_str(&sql[copied..i]);
                out.push('$');
                i += 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    out
}

/// A [`Value`] bound to a parameter of whatever type the server inferred.
#[derive(Debug)]
struct Param<'a>(&'a Value);

type BoxError = Box<dyn StdError + Sync + Send>;

fn cannot_bind(what: &str, ty: &Type) -> BoxError {
    format!(
        "cannot bind {what} to a parameter of type {ty} (cast the parameter in the SQL, e.g. CAST(?1 AS BIGINT))"
    )
    .into()
}

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)
                    .map_err(|_| format!("integer {v} does not fit parameter type int4"))?
                    .to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)
                    .map_err(|_| format!("integer {v} does not fit parameter type int2"))?
                    .to_sql(ty, out),
                Type::FLOAT8 => (*v as f64).to_sql(ty, out),
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                _ => Err(cannot_bind("an integer", ty)),
            },
            Value::Real(v) => match *ty {
                Type::FLOAT8 => v.to_sql(ty, out),
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                _ => Err(cannot_bind("a double", ty)),
            },
            Value::Text(s) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR | Type::UNKNOWN => {
                    s.as_str().to_sql(ty, out)
                }
                _ => Err(cannot_bind("text", ty)),
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => b.as_slice().to_sql(ty, out),
                _ => Err(cannot_bind("bytes", ty)),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A `NUMERIC` column: an integer when it has no fractional digits, a
/// double otherwise.
struct Numeric(Value);

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxError> {
        decode_numeric(raw).map(Numeric)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// PostgreSQL's binary `NUMERIC`: digit count, weight (of the first
/// base-10000 digit), sign, display scale, then the base-10000 digits.
fn decode_numeric(raw: &[u8]) -> std::result::Result<Value, BoxError> {
    let word = |i: usize| -> std::result::Result<u16, BoxError> {
        raw.get(2 * i..2 * i + 2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]))
            .ok_or_else(|| "truncated numeric".into())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = word(3)?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok(Value::Real(f64::NAN)),
        0xD000 => return Ok(Value::Real(f64::INFINITY)),
        0xF000 => return Ok(Value::Real(f64::NEG_INFINITY)),
        other => return Err(format!("numeric with unknown sign {other:#x}").into()),
    }
    let negative = sign == 0x4000;
    let mut digits = Vec::with_capacity(ndigits);
    for k in 0..ndigits {
        let d = word(4 + k)?;
        if d >= 10_000 {
            return Err(format!("numeric digit {d} out of range").into());
        }
        digits.push(d);
    }
    // Power of 10000 of the last digit.
    let last_power = weight - ndigits as i64 + 1;
    if dscale == 0 && last_power >= 0 {
        let mut acc: i128 = 0;
        let overflow = || -> BoxError { "numeric does not fit a 64-bit integer".into() };
        for d in &digits {
            acc = acc
                .checked_mul(10_000)
                .and_then(|a| a.checked_add(i128::from(*d)))
                .ok_or_else(overflow)?;
        }
        for _ in 0..last_power {
            acc = acc.checked_mul(10_000).ok_or_else(overflow)?;
        }
        if negative {
            acc = -acc;
        }
        let v = i64::try_from(acc).map_err(|_| overflow())?;
        return Ok(Value::Int(v));
    }
    let mut text = String::with_capacity(4 * ndigits + 8);
    if negative {
        text.push('-');
    }
    if digits.is_empty() {
        text.push('0');
    }
    for d in &digits {
        text.push_str(&format!("{d:04}"));
    }
    text.push_str(&format!("e{}", 4 * last_power));
    text.parse::<f64>()
        .map(Value::Real)
        .map_err(|e| format!("numeric {text}: {e}").into())
}

fn read_column(row: &postgres::Row, i: usize) -> std::result::Result<Value, String> {
    fn get<'a, T: FromSql<'a>>(
        row: &'a postgres::Row,
        i: usize,
        f: impl FnOnce(T) -> Value,
    ) -> std::result::Result<Value, String> {
        row.try_get::<_, Option<T>>(i)
            .map(|v| v.map_or(Value::Null, f))
            .map_err(|e| {
                let mut m = e.to_string();
                if let Some(s) = e.source() {
                    m.push_str(&format!(": {s}"));
                }
                m
            })
    }
    let column = &row.columns()[i];
    let ty = column.type_();
    match *ty {
        Type::INT8 => get(row, i, Value::Int),
        Type::INT4 => get(row, i, |v: i32| Value::Int(i64::from(v))),
        Type::INT2 => get(row, i, |v: i16| Value::Int(i64::from(v))),
        Type::OID => get(row, i, |v: u32| Value::Int(i64::from(v))),
        Type::BOOL => get(row, i, |v: bool| Value::Int(i64::from(v))),
        Type::FLOAT8 => get(row, i, Value::Real),
        Type::FLOAT4 => get(row, i, |v: f32| Value::Real(f64::from(v))),
        Type::NUMERIC => get(row, i, |v: Numeric| v.0),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR | Type::UNKNOWN => {
            get(row, i, Value::Text)
        }
        Type::BYTEA => get(row, i, Value::Blob),
        _ => Err(format!(
            "column {} has type {ty}, which the catalogue store does not read \
             (cast it to BIGINT, DOUBLE PRECISION, TEXT or BYTEA)",
            column.name()
        )),
    }
}

struct PgTx<'c> {
    client: &'c mut Client,
    statements: &'c mut HashMap<String, Statement>,
    /// The last statement that failed, unless one succeeded after it (after
    /// a failure only `ROLLBACK TO SAVEPOINT` can succeed).
    failed: Option<Failure>,
}

impl PgTx<'_> {
    fn statement(&mut self, sql: &str) -> std::result::Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(&placeholders(sql))?;
        if self.statements.len() >= CACHE_LIMIT {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    fn run<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: impl FnOnce(&mut Client, &Statement, &[&(dyn ToSql + Sync)]) -> Result<T, postgres::Error>,
    ) -> Result<T> {
        let r = self.statement(sql).and_then(|stmt| {
            let bound: Vec<Param<'_>> = params.iter().map(Param).collect();
            let refs: Vec<&(dyn ToSql + Sync)> =
                bound.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            f(self.client, &stmt, &refs)
        });
        match r {
            Ok(v) => {
                self.failed = None;
                Ok(v)
            }
            Err(e) => {
                let failure = Failure::from_pg(&e, sql, false);
                let error = engine_error(&e, sql);
                self.failed = Some(failure);
                Err(error)
            }
        }
    }
}

impl Tx for PgTx<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        self.run(sql, params, |c, s, p| c.execute(s, p))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let rows = self.run(sql, params, |c, s, p| c.query(s, p))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut row = Vec::with_capacity(r.len());
            for i in 0..r.len() {
                row.push(read_column(r, i).map_err(|m| CatalogueError::Engine {
                    engine: ENGINE,
                    message: format!("{m} in: {}", sql.trim()),
                })?);
            }
            out.push(row);
        }
        Ok(out)
    }
}

impl Store for PgStore {
    fn kind(&self) -> EngineKind {
        EngineKind::Postgres
    }

    fn location(&self) -> &str {
        &self.location
    }

    fn transaction(&mut self, work: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        self.transaction_at(Isolation::Serializable, work)
    }

    fn transaction_at(
        &mut self,
        isolation: Isolation,
        work: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> Result<()> {
        let mut attempt = 0;
        let mut reconnected = false;
        loop {
            attempt += 1;
            if self.client.is_closed() {
                if reconnected {
                    return Err(CatalogueError::Engine {
                        engine: ENGINE,
                        message: format!("{}: connection closed again", self.location),
                    });
                }
                self.reconnect()?;
                reconnected = true;
            }
            let failure = match self.attempt(isolation, work) {
                Ok(()) => return Ok(()),
                Err(f) => f,
            };
            let closed = failure.closed || self.client.is_closed();
            if !closed {
                // Best effort: after a failed COMMIT there is no transaction
                // left (a warning, not an error); a failed ROLLBACK leaves
                // the connection to be closed, which rolls back too.
                let _ = self.client.batch_execute("ROLLBACK");
            }
            if failure.retryable() {
                if attempt >= MAX_ATTEMPTS {
                    return Err(CatalogueError::Contention {
                        engine: ENGINE,
                        attempts: attempt,
                        message: failure.error.to_string(),
                    });
                }
                backoff(attempt);
                continue;
            }
            if failure.stale_plan() && attempt < MAX_ATTEMPTS {
                self.statements.clear();
                continue;
            }
            if closed && !reconnected {
                if failure.at_commit {
                    return Err(CatalogueError::Engine {
                        engine: ENGINE,
                        message: format!(
                            "{}: the connection closed during COMMIT, so whether the transaction \
                             was committed is unknown: {}",
                            self.location, failure.error
                        ),
                    });
                }
                // Nothing was committed: run the work again on a new connection.
                self.reconnect()?;
                reconnected = true;
                continue;
            }
            return Err(failure.error);
        }
    }

    fn size_bytes(&mut self) -> Result<Option<u64>> {
        if self.client.is_closed() {
            self.reconnect()?;
        }
        const SQL: &str = "SELECT pg_database_size(current_database())";
        let row = self
            .client
            .query_one(SQL, &[])
            .map_err(|e| engine_error(&e, SQL))?;
        let size: i64 = row.try_get(0).map_err(|e| engine_error(&e, SQL))?;
        Ok(u64::try_from(size).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_outside_literals() {
        assert_eq!(
            placeholders("SELECT ?2, '?1', \"?1\", ?1 -- ?3\n, ?2 /* ?4 */ ?10"),
            "SELECT $2, '?1', \"?1\", $1 -- ?3\n, $2 /* ?4 */ $10"
        );
        assert_eq!(
            placeholders("SELECT 'it''s ?1', ?1"),
            "SELECT 'it''s ?1', $1"
        );
        assert_eq!(placeholders("SELECT E'\\' ?1', ?1"), "SELECT E'\\' ?1', $1");
        assert_eq!(placeholders("SELECT j ? 'k', ?1"), "SELECT j ? 'k', $1");
        assert_eq!(placeholders("SELECT 'é?1', ?1é"), "SELECT 'é?1', $1é");
        assert_eq!(placeholders("SELECT '?1"), "SELECT '?1");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://reid:s3cr:et@db.example:5432/cat?sslmode=disable"),
            "postgres://reid:***@db.example:5432/cat?sslmode=disable"
        );
        assert_eq!(
            redact("postgresql://reid@127.0.0.1:5432/cat"),
            "postgresql://reid@127.0.0.1:5432/cat"
        );
        assert_eq!(
            redact("postgres://h/cat?user=reid&password=x&sslmode=disable"),
            "postgres://h/cat?user=reid&password=***&sslmode=disable"
        );
        assert_eq!(
            redact("host=h user=reid password='a b\\' c' dbname=cat"),
            "host=h user=reid password=*** dbname=cat"
        );
        assert_eq!(
            redact("host=h password = secret dbname=cat"),
            "host=h password = *** dbname=cat"
        );
    }

    #[test]
    fn numeric_decoding() {
        fn enc(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
            let mut v = Vec::new();
            for w in [ndigits, weight as u16, sign, dscale]
                .iter()
                .chain(digits.iter())
            {
                v.extend_from_slice(&w.to_be_bytes());
            }
            v
        }
        // 123456789 = 1|2345|6789, weight 2
        assert_eq!(
            decode_numeric(&enc(3, 2, 0, 0, &[1, 2345, 6789])).ok(),
            Some(Value::Int(123_456_789))
        );
        // 20000 = 2 with weight 1 (trailing zero digits dropped)
        assert_eq!(
            decode_numeric(&enc(1, 1, 0x4000, 0, &[2])).ok(),
            Some(Value::Int(-20_000))
        );
        assert_eq!(
            decode_numeric(&enc(0, 0, 0, 0, &[])).ok(),
            Some(Value::Int(0))
        );
        // 1.5 = 1|5000 weight 0, dscale 1
        assert_eq!(
            decode_numeric(&enc(2, 0, 0, 1, &[1, 5000])).ok(),
            Some(Value::Real(1.5))
        );
        // 0.0001 = 1 weight -1
        assert_eq!(
            decode_numeric(&enc(1, -1, 0x4000, 4, &[1])).ok(),
            Some(Value::Real(-0.0001))
        );
        assert!(decode_numeric(&enc(5, 4, 0, 0, &[9999, 9999, 9999, 9999, 9999])).is_err());
    }
}
