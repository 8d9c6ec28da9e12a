//! Loader tests: the real AnimalCLEF 2025 and lion metadata, every kind of
//! bad input (fail-fast and skip modes), generic CSV layouts, round trips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use reid_data::loaders::{
    BboxColumns, CsvColumns, LoadOptions, load_animalclef, load_csv, load_folders, url_scheme,
    write_metadata_csv,
};
use reid_data::{BBox, DataError, Dataset, Date, Record, SplitRole};

mod common;
use common::shared;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const HEADER: &str = "image_id,identity,path,date,orientation,species,split,dataset\n";

// ---------------------------------------------------------------------------
// Real data

#[test]
fn animalclef2025_metadata() {
    let Some(shared) = shared() else { return };
    let csv = shared.join("datasets/animalclef2025/metadata.csv");
    let (ds, report) = load_animalclef(&csv, &LoadOptions::default()).unwrap();
    assert!(report.is_clean());
    assert_eq!(ds.len(), 15_209);
    assert_eq!(ds.root, shared.join("datasets/animalclef2025"));

    let expected: BTreeMap<(String, String), usize> = [
        ("LynxID2025", "database", 2957),
        ("LynxID2025", "query", 946),
        ("SalamanderID2025", "database", 1388),
        ("SalamanderID2025", "query", 689),
        ("SeaTurtleID2022", "database", 8729),
        ("SeaTurtleID2022", "query", 500),
    ]
    .into_iter()
    .map(|(d, s, n)| ((d.to_string(), s.to_string()), n))
    .collect();
    assert_eq!(ds.split_counts(), expected);

    for r in &ds.records {
        match r.split {
            Some(SplitRole::Query) => assert_eq!(r.identity, None, "{}", r.image_id),
            Some(SplitRole::Database) => assert!(r.identity.is_some(), "{}", r.image_id),
            ref other => panic!("unexpected split {other:?} for {}", r.image_id),
        }
    }
    assert_eq!(ds.num_individuals(), 1102);
    assert_eq!(
        ds.records.iter().filter(|r| r.date.is_some()).count(),
        11_302
    );
    let stats = ds.stats();
    assert_eq!(stats.labelled_images, 2957 + 1388 + 8729);
    assert_eq!(stats.singletons, 317);
    assert_eq!(stats.per_identity.unwrap().min, 1);
    assert_eq!(stats.per_identity.unwrap().max, 353);
    assert_eq!(stats.per_species["loggerhead turtle"], 9229);
    assert_eq!(stats.per_species["(none)"], 1388);

    let first = &ds.records[0];
    assert_eq!(first.image_id, "0");
    assert_eq!(first.identity.as_deref(), Some("LynxID2025_lynx_37"));
    assert_eq!(
        first.path,
        shared.join(
            "datasets/animalclef2025/images/LynxID2025/database/\
             000f9ee1aad063a4485379ec06741251344f57ba0e8e6546dfc4c3b83f28c0db.jpg"
        )
    );
    assert_eq!(first.orientation.as_deref(), Some("right"));
    assert_eq!(first.species.as_deref(), Some("lynx"));
    assert_eq!(first.date, None);
    assert!(first.attributes.is_empty());

    // The images are not shipped: check_files reports the first one by name.
    let opts = LoadOptions::default().with_check_files(true);
    let err = load_animalclef(&csv, &opts).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("000f9ee1aad063a4"), "{err}");

    // Round trip through a file outside the data folder (absolute paths).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy.csv");
    write_metadata_csv(&out, &ds).unwrap();
    let (back, _) = load_animalclef(&out, &LoadOptions::default()).unwrap();
    assert_eq!(back.records, ds.records);
}

#[test]
fn lion_csv() {
    let Some(shared) = shared() else { return };
    let (ds, report) = load_animalclef(
        &shared.join("datasets/lion/lion.csv"),
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(report.is_clean());
    assert_eq!(ds.len(), 740);
    assert_eq!(ds.num_individuals(), 94);
    let counts = ds.split_counts();
    assert_eq!(counts[&("lion".to_string(), "database".to_string())], 416);
    assert_eq!(counts[&("lion".to_string(), "query".to_string())], 324);
    assert_eq!(counts.len(), 2);
    assert!(
        ds.records
            .iter()
            .all(|r| r.date.is_none() && r.orientation.is_none())
    );
    assert!(ds.records.iter().all(|r| r.identity.is_some()));
    let stats = ds.stats();
    assert_eq!(stats.singletons, 0);
    let per = stats.per_identity.unwrap();
    assert_eq!((per.min, per.median, per.max), (3, 8.0, 11));
    // Every listed file exists and is non-empty.
    let opts = LoadOptions::default().with_check_files(true);
    let (checked, _) = load_animalclef(&shared.join("datasets/lion/lion.csv"), &opts).unwrap();
    assert_eq!(checked.len(), 740);
}

#[test]
fn lion_folders() {
    let Some(shared) = shared() else { return };
    let root = shared.join("datasets/lion");
    let (ds, report) = load_folders(&root, &LoadOptions::default()).unwrap();
    assert!(report.is_clean());
    assert_eq!(ds.len(), 740);
    assert_eq!(ds.num_individuals(), 94);
    assert_eq!(
        ds.records
            .iter()
            .filter(|r| r.image_id.starts_with("train/"))
            .count(),
        594
    );
    assert_eq!(
        ds.records
            .iter()
            .filter(|r| r.image_id.starts_with("val/"))
            .count(),
        146
    );
    // Sorted, deterministic order.
    let ids: Vec<&str> = ds.records.iter().map(|r| r.image_id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(ds.records[0].image_id, "train/Ayo/Ayo_Body.png");

    // Agrees with lion.csv: same files, identity = folder name = csv identity without `lion_`.
    let (csv, _) = load_animalclef(&root.join("lion.csv"), &LoadOptions::default()).unwrap();
    let by_path: BTreeMap<&Path, &Record> =
        ds.records.iter().map(|r| (r.path.as_path(), r)).collect();
    for r in &csv.records {
        let f = by_path[r.path.as_path()];
        assert_eq!(
            f.identity.as_deref(),
            r.identity.as_deref().and_then(|s| s.strip_prefix("lion_"))
        );
    }
}

#[test]
fn ayo_first_file_check() {
    // Keep the expectation above honest: the first sorted file really exists.
    let Some(shared) = shared() else { return };
    assert!(
        shared
            .join("datasets/lion/train/Ayo/Ayo_Body.png")
            .is_file()
    );
}

// ---------------------------------------------------------------------------
// Bad input, fail fast

fn err_of(path: &Path) -> DataError {
    load_animalclef(path, &LoadOptions::default()).unwrap_err()
}

fn assert_bad_row(err: &DataError, csv: &Path, want_line: u64, needle: &str) {
    match err {
        DataError::BadRow { path, line, reason } => {
            assert_eq!(path, csv);
            assert_eq!(*line, want_line, "{reason}");
            assert!(reason.contains(needle), "`{reason}` lacks `{needle}`");
        }
        other => panic!("expected BadRow, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("{}:{want_line}: ", csv.display())),
        "{msg}"
    );
}

#[test]
fn missing_csv_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nope.csv");
    let err = err_of(&p);
    assert!(
        matches!(&err, DataError::Io { path, .. } if path == &p),
        "{err:?}"
    );
    assert!(err.to_string().contains("nope.csv"));
}

#[test]
fn empty_csv() {
    let dir = tempfile::tempdir().unwrap();
    let zero = write(dir.path(), "zero.csv", "");
    let err = err_of(&zero);
    assert!(matches!(err, DataError::Empty { .. }), "{err:?}");
    assert!(err.to_string().contains("zero.csv"), "{err}");
    let header_only = write(dir.path(), "header.csv", HEADER);
    let err = err_of(&header_only);
    assert!(matches!(err, DataError::Empty { .. }), "{err:?}");
    assert!(err.to_string().contains("header.csv"), "{err}");
}

#[test]
fn missing_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "m.csv",
        "image_id,path,species,split,dataset\n0,a.jpg,lynx,query,L\n",
    );
    let err = err_of(&p);
    match &err {
        DataError::MissingColumn { path, column, .. } => {
            assert_eq!(path, &p);
            assert_eq!(column, "identity");
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("m.csv") && msg.contains("`identity`"), "{msg}");

    // A generic loader asked for a column that is not there.
    let mut cols = CsvColumns::new("image_id", "path");
    cols.bbox = Some(BboxColumns::xywh("x", "y", "w", "h"));
    let err = load_csv(&p, &cols, &LoadOptions::default()).unwrap_err();
    assert!(matches!(&err, DataError::MissingColumn { column, .. } if column == "x"));
}

#[test]
fn wrong_column_count() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{HEADER}0,a,a.jpg,,left,lynx,database,L\n1,a,b.jpg,,left,lynx,database\n2,b,c.jpg,,,lynx,query,L,extra\n"
    );
    let p = write(dir.path(), "cols.csv", &text);
    assert_bad_row(&err_of(&p), &p, 3, "expected 8 fields");
    let (_, report) = load_animalclef(&p, &LoadOptions::skip()).unwrap();
    let lines: Vec<&str> = report.skipped.iter().map(|s| s.location.as_str()).collect();
    let base = p.display().to_string();
    assert_eq!(lines, [format!("{base}:3"), format!("{base}:4")]);
    assert_bad_row(&report.skipped[1].error, &p, 4, "found 9");
}

/// Line numbers count physical lines whatever the line ending; a split typo
/// and a database row without an identity are errors naming the line, not
/// rows silently left out of every evaluation.
#[test]
fn crlf_lines_split_typos_and_unlabelled_database_rows() {
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        "0,a,a.jpg,,,lynx,database,L",
        "1,a,b.jpg,,,lynx,database,L",
        "2,,c.jpg,,,lynx,query,L",
        "3,a,d.jpg,soon,,lynx,query,L",
    ];
    let crlf = format!("{}\r\n{}\r\n", HEADER.trim_end(), rows.join("\r\n"));
    let p = write(dir.path(), "crlf.csv", &crlf);
    assert_bad_row(&err_of(&p), &p, 5, "date");
    // A quoted field spanning two lines moves every later line number.
    let quoted = format!(
        "{HEADER}0,a,a.jpg,,\"left\r\nside\",lynx,database,L\r\n1,a,b.jpg,soon,,lynx,query,L\r\n"
    );
    let p = write(dir.path(), "quoted.csv", &quoted);
    assert_bad_row(&err_of(&p), &p, 4, "date");

    let typo = format!("{HEADER}0,a,a.jpg,,,lynx,database,L\n1,a,b.jpg,,,lynx,qurey,L\n");
    let p = write(dir.path(), "typo.csv", &typo);
    assert_bad_row(
        &err_of(&p),
        &p,
        3,
        "split `qurey` is neither `database` nor `query`",
    );
    // Synonyms and any case are fine; a generic CSV keeps other splits.
    let ok = format!("{HEADER}0,a,a.jpg,,,lynx,Gallery,L\n1,a,b.jpg,,,lynx,PROBE,L\n");
    let p = write(dir.path(), "ok.csv", &ok);
    let (ds, _) = load_animalclef(&p, &LoadOptions::default()).unwrap();
    assert_eq!(ds.records[0].split, Some(SplitRole::Database));
    assert_eq!(ds.records[1].split, Some(SplitRole::Query));
    let train = format!("{HEADER}0,a,a.jpg,,,lynx,train,L\n");
    let p = write(dir.path(), "train.csv", &train);
    let (ds, _) = load_csv(&p, &CsvColumns::default(), &LoadOptions::default()).unwrap();
    assert_eq!(ds.records[0].split, Some(SplitRole::Other("train".into())));

    let unlabelled = format!("{HEADER}0,a,a.jpg,,,lynx,database,L\n1,,b.jpg,,,lynx,database,L\n");
    let p = write(dir.path(), "unlabelled.csv", &unlabelled);
    assert_bad_row(&err_of(&p), &p, 3, "a database row needs an identity");
}

/// Two file names that differ only in bytes that are not UTF-8 stay two
/// records (a lossy conversion made both `a\u{FFFD}.jpg`).
#[cfg(unix)]
#[test]
fn non_utf8_file_names_stay_distinct() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let who = dir.path().join(std::ffi::OsStr::from_bytes(b"cat\xe9"));
    std::fs::create_dir(&who).unwrap();
    // Not decoded by the loader: any bytes will do.
    for name in [&b"a\xff.jpg"[..], b"a\xfe.jpg"] {
        std::fs::write(who.join(std::ffi::OsStr::from_bytes(name)), b"image").unwrap();
    }
    let (ds, _) = load_folders(dir.path(), &LoadOptions::default()).unwrap();
    let ids: Vec<&str> = ds.records.iter().map(|r| r.image_id.as_str()).collect();
    assert_eq!(ids, ["cat\\xE9/a\\xFE.jpg", "cat\\xE9/a\\xFF.jpg"]);
    assert_eq!(ds.records[0].identity.as_deref(), Some("cat\\xE9"));
}

#[test]
fn bad_dates() {
    let dir = tempfile::tempdir().unwrap();
    for (i, bad) in ["2020-02-30", "12/03/2020", "2020-01-01 25:61:00", "soon"]
        .iter()
        .enumerate()
    {
        let text = format!(
            "{HEADER}0,a,a.jpg,2020-01-01 10:00:00,left,lynx,database,L\n1,a,b.jpg,{bad},left,lynx,database,L\n"
        );
        let p = write(dir.path(), &format!("d{i}.csv"), &text);
        assert_bad_row(&err_of(&p), &p, 3, "date");
    }
    // Good dates (with and without a time) are kept as dates.
    let text = format!("{HEADER}0,a,a.jpg,2020-01-02 10:00:00,,,,\n1,a,b.jpg,2021-12-31,,,,\n");
    let p = write(dir.path(), "ok.csv", &text);
    let (ds, _) = load_animalclef(&p, &LoadOptions::default()).unwrap();
    let d = |year, month, day| Some(Date { year, month, day });
    assert_eq!(ds.records[0].date, d(2020, 1, 2));
    assert_eq!(ds.records[1].date, d(2021, 12, 31));
}

#[test]
fn bad_bboxes() {
    let dir = tempfile::tempdir().unwrap();
    let xywh_header = "image_id,path,x,y,w,h\n";
    let cases = [
        ("1,b.jpg,abc,0,10,10", "not a number"),
        ("1,b.jpg,0,0,-5,10", "non-positive size"),
        ("1,b.jpg,0,0,10,NaN", "not a finite number"),
        ("1,b.jpg,0,0,10,", "partly filled"),
    ];
    let mut cols = CsvColumns::new("image_id", "path");
    cols.bbox = Some(BboxColumns::xywh("x", "y", "w", "h"));
    for (i, (row, needle)) in cases.iter().enumerate() {
        let text = format!("{xywh_header}0,a.jpg,1,2,3,4\n{row}\n");
        let p = write(dir.path(), &format!("b{i}.csv"), &text);
        let err = load_csv(&p, &cols, &LoadOptions::default()).unwrap_err();
        assert_bad_row(&err, &p, 3, needle);
    }

    // Corner format: x2 < x1 is a negative width.
    let mut corners = CsvColumns::new("id", "file");
    corners.bbox = Some(BboxColumns::xyxy("x1", "y1", "x2", "y2"));
    let p = write(
        dir.path(),
        "xyxy.csv",
        "id,file,x1,y1,x2,y2\n0,a.jpg,10,20,30,60\n1,b.jpg,50,0,40,10\n",
    );
    let err = load_csv(&p, &corners, &LoadOptions::default()).unwrap_err();
    assert_bad_row(&err, &p, 3, "non-positive size");

    // One-column list format.
    let mut list = CsvColumns::new("image_id", "path");
    list.bbox = Some(BboxColumns::List("box".into()));
    for (i, cell) in ["\"[1, 2, 3]\"", "\"[1, x, 3, 4]\"", "\"[1, 2, 0, 4]\""]
        .iter()
        .enumerate()
    {
        let text = format!("image_id,path,box\n0,a.jpg,\"[1, 2, 3, 4]\"\n1,b.jpg,{cell}\n");
        let p = write(dir.path(), &format!("l{i}.csv"), &text);
        let err = load_csv(&p, &list, &LoadOptions::default()).unwrap_err();
        assert_bad_row(&err, &p, 3, "box");
    }
}

#[test]
fn empty_id_or_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "e.csv",
        &format!("{HEADER}0,a,a.jpg,,,,,\n,a,b.jpg,,,,,\n"),
    );
    assert_bad_row(&err_of(&p), &p, 3, "empty image_id");
    let p = write(
        dir.path(),
        "f.csv",
        &format!("{HEADER}0,a,a.jpg,,,,,\n1,a,,,,,,\n"),
    );
    assert_bad_row(&err_of(&p), &p, 3, "empty path");
}

#[test]
fn duplicate_image_id() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "dup.csv",
        &format!("{HEADER}7,a,a.jpg,,,,,\n8,a,b.jpg,,,,,\n7,b,c.jpg,,,,,\n"),
    );
    let err = err_of(&p);
    match &err {
        DataError::DuplicateId {
            path,
            line,
            image_id,
            first_line,
        } => {
            assert_eq!(path, &p);
            assert_eq!((*line, *first_line), (4, 2));
            assert_eq!(image_id, "7");
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("dup.csv:4") && msg.contains("line 2"), "{msg}");
}

#[test]
fn check_files_missing_and_zero_byte() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("img")).unwrap();
    std::fs::write(dir.path().join("img/good.jpg"), b"\xff\xd8\xff").unwrap();
    std::fs::write(dir.path().join("img/zero.jpg"), b"").unwrap();
    let opts = LoadOptions::default().with_check_files(true);

    let p = write(
        dir.path(),
        "m.csv",
        &format!("{HEADER}0,a,img/good.jpg,,,,,\n1,a,img/missing.jpg,,,,,\n"),
    );
    let err = load_animalclef(&p, &opts).unwrap_err();
    match &err {
        DataError::Io { path, source } => {
            assert_eq!(path, &dir.path().join("img/missing.jpg"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("img/missing.jpg"));
    // Without check_files the row loads.
    assert_eq!(
        load_animalclef(&p, &LoadOptions::default())
            .unwrap()
            .0
            .len(),
        2
    );

    let p = write(
        dir.path(),
        "z.csv",
        &format!("{HEADER}0,a,img/good.jpg,,,,,\n1,a,img/zero.jpg,,,,,\n"),
    );
    let err = load_animalclef(&p, &opts).unwrap_err();
    assert!(
        matches!(&err, DataError::EmptyFile { path } if path == &dir.path().join("img/zero.jpg")),
        "{err:?}"
    );
    assert!(err.to_string().contains("zero.jpg"));

    // Skip mode names the row of each bad file.
    let (ds, report) = load_animalclef(&p, &LoadOptions::skip().with_check_files(true)).unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].location, format!("{}:3", p.display()));
}

// ---------------------------------------------------------------------------
// Skip mode

#[test]
fn skip_mode_reports_exactly_the_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{HEADER}\
         0,a,a.jpg,2020-01-01,left,lynx,database,L\n\
         1,a,b.jpg,2020-13-01,left,lynx,database,L\n\
         2,b,c.jpg,,left,lynx,query\n\
         3,b,d.jpg,,right,lynx,database,L\n\
         0,c,e.jpg,,right,lynx,database,L\n\
         ,c,f.jpg,,right,lynx,database,L\n\
         6,,g.jpg,,top,lynx,query,L\n"
    );
    let p = write(dir.path(), "mixed.csv", &text);
    // Fail fast stops at the first one.
    assert_bad_row(&err_of(&p), &p, 3, "month 13");

    let (ds, report) = load_animalclef(&p, &LoadOptions::skip()).unwrap();
    let ids: Vec<&str> = ds.records.iter().map(|r| r.image_id.as_str()).collect();
    assert_eq!(ids, ["0", "3", "6"]);
    assert_eq!(ds.records[2].identity, None);
    let base = p.display().to_string();
    let got: Vec<(String, &'static str)> = report
        .skipped
        .iter()
        .map(|s| {
            let kind = match s.error {
                DataError::BadRow { .. } => "BadRow",
                DataError::DuplicateId { .. } => "DuplicateId",
                _ => "other",
            };
            (s.location.clone(), kind)
        })
        .collect();
    assert_eq!(
        got,
        [
            (format!("{base}:3"), "BadRow"),
            (format!("{base}:4"), "BadRow"),
            (format!("{base}:6"), "DuplicateId"),
            (format!("{base}:7"), "BadRow"),
        ]
    );

    // All rows bad: Empty, naming the file and the first reason.
    let p = write(
        dir.path(),
        "allbad.csv",
        &format!("{HEADER}0,a,a.jpg,x,,,,\n"),
    );
    let err = load_animalclef(&p, &LoadOptions::skip()).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }));
    assert!(err.to_string().contains("allbad.csv:2"), "{err}");
}

#[test]
fn folders_zero_byte_and_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (p, bytes) in [
        ("train/b/1.JPG", &b"x"[..]),
        ("train/a/2.png", b"x"),
        ("train/a/1.jpeg", b"x"),
        ("val/c/x.webp", b"x"),
        ("val/c/notes.txt", b"x"),
        ("val/c/.hidden.jpg", b"x"),
        ("val/c/empty.jpg", b""),
        ("loose.bmp", b"x"),
    ] {
        let f = root.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, bytes).unwrap();
    }
    let err = load_folders(root, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(&err, DataError::EmptyFile { path } if path == &root.join("val/c/empty.jpg")),
        "{err:?}"
    );
    assert!(err.to_string().contains("empty.jpg"));

    let (ds, report) = load_folders(root, &LoadOptions::skip()).unwrap();
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(
        report.skipped[0].location,
        root.join("val/c/empty.jpg").display().to_string()
    );
    let got: Vec<(&str, Option<&str>)> = ds
        .records
        .iter()
        .map(|r| (r.image_id.as_str(), r.identity.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("loose.bmp", None),
            ("train/a/1.jpeg", Some("a")),
            ("train/a/2.png", Some("a")),
            ("train/b/1.JPG", Some("b")),
            ("val/c/x.webp", Some("c")),
        ]
    );
    assert_eq!(ds.records[1].path, root.join("train/a/1.jpeg"));

    // Missing root, and a root with no images.
    let err = load_folders(&root.join("nope"), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }) && err.to_string().contains("nope"));
    std::fs::create_dir(root.join("void")).unwrap();
    let err = load_folders(&root.join("void"), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }) && err.to_string().contains("void"));
}

// ---------------------------------------------------------------------------
// Generic CSV and round trips

#[test]
fn generic_csv_any_order_and_bbox_formats() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "user.csv",
        "file,left,top,width,height,animal,camera\n\
         /abs/a.jpg,1.5,2,30,40,zebra_1,cam7\n\
         rel/b.jpg,0,0,10,20,zebra_2,\n",
    );
    let mut cols = CsvColumns::new("file", "file");
    cols.identity = Some("animal".into());
    cols.bbox = Some(BboxColumns::xywh("left", "top", "width", "height"));
    let (ds, _) = load_csv(&p, &cols, &LoadOptions::default()).unwrap();
    assert_eq!(ds.records[0].path, PathBuf::from("/abs/a.jpg"));
    assert_eq!(ds.records[1].path, dir.path().join("rel/b.jpg"));
    assert_eq!(
        ds.records[0].bbox,
        Some(BBox {
            x: 1.5,
            y: 2.0,
            w: 30.0,
            h: 40.0
        })
    );
    assert_eq!(ds.records[0].attributes["camera"], "cam7");
    assert!(ds.records[1].attributes.is_empty());
    assert_eq!(ds.records[1].identity.as_deref(), Some("zebra_2"));

    // Corners and list formats give the same boxes.
    let mut corners = CsvColumns::new("id", "p");
    corners.bbox = Some(BboxColumns::xyxy("x1", "y1", "x2", "y2"));
    let p = write(
        dir.path(),
        "c.csv",
        "x2,y2,p,id,x1,y1\n31.5,42,a.jpg,0,1.5,2\n",
    );
    let (ds, _) = load_csv(&p, &corners, &LoadOptions::default()).unwrap();
    assert_eq!(ds.records[0].bbox.unwrap().w, 30.0);
    assert_eq!(ds.records[0].bbox.unwrap().h, 40.0);

    // AnimalCLEF loader picks up a `bbox` list column, in any column order.
    let p = write(
        dir.path(),
        "l.csv",
        "dataset,split,species,path,identity,image_id,bbox\n\
         D,database,lynx,a.jpg,x,0,\"[1.5, 2, 30, 40]\"\n\
         D,query,lynx,b.jpg,,1,\n",
    );
    let (ds, _) = load_animalclef(&p, &LoadOptions::default()).unwrap();
    assert_eq!(ds.records[0].bbox.unwrap().x, 1.5);
    assert_eq!(ds.records[1].bbox, None);
    assert_eq!(ds.records[1].identity, None);
    assert_eq!(ds.records[0].dataset.as_deref(), Some("D"));
}

#[test]
fn header_quirks() {
    let dir = tempfile::tempdir().unwrap();
    // pandas `to_csv` with its index: an unnamed first column, and a BOM.
    let p = write(
        dir.path(),
        "pandas.csv",
        "\u{feff},image_id,identity,path,species,split,dataset\n\
         0,a0,x,a.jpg,lynx,database,L\n\
         1,a1,,b.jpg,lynx,query,L\n",
    );
    let (ds, _) = load_animalclef(&p, &LoadOptions::default()).unwrap();
    assert_eq!(ds.records[1].image_id, "a1");
    assert_eq!(ds.records[1].attributes["column1"], "1");

    // A repeated column name is rejected on line 1.
    let p = write(
        dir.path(),
        "twice.csv",
        "image_id,identity,path,species,split,dataset,path\n0,x,a.jpg,lynx,database,L,b.jpg\n",
    );
    assert_bad_row(&err_of(&p), &p, 1, "`path` appears twice");
}

fn sample_dataset(root: &Path) -> Dataset {
    let mut recs = Vec::new();
    for i in 0..6 {
        let mut r = Record::new(format!("img{i}"), root.join(format!("images/{i}.jpg")));
        r.identity = (i != 5).then(|| format!("id,{}", i % 2)); // comma needs quoting
        r.species = Some("lynx".into());
        r.split = Some(SplitRole::parse(if i < 4 { "database" } else { "query" }));
        r.dataset = Some("Synth".into());
        r.orientation = (i % 2 == 0).then(|| "left".to_string());
        r.date = (i > 2).then_some(Date {
            year: 2024,
            month: 2,
            day: 29,
        });
        r.bbox = (i % 3 == 0).then_some(BBox {
            x: 0.1,
            y: 2.0 / 3.0,
            w: 17.25,
            h: 1e-3,
        });
        if i == 1 {
            r.attributes.insert("camera".into(), "trap \"7\"".into());
        }
        recs.push(r);
    }
    // A path outside the CSV's folder.
    recs[4].path = PathBuf::from("/elsewhere/x.png");
    Dataset::new(root, recs)
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let ds = sample_dataset(dir.path());
    let out = dir.path().join("meta.csv");
    write_metadata_csv(&out, &ds).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "image_id,identity,path,date,orientation,species,split,dataset,\
         bbox_x,bbox_y,bbox_w,bbox_h,camera"
    );
    assert_eq!(
        lines.next().unwrap(),
        "img0,\"id,0\",images/0.jpg,,left,lynx,database,Synth,0.1,0.6666667,17.25,0.001,"
    );
    assert!(text.contains(",/elsewhere/x.png,"));
    let (back, report) = load_animalclef(&out, &LoadOptions::default()).unwrap();
    assert!(report.is_clean());
    assert_eq!(back, ds);

    // Without boxes or attributes: exactly the eight AnimalCLEF columns.
    let mut plain = ds.clone();
    for r in &mut plain.records {
        r.bbox = None;
        r.attributes.clear();
    }
    let out2 = dir.path().join("plain.csv");
    write_metadata_csv(&out2, &plain).unwrap();
    let text = std::fs::read_to_string(&out2).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        "image_id,identity,path,date,orientation,species,split,dataset"
    );
    assert_eq!(
        load_animalclef(&out2, &LoadOptions::default()).unwrap().0,
        plain
    );

    // Overwriting keeps no temporary files around.
    write_metadata_csv(&out2, &plain).unwrap();
    let names: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["meta.csv", "plain.csv"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}

#[test]
fn writer_rejects_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut ds = sample_dataset(dir.path());
    ds.records[3].image_id = "img1".into();
    let out = dir.path().join("dup.csv");
    let err = write_metadata_csv(&out, &ds).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::DuplicateId {
                line: 5,
                first_line: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!out.exists());
}

#[test]
fn url_cells_are_kept_as_they_are_and_not_checked_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("img")).unwrap();
    std::fs::write(dir.path().join("img/good.jpg"), b"\xff\xd8\xff").unwrap();
    let p = write(
        dir.path(),
        "m.csv",
        &format!(
            "{HEADER}0,a,img/good.jpg,,,,,\n1,a,https://photos.example.org/a/1.jpg?sig=x,,,,,\n\
             2,b,HTTP://10.0.0.2:8080/b.png,,,,,\n3,b,ftp://host/c.jpg,,,,,\n"
        ),
    );
    let opts = LoadOptions::skip().with_check_files(true);
    let (ds, report) = load_animalclef(&p, &opts).unwrap();
    let paths: Vec<String> = ds
        .records
        .iter()
        .map(|r| r.path.display().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            dir.path().join("img/good.jpg").display().to_string(),
            "https://photos.example.org/a/1.jpg?sig=x".into(),
            "HTTP://10.0.0.2:8080/b.png".into(),
        ]
    );
    // Another scheme is a relative path like any other: joined, checked,
    // and missing.
    assert_eq!(report.skipped.len(), 1);
    assert!(
        report.skipped[0].error.to_string().contains("host/c.jpg"),
        "{}",
        report.skipped[0].error
    );
}

#[test]
fn url_schemes_are_read_by_rfc_3986_syntax() {
    let cases: [(&str, Option<&str>); 8] = [
        ("HTTPS://host/a.jpg", Some("https")),
        ("s3+tls://bucket/key", Some("s3+tls")),
        ("gs://b/k", Some("gs")),
        ("1http://x", None),
        ("://x", None),
        ("ht tp://x", None),
        ("/data/cows/0001.jpg", None),
        ("C:\\photos\\a.jpg", None),
    ];
    for (s, want) in cases {
        assert_eq!(url_scheme(s).as_deref(), want, "{s}");
    }
}
