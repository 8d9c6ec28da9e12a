//! The AnimalCLEF submission: write, read back, atomic writes, malformed
//! files, validation, and a submission for the real AnimalCLEF 2025
//! metadata (from `../shared`, skipped when absent).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

// The shared-data lookup of the reid-data tests, which skips when absent.
mod common;

use std::collections::BTreeMap;
use std::path::Path;

use reid_data::{Dataset, Record, SplitRole};
use reid_eval::EvalError;
use reid_eval::submission::{
    SubmissionProblem, SubmissionReference, SubmissionRow, read_submission, submission_rows,
    write_submission, write_validated_submission,
};
use reid_openset::Decision;

fn known(id: &str) -> Decision {
    Decision::Known(id.into())
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn problems(e: EvalError) -> Vec<SubmissionProblem> {
    match e {
        EvalError::InvalidSubmission { problems } => problems,
        other => panic!("expected InvalidSubmission, got {other}"),
    }
}

#[test]
fn write_then_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("submission.csv");
    let rows = submission_rows(
        &["0", "17", "3"],
        &[
            known("LynxID2025_lynx_37"),
            Decision::New,
            known("odd, name \"q\""),
        ],
    )
    .unwrap();
    write_submission(&path, &rows).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "image_id,identity\n0,LynxID2025_lynx_37\n17,new_individual\n3,\"odd, name \"\"q\"\"\"\n"
    );
    assert_eq!(read_submission(&path).unwrap(), rows);
    // Nothing else is left in the folder (the temporary file was renamed).
    assert_eq!(files_in(dir.path()), vec!["submission.csv"]);

    // A hand-written file: columns swapped, spaces, a byte-order mark.
    let hand = dir.path().join("hand.csv");
    std::fs::write(
        &hand,
        "\u{feff}identity, image_id\n new_individual , 5\nSeaTurtleID2022_t001,6\n",
    )
    .unwrap();
    assert_eq!(
        read_submission(&hand).unwrap(),
        vec![
            SubmissionRow::new("5", Decision::New),
            SubmissionRow::new("6", known("SeaTurtleID2022_t001"))
        ]
    );
    let e = submission_rows(&["0"], &[]).unwrap_err();
    assert!(
        matches!(
            e,
            EvalError::LengthMismatch {
                expected: 1,
                got: 0,
                ..
            }
        ),
        "{e}"
    );
}

/// A rejected write leaves the existing file as it was and no temporary
/// file behind: the rows were streamed into the temporary file first.
#[test]
fn failed_write_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("submission.csv");
    std::fs::write(&path, "image_id,identity\nold,new_individual\n").unwrap();
    let rows = vec![
        SubmissionRow::new("1", Decision::New),
        SubmissionRow::new("2", known("LynxID2025_lynx_01")),
        SubmissionRow::new("1", known("LynxID2025_lynx_02")),
        SubmissionRow::new("", Decision::New),
        SubmissionRow::new("4", known("new_individual")),
        SubmissionRow::new("5", known(" padded")),
    ];
    let p = problems(write_submission(&path, &rows).unwrap_err());
    assert_eq!(p.len(), 4, "{p:?}");
    assert_eq!(
        p[0],
        SubmissionProblem::Duplicate {
            row: 3,
            image_id: "1".into(),
            first_row: 1
        }
    );
    assert!(
        matches!(&p[1], SubmissionProblem::BadValue { row: 4, reason } if reason.contains("image_id is empty"))
    );
    assert!(matches!(&p[2], SubmissionProblem::BadValue { row: 5, .. }));
    assert!(
        matches!(&p[3], SubmissionProblem::BadValue { row: 6, reason } if reason.contains("spaces"))
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "image_id,identity\nold,new_individual\n"
    );
    assert_eq!(files_in(dir.path()), vec!["submission.csv"]);

    // An I/O failure (the folder is a file) names the path.
    let blocker = dir.path().join("not_a_folder");
    std::fs::write(&blocker, "x").unwrap();
    let e = write_submission(&blocker.join("s.csv"), &rows[..1]).unwrap_err();
    assert!(
        matches!(&e, EvalError::Io { path, .. } if path.ends_with("not_a_folder/s.csv")),
        "{e}"
    );
}

#[test]
fn malformed_files_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let p = write("fields.csv", "image_id,identity\n1,new_individual\n2\n");
    let e = read_submission(&p).unwrap_err();
    assert!(matches!(&e, EvalError::BadRow { line: 3, .. }), "{e}");
    assert!(e.to_string().contains("fields.csv:3"), "{e}");
    let p = write("empty_field.csv", "image_id,identity\n1,\n");
    let e = read_submission(&p).unwrap_err();
    assert!(
        matches!(&e, EvalError::BadRow { line: 2, reason, .. } if reason.contains("identity")),
        "{e}"
    );
    let p = write("column.csv", "image_id,label\n1,x\n");
    let e = read_submission(&p).unwrap_err();
    assert!(
        matches!(
            &e,
            EvalError::MissingColumn {
                column: "identity",
                ..
            }
        ),
        "{e}"
    );
    let p = write("extra.csv", "image_id,identity,score\n1,x,0.5\n");
    let e = read_submission(&p).unwrap_err();
    assert!(
        matches!(&e, EvalError::BadRow { line: 1, reason, .. } if reason.contains("score")),
        "{e}"
    );
    let p = dir.path().join("utf8.csv");
    std::fs::write(&p, b"image_id,identity\n1,new_individual\n2,\xff\xfe\n").unwrap();
    let e = read_submission(&p).unwrap_err();
    assert!(matches!(&e, EvalError::BadRow { line: 3, .. }), "{e}");
    let e = read_submission(&dir.path().join("missing.csv")).unwrap_err();
    assert!(matches!(&e, EvalError::Io { .. }), "{e}");
    // A header alone is a valid file with no rows.
    let p = write("header.csv", "image_id,identity\n");
    assert!(read_submission(&p).unwrap().is_empty());
}

fn record(id: &str, identity: Option<&str>, split: &str, dataset: &str) -> Record {
    let mut r = Record::new(id, format!("{id}.jpg"));
    r.identity = identity.map(Into::into);
    r.split = Some(SplitRole::parse(split));
    r.dataset = Some(dataset.into());
    r
}

/// Two datasets, two queries each.
fn small_reference() -> SubmissionReference {
    let ds = Dataset::new(
        ".",
        vec![
            record("0", Some("LynxID2025_lynx_00"), "database", "LynxID2025"),
            record("1", Some("LynxID2025_lynx_01"), "database", "LynxID2025"),
            record(
                "2",
                Some("SeaTurtleID2022_t001"),
                "database",
                "SeaTurtleID2022",
            ),
            record("3", None, "query", "LynxID2025"),
            record("4", None, "query", "LynxID2025"),
            record("5", None, "query", "SeaTurtleID2022"),
            record("6", None, "query", "SeaTurtleID2022"),
            record("7", Some("x"), "train", "Other"),
        ],
    );
    SubmissionReference::from_dataset(&ds).unwrap()
}

#[test]
fn validation_reports_every_problem() {
    let r = small_reference();
    assert_eq!(r.num_queries(), 4);
    assert_eq!(r.dataset_of("5"), Some("SeaTurtleID2022"));
    assert_eq!(r.dataset_of("0"), None);
    assert_eq!(r.database_identities("LynxID2025").unwrap().len(), 2);
    assert!(r.database_identities("Other").is_none());
    let good = vec![
        SubmissionRow::new("6", known("SeaTurtleID2022_t001")),
        SubmissionRow::new("3", known("LynxID2025_lynx_01")),
        SubmissionRow::new("4", Decision::New),
        SubmissionRow::new("5", Decision::New),
    ];
    r.validate(&good).unwrap();

    let bad = vec![
        SubmissionRow::new("3", known("SeaTurtleID2022_t001")), // another dataset's
        SubmissionRow::new("4", known("LynxID2025_lynx_99")),   // no such identity
        SubmissionRow::new("3", Decision::New),                 // repeated
        SubmissionRow::new("0", Decision::New),                 // a database image
        SubmissionRow::new("99", Decision::New),                // unknown
    ];
    let e = r.validate(&bad).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("invalid submission: 7 problem(s): row 1:"),
        "{msg}"
    );
    assert_eq!(
        problems(e),
        vec![
            SubmissionProblem::UnknownIdentity {
                row: 1,
                image_id: "3".into(),
                identity: "SeaTurtleID2022_t001".into(),
                dataset: "LynxID2025".into(),
                belongs_to: Some("SeaTurtleID2022".into()),
            },
            SubmissionProblem::UnknownIdentity {
                row: 2,
                image_id: "4".into(),
                identity: "LynxID2025_lynx_99".into(),
                dataset: "LynxID2025".into(),
                belongs_to: None,
            },
            SubmissionProblem::Duplicate {
                row: 3,
                image_id: "3".into(),
                first_row: 1
            },
            SubmissionProblem::UnknownImage {
                row: 4,
                image_id: "0".into()
            },
            SubmissionProblem::UnknownImage {
                row: 5,
                image_id: "99".into()
            },
            SubmissionProblem::Missing {
                image_id: "5".into()
            },
            SubmissionProblem::Missing {
                image_id: "6".into()
            },
        ]
    );

    // The checked writer writes nothing for an invalid submission.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.csv");
    assert!(write_validated_submission(&path, &bad, &r).is_err());
    assert!(!path.exists());
    write_validated_submission(&path, &good, &r).unwrap();
    assert_eq!(read_submission(&path).unwrap(), good);

    // Metadata without queries cannot check anything.
    let ds = Dataset::new(".", vec![record("0", Some("a"), "database", "d")]);
    let e = SubmissionReference::from_dataset(&ds).unwrap_err();
    assert!(matches!(e, EvalError::Empty { .. }), "{e}");
}

/// A malformed metadata row is an error naming the file and line (from the
/// reid-data loader).
#[test]
fn malformed_metadata_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("metadata.csv");
    std::fs::write(
        &p,
        "image_id,identity,path,date,orientation,species,split,dataset\n\
         0,LynxID2025_lynx_00,a.jpg,,left,lynx,database,LynxID2025\n\
         1,,b.jpg,,left,lynx,query\n",
    )
    .unwrap();
    let e = SubmissionReference::from_metadata(&p).unwrap_err();
    assert!(matches!(e, EvalError::Data(_)), "{e}");
    assert!(e.to_string().contains("metadata.csv:3"), "{e}");
}

/// The real AnimalCLEF 2025 metadata: a submission naming every query
/// `new_individual` except every 7th, which gets a database identity of its
/// own dataset, is written, read back and validated; a missing query, a
/// duplicate and an identity of another dataset are rejected.
#[test]
fn real_animalclef_metadata() {
    let Some(shared) = common::shared() else {
        return;
    };
    let meta = shared.join("datasets/animalclef2025/metadata.csv");
    let r = SubmissionReference::from_metadata(&meta).unwrap();
    assert_eq!(r.num_queries(), 2135);
    let mut per_dataset: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, d) in r.queries() {
        *per_dataset.entry(d).or_default() += 1;
    }
    assert_eq!(
        per_dataset.into_iter().collect::<Vec<_>>(),
        vec![
            ("LynxID2025", 946),
            ("SalamanderID2025", 689),
            ("SeaTurtleID2022", 500)
        ]
    );
    for (d, n) in [
        ("LynxID2025", 77),
        ("SalamanderID2025", 587),
        ("SeaTurtleID2022", 438),
    ] {
        let ids = r.database_identities(d).unwrap();
        assert_eq!(ids.len(), n, "{d}");
        assert!(ids.iter().all(|i| i.starts_with(&format!("{d}_"))), "{d}");
    }

    let rows: Vec<SubmissionRow> = r
        .queries()
        .enumerate()
        .map(|(i, (id, d))| {
            let decision = if i % 7 == 0 {
                let ids = r.database_identities(d).unwrap();
                known(ids.iter().nth(i % ids.len()).unwrap())
            } else {
                Decision::New
            };
            SubmissionRow::new(id, decision)
        })
        .collect();
    r.validate(&rows).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("submission.csv");
    write_validated_submission(&path, &rows, &r).unwrap();
    let back = read_submission(&path).unwrap();
    assert_eq!(back, rows);
    assert_eq!(back.len(), r.num_queries());
    let mut assigned = 0;
    for row in &back {
        let d = r.dataset_of(&row.image_id).unwrap();
        match &row.decision {
            Decision::New => {}
            Decision::Known(id) => {
                assert!(id.starts_with(&format!("{d}_")), "{id} for {d}");
                assigned += 1;
            }
        }
    }
    assert_eq!(assigned, 2135usize.div_ceil(7));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2136);
    assert_eq!(text.lines().next(), Some("image_id,identity"));

    // A missing query.
    let p = problems(r.validate(&back[1..]).unwrap_err());
    assert_eq!(
        p,
        vec![SubmissionProblem::Missing {
            image_id: back[0].image_id.clone()
        }]
    );
    // A duplicate.
    let mut dup = back.clone();
    dup.push(back[10].clone());
    let p = problems(r.validate(&dup).unwrap_err());
    assert_eq!(
        p,
        vec![SubmissionProblem::Duplicate {
            row: 2136,
            image_id: back[10].image_id.clone(),
            first_row: 11
        }]
    );
    // An identity of another dataset.
    let mut other = back.clone();
    let (qi, q) = back
        .iter()
        .enumerate()
        .find(|(_, q)| r.dataset_of(&q.image_id) == Some("LynxID2025"))
        .unwrap();
    other[qi].decision = known("SeaTurtleID2022_t001");
    let p = problems(r.validate(&other).unwrap_err());
    assert_eq!(
        p,
        vec![SubmissionProblem::UnknownIdentity {
            row: qi + 1,
            image_id: q.image_id.clone(),
            identity: "SeaTurtleID2022_t001".into(),
            dataset: "LynxID2025".into(),
            belongs_to: Some("SeaTurtleID2022".into()),
        }]
    );
}
