//! Feature stores, parallel pair scoring, the fusion scorer and parameter
//! validation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use ndarray::array;
use reid_local::{
    DescriptorKind, ExtractParams, FeatureStore, LocalError, LocalParams, LocalScorer, MatchParams,
    ModelKind, ParamGuard, RansacParams, ValidLocalParams, score_pairs,
};
use reid_openset::{FusionSource, PairScorer, TopK, fuse};

/// Six images: three scenes, each with a warped copy.
fn store() -> (tempfile::TempDir, FeatureStore) {
    let tmp = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for scene in 0..3u64 {
        let a = common::texture(180, 150, 100 + scene, 90);
        let (_, inv) = common::similarity(90.0, 75.0, 10.0 * scene as f64 + 5.0, 0.9, 4.0, 3.0);
        let b = common::warp(&a, 180, 150, |x, y| common::apply(&inv, x, y));
        for (k, img) in [a, b].iter().enumerate() {
            let p = tmp.path().join(format!("s{scene}_{k}.png"));
            img.save(&p).unwrap();
            paths.push(p);
        }
    }
    let params = LocalParams::default().check().unwrap();
    let s = FeatureStore::extract(&paths, &params, None).unwrap();
    (tmp, s)
}

#[test]
fn parallel_scoring_equals_sequential_and_is_deterministic() {
    let (_tmp, s) = store();
    let mut pairs = Vec::new();
    for i in 0..s.len() {
        for j in 0..s.len() {
            if i != j {
                pairs.push((i, j));
            }
        }
    }
    let par = s.score_pairs(&pairs).unwrap();
    let seq: Vec<_> = pairs
        .iter()
        .map(|&(i, j)| s.score_pair(i, j).unwrap())
        .collect();
    assert_eq!(par, seq);
    // On a one-thread pool too.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    assert_eq!(pool.install(|| s.score_pairs(&pairs).unwrap()), par);
    // Matching copies score far above other scenes.
    for (&(i, j), m) in pairs.iter().zip(&par) {
        if i / 2 == j / 2 {
            assert!(m.inliers >= 30, "{i}-{j}: {} inliers", m.inliers);
        } else {
            assert!(m.inliers <= 8, "{i}-{j}: {} inliers", m.inliers);
        }
    }
}

#[test]
fn pair_indices_are_checked() {
    let (_tmp, s) = store();
    let e = s.score_pairs(&[(0, 1), (2, 6)]).unwrap_err();
    assert!(
        matches!(
            e,
            LocalError::OutOfRange {
                index: 6,
                len: 6,
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(
        s.score_pair(9, 0),
        Err(LocalError::OutOfRange { index: 9, .. })
    ));
    let e = score_pairs(&s.features()[..2], s.features(), &[(2, 0)], s.params()).unwrap_err();
    assert!(
        matches!(
            e,
            LocalError::OutOfRange {
                what: "first image",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn local_scorer_precomputes_a_shortlist_and_feeds_fusion() {
    let (_tmp, s) = store();
    let f = s.features();
    // Queries: the warped copies; gallery: the originals.
    let queries = vec![f[1].clone(), f[3].clone(), f[5].clone()];
    let gallery = vec![f[0].clone(), f[2].clone(), f[4].clone()];
    let scorer = LocalScorer::new(s.params())
        .queries(&queries)
        .gallery(&gallery);
    // A shortlist that ranks the true match last for every query.
    let shortlist = TopK {
        indices: array![[1usize, 2, 0], [0, 2, 1], [0, 1, 2]],
        scores: array![[0.9f32, 0.8, 0.7], [0.9, 0.8, 0.7], [0.9, 0.8, 0.7]],
    };
    assert_eq!(scorer.precompute(&shortlist).unwrap(), 9);
    assert_eq!(scorer.precompute(&shortlist).unwrap(), 0, "already known");
    assert_eq!(scorer.known_pairs(), 9);
    for q in 0..3 {
        for g in 0..3 {
            let direct = s.score_pair(2 * q + 1, 2 * g).unwrap();
            assert_eq!(scorer.score(q, g).unwrap(), direct.inliers as f32);
        }
    }
    let fused = fuse(
        &shortlist,
        &[FusionSource {
            scorer: &scorer,
            calibrator: None,
            weight: 1.0,
        }],
    )
    .unwrap();
    assert_eq!(fused.indices.column(0).to_vec(), vec![0, 1, 2]);
    // Pairs outside the shortlist are computed on demand; bad ones error.
    let other = LocalScorer::new(s.params())
        .queries(&queries)
        .gallery(&gallery);
    assert_eq!(other.known_pairs(), 0);
    assert!(other.score(0, 0).unwrap() >= 30.0);
    assert_eq!(other.known_pairs(), 1);
    assert!(
        other
            .score(0, 3)
            .unwrap_err()
            .contains("gallery item index 3")
    );
    assert_eq!(other.name(), "local");
    let named = LocalScorer::new(s.params()).named("keypoints");
    assert_eq!(named.name(), "keypoints");
    // A scorer built without its lists scores nothing, by name.
    assert!(
        named
            .pair(0, 0)
            .unwrap_err()
            .to_string()
            .contains("query index 0")
    );

    // In bulk: the same scores as one by one, the unknown pairs computed
    // together; a bad pair is located by its index.
    let bulk = LocalScorer::new(s.params())
        .queries(&queries)
        .gallery(&gallery);
    let pairs = [(0, 0), (2, 1), (1, 1), (0, 0)];
    let got = bulk.score_many(&pairs).unwrap();
    assert_eq!(bulk.known_pairs(), 3);
    for (&(q, g), v) in pairs.iter().zip(&got) {
        assert_eq!(*v, scorer.score(q, g).unwrap());
    }
    let (at, why) = bulk.score_many(&[(0, 1), (3, 0)]).unwrap_err();
    assert_eq!(at, 1);
    assert!(why.contains("query index 3"), "{why}");
}

#[test]
fn bad_parameters_are_rejected_by_name_and_value() {
    let e = ExtractParams::default();
    let r = RansacParams::default();
    let cases: Vec<(LocalParams, &str, &str)> = vec![
        (
            LocalParams::default().extract(e.max_side(8)),
            "max_side",
            "8",
        ),
        (
            LocalParams::default().extract(e.max_keypoints(0)),
            "max_keypoints",
            "0",
        ),
        (
            LocalParams::default().extract(e.sigma(f32::NAN)),
            "sigma",
            "NaN",
        ),
        (
            LocalParams::default().extract(e.octave_layers(0)),
            "octave_layers",
            "0",
        ),
        (
            LocalParams::default().extract(e.contrast_threshold(-1.0)),
            "contrast_threshold",
            "-1",
        ),
        (
            LocalParams::default().extract(e.edge_threshold(1.0)),
            "edge_threshold",
            "1",
        ),
        (
            LocalParams::default().matching(MatchParams::default().ratio(1.5)),
            "ratio",
            "1.5",
        ),
        (
            LocalParams::default().ransac(r.max_iterations(0)),
            "max_iterations",
            "0",
        ),
        (
            LocalParams::default().ransac(r.inlier_threshold(0.0)),
            "inlier_threshold",
            "0",
        ),
        (
            LocalParams::default().ransac(r.confidence(1.0)),
            "confidence",
            "1",
        ),
        // The public fields and struct-update syntax reach the same check.
        (
            LocalParams {
                ransac: RansacParams {
                    confidence: 0.0,
                    ..Default::default()
                },
                ..Default::default()
            },
            "confidence",
            "0",
        ),
    ];
    for (p, name, value) in cases {
        assert!(p.check_ref().is_err(), "{name}");
        match p.check() {
            Err(e @ LocalError::InvalidParam { name: n, .. }) => {
                assert_eq!(n, name, "{e}");
                assert!(e.to_string().contains(&format!("got {value}")), "{e}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // The parts check on their own, and the defaults are valid.
    assert!(MatchParams::default().ratio(0.0).check_ref().is_err());
    assert!(e.sigma(0.5).check().is_err());
    let v = LocalParams::default().check().unwrap();
    assert_eq!(v, ValidLocalParams::default());
    let v = LocalParams::default()
        .extract(e.max_side(640).descriptor(DescriptorKind::Sift))
        .matching(MatchParams::default().mutual(false))
        .ransac(r.model(ModelKind::Homography).seed(3).refine(false))
        .check()
        .unwrap();
    assert_eq!(v.extract().get().max_side, 640);
    assert_eq!(v.extract().get().descriptor, DescriptorKind::Sift);
    assert!(!v.matching().get().mutual);
    let rp = v.ransac().get();
    assert_eq!(
        (rp.model, rp.seed, rp.refine),
        (ModelKind::Homography, 3, false)
    );
}

#[test]
fn feature_store_reports_cache_status_and_the_first_failing_path() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.png");
    common::texture(120, 100, 1, 60).save(&a).unwrap();
    let cache = reid_local::FeatureCache::new(tmp.path().join("cache")).unwrap();
    let params = LocalParams::default().check().unwrap();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let s = FeatureStore::extract_with(&[&a, &a], &params, Some(&cache), |_, _| {
        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(done.into_inner(), 2);
    assert_eq!(s.len(), 2);
    let s2 = FeatureStore::extract(&[&a], &params, Some(&cache)).unwrap();
    assert_eq!(s2.cache_status(), &[reid_local::CacheStatus::Hit]);
    assert_eq!(s2.get(0), s.get(0));
    let missing = tmp.path().join("missing.png");
    let e = FeatureStore::extract(
        &[a.clone(), missing.clone(), tmp.path().join("x.png")],
        &params,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(&e, LocalError::Io { path, .. } if *path == missing),
        "{e}"
    );
}
