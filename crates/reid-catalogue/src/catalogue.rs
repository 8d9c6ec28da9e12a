//! The catalogue: known individuals and their photos, the embeddings of
//! each photo per model, and a journal of every change (who, when, why),
//! kept in a [`Store`]. Every command is one transaction: it is wholly in
//! or wholly out, whatever kills the process.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::decisions::{DecisionRow, Verdict};
use crate::error::{CatalogueError, Result};
use crate::schema::{SCHEMA_VERSION, create_statements};
use crate::store::{self, Store, Tx, Value, transact};

/// Who makes a change and why (kept in the journal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeContext {
    /// The person or program.
    pub actor: String,
    /// Why, if said.
    pub reason: Option<String>,
}

impl ChangeContext {
    /// A change by `actor`, no reason given.
    pub fn new(actor: impl Into<String>) -> Self {
        ChangeContext {
            actor: actor.into(),
            reason: None,
        }
    }

    /// With a reason.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// An embedding model: its id (what keys the embeddings: the model, its
/// weights' hash, the preprocessing), a description and the dimension.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Model {
    /// The key of its embeddings.
    pub id: String,
    /// For people: e.g. `mobilenet_v2, ImageNet weights sha256 0123...`.
    pub description: String,
    /// Embedding dimension.
    pub dim: usize,
}

/// A labelled photo to enrol.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrolPhoto {
    /// Image file (stored as given).
    pub path: PathBuf,
    /// sha256 hex of its bytes ([`content_hash`]).
    pub content_hash: String,
    /// The catalogue (site, population) it belongs to.
    pub dataset: String,
    /// Species, if known.
    pub species: Option<String>,
    /// The individual's name within the dataset (created when new).
    pub individual: String,
}

/// What an enrolment did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EnrolReport {
    /// The change id (`None` when nothing changed).
    pub change: Option<i64>,
    /// Photos added.
    pub photos_added: usize,
    /// Photos already in the catalogue with the same individual.
    pub already_present: usize,
    /// Photos already in the catalogue under another individual: left as
    /// they are, named here (`dataset/hash: catalogue individual vs given`).
    pub conflicts: Vec<String>,
    /// Individuals created.
    pub individuals_created: usize,
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ApplyReport {
    /// The change id (`None` when nothing changed).
    pub change: Option<i64>,
    /// Photos assigned to a known individual.
    pub confirmed: usize,
    /// Photos assigned to a new individual.
    pub new_photos: usize,
    /// New individuals created (id, name).
    pub new_individuals: Vec<(String, String)>,
    /// Rejections recorded.
    pub rejected: usize,
    /// Rows without a verdict, or `skip`.
    pub skipped: usize,
    /// Rows that changed nothing (already so).
    pub unchanged: usize,
}

/// One entry of the journal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangeInfo {
    /// Its id.
    pub id: i64,
    /// `init`, `enrol`, `apply`, `undo`, `model`.
    pub command: String,
    /// Who.
    pub actor: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Why.
    pub reason: Option<String>,
    /// What, in a line.
    pub summary: String,
    /// The change this one undid.
    pub undoes: Option<i64>,
    /// The change that undid this one.
    pub undone_by: Option<i64>,
}

/// Counts of a catalogue.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Stats {
    /// Engine.
    pub engine: &'static str,
    /// Where.
    pub location: String,
    /// Current model id, if any.
    pub model: Option<String>,
    /// Per dataset: individuals, assigned photos, unassigned photos.
    pub datasets: BTreeMap<String, DatasetStats>,
    /// Embeddings stored, per model id.
    pub embeddings: BTreeMap<String, usize>,
    /// Journal entries.
    pub changes: usize,
    /// Bytes on disk, when the engine tells.
    pub size_bytes: Option<u64>,
}

/// Counts of one dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DatasetStats {
    /// Individuals.
    pub individuals: usize,
    /// Photos assigned to an individual.
    pub photos: usize,
    /// Photos kept without an individual (rejected).
    pub unassigned: usize,
    /// Individuals with a single photo.
    pub single_photo_individuals: usize,
}

/// A photo of the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Photo {
    /// Its id.
    pub id: i64,
    /// Dataset.
    pub dataset: String,
    /// sha256 hex of its bytes.
    pub content_hash: String,
    /// File.
    pub path: PathBuf,
    /// Species.
    pub species: Option<String>,
    /// Individual id (`None`: unassigned).
    pub individual: Option<String>,
    /// That individual's name.
    pub name: Option<String>,
}

/// The gallery's photos with their embeddings, in photo id order.
pub type GalleryRows = Vec<(Photo, Vec<f32>)>;

/// The sha256 hex of a file's bytes: what keys photos and embeddings.
pub fn content_hash(path: &std::path::Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| CatalogueError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Now as RFC 3339 UTC (`2026-12-06T07:01:02Z`).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The pause, in milliseconds, that `ANIMAL_REID_FAULT_PAUSE_MS` asks for
/// after every row written inside a command's transaction: a fault-injection
/// knob for the kill tests (a process killed mid-command must leave the
/// catalogue as it was). Zero when unset.
fn fault_pause_ms() -> u64 {
    std::env::var("ANIMAL_REID_FAULT_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The fault-injection pause after a row; the first one of a command also
/// says on stderr that the command is inside its transaction (what the kill
/// tests wait for).
fn pause(ms: u64, first: &mut bool) {
    if ms > 0 {
        if std::mem::take(first) {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("animal-reid: fault pause: inside the transaction");
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Bytes of a vector as stored (little-endian f32).
pub fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored vector back, checking its length against `dim`.
pub fn vector_from_bytes(b: &[u8], dim: usize, what: &str) -> Result<Vec<f32>> {
    if b.len() != dim * 4 {
        return Err(CatalogueError::Invalid(format!(
            "{what}: stored embedding has {} bytes, the model's dimension {dim} needs {}",
            b.len(),
            dim * 4
        )));
    }
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Checks one embedding: the model's dimension, finite, L2 norm 1 (±1e-3).
pub fn check_vector(v: &[f32], dim: usize, what: &str) -> Result<()> {
    if v.len() != dim {
        return Err(CatalogueError::Invalid(format!(
            "{what}: embedding of dimension {}, the model's is {dim}",
            v.len()
        )));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(CatalogueError::Invalid(format!(
            "{what}: embedding value {i} is {}",
            v[i]
        )));
    }
    let n = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if (n - 1.0).abs() > 1e-3 {
        return Err(CatalogueError::Invalid(format!(
            "{what}: embedding has L2 norm {n:.4}, expected 1 (normalise it)"
        )));
    }
    Ok(())
}

/// A catalogue open on its database.
pub struct Catalogue {
    store: Box<dyn Store>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue")
            .field("engine", &self.store.kind())
            .field("location", &self.store.location())
            .finish()
    }
}

pub(crate) fn meta_get(tx: &mut dyn Tx, key: &str) -> Result<Option<String>> {
    let rows = tx.query("SELECT value FROM meta WHERE key = ?1", &[key.into()])?;
    rows.first().map(|r| r[0].text("meta value")).transpose()
}

fn meta_set(tx: &mut dyn Tx, key: &str, value: &str) -> Result<()> {
    let n = tx.execute(
        "UPDATE meta SET value = ?2 WHERE key = ?1",
        &[key.into(), value.into()],
    )?;
    if n == 0 {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)",
            &[key.into(), value.into()],
        )?;
    }
    Ok(())
}

/// Takes `n` ids from counter `name`; returns the first.
fn next_ids(tx: &mut dyn Tx, name: &str, n: i64) -> Result<i64> {
    let last = tx.query_one_int(
        "UPDATE counters SET value = value + ?2 WHERE name = ?1 RETURNING value",
        &[name.into(), Value::Int(n)],
    )?;
    Ok(last - n + 1)
}

pub(crate) fn bump_generation(tx: &mut dyn Tx) -> Result<()> {
    next_ids(tx, "generation", 1).map(|_| ())
}

/// Stores one embedding (kept if one is there) and marks its queue row
/// done; returns the rows written (0 or 1).
fn store_embedding(tx: &mut dyn Tx, hash: &str, model: &str, v: &[f32]) -> Result<u64> {
    let n = tx.execute(
        "INSERT INTO embeddings (content_hash, model, vector) VALUES (?1, ?2, ?3) \
         ON CONFLICT (content_hash, model) DO NOTHING",
        &[hash.into(), model.into(), Value::Blob(vector_bytes(v))],
    )?;
    tx.execute(
        "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, \
         done_by = 'outside the queue', updated_at = ?3 \
         WHERE content_hash = ?1 AND model = ?2 AND state <> 'done'",
        &[hash.into(), model.into(), now_rfc3339().into()],
    )?;
    Ok(n)
}

/// Whether any of these content hashes is a catalogue photo's.
pub(crate) fn touches_photos<'a>(
    tx: &mut dyn Tx,
    hashes: impl IntoIterator<Item = &'a str>,
) -> Result<bool> {
    for h in hashes {
        if !tx
            .query("SELECT 1 FROM photos WHERE content_hash = ?1", &[h.into()])?
            .is_empty()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Opens a journal entry; returns its id.
fn begin_change(tx: &mut dyn Tx, command: &str, ctx: &ChangeContext, summary: &str) -> Result<i64> {
    let id = next_ids(tx, "change", 1)?;
    tx.execute(
        "INSERT INTO changes (id, command, actor, at, reason, summary) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &[
            Value::Int(id),
            command.into(),
            ctx.actor.as_str().into(),
            now_rfc3339().into(),
            ctx.reason.clone().into(),
            summary.into(),
        ],
    )?;
    Ok(id)
}

/// The journal entry of one command, opened on its first item (a command
/// that changes nothing leaves no entry), and its items.
struct Items<'a> {
    command: &'a str,
    ctx: &'a ChangeContext,
    change: Option<i64>,
    seq: i64,
    /// Who decided the row being written, and why (decisions CSV).
    reviewer: Option<String>,
    note: Option<String>,
}

impl<'a> Items<'a> {
    fn new(command: &'a str, ctx: &'a ChangeContext) -> Self {
        Items {
            command,
            ctx,
            change: None,
            seq: 0,
            reviewer: None,
            note: None,
        }
    }

    /// The change id, opening the entry if needed.
    fn id(&mut self, tx: &mut dyn Tx) -> Result<i64> {
        if let Some(c) = self.change {
            return Ok(c);
        }
        let c = begin_change(tx, self.command, self.ctx, self.command)?;
        self.change = Some(c);
        Ok(c)
    }

    fn push(
        &mut self,
        tx: &mut dyn Tx,
        kind: &str,
        photo: Option<i64>,
        individual: Option<&str>,
        before_individual: Option<&str>,
        before_change: Option<i64>,
    ) -> Result<()> {
        let change = self.id(tx)?;
        self.seq += 1;
        tx.execute(
            "INSERT INTO change_items (change_id, seq, kind, photo, individual, before_individual, \
             before_change, reviewer, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            &[
                Value::Int(change),
                Value::Int(self.seq),
                kind.into(),
                photo.map_or(Value::Null, Value::Int),
                individual.into(),
                before_individual.into(),
                before_change.map_or(Value::Null, Value::Int),
                self.reviewer.clone().into(),
                self.note.clone().into(),
            ],
        )?;
        Ok(())
    }

    /// Closes the entry with its summary and bumps the generation; `None`
    /// when nothing was written.
    fn finish(&self, tx: &mut dyn Tx, summary: &str) -> Result<Option<i64>> {
        let Some(change) = self.change else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE changes SET summary = ?2 WHERE id = ?1",
            &[Value::Int(change), summary.into()],
        )?;
        bump_generation(tx)?;
        Ok(Some(change))
    }
}

fn individual_id(n: i64) -> String {
    format!("ind-{n:06}")
}

/// Finds or creates the individual `name` of `dataset`; returns its id and
/// whether it was created.
fn individual_by_name(
    tx: &mut dyn Tx,
    dataset: &str,
    name: &str,
    items: &mut Items<'_>,
) -> Result<(String, bool)> {
    if let Some(id) = find_individual(tx, dataset, name)? {
        return Ok((id, false));
    }
    let id = create_individual(tx, dataset, Some(name), items)?;
    Ok((id, true))
}

/// Creates an individual of `dataset` named `name` (default: its id);
/// returns its id.
fn create_individual(
    tx: &mut dyn Tx,
    dataset: &str,
    name: Option<&str>,
    items: &mut Items<'_>,
) -> Result<String> {
    let change = items.id(tx)?;
    let id = individual_id(next_ids(tx, "individual", 1)?);
    tx.execute(
        "INSERT INTO individuals (id, dataset, name, created_by) VALUES (?1, ?2, ?3, ?4)",
        &[
            id.as_str().into(),
            dataset.into(),
            name.unwrap_or(&id).into(),
            Value::Int(change),
        ],
    )?;
    items.push(tx, "individual_created", None, Some(&id), None, None)?;
    Ok(id)
}

/// The id of the individual `key` of `dataset`: `key` is an id or a name
/// (an id wins). Two lookups, each on a unique index: one query with
/// `id = ? OR name = ?` let PostgreSQL keep a generic plan made while the
/// table was small, which then scanned every individual of the dataset.
fn find_individual(tx: &mut dyn Tx, dataset: &str, key: &str) -> Result<Option<String>> {
    let by_id = tx.query(
        "SELECT id FROM individuals WHERE id = ?1 AND dataset = ?2",
        &[key.into(), dataset.into()],
    )?;
    if let Some(r) = by_id.first() {
        return Ok(Some(r[0].text("individual id")?));
    }
    let by_name = tx.query(
        "SELECT id FROM individuals WHERE dataset = ?1 AND name = ?2",
        &[dataset.into(), key.into()],
    )?;
    by_name
        .first()
        .map(|r| r[0].text("individual id"))
        .transpose()
}

/// Whether the journal holds a rejection of `individual` (`None`: of no
/// known individual) for photo `photo`, by a change not undone.
fn rejection_recorded(tx: &mut dyn Tx, photo: i64, individual: Option<&str>) -> Result<bool> {
    let n = tx.query_one_int(
        "SELECT COUNT(*) FROM change_items ci JOIN changes c ON c.id = ci.change_id \
         WHERE ci.kind = 'rejection' AND ci.photo = ?1 AND c.undone_by IS NULL \
         AND (ci.individual = ?2 OR (ci.individual IS NULL AND ?2 IS NULL))",
        &[Value::Int(photo), individual.into()],
    )?;
    Ok(n > 0)
}

/// (id, individual, changed_by) of the photo (dataset, hash), if present.
fn find_photo(
    tx: &mut dyn Tx,
    dataset: &str,
    hash: &str,
) -> Result<Option<(i64, Option<String>, i64)>> {
    let rows = tx.query(
        "SELECT id, individual, changed_by FROM photos WHERE dataset = ?1 AND content_hash = ?2",
        &[dataset.into(), hash.into()],
    )?;
    rows.first()
        .map(|r| {
            Ok((
                r[0].int("photo id")?,
                r[1].opt_text("photo individual")?,
                r[2].int("photo changed_by")?,
            ))
        })
        .transpose()
}

#[allow(clippy::too_many_arguments)]
fn insert_photo(
    tx: &mut dyn Tx,
    dataset: &str,
    hash: &str,
    path: &str,
    species: Option<&str>,
    individual: Option<&str>,
    items: &mut Items<'_>,
) -> Result<i64> {
    let change = items.id(tx)?;
    let id = next_ids(tx, "photo", 1)?;
    tx.execute(
        "INSERT INTO photos (id, dataset, content_hash, path, species, individual, changed_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        &[
            Value::Int(id),
            dataset.into(),
            hash.into(),
            path.into(),
            species.into(),
            individual.into(),
            Value::Int(change),
        ],
    )?;
    items.push(tx, "photo_added", Some(id), individual, None, None)?;
    Ok(id)
}

fn assign_photo(
    tx: &mut dyn Tx,
    photo: i64,
    before: Option<&str>,
    before_change: i64,
    after: Option<&str>,
    items: &mut Items<'_>,
) -> Result<()> {
    let change = items.id(tx)?;
    tx.execute(
        "UPDATE photos SET individual = ?2, changed_by = ?3 WHERE id = ?1",
        &[Value::Int(photo), after.into(), Value::Int(change)],
    )?;
    items.push(
        tx,
        "photo_assigned",
        Some(photo),
        after,
        before,
        Some(before_change),
    )
}

/// Puts the photo of decision `r` under individual `ind`: assigns it when
/// the catalogue has it (`existing`: id, individual, last change), else
/// adds it.
fn place_photo(
    tx: &mut dyn Tx,
    existing: Option<(i64, Option<String>, i64)>,
    r: &DecisionRow,
    ind: &str,
    items: &mut Items<'_>,
) -> Result<()> {
    match existing {
        Some((id, cur, by)) => assign_photo(tx, id, cur.as_deref(), by, Some(ind), items),
        None => insert_photo(
            tx,
            &r.dataset,
            &r.content_hash,
            &r.path.to_string_lossy(),
            r.species.as_deref(),
            Some(ind),
            items,
        )
        .map(|_| ()),
    }
}

fn check_hash(hash: &str, what: &str) -> Result<()> {
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CatalogueError::Invalid(format!(
            "{what}: content hash {hash:?} is not 64 hex digits"
        )));
    }
    Ok(())
}

/// Whether `label` is a placeholder group name from `identify` (`new_0001`).
fn is_placeholder(label: &str) -> bool {
    label
        .strip_prefix("new_")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

impl Catalogue {
    /// Creates a new catalogue at `location` (see [`store::open`]); fails if
    /// one is there already.
    pub fn init(location: &str, ctx: &ChangeContext) -> Result<Catalogue> {
        let mut store = store::open(location)?;
        let kind = store.kind();
        let loc = store.location().to_string();
        let uid = {
            let mut h = Sha256::new();
            h.update(loc.as_bytes());
            h.update(now_rfc3339().as_bytes());
            h.update(std::process::id().to_le_bytes());
            h.update(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
                    .to_le_bytes(),
            );
            hex::encode(&h.finalize()[..12])
        };
        transact(&mut *store, |tx| {
            let exists = match kind {
                store::EngineKind::Sqlite => tx.query(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                    &[],
                )?,
                store::EngineKind::Postgres => tx.query(
                    "SELECT 1 FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_name = 'meta'",
                    &[],
                )?,
            };
            if !exists.is_empty() {
                return Err(CatalogueError::State {
                    location: loc.clone(),
                    message: "a catalogue exists here already".into(),
                });
            }
            for s in create_statements(kind) {
                tx.execute(&s, &[])?;
            }
            for c in ["individual", "photo", "change", "generation"] {
                tx.execute(
                    "INSERT INTO counters (name, value) VALUES (?1, 0)",
                    &[c.into()],
                )?;
            }
            meta_set(tx, "schema_version", &SCHEMA_VERSION.to_string())?;
            meta_set(tx, "uid", &uid)?;
            meta_set(tx, "created_at", &now_rfc3339())?;
            begin_change(tx, "init", ctx, "catalogue created")?;
            Ok(())
        })?;
        Ok(Catalogue { store })
    }

    /// Opens the catalogue at `location`; fails when there is none or its
    /// schema is of another version.
    pub fn open(location: &str) -> Result<Catalogue> {
        let is_pg = location.starts_with("postgres://") || location.starts_with("postgresql://");
        let file = location.strip_prefix("sqlite://").unwrap_or(location);
        if !is_pg && !std::path::Path::new(file).exists() {
            // Opening must not leave an empty database file behind.
            return Err(CatalogueError::State {
                location: location.to_string(),
                message: "no catalogue here: create one with `animal-reid init`".into(),
            });
        }
        let mut store = store::open(location)?;
        let loc = store.location().to_string();
        let kind = store.kind();
        let version = transact(&mut *store, |tx| {
            let exists = match kind {
                store::EngineKind::Sqlite => tx.query(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                    &[],
                )?,
                store::EngineKind::Postgres => tx.query(
                    "SELECT 1 FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_name = 'meta'",
                    &[],
                )?,
            };
            if exists.is_empty() {
                return Ok(None);
            }
            meta_get(tx, "schema_version")
        })?;
        match version {
            None => Err(CatalogueError::State {
                location: loc,
                message: "no catalogue here: create one with `animal-reid init`".into(),
            }),
            Some(v) if v == SCHEMA_VERSION.to_string() => Ok(Catalogue { store }),
            Some(v)
                if v.parse::<i64>()
                    .is_ok_and(|n| (1..SCHEMA_VERSION).contains(&n)) =>
            {
                // An older catalogue: upgraded in one transaction (two
                // processes upgrading at once: the second finds it done).
                transact(&mut *store, |tx| {
                    let now = meta_get(tx, "schema_version")?.unwrap_or_default();
                    let from = now.parse::<i64>().unwrap_or(SCHEMA_VERSION);
                    for s in crate::schema::upgrade_statements(from) {
                        tx.execute(&s, &[])?;
                    }
                    meta_set(tx, "schema_version", &SCHEMA_VERSION.to_string())
                })?;
                Ok(Catalogue { store })
            }
            Some(v) => Err(CatalogueError::State {
                location: loc,
                message: format!("schema version {v}; this build reads version {SCHEMA_VERSION}"),
            }),
        }
    }

    /// The database.
    pub fn store(&mut self) -> &mut dyn Store {
        &mut *self.store
    }

    /// Where the catalogue is.
    pub fn location(&self) -> String {
        self.store.location().to_string()
    }

    /// The catalogue's unique id (made at `init`).
    pub fn uid(&mut self) -> Result<String> {
        transact(&mut *self.store, |tx| {
            meta_get(tx, "uid")?
                .ok_or_else(|| CatalogueError::Invalid("catalogue has no uid".into()))
        })
    }

    /// The generation: bumped by every change to photos, individuals or
    /// embeddings.
    pub fn generation(&mut self) -> Result<i64> {
        transact(&mut *self.store, |tx| {
            tx.query_one_int("SELECT value FROM counters WHERE name = 'generation'", &[])
        })
    }

    /// A setting stored with the catalogue (e.g. the pipeline a program
    /// runs on it), `None` when never set.
    pub fn setting(&mut self, key: &str) -> Result<Option<String>> {
        let key = format!("setting.{key}");
        transact(&mut *self.store, |tx| meta_get(tx, &key))
    }

    /// Stores a setting, journalled (`config`) when it changes.
    pub fn set_setting(&mut self, key: &str, value: &str, ctx: &ChangeContext) -> Result<bool> {
        let meta_key = format!("setting.{key}");
        transact(&mut *self.store, |tx| {
            if meta_get(tx, &meta_key)?.as_deref() == Some(value) {
                return Ok(false);
            }
            meta_set(tx, &meta_key, value)?;
            begin_change(tx, "config", ctx, &format!("{key} = {value}"))?;
            Ok(true)
        })
    }

    /// The current model id, if one was ever used.
    pub fn current_model(&mut self) -> Result<Option<String>> {
        transact(&mut *self.store, |tx| meta_get(tx, "model"))
    }

    /// Makes `model` the catalogue's current one (recording it the first
    /// time). Returns the previous current model when it differs: the
    /// caller then embeds every photo again with `model`
    /// ([`Catalogue::photos_without_embedding`]); embeddings of different
    /// models are never mixed, each is keyed by its model.
    pub fn use_model(&mut self, model: &Model, ctx: &ChangeContext) -> Result<Option<String>> {
        transact(&mut *self.store, |tx| {
            let rows = tx.query(
                "SELECT dim FROM models WHERE id = ?1",
                &[model.id.as_str().into()],
            )?;
            match rows.first() {
                Some(r) => {
                    let dim = r[0].int("model dim")?;
                    if dim != model.dim as i64 {
                        return Err(CatalogueError::Invalid(format!(
                            "model {}: recorded with dimension {dim}, now {}",
                            model.id, model.dim
                        )));
                    }
                }
                None => {
                    tx.execute(
                        "INSERT INTO models (id, description, dim, created_at) VALUES (?1, ?2, ?3, ?4)",
                        &[
                            model.id.as_str().into(),
                            model.description.as_str().into(),
                            Value::Int(model.dim as i64),
                            now_rfc3339().into(),
                        ],
                    )?;
                }
            }
            let previous = meta_get(tx, "model")?;
            if previous.as_deref() != Some(model.id.as_str()) {
                let summary = match &previous {
                    Some(p) => format!(
                        "model changed from {p} to {} ({})",
                        model.id, model.description
                    ),
                    None => format!("model {} ({})", model.id, model.description),
                };
                begin_change(tx, "model", ctx, &summary)?;
                meta_set(tx, "model", &model.id)?;
                bump_generation(tx)?;
            }
            Ok(previous.filter(|p| *p != model.id))
        })
    }

    /// The model recorded under `id`.
    pub fn model(&mut self, id: &str) -> Result<Model> {
        transact(&mut *self.store, |tx| {
            let rows = tx.query(
                "SELECT description, dim FROM models WHERE id = ?1",
                &[id.into()],
            )?;
            let r = rows
                .first()
                .ok_or_else(|| CatalogueError::Invalid(format!("model {id} is not recorded")))?;
            Ok(Model {
                id: id.to_string(),
                description: r[0].text("model description")?,
                dim: r[1].int("model dim")? as usize,
            })
        })
    }

    /// The stored embeddings of `model` for these content hashes (those
    /// present).
    pub fn embeddings_for(
        &mut self,
        model: &Model,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<f32>>> {
        let mut out = HashMap::new();
        for chunk in hashes.chunks(500) {
            let rows = transact(&mut *self.store, |tx| {
                let mut rows = Vec::new();
                for h in chunk {
                    rows.extend(tx.query(
                        "SELECT content_hash, vector FROM embeddings WHERE content_hash = ?1 AND model = ?2",
                        &[h.as_str().into(), model.id.as_str().into()],
                    )?);
                }
                Ok(rows)
            })?;
            for r in rows {
                let h = r[0].text("content hash")?;
                let v = vector_from_bytes(r[1].blob("vector")?, model.dim, &h)?;
                out.insert(h, v);
            }
        }
        Ok(out)
    }

    /// Stores embeddings of `model` (content hash, vector); existing ones
    /// are kept. Each is checked ([`check_vector`]).
    pub fn put_embeddings(&mut self, model: &Model, rows: &[(String, Vec<f32>)]) -> Result<usize> {
        for (h, v) in rows {
            check_hash(h, "embedding")?;
            check_vector(v, model.dim, h)?;
        }
        transact(&mut *self.store, |tx| {
            let mut n = 0;
            for (h, v) in rows {
                n += store_embedding(tx, h.as_str(), model.id.as_str(), v)? as usize;
            }
            // The generation keys the search index: only embeddings of
            // catalogue photos change it (not those of queries kept so
            // they are not computed again).
            if n > 0 && touches_photos(tx, rows.iter().map(|(h, _)| h.as_str()))? {
                bump_generation(tx)?;
            }
            Ok(n)
        })
    }

    /// The catalogue's photos that have no embedding of `model` (one per
    /// content hash).
    pub fn photos_without_embedding(&mut self, model: &str) -> Result<Vec<Photo>> {
        let all = self.photos(None)?;
        let have: std::collections::HashSet<String> = transact(&mut *self.store, |tx| {
            tx.query(
                "SELECT content_hash FROM embeddings WHERE model = ?1",
                &[model.into()],
            )?
            .iter()
            .map(|r| r[0].text("content hash"))
            .collect()
        })?;
        let mut seen = std::collections::HashSet::new();
        Ok(all
            .into_iter()
            .filter(|p| !have.contains(&p.content_hash) && seen.insert(p.content_hash.clone()))
            .collect())
    }

    /// Every photo (of `dataset`, when given), by id.
    pub fn photos(&mut self, dataset: Option<&str>) -> Result<Vec<Photo>> {
        transact(&mut *self.store, |tx| {
            let rows = tx.query(
                "SELECT p.id, p.dataset, p.content_hash, p.path, p.species, p.individual, i.name \
                 FROM photos p LEFT JOIN individuals i ON i.id = p.individual \
                 WHERE CAST(?1 AS TEXT) IS NULL OR p.dataset = ?1 ORDER BY p.id",
                &[dataset.into()],
            )?;
            rows.iter().map(photo_from_row).collect()
        })
    }

    /// The gallery of `model` and the generation it was read at (in one
    /// transaction): every photo assigned to an individual, with its
    /// embedding, in photo id order. Fails naming the first photo without
    /// an embedding of `model` (embed them first).
    pub fn gallery(&mut self, model: &Model) -> Result<(i64, GalleryRows)> {
        let (generation, rows) = transact(&mut *self.store, |tx| {
            let g =
                tx.query_one_int("SELECT value FROM counters WHERE name = 'generation'", &[])?;
            let rows = tx.query(
                "SELECT p.id, p.dataset, p.content_hash, p.path, p.species, p.individual, i.name, e.vector \
                 FROM photos p JOIN individuals i ON i.id = p.individual \
                 LEFT JOIN embeddings e ON e.content_hash = p.content_hash AND e.model = ?1 \
                 ORDER BY p.id",
                &[model.id.as_str().into()],
            )?;
            Ok((g, rows))
        })?;
        let gallery = rows
            .iter()
            .map(|r| {
                let photo = photo_from_row(r)?;
                let v = match &r[7] {
                    Value::Null => {
                        return Err(CatalogueError::Invalid(format!(
                            "photo {} ({}) has no embedding of model {}: embed it first",
                            photo.id,
                            photo.path.display(),
                            model.id
                        )));
                    }
                    b => vector_from_bytes(b.blob("vector")?, model.dim, &photo.content_hash)?,
                };
                Ok((photo, v))
            })
            .collect::<Result<_>>()?;
        Ok((generation, gallery))
    }

    /// Enrols labelled photos with their embeddings of `model` (one per
    /// photo, or `None` when already stored), as one change: new
    /// individuals are created by name within their dataset; a photo
    /// already present is left as it is (reported when under another
    /// individual).
    pub fn enrol(
        &mut self,
        photos: &[EnrolPhoto],
        model: &Model,
        embeddings: &[Option<Vec<f32>>],
        ctx: &ChangeContext,
    ) -> Result<EnrolReport> {
        self.add_photos("enrol", photos, model, embeddings, ctx)
    }

    /// Registers photos without computing anything, as one change: those
    /// with an individual are enrolled under it, those with an empty
    /// individual kept unassigned; every photo without an embedding of
    /// `model` is queued for the workers ([`crate::queue`]) in the same
    /// transaction.
    pub fn ingest(
        &mut self,
        photos: &[EnrolPhoto],
        model: &Model,
        ctx: &ChangeContext,
    ) -> Result<EnrolReport> {
        self.add_photos("ingest", photos, model, &vec![None; photos.len()], ctx)
    }

    fn add_photos(
        &mut self,
        command: &str,
        photos: &[EnrolPhoto],
        model: &Model,
        embeddings: &[Option<Vec<f32>>],
        ctx: &ChangeContext,
    ) -> Result<EnrolReport> {
        let ingest = command == "ingest";
        if embeddings.len() != photos.len() {
            return Err(CatalogueError::Invalid(format!(
                "enrol: {} photos but {} embeddings",
                photos.len(),
                embeddings.len()
            )));
        }
        for (p, e) in photos.iter().zip(embeddings) {
            let what = p.path.display().to_string();
            check_hash(&p.content_hash, &what)?;
            if p.dataset.trim().is_empty() || (!ingest && p.individual.trim().is_empty()) {
                return Err(CatalogueError::Invalid(format!(
                    "{what}: empty dataset or individual"
                )));
            }
            if let Some(v) = e {
                check_vector(v, model.dim, &what)?;
            }
        }
        let pause_ms = fault_pause_ms();
        transact(&mut *self.store, |tx| {
            let mut items = Items::new(command, ctx);
            let mut first_pause = true;
            let mut report = EnrolReport::default();
            let mut stored = 0u64;
            for (p, e) in photos.iter().zip(embeddings) {
                if let Some(v) = e {
                    stored += store_embedding(tx, p.content_hash.as_str(), model.id.as_str(), v)?;
                }
                let existing = find_photo(tx, &p.dataset, &p.content_hash)?;
                match existing {
                    Some((_, cur, _)) => {
                        let ind = find_individual(tx, &p.dataset, &p.individual)?;
                        let unlabelled = p.individual.trim().is_empty();
                        if (cur.is_some() && cur == ind) || (cur.is_none() && unlabelled) {
                            report.already_present += 1;
                        } else {
                            report.conflicts.push(format!(
                                "{}/{} ({}): in the catalogue as {}, given {}",
                                p.dataset,
                                p.content_hash,
                                p.path.display(),
                                cur.as_deref().unwrap_or("unassigned"),
                                p.individual
                            ));
                        }
                    }
                    None => {
                        let ind = if p.individual.trim().is_empty() {
                            None
                        } else {
                            let (ind, created) =
                                individual_by_name(tx, &p.dataset, &p.individual, &mut items)?;
                            report.individuals_created += usize::from(created);
                            Some(ind)
                        };
                        insert_photo(
                            tx,
                            &p.dataset,
                            &p.content_hash,
                            &p.path.to_string_lossy(),
                            p.species.as_deref(),
                            ind.as_deref(),
                            &mut items,
                        )?;
                        report.photos_added += 1;
                    }
                }
                if ingest {
                    tx.execute(
                        "INSERT INTO jobs (content_hash, model, path, state, attempts, updated_at) \
                         SELECT ?1, ?2, ?3, 'pending', 0, ?4 WHERE NOT EXISTS \
                         (SELECT 1 FROM embeddings e WHERE e.content_hash = ?1 AND e.model = ?2) \
                         ON CONFLICT (content_hash, model) DO NOTHING",
                        &[
                            p.content_hash.as_str().into(),
                            model.id.as_str().into(),
                            p.path.to_string_lossy().as_ref().into(),
                            now_rfc3339().into(),
                        ],
                    )?;
                }
                pause(pause_ms, &mut first_pause);
            }
            let summary = format!(
                "{command}: {} photos added, {} individuals created, {} already present, {} conflicts",
                report.photos_added,
                report.individuals_created,
                report.already_present,
                report.conflicts.len()
            );
            report.change = items.finish(tx, &summary)?;
            if report.change.is_none() && stored > 0 {
                bump_generation(tx)?;
            }
            Ok(report)
        })
    }

    /// Applies a person's decisions, read from `source`
    /// ([`crate::decisions::read_decisions`]), as one change. Every row is
    /// checked before anything is written: a `confirm` names an individual
    /// of the row's dataset (by id or name; empty: the suggestion); `new`
    /// rows sharing a label in a dataset become one new individual (a
    /// `new_NNNN` placeholder label is named after the allocated id; another
    /// label must not name an individual the dataset has); a `reject` keeps
    /// the photo unassigned (and unassigns it from the rejected individual).
    /// Photos already assigned as asked are left; a `new` row whose photo is
    /// already assigned is left too, so applying the same file twice creates
    /// nothing twice. Each row's reviewer and note are kept in the journal.
    pub fn apply(
        &mut self,
        rows: &[DecisionRow],
        source: &std::path::Path,
        ctx: &ChangeContext,
    ) -> Result<ApplyReport> {
        let pause_ms = fault_pause_ms();
        let row_error = |r: &DecisionRow, message: String| CatalogueError::Row {
            path: source.to_path_buf(),
            line: r.line,
            message,
        };
        transact(&mut *self.store, |tx| {
            let mut items = Items::new("apply", ctx);
            let mut first_pause = true;
            let mut report = ApplyReport::default();
            // Pass 1: check every row.
            for r in rows {
                check_hash(
                    &r.content_hash,
                    &format!("{}, line {}", source.display(), r.line),
                )?;
                let label = r.individual.clone().unwrap_or_else(|| r.suggested.clone());
                let unknown = match r.verdict {
                    Some(Verdict::Confirm) => find_individual(tx, &r.dataset, &label)?.is_none(),
                    _ => false,
                };
                if unknown {
                    return Err(row_error(
                        r,
                        format!(
                            "confirm: no individual {label:?} in dataset {:?}",
                            r.dataset
                        ),
                    ));
                }
                if let Some(Verdict::New) = r.verdict {
                    // A photo already assigned is left as it is
                    // (applying a file twice), whatever the label.
                    let assigned = matches!(
                        find_photo(tx, &r.dataset, &r.content_hash)?,
                        Some((_, Some(_), _))
                    );
                    if !assigned
                        && !is_placeholder(&label)
                        && find_individual(tx, &r.dataset, &label)?.is_some()
                    {
                        return Err(row_error(
                            r,
                            format!(
                                "new: dataset {:?} already has an individual {label:?} \
                                     (use confirm to add the photo to it, or another name)",
                                r.dataset
                            ),
                        ));
                    }
                }
            }
            // Pass 2: write.
            // (dataset, label) -> new individual id, created on first need.
            let mut groups: HashMap<(String, String), String> = HashMap::new();
            for r in rows {
                items.reviewer = r.reviewer.clone().filter(|s| !s.is_empty());
                items.note = r.note.clone().filter(|s| !s.is_empty());
                let label = r.individual.clone().unwrap_or_else(|| r.suggested.clone());
                let existing = find_photo(tx, &r.dataset, &r.content_hash)?;
                let path = r.path.to_string_lossy();
                let species = r.species.as_deref();
                match r.verdict {
                    None | Some(Verdict::Skip) => report.skipped += 1,
                    Some(Verdict::Confirm) => {
                        let ind = find_individual(tx, &r.dataset, &label)?
                            .ok_or_else(|| row_error(r, format!("no individual {label:?}")))?;
                        match existing {
                            Some((_, Some(cur), _)) if cur == ind => report.unchanged += 1,
                            _ => {
                                place_photo(tx, existing, r, &ind, &mut items)?;
                                report.confirmed += 1;
                            }
                        }
                    }
                    Some(Verdict::New) => {
                        if let Some((_, Some(_), _)) = existing {
                            report.unchanged += 1;
                        } else {
                            let key = (r.dataset.clone(), label.clone());
                            let ind = match groups.get(&key) {
                                Some(id) => id.clone(),
                                None => {
                                    let name = (!is_placeholder(&label)).then_some(label.as_str());
                                    let id = create_individual(tx, &r.dataset, name, &mut items)?;
                                    report
                                        .new_individuals
                                        .push((id.clone(), name.unwrap_or(&id).to_string()));
                                    groups.insert(key, id.clone());
                                    id
                                }
                            };
                            place_photo(tx, existing, r, &ind, &mut items)?;
                            report.new_photos += 1;
                        }
                    }
                    Some(Verdict::Reject) => {
                        let rejected = find_individual(tx, &r.dataset, &r.suggested)?;
                        let photo = match existing {
                            Some((id, Some(cur), by)) if Some(&cur) == rejected.as_ref() => {
                                assign_photo(tx, id, Some(&cur), by, None, &mut items)?;
                                Some(id)
                            }
                            // Not the rejected individual's, and this
                            // rejection journalled already (a file applied
                            // twice): nothing to write.
                            Some((id, _, _))
                                if rejection_recorded(tx, id, rejected.as_deref())? =>
                            {
                                None
                            }
                            Some((id, _, _)) => Some(id),
                            None => Some(insert_photo(
                                tx,
                                &r.dataset,
                                &r.content_hash,
                                &path,
                                species,
                                None,
                                &mut items,
                            )?),
                        };
                        if let Some(photo) = photo {
                            items.push(
                                tx,
                                "rejection",
                                Some(photo),
                                rejected.as_deref(),
                                None,
                                None,
                            )?;
                            report.rejected += 1;
                        } else {
                            report.unchanged += 1;
                        }
                    }
                }
                pause(pause_ms, &mut first_pause);
            }
            let summary = format!(
                "apply {}: {} confirmed, {} to {} new individuals, {} rejected, {} unchanged, {} skipped",
                source.display(),
                report.confirmed,
                report.new_photos,
                report.new_individuals.len(),
                report.rejected,
                report.unchanged,
                report.skipped,
            );
            report.change = items.finish(tx, &summary)?;
            Ok(report)
        })
    }

    /// Undoes change `change` (default: the latest apply or enrol not yet
    /// undone) as a new change. Refused, naming why, when a later change
    /// touched the same photos, or the individuals it created have photos
    /// from another change.
    pub fn undo(&mut self, change: Option<i64>, ctx: &ChangeContext) -> Result<i64> {
        transact(&mut *self.store, |tx| {
            let target = match change {
                Some(c) => c,
                None => {
                    let rows = tx.query(
                        "SELECT id FROM changes WHERE command IN ('enrol', 'apply') \
                         AND undone_by IS NULL ORDER BY id DESC LIMIT 1",
                        &[],
                    )?;
                    rows.first().ok_or(CatalogueError::Undo {
                        change: 0,
                        message: "no enrol or apply to undo".into(),
                    })?[0]
                        .int("change id")?
                }
            };
            let info = tx.query(
                "SELECT command, undone_by FROM changes WHERE id = ?1",
                &[Value::Int(target)],
            )?;
            let Some(info) = info.first() else {
                return Err(CatalogueError::Undo {
                    change: target,
                    message: "no such change".into(),
                });
            };
            let command = info[0].text("command")?;
            if command != "enrol" && command != "apply" {
                return Err(CatalogueError::Undo {
                    change: target,
                    message: format!("a {command} cannot be undone (only enrol and apply)"),
                });
            }
            if let Some(by) = info[1].opt_int("undone_by")? {
                return Err(CatalogueError::Undo {
                    change: target,
                    message: format!("already undone by change {by}"),
                });
            }
            let items = tx.query(
                "SELECT seq, kind, photo, individual, before_individual, before_change \
                 FROM change_items WHERE change_id = ?1 ORDER BY seq DESC",
                &[Value::Int(target)],
            )?;
            let mut log = Items::new("undo", ctx);
            let undo = log.id(tx)?;
            for it in &items {
                let kind = it[1].text("kind")?;
                let photo = it[2].opt_int("photo")?;
                let individual = it[3].opt_text("individual")?;
                let check_photo =
                    |tx: &mut dyn Tx, p: i64| -> Result<Option<(Option<String>, i64)>> {
                        let rows = tx.query(
                            "SELECT individual, changed_by FROM photos WHERE id = ?1",
                            &[Value::Int(p)],
                        )?;
                        let Some(r) = rows.first() else {
                            return Ok(None);
                        };
                        let by = r[1].int("changed_by")?;
                        if by != target {
                            return Err(CatalogueError::Undo {
                                change: target,
                                message: format!(
                                    "photo {p} was changed again by change {by}: undo that first"
                                ),
                            });
                        }
                        Ok(Some((r[0].opt_text("individual")?, by)))
                    };
                match kind.as_str() {
                    "photo_added" => {
                        let p = photo.ok_or_else(|| bad_item(target))?;
                        if check_photo(tx, p)?.is_some() {
                            tx.execute("DELETE FROM photos WHERE id = ?1", &[Value::Int(p)])?;
                            log.push(
                                tx,
                                "photo_removed",
                                Some(p),
                                individual.as_deref(),
                                None,
                                None,
                            )?;
                        }
                    }
                    "photo_assigned" => {
                        let p = photo.ok_or_else(|| bad_item(target))?;
                        if let Some((cur, _)) = check_photo(tx, p)? {
                            let before = it[4].opt_text("before_individual")?;
                            let before_change = it[5]
                                .opt_int("before_change")?
                                .ok_or_else(|| bad_item(target))?;
                            tx.execute(
                                "UPDATE photos SET individual = ?2, changed_by = ?3 WHERE id = ?1",
                                &[
                                    Value::Int(p),
                                    before.as_deref().into(),
                                    Value::Int(before_change),
                                ],
                            )?;
                            log.push(
                                tx,
                                "photo_assigned",
                                Some(p),
                                before.as_deref(),
                                cur.as_deref(),
                                Some(target),
                            )?;
                        }
                    }
                    "individual_created" => {
                        let id = individual.ok_or_else(|| bad_item(target))?;
                        let n = tx.query_one_int(
                            "SELECT COUNT(*) FROM photos WHERE individual = ?1",
                            &[id.as_str().into()],
                        )?;
                        if n > 0 {
                            return Err(CatalogueError::Undo {
                                change: target,
                                message: format!(
                                    "individual {id} has {n} photos from later changes: undo those first"
                                ),
                            });
                        }
                        tx.execute(
                            "DELETE FROM individuals WHERE id = ?1",
                            &[id.as_str().into()],
                        )?;
                        log.push(tx, "individual_removed", None, Some(&id), None, None)?;
                    }
                    "rejection" => {}
                    other => {
                        return Err(CatalogueError::Undo {
                            change: target,
                            message: format!("unknown journal item {other}"),
                        });
                    }
                }
            }
            tx.execute(
                "UPDATE changes SET undone_by = ?2 WHERE id = ?1",
                &[Value::Int(target), Value::Int(undo)],
            )?;
            tx.execute(
                "UPDATE changes SET undoes = ?2 WHERE id = ?1",
                &[Value::Int(undo), Value::Int(target)],
            )?;
            log.finish(tx, &format!("undo of change {target} ({command})"))?;
            Ok(undo)
        })
    }

    /// The journal, oldest first.
    pub fn changes(&mut self) -> Result<Vec<ChangeInfo>> {
        transact(&mut *self.store, |tx| {
            tx.query(
                "SELECT id, command, actor, at, reason, summary, undoes, undone_by FROM changes ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(ChangeInfo {
                    id: r[0].int("id")?,
                    command: r[1].text("command")?,
                    actor: r[2].text("actor")?,
                    at: r[3].text("at")?,
                    reason: r[4].opt_text("reason")?,
                    summary: r[5].text("summary")?,
                    undoes: r[6].opt_int("undoes")?,
                    undone_by: r[7].opt_int("undone_by")?,
                })
            })
            .collect()
        })
    }

    /// Counts per dataset and model.
    pub fn stats(&mut self) -> Result<Stats> {
        let engine = self.store.kind().name();
        let location = self.location();
        let size_bytes = self.store.size_bytes()?;
        transact(&mut *self.store, |tx| {
            let mut datasets: BTreeMap<String, DatasetStats> = BTreeMap::new();
            for r in tx.query(
                "SELECT dataset, COUNT(*) FROM individuals GROUP BY dataset",
                &[],
            )? {
                datasets
                    .entry(r[0].text("dataset")?)
                    .or_default()
                    .individuals = r[1].int("count")? as usize;
            }
            for r in tx.query(
                "SELECT dataset, CASE WHEN individual IS NULL THEN 0 ELSE 1 END AS a, COUNT(*) \
                 FROM photos GROUP BY dataset, CASE WHEN individual IS NULL THEN 0 ELSE 1 END",
                &[],
            )? {
                let d = datasets.entry(r[0].text("dataset")?).or_default();
                let n = r[2].int("count")? as usize;
                if r[1].int("assigned")? == 1 {
                    d.photos = n;
                } else {
                    d.unassigned = n;
                }
            }
            for r in tx.query(
                "SELECT i.dataset, COUNT(*) FROM individuals i WHERE \
                 (SELECT COUNT(*) FROM photos p WHERE p.individual = i.id) = 1 GROUP BY i.dataset",
                &[],
            )? {
                datasets
                    .entry(r[0].text("dataset")?)
                    .or_default()
                    .single_photo_individuals = r[1].int("count")? as usize;
            }
            let mut embeddings = BTreeMap::new();
            for r in tx.query("SELECT model, COUNT(*) FROM embeddings GROUP BY model", &[])? {
                embeddings.insert(r[0].text("model")?, r[1].int("count")? as usize);
            }
            Ok(Stats {
                engine,
                location: location.clone(),
                model: meta_get(tx, "model")?,
                datasets,
                embeddings,
                changes: tx.query_one_int("SELECT COUNT(*) FROM changes", &[])? as usize,
                size_bytes,
            })
        })
    }

    /// Verifies the catalogue; returns the problems found (empty: sound).
    /// Checks the schema version, the counters against the ids in use,
    /// every photo's individual and dataset, every stored embedding (its
    /// model recorded, its length the model's dimension, finite, unit
    /// norm), the journal (every item's change exists; undo links both
    /// ways; photos last changed by an existing change).
    pub fn check(&mut self) -> Result<Vec<String>> {
        transact(&mut *self.store, |tx| {
            let mut problems = Vec::new();
            match meta_get(tx, "schema_version")? {
                Some(v) if v == SCHEMA_VERSION.to_string() => {}
                v => problems.push(format!("schema version {v:?}, expected {SCHEMA_VERSION}")),
            }
            for (counter, sql) in [
                ("photo", "SELECT COALESCE(MAX(id), 0) FROM photos"),
                ("change", "SELECT COALESCE(MAX(id), 0) FROM changes"),
            ] {
                let max = tx.query_one_int(sql, &[])?;
                let c = tx.query_one_int(
                    "SELECT value FROM counters WHERE name = ?1",
                    &[counter.into()],
                )?;
                if c < max {
                    problems.push(format!(
                        "counter {counter} is {c}, below the largest id {max}"
                    ));
                }
            }
            let ind_counter =
                tx.query_one_int("SELECT value FROM counters WHERE name = 'individual'", &[])?;
            for r in tx.query("SELECT id FROM individuals", &[])? {
                let id = r[0].text("id")?;
                match id.strip_prefix("ind-").and_then(|n| n.parse::<i64>().ok()) {
                    Some(n) if n <= ind_counter => {}
                    _ => problems.push(format!(
                        "individual {id}: not an id the counter (at {ind_counter}) allocated"
                    )),
                }
            }
            for r in tx.query(
                "SELECT p.id, p.dataset, p.individual, i.dataset FROM photos p \
                 LEFT JOIN individuals i ON i.id = p.individual WHERE p.individual IS NOT NULL",
                &[],
            )? {
                let id = r[0].int("id")?;
                match r[3].opt_text("individual dataset")? {
                    None => problems.push(format!(
                        "photo {id}: individual {:?} does not exist",
                        r[2].opt_text("individual")?
                    )),
                    Some(d) if d != r[1].text("dataset")? => problems.push(format!(
                        "photo {id} of dataset {:?} belongs to individual {:?} of dataset {d:?}",
                        r[1].text("dataset")?,
                        r[2].opt_text("individual")?
                    )),
                    Some(_) => {}
                }
            }
            for r in tx.query(
                "SELECT p.id FROM photos p LEFT JOIN changes c ON c.id = p.changed_by WHERE c.id IS NULL",
                &[],
            )? {
                problems.push(format!("photo {}: last change missing", r[0].int("id")?));
            }
            for r in tx.query("SELECT id, content_hash FROM photos", &[])? {
                let h = r[1].text("hash")?;
                if check_hash(&h, "").is_err() {
                    problems.push(format!(
                        "photo {}: content hash {h:?} is not sha256 hex",
                        r[0].int("id")?
                    ));
                }
            }
            let dims: HashMap<String, usize> = tx
                .query("SELECT id, dim FROM models", &[])?
                .iter()
                .map(|r| Ok((r[0].text("id")?, r[1].int("dim")? as usize)))
                .collect::<Result<_>>()?;
            for r in tx.query("SELECT content_hash, model, vector FROM embeddings", &[])? {
                let h = r[0].text("hash")?;
                let m = r[1].text("model")?;
                let what = format!("embedding {h} of model {m}");
                match dims.get(&m) {
                    None => problems.push(format!("{what}: model not recorded")),
                    Some(&dim) => {
                        if let Err(e) = vector_from_bytes(r[2].blob("vector")?, dim, &what)
                            .and_then(|v| check_vector(&v, dim, &what))
                        {
                            problems.push(e.to_string());
                        }
                    }
                }
            }
            for r in tx.query(
                "SELECT ci.change_id FROM change_items ci LEFT JOIN changes c ON c.id = ci.change_id \
                 WHERE c.id IS NULL",
                &[],
            )? {
                problems.push(format!("journal item of missing change {}", r[0].int("id")?));
            }
            for r in tx.query(
                "SELECT a.id, a.undone_by, b.undoes FROM changes a LEFT JOIN changes b ON b.id = a.undone_by \
                 WHERE a.undone_by IS NOT NULL",
                &[],
            )? {
                let a = r[0].int("id")?;
                if r[2].opt_int("undoes")? != Some(a) {
                    problems.push(format!(
                        "change {a} says it was undone by {:?}, which does not say it undid it",
                        r[1].opt_int("undone_by")?
                    ));
                }
            }
            if let Some(m) = meta_get(tx, "model")?
                && !dims.contains_key(&m)
            {
                problems.push(format!("current model {m} is not recorded"));
            }
            Ok(problems)
        })
    }
}

fn bad_item(change: i64) -> CatalogueError {
    CatalogueError::Undo {
        change,
        message: "journal item lacks its photo or individual".into(),
    }
}

fn photo_from_row(r: &crate::store::Row) -> Result<Photo> {
    Ok(Photo {
        id: r[0].int("photo id")?,
        dataset: r[1].text("dataset")?,
        content_hash: r[2].text("content hash")?,
        path: PathBuf::from(r[3].text("path")?),
        species: r[4].opt_text("species")?,
        individual: r[5].opt_text("individual")?,
        name: r[6].opt_text("name")?,
    })
}
