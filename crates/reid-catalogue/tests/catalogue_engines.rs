//! The catalogue's commands on both engines: every scenario runs once on
//! SQLite (a file in a temporary folder) and once on PostgreSQL (a fresh
//! database of the test binary's throwaway server), with the expected
//! values worked out by hand.
//!
//! Photos are fake: their content hashes are 64 hex digits made from a
//! number ([`hash`]), their embeddings synthetic unit vectors of dimension 4.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use ndarray::Array2;
use reid_catalogue::CatalogueError;
use reid_catalogue::catalogue::{
    ApplyReport, Catalogue, ChangeContext, DatasetStats, EnrolPhoto, EnrolReport, Model, Photo,
    vector_bytes,
};
use reid_catalogue::decisions::{DecisionRow, Suggestion, Verdict};
use reid_catalogue::gallery::{
    CatalogueGallery, QueryPhoto, identification_input, load_gallery, review_items,
};
use reid_catalogue::store::{Value, transact};
use reid_catalogue::testing::ThrowawayPostgres;
use reid_pipeline::{OpenSetParams, ParamGuard, identify};

// ---------------------------------------------------------------------------
// The two engines.

/// Where a scenario keeps its catalogue.
trait Db {
    /// The catalogue's location (nothing there yet).
    fn location(&self) -> &str;
    /// Another empty location of the same engine.
    fn another(&self, suffix: &str) -> Result<String>;
    /// `sqlite` or `postgres`.
    fn engine(&self) -> &'static str;
}

struct Sqlite {
    dir: tempfile::TempDir,
    path: String,
}

impl Sqlite {
    fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = utf8(&dir.path().join("catalogue.db"))?;
        Ok(Sqlite { dir, path })
    }
}

impl Db for Sqlite {
    fn location(&self) -> &str {
        &self.path
    }
    fn another(&self, suffix: &str) -> Result<String> {
        utf8(&self.dir.path().join(format!("{suffix}.db")))
    }
    fn engine(&self) -> &'static str {
        "sqlite"
    }
}

struct Pg {
    server: Arc<ThrowawayPostgres>,
    name: String,
    url: String,
}

impl Pg {
    fn new(name: &str) -> Result<Self> {
        let server = ThrowawayPostgres::shared()
            .map_err(|e| anyhow::anyhow!("cannot start a throwaway PostgreSQL server: {e}"))?;
        let url = server.fresh_database(name).map_err(anyhow::Error::msg)?;
        Ok(Pg {
            server,
            name: name.to_string(),
            url,
        })
    }
}

impl Db for Pg {
    fn location(&self) -> &str {
        &self.url
    }
    fn another(&self, suffix: &str) -> Result<String> {
        self.server
            .fresh_database(&format!("{}_{suffix}", self.name))
            .map_err(anyhow::Error::msg)
    }
    fn engine(&self) -> &'static str {
        "postgres"
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
                super::$scenario(&super::Pg::new(concat!("cat_", stringify!($scenario)))?)
            }
        }
    )*};
}

on_both_engines!(
    init_and_open,
    enrol,
    apply,
    undo,
    model_change,
    gallery_cache,
    check,
    review,
);

// ---------------------------------------------------------------------------
// Helpers.

fn ctx() -> ChangeContext {
    ChangeContext::new("tester").reason("a test")
}

/// A fake sha256: `n` as 64 hex digits.
fn hash(n: u32) -> String {
    format!("{n:064x}")
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

fn enrol_photo(n: u32, dataset: &str, individual: &str) -> EnrolPhoto {
    EnrolPhoto {
        path: PathBuf::from(format!("/photos/{dataset}/{n}.jpg")),
        content_hash: hash(n),
        dataset: dataset.into(),
        species: Some("lynx".into()),
        individual: individual.into(),
    }
}

/// A unit vector of dimension 4 that differs for each `n` (for photos whose
/// vector does not matter, only that it comes back as stored).
fn vec_of(n: u32) -> Vec<f32> {
    let v = [n as f32, 1.0, 2.0, 3.0];
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

/// The six photos of the standard enrolment, with their vectors: dataset
/// `d1`: `a` (photos 1, 2), `b` (photo 3); dataset `d2`: `a` (photos 4, 5,
/// 6), another individual than `d1`'s `a`.
fn six() -> (Vec<EnrolPhoto>, Vec<Option<Vec<f32>>>) {
    let photos = vec![
        enrol_photo(1, "d1", "a"),
        enrol_photo(2, "d1", "a"),
        enrol_photo(3, "d1", "b"),
        enrol_photo(4, "d2", "a"),
        enrol_photo(5, "d2", "a"),
        enrol_photo(6, "d2", "a"),
    ];
    let vectors = vec![
        Some(vec![1.0, 0.0, 0.0, 0.0]),
        Some(vec![0.6, 0.8, 0.0, 0.0]),
        Some(vec![0.0, 1.0, 0.0, 0.0]),
        Some(vec![0.0, 0.0, 1.0, 0.0]),
        Some(vec![0.0, 0.0, 0.0, 1.0]),
        Some(vec![0.0, 0.0, 0.6, 0.8]),
    ];
    (photos, vectors)
}

/// A new catalogue at `db`, model A current (change 2), the six photos
/// enrolled (change 3): individuals `ind-000001` (d1/a), `ind-000002`
/// (d1/b), `ind-000003` (d2/a); photos 1 to 6.
fn enrolled(db: &dyn Db) -> Result<Catalogue> {
    let mut cat = Catalogue::init(db.location(), &ctx())?;
    ensure!(cat.use_model(&model_a(), &ctx())?.is_none());
    let (photos, vectors) = six();
    let r = cat.enrol(&photos, &model_a(), &vectors, &ctx())?;
    ensure!(
        r.change == Some(3) && r.photos_added == 6,
        "enrolment: {r:?}"
    );
    Ok(cat)
}

/// The result's error, or an error when it succeeded.
fn fails<T: std::fmt::Debug>(r: Result<T, CatalogueError>, what: &str) -> Result<CatalogueError> {
    match r {
        Ok(v) => bail!("{what}: succeeded ({v:?}), expected an error"),
        Err(e) => Ok(e),
    }
}

fn ds(individuals: usize, photos: usize, unassigned: usize, single: usize) -> DatasetStats {
    DatasetStats {
        individuals,
        photos,
        unassigned,
        single_photo_individuals: single,
    }
}

/// An invalid enrolment: what, the photos, their vectors, the error's words.
type EnrolCase<'a> = (&'a str, Vec<EnrolPhoto>, Vec<Option<Vec<f32>>>, &'a str);

/// The photos as (id, dataset, hash, individual, name).
type Brief = (i64, String, String, Option<String>, Option<String>);

fn brief(photos: &[Photo]) -> Vec<Brief> {
    photos
        .iter()
        .map(|p| {
            (
                p.id,
                p.dataset.clone(),
                p.content_hash.clone(),
                p.individual.clone(),
                p.name.clone(),
            )
        })
        .collect()
}

fn b(id: i64, dataset: &str, n: u32, individual: Option<&str>, name: Option<&str>) -> Brief {
    (
        id,
        dataset.into(),
        hash(n),
        individual.map(String::from),
        name.map(String::from),
    )
}

/// Every individual as (id, dataset, name), by id.
fn individuals(cat: &mut Catalogue) -> Result<Vec<(String, String, String)>> {
    let rows = transact(cat.store(), |tx| {
        tx.query("SELECT id, dataset, name FROM individuals ORDER BY id", &[])
    })?;
    rows.iter()
        .map(|r| Ok((r[0].text("id")?, r[1].text("dataset")?, r[2].text("name")?)))
        .collect()
}

/// Runs one statement on the catalogue's database, in its own transaction.
fn sql(cat: &mut Catalogue, statement: &str, params: &[Value]) -> Result<u64> {
    Ok(transact(cat.store(), |tx| tx.execute(statement, params))?)
}

fn int(cat: &mut Catalogue, query: &str) -> Result<i64> {
    Ok(transact(cat.store(), |tx| tx.query_one_int(query, &[]))?)
}

fn row(
    line: u64,
    n: u32,
    dataset: &str,
    suggestion: Suggestion,
    suggested: &str,
    verdict: Option<Verdict>,
    individual: Option<&str>,
) -> DecisionRow {
    DecisionRow {
        line,
        photo: format!("q{n}.jpg"),
        path: PathBuf::from(format!("/new/{n}.jpg")),
        content_hash: hash(n),
        dataset: dataset.into(),
        species: Some("lynx".into()),
        suggestion,
        suggested: suggested.into(),
        verdict,
        individual: individual.map(String::from),
        reviewer: Some("ann".into()),
        note: Some(format!("line {line}")),
    }
}

/// The decisions applied to [`enrolled`] in the apply and undo scenarios.
fn decisions() -> Vec<DecisionRow> {
    use Suggestion::{Known, New};
    vec![
        // Confirm by name: d1/a.
        row(
            2,
            11,
            "d1",
            Known,
            "ind-000002",
            Some(Verdict::Confirm),
            Some("a"),
        ),
        // Confirm by id: d1/b.
        row(
            3,
            12,
            "d1",
            Known,
            "ind-000001",
            Some(Verdict::Confirm),
            Some("ind-000002"),
        ),
        // Confirm the suggestion: d2/a.
        row(
            4,
            13,
            "d2",
            Known,
            "ind-000003",
            Some(Verdict::Confirm),
            None,
        ),
        // Two photos of one new individual (placeholder label): ind-000004.
        row(5, 14, "d1", New, "new_0001", Some(Verdict::New), None),
        row(6, 15, "d1", New, "new_0001", Some(Verdict::New), None),
        // A new individual named by the person: ind-000005 "Bella".
        row(
            7,
            16,
            "d2",
            New,
            "new_0002",
            Some(Verdict::New),
            Some("Bella"),
        ),
        // Reject of a new photo: stored unassigned.
        row(
            8,
            17,
            "d1",
            Known,
            "ind-000002",
            Some(Verdict::Reject),
            None,
        ),
        // Reject of photo 3, assigned to the rejected d1/b: unassigned.
        row(9, 3, "d1", Known, "ind-000002", Some(Verdict::Reject), None),
        // Not decided.
        row(10, 18, "d2", Known, "ind-000003", Some(Verdict::Skip), None),
        row(11, 19, "d2", Known, "ind-000003", None, None),
        // Already so: photo 1 is d1/a.
        row(
            12,
            1,
            "d1",
            Known,
            "ind-000001",
            Some(Verdict::Confirm),
            Some("a"),
        ),
        // The same placeholder in another dataset: another individual,
        // ind-000006.
        row(13, 20, "d2", New, "new_0001", Some(Verdict::New), None),
    ]
}

/// The photos after [`decisions`] were applied to [`enrolled`].
fn photos_after_decisions() -> Vec<Brief> {
    let (i1, i2, i3) = (Some("ind-000001"), Some("ind-000002"), Some("ind-000003"));
    vec![
        b(1, "d1", 1, i1, Some("a")),
        b(2, "d1", 2, i1, Some("a")),
        b(3, "d1", 3, None, None),
        b(4, "d2", 4, i3, Some("a")),
        b(5, "d2", 5, i3, Some("a")),
        b(6, "d2", 6, i3, Some("a")),
        b(7, "d1", 11, i1, Some("a")),
        b(8, "d1", 12, i2, Some("b")),
        b(9, "d2", 13, i3, Some("a")),
        b(10, "d1", 14, Some("ind-000004"), Some("ind-000004")),
        b(11, "d1", 15, Some("ind-000004"), Some("ind-000004")),
        b(12, "d2", 16, Some("ind-000005"), Some("Bella")),
        b(13, "d1", 17, None, None),
        b(14, "d2", 20, Some("ind-000006"), Some("ind-000006")),
    ]
}

fn source() -> PathBuf {
    PathBuf::from("decisions.csv")
}

fn approx(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-5
}

// ---------------------------------------------------------------------------
// 1. init and open.

fn init_and_open(db: &dyn Db) -> Result<()> {
    let mut cat = Catalogue::init(db.location(), &ctx())?;
    let uid = cat.uid()?;
    ensure!(
        uid.len() == 24 && uid.bytes().all(|b| b.is_ascii_hexdigit()),
        "uid {uid:?}"
    );
    let changes = cat.changes()?;
    ensure!(changes.len() == 1, "{changes:?}");
    ensure!(
        changes[0].id == 1
            && changes[0].command == "init"
            && changes[0].actor == "tester"
            && changes[0].reason.as_deref() == Some("a test")
            && changes[0].undoes.is_none()
            && changes[0].undone_by.is_none(),
        "{changes:?}"
    );
    ensure!(cat.generation()? == 0);
    ensure!(cat.current_model()?.is_none());
    let stats = cat.stats()?;
    ensure!(stats.engine == db.engine() && stats.changes == 1 && stats.datasets.is_empty());
    ensure!(stats.model.is_none() && stats.embeddings.is_empty());
    ensure!(cat.check()?.is_empty());

    // A second init on the same location: refused, the catalogue intact.
    let e = fails(Catalogue::init(db.location(), &ctx()), "init twice")?;
    ensure!(
        matches!(&e, CatalogueError::State { message, .. } if message.contains("a catalogue exists here already")),
        "init twice: {e}"
    );
    let mut again = Catalogue::open(db.location())?;
    ensure!(again.uid()? == uid, "uid changed");
    ensure!(again.changes()?.len() == 1);

    // Settings: none, set (journalled as `config`), set again (no change).
    ensure!(again.setting("pipeline")?.is_none());
    ensure!(again.set_setting("pipeline", "dinov2", &ctx())?);
    ensure!(!again.set_setting("pipeline", "dinov2", &ctx())?);
    ensure!(again.setting("pipeline")?.as_deref() == Some("dinov2"));
    ensure!(again.setting("other")?.is_none());
    let changes = again.changes()?;
    ensure!(changes.len() == 2, "{changes:?}");
    ensure!(
        changes[1].id == 2
            && changes[1].command == "config"
            && changes[1].summary == "pipeline = dinov2",
        "{changes:?}"
    );
    // Seen by the first connection too.
    ensure!(cat.setting("pipeline")?.as_deref() == Some("dinov2"));
    // A setting changes no photo: the generation stays.
    ensure!(again.generation()? == 0);
    let e = fails(again.undo(Some(2), &ctx()), "undo of a config")?;
    ensure!(
        matches!(&e, CatalogueError::Undo { change: 2, message } if message.contains("config cannot be undone")),
        "{e}"
    );
    let e = fails(again.undo(None, &ctx()), "undo with nothing to undo")?;
    ensure!(
        matches!(&e, CatalogueError::Undo { change: 0, message } if message.contains("no enrol or apply")),
        "{e}"
    );
    ensure!(again.changes()?.len() == 2);

    // Open on an empty location: refused, naming `init`.
    let empty = db.another("empty")?;
    let e = fails(Catalogue::open(&empty), "open of an empty location")?;
    ensure!(
        matches!(&e, CatalogueError::State { message, .. } if message.contains("init")),
        "open empty: {e}"
    );
    // The failed open left nothing behind: init works there, with its own
    // uid.
    let mut other = Catalogue::init(&empty, &ctx())?;
    ensure!(other.uid()? != uid);
    ensure!(other.changes()?.len() == 1);
    Ok(())
}

// ---------------------------------------------------------------------------
// 2. enrol.

fn enrol(db: &dyn Db) -> Result<()> {
    let mut cat = Catalogue::init(db.location(), &ctx())?;
    ensure!(cat.use_model(&model_a(), &ctx())?.is_none());
    ensure!(cat.generation()? == 1, "use_model bumps the generation");
    let (photos, vectors) = six();
    let r = cat.enrol(&photos, &model_a(), &vectors, &ctx())?;
    ensure!(
        r == EnrolReport {
            change: Some(3),
            photos_added: 6,
            already_present: 0,
            conflicts: vec![],
            individuals_created: 3,
        },
        "{r:?}"
    );
    ensure!(cat.generation()? == 2);
    let (i1, i2, i3) = (Some("ind-000001"), Some("ind-000002"), Some("ind-000003"));
    let expected = vec![
        b(1, "d1", 1, i1, Some("a")),
        b(2, "d1", 2, i1, Some("a")),
        b(3, "d1", 3, i2, Some("b")),
        b(4, "d2", 4, i3, Some("a")),
        b(5, "d2", 5, i3, Some("a")),
        b(6, "d2", 6, i3, Some("a")),
    ];
    let all = cat.photos(None)?;
    ensure!(brief(&all) == expected, "{all:?}");
    ensure!(
        all[0].path == Path::new("/photos/d1/1.jpg") && all[0].species.as_deref() == Some("lynx"),
        "{:?}",
        all[0]
    );
    ensure!(brief(&cat.photos(Some("d2"))?) == expected[3..]);
    ensure!(cat.photos(Some("nowhere"))?.is_empty());
    ensure!(
        individuals(&mut cat)?
            == vec![
                ("ind-000001".into(), "d1".into(), "a".into()),
                ("ind-000002".into(), "d1".into(), "b".into()),
                ("ind-000003".into(), "d2".into(), "a".into()),
            ]
    );
    let stats = cat.stats()?;
    let want: BTreeMap<String, DatasetStats> =
        [("d1".into(), ds(2, 3, 0, 1)), ("d2".into(), ds(1, 3, 0, 0))].into();
    ensure!(stats.datasets == want, "{:?}", stats.datasets);
    ensure!(stats.embeddings == BTreeMap::from([("model-a".to_string(), 6)]));
    ensure!(stats.changes == 3 && stats.model.as_deref() == Some("model-a"));
    ensure!(stats.engine == db.engine());
    let changes = cat.changes()?;
    ensure!(
        changes[2].command == "enrol"
            && changes[2].summary
                == "enrol: 6 photos added, 3 individuals created, 0 already present, 0 conflicts",
        "{changes:?}"
    );
    // The embeddings are stored as given.
    let hashes: Vec<String> = (1..=6).map(hash).collect();
    let stored = cat.embeddings_for(&model_a(), &hashes)?;
    ensure!(stored.len() == 6);
    for (n, v) in (1..=6).zip(&vectors) {
        ensure!(
            Some(&stored[&hash(n)]) == v.as_ref(),
            "embedding of photo {n}"
        );
    }

    // Enrolling the same photos again changes nothing (with or without
    // their embeddings).
    for vectors in [vectors.clone(), vec![None; 6]] {
        let r = cat.enrol(&photos, &model_a(), &vectors, &ctx())?;
        ensure!(
            r == EnrolReport {
                change: None,
                photos_added: 0,
                already_present: 6,
                conflicts: vec![],
                individuals_created: 0,
            },
            "{r:?}"
        );
    }
    ensure!(cat.generation()? == 2 && cat.changes()?.len() == 3);
    ensure!(brief(&cat.photos(None)?) == expected);

    // A known photo under another name: reported, left as it is.
    let r = cat.enrol(&[enrol_photo(1, "d1", "b")], &model_a(), &[None], &ctx())?;
    ensure!(
        r.change.is_none() && r.photos_added == 0 && r.already_present == 0,
        "{r:?}"
    );
    ensure!(r.conflicts.len() == 1, "{r:?}");
    ensure!(
        r.conflicts[0]
            == format!(
                "d1/{} (/photos/d1/1.jpg): in the catalogue as ind-000001, given b",
                hash(1)
            ),
        "{:?}",
        r.conflicts
    );
    ensure!(brief(&cat.photos(None)?) == expected);
    ensure!(cat.changes()?.len() == 3 && cat.generation()? == 2);

    // Invalid inputs: an error, nothing written (a valid new photo comes
    // first in each batch).
    let good = enrol_photo(7, "d1", "c");
    let good_v = Some(vec![0.0, 1.0, 0.0, 0.0]);
    let mut bad_hash = enrol_photo(8, "d1", "c");
    bad_hash.content_hash = "xyz".into();
    let mut not_hex = enrol_photo(8, "d1", "c");
    not_hex.content_hash = "g".repeat(64);
    let cases: Vec<EnrolCase<'_>> = vec![
        (
            "wrong dimension",
            vec![good.clone(), enrol_photo(8, "d1", "c")],
            vec![good_v.clone(), Some(vec![1.0, 0.0, 0.0])],
            "embedding of dimension 3, the model's is 4",
        ),
        (
            "NaN",
            vec![good.clone(), enrol_photo(8, "d1", "c")],
            vec![good_v.clone(), Some(vec![0.0, f32::NAN, 0.0, 0.0])],
            "embedding value 1 is NaN",
        ),
        (
            "not unit",
            vec![good.clone(), enrol_photo(8, "d1", "c")],
            vec![good_v.clone(), Some(vec![1.0, 1.0, 0.0, 0.0])],
            "embedding has L2 norm 1.4142",
        ),
        (
            "short hash",
            vec![good.clone(), bad_hash],
            vec![good_v.clone(), None],
            "content hash \"xyz\" is not 64 hex digits",
        ),
        (
            "hash not hex",
            vec![good.clone(), not_hex],
            vec![good_v.clone(), None],
            "is not 64 hex digits",
        ),
        (
            "empty individual",
            vec![good.clone(), enrol_photo(8, "d1", " ")],
            vec![good_v.clone(), None],
            "empty dataset or individual",
        ),
        (
            "embeddings missing",
            vec![good.clone(), enrol_photo(8, "d1", "c")],
            vec![good_v.clone()],
            "2 photos but 1 embeddings",
        ),
    ];
    for (what, photos, vectors, message) in cases {
        let e = fails(cat.enrol(&photos, &model_a(), &vectors, &ctx()), what)?;
        ensure!(
            matches!(&e, CatalogueError::Invalid(m) if m.contains(message)),
            "{what}: {e}"
        );
        ensure!(cat.changes()?.len() == 3, "{what}: journal grew");
        ensure!(
            brief(&cat.photos(None)?) == expected,
            "{what}: photos changed"
        );
        ensure!(cat.generation()? == 2, "{what}: generation changed");
        ensure!(
            cat.stats()?.embeddings == BTreeMap::from([("model-a".to_string(), 6)]),
            "{what}: embeddings changed"
        );
    }
    // put_embeddings checks its vectors the same way.
    let e = fails(
        cat.put_embeddings(
            &model_a(),
            &[
                (hash(9), vec![1.0, 0.0, 0.0, 0.0]),
                (hash(10), vec![2.0, 0.0, 0.0, 0.0]),
            ],
        ),
        "put_embeddings of a non-unit vector",
    )?;
    ensure!(
        matches!(&e, CatalogueError::Invalid(m) if m.contains("L2 norm 2.0000")),
        "{e}"
    );
    ensure!(cat.stats()?.embeddings == BTreeMap::from([("model-a".to_string(), 6)]));

    // A conflict and a new photo in one batch: the new one is added, the
    // conflict left; ids go on from the counter.
    let r = cat.enrol(
        &[enrol_photo(4, "d2", "z"), good],
        &model_a(),
        &[None, good_v],
        &ctx(),
    )?;
    ensure!(
        r.change == Some(4)
            && r.photos_added == 1
            && r.individuals_created == 1
            && r.already_present == 0
            && r.conflicts.len() == 1
            && r.conflicts[0].contains("in the catalogue as ind-000003, given z"),
        "{r:?}"
    );
    let last = cat.photos(Some("d1"))?;
    ensure!(
        brief(&last[last.len() - 1..]) == vec![b(7, "d1", 7, Some("ind-000004"), Some("c"))],
        "{last:?}"
    );
    ensure!(cat.check()?.is_empty(), "{:?}", cat.check()?);
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. apply.

fn apply(db: &dyn Db) -> Result<()> {
    let mut cat = enrolled(db)?;
    let r = cat.apply(&decisions(), &source(), &ctx())?;
    ensure!(
        r == ApplyReport {
            change: Some(4),
            confirmed: 3,
            new_photos: 4,
            new_individuals: vec![
                ("ind-000004".into(), "ind-000004".into()),
                ("ind-000005".into(), "Bella".into()),
                ("ind-000006".into(), "ind-000006".into()),
            ],
            rejected: 2,
            skipped: 2,
            unchanged: 1,
        },
        "{r:?}"
    );
    let photos = cat.photos(None)?;
    ensure!(brief(&photos) == photos_after_decisions(), "{photos:?}");
    // A new photo keeps the row's path; a known one keeps its own.
    ensure!(photos[6].path == Path::new("/new/11.jpg"));
    ensure!(photos[2].path == Path::new("/photos/d1/3.jpg"));
    let stats = cat.stats()?;
    let want: BTreeMap<String, DatasetStats> =
        [("d1".into(), ds(3, 6, 2, 1)), ("d2".into(), ds(3, 6, 0, 2))].into();
    ensure!(stats.datasets == want, "{:?}", stats.datasets);
    ensure!(stats.changes == 4);
    let changes = cat.changes()?;
    ensure!(
        changes[3].command == "apply"
            && changes[3].summary
                == "apply decisions.csv: 3 confirmed, 4 to 3 new individuals, 2 rejected, 1 unchanged, 2 skipped",
        "{:?}",
        changes[3]
    );
    // Each row's reviewer and note are in the journal.
    let noted = int(
        &mut cat,
        "SELECT COUNT(*) FROM change_items WHERE change_id = 4 AND reviewer = 'ann' AND note = 'line 9'",
    )?;
    ensure!(
        noted == 2,
        "line 9: an assignment and a rejection, found {noted}"
    );

    // The gallery needs every assigned photo's embedding: photo 7 (the
    // first added by the apply) has none.
    let e = fails(cat.gallery(&model_a()), "gallery before embedding")?;
    ensure!(
        matches!(&e, CatalogueError::Invalid(m) if m.contains("photo 7 (/new/11.jpg)") && m.contains("model-a")),
        "{e}"
    );
    let new_hashes = [11, 12, 13, 14, 15, 16, 17, 20];
    let rows: Vec<(String, Vec<f32>)> = new_hashes.iter().map(|&n| (hash(n), vec_of(n))).collect();
    let g = cat.generation()?;
    ensure!(cat.put_embeddings(&model_a(), &rows)? == 8);
    ensure!(cat.generation()? == g + 1);
    ensure!(cat.put_embeddings(&model_a(), &rows)? == 0, "stored twice");
    ensure!(cat.generation()? == g + 1);
    let mut vectors: HashMap<String, Vec<f32>> = rows.into_iter().collect();
    let (_, six_vectors) = six();
    for (n, v) in (1..=6).zip(six_vectors) {
        vectors.insert(hash(n), v.context("six vectors")?);
    }
    let (generation, gallery) = cat.gallery(&model_a())?;
    ensure!(generation == g + 1);
    let ids: Vec<i64> = gallery.iter().map(|(p, _)| p.id).collect();
    ensure!(
        ids == [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14],
        "gallery {ids:?}"
    );
    let expected = photos_after_decisions();
    for (p, v) in &gallery {
        ensure!(p.individual.is_some());
        let want = expected
            .iter()
            .find(|e| e.0 == p.id)
            .context("gallery photo not in the catalogue")?;
        ensure!(brief(std::slice::from_ref(p))[0] == *want, "{p:?}");
        ensure!(
            Some(v) == vectors.get(&p.content_hash),
            "vector of photo {}",
            p.id
        );
    }

    // Errors name the row's line; nothing is written.
    let snapshot = cat.photos(None)?;
    let gen_before = cat.generation()?;
    use Suggestion::{Known, New};
    let bad = PathBuf::from("bad.csv");
    let cases: Vec<(&str, Vec<DecisionRow>, u64, &str)> = vec![
        (
            "confirm of an unknown individual",
            vec![
                row(
                    2,
                    30,
                    "d1",
                    Known,
                    "ind-000001",
                    Some(Verdict::Confirm),
                    None,
                ),
                row(
                    7,
                    31,
                    "d1",
                    Known,
                    "ind-000001",
                    Some(Verdict::Confirm),
                    Some("zed"),
                ),
            ],
            7,
            "confirm: no individual \"zed\" in dataset \"d1\"",
        ),
        (
            "confirm of an individual of another dataset",
            vec![
                row(
                    2,
                    30,
                    "d1",
                    Known,
                    "ind-000001",
                    Some(Verdict::Confirm),
                    None,
                ),
                row(
                    5,
                    32,
                    "d2",
                    Known,
                    "ind-000001",
                    Some(Verdict::Confirm),
                    None,
                ),
            ],
            5,
            "no individual \"ind-000001\" in dataset \"d2\"",
        ),
        (
            "new named after an existing individual",
            vec![
                row(
                    2,
                    30,
                    "d1",
                    Known,
                    "ind-000001",
                    Some(Verdict::Confirm),
                    None,
                ),
                row(9, 33, "d1", New, "new_0009", Some(Verdict::New), Some("a")),
            ],
            9,
            "dataset \"d1\" already has an individual \"a\"",
        ),
        (
            "new named after an individual created by an earlier apply",
            vec![row(
                4,
                34,
                "d2",
                New,
                "new_0001",
                Some(Verdict::New),
                Some("Bella"),
            )],
            4,
            "already has an individual \"Bella\"",
        ),
    ];
    for (what, rows, line, message) in cases {
        let e = fails(cat.apply(&rows, &bad, &ctx()), what)?;
        ensure!(
            matches!(&e, CatalogueError::Row { path, line: l, message: m }
                if path == &bad && *l == line && m.contains(message)),
            "{what}: {e}"
        );
        ensure!(
            e.to_string().contains(&format!("bad.csv, line {line}")),
            "{what}: {e}"
        );
        ensure!(cat.photos(None)? == snapshot, "{what}: photos changed");
        ensure!(cat.changes()?.len() == 4, "{what}: journal grew");
        ensure!(
            cat.generation()? == gen_before,
            "{what}: generation changed"
        );
    }
    let mut bad_hash = row(
        6,
        35,
        "d1",
        Known,
        "ind-000001",
        Some(Verdict::Confirm),
        None,
    );
    bad_hash.content_hash = "abc".into();
    let e = fails(
        cat.apply(
            &[
                row(
                    2,
                    30,
                    "d1",
                    Known,
                    "ind-000001",
                    Some(Verdict::Confirm),
                    None,
                ),
                bad_hash,
            ],
            &bad,
            &ctx(),
        ),
        "bad hash",
    )?;
    ensure!(
        matches!(&e, CatalogueError::Invalid(m) if m.contains("bad.csv, line 6")),
        "{e}"
    );
    ensure!(cat.photos(None)? == snapshot && cat.changes()?.len() == 4);

    // The same rows again: nothing changes, nothing is duplicated.
    let r = cat.apply(&decisions(), &source(), &ctx())?;
    ensure!(
        r == ApplyReport {
            change: None,
            confirmed: 0,
            new_photos: 0,
            new_individuals: vec![],
            rejected: 0,
            skipped: 2,
            unchanged: 10,
        },
        "second apply: {r:?}"
    );
    ensure!(cat.photos(None)? == snapshot, "second apply changed photos");
    ensure!(cat.changes()?.len() == 4, "second apply journalled");
    ensure!(
        cat.generation()? == gen_before,
        "second apply bumped the generation"
    );
    ensure!(individuals(&mut cat)?.len() == 6);
    let rejections = int(
        &mut cat,
        "SELECT COUNT(*) FROM change_items WHERE kind = 'rejection'",
    )?;
    ensure!(rejections == 2, "rejections recorded: {rejections}");
    ensure!(cat.stats()?.datasets == want);

    // A photo left unassigned by a reject, enrolled under a name: reported.
    let r = cat.enrol(&[enrol_photo(17, "d1", "a")], &model_a(), &[None], &ctx())?;
    ensure!(
        r.change.is_none()
            && r.conflicts.len() == 1
            && r.conflicts[0].contains("in the catalogue as unassigned, given a"),
        "{r:?}"
    );
    // The rejected photo confirmed later: assigned.
    let r = cat.apply(
        &[row(
            2,
            17,
            "d1",
            Known,
            "ind-000002",
            Some(Verdict::Confirm),
            Some("b"),
        )],
        &source(),
        &ctx(),
    )?;
    ensure!(r.change == Some(5) && r.confirmed == 1, "{r:?}");
    let p13 = cat.photos(None)?;
    ensure!(
        brief(&p13[12..13]) == vec![b(13, "d1", 17, Some("ind-000002"), Some("b"))],
        "{p13:?}"
    );
    // Only skips: no change.
    let r = cat.apply(
        &[row(
            2,
            40,
            "d1",
            Known,
            "ind-000001",
            Some(Verdict::Skip),
            None,
        )],
        &source(),
        &ctx(),
    )?;
    ensure!(r.change.is_none() && r.skipped == 1, "{r:?}");

    // A reject of a suggestion the photo is not assigned to (photo 1 is
    // d1/a, d1/b rejected): journalled once, the photo left as it is; the
    // same row again is unchanged; once that change is undone, it is
    // journalled again.
    let reject = [row(
        2,
        1,
        "d1",
        Known,
        "ind-000002",
        Some(Verdict::Reject),
        None,
    )];
    let photos = cat.photos(None)?;
    let r = cat.apply(&reject, &source(), &ctx())?;
    ensure!(
        r.change == Some(6) && r.rejected == 1 && r.unchanged == 0,
        "{r:?}"
    );
    ensure!(
        cat.photos(None)? == photos,
        "a reject of another individual moved photo 1"
    );
    let r = cat.apply(&reject, &source(), &ctx())?;
    ensure!(
        r.change.is_none() && r.rejected == 0 && r.unchanged == 1,
        "{r:?}"
    );
    ensure!(cat.undo(Some(6), &ctx())? == 7);
    let r = cat.apply(&reject, &source(), &ctx())?;
    ensure!(r.change == Some(8) && r.rejected == 1, "{r:?}");
    ensure!(cat.photos(None)? == photos);
    ensure!(cat.check()?.is_empty(), "{:?}", cat.check()?);
    Ok(())
}

// ---------------------------------------------------------------------------
// 4. undo.

fn undo(db: &dyn Db) -> Result<()> {
    let mut cat = enrolled(db)?;
    let photos_before = cat.photos(None)?;
    let datasets_before = cat.stats()?.datasets;
    let individuals_before = individuals(&mut cat)?;
    let changed_by_3 = int(&mut cat, "SELECT changed_by FROM photos WHERE id = 3")?;
    ensure!(changed_by_3 == 3);

    let r = cat.apply(&decisions(), &source(), &ctx())?;
    ensure!(r.change == Some(4), "{r:?}");
    ensure!(cat.photos(None)?.len() == 14);
    let g = cat.generation()?;

    let u = cat.undo(Some(4), &ctx().reason("wrong file"))?;
    ensure!(u == 5, "undo change {u}");
    ensure!(cat.generation()? == g + 1);
    ensure!(
        cat.photos(None)? == photos_before,
        "{:?}",
        cat.photos(None)?
    );
    ensure!(cat.stats()?.datasets == datasets_before);
    ensure!(individuals(&mut cat)? == individuals_before);
    // Photo 3 is back to the enrolment, as its last change.
    ensure!(int(&mut cat, "SELECT changed_by FROM photos WHERE id = 3")? == 3);
    let changes = cat.changes()?;
    ensure!(changes.len() == 5);
    ensure!(
        changes[3].id == 4 && changes[3].undone_by == Some(5) && changes[3].undoes.is_none(),
        "{:?}",
        changes[3]
    );
    ensure!(
        changes[4].id == 5
            && changes[4].command == "undo"
            && changes[4].undoes == Some(4)
            && changes[4].undone_by.is_none()
            && changes[4].reason.as_deref() == Some("wrong file")
            && changes[4].summary == "undo of change 4 (apply)",
        "{:?}",
        changes[4]
    );
    ensure!(cat.check()?.is_empty(), "{:?}", cat.check()?);

    // The same change again, or one that cannot be undone: refused.
    let refusals: [(i64, &str); 5] = [
        (4, "already undone by change 5"),
        (1, "a init cannot be undone"),
        (2, "a model cannot be undone"),
        (5, "a undo cannot be undone"),
        (99, "no such change"),
    ];
    for (change, message) in refusals {
        let e = fails(cat.undo(Some(change), &ctx()), message)?;
        ensure!(
            matches!(&e, CatalogueError::Undo { change: c, message: m } if *c == change && m.contains(message)),
            "undo {change}: {e}"
        );
    }
    ensure!(cat.changes()?.len() == 5 && cat.photos(None)? == photos_before);

    // Photo 3 (d1/b) reassigned to d1/a by a later apply: the enrolment
    // cannot be undone.
    let r = cat.apply(
        &[row(
            2,
            3,
            "d1",
            Suggestion::Known,
            "ind-000002",
            Some(Verdict::Confirm),
            Some("a"),
        )],
        &source(),
        &ctx(),
    )?;
    ensure!(r.change == Some(6) && r.confirmed == 1, "{r:?}");
    let reassigned = cat.photos(None)?;
    ensure!(reassigned[2].individual.as_deref() == Some("ind-000001"));
    let e = fails(cat.undo(Some(3), &ctx()), "undo of a reassigned enrolment")?;
    ensure!(
        matches!(&e, CatalogueError::Undo { change: 3, message }
            if message.contains("photo 3 was changed again by change 6")),
        "{e}"
    );
    ensure!(
        cat.photos(None)? == reassigned,
        "refused undo changed photos"
    );
    ensure!(cat.changes()?.len() == 6);

    // Undo with no change named: the latest apply or enrol not undone.
    let u = cat.undo(None, &ctx())?;
    ensure!(u == 7);
    let changes = cat.changes()?;
    ensure!(changes[6].undoes == Some(6) && changes[5].undone_by == Some(7));
    ensure!(cat.photos(None)? == photos_before);
    let u = cat.undo(None, &ctx())?;
    ensure!(u == 8);
    let changes = cat.changes()?;
    ensure!(changes[7].undoes == Some(3) && changes[2].undone_by == Some(8));
    ensure!(cat.photos(None)?.is_empty());
    ensure!(individuals(&mut cat)?.is_empty());
    ensure!(cat.stats()?.datasets.is_empty());
    let e = fails(cat.undo(None, &ctx()), "undo with nothing left")?;
    ensure!(
        matches!(&e, CatalogueError::Undo { change: 0, message } if message.contains("no enrol or apply to undo")),
        "{e}"
    );
    ensure!(cat.check()?.is_empty(), "{:?}", cat.check()?);

    // Ids are never reused: the counters went on (individuals 1-6 and
    // photos 1-14 were allocated).
    let (photos, vectors) = six();
    let r = cat.enrol(&photos, &model_a(), &vectors, &ctx())?;
    ensure!(r.change == Some(9) && r.individuals_created == 3, "{r:?}");
    let again = cat.photos(None)?;
    ensure!(again[0].id == 15 && again[5].id == 20, "{again:?}");
    ensure!(
        again[0].individual.as_deref() == Some("ind-000007")
            && again[3].individual.as_deref() == Some("ind-000009"),
        "{again:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 5. model change.

fn model_change(db: &dyn Db) -> Result<()> {
    let mut cat = Catalogue::init(db.location(), &ctx())?;
    ensure!(cat.use_model(&model_a(), &ctx())?.is_none());
    ensure!(
        cat.use_model(&model_a(), &ctx())?.is_none(),
        "same model again"
    );
    ensure!(cat.changes()?.len() == 2 && cat.generation()? == 1);
    // One content hash in two datasets: two photos, one embedding.
    let a = [
        vec![1.0, 0.0, 0.0, 0.0],
        vec![0.0, 1.0, 0.0, 0.0],
        vec![0.0, 0.0, 1.0, 0.0],
    ];
    let bv = [
        vec![0.0, 0.0, 0.0, 1.0],
        vec![0.6, 0.0, 0.0, 0.8],
        vec![0.0, 0.8, 0.6, 0.0],
    ];
    let photos = [
        enrol_photo(1, "d1", "a"),
        enrol_photo(2, "d1", "b"),
        enrol_photo(1, "d2", "a"),
        enrol_photo(3, "d2", "c"),
    ];
    let vectors = [
        Some(a[0].clone()),
        Some(a[1].clone()),
        Some(a[0].clone()),
        Some(a[2].clone()),
    ];
    let r = cat.enrol(&photos, &model_a(), &vectors, &ctx())?;
    ensure!(r.photos_added == 4 && r.individuals_created == 4, "{r:?}");
    ensure!(cat.stats()?.embeddings == BTreeMap::from([("model-a".to_string(), 3)]));

    let g = cat.generation()?;
    ensure!(cat.use_model(&model_b(), &ctx())?.as_deref() == Some("model-a"));
    ensure!(cat.generation()? == g + 1);
    ensure!(cat.current_model()?.as_deref() == Some("model-b"));
    let changes = cat.changes()?;
    ensure!(
        changes[3].command == "model"
            && changes[3].summary == "model changed from model-a to model-b (model B)",
        "{:?}",
        changes[3]
    );
    let ids = |p: Vec<Photo>| p.iter().map(|p| p.id).collect::<Vec<_>>();
    ensure!(ids(cat.photos_without_embedding("model-b")?) == [1, 2, 4]);
    ensure!(cat.photos_without_embedding("model-a")?.is_empty());

    let e = fails(cat.gallery(&model_b()), "gallery of B without embeddings")?;
    ensure!(
        matches!(&e, CatalogueError::Invalid(m)
            if m.contains("photo 1 (/photos/d1/1.jpg) has no embedding of model model-b")),
        "{e}"
    );
    ensure!(cat.put_embeddings(&model_b(), &[(hash(1), bv[0].clone())])? == 1);
    ensure!(ids(cat.photos_without_embedding("model-b")?) == [2, 4]);
    let e = fails(cat.gallery(&model_b()), "gallery of B, partly embedded")?;
    ensure!(
        matches!(&e, CatalogueError::Invalid(m) if m.contains("photo 2 (")),
        "{e}"
    );
    ensure!(
        cat.put_embeddings(
            &model_b(),
            &[(hash(2), bv[1].clone()), (hash(3), bv[2].clone())]
        )? == 2
    );
    ensure!(cat.photos_without_embedding("model-b")?.is_empty());

    // Each model's gallery has its own vectors.
    let (_, gb) = cat.gallery(&model_b())?;
    let (_, ga) = cat.gallery(&model_a())?;
    let expect_ids = [1, 2, 3, 4];
    ensure!(gb.iter().map(|(p, _)| p.id).collect::<Vec<_>>() == expect_ids);
    ensure!(ga.iter().map(|(p, _)| p.id).collect::<Vec<_>>() == expect_ids);
    let gb_v: Vec<&Vec<f32>> = gb.iter().map(|(_, v)| v).collect();
    let ga_v: Vec<&Vec<f32>> = ga.iter().map(|(_, v)| v).collect();
    ensure!(
        gb_v == [&bv[0], &bv[1], &bv[0], &bv[2]],
        "gallery B {gb_v:?}"
    );
    ensure!(ga_v == [&a[0], &a[1], &a[0], &a[2]], "gallery A {ga_v:?}");
    let hashes = vec![hash(1), hash(2), hash(3), hash(99)];
    let ea = cat.embeddings_for(&model_a(), &hashes)?;
    let eb = cat.embeddings_for(&model_b(), &hashes)?;
    ensure!(ea.len() == 3 && eb.len() == 3);
    for (i, n) in [1, 2, 3].into_iter().enumerate() {
        ensure!(
            ea[&hash(n)] == a[i] && eb[&hash(n)] == bv[i],
            "embeddings of {n}"
        );
    }
    ensure!(
        cat.stats()?.embeddings
            == BTreeMap::from([("model-a".to_string(), 3), ("model-b".to_string(), 3)])
    );

    // A known model id with another dimension: refused, nothing changed.
    let wrong = Model {
        dim: 8,
        ..model_a()
    };
    let n = cat.changes()?.len();
    let e = fails(
        cat.use_model(&wrong, &ctx()),
        "model with another dimension",
    )?;
    ensure!(
        matches!(&e, CatalogueError::Invalid(m) if m.contains("model model-a: recorded with dimension 4, now 8")),
        "{e}"
    );
    ensure!(cat.current_model()?.as_deref() == Some("model-b"));
    ensure!(cat.changes()?.len() == n);
    ensure!(cat.model("model-a")? == model_a() && cat.model("model-b")? == model_b());
    let e = fails(cat.model("ghost"), "unknown model")?;
    ensure!(
        matches!(&e, CatalogueError::Invalid(m) if m.contains("ghost")),
        "{e}"
    );

    // Back to A: its embeddings are all there.
    ensure!(cat.use_model(&model_b(), &ctx())?.is_none());
    ensure!(cat.use_model(&model_a(), &ctx())?.as_deref() == Some("model-b"));
    ensure!(cat.photos_without_embedding("model-a")?.is_empty());
    ensure!(cat.changes()?.len() == n + 1);
    ensure!(cat.check()?.is_empty(), "{:?}", cat.check()?);
    Ok(())
}

// ---------------------------------------------------------------------------
// 6. gallery cache.

fn same(a: &CatalogueGallery, b: &CatalogueGallery) -> Result<()> {
    ensure!(
        a.generation == b.generation,
        "generations {} {}",
        a.generation,
        b.generation
    );
    ensure!(a.gallery.model_id() == b.gallery.model_id());
    ensure!(a.gallery.dim() == b.gallery.dim());
    ensure!(a.gallery.records() == b.gallery.records(), "records differ");
    ensure!(
        a.gallery.embeddings() == b.gallery.embeddings(),
        "embeddings differ"
    );
    Ok(())
}

fn gallery_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let sub = entry?.path();
        if sub.is_dir() {
            for f in std::fs::read_dir(&sub)? {
                let f = f?.path();
                if f.extension().is_some_and(|e| e == "gallery") {
                    files.push(f);
                }
            }
        }
    }
    files.sort();
    Ok(files)
}

fn gallery_cache(db: &dyn Db) -> Result<()> {
    let mut cat = enrolled(db)?;
    let cache = tempfile::tempdir()?;
    let dir = Some(cache.path());
    let a = model_a();

    let g1 = load_gallery(&mut cat, &a, dir)?;
    ensure!(!g1.from_cache, "first load from cache");
    ensure!(
        g1.rebuilt_because
            .as_deref()
            .is_some_and(|b| b.contains("no cache")),
        "{:?}",
        g1.rebuilt_because
    );
    ensure!(g1.generation == 2 && g1.gallery.model_id() == "model-a#2");
    ensure!(g1.gallery.len() == 6 && g1.gallery.dim() == 4);
    let r = &g1.gallery.records()[2];
    ensure!(
        r.image_id == "photo-3"
            && r.identity.as_deref() == Some("ind-000002")
            && r.dataset.as_deref() == Some("d1")
            && r.species.as_deref() == Some("lynx")
            && r.path == Path::new("/photos/d1/3.jpg")
            && r.split == Some(reid_core::SplitRole::Database)
            && r.attributes.get("name").map(String::as_str) == Some("b")
            && r.attributes.get("content_hash") == Some(&hash(3)),
        "{r:?}"
    );
    ensure!(g1.gallery.embeddings().row(1).to_vec() == [0.6, 0.8, 0.0, 0.0]);
    let uid = cat.uid()?;
    let files = gallery_files(cache.path())?;
    ensure!(files.len() == 1, "{files:?}");
    ensure!(
        files[0].parent() == Some(cache.path().join(&uid).as_path()),
        "{files:?}"
    );

    let g2 = load_gallery(&mut cat, &a, dir)?;
    ensure!(
        g2.from_cache && g2.rebuilt_because.is_none(),
        "{:?}",
        g2.rebuilt_because
    );
    same(&g1, &g2)?;
    // Without a cache folder: always from the database.
    let g0 = load_gallery(&mut cat, &a, None)?;
    ensure!(!g0.from_cache && g0.rebuilt_because.is_none());
    same(&g0, &g1)?;

    // The embedding of a photo not (yet) in the catalogue leaves the
    // generation, and so the index, as they were...
    ensure!(cat.put_embeddings(&a, &[(hash(11), vec_of(11))])? == 1);
    ensure!(cat.generation()? == 2);
    ensure!(load_gallery(&mut cat, &a, dir)?.from_cache);
    // ...a change to the catalogue bumps it: rebuilt.
    let r = cat.apply(
        &[row(
            2,
            11,
            "d1",
            Suggestion::Known,
            "ind-000001",
            Some(Verdict::Confirm),
            None,
        )],
        &source(),
        &ctx(),
    )?;
    ensure!(r.change == Some(4));
    ensure!(cat.generation()? == 3);
    let g3 = load_gallery(&mut cat, &a, dir)?;
    ensure!(!g3.from_cache);
    ensure!(
        g3.rebuilt_because
            .as_deref()
            .is_some_and(|b| b.contains("is of model-a#2, the catalogue is at model-a#3")),
        "{:?}",
        g3.rebuilt_because
    );
    ensure!(g3.generation == 3 && g3.gallery.len() == 7);
    ensure!(g3.gallery.records()[6].image_id == "photo-7");
    ensure!(g3.gallery.embeddings().row(6).to_vec() == vec_of(11));
    let g4 = load_gallery(&mut cat, &a, dir)?;
    ensure!(g4.from_cache);
    same(&g3, &g4)?;

    // A damaged cache file: rebuilt, not an error.
    let files = gallery_files(cache.path())?;
    ensure!(files.len() == 1, "{files:?}");
    let mut bytes = std::fs::read(&files[0])?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&files[0], &bytes)?;
    let g5 = load_gallery(&mut cat, &a, dir)?;
    ensure!(!g5.from_cache);
    ensure!(
        g5.rebuilt_because
            .as_deref()
            .is_some_and(|b| b.contains("unusable")),
        "{:?}",
        g5.rebuilt_because
    );
    same(&g5, &g3)?;
    let g6 = load_gallery(&mut cat, &a, dir)?;
    ensure!(g6.from_cache, "{:?}", g6.rebuilt_because);
    same(&g6, &g3)?;
    // A truncated one too.
    std::fs::write(&files[0], &bytes[..10])?;
    let g7 = load_gallery(&mut cat, &a, dir)?;
    ensure!(
        !g7.from_cache
            && g7
                .rebuilt_because
                .as_deref()
                .is_some_and(|b| b.contains("unusable")),
        "{:?}",
        g7.rebuilt_because
    );
    same(&g7, &g3)?;

    // Another model has its own file.
    ensure!(cat.use_model(&model_b(), &ctx())?.as_deref() == Some("model-a"));
    let rows: Vec<(String, Vec<f32>)> = [1, 2, 3, 4, 5, 6, 11]
        .into_iter()
        .map(|n| (hash(n), vec_of(n + 100)))
        .collect();
    ensure!(cat.put_embeddings(&model_b(), &rows)? == 7);
    let gb = load_gallery(&mut cat, &model_b(), dir)?;
    ensure!(
        !gb.from_cache
            && gb
                .rebuilt_because
                .as_deref()
                .is_some_and(|b| b.contains("no cache")),
        "{:?}",
        gb.rebuilt_because
    );
    ensure!(gb.gallery.model_id() == "model-b#5");
    ensure!(gb.gallery.embeddings().row(0).to_vec() == vec_of(101));
    ensure!(gallery_files(cache.path())?.len() == 2);
    let gb2 = load_gallery(&mut cat, &model_b(), dir)?;
    ensure!(gb2.from_cache);
    same(&gb, &gb2)?;
    let ga = load_gallery(&mut cat, &a, dir)?;
    ensure!(!ga.from_cache && ga.gallery.model_id() == "model-a#5");
    ensure!(ga.gallery.embeddings().row(0).to_vec() == [1.0, 0.0, 0.0, 0.0]);
    Ok(())
}

// ---------------------------------------------------------------------------
// 7. check.

fn check(db: &dyn Db) -> Result<()> {
    // Changes: 1 init, 2 model A, 3 enrol, 4 apply (photo 7), 5 undo of 4,
    // 6 apply again (photo 8), 7 model B.
    let mut cat = enrolled(db)?;
    let rows = [row(
        2,
        11,
        "d1",
        Suggestion::Known,
        "ind-000001",
        Some(Verdict::Confirm),
        None,
    )];
    ensure!(cat.apply(&rows, &source(), &ctx())?.change == Some(4));
    ensure!(cat.undo(None, &ctx())? == 5);
    ensure!(cat.apply(&rows, &source(), &ctx())?.change == Some(6));
    ensure!(cat.use_model(&model_b(), &ctx())?.is_some());
    let b_rows: Vec<(String, Vec<f32>)> = [1, 2, 3, 4, 5, 6, 11]
        .into_iter()
        .map(|n| (hash(n), vec_of(n)))
        .collect();
    ensure!(cat.put_embeddings(&model_b(), &b_rows)? == 7);
    ensure!(cat.put_embeddings(&model_a(), &[(hash(11), vec_of(11))])? == 1);
    let problems = cat.check()?;
    ensure!(problems.is_empty(), "sound catalogue: {problems:?}");

    let mut expected: Vec<String> = Vec::new();
    let corruptions: Vec<(&str, Vec<Value>, Vec<String>)> = vec![
        (
            "INSERT INTO embeddings (content_hash, model, vector) VALUES (?1, 'model-a', ?2)",
            vec![hash(40).into(), Value::Blob(vec![1, 2, 3])],
            vec![format!(
                "embedding {} of model model-a: stored embedding has 3 bytes, the model's dimension 4 needs 16",
                hash(40)
            )],
        ),
        (
            "INSERT INTO embeddings (content_hash, model, vector) VALUES (?1, 'model-b', ?2)",
            vec![hash(41).into(), Value::Blob(vector_bytes(&[2.0, 0.0, 0.0, 0.0]))],
            vec![format!(
                "embedding {} of model model-b: embedding has L2 norm 2.0000, expected 1 (normalise it)",
                hash(41)
            )],
        ),
        (
            "INSERT INTO embeddings (content_hash, model, vector) VALUES (?1, 'model-a', ?2)",
            vec![
                hash(42).into(),
                Value::Blob(vector_bytes(&[f32::NAN, 0.0, 0.0, 0.0])),
            ],
            vec![format!(
                "embedding {} of model model-a: embedding value 0 is NaN",
                hash(42)
            )],
        ),
        (
            "UPDATE counters SET value = 1 WHERE name = 'photo'",
            vec![],
            vec!["counter photo is 1, below the largest id 8".into()],
        ),
        (
            "UPDATE counters SET value = 2 WHERE name = 'change'",
            vec![],
            vec!["counter change is 2, below the largest id 7".into()],
        ),
        (
            "UPDATE counters SET value = 2 WHERE name = 'individual'",
            vec![],
            vec!["individual ind-000003: not an id the counter (at 2) allocated".into()],
        ),
        (
            "UPDATE changes SET undone_by = 1 WHERE id = 2",
            vec![],
            vec!["change 2 says it was undone by Some(1), which does not say it undid it".into()],
        ),
        (
            "UPDATE changes SET undone_by = 99 WHERE id = 3",
            vec![],
            vec!["change 3 says it was undone by Some(99), which does not say it undid it".into()],
        ),
        (
            "UPDATE photos SET content_hash = 'not-a-hash' WHERE id = 1",
            vec![],
            vec!["photo 1: content hash \"not-a-hash\" is not sha256 hex".into()],
        ),
        (
            "UPDATE photos SET individual = 'ind-000003' WHERE id = 2",
            vec![],
            vec![
                "photo 2 of dataset \"d1\" belongs to individual Some(\"ind-000003\") of dataset \"d2\""
                    .into(),
            ],
        ),
        (
            "UPDATE meta SET value = 'ghost' WHERE key = 'model'",
            vec![],
            vec!["current model ghost is not recorded".into()],
        ),
        (
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            vec![],
            vec![format!(
                "schema version Some(\"99\"), expected {}",
                reid_catalogue::schema::SCHEMA_VERSION
            )],
        ),
    ];
    for (statement, params, found) in corruptions {
        ensure!(
            sql(&mut cat, statement, &params)? == 1,
            "{statement}: no row"
        );
        expected.extend(found);
        let mut problems = cat.check()?;
        problems.sort();
        let mut want = expected.clone();
        want.sort();
        ensure!(
            problems == want,
            "after {statement}:\n found {problems:#?}\n expected {want:#?}"
        );
    }
    // A catalogue of another schema version is not opened.
    let e = fails(Catalogue::open(db.location()), "open of schema version 99")?;
    ensure!(
        matches!(&e, CatalogueError::State { message, .. } if message.contains("schema version 99")),
        "{e}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 8. review items of an identification.

fn review(db: &dyn Db) -> Result<()> {
    let mut cat = Catalogue::init(db.location(), &ctx())?;
    let a = model_a();
    ensure!(cat.use_model(&a, &ctx())?.is_none());
    // Dataset `park`: X (two photos), then Y, Z, W, V, U, T; dataset `zoo`:
    // another X, equal to the park's X's first photo.
    let gallery: [(u32, &str, &str, [f32; 4]); 9] = [
        (101, "park", "X", [1.0, 0.0, 0.0, 0.0]),
        (102, "park", "X", [0.8, 0.6, 0.0, 0.0]),
        (103, "park", "Y", [0.6, 0.8, 0.0, 0.0]),
        (104, "park", "Z", [0.28, 0.96, 0.0, 0.0]),
        (105, "park", "W", [0.0, 0.0, 1.0, 0.0]),
        (106, "park", "V", [0.8, 0.0, 0.6, 0.0]),
        (107, "park", "U", [0.96, 0.0, 0.0, 0.28]),
        (108, "park", "T", [-0.6, 0.0, 0.8, 0.0]),
        (109, "zoo", "X", [1.0, 0.0, 0.0, 0.0]),
    ];
    let photos: Vec<EnrolPhoto> = gallery
        .iter()
        .map(|(n, d, i, _)| enrol_photo(*n, d, i))
        .collect();
    let vectors: Vec<Option<Vec<f32>>> = gallery.iter().map(|g| Some(g.3.to_vec())).collect();
    let r = cat.enrol(&photos, &a, &vectors, &ctx())?;
    ensure!(r.individuals_created == 8, "{r:?}");
    // ids: X 1, Y 2, Z 3, W 4, V 5, U 6, T 7, zoo's X 8.
    let g = load_gallery(&mut cat, &a, None)?;
    ensure!(g.gallery.len() == 9);

    let queries = vec![
        QueryPhoto {
            id: "q1.jpg".into(),
            path: PathBuf::from("/new/q1.jpg"),
            content_hash: hash(201),
            dataset: "park".into(),
            species: Some("lynx".into()),
        },
        QueryPhoto {
            id: "q2.jpg".into(),
            path: PathBuf::from("/new/q2.jpg"),
            content_hash: hash(202),
            dataset: "park".into(),
            species: None,
        },
    ];
    let q = Array2::from_shape_vec((2, 4), vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])?;
    let (records, embeddings) = identification_input(&g.gallery, &queries, &q)?;
    ensure!(records.len() == 11 && embeddings.nrows() == 11 && embeddings.ncols() == 4);
    ensure!(
        records[9].image_id == "q1.jpg"
            && records[9].split == Some(reid_core::SplitRole::Query)
            && records[9].dataset.as_deref() == Some("park")
            && records[9].identity.is_none()
    );
    ensure!(embeddings.row(10).to_vec() == [0.0, 0.0, 0.0, 1.0]);
    // The query embeddings must match the gallery's dimension.
    let e = fails(
        identification_input(&g.gallery, &queries, &Array2::zeros((2, 3))),
        "queries of another dimension",
    )?;
    ensure!(matches!(e, CatalogueError::Invalid(_)), "{e}");

    // Shortlist 5: q1's five best photos are x1 1.0, U 0.96, x2 0.8, V 0.8,
    // Y 0.6: four individuals, X once with its best photo.
    let params = OpenSetParams::default()
        .fixed_threshold(Some(0.5))
        .check()?;
    let ident = identify(&records, embeddings.view(), &params)?;
    let items = review_items(&ident, &records, &queries)?;
    ensure!(items.len() == 2);
    let q1 = &items[0];
    ensure!(
        q1.photo == "q1.jpg"
            && q1.path == Path::new("/new/q1.jpg")
            && q1.content_hash == hash(201)
            && q1.dataset == "park"
            && q1.species.as_deref() == Some("lynx"),
        "{q1:?}"
    );
    ensure!(
        q1.suggestion == Suggestion::Known && q1.suggested == "ind-000001",
        "{q1:?}"
    );
    ensure!(approx(q1.score, 1.0) && approx(q1.threshold, 0.5), "{q1:?}");
    let inds: Vec<&str> = q1
        .candidates
        .iter()
        .map(|c| c.individual.as_str())
        .collect();
    ensure!(
        inds == ["ind-000001", "ind-000006", "ind-000005", "ind-000002"],
        "{:?}",
        q1.candidates
    );
    let names: Vec<&str> = q1.candidates.iter().map(|c| c.name.as_str()).collect();
    ensure!(names == ["X", "U", "V", "Y"], "{names:?}");
    for (c, s) in q1.candidates.iter().zip([1.0, 0.96, 0.8, 0.6]) {
        ensure!(approx(c.score, s), "{c:?}: expected {s}");
    }
    ensure!(q1.candidates[0].photo == Path::new("/photos/park/101.jpg"));

    // q2 = (0, 0, 0, 1): its best is U at 0.28 < 0.5: new.
    let q2 = &items[1];
    ensure!(q2.suggestion == Suggestion::New, "{q2:?}");
    ensure!(q2.suggested == "new_0001", "{q2:?}");
    ensure!(
        approx(q2.score, 0.28) && approx(q2.threshold, 0.5),
        "{q2:?}"
    );
    ensure!(
        q2.candidates.first().map(|c| c.individual.as_str()) == Some("ind-000006"),
        "{:?}",
        q2.candidates
    );
    ensure!(approx(q2.candidates[0].score, 0.28));

    // Shortlist 10: all eight park photos match; the seven individuals are
    // cut to five, best first: X 1, U 0.96, V 0.8, Y 0.6, Z 0.28.
    let params = OpenSetParams::default()
        .fixed_threshold(Some(0.5))
        .shortlist(10)
        .check()?;
    let ident = identify(&records, embeddings.view(), &params)?;
    ensure!(ident.matches[0].len() == 8, "{:?}", ident.matches[0]);
    let items = review_items(&ident, &records, &queries)?;
    for item in &items {
        ensure!(item.candidates.len() <= 5);
        ensure!(
            item.candidates.windows(2).all(|w| w[0].score >= w[1].score),
            "{:?}",
            item.candidates
        );
        let mut inds: Vec<&str> = item
            .candidates
            .iter()
            .map(|c| c.individual.as_str())
            .collect();
        ensure!(
            !inds.contains(&"ind-000008"),
            "a zoo individual for a park photo"
        );
        inds.sort_unstable();
        inds.dedup();
        ensure!(inds.len() == item.candidates.len(), "an individual twice");
    }
    let inds: Vec<&str> = items[0]
        .candidates
        .iter()
        .map(|c| c.individual.as_str())
        .collect();
    ensure!(
        inds == [
            "ind-000001",
            "ind-000006",
            "ind-000005",
            "ind-000002",
            "ind-000003"
        ],
        "{:?}",
        items[0].candidates
    );
    for (c, s) in items[0].candidates.iter().zip([1.0, 0.96, 0.8, 0.6, 0.28]) {
        ensure!(approx(c.score, s), "{c:?}: expected {s}");
    }
    ensure!(items[1].candidates.len() == 5 && items[1].suggestion == Suggestion::New);

    // An identification of other queries is refused.
    let e = fails(
        review_items(&ident, &records, &queries[..1]),
        "review of fewer queries",
    )?;
    ensure!(matches!(e, CatalogueError::Invalid(_)), "{e}");
    Ok(())
}
