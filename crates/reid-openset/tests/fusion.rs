//! Fusion of similarity sources, worked by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::{Array2, array};
use reid_openset::{
    CalibrationMethod, Calibrator, DecisionParams, EmbeddingScorer, FnScorer, FusionSource,
    OpensetError, PairScorer, TopK, decide_topk, fuse, fuse_embeddings,
};

/// Query q = (1, 0); gallery g0 = (1, 0), g1 = (0.8, 0.6), g2 = (0, 1):
/// cosine 1.0, 0.8, 0.0. A keypoint-like second source scores g1 0.9, g0
/// 0.1, g2 0.5. With weights 1 and 3 the fused scores over the top-2
/// shortlist {g0, g1} are g0 (1.0 + 3·0.1)/4 = 0.325, g1 (0.8 + 3·0.9)/4 =
/// 0.875, so g1 moves first; g2 is not in the shortlist.
#[test]
fn weighted_mean_over_the_shortlist() {
    let q = array![[1.0f32, 0.0]];
    let g = array![[1.0f32, 0.0], [0.8, 0.6], [0.0, 1.0]];
    let emb = EmbeddingScorer::new("global", q.view(), g.view()).unwrap();
    let kp = FnScorer::new("keypoints", |_q, gi| Ok([0.1, 0.9, 0.5][gi]));
    let sources = [
        FusionSource {
            scorer: &emb,
            calibrator: None,
            weight: 1.0,
        },
        FusionSource {
            scorer: &kp,
            calibrator: None,
            weight: 3.0,
        },
    ];
    let top = fuse_embeddings(q.view(), g.view(), 2, &sources).unwrap();
    assert_eq!(top.indices, array![[1usize, 0]]);
    assert!((top.scores[[0, 0]] - 0.875).abs() < 1e-6);
    assert!((top.scores[[0, 1]] - 0.325).abs() < 1e-6);
    // The decision rules apply to the fused ranking.
    let labels: Vec<String> = ["x", "y", "z"].iter().map(|s| s.to_string()).collect();
    let p = decide_topk::<&str>(&top, &labels, None, &DecisionParams::top1(0.5).unwrap()).unwrap();
    assert_eq!(p[0].decision, reid_openset::Decision::Known("y".into()));
}

/// Calibrators map each source first: an isotonic map fitted so that
/// keypoint scores >= 0.5 mean "right" turns 0.9 into 1 and 0.1 into 0.
#[test]
fn sources_are_calibrated_before_averaging() {
    let cal = Calibrator::fit(
        CalibrationMethod::Isotonic,
        &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
        &[false, false, false, true, true, true],
    )
    .unwrap();
    assert_eq!(cal.probability(0.9), 1.0);
    assert_eq!(cal.probability(0.1), 0.0);
    let kp = FnScorer::new("keypoints", |_q, gi| Ok([0.1, 0.9][gi]));
    let shortlist = TopK {
        indices: array![[0usize, 1]],
        scores: array![[0.99f32, 0.98]],
    };
    let top = fuse(
        &shortlist,
        &[FusionSource {
            scorer: &kp,
            calibrator: Some(&cal),
            weight: 2.0,
        }],
    )
    .unwrap();
    assert_eq!(top.indices, array![[1usize, 0]]);
    assert_eq!(top.scores, array![[1.0f32, 0.0]]);
}

#[test]
fn ties_keep_the_lower_gallery_index() {
    let flat = FnScorer::new("flat", |_q, _g| Ok(0.5));
    let shortlist = TopK {
        indices: array![[4usize, 2, 3]],
        scores: array![[0.9f32, 0.8, 0.7]],
    };
    let src = [FusionSource {
        scorer: &flat,
        calibrator: None,
        weight: 1.0,
    }];
    assert_eq!(
        fuse(&shortlist, &src).unwrap().indices,
        array![[2usize, 3, 4]]
    );
}

#[test]
fn fusion_errors() {
    let q = array![[1.0f32, 0.0]];
    let g = array![[1.0f32, 0.0]];
    let emb = EmbeddingScorer::new("global", q.view(), g.view()).unwrap();
    let src = |w: f32| FusionSource {
        scorer: &emb,
        calibrator: None,
        weight: w,
    };
    for w in [f32::NAN, -1.0, 0.0] {
        assert!(matches!(
            fuse_embeddings(q.view(), g.view(), 1, &[src(w)]),
            Err(OpensetError::InvalidParam { .. })
        ));
    }
    assert!(matches!(
        fuse_embeddings(q.view(), g.view(), 1, &[]),
        Err(OpensetError::InvalidParam { .. })
    ));
    assert!(matches!(
        fuse_embeddings(q.view(), g.view(), 0, &[src(1.0)]),
        Err(OpensetError::InvalidParam { .. })
    ));
    assert!(matches!(
        fuse_embeddings(
            q.view(),
            Array2::<f32>::zeros((0, 2)).view(),
            1,
            &[src(1.0)]
        ),
        Err(OpensetError::EmptyGallery)
    ));
    assert!(matches!(
        EmbeddingScorer::new("x", array![[1.0f32, 0.0, 0.0]].view(), g.view()),
        Err(OpensetError::Shape { .. })
    ));
    let failing = FnScorer::new("kp", |_q, _g| Err("no keypoints".to_string()));
    let err = fuse_embeddings(
        q.view(),
        g.view(),
        1,
        &[FusionSource {
            scorer: &failing,
            calibrator: None,
            weight: 1.0,
        }],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no keypoints") && err.to_string().contains("kp"),
        "{err}"
    );
    let nan = FnScorer::new("nan", |_q, _g| Ok(f32::NAN));
    assert_eq!(nan.name(), "nan");
    assert!(matches!(
        fuse_embeddings(
            q.view(),
            g.view(),
            1,
            &[FusionSource {
                scorer: &nan,
                calibrator: None,
                weight: 1.0,
            }],
        ),
        Err(OpensetError::Scorer { .. })
    ));
}

/// 8 identities × 4 images with random (uninformative) embeddings, and a
/// second source that knows the truth (10 for the same identity, below 3
/// otherwise). Calibrated from the database alone, the fusion separates
/// every episode perfectly; cosine alone cannot.
#[test]
fn fusion_self_calibrates_from_the_database() {
    use rand::{Rng, SeedableRng};
    use reid_openset::{Gallery, SelfCalibrationParams, self_calibrate_fusion};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let n = 32;
    let mut emb = Array2::from_shape_fn((n, 16), |_| rng.gen_range(-1.0f32..1.0));
    for mut r in emb.rows_mut() {
        let norm = r.dot(&r).sqrt();
        r /= norm;
    }
    let labels: Vec<String> = (0..n).map(|i| format!("id{}", i / 4)).collect();
    let gallery = Gallery::new(emb.clone(), labels.clone()).unwrap();
    let cosine = EmbeddingScorer::new("cosine", emb.view(), emb.view()).unwrap();
    let noise: Vec<f32> = (0..n * n).map(|_| rng.gen_range(0.0..3.0)).collect();
    let truth = FnScorer::new("truth", |q, g| {
        Ok(if labels[q] == labels[g] {
            10.0
        } else {
            noise[q * n + g]
        })
    });
    let grid = SelfCalibrationParams::linear_grid(0.0, 1.0, 100);
    let params = SelfCalibrationParams::new(0.3, 0.5, 10, 1, grid).unwrap();
    let fused = self_calibrate_fusion(
        &gallery,
        &[&cosine, &truth],
        &[1.0, 1.0],
        n,
        CalibrationMethod::Isotonic,
        &params,
    )
    .unwrap();
    assert_eq!(fused.calibrators.len(), 2);
    assert!(
        (fused.selfcal.score_mean - 1.0).abs() < 1e-12,
        "{}",
        fused.selfcal.score_mean
    );
    // Every pseudo-query shortlists the whole pseudo-gallery; a pair is
    // scored once however many episodes list it.
    assert!(fused.pairs <= n * (n - 1), "{}", fused.pairs);
    assert!(fused.positives > 0 && fused.positives < fused.pairs);
    // The truth source's calibrator: 10 → (almost) surely the same animal.
    assert!(fused.calibrators[1].probability(10.0) > 0.99);
    assert!(fused.calibrators[1].probability(1.0) < 0.01);
    // Cosine alone, on random embeddings, is far from perfect.
    let alone = self_calibrate_fusion(
        &gallery,
        &[&cosine, &truth],
        &[1.0, 0.0],
        n,
        CalibrationMethod::Isotonic,
        &params,
    )
    .unwrap();
    assert!(
        alone.selfcal.score_mean < 0.9,
        "{}",
        alone.selfcal.score_mean
    );

    // Errors: weights that do not pair up, an empty shortlist, a source
    // giving NaN (named with its pair).
    assert!(
        self_calibrate_fusion(
            &gallery,
            &[&cosine, &truth],
            &[1.0],
            n,
            CalibrationMethod::Isotonic,
            &params
        )
        .is_err()
    );
    assert!(matches!(
        self_calibrate_fusion(
            &gallery,
            &[&cosine],
            &[1.0],
            0,
            CalibrationMethod::Isotonic,
            &params
        ),
        Err(OpensetError::InvalidParam {
            name: "shortlist",
            ..
        })
    ));
    let nan = FnScorer::new("broken", |q, g| {
        Ok(if q == 5 { f32::NAN } else { (q + g) as f32 })
    });
    match self_calibrate_fusion(
        &gallery,
        &[&cosine, &nan],
        &[1.0, 1.0],
        4,
        CalibrationMethod::Isotonic,
        &params,
    ) {
        Err(OpensetError::Scorer {
            source_name, query, ..
        }) => assert_eq!((source_name.as_str(), query), ("broken", 5)),
        other => panic!("{other:?}"),
    }
}

/// `fuse` scores each source once, through `score_many` (so a scorer can
/// work on all pairs in parallel).
#[test]
fn fuse_scores_through_score_many() {
    use std::cell::Cell;
    struct Counting {
        many: Cell<usize>,
        single: Cell<usize>,
    }
    impl PairScorer for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn score(&self, q: usize, g: usize) -> Result<f32, String> {
            self.single.set(self.single.get() + 1);
            Ok((q * 10 + g) as f32)
        }
        fn score_many(&self, pairs: &[(usize, usize)]) -> Result<Vec<f32>, (usize, String)> {
            self.many.set(self.many.get() + 1);
            Ok(pairs.iter().map(|&(q, g)| (q * 10 + g) as f32).collect())
        }
    }
    let c = Counting {
        many: Cell::new(0),
        single: Cell::new(0),
    };
    let shortlist = TopK {
        indices: array![[0usize, 1, 2], [2, 1, 0]],
        scores: array![[0.9f32, 0.8, 0.7], [0.9, 0.8, 0.7]],
    };
    let top = fuse(
        &shortlist,
        &[FusionSource {
            scorer: &c,
            calibrator: None,
            weight: 1.0,
        }],
    )
    .unwrap();
    assert_eq!((c.many.get(), c.single.get()), (1, 0));
    assert_eq!(top.indices, array![[2usize, 1, 0], [2, 1, 0]]);
    assert_eq!(top.scores, array![[2.0f32, 1.0, 0.0], [12.0, 11.0, 10.0]]);
}
