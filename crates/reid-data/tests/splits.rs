//! Split tests: disjointness, fractions, determinism, open- vs closed-set,
//! time-aware ordering, parameter checks, and real data.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::collections::{BTreeMap, BTreeSet};

use reid_data::loaders::{LoadOptions, load_animalclef, write_metadata_csv};
use reid_data::split::{SplitKind, SplitParams, Undated};
use reid_data::{DataError, Dataset, Date, ParamGuard, Record, SplitRole};

mod common;
use common::shared;

/// 40 identities with 1..=12 images each (several singletons), a few
/// unlabelled records, and dates spread over 2023.
fn toy() -> Dataset {
    let mut recs = Vec::new();
    let mut k = 0;
    for i in 0..40 {
        let n = 1 + (i * 7) % 12;
        for j in 0..n {
            let mut r = Record::new(format!("r{k}"), format!("/d/{i}/{j}.jpg"));
            r.identity = Some(format!("ind{i:02}"));
            r.date = Some(Date {
                year: 2023,
                month: 1 + ((i + j) % 12) as u8,
                day: 1 + (k % 28) as u8,
            });
            recs.push(r);
            k += 1;
        }
    }
    for u in 0..3 {
        recs.push(Record::new(format!("u{u}"), format!("/d/u{u}.jpg")));
    }
    Dataset::new("/d", recs)
}

/// identity -> (database count, query count)
fn per_identity(ds: &Dataset) -> BTreeMap<String, (usize, usize)> {
    let mut m: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in &ds.records {
        let e = m.entry(r.identity.clone().unwrap()).or_default();
        match r.split {
            Some(SplitRole::Database) => e.0 += 1,
            Some(SplitRole::Query) => e.1 += 1,
            ref s => panic!("unexpected split {s:?}"),
        }
    }
    m
}

fn ids_of(ds: &Dataset, role: &SplitRole) -> BTreeSet<String> {
    ds.by_split(role)
        .records
        .iter()
        .map(|r| r.identity.clone().unwrap())
        .collect()
}

fn splits_of(ds: &Dataset) -> Vec<(String, SplitRole)> {
    ds.records
        .iter()
        .map(|r| (r.image_id.clone(), r.split.clone().unwrap()))
        .collect()
}

#[test]
fn closed_set_properties() {
    let ds = toy();
    let labelled = ds.num_labelled();
    assert_eq!(labelled, ds.len() - 3);
    let out = SplitParams::closed_set()
        .query_fraction(0.3)
        .seed(11)
        .split(&ds)
        .unwrap();
    assert_eq!(out.len(), labelled, "unlabelled records are left out");
    assert_eq!(out.root, ds.root);
    // Input order kept.
    let kept: Vec<&str> = out.records.iter().map(|r| r.image_id.as_str()).collect();
    let want: Vec<&str> = ds
        .records
        .iter()
        .filter(|r| r.identity.is_some())
        .map(|r| r.image_id.as_str())
        .collect();
    assert_eq!(kept, want);

    let queries = out.by_split(&SplitRole::Query).len();
    assert_eq!(queries, (0.3 * labelled as f64).round() as usize);
    for (id, (db, q)) in per_identity(&out) {
        let n = db + q;
        assert!(db >= 1, "{id} has no database image");
        let ideal = 0.3 * n as f64;
        assert!(
            (q as f64) <= ideal.ceil() && q >= (ideal.floor() as usize).min(n - 1),
            "{id}: {q} queries of {n}"
        );
        if n == 1 {
            assert_eq!(q, 0);
        }
    }
    let q_ids = ids_of(&out, &SplitRole::Query);
    let db_ids = ids_of(&out, &SplitRole::Database);
    assert!(
        q_ids.is_subset(&db_ids),
        "closed set has no query-only identity"
    );
    assert_eq!(db_ids.len(), 40);
}

#[test]
fn open_set_properties() {
    let ds = toy();
    let out = SplitParams::open_set()
        .new_identity_fraction(0.25)
        .query_fraction(0.2)
        .seed(5)
        .split(&ds)
        .unwrap();
    let per = per_identity(&out);
    let new: Vec<&String> = per
        .iter()
        .filter(|(_, (db, _))| *db == 0)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(new.len(), 10, "round(0.25 × 40) query-only identities");
    let known_images: usize = per
        .values()
        .filter(|(db, _)| *db > 0)
        .map(|(db, q)| db + q)
        .sum();
    let known_queries: usize = per.values().filter(|(db, _)| *db > 0).map(|(_, q)| q).sum();
    assert_eq!(known_queries, (0.2 * known_images as f64).round() as usize);
    let q_ids = ids_of(&out, &SplitRole::Query);
    let db_ids = ids_of(&out, &SplitRole::Database);
    assert_eq!(q_ids.difference(&db_ids).count(), 10);
    assert!(
        q_ids.intersection(&db_ids).count() > 0,
        "known identities are queried too"
    );
}

#[test]
fn disjoint_set_properties() {
    let ds = toy();
    let out = SplitParams::disjoint_set()
        .new_identity_fraction(0.3)
        .seed(9)
        .split(&ds)
        .unwrap();
    let q_ids = ids_of(&out, &SplitRole::Query);
    let db_ids = ids_of(&out, &SplitRole::Database);
    assert!(q_ids.is_disjoint(&db_ids));
    assert_eq!(q_ids.len(), 12);
    assert_eq!(db_ids.len(), 28);
    assert_eq!(out.len(), ds.num_labelled());
}

#[test]
fn deterministic_given_seed() {
    let ds = toy();
    for make in [
        |s| SplitParams::closed_set().query_fraction(0.3).seed(s),
        |s| {
            SplitParams::open_set()
                .new_identity_fraction(0.2)
                .query_fraction(0.3)
                .seed(s)
        },
        |s| {
            SplitParams::disjoint_set()
                .new_identity_fraction(0.5)
                .seed(s)
        },
    ] {
        let a = make(42).split(&ds).unwrap();
        let b = make(42).split(&ds).unwrap();
        let c = make(43).split(&ds).unwrap();
        assert_eq!(a, b);
        assert_ne!(splits_of(&a), splits_of(&c));
    }
    // Closed set: the query total depends only on the fraction, not the seed.
    let a = SplitParams::closed_set()
        .query_fraction(0.3)
        .seed(1)
        .split(&ds)
        .unwrap();
    let c = SplitParams::closed_set()
        .query_fraction(0.3)
        .seed(2)
        .split(&ds)
        .unwrap();
    assert_eq!(
        a.by_split(&SplitRole::Query).len(),
        c.by_split(&SplitRole::Query).len()
    );
}

#[test]
fn extreme_fractions() {
    let ds = toy();
    let none = SplitParams::closed_set()
        .query_fraction(0.0)
        .seed(1)
        .split(&ds)
        .unwrap();
    assert_eq!(none.by_split(&SplitRole::Query).len(), 0);
    // Everything that can go to query does: all but one image per identity.
    let all = SplitParams::closed_set()
        .query_fraction(1.0)
        .seed(1)
        .split(&ds)
        .unwrap();
    assert_eq!(all.by_split(&SplitRole::Database).len(), 40);
    let disjoint_all = SplitParams::disjoint_set()
        .new_identity_fraction(1.0)
        .seed(1)
        .split(&ds)
        .unwrap();
    assert_eq!(disjoint_all.by_split(&SplitRole::Database).len(), 0);
}

#[test]
fn time_aware() {
    let ds = toy();
    let n = ds.num_labelled();
    let out = SplitParams::time_aware()
        .query_fraction(0.25)
        .split(&ds)
        .unwrap();
    let db = out.by_split(&SplitRole::Database);
    let q = out.by_split(&SplitRole::Query);
    let last_db = db.records.iter().filter_map(|r| r.date).max().unwrap();
    let first_q = q.records.iter().filter_map(|r| r.date).min().unwrap();
    assert!(last_db < first_q, "{last_db} !< {first_q}");
    // The cutoff is the date at rank round(0.75 n); ties go to query.
    let mut dates: Vec<Date> = ds.records.iter().filter_map(|r| r.date).collect();
    dates.sort();
    let cutoff = dates[(0.75 * n as f64).round() as usize];
    assert_eq!(first_q, cutoff);
    assert_eq!(q.len(), dates.iter().filter(|d| **d >= cutoff).count());
    assert!((q.len() as f64 / n as f64 - 0.25).abs() < 0.05);

    // Explicit cutoff.
    let c = Date {
        year: 2023,
        month: 7,
        day: 1,
    };
    let out = SplitParams::time_aware().cutoff(c).split(&ds).unwrap();
    for r in &out.records {
        let want = if r.date.unwrap() < c {
            SplitRole::Database
        } else {
            SplitRole::Query
        };
        assert_eq!(r.split.as_ref(), Some(&want));
    }

    // Undated records: an error naming the record, or a documented rule.
    let mut undated = toy();
    undated.records[5].date = None;
    let err = SplitParams::time_aware()
        .query_fraction(0.25)
        .split(&undated)
        .unwrap_err();
    assert!(matches!(
        err,
        DataError::InvalidParam {
            name: "undated",
            ..
        }
    ));
    assert!(err.to_string().contains("`r5`"), "{err}");
    let kept = SplitParams::time_aware()
        .query_fraction(0.25)
        .undated(Undated::Database)
        .split(&undated)
        .unwrap();
    assert_eq!(kept.len(), n);
    assert_eq!(kept.records[5].split, Some(SplitRole::Database));
    let dropped = SplitParams::time_aware()
        .query_fraction(0.25)
        .undated(Undated::Drop)
        .split(&undated)
        .unwrap();
    assert_eq!(dropped.len(), n - 1);
    assert!(dropped.records.iter().all(|r| r.image_id != "r5"));
}

#[test]
fn parameters_checked_up_front() {
    for (p, name) in [
        (
            SplitParams::closed_set().query_fraction(-0.1).seed(0),
            "query_fraction",
        ),
        (
            SplitParams::closed_set().query_fraction(1.5).seed(0),
            "query_fraction",
        ),
        (
            SplitParams::closed_set().query_fraction(f64::NAN).seed(0),
            "query_fraction",
        ),
        (
            SplitParams::open_set()
                .new_identity_fraction(2.0)
                .query_fraction(0.1)
                .seed(0),
            "new_identity_fraction",
        ),
        (
            SplitParams::disjoint_set()
                .new_identity_fraction(-1.0)
                .seed(0),
            "new_identity_fraction",
        ),
        (
            SplitParams::time_aware().cutoff(Date {
                year: 2023,
                month: 2,
                day: 30,
            }),
            "cutoff",
        ),
        (
            SplitParams::closed_set()
                .query_fraction(0.1)
                .seed(0)
                .database_role(SplitRole::Query)
                .query_role(SplitRole::Query),
            "query_role",
        ),
    ] {
        match p.clone().check() {
            Err(DataError::InvalidParam { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{p:?}: {other:?}"),
        }
    }
    let checked = SplitParams::open_set()
        .new_identity_fraction(0.1)
        .query_fraction(0.2)
        .seed(3)
        .check()
        .unwrap();
    assert_eq!(checked.params().kind, SplitKind::OpenSet);

    // No labelled records at all.
    let unlabelled = Dataset::new("/x", vec![Record::new("a", "a.jpg")]);
    let err = SplitParams::closed_set()
        .query_fraction(0.2)
        .seed(0)
        .split(&unlabelled)
        .unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }));
}

#[test]
fn train_valid_roles_and_write() {
    let ds = toy();
    let out = SplitParams::disjoint_set()
        .new_identity_fraction(0.2)
        .seed(4)
        .database_role(SplitRole::parse("train"))
        .query_role(SplitRole::parse("valid"))
        .split(&ds)
        .unwrap();
    let train = out.by_split(&SplitRole::parse("train"));
    let valid = out.by_split(&SplitRole::parse("valid"));
    assert_eq!(train.len() + valid.len(), out.len());
    assert_eq!(valid.num_individuals(), 8);

    // A split written with write_metadata_csv loads back unchanged.
    let dir = tempfile::tempdir().unwrap();
    let mut out = SplitParams::open_set()
        .new_identity_fraction(0.2)
        .query_fraction(0.2)
        .seed(4)
        .split(&ds)
        .unwrap();
    out.root = dir.path().to_path_buf();
    for r in &mut out.records {
        r.path = dir.path().join(r.path.strip_prefix("/d").unwrap());
    }
    let csv = dir.path().join("split.csv");
    write_metadata_csv(&csv, &out).unwrap();
    let (back, _) = load_animalclef(&csv, &LoadOptions::default()).unwrap();
    assert_eq!(back, out);
}

#[test]
fn real_data_splits() {
    let Some(shared) = shared() else { return };
    let (lion, _) = load_animalclef(
        &shared.join("datasets/lion/lion.csv"),
        &LoadOptions::default(),
    )
    .unwrap();
    let out = SplitParams::open_set()
        .new_identity_fraction(0.2)
        .query_fraction(0.3)
        .seed(2025)
        .split(&lion)
        .unwrap();
    assert_eq!(out.len(), 740);
    let q_ids = ids_of(&out, &SplitRole::Query);
    let db_ids = ids_of(&out, &SplitRole::Database);
    assert_eq!(q_ids.difference(&db_ids).count(), 19); // round(0.2 × 94)
    assert_eq!(db_ids.len(), 75);

    // AnimalCLEF database images: sea turtles and salamanders carry dates.
    let (clef, _) = load_animalclef(
        &shared.join("datasets/animalclef2025/metadata.csv"),
        &LoadOptions::default(),
    )
    .unwrap();
    let err = SplitParams::time_aware()
        .query_fraction(0.2)
        .split(&clef)
        .unwrap_err();
    assert!(
        matches!(err, DataError::InvalidParam { .. }),
        "lynx rows have no date"
    );
    let turtles = clef.filter(|r| r.dataset.as_deref() == Some("SeaTurtleID2022"));
    let out = SplitParams::time_aware()
        .query_fraction(0.2)
        .split(&turtles)
        .unwrap();
    assert_eq!(out.len(), 8729);
    let db_max = out
        .by_split(&SplitRole::Database)
        .records
        .iter()
        .filter_map(|r| r.date)
        .max()
        .unwrap();
    let q_min = out
        .by_split(&SplitRole::Query)
        .records
        .iter()
        .filter_map(|r| r.date)
        .min()
        .unwrap();
    assert!(db_max < q_min);
}

/// Records of identities with the given image counts, optionally tagged
/// with a dataset; image ids are `<dataset>/<identity>/<j>`.
fn sized(groups: &[(Option<&str>, &str, usize)]) -> Dataset {
    let mut recs = Vec::new();
    for (dataset, identity, n) in groups {
        for j in 0..*n {
            let id = format!("{}/{identity}/{j}", dataset.unwrap_or("-"));
            let mut r = Record::new(id.clone(), format!("/d/{id}.jpg"));
            r.identity = Some(identity.to_string());
            r.dataset = dataset.map(String::from);
            recs.push(r);
        }
    }
    Dataset::new("/d", recs)
}

/// (dataset, identity) -> (database count, query count); queries are the
/// records with role `query`.
fn per_key_as(
    ds: &Dataset,
    query: &SplitRole,
) -> BTreeMap<(Option<String>, String), (usize, usize)> {
    let mut m: BTreeMap<(Option<String>, String), (usize, usize)> = BTreeMap::new();
    for r in &ds.records {
        let e = m
            .entry((r.dataset.clone(), r.identity.clone().unwrap()))
            .or_default();
        if r.split.as_ref() == Some(query) {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
    }
    m
}

/// [`per_key_as`] with the default query role.
fn per_key(ds: &Dataset) -> BTreeMap<(Option<String>, String), (usize, usize)> {
    per_key_as(ds, &SplitRole::Query)
}

#[test]
fn fixed_queries_per_identity_by_hand() {
    // Sizes 1, 2, 3, 4 and 7; two queries each, two database images kept:
    // 1 → 0 queries, 2 → 0, 3 → min(2, 3 - 2) = 1, 4 → 2, 7 → 2.
    let ds = sized(&[
        (None, "a", 1),
        (None, "b", 2),
        (None, "c", 3),
        (None, "d", 4),
        (None, "e", 7),
    ]);
    let out = SplitParams::closed_set()
        .query_per_identity(2)
        .min_database_per_identity(2)
        .seed(1)
        .split(&ds)
        .unwrap();
    let got: Vec<(usize, usize)> = per_identity(&out).into_values().collect();
    assert_eq!(got, vec![(1, 0), (2, 0), (2, 1), (2, 2), (5, 2)]);

    // The default keeps one database image: 1 → 0, 2 → 1, 3 → 1, 4 → 1, 7 → 1.
    let out = SplitParams::closed_set()
        .query_per_identity(1)
        .split(&ds)
        .unwrap();
    let got: Vec<(usize, usize)> = per_identity(&out).into_values().collect();
    assert_eq!(got, vec![(1, 0), (1, 1), (2, 1), (3, 1), (6, 1)]);

    // A share of the images with two kept: caps 0, 0, 1, 2, 5; with
    // query_fraction 1 every identity gives all it can (4 queries in all).
    let out = SplitParams::closed_set()
        .query_fraction(1.0)
        .min_database_per_identity(2)
        .split(&ds)
        .unwrap();
    let got: Vec<(usize, usize)> = per_identity(&out).into_values().collect();
    assert_eq!(got, vec![(1, 0), (2, 0), (2, 1), (2, 2), (2, 5)]);
}

#[test]
fn open_set_holdout_by_hand() {
    // Ten identities of sizes 1..=10: round(0.2 × 10) = 2 are held out
    // whole (whatever their size); each other one with at least 3 images
    // gives exactly one query and keeps the rest; sizes 1 and 2 stay whole.
    let names: Vec<String> = (1..=10).map(|n| format!("id{n:02}")).collect();
    let groups: Vec<(Option<&str>, &str, usize)> = names
        .iter()
        .enumerate()
        .map(|(i, s)| (None, s.as_str(), i + 1))
        .collect();
    let ds = sized(&groups);
    let params = |seed| {
        SplitParams::open_set()
            .new_identity_fraction(0.2)
            .query_per_identity(1)
            .min_database_per_identity(2)
            .database_role(SplitRole::parse("train"))
            .query_role(SplitRole::parse("valid"))
            .seed(seed)
            .check()
            .unwrap()
    };
    let out = params(7).split(&ds).unwrap();
    assert_eq!(out.len(), 55);
    let train = SplitRole::parse("train");
    let valid = SplitRole::parse("valid");
    assert!(
        out.records
            .iter()
            .all(|r| r.split == Some(train.clone()) || r.split == Some(valid.clone()))
    );
    let per = per_key_as(&out, &valid);
    let new: Vec<&String> = per
        .iter()
        .filter(|(_, (db, _))| *db == 0)
        .map(|((_, id), _)| id)
        .collect();
    assert_eq!(new.len(), 2, "{per:?}");
    for ((_, id), &(db, q)) in &per {
        let n: usize = id[2..].parse().unwrap();
        if new.contains(&id) {
            assert_eq!((db, q), (0, n), "{id} held out whole");
        } else {
            let want = usize::from(n >= 3);
            assert_eq!((db, q), (n - want, want), "{id}");
        }
    }
    // Deterministic under a seed; another seed draws other images.
    assert_eq!(params(7).split(&ds).unwrap(), out);
    let other = params(8).split(&ds).unwrap();
    assert_ne!(splits_of(&other), splits_of(&out));
    // Which images of a split identity are queries is drawn too, not the
    // first ones: over seeds, id10's query is not always its first image.
    let firsts = (0..20)
        .filter(|&s| {
            params(s)
                .split(&ds)
                .unwrap()
                .records
                .iter()
                .find(|r| r.image_id.starts_with("-/id10/") && r.split == Some(valid.clone()))
                .is_some_and(|r| r.image_id == "-/id10/0")
        })
        .count();
    assert!(firsts < 20, "{firsts}");
}

#[test]
fn identities_too_small_to_split() {
    // Every identity has at most `min_database_per_identity` images: a
    // closed set has no query, an open set only its held-out identities.
    let ds = sized(&[
        (None, "a", 1),
        (None, "b", 2),
        (None, "c", 2),
        (None, "d", 1),
    ]);
    let closed = SplitParams::closed_set()
        .query_per_identity(3)
        .min_database_per_identity(2)
        .split(&ds)
        .unwrap();
    assert_eq!(closed.by_split(&SplitRole::Query).len(), 0);
    assert_eq!(closed.by_split(&SplitRole::Database).len(), 6);
    let open = SplitParams::open_set()
        .new_identity_fraction(0.5)
        .query_per_identity(3)
        .min_database_per_identity(2)
        .seed(3)
        .split(&ds)
        .unwrap();
    let per = per_key(&open);
    assert_eq!(per.values().filter(|(db, _)| *db == 0).count(), 2);
    assert!(per.values().all(|&(db, q)| db == 0 || q == 0), "{per:?}");
}

#[test]
fn identities_are_keyed_by_dataset() {
    // Two datasets both call an individual `7`: they are two identities.
    let ds = sized(&[
        (Some("turtles"), "7", 4),
        (Some("lynx"), "7", 4),
        (Some("lynx"), "8", 4),
    ]);
    let out = SplitParams::closed_set()
        .query_per_identity(1)
        .split(&ds)
        .unwrap();
    let per = per_key(&out);
    assert_eq!(per.len(), 3);
    assert!(per.values().all(|&v| v == (3, 1)), "{per:?}");
    // Merged by name, `7` would give one query, not two.
    assert_eq!(ids_of(&out, &SplitRole::Query).len(), 2);
    assert_eq!(
        out.by_split(&SplitRole::Query)
            .records
            .iter()
            .filter(|r| r.identity.as_deref() == Some("7"))
            .count(),
        2
    );

    // Open set: round(0.5 × 2) = 1 of the two `7`s is new, the other stays
    // known (merged, the single `7` would be new entirely).
    let ds = sized(&[(Some("turtles"), "7", 4), (Some("lynx"), "7", 4)]);
    for seed in 0..8 {
        let out = SplitParams::open_set()
            .new_identity_fraction(0.5)
            .query_per_identity(1)
            .seed(seed)
            .split(&ds)
            .unwrap();
        let mut got: Vec<(usize, usize)> = per_key(&out).into_values().collect();
        got.sort();
        assert_eq!(got, vec![(0, 4), (3, 1)], "seed {seed}");
    }
}

#[test]
fn per_identity_settings_checked() {
    for (p, name) in [
        (
            SplitParams::closed_set().min_database_per_identity(0),
            "min_database_per_identity",
        ),
        (
            SplitParams::disjoint_set().query_per_identity(1),
            "query_per_identity",
        ),
        (
            SplitParams::time_aware().min_database_per_identity(2),
            "min_database_per_identity",
        ),
    ] {
        match p.clone().check() {
            Err(e @ DataError::InvalidParam { .. }) => {
                assert!(matches!(e, DataError::InvalidParam { name: got, .. } if got == name));
                let text = e.to_string();
                assert!(text.contains(name), "{text}");
            }
            other => panic!("{p:?}: {other:?}"),
        }
    }
    let err = SplitParams::closed_set()
        .min_database_per_identity(0)
        .check()
        .unwrap_err();
    assert!(err.to_string().contains("0;"), "{err}");
    assert!(
        SplitParams::open_set()
            .query_per_identity(0)
            .check()
            .is_ok()
    );
}
