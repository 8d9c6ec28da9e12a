//! BAKS, BAUS, the AnimalCLEF score and ARI: worked by hand and against
//! scikit-learn.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reid_openset::score::{
    adjusted_rand_index, animalclef_score, baks, baus, new_flags, open_set_score,
};
use reid_openset::{Decision, OpensetError};

fn k(id: &str) -> Decision {
    Decision::Known(id.into())
}

/// Known: a (3 queries, 1 right), b (1 query, right): BAKS = (1/3 + 1) / 2 =
/// 2/3 (a per-query accuracy would give 2/4). New: c (2 queries, 1 called
/// new), d (1 query, not): BAUS = (1/2 + 0) / 2 = 1/4.
#[test]
fn baks_baus_by_hand() {
    let truth = ["a", "a", "a", "b", "c", "c", "d"];
    let is_new = [false, false, false, false, true, true, true];
    let pred = [
        k("a"),
        k("b"),
        Decision::New,
        k("b"),
        Decision::New,
        k("a"),
        k("a"),
    ];
    let bk = baks(&truth, &pred, &is_new).unwrap().unwrap();
    let bu = baus(&truth, &pred, &is_new).unwrap().unwrap();
    assert!((bk - 2.0 / 3.0).abs() < 1e-12, "{bk}");
    assert!((bu - 0.25).abs() < 1e-12, "{bu}");
    let s = open_set_score(&truth, &pred, &is_new).unwrap();
    assert!((s.geometric_mean() - (1.0f64 / 6.0).sqrt()).abs() < 1e-12);
}

/// A known query predicted "new" or as another identity is wrong; a new
/// query predicted as any known identity is wrong.
#[test]
fn wrong_kinds_of_answers() {
    let truth = ["a", "a", "x"];
    let is_new = [false, false, true];
    let pred = [Decision::New, k("b"), k("x")];
    assert_eq!(baks(&truth, &pred, &is_new).unwrap(), Some(0.0));
    assert_eq!(baus(&truth, &pred, &is_new).unwrap(), Some(0.0));
}

/// No new query: BAUS undefined (the Kaggle metric's NaN) and the
/// geometric mean counts it as 0; likewise with no known query.
#[test]
fn empty_cases() {
    let s = open_set_score(&["a", "b"], &[k("a"), k("b")], &[false, false]).unwrap();
    assert_eq!(s.baks, Some(1.0));
    assert_eq!(s.baus, None);
    assert_eq!(s.geometric_mean(), 0.0);

    let s = open_set_score(&["x"], &[Decision::New], &[true]).unwrap();
    assert_eq!(s.baks, None);
    assert_eq!(s.baus, Some(1.0));
    assert_eq!(s.geometric_mean(), 0.0);

    let none: [&str; 0] = [];
    let s = open_set_score(&none, &[], &[]).unwrap();
    assert_eq!((s.baks, s.baus), (None, None));
    assert!(matches!(
        animalclef_score(&none, &[], &[], &none),
        Err(OpensetError::Empty { .. })
    ));
}

/// Three datasets: X as in `baks_baus_by_hand` (sqrt(1/6)), Y perfect (1),
/// Z without new queries (0). Score = (sqrt(1/6) + 1 + 0) / 3.
#[test]
fn animalclef_score_averages_datasets() {
    let truth = ["a", "a", "a", "b", "c", "c", "d", "e", "f", "g"];
    let is_new = [
        false, false, false, false, true, true, true, false, true, false,
    ];
    let pred = [
        k("a"),
        k("b"),
        Decision::New,
        k("b"),
        Decision::New,
        k("a"),
        k("a"),
        k("e"),
        Decision::New,
        k("g"),
    ];
    let ds = ["X", "X", "X", "X", "X", "X", "X", "Y", "Y", "Z"];
    let s = animalclef_score(&truth, &pred, &is_new, &ds).unwrap();
    let want = ((1.0f64 / 6.0).sqrt() + 1.0 + 0.0) / 3.0;
    assert!((s.score - want).abs() < 1e-12, "{} vs {want}", s.score);
    assert_eq!(s.per_dataset.len(), 3);
    assert_eq!(s.per_dataset["Z"].baus, None);
    assert_eq!(s.per_dataset["Y"].baks, Some(1.0));
}

#[test]
fn new_flags_from_database() {
    assert_eq!(
        new_flags(&["a", "z", "b"], &["a", "b", "b"]),
        vec![false, true, false]
    );
}

#[test]
fn submission_labels() {
    assert_eq!(k("lynx_7").submission_label(), "lynx_7");
    assert_eq!(Decision::New.submission_label(), "new_individual");
}

#[test]
fn length_mismatch_is_an_error() {
    let err = baks(&["a", "b"], &[k("a")], &[false, false]).unwrap_err();
    assert!(
        matches!(
            err,
            OpensetError::Length {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{err}"
    );
    let err = baus(&["a"], &[k("a")], &[false, true]).unwrap_err();
    assert!(matches!(err, OpensetError::Length { .. }));
    assert!(adjusted_rand_index(&[1, 2], &[1]).is_err());
}

/// [0,0,1,1] vs [0,0,1,2], ordered pairs: tp 2, fp 0, fn 2, tn 8, so
/// ARI = 2 (2·8 − 0) / ((2+2)(2+8) + (2+0)(0+8)) = 32 / 56 = 4/7.
#[test]
fn ari_by_hand() {
    let a = adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 2]).unwrap();
    assert!((a - 4.0 / 7.0).abs() < 1e-12, "{a}");
    // Renaming clusters changes nothing; strings work too.
    let b = adjusted_rand_index(&["x", "x", "y", "y"], &["p", "p", "q", "r"]).unwrap();
    assert!((a - b).abs() < 1e-15);
}

#[test]
fn ari_matches_sklearn() {
    let fx = common::sklearn_fixture();
    let cases = fx["ari"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for (i, c) in cases.iter().enumerate() {
        let a = common::i64s(&c["a"]);
        let b = common::i64s(&c["b"]);
        let want = c["ari"].as_f64().unwrap();
        let got = adjusted_rand_index(&a, &b).unwrap();
        assert!(
            (got - want).abs() < 1e-12,
            "case {i}: {got} vs sklearn {want}"
        );
    }
}
