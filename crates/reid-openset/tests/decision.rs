//! Decision rules worked by hand, rules written as text, and typed errors
//! for bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::{Array2, array};
use reid_core::Record;
use reid_index::{Gallery, IndexError};
use reid_openset::{
    Aggregate, Decision, DecisionParams, OpensetError, ParamGuard, Rule, Thresholds, TopK,
    ValidDecisionParams, decide, decide_topk,
};

fn labels(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn gallery() -> Gallery {
    // cos with q = (0.96, 0.28): a0 0.96, a1 0.936, b0 0.28, b1 -0.352.
    Gallery::from_labels(
        array![[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]].view(),
        &["a", "a", "b", "b"],
    )
    .unwrap()
}

fn rule_params(rule: Rule, t: f32) -> ValidDecisionParams {
    DecisionParams::new(Thresholds::new(t).unwrap())
        .rule(rule)
        .check()
        .unwrap()
}

#[test]
fn top1_threshold_by_hand() {
    let g = gallery();
    let q = array![[0.96, 0.28], [0.0, 1.0], [-0.8, -0.6]];
    let p = decide::<&str>(&g, q.view(), None, &ValidDecisionParams::top1(0.5).unwrap()).unwrap();
    assert_eq!(p[0].decision, Decision::Known("a".into()));
    assert!((p[0].similarity - 0.96).abs() < 1e-6);
    assert_eq!(p[1].decision, Decision::Known("b".into()));
    // Best match of (-0.8, -0.6) is b1: 0.48 - 0.48 = 0.0 < 0.5.
    assert_eq!(p[2].decision, Decision::New);
    assert!(p[2].similarity.abs() < 1e-6);
    assert_eq!(p[2].candidate, "b");
    // The threshold is inclusive: score 1.0 >= 1.0 is known.
    let p = decide::<&str>(&g, q.view(), None, &ValidDecisionParams::top1(1.0).unwrap()).unwrap();
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
        let p = rule_params(rule, t);
        decide_topk::<_, &str>(&top, &lab, None, &p)
            .unwrap()
            .remove(0)
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
    // Noisy-or over the 2 best of the top 4: a 1 - 0.1 · 0.5 = 0.95,
    // b 1 - 0.15 · 0.16 = 0.976: two good matches beat one excellent one.
    let p = run(knn(4, 2, Aggregate::NoisyOr), 0.0);
    assert_eq!(p.candidate, "b");
    assert!((p.similarity - 0.976).abs() < 1e-6, "{}", p.similarity);
    // Over one photo each it is the max.
    let p = run(knn(4, 1, Aggregate::NoisyOr), 0.0);
    assert_eq!((p.candidate.as_str(), p.similarity), ("a", 0.9));
    // Same vote, threshold above the winning score: new, candidate kept.
    let p = run(knn(4, 2, Aggregate::Mean), 0.85);
    assert_eq!(p.decision, Decision::New);
    assert_eq!(p.candidate, "b");
}

/// The margin over the runner-up, on the matches of `knn_vote_by_hand`
/// (a 0.9, b 0.85, b 0.84, a 0.5) and on a lone identity.
#[test]
fn margin_by_hand() {
    let lab = labels(&["a", "b", "b", "a", "c"]);
    let run = |top: &TopK, rule: Rule, t: f32| {
        decide_topk::<_, &str>(top, &lab, None, &rule_params(rule, t))
            .unwrap()
            .remove(0)
    };
    let margin = |k, per_identity, aggregate, weight| Rule::Margin {
        k,
        per_identity,
        aggregate,
        weight,
    };
    let top = one_row(&[0, 1, 2, 3], &[0.9, 0.85, 0.84, 0.5]);
    // Best photo of each: a 0.9, b 0.85: 0.9 - 0.85 = 0.05; half: 0.475.
    let p = run(&top, margin(4, 1, Aggregate::Max, 1.0), 0.0);
    assert_eq!(p.candidate, "a");
    assert!((p.similarity - 0.05).abs() < 1e-6, "{}", p.similarity);
    let p = run(&top, margin(4, 1, Aggregate::Max, 0.5), 0.0);
    assert!((p.similarity - 0.475).abs() < 1e-6, "{}", p.similarity);
    // Noisy-or of 2: b 0.976 wins over a 0.95: 0.976 - 0.95 = 0.026, and
    // the runner-up is found whichever order they come in.
    let p = run(&top, margin(4, 2, Aggregate::NoisyOr, 1.0), 0.02);
    assert_eq!(p.decision, Decision::Known("b".into()));
    assert!((p.similarity - 0.026).abs() < 1e-6, "{}", p.similarity);
    let p = run(&top, margin(4, 2, Aggregate::NoisyOr, 1.0), 0.03);
    assert_eq!((p.decision, p.candidate.as_str()), (Decision::New, "b"));
    // Only the first 2 matches: a 0.9 over b 0.85 again.
    let p = run(&top, margin(2, 2, Aggregate::NoisyOr, 1.0), 0.0);
    assert!((p.similarity - 0.05).abs() < 1e-6, "{}", p.similarity);
    // Weight 0 is the plain vote.
    let p = run(&top, margin(4, 2, Aggregate::Mean, 0.0), 0.0);
    assert!((p.similarity - 0.845).abs() < 1e-6);
    // One identity among the k: nothing to take off.
    let lone = one_row(&[4, 1], &[0.7, 0.2]);
    let p = run(&lone, margin(1, 1, Aggregate::Max, 1.0), 0.0);
    assert_eq!((p.candidate.as_str(), p.similarity), ("c", 0.7));
    let p = run(&lone, margin(2, 1, Aggregate::Max, 1.0), 0.0);
    assert!((p.similarity - 0.5).abs() < 1e-6);
}

/// Equal scores: the identity met first in the ranking wins.
#[test]
fn knn_ties_go_to_the_first_ranked() {
    let lab = labels(&["a", "b"]);
    let top = one_row(&[1, 0], &[0.8, 0.8]);
    let p = rule_params(
        Rule::Knn {
            k: 2,
            per_identity: 1,
            aggregate: Aggregate::Mean,
        },
        0.0,
    );
    assert_eq!(
        decide_topk::<_, &str>(&top, &lab, None, &p).unwrap()[0].candidate,
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
    let p = DecisionParams::new(t).rule(Rule::Top1).check().unwrap();
    assert_eq!(p.rule(), &Rule::Top1);
    assert_eq!(p.thresholds().get(Some("LynxID2025")), 0.97);
    let groups = ["LynxID2025", "SeaTurtleID2022", "SalamanderID2025"];
    let out = decide(&g, q.view(), Some(&groups[..]), &p).unwrap();
    assert_eq!(out[0].decision, Decision::New); // 0.96 < 0.97
    assert_eq!(out[1].decision, Decision::Known("a".into()));
    assert_eq!(out[2].decision, Decision::New); // 0.0 < 0.2
}

#[test]
fn errors_for_bad_input() {
    let p = ValidDecisionParams::top1(0.5).unwrap();
    // The gallery itself (reid-index) rejects non-finite rows and labels
    // that do not pair up with the rows; an empty gallery is allowed, but
    // deciding a query against it is an error.
    let empty = Gallery::from_labels(Array2::zeros((0, 2)).view(), &[] as &[&str]).unwrap();
    assert!(matches!(
        decide::<&str>(&empty, array![[1.0, 0.0]].view(), None, &p),
        Err(OpensetError::EmptyGallery)
    ));
    let none = decide::<&str>(&empty, Array2::<f32>::zeros((0, 2)).view(), None, &p);
    assert!(none.unwrap().is_empty());

    let nan = Gallery::from_labels(array![[1.0, 0.0], [f32::NAN, 1.0]].view(), &["a", "b"]);
    assert!(matches!(nan, Err(IndexError::NonFinite { row: 1, .. })));

    let short = Gallery::from_labels(array![[1.0, 0.0]].view(), &["a", "b"]);
    assert!(matches!(short, Err(IndexError::Shape { .. })));

    let g = gallery();
    let wrong_dim = decide::<&str>(&g, array![[1.0, 0.0, 0.0]].view(), None, &p);
    assert!(
        matches!(wrong_dim, Err(OpensetError::Shape { .. })),
        "{wrong_dim:?}"
    );
    // The same error with no query rows at all.
    let wrong_dim = decide::<&str>(&g, Array2::<f32>::zeros((0, 3)).view(), None, &p);
    assert!(
        matches!(wrong_dim, Err(OpensetError::Shape { .. })),
        "{wrong_dim:?}"
    );
    let inf = decide::<&str>(
        &g,
        array![[0.0, 1.0], [1.0, f32::INFINITY]].view(),
        None,
        &p,
    );
    assert!(
        matches!(inf, Err(OpensetError::NonFinite { row: 1, col: 1, .. })),
        "{inf:?}"
    );
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
        let params = DecisionParams::new(Thresholds::new(0.5).unwrap()).rule(rule);
        assert!(matches!(
            params.check_ref(),
            Err(OpensetError::InvalidParam { .. })
        ));
        assert!(matches!(
            params.check(),
            Err(OpensetError::InvalidParam { .. })
        ));
    }
    // A ranked list that points outside the labels.
    let top = one_row(&[5], &[0.9]);
    assert!(matches!(
        decide_topk::<_, &str>(&top, &labels(&["a"]), None, &p),
        Err(OpensetError::OutOfRange { index: 5, .. })
    ));
}

#[test]
fn no_queries_no_predictions() {
    let g = gallery();
    let p = ValidDecisionParams::top1(0.5).unwrap();
    let out = decide::<&str>(&g, Array2::<f32>::zeros((0, 2)).view(), None, &p).unwrap();
    assert!(out.is_empty());
}

#[test]
fn top1_params_check_the_threshold() {
    for t in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert!(matches!(
            ValidDecisionParams::top1(t),
            Err(OpensetError::InvalidParam { .. })
        ));
    }
    let p = ValidDecisionParams::top1(0.25).unwrap();
    assert_eq!(p.rule(), &Rule::Top1);
    assert_eq!(p.thresholds().get(None), 0.25);
    assert!(p.thresholds().groups().is_empty());
    // DecisionParams defaults to top-1.
    let q = DecisionParams::new(Thresholds::new(0.25).unwrap())
        .check()
        .unwrap();
    assert_eq!(p, q);
}

/// A gallery record without identity cannot answer "this is X": deciding
/// against it is an `Unlabelled` error naming the record, even when the
/// query's best match is another record.
#[test]
fn unlabelled_gallery_record_is_an_error() {
    let records = vec![
        Record::new("lynx_001.jpg", "").with_identity("a"),
        Record::new("lynx_002.jpg", ""),
        Record::new("lynx_003.jpg", "").with_identity("b"),
    ];
    let g = Gallery::from_parts(
        "m",
        array![[1.0f32, 0.0], [0.0, 1.0], [0.6, 0.8]].view(),
        records,
    )
    .unwrap();
    let p = ValidDecisionParams::top1(0.5).unwrap();
    match decide::<&str>(&g, array![[1.0, 0.0]].view(), None, &p) {
        Err(OpensetError::Unlabelled { image_id }) => assert_eq!(image_id, "lynx_002.jpg"),
        other => panic!("{other:?}"),
    }
    let err = decide::<&str>(&g, array![[1.0, 0.0]].view(), None, &p).unwrap_err();
    assert!(err.to_string().contains("lynx_002.jpg"), "{err}");
}

fn knn(k: usize, per_identity: usize, aggregate: Aggregate) -> Rule {
    Rule::Knn {
        k,
        per_identity,
        aggregate,
    }
}

/// The text forms: `top1`, `knn:K` (max over up to K per identity),
/// `knn:K:max:P`, `knn:K:mean:P`; `Display` writes the shortest form and
/// parsing it gives the rule back.
#[test]
fn rules_parse_and_display() {
    let cases = [
        ("top1", Rule::Top1),
        ("knn:1", knn(1, 1, Aggregate::Max)),
        ("knn:5", knn(5, 5, Aggregate::Max)),
        ("knn:5:max:2", knn(5, 2, Aggregate::Max)),
        ("knn:3:max:7", knn(3, 7, Aggregate::Max)),
        ("knn:10:mean:3", knn(10, 3, Aggregate::Mean)),
        ("knn:4:mean:4", knn(4, 4, Aggregate::Mean)),
        ("knn:50:noisyor:3", knn(50, 3, Aggregate::NoisyOr)),
        (
            "margin:50:noisyor:3:0.5",
            Rule::Margin {
                k: 50,
                per_identity: 3,
                aggregate: Aggregate::NoisyOr,
                weight: 0.5,
            },
        ),
        (
            "margin:7:max:1:1",
            Rule::Margin {
                k: 7,
                per_identity: 1,
                aggregate: Aggregate::Max,
                weight: 1.0,
            },
        ),
    ];
    for (text, rule) in cases {
        assert_eq!(text.parse::<Rule>().unwrap(), rule, "{text}");
        assert_eq!(rule.to_string(), text);
        assert_eq!(rule.to_string().parse::<Rule>().unwrap(), rule);
    }
    // knn:K:max:K is knn:K, written short.
    let r: Rule = "knn:6:max:6".parse().unwrap();
    assert_eq!(r, knn(6, 6, Aggregate::Max));
    assert_eq!(r.to_string(), "knn:6");
    // Surrounding spaces are ignored.
    assert_eq!(
        " knn:2 ".parse::<Rule>().unwrap(),
        knn(2, 2, Aggregate::Max)
    );
}

#[test]
fn bad_rule_texts_are_errors() {
    let name_of = |text: &str| match text.parse::<Rule>() {
        Err(OpensetError::InvalidParam { name, reason }) => (name, reason),
        other => panic!("{text}: {other:?}"),
    };
    // Counts of 0 are rejected by the rule's own check.
    assert_eq!(name_of("knn:0").0, "k");
    assert_eq!(name_of("knn:0:mean:2").0, "k");
    assert_eq!(name_of("knn:3:mean:0").0, "per_identity");
    assert_eq!(name_of("knn:3:max:0").0, "per_identity");
    assert_eq!(name_of("margin:0:max:1:0.5").0, "k");
    assert_eq!(name_of("margin:3:max:1:-0.5").0, "weight");
    assert_eq!(name_of("margin:3:max:1:NaN").0, "weight");
    // Anything else is a bad rule, and the message quotes the text.
    for text in [
        "knn:x",
        "knn:-1",
        "knn:",
        "knn",
        "best",
        "Top1",
        "top1:1",
        "",
        "knn:3:median:2",
        "knn:3:mean",
        "knn:3:mean:2:1",
        "margin:3:mean:2",
        "margin:3:mean:2:x",
        "knn:3:mean:y",
    ] {
        let (name, reason) = name_of(text);
        assert_eq!(name, "rule", "{text}");
        assert!(reason.contains(&format!("`{text}`")), "{text}: {reason}");
    }
    assert!(name_of("knn:x").1.contains("`x` is not a count"));
}
