//! Decision rules worked by hand, and typed errors for bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::{Array2, array};
use reid_openset::{
    Aggregate, Decision, DecisionParams, Gallery, OpensetError, Rule, Thresholds, TopK, decide,
    decide_topk,
};

fn labels(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn gallery() -> Gallery {
    // cos with q = (0.96, 0.28): a0 0.96, a1 0.936, b0 0.28, b1 -0.352.
    Gallery::new(
        array![[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]],
        labels(&["a", "a", "b", "b"]),
    )
    .unwrap()
}

#[test]
fn top1_threshold_by_hand() {
    let g = gallery();
    let q = array![[0.96, 0.28], [0.0, 1.0], [-0.8, -0.6]];
    let p = decide::<&str>(&g, q.view(), None, &DecisionParams::top1(0.5).unwrap()).unwrap();
    assert_eq!(p[0].decision, Decision::Known("a".into()));
    assert!((p[0].similarity - 0.96).abs() < 1e-6);
    assert_eq!(p[1].decision, Decision::Known("b".into()));
    // Best match of (-0.8, -0.6) is b1: 0.48 - 0.48 = 0.0 < 0.5.
    assert_eq!(p[2].decision, Decision::New);
    assert!(p[2].similarity.abs() < 1e-6);
    assert_eq!(p[2].candidate, "b");
    // The threshold is inclusive: score 1.0 >= 1.0 is known.
    let p = decide::<&str>(&g, q.view(), None, &DecisionParams::top1(1.0).unwrap()).unwrap();
    assert_eq!(p[1].decision, Decision::Known("b".into()));
    assert_eq!(p[0].decision, Decision::New);
}

fn one_row(idx: &[usize], sc: &[f32]) -> TopK {
    TopK {
        indices: Array2::from_shape_vec((1, idx.len()), idx.to_vec()).unwrap(),
        scores: Array2::from_shape_vec((1, sc.len()), sc.to_vec()).unwrap(),
    }
}

/// Ranked matches: a 0.9, b 0.85, b 0.84, a 0.5.
#[test]
fn knn_vote_by_hand() {
    let lab = labels(&["a", "b", "b", "a"]);
    let top = one_row(&[0, 1, 2, 3], &[0.9, 0.85, 0.84, 0.5]);
    let run = |rule: Rule, t: f32| {
        let p = DecisionParams::new(rule, Thresholds::new(t).unwrap()).unwrap();
        decide_topk::<&str>(&top, &lab, None, &p).unwrap().remove(0)
    };
    let knn = |k, per_identity, aggregate| Rule::Knn {
        k,
        per_identity,
        aggregate,
    };
    // Top-1 and max-vote: a at 0.9.
    let p = run(Rule::Top1, 0.0);
    assert_eq!((p.candidate.as_str(), p.similarity), ("a", 0.9));
    let p = run(knn(4, 2, Aggregate::Max), 0.0);
    assert_eq!((p.candidate.as_str(), p.similarity), ("a", 0.9));
    // Mean of the 2 best among the top 3: a {0.9} = 0.9, b {0.85, 0.84} = 0.845.
    let p = run(knn(3, 2, Aggregate::Mean), 0.0);
    assert_eq!(p.candidate, "a");
    assert!((p.similarity - 0.9).abs() < 1e-6);
    // Among the top 4: a {0.9, 0.5} = 0.7 loses to b 0.845.
    let p = run(knn(4, 2, Aggregate::Mean), 0.8);
    assert_eq!(p.decision, Decision::Known("b".into()));
    assert!((p.similarity - 0.845).abs() < 1e-6);
    // per_identity 1 makes the mean a max.
    let p = run(knn(4, 1, Aggregate::Mean), 0.0);
    assert_eq!(p.candidate, "a");
    // Same vote, threshold above the winning score: new, candidate kept.
    let p = run(knn(4, 2, Aggregate::Mean), 0.85);
    assert_eq!(p.decision, Decision::New);
    assert_eq!(p.candidate, "b");
}

/// Equal scores: the identity met first in the ranking wins.
#[test]
fn knn_ties_go_to_the_first_ranked() {
    let lab = labels(&["a", "b"]);
    let top = one_row(&[1, 0], &[0.8, 0.8]);
    let p = DecisionParams::new(
        Rule::Knn {
            k: 2,
            per_identity: 1,
            aggregate: Aggregate::Mean,
        },
        Thresholds::new(0.0).unwrap(),
    )
    .unwrap();
    assert_eq!(
        decide_topk::<&str>(&top, &lab, None, &p).unwrap()[0].candidate,
        "b"
    );
}

#[test]
fn thresholds_per_group() {
    let t = Thresholds::new(0.5)
        .unwrap()
        .with_group("LynxID2025", 0.97)
        .unwrap()
        .with_group("SalamanderID2025", 0.2)
        .unwrap();
    assert_eq!(t.get(Some("LynxID2025")), 0.97);
    assert_eq!(t.get(Some("SeaTurtleID2022")), 0.5);
    assert_eq!(t.get(None), 0.5);
    let g = gallery();
    let q = array![[0.96, 0.28], [0.96, 0.28], [-0.8, -0.6]];
    let p = DecisionParams::new(Rule::Top1, t).unwrap();
    let groups = ["LynxID2025", "SeaTurtleID2022", "SalamanderID2025"];
    let out = decide(&g, q.view(), Some(&groups[..]), &p).unwrap();
    assert_eq!(out[0].decision, Decision::New); // 0.96 < 0.97
    assert_eq!(out[1].decision, Decision::Known("a".into()));
    assert_eq!(out[2].decision, Decision::New); // 0.0 < 0.2
}

#[test]
fn errors_for_bad_input() {
    let empty = Gallery::new(Array2::zeros((0, 4)), vec![]);
    assert!(matches!(empty, Err(OpensetError::EmptyGallery)));

    let nan = Gallery::new(array![[1.0, 0.0], [f32::NAN, 1.0]], labels(&["a", "b"]));
    assert!(matches!(
        nan,
        Err(OpensetError::NonFinite { row: 1, col: 0, .. })
    ));

    let short = Gallery::new(array![[1.0, 0.0]], labels(&["a", "b"]));
    assert!(matches!(short, Err(OpensetError::Length { .. })));

    let g = gallery();
    let p = DecisionParams::top1(0.5).unwrap();
    let wrong_dim = decide::<&str>(&g, array![[1.0, 0.0, 0.0]].view(), None, &p);
    assert!(
        matches!(wrong_dim, Err(OpensetError::Shape { .. })),
        "{wrong_dim:?}"
    );
    let inf = decide::<&str>(&g, array![[1.0, f32::INFINITY]].view(), None, &p);
    assert!(matches!(
        inf,
        Err(OpensetError::NonFinite { row: 0, col: 1, .. })
    ));
    let groups = ["x", "y"];
    let bad_groups = decide(&g, array![[1.0, 0.0]].view(), Some(&groups[..]), &p);
    assert!(matches!(bad_groups, Err(OpensetError::Length { .. })));

    assert!(matches!(
        Thresholds::new(f32::NAN),
        Err(OpensetError::InvalidParam { .. })
    ));
    for rule in [
        Rule::Knn {
            k: 0,
            per_identity: 1,
            aggregate: Aggregate::Max,
        },
        Rule::Knn {
            k: 3,
            per_identity: 0,
            aggregate: Aggregate::Mean,
        },
    ] {
        assert!(matches!(
            DecisionParams::new(rule, Thresholds::new(0.5).unwrap()),
            Err(OpensetError::InvalidParam { .. })
        ));
    }
    // A ranked list that points outside the labels.
    let top = one_row(&[5], &[0.9]);
    assert!(matches!(
        decide_topk::<&str>(&top, &labels(&["a"]), None, &p),
        Err(OpensetError::OutOfRange { index: 5, .. })
    ));
}

#[test]
fn no_queries_no_predictions() {
    let g = gallery();
    let p = DecisionParams::top1(0.5).unwrap();
    let out = decide::<&str>(&g, Array2::<f32>::zeros((0, 2)).view(), None, &p).unwrap();
    assert!(out.is_empty());
}
