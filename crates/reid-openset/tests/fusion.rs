//! Fusion of similarity sources, worked by hand; self-calibrated from the
//! database, per group (dataset) with pairs never crossing groups.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::RefCell;
use std::collections::BTreeSet;

use common::episodes;
use ndarray::{Array2, array};
use rand::{Rng, SeedableRng};
use reid_index::Gallery;
use reid_openset::{
    CalibrationMethod, Calibrator, EmbeddingScorer, FnScorer, FusionParams, FusionSource,
    MemoScorer, OpensetError, PairScorer, ParamGuard, TopK, ValidDecisionParams, decide_topk, fuse,
    fuse_embeddings, fuse_with_sources, linear_grid, self_calibrate_fusion,
    self_calibrate_fusion_groups,
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
    let p = decide_topk::<_, &str>(
        &top,
        &labels,
        None,
        &ValidDecisionParams::top1(0.5).unwrap(),
    )
    .unwrap();
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

/// Each source's score follows its candidate through the re-ranking: the
/// example of `weighted_mean_over_the_shortlist` (g1 moves first) with a
/// third source of weight 0, which is never scored.
#[test]
fn per_source_scores_follow_the_reranking() {
    let q = array![[1.0f32, 0.0]];
    let g = array![[1.0f32, 0.0], [0.8, 0.6], [0.0, 1.0]];
    let emb = EmbeddingScorer::new("global", q.view(), g.view()).unwrap();
    let kp = FnScorer::new("keypoints", |_q, gi| Ok([0.1, 0.9, 0.5][gi]));
    let never = FnScorer::new("off", |_q, _g| Err("scored a source of weight 0".into()));
    let shortlist = TopK {
        indices: array![[0usize, 1]],
        scores: array![[1.0f32, 0.8]],
    };
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
        FusionSource {
            scorer: &never,
            calibrator: None,
            weight: 0.0,
        },
    ];
    let out = fuse_with_sources(&shortlist, &sources).unwrap();
    assert_eq!(out.top.indices, array![[1usize, 0]]);
    let cos = out.sources[0].as_ref().unwrap();
    let kps = out.sources[1].as_ref().unwrap();
    assert!((cos[[0, 0]] - 0.8).abs() < 1e-6 && (cos[[0, 1]] - 1.0).abs() < 1e-6);
    assert_eq!(kps, &array![[0.9f32, 0.1]]);
    assert!(out.sources[2].is_none());
    // The same ranking as `fuse` without the source of weight 0.
    let plain = fuse(&shortlist, &sources[..2]).unwrap();
    assert_eq!(plain, out.top);
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
/// `n` rows of `d` uniform entries in [-1, 1), each scaled to unit length.
fn random_unit_rows(rng: &mut rand_chacha::ChaCha8Rng, n: usize, d: usize) -> Array2<f32> {
    let mut emb = Array2::from_shape_fn((n, d), |_| rng.gen_range(-1.0f32..1.0));
    for mut r in emb.rows_mut() {
        let norm = r.dot(&r).sqrt();
        r /= norm;
    }
    emb
}

/// `n` random unit rows of `d` entries (seeded) labelled four to an
/// identity (`id0` for rows 0–3, ...).
fn four_per_identity(seed: u64, n: usize, d: usize) -> (Array2<f32>, Vec<String>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let emb = random_unit_rows(&mut rng, n, d);
    let labels = (0..n).map(|i| format!("id{}", i / 4)).collect();
    (emb, labels)
}

/// A pair score that tells identities apart only partly: a pattern in
/// [0, 0.9] plus 0.6 for the same identity.
fn noisy_match(labels: &[String], q: usize, g: usize) -> Result<f32, String> {
    let same = labels[q] == labels[g];
    Ok(((q * 7 + g * 13) % 10) as f32 / 10.0 + if same { 0.6 } else { 0.0 })
}

#[test]
fn fusion_self_calibrates_from_the_database() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let n = 32;
    let emb = random_unit_rows(&mut rng, n, 16);
    let labels: Vec<String> = (0..n).map(|i| format!("id{}", i / 4)).collect();
    let gallery = Gallery::from_labels(emb.view(), &labels).unwrap();
    let cosine = EmbeddingScorer::new("cosine", emb.view(), emb.view()).unwrap();
    let noise: Vec<f32> = (0..n * n).map(|_| rng.gen_range(0.0..3.0)).collect();
    let truth = FnScorer::new("truth", |q, g| {
        Ok(if labels[q] == labels[g] {
            10.0
        } else {
            noise[q * n + g]
        })
    });
    let params = episodes(0.3, 0.5, 10, 1, linear_grid(0.0..=1.0, 100));
    let fusion = |w: Vec<f32>, shortlist: usize| {
        FusionParams::default()
            .shortlist(shortlist)
            .weights(w)
            .method(CalibrationMethod::Isotonic)
            .check()
            .unwrap()
    };
    let fused = self_calibrate_fusion(
        &gallery,
        &[&cosine, &truth],
        &fusion(vec![1.0, 1.0], n),
        &params,
    )
    .unwrap();
    assert_eq!(fused.calibrators.len(), 2);
    assert!(
        (fused.self_calibration.score_mean - 1.0).abs() < 1e-12,
        "{}",
        fused.self_calibration.score_mean
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
        &fusion(vec![1.0, 0.0], n),
        &params,
    )
    .unwrap();
    assert!(
        alone.self_calibration.score_mean < 0.9,
        "{}",
        alone.self_calibration.score_mean
    );

    // Errors: weights that do not pair up, an empty shortlist, a source
    // giving NaN (named with its pair).
    assert!(matches!(
        self_calibrate_fusion(&gallery, &[&cosine, &truth], &fusion(vec![1.0], n), &params),
        Err(OpensetError::Length { .. })
    ));
    assert!(matches!(
        FusionParams::default().shortlist(0).check(),
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
        &fusion(vec![1.0, 1.0], 4),
        &params,
    ) {
        Err(OpensetError::Scorer {
            source_name, query, ..
        }) => assert_eq!((source_name.as_str(), query), ("broken", 5)),
        other => panic!("{other:?}"),
    }
}

/// Calibrating on the first `k` episodes of 10 is calibrating with `k`
/// episodes (the episodes are drawn in sequence from one seed), and scores
/// fewer pairs than all 10.
#[test]
fn fusion_calibrates_on_a_subsample_of_episodes() {
    let (emb, labels) = four_per_identity(9, 40, 8);
    let gallery = Gallery::from_labels(emb.view(), &labels).unwrap();
    let cosine = EmbeddingScorer::new("cosine", emb.view(), emb.view()).unwrap();
    let noisy = FnScorer::new("noisy", |q, g| noisy_match(&labels, q, g));
    let grid = linear_grid(0.0..=1.0, 50);
    let fusion = |k: Option<usize>| {
        FusionParams::default()
            .shortlist(5)
            .weights(vec![1.0, 1.0])
            .calibration_episodes(k)
            .check()
            .unwrap()
    };
    let ten = episodes(0.3, 0.5, 10, 3, grid.clone());
    let all = self_calibrate_fusion(&gallery, &[&cosine, &noisy], &fusion(None), &ten).unwrap();
    for k in [1, 3] {
        let sub =
            self_calibrate_fusion(&gallery, &[&cosine, &noisy], &fusion(Some(k)), &ten).unwrap();
        let plain = self_calibrate_fusion(
            &gallery,
            &[&cosine, &noisy],
            &fusion(None),
            &episodes(0.3, 0.5, k, 3, grid.clone()),
        )
        .unwrap();
        assert_eq!(sub, plain, "first {k} of 10 episodes");
        assert!(sub.pairs < all.pairs, "{k}: {} vs {}", sub.pairs, all.pairs);
    }
    // More than there are: all of them.
    let more = self_calibrate_fusion(&gallery, &[&cosine, &noisy], &fusion(Some(50)), &ten);
    assert_eq!(more.unwrap(), all);
    match FusionParams::default()
        .calibration_episodes(Some(0))
        .check()
    {
        Err(OpensetError::InvalidParam { name, .. }) => assert_eq!(name, "calibration_episodes"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn fusion_params_are_checked() {
    let p = FusionParams::default().check().unwrap();
    assert_eq!(
        (p.shortlist(), p.weights(), p.method()),
        (10, &[1.0f32, 1.0][..], CalibrationMethod::Isotonic)
    );
    let p = FusionParams::default()
        .shortlist(3)
        .weights(vec![0.0, 2.0, 1.0])
        .method(CalibrationMethod::Platt)
        .check()
        .unwrap();
    assert_eq!(
        (p.shortlist(), p.weights(), p.method()),
        (3, &[0.0f32, 2.0, 1.0][..], CalibrationMethod::Platt)
    );
    for (w, why) in [
        (vec![], "one weight per"),
        (vec![1.0, -0.5], "-0.5"),
        (vec![f32::NAN], "NaN"),
        (vec![f32::INFINITY, 1.0], "inf"),
        (vec![0.0, 0.0], "all weights are 0"),
    ] {
        let b = FusionParams::default().weights(w.clone());
        assert!(b.check_ref().is_err(), "{w:?}");
        match b.check() {
            Err(OpensetError::InvalidParam { name, reason }) => {
                assert_eq!(name, "weights");
                assert!(reason.contains(why), "{w:?}: {reason}");
            }
            other => panic!("{w:?}: {other:?}"),
        }
    }
}

/// Two groups (datasets): group B's rows are near-duplicates (cosine ≈
/// 0.9998) of group A's rows under other identity names, interleaved with
/// them, and a third group has one identity. The sources see gallery rows;
/// the recording source fails on any pair across groups.
struct TwoGroups {
    x: Array2<f32>,
    labels: Vec<String>,
    groups: Vec<&'static str>,
    /// Same identity → 10, else a fixed noise in [0, 3).
    noise: Vec<f32>,
}

impl TwoGroups {
    fn new() -> Self {
        let mut sizes = vec![3; 8];
        sizes.extend(vec![1; 3]);
        let (xa, la) = common::planted(&sizes, 0.2, 0.3, 40, 81);
        let xb = common::near_duplicates(&xa, 0.02, 82);
        // Same dimension as A (1 + 11 + 40): 1 + 1 + 50.
        let (xc, _) = common::planted(&[3], 0.2, 0.3, 50, 83);
        let n = xa.nrows();
        let mut x = Array2::<f32>::zeros((2 * n + 3, xa.ncols()));
        let mut labels = Vec::new();
        let mut groups = Vec::new();
        for (i, l) in la.iter().enumerate() {
            x.row_mut(2 * i).assign(&xa.row(i));
            x.row_mut(2 * i + 1).assign(&xb.row(i));
            labels.push(format!("A_{l}"));
            labels.push(format!("B_{l}"));
            groups.push("A");
            groups.push("B");
        }
        for i in 0..3 {
            x.row_mut(2 * n + i).assign(&xc.row(i));
            labels.push("C_solo".to_string());
            groups.push("C");
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(84);
        let m = x.nrows();
        let noise = (0..m * m).map(|_| rng.gen_range(0.0..3.0)).collect();
        Self {
            x,
            labels,
            groups,
            noise,
        }
    }

    /// The truth-like score of gallery rows `q`, `g`.
    fn truth(&self, q: usize, g: usize) -> f32 {
        if self.labels[q] == self.labels[g] {
            10.0
        } else {
            self.noise[q * self.x.nrows() + g]
        }
    }

    fn rows(&self, name: &str) -> Vec<usize> {
        (0..self.groups.len())
            .filter(|&i| self.groups[i] == name)
            .collect()
    }
}

/// Per group: pairs never cross groups (every pair asked for is recorded,
/// and a pair across groups is an error), each group's fusion is exactly
/// that of the group's own sub-gallery, a group that cannot form episodes
/// is skipped and `get` falls back to the default, whose calibrators are
/// fitted on every group's pairs together.
#[test]
fn fusion_per_group_never_crosses_groups() {
    let d = TwoGroups::new();
    let gallery = Gallery::from_labels(d.x.view(), &d.labels).unwrap();
    let asked: RefCell<Vec<(usize, usize)>> = RefCell::new(Vec::new());
    let recording = FnScorer::new("truth", |q, g| {
        asked.borrow_mut().push((q, g));
        if d.groups[q] != d.groups[g] {
            return Err(format!(
                "pair across groups: {q} ({}), {g} ({})",
                d.groups[q], d.groups[g]
            ));
        }
        Ok(d.truth(q, g))
    });
    let cosine = EmbeddingScorer::new("cosine", d.x.view(), d.x.view()).unwrap();
    let params = FusionParams::default()
        .shortlist(5)
        .weights(vec![1.0, 2.0])
        .check()
        .unwrap();
    let eps = episodes(0.3, 0.5, 5, 9, linear_grid(0.0..=1.0, 100));
    let cal =
        self_calibrate_fusion_groups(&gallery, &d.groups, &[&cosine, &recording], &params, &eps)
            .unwrap();

    // Every pair inside one group, each asked once, never a row with itself.
    let asked = asked.into_inner();
    assert!(!asked.is_empty());
    for &(q, g) in &asked {
        assert_eq!(d.groups[q], d.groups[g], "pair ({q}, {g})");
        assert_ne!(q, g);
    }
    let distinct: BTreeSet<(usize, usize)> = asked.iter().copied().collect();
    assert_eq!(distinct.len(), asked.len(), "a pair was scored twice");
    assert_eq!(asked.len(), cal.all.pairs);
    let in_group = |name: &str| asked.iter().filter(|&&(q, _)| d.groups[q] == name).count();
    assert!(in_group("A") > 0 && in_group("B") > 0);
    assert_eq!(in_group("C"), 0, "the skipped group is never scored");

    // Skipped group and fallback.
    assert_eq!(
        cal.skipped.keys().map(String::as_str).collect::<Vec<_>>(),
        ["C"]
    );
    assert_eq!(
        cal.per_group.keys().map(String::as_str).collect::<Vec<_>>(),
        ["A", "B"]
    );
    assert!(std::ptr::eq(cal.get("C"), &cal.all));
    assert!(std::ptr::eq(cal.get("not a group"), &cal.all));
    assert!(std::ptr::eq(cal.get("A"), &cal.per_group["A"]));
    assert_eq!(
        cal.thresholds.get(Some("C")),
        cal.all.self_calibration.threshold
    );
    assert_eq!(
        cal.thresholds.default_threshold(),
        cal.all.self_calibration.threshold
    );

    // Each group's fusion is the fusion of its own sub-gallery (sources
    // scoring the sub-gallery's rows), bit for bit.
    for name in ["A", "B"] {
        let rows = d.rows(name);
        let sub = gallery.select_rows(&rows).unwrap();
        let sub_x = common::rows_of(&d.x, &rows);
        let sub_cos = EmbeddingScorer::new("cosine", sub_x.view(), sub_x.view()).unwrap();
        let sub_truth = FnScorer::new("truth", |q, g| Ok(d.truth(rows[q], rows[g])));
        let alone = self_calibrate_fusion(&sub, &[&sub_cos, &sub_truth], &params, &eps).unwrap();
        assert_eq!(cal.per_group[name], alone, "group {name}");
        assert_eq!(
            cal.thresholds.get(Some(name)).to_bits(),
            alone.self_calibration.threshold.to_bits()
        );
        assert_eq!(alone.pairs, in_group(name));
        // The near-duplicates of the other group never disturb a group.
        assert_eq!(alone.self_calibration.score_mean, 1.0, "group {name}");
    }
    // The default: pairs and positives of all groups together.
    let (a, b) = (&cal.per_group["A"], &cal.per_group["B"]);
    assert_eq!(cal.all.pairs, a.pairs + b.pairs);
    assert_eq!(cal.all.positives, a.positives + b.positives);
    assert_eq!(cal.all.calibrators.len(), 2);
    // Its calibrators are fitted on every group's pairs together, each
    // group's on its own pairs (positive = same identity).
    let refit = |keep: &dyn Fn(usize) -> bool| -> Vec<Calibrator> {
        let sel: Vec<(usize, usize)> = asked.iter().copied().filter(|&(q, _)| keep(q)).collect();
        let same: Vec<bool> = sel
            .iter()
            .map(|&(q, g)| d.labels[q] == d.labels[g])
            .collect();
        let cos: Vec<f32> = sel
            .iter()
            .map(|&(q, g)| cosine.score(q, g).unwrap())
            .collect();
        let tru: Vec<f32> = sel.iter().map(|&(q, g)| d.truth(q, g)).collect();
        [cos, tru]
            .iter()
            .map(|x| Calibrator::fit(CalibrationMethod::Isotonic, x, &same).unwrap())
            .collect()
    };
    assert_eq!(cal.all.calibrators, refit(&|_| true));
    assert_eq!(a.calibrators, refit(&|q| d.groups[q] == "A"));
    assert_eq!(b.calibrators, refit(&|q| d.groups[q] == "B"));
    assert_ne!(cal.all.calibrators, a.calibrators);
    assert_eq!(cal.all.self_calibration.episodes.len(), 5);
    for (e, p) in cal.all.self_calibration.episodes.iter().enumerate() {
        let (ea, eb) = (
            &a.self_calibration.episodes[e],
            &b.self_calibration.episodes[e],
        );
        assert_eq!(p.known_queries, ea.known_queries + eb.known_queries);
        assert_eq!(p.new_queries, ea.new_queries + eb.new_queries);
    }

    // A scorer that fails on a cross-group pair would fail on the whole
    // gallery taken as one group (the near-duplicates shortlist each other).
    let again = FnScorer::new("truth", |q, g| {
        if d.groups[q] != d.groups[g] {
            return Err("across".to_string());
        }
        Ok(d.truth(q, g))
    });
    assert!(matches!(
        self_calibrate_fusion(&gallery, &[&cosine, &again], &params, &eps),
        Err(OpensetError::Scorer { .. })
    ));
}

/// With one group, the per-group fusion, the default and
/// `self_calibrate_fusion` are one and the same; with no usable group the
/// error lists them.
#[test]
fn fusion_one_group_and_no_group() {
    let d = TwoGroups::new();
    let rows = d.rows("A");
    let x = common::rows_of(&d.x, &rows);
    let labels: Vec<&str> = rows.iter().map(|&r| d.labels[r].as_str()).collect();
    let gallery = Gallery::from_labels(x.view(), &labels).unwrap();
    let cosine = EmbeddingScorer::new("cosine", x.view(), x.view()).unwrap();
    let truth = FnScorer::new("truth", |q, g| Ok(d.truth(rows[q], rows[g])));
    let params = FusionParams::default()
        .shortlist(4)
        .weights(vec![1.0, 1.0])
        .method(CalibrationMethod::Platt)
        .check()
        .unwrap();
    let eps = episodes(0.3, 0.5, 4, 2, linear_grid(0.0..=1.0, 50));
    let one = vec!["A"; rows.len()];
    let cal =
        self_calibrate_fusion_groups(&gallery, &one, &[&cosine, &truth], &params, &eps).unwrap();
    let plain = self_calibrate_fusion(&gallery, &[&cosine, &truth], &params, &eps).unwrap();
    assert_eq!(cal.all, plain);
    assert_eq!(cal.per_group["A"], plain);
    assert!(cal.skipped.is_empty());

    // No group can form episodes.
    let rows_c = d.rows("C");
    let xc = common::rows_of(&d.x, &rows_c);
    let gc = Gallery::from_labels(xc.view(), &["C_solo"; 3]).unwrap();
    let cos_c = EmbeddingScorer::new("cosine", xc.view(), xc.view()).unwrap();
    match self_calibrate_fusion_groups(&gc, &["OnlyOne"; 3], &[&cos_c, &cos_c], &params, &eps) {
        Err(OpensetError::Episodes(msg)) => assert!(msg.contains("OnlyOne"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // Groups that do not pair up with the rows.
    assert!(matches!(
        self_calibrate_fusion_groups(&gallery, &one[1..], &[&cosine, &truth], &params, &eps),
        Err(OpensetError::Length { .. })
    ));
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

/// A scorer that records every batch it is asked for and fails on one
/// chosen pair.
struct Recording {
    batches: RefCell<Vec<Vec<(usize, usize)>>>,
    fail_on: Option<(usize, usize)>,
}

impl PairScorer for Recording {
    fn name(&self) -> &str {
        "recording"
    }
    fn score(&self, q: usize, g: usize) -> Result<f32, String> {
        self.score_many(&[(q, g)]).map(|v| v[0]).map_err(|e| e.1)
    }
    fn score_many(&self, pairs: &[(usize, usize)]) -> Result<Vec<f32>, (usize, String)> {
        self.batches.borrow_mut().push(pairs.to_vec());
        pairs
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                if Some(p) == self.fail_on {
                    Err((i, format!("cannot score {p:?}")))
                } else {
                    Ok((p.0 * 100 + p.1) as f32)
                }
            })
            .collect()
    }
}

/// The memo passes only the pairs it has not seen to the inner scorer, in
/// one batch, each once, in order of first appearance; answers are the
/// inner scorer's in the order asked; a failure names the pair's index in
/// the caller's list and is not remembered.
#[test]
fn memo_scores_each_pair_once() {
    let memo = MemoScorer::new(Recording {
        batches: RefCell::new(Vec::new()),
        fail_on: None,
    });
    assert_eq!(memo.name(), "recording");
    assert_eq!(
        memo.score_many(&[(1, 2), (3, 4), (1, 2)]).unwrap(),
        [102.0, 304.0, 102.0]
    );
    assert_eq!(
        memo.score_many(&[(3, 4), (5, 6), (7, 8), (5, 6)]).unwrap(),
        [304.0, 506.0, 708.0, 506.0]
    );
    // Everything known: the inner scorer is not called at all.
    assert_eq!(memo.score_many(&[(7, 8), (1, 2)]).unwrap(), [708.0, 102.0]);
    assert_eq!(memo.score(5, 6).unwrap(), 506.0);
    assert_eq!(
        *memo.inner().batches.borrow(),
        vec![vec![(1, 2), (3, 4)], vec![(5, 6), (7, 8)]]
    );
    assert_eq!((memo.computed(), memo.reused()), (4, 6));

    let failing = MemoScorer::new(Recording {
        batches: RefCell::new(Vec::new()),
        fail_on: Some((9, 9)),
    });
    failing.score_many(&[(1, 1)]).unwrap();
    // (9, 9) is the second missing pair but the fourth asked for.
    let (at, msg) = failing
        .score_many(&[(1, 1), (2, 2), (1, 1), (9, 9)])
        .unwrap_err();
    assert_eq!((at, msg.as_str()), (3, "cannot score (9, 9)"));
    assert!(failing.score(9, 9).is_err());
    assert_eq!(failing.computed(), 1);
}

/// Calibrating through a memo gives the same calibration as without it,
/// and a second calibration at a larger shortlist asks the inner scorer
/// only for the pairs the first one did not shortlist.
#[test]
fn memo_leaves_the_calibration_unchanged() {
    let (emb, labels) = four_per_identity(4, 36, 8);
    let gallery = Gallery::from_labels(emb.view(), &labels).unwrap();
    let cosine = EmbeddingScorer::new("cosine", emb.view(), emb.view()).unwrap();
    let noisy = |q, g| noisy_match(&labels, q, g);
    let plain = FnScorer::new("noisy", noisy);
    let memo = MemoScorer::new(FnScorer::new("noisy", noisy));
    let eps = episodes(0.3, 0.5, 6, 3, linear_grid(0.0..=1.0, 50));
    let fusion = |b: usize| {
        FusionParams::default()
            .shortlist(b)
            .weights(vec![1.0, 1.0])
            .check()
            .unwrap()
    };
    let small_plain =
        self_calibrate_fusion(&gallery, &[&cosine, &plain], &fusion(4), &eps).unwrap();
    let small_memo = self_calibrate_fusion(&gallery, &[&cosine, &memo], &fusion(4), &eps).unwrap();
    assert_eq!(small_plain, small_memo);
    assert_eq!((memo.computed(), memo.reused()), (small_plain.pairs, 0));
    let big_plain = self_calibrate_fusion(&gallery, &[&cosine, &plain], &fusion(8), &eps).unwrap();
    let big_memo = self_calibrate_fusion(&gallery, &[&cosine, &memo], &fusion(8), &eps).unwrap();
    assert_eq!(big_plain, big_memo);
    // The shortlists of 4 are inside those of 8: those pairs are reused.
    assert_eq!(memo.computed(), big_plain.pairs);
    assert_eq!(memo.reused(), small_plain.pairs);
}
