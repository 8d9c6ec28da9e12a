//! Logistic stacking of calibrated sources: the fit checked by its own
//! optimality conditions and on data drawn from a known model, the fused
//! scores worked out by hand, the choice made on the database's episodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ndarray::{Array2, array};
use rand::{Rng, SeedableRng};
use reid_index::{Gallery, TopK};
use reid_openset::{
    Aggregate, CalibrationMethod, Combine, EmbeddingScorer, FnScorer, FusionCalibration,
    FusionParams, FusionSource, FusionTrial, LogisticStack, OpensetError, ParamGuard, Rule,
    fuse_stacked, linear_grid, self_calibrate_fusion,
};

fn logit(p: f64) -> f64 {
    let p = p.clamp(LogisticStack::EPS, 1.0 - LogisticStack::EPS);
    (p / (1.0 - p)).ln()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Outcomes laid out so that the share of positives at each probability
/// is exactly what `σ(2 logit(p0) - 1 logit(p1) - 0.5)` says (rounded over
/// 400 pairs per cell): the fit must find weights near (2, -1, -0.5).
#[test]
fn the_fit_recovers_a_known_model() {
    let grid = [0.1f32, 0.25, 0.4, 0.6, 0.75, 0.9];
    let (mut p0, mut p1, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for &a in &grid {
        for &b in &grid {
            let want = sigmoid(2.0 * logit(a.into()) - logit(b.into()) - 0.5);
            let m = 400;
            let pos = (want * f64::from(m)).round() as u32;
            for i in 0..m {
                p0.push(a);
                p1.push(b);
                y.push(i < pos);
            }
        }
    }
    let s = LogisticStack::fit(&[p0.clone(), p1.clone()], &y).unwrap();
    let w = s.weights();
    assert!((w[0] - 2.0).abs() < 0.03, "{w:?}");
    assert!((w[1] + 1.0).abs() < 0.03, "{w:?}");
    assert!((s.intercept() + 0.5).abs() < 0.03, "{}", s.intercept());
    // First-order optimality of the penalised log loss, computed here.
    let (mut g0, mut g1, mut gb) = (0.0, 0.0, 0.0);
    for i in 0..y.len() {
        let p = f64::from(s.predict(&[p0[i], p1[i]]));
        let r = p - f64::from(u8::from(y[i]));
        g0 += r * logit(p0[i].into());
        g1 += r * logit(p1[i].into());
        gb += r;
    }
    g0 += LogisticStack::RIDGE * w[0];
    g1 += LogisticStack::RIDGE * w[1];
    for g in [g0, g1, gb] {
        assert!(g.abs() < 1e-3, "gradient {g0} {g1} {gb}");
    }
    // predict is the model's formula.
    let want = sigmoid(s.intercept() + w[0] * logit(0.3) + w[1] * logit(0.8));
    assert!((f64::from(s.predict(&[0.3, 0.8])) - want).abs() < 1e-6);
}

#[test]
fn bad_input_is_a_typed_error() {
    let e = LogisticStack::fit(&[], &[true, false]).unwrap_err();
    assert!(matches!(e, OpensetError::Empty { .. }), "{e}");
    let e = LogisticStack::fit(&[vec![0.5, 0.5]], &[true]).unwrap_err();
    assert!(matches!(e, OpensetError::Length { .. }), "{e}");
    let e = LogisticStack::fit(&[vec![f32::NAN, 0.5]], &[true, false]).unwrap_err();
    assert!(e.to_string().contains("stacked probabilities"), "{e}");
    let e = LogisticStack::fit(&[vec![0.2, 0.5]], &[true, true]).unwrap_err();
    assert!(e.to_string().contains("both outcomes"), "{e}");
    assert!(LogisticStack::new(vec![], 0.0).is_err());
    assert!(LogisticStack::new(vec![1.0], f64::INFINITY).is_err());
    // Separable outcomes stay finite (the ridge).
    let s = LogisticStack::fit(&[vec![0.1, 0.2, 0.8, 0.9]], &[false, false, true, true]).unwrap();
    assert!(s.weights()[0].is_finite() && s.weights()[0] > 1.0, "{s:?}");
}

/// Query q = (1, 0); gallery g0 = (1, 0), g1 = (0.8, 0.6): cosine 1.0 and
/// 0.8; a second source says 0.1 and 0.9. The stack 0.5·logit(cos) +
/// 2·logit(kp) - 1 re-ranks: g1 first.
#[test]
fn stacked_fusion_scores_by_hand() {
    let q = array![[1.0f32, 0.0]];
    let g = array![[1.0f32, 0.0], [0.8, 0.6]];
    let emb = EmbeddingScorer::new("global", q.view(), g.view()).unwrap();
    let kp = FnScorer::new("keypoints", |_q, gi| Ok([0.1, 0.9][gi]));
    let sources = [
        FusionSource {
            scorer: &emb,
            calibrator: None,
            weight: 1.0,
        },
        FusionSource {
            scorer: &kp,
            calibrator: None,
            weight: 1.0,
        },
    ];
    let short = TopK {
        indices: array![[0usize, 1]],
        scores: array![[1.0f32, 0.8]],
    };
    let stack = LogisticStack::new(vec![0.5, 2.0], -1.0).unwrap();
    let out = fuse_stacked(&short, &sources, Some(&stack)).unwrap();
    let f = |c: f64, k: f64| sigmoid(0.5 * logit(c) + 2.0 * logit(k) - 1.0) as f32;
    assert_eq!(out.top.indices, array![[1usize, 0]]);
    assert!((out.top.scores[[0, 0]] - f(0.8, 0.9)).abs() < 1e-6);
    assert!((out.top.scores[[0, 1]] - f(1.0, 0.1)).abs() < 1e-6);
    // A stack over the wrong number of sources is refused.
    let one = LogisticStack::new(vec![1.0], 0.0).unwrap();
    let e = fuse_stacked(&short, &sources, Some(&one)).unwrap_err();
    assert!(matches!(e, OpensetError::Length { .. }), "{e}");
}

/// 48 random unit embeddings, 12 animals of 4 photos, and a noisy
/// keypoint-like score per ordered pair (uniform in [0, 4), plus `boost`
/// for two photos of one animal).
fn planted_pairs(seed: u64, boost: f32) -> (Array2<f32>, Vec<String>, Vec<f32>) {
    let n = 48;
    let emb = common::random_rows(n, 16, seed);
    let labels: Vec<String> = (0..n).map(|i| format!("id{}", i / 4)).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let kp = (0..n * n)
        .map(|e| {
            rng.gen_range(0.0..4.0)
                + if labels[e / n] == labels[e % n] {
                    boost
                } else {
                    0.0
                }
        })
        .collect();
    (emb, labels, kp)
}

/// Self-calibrates the fusion of cosine and the planted keypoint scores of
/// `planted_pairs(seed, boost)` (shortlist 12, equal weights) once per
/// variant of the parameters, on the same episodes.
fn calibrate_planted(seed: u64, boost: f32, variants: Vec<FusionParams>) -> Vec<FusionCalibration> {
    let (emb, labels, scores) = planted_pairs(seed, boost);
    let n = labels.len();
    let gallery = Gallery::from_labels(emb.view(), &labels).unwrap();
    let cosine = EmbeddingScorer::new("cosine", emb.view(), emb.view()).unwrap();
    let kp = FnScorer::new("keypoints", |q, g| Ok(scores[q * n + g]));
    let params = common::episodes(0.3, 0.5, 8, 3, linear_grid(0.0..=1.0, 100));
    variants
        .into_iter()
        .map(|f| {
            let f = f.shortlist(12).weights(vec![1.0, 1.0]).check().unwrap();
            self_calibrate_fusion(&gallery, &[&cosine, &kp], &f, &params).unwrap()
        })
        .collect()
}

/// `Auto` tries both combinations on the same episodes and keeps the
/// better episode score; `Mean` and `Logistic` each try one and reproduce
/// `Auto`'s figures for that combination.
#[test]
fn auto_keeps_the_better_combination_on_the_database() {
    let variant = |c: Combine| {
        FusionParams::default()
            .method(CalibrationMethod::Isotonic)
            .combine(c)
    };
    let [mean, logistic, auto]: [FusionCalibration; 3] = calibrate_planted(
        21,
        2.0,
        vec![
            variant(Combine::Mean),
            variant(Combine::Logistic),
            variant(Combine::Auto),
        ],
    )
    .try_into()
    .unwrap();
    assert!(mean.stack.is_none());
    assert!(logistic.stack.is_some());
    let trial = |c: Combine, score: f64| FusionTrial {
        combine: c,
        rule: Rule::Top1,
        score,
    };
    assert_eq!(
        mean.trials,
        [trial(Combine::Mean, mean.self_calibration.score_mean)]
    );
    assert_eq!(
        logistic.trials,
        [trial(
            Combine::Logistic,
            logistic.self_calibration.score_mean
        )]
    );
    assert_eq!(
        auto.trials,
        [
            trial(Combine::Mean, mean.self_calibration.score_mean),
            trial(Combine::Logistic, logistic.self_calibration.score_mean)
        ]
    );
    let best = mean
        .self_calibration
        .score_mean
        .max(logistic.self_calibration.score_mean);
    assert_eq!(auto.self_calibration.score_mean, best);
    assert_eq!(
        auto.stack.is_some(),
        logistic.self_calibration.score_mean > mean.self_calibration.score_mean
    );
    // The stack learnt that both sources carry information.
    let w = logistic.stack.as_ref().unwrap().weights();
    assert!(w[1] > 0.0, "{w:?}");
    assert!("median".parse::<Combine>().is_err());
    assert_eq!("logistic".parse::<Combine>().unwrap(), Combine::Logistic);
}

/// Rules tried on the fused shortlist: every (combination, rule) pair is
/// scored on the same episodes and the best kept. A source that scores
/// each pair of one animal moderately (0.6 after calibration, say) is what
/// noisy-or aggregation is for; whichever wins, the trial list is complete
/// and the kept rule is the best-scored one.
#[test]
fn fusion_rules_are_chosen_on_the_database() {
    let noisy = Rule::Knn {
        k: 12,
        per_identity: 3,
        aggregate: Aggregate::NoisyOr,
    };
    let variant = |rules: Vec<Rule>| FusionParams::default().rules(rules);
    let [top1, agg, both]: [FusionCalibration; 3] = calibrate_planted(
        11,
        0.7,
        vec![
            variant(vec![Rule::Top1]),
            variant(vec![noisy]),
            variant(vec![Rule::Top1, noisy]),
        ],
    )
    .try_into()
    .unwrap();
    assert_eq!((top1.rule, agg.rule), (Rule::Top1, noisy));
    let scores: Vec<f64> = both.trials.iter().map(|t| t.score).collect();
    assert_eq!(
        scores,
        [
            top1.self_calibration.score_mean,
            agg.self_calibration.score_mean
        ]
    );
    let want = if agg.self_calibration.score_mean > top1.self_calibration.score_mean {
        noisy
    } else {
        Rule::Top1
    };
    assert_eq!(both.rule, want);
    assert_eq!(
        both.self_calibration.score_mean,
        top1.self_calibration
            .score_mean
            .max(agg.self_calibration.score_mean)
    );
    // The two rules do decide differently on these episodes.
    assert_ne!(
        top1.self_calibration.score_mean,
        agg.self_calibration.score_mean
    );
    assert!(FusionParams::default().rules(vec![]).check().is_err());
}
