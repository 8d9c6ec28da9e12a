//! Self-calibration from the database alone: episode structure, recovery of
//! a planted threshold, agreement with the scoring module, errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use reid_openset::score::open_set_score;
use reid_openset::{
    Aggregate, Decision, DecisionParams, Gallery, OpensetError, Rule, SelfCalibrationParams,
    decide, self_calibrate, simulate_episodes,
};

fn sizes_with_singletons() -> Vec<usize> {
    // 12 identities with several images, 12 singletons, interleaved.
    (0..24)
        .map(|i| if i % 2 == 0 { 1 } else { 2 + i % 5 })
        .collect()
}

#[test]
fn episodes_have_the_documented_structure() {
    let sizes = sizes_with_singletons();
    let labels: Vec<String> = sizes
        .iter()
        .enumerate()
        .flat_map(|(i, &m)| std::iter::repeat_n(format!("id{i:02}"), m))
        .collect();
    let params = SelfCalibrationParams::new(0.25, 0.5, 8, 7, vec![0.5]).unwrap();
    let eps = simulate_episodes(&labels, &params).unwrap();
    assert_eq!(eps.len(), 8);
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &labels {
        *count.entry(l).or_default() += 1;
    }
    for ep in &eps {
        let g: BTreeSet<usize> = ep.gallery.iter().copied().collect();
        let q: BTreeSet<usize> = ep.queries.iter().copied().collect();
        assert!(g.is_disjoint(&q));
        assert_eq!(g.len() + q.len(), labels.len(), "every row is used once");
        let g_ids: BTreeSet<&str> = ep.gallery.iter().map(|&r| labels[r].as_str()).collect();
        let mut new_ids = BTreeSet::new();
        for (&r, &is_new) in ep.queries.iter().zip(&ep.is_new) {
            let id = labels[r].as_str();
            assert_eq!(is_new, !g_ids.contains(id), "row {r}");
            if is_new {
                new_ids.insert(id);
            } else {
                assert!(count[id] >= 2, "a singleton became a known query");
            }
        }
        // round(0.25 * 24) = 6 pseudo-new identities, all their images queries.
        assert_eq!(new_ids.len(), 6);
        for id in &new_ids {
            let n_q = ep.queries.iter().filter(|&&r| labels[r] == *id).count();
            assert_eq!(n_q, count[id]);
        }
        // Known identities with m >= 2 images: round(m / 2) queries, clamped to 1..=m-1.
        for (id, &m) in &count {
            if m >= 2 && !new_ids.contains(id) {
                let n_q = ep.queries.iter().filter(|&&r| labels[r] == *id).count();
                let want = ((m as f64 * 0.5).round() as usize).clamp(1, m - 1);
                assert_eq!(n_q, want, "{id}");
            }
        }
        assert!(
            ep.is_new.iter().any(|&n| !n),
            "every episode has known queries"
        );
    }
    // Seeded: same seed same episodes, other seed others, episodes differ.
    assert_eq!(eps, simulate_episodes(&labels, &params).unwrap());
    let other = SelfCalibrationParams::new(0.25, 0.5, 8, 8, vec![0.5]).unwrap();
    assert_ne!(eps, simulate_episodes(&labels, &other).unwrap());
    assert_ne!(eps[0], eps[1]);
}

/// Embeddings with same-identity cosine ≈ shared + own and
/// different-identity cosine ≈ shared: the best threshold is anywhere in
/// the gap, and the middle of the tied best grid values is the middle of
/// the gap, shared + own / 2.
#[test]
fn recovers_a_planted_threshold() {
    let mut sizes = vec![4; 20];
    sizes.extend(vec![1; 20]);
    for (shared, own, seed) in [(0.2, 0.4, 1u64), (0.5, 0.3, 2), (0.0, 0.5, 3)] {
        let (x, labels) = common::planted(&sizes, shared, own, 400, seed);
        // The actual gap of this draw.
        let sims = x.dot(&x.t());
        let (mut max_diff, mut min_same) = (f32::NEG_INFINITY, f32::INFINITY);
        for i in 0..labels.len() {
            for j in 0..labels.len() {
                if i == j {
                    continue;
                }
                if labels[i] == labels[j] {
                    min_same = min_same.min(sims[[i, j]]);
                } else {
                    max_diff = max_diff.max(sims[[i, j]]);
                }
            }
        }
        assert!(max_diff < min_same, "no gap in the synthetic data");
        let g = Gallery::new(x, labels).unwrap();
        let params = SelfCalibrationParams::new(
            0.3,
            0.5,
            6,
            seed,
            SelfCalibrationParams::linear_grid(-1.0, 1.0, 400),
        )
        .unwrap();
        let planted = (shared + own / 2.0) as f32;
        for rule in [
            Rule::Top1,
            Rule::Knn {
                k: 5,
                per_identity: 2,
                aggregate: Aggregate::Mean,
            },
        ] {
            let cal = self_calibrate(&g, &rule, &params).unwrap();
            assert!(
                cal.threshold > max_diff && cal.threshold <= min_same,
                "{rule:?}: {} outside the gap ({max_diff}, {min_same}]",
                cal.threshold
            );
            assert!(
                (cal.threshold - planted).abs() < 0.06,
                "{rule:?}: {} vs planted {planted}",
                cal.threshold
            );
            assert!((cal.score_mean - 1.0).abs() < 1e-12);
            assert!(cal.score_std < 1e-12);
            assert_eq!(cal.episodes.len(), 6);
            for e in &cal.episodes {
                assert_eq!((e.baks, e.baus), (Some(1.0), Some(1.0)));
                assert!(e.best_threshold > max_diff && e.best_threshold <= min_same);
                assert!(e.known_queries > 0 && e.new_queries > 0);
            }
            assert!(cal.threshold_std < 0.1);
            assert_eq!(cal.curve.len(), 401);
        }
    }
}

/// The fast per-threshold scoring inside self-calibration gives the same
/// BAKS/BAUS as deciding the episode with `decide` and scoring it with
/// `score::open_set_score` (random data: no gap, many errors).
#[test]
fn episode_scores_agree_with_the_score_module() {
    let sizes: Vec<usize> = (0..30).map(|i| 1 + i % 4).collect();
    let labels: Vec<String> = sizes
        .iter()
        .enumerate()
        .flat_map(|(i, &m)| std::iter::repeat_n(format!("id{i:02}"), m))
        .collect();
    // Noisy planted data: same-identity cosine ≈ 0.5 ± large noise.
    let (x, _) = common::planted(&sizes, 0.2, 0.3, 3, 11);
    let g = Gallery::new(x.clone(), labels.clone()).unwrap();
    let grid = SelfCalibrationParams::linear_grid(-0.2, 1.0, 24);
    let params = SelfCalibrationParams::new(0.4, 0.5, 1, 5, grid.clone()).unwrap();
    let ep = simulate_episodes(&labels, &params).unwrap().remove(0);
    for rule in [
        Rule::Top1,
        Rule::Knn {
            k: 4,
            per_identity: 2,
            aggregate: Aggregate::Mean,
        },
    ] {
        let cal = self_calibrate(&g, &rule, &params).unwrap();
        let sub_g = Gallery::new(
            x.select(ndarray::Axis(0), &ep.gallery),
            ep.gallery.iter().map(|&r| labels[r].clone()).collect(),
        )
        .unwrap();
        let q = x.select(ndarray::Axis(0), &ep.queries);
        let truth: Vec<&str> = ep.queries.iter().map(|&r| labels[r].as_str()).collect();
        let mut nontrivial = 0;
        for (ti, &t) in grid.iter().enumerate() {
            let p = DecisionParams::new(rule, reid_openset::Thresholds::new(t).unwrap()).unwrap();
            let d: Vec<Decision> = decide::<&str>(&sub_g, q.view(), None, &p)
                .unwrap()
                .into_iter()
                .map(|p| p.decision)
                .collect();
            let s = open_set_score(&truth, &d, &ep.is_new).unwrap();
            let want = s.geometric_mean();
            let got = cal.curve[ti].mean;
            assert!(
                (got - want).abs() < 1e-12,
                "{rule:?} t={t}: {got} vs {want}"
            );
            if want > 0.0 && want < 1.0 {
                nontrivial += 1;
            }
        }
        assert!(
            nontrivial >= 2,
            "the comparison should cover non-trivial scores"
        );
    }
}

#[test]
fn bad_params_are_rejected() {
    let grid = || vec![0.1, 0.2];
    for (nf, qf, e, g) in [
        (0.0, 0.5, 3, grid()),
        (1.0, 0.5, 3, grid()),
        (f64::NAN, 0.5, 3, grid()),
        (0.3, 1.5, 3, grid()),
        (0.3, 0.0, 3, grid()),
        (0.3, 0.5, 0, grid()),
        (0.3, 0.5, 3, vec![]),
        (0.3, 0.5, 3, vec![0.1, f32::NAN]),
    ] {
        assert!(
            matches!(
                SelfCalibrationParams::new(nf, qf, e, 0, g),
                Err(OpensetError::InvalidParam { .. })
            ),
            "{nf} {qf} {e}"
        );
    }
    // The grid is sorted and deduplicated.
    let p = SelfCalibrationParams::new(0.3, 0.5, 1, 0, vec![0.5, 0.1, 0.5]).unwrap();
    assert_eq!(p.grid(), &[0.1, 0.5]);
}

#[test]
fn databases_that_cannot_form_episodes() {
    let p = SelfCalibrationParams::default();
    let one_id = vec!["a".to_string(); 4];
    assert!(matches!(
        simulate_episodes(&one_id, &p),
        Err(OpensetError::Episodes(_))
    ));
    let all_singletons: Vec<String> = (0..5).map(|i| format!("s{i}")).collect();
    assert!(matches!(
        simulate_episodes(&all_singletons, &p),
        Err(OpensetError::Episodes(_))
    ));
    // Two identities, one of them a singleton: the singleton is the new one.
    let tiny: Vec<String> = ["a", "a", "b"].iter().map(|s| s.to_string()).collect();
    for ep in simulate_episodes(&tiny, &p).unwrap() {
        assert_eq!(ep.gallery.len(), 1);
        assert!(ep.gallery[0] < 2, "the gallery keeps one image of a");
        assert_eq!(ep.queries.len(), 2);
        assert!(ep.queries.contains(&2));
        let new_row = ep.queries.iter().position(|&r| r == 2).unwrap();
        assert!(ep.is_new[new_row]);
    }
}

/// Two "species" with different planted gaps get their own thresholds; a
/// group of singletons cannot form episodes and falls back to the default.
#[test]
fn thresholds_per_group_from_the_database() {
    let (xa, la) = common::planted(&[3; 12], 0.2, 0.4, 200, 21);
    let (xb, lb) = common::planted(&[3; 12], 0.6, 0.3, 200, 22);
    let (xc, _) = common::planted(&[1; 4], 0.1, 0.5, 200, 23);
    // Same dims: pad by stacking into a block layout.
    let d = xa.ncols() + xb.ncols() + xc.ncols();
    let n = xa.nrows() + xb.nrows() + xc.nrows();
    let mut x = ndarray::Array2::<f32>::zeros((n, d));
    x.slice_mut(ndarray::s![..xa.nrows(), ..xa.ncols()])
        .assign(&xa);
    x.slice_mut(ndarray::s![
        xa.nrows()..xa.nrows() + xb.nrows(),
        xa.ncols()..xa.ncols() + xb.ncols()
    ])
    .assign(&xb);
    x.slice_mut(ndarray::s![
        xa.nrows() + xb.nrows()..,
        xa.ncols() + xb.ncols()..
    ])
    .assign(&xc);
    let mut labels: Vec<String> = la.iter().map(|l| format!("A_{l}")).collect();
    labels.extend(lb.iter().map(|l| format!("B_{l}")));
    labels.extend((0..4).map(|i| format!("C_s{i}")));
    let mut groups = vec!["A"; xa.nrows()];
    groups.extend(vec!["B"; xb.nrows()]);
    groups.extend(vec!["C"; 4]);
    let g = Gallery::new(x, labels).unwrap();
    let params = SelfCalibrationParams::new(
        0.3,
        0.5,
        4,
        1,
        SelfCalibrationParams::linear_grid(-1.0, 1.0, 400),
    )
    .unwrap();
    let cal = reid_openset::self_calibrate_groups(&g, &groups, &Rule::Top1, &params).unwrap();
    let ta = cal.thresholds.get(Some("A"));
    let tb = cal.thresholds.get(Some("B"));
    assert!((ta - 0.4).abs() < 0.06, "A: {ta}");
    assert!((tb - 0.75).abs() < 0.06, "B: {tb}");
    assert!(cal.skipped.contains_key("C"));
    assert_eq!(cal.thresholds.get(Some("C")), cal.all.threshold);
    assert_eq!(cal.per_group.len(), 2);
}
