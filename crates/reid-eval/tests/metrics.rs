//! Metrics worked by hand: ranking (matrix and ranked lists), clustering
//! scores, silhouette, the re-exported open-set scores, and the errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ndarray::{Array2, array};
use reid_eval::metrics::{
    Decision, RankingParams, SilhouetteMetric, adjusted_mutual_info, adjusted_rand_index,
    animalclef_score, baks, baus, homogeneity_completeness_v_measure, mutual_info_score, new_flags,
    normalized_mutual_info, ranking_metrics, ranking_metrics_from_lists, silhouette_samples,
    silhouette_score,
};
use reid_eval::{EvalError, ParamGuard};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

const GALLERY: [&str; 5] = ["a", "b", "a", "c", "b"];
const QUERIES: [&str; 5] = ["a", "b", "c", "z", "a"];

/// Gallery labels `a b a c b` (indices 0..4).
///
/// - q0 `a`: scores .2 .9 .8 .1 .5 → order 1(b) 2(a) 4(b) 0(a) 3(c); hits at
///   ranks 2 and 4: AP = (1/2 + 2/4) / 2 = 0.5; first hit 2.
/// - q1 `b`: all .5, a tie broken by index → order 0(a) 1(b) 2(a) 3(c) 4(b);
///   hits at 2 and 5: AP = (1/2 + 2/5) / 2 = 0.45; first hit 2.
/// - q2 `c`: .3 .1 .2 .9 .7 → 3(c) first: AP 1; first hit 1.
/// - q3 `z`: no `z` in the gallery → excluded.
/// - q4 `a`: .6 .0 .6 -.5 .6, the three .6 tied → order 0(a) 2(a) 4(b) 1 3;
///   hits at 1 and 2: AP 1; first hit 1.
///
/// Evaluated 4 (1 excluded). CMC: rank 1 → 2/4, rank 2 → 4/4, then 1.
/// mAP = (0.5 + 0.45 + 1 + 1) / 4 = 0.7375.
fn hand_scores() -> Array2<f32> {
    array![
        [0.2, 0.9, 0.8, 0.1, 0.5],
        [0.5, 0.5, 0.5, 0.5, 0.5],
        [0.3, 0.1, 0.2, 0.9, 0.7],
        [0.9, 0.8, 0.7, 0.6, 0.5],
        [0.6, 0.0, 0.6, -0.5, 0.6],
    ]
}

#[test]
fn ranking_by_hand() {
    let params = RankingParams::default()
        .ks(&[2, 1, 2])
        .cmc_len(5)
        .check()
        .unwrap();
    assert_eq!(params.ks(), &[1, 2]);
    let m = ranking_metrics(hand_scores().view(), &QUERIES, &GALLERY, &params).unwrap();
    assert_eq!((m.evaluated, m.excluded), (4, 1));
    assert_eq!(m.cmc, vec![0.5, 1.0, 1.0, 1.0, 1.0]);
    assert_eq!(m.top_k, vec![(1, 0.5), (2, 1.0)]);
    assert_eq!(m.top_k(2), Some(1.0));
    assert_eq!(m.top_k(3), None);
    let first: Vec<Option<usize>> = m.per_query.iter().map(|q| q.first_hit).collect();
    assert_eq!(first, vec![Some(2), Some(2), Some(1), None, Some(1)]);
    let relevant: Vec<usize> = m.per_query.iter().map(|q| q.relevant).collect();
    assert_eq!(relevant, vec![2, 2, 1, 0, 2]);
    let ap: Vec<Option<f64>> = m.per_query.iter().map(|q| q.average_precision).collect();
    assert!(close(ap[0].unwrap(), 0.5));
    assert!(close(ap[1].unwrap(), 0.45));
    assert_eq!((ap[2], ap[3], ap[4]), (Some(1.0), None, Some(1.0)));
    assert!(close(m.mean_ap, 0.7375));
}

/// A CMC longer than the gallery stays at 1 past its end; k past the gallery
/// is 1 too (every evaluated query has its correct item somewhere).
#[test]
fn ranks_past_the_gallery() {
    let params = RankingParams::default()
        .ks(&[1, 10])
        .cmc_len(8)
        .check()
        .unwrap();
    let m = ranking_metrics(hand_scores().view(), &QUERIES, &GALLERY, &params).unwrap();
    assert_eq!(m.cmc, vec![0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    assert_eq!(m.top_k(10), Some(1.0));
}

/// `-inf` masks an item (ranked last), `+inf` puts it first.
///
/// Gallery `a b a`, query `a`, scores -inf .5 +inf → order 2(a) 1(b) 0(a):
/// hits at 1 and 3, AP = (1 + 2/3) / 2 = 5/6.
#[test]
fn infinite_scores_rank_at_the_ends() {
    let s = array![[f32::NEG_INFINITY, 0.5, f32::INFINITY]];
    let m = ranking_metrics(
        s.view(),
        &["a"],
        &["a", "b", "a"],
        &RankingParams::default().check().unwrap(),
    )
    .unwrap();
    assert!(close(m.mean_ap, 5.0 / 6.0));
    assert_eq!(m.per_query[0].first_hit, Some(1));
}

/// The top-3 lists of [`hand_scores`] (w = 3 < gallery 5):
/// q0 [1 2 4]: hit at 2 of 2 correct → AP@3 = (1/2) / 2 = 0.25;
/// q1 [0 1 2]: hit at 2 → 0.25; q2 [3 4 0]: hit at 1 of 1 → 1;
/// q3 excluded; q4 [0 2 4]: hits at 1, 2 → 1. mAP@3 = 2.5 / 4 = 0.625,
/// CMC [0.5, 1, 1].
#[test]
fn ranked_lists_by_hand() {
    let lists: Array2<usize> = array![[1, 2, 4], [0, 1, 2], [3, 4, 0], [0, 1, 2], [0, 2, 4]];
    let params = RankingParams::default()
        .ks(&[1, 2, 3])
        .cmc_len(3)
        .check()
        .unwrap();
    let m = ranking_metrics_from_lists(lists.view(), &QUERIES, &GALLERY, &params).unwrap();
    assert_eq!((m.evaluated, m.excluded), (4, 1));
    assert_eq!(m.cmc, vec![0.5, 1.0, 1.0]);
    assert_eq!(m.top_k, vec![(1, 0.5), (2, 1.0), (3, 1.0)]);
    assert!(close(m.mean_ap, 0.625));
    assert!(close(m.per_query[0].average_precision.unwrap(), 0.25));

    // A query whose list holds no correct item: no first hit, AP@w 0.
    let lists: Array2<usize> = array![[1, 3]];
    let m = ranking_metrics_from_lists(
        lists.view(),
        &["a"],
        &GALLERY,
        &RankingParams::default()
            .ks(&[1, 2])
            .cmc_len(2)
            .check()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(m.per_query[0].first_hit, None);
    assert_eq!(m.mean_ap, 0.0);
    assert_eq!(m.cmc, vec![0.0, 0.0]);
}

/// Lists that cover the whole gallery give exactly the matrix metrics.
#[test]
fn full_lists_equal_the_matrix() {
    let lists: Array2<usize> = array![
        [1, 2, 4, 0, 3],
        [0, 1, 2, 3, 4],
        [3, 4, 0, 2, 1],
        [0, 1, 2, 3, 4],
        [0, 2, 4, 1, 3]
    ];
    let params = RankingParams::default()
        .ks(&[1, 5, 7])
        .cmc_len(9)
        .check()
        .unwrap();
    let a = ranking_metrics(hand_scores().view(), &QUERIES, &GALLERY, &params).unwrap();
    let b = ranking_metrics_from_lists(lists.view(), &QUERIES, &GALLERY, &params).unwrap();
    assert_eq!(a, b);
}

#[test]
fn ranking_errors() {
    let s = hand_scores();
    let p = RankingParams::default().check().unwrap();
    let e = ranking_metrics(s.view(), &QUERIES[..4], &GALLERY, &p).unwrap_err();
    assert!(
        matches!(&e, EvalError::Shape { expected, got } if expected.starts_with("[4, 5]") && got == "[5, 5]"),
        "{e}"
    );
    let mut nan = s.clone();
    nan[[2, 3]] = f32::NAN;
    let e = ranking_metrics(nan.view(), &QUERIES, &GALLERY, &p).unwrap_err();
    assert!(
        matches!(e, EvalError::NanScore { row: 2, col: 3, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("row 2, column 3"));
    let empty = Array2::<f32>::zeros((0, 5));
    let e = ranking_metrics(empty.view(), &[] as &[&str], &GALLERY, &p).unwrap_err();
    assert!(matches!(e, EvalError::Empty { .. }), "{e}");
    let empty = Array2::<f32>::zeros((1, 0));
    let e = ranking_metrics(empty.view(), &["a"], &[] as &[&str], &p).unwrap_err();
    assert!(matches!(e, EvalError::Empty { .. }), "{e}");
    let e =
        ranking_metrics(s.row(3).insert_axis(ndarray::Axis(0)), &["z"], &GALLERY, &p).unwrap_err();
    assert!(
        matches!(e, EvalError::NoMatchableQuery { queries: 1 }),
        "{e}"
    );

    // Parameters: each message names the setting and its value.
    for (params, name, value) in [
        (RankingParams::default().ks(&[]), "ks", "[]"),
        (RankingParams::default().ks(&[0, 1]), "ks", "[0, 1]"),
        (RankingParams::default().ks(&[1]).cmc_len(0), "cmc_len", "0"),
    ] {
        common::assert_refused(params, name, value);
    }
    // The defaults are valid, and equal the checked `Default`.
    let v = RankingParams::default().check().unwrap();
    assert_eq!(v, reid_eval::metrics::ValidRankingParams::default());
    assert_eq!((v.ks(), v.cmc_len()), (&[1, 5, 10][..], 20));
}

#[test]
fn ranked_list_errors() {
    let p = RankingParams::default()
        .ks(&[1, 2])
        .cmc_len(2)
        .check()
        .unwrap();
    let q = ["a", "b"];
    let lists: Array2<usize> = array![[0, 5], [1, 2]];
    let e = ranking_metrics_from_lists(lists.view(), &q, &GALLERY, &p).unwrap_err();
    assert!(
        matches!(
            e,
            EvalError::IndexOutOfRange {
                row: 0,
                index: 5,
                len: 5,
                ..
            }
        ),
        "{e}"
    );
    let lists: Array2<usize> = array![[0, 1], [2, 2]];
    let e = ranking_metrics_from_lists(lists.view(), &q, &GALLERY, &p).unwrap_err();
    assert!(
        matches!(
            e,
            EvalError::DuplicateIndex {
                row: 1,
                index: 2,
                ..
            }
        ),
        "{e}"
    );
    let lists: Array2<usize> = array![[0, 1]];
    let e = ranking_metrics_from_lists(lists.view(), &q, &GALLERY, &p).unwrap_err();
    assert!(matches!(e, EvalError::Shape { .. }), "{e}");
    let lists = Array2::<usize>::zeros((2, 0));
    let e = ranking_metrics_from_lists(lists.view(), &q, &GALLERY, &p).unwrap_err();
    assert!(matches!(e, EvalError::Empty { .. }), "{e}");
    // Ranks past the lists while they do not cover the gallery are unknown.
    let lists: Array2<usize> = array![[0, 1], [1, 2]];
    let deep = RankingParams::default()
        .ks(&[1, 5])
        .cmc_len(2)
        .check()
        .unwrap();
    let e = ranking_metrics_from_lists(lists.view(), &q, &GALLERY, &deep).unwrap_err();
    assert!(
        matches!(e, EvalError::InvalidParam { name: "params", .. }),
        "{e}"
    );
    let deep = RankingParams::default()
        .ks(&[1])
        .cmc_len(3)
        .check()
        .unwrap();
    assert!(ranking_metrics_from_lists(lists.view(), &q, &GALLERY, &deep).is_err());
}

/// truth 0 0 1 1, prediction 0 0 1 2 (a refinement):
/// H(truth) = ln 2, H(pred) = 1.5 ln 2, MI = ln 2 (pred determines truth);
/// homogeneity 1, completeness 2/3, V = 2·(2/3)/(5/3) = 0.8,
/// NMI = ln 2 / ((ln 2 + 1.5 ln 2) / 2) = 0.8.
#[test]
fn clustering_scores_by_hand() {
    let t = [0, 0, 1, 1];
    let p = ["x", "x", "y", "z"];
    let h = homogeneity_completeness_v_measure(&t, &p).unwrap();
    assert!(close(h.homogeneity, 1.0));
    assert!(close(h.completeness, 2.0 / 3.0));
    assert!(close(h.v_measure, 0.8));
    assert!(close(normalized_mutual_info(&t, &p).unwrap(), 0.8));
    assert!(close(mutual_info_score(&t, &p).unwrap(), 2f64.ln()));

    // Renaming clusters changes nothing.
    assert_eq!(
        normalized_mutual_info(&[0, 1, 2, 3], &[3, 2, 1, 0]).unwrap(),
        1.0
    );
    assert_eq!(
        adjusted_mutual_info(&[0, 1, 2, 3], &[3, 2, 1, 0]).unwrap(),
        1.0
    );
    // Independent labelings: MI 0, NMI 0; a class split across all clusters.
    assert_eq!(
        normalized_mutual_info(&[0, 0, 1, 1], &[0, 1, 0, 1]).unwrap(),
        0.0
    );
    assert_eq!(
        normalized_mutual_info(&[0, 0, 0, 0], &[0, 1, 2, 3]).unwrap(),
        0.0
    );
    assert_eq!(
        adjusted_mutual_info(&[0, 0, 0, 0], &[0, 1, 2, 3]).unwrap(),
        0.0
    );
    // scikit-learn's special cases: one cluster each, or no items.
    assert_eq!(normalized_mutual_info(&[7, 7], &[1, 1]).unwrap(), 1.0);
    assert_eq!(adjusted_mutual_info(&[7, 7], &[1, 1]).unwrap(), 1.0);
    let none: [u8; 0] = [];
    assert_eq!(normalized_mutual_info(&none, &none).unwrap(), 1.0);
    let h = homogeneity_completeness_v_measure(&none, &none).unwrap();
    assert_eq!(
        (h.homogeneity, h.completeness, h.v_measure),
        (1.0, 1.0, 1.0)
    );
    // All in one predicted cluster: complete (1) but not homogeneous (0).
    let h = homogeneity_completeness_v_measure(&[0, 1, 2, 3], &[0, 0, 0, 0]).unwrap();
    assert_eq!(
        (h.homogeneity, h.completeness, h.v_measure),
        (0.0, 1.0, 0.0)
    );

    let e = normalized_mutual_info(&[0, 1], &[0]).unwrap_err();
    assert!(
        matches!(
            e,
            EvalError::LengthMismatch {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(adjusted_mutual_info(&[0, 1], &[0]).is_err());
    assert!(homogeneity_completeness_v_measure(&[0, 1], &[0]).is_err());
}

/// Points 0, 1, 4, 5 on a line, clusters {0, 1} and {4, 5}:
/// s(0) = (4.5 - 1) / 4.5 = 7/9, s(1) = (3.5 - 1) / 3.5 = 5/7, and
/// symmetrically for 4 and 5; mean 47/63.
/// Points 0, 1, 10 with {0, 1}, {10}: s(0) = (10 - 1)/10 = 0.9,
/// s(1) = (9 - 1)/9 = 8/9, the singleton 0.
#[test]
fn silhouette_by_hand() {
    let x = array![[0.0f32], [1.0], [4.0], [5.0]];
    let s =
        silhouette_samples(x.view(), &["a", "a", "b", "b"], SilhouetteMetric::Euclidean).unwrap();
    let want = [7.0 / 9.0, 5.0 / 7.0, 5.0 / 7.0, 7.0 / 9.0];
    assert!(s.iter().zip(want).all(|(a, b)| close(*a, b)), "{s:?}");
    let m = silhouette_score(x.view(), &["a", "a", "b", "b"], SilhouetteMetric::Euclidean).unwrap();
    assert!(close(m, 47.0 / 63.0));

    let x = array![[0.0f32], [1.0], [10.0]];
    let s = silhouette_samples(x.view(), &[0, 0, 1], SilhouetteMetric::Euclidean).unwrap();
    assert!(
        close(s[0], 0.9) && close(s[1], 8.0 / 9.0) && s[2] == 0.0,
        "{s:?}"
    );

    // Cosine: two directions, lengths do not matter: within 0, across 1.
    let x = array![[1.0f32, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]];
    let m = silhouette_score(x.view(), &[0, 0, 1, 1], SilhouetteMetric::Cosine).unwrap();
    assert!(close(m, 1.0));
    // ... while the Euclidean view sees (0, 3) far from (0, 1).
    let m = silhouette_score(x.view(), &[0, 0, 1, 1], SilhouetteMetric::Euclidean).unwrap();
    assert!(m < 0.9);
}

#[test]
fn silhouette_errors() {
    let x = array![[0.0f32], [1.0], [4.0]];
    let e = silhouette_score(x.view(), &[0, 0, 0], SilhouetteMetric::Euclidean).unwrap_err();
    assert!(
        matches!(
            e,
            EvalError::LabelCount {
                labels: 1,
                samples: 3
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("2 to n_samples - 1 = 2"));
    let e = silhouette_score(x.view(), &[0, 1, 2], SilhouetteMetric::Cosine).unwrap_err();
    assert!(
        matches!(
            e,
            EvalError::LabelCount {
                labels: 3,
                samples: 3
            }
        ),
        "{e}"
    );
    let e = silhouette_score(x.view(), &[0, 1], SilhouetteMetric::Cosine).unwrap_err();
    assert!(
        matches!(
            e,
            EvalError::LengthMismatch {
                expected: 3,
                got: 2,
                ..
            }
        ),
        "{e}"
    );
    let none = Array2::<f32>::zeros((0, 2));
    let e = silhouette_score(none.view(), &[] as &[u8], SilhouetteMetric::Cosine).unwrap_err();
    assert!(matches!(e, EvalError::Empty { .. }), "{e}");
    let bad = array![[0.0f32], [f32::NAN], [4.0]];
    let e = silhouette_score(bad.view(), &[0, 0, 1], SilhouetteMetric::Euclidean).unwrap_err();
    assert!(matches!(e, EvalError::NonFinite { row: 1, .. }), "{e}");
}

/// The open-set scores come from reid-openset unchanged.
///
/// Queries a a b n1 n2 (n1, n2 new); predictions a New b New b:
/// BAKS: a 1/2, b 1 → 0.75; BAUS: n1 1, n2 0 → 0.5.
#[test]
fn open_set_scores_are_reexported() {
    let truth = ["a", "a", "b", "n1", "n2"];
    let pred = [
        Decision::Known("a".into()),
        Decision::New,
        Decision::Known("b".into()),
        Decision::New,
        Decision::Known("b".into()),
    ];
    let is_new = new_flags(&truth, &["a", "b", "b"]);
    assert_eq!(is_new, vec![false, false, false, true, true]);
    assert_eq!(baks(&truth, &pred, &is_new).unwrap(), Some(0.75));
    assert_eq!(baus(&truth, &pred, &is_new).unwrap(), Some(0.5));
    let s = animalclef_score(&truth, &pred, &is_new, &["d"; 5]).unwrap();
    assert!(close(s.score, (0.75f64 * 0.5).sqrt()));
    assert_eq!(adjusted_rand_index(&[0, 0, 1], &[5, 5, 2]).unwrap(), 1.0);
    // The errors convert into EvalError.
    let e: EvalError = baks(&truth, &pred[..2], &is_new).unwrap_err().into();
    assert!(matches!(e, EvalError::Openset(_)));
}
