//! Self-calibrated thresholds from the database alone: recovery of a
//! planted threshold, agreement with the scoring module, and thresholds per
//! group (dataset) with every episode inside one group.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ndarray::Array2;
use reid_core::Record;
use reid_index::Gallery;
use reid_openset::score::open_set_score;
use reid_openset::{
    Aggregate, Decision, DecisionParams, OpensetError, ParamGuard, Rule, SelfCalibration,
    Thresholds, ValidSelfCalibrationParams, decide, linear_grid, self_calibrate,
    self_calibrate_groups, simulate_episodes,
};

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
        let g = common::gallery(&x, &labels);
        let params = common::episodes(0.3, 0.5, 6, seed, linear_grid(-1.0..=1.0, 400));
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
    let labels = common::labels_of_sizes(&sizes, "id");
    // Noisy planted data: same-identity cosine ≈ 0.5 ± large noise.
    let (x, _) = common::planted(&sizes, 0.2, 0.3, 3, 11);
    let g = common::gallery(&x, &labels);
    let grid = linear_grid(-0.2..=1.0, 24);
    let params = common::episodes(0.4, 0.5, 1, 5, grid.clone());
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
        let sub_labels: Vec<&str> = ep.gallery.iter().map(|&r| labels[r].as_str()).collect();
        let sub_g = common::gallery(&common::rows_of(&x, &ep.gallery), &sub_labels);
        let q = common::rows_of(&x, &ep.queries);
        let truth: Vec<&str> = ep.queries.iter().map(|&r| labels[r].as_str()).collect();
        let mut nontrivial = 0;
        for (ti, &t) in grid.iter().enumerate() {
            let p = DecisionParams::new(Thresholds::new(t).unwrap())
                .rule(rule)
                .check()
                .unwrap();
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

/// Two "species" with different planted gaps get their own thresholds; a
/// group of singletons cannot form episodes and falls back to the default.
#[test]
fn thresholds_per_group_from_the_database() {
    let (xa, la) = common::planted(&[3; 12], 0.2, 0.4, 200, 21);
    let (xb, lb) = common::planted(&[3; 12], 0.6, 0.3, 200, 22);
    let (xc, _) = common::planted(&[1; 4], 0.1, 0.5, 200, 23);
    // Same dims: pad by stacking into a block layout.
    let x = common::block_diag(&[&xa, &xb, &xc]);
    let mut labels: Vec<String> = la.iter().map(|l| format!("A_{l}")).collect();
    labels.extend(lb.iter().map(|l| format!("B_{l}")));
    labels.extend((0..4).map(|i| format!("C_s{i}")));
    let mut groups = vec!["A"; xa.nrows()];
    groups.extend(vec!["B"; xb.nrows()]);
    groups.extend(vec!["C"; 4]);
    let g = common::gallery(&x, &labels);
    let params = common::episodes(0.3, 0.5, 4, 1, linear_grid(-1.0..=1.0, 400));
    let cal = self_calibrate_groups(&g, &groups, &Rule::Top1, &params).unwrap();
    let ta = cal.thresholds.get(Some("A"));
    let tb = cal.thresholds.get(Some("B"));
    assert!((ta - 0.4).abs() < 0.06, "A: {ta}");
    assert!((tb - 0.75).abs() < 0.06, "B: {tb}");
    assert!(cal.skipped.contains_key("C"));
    assert_eq!(cal.thresholds.get(Some("C")), cal.all.threshold);
    assert_eq!(cal.per_group.len(), 2);
}

/// The tie rule of `threshold.rs`: the grid values whose value is within
/// 1e-12 of the best tie, and the middle one of them is taken (index
/// `len / 2` of the tied values: the upper middle for an even count).
/// Also checks that no value lies just outside that tolerance, where a
/// different summation order could change the tie set.
fn middle_of_best(grid: &[f32], values: &[f64]) -> f32 {
    let best = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert!(
        values.iter().all(|&v| v >= best - 1e-12 || v < best - 1e-9),
        "a value is within 1e-9 of the best without tying: ill-posed check"
    );
    let tied: Vec<usize> = (0..values.len())
        .filter(|&i| values[i] >= best - 1e-12)
        .collect();
    grid[tied[tied.len() / 2]]
}

/// The mean over groups of each group's curve, by hand.
fn mean_of_curves(cals: &[&SelfCalibration]) -> Vec<f64> {
    let n = cals[0].curve.len();
    (0..n)
        .map(|t| cals.iter().map(|c| c.curve[t].mean).sum::<f64>() / cals.len() as f64)
        .collect()
}

/// Rows of `groups` equal to `name`, ascending.
fn rows_of_group(groups: &[&str], name: &str) -> Vec<usize> {
    (0..groups.len()).filter(|&i| groups[i] == name).collect()
}

/// Group B's rows are near-duplicates (cosine ≈ 0.9998) of group A's rows
/// under other identity names, interleaved with them. Were episodes drawn
/// across groups, a B pseudo-query would find its A twin (another
/// identity) first and every pseudo-new B identity would find one at ≈ 1:
/// calibrating on all rows together scores badly. Drawn inside each group,
/// each group is a clean planted gap that scores 1, and each group's
/// calibration is exactly (bit for bit) that of the group alone.
#[test]
fn group_episodes_never_cross_groups() {
    let mut sizes = vec![3; 10];
    sizes.extend(vec![1; 4]);
    let (xa, la) = common::planted(&sizes, 0.2, 0.4, 200, 31);
    let xb = common::near_duplicates(&xa, 0.02, 32);
    let n = xa.nrows();
    // Row 2i is A's row i, row 2i + 1 its twin in B.
    let mut x = Array2::<f32>::zeros((2 * n, xa.ncols()));
    let mut labels = Vec::with_capacity(2 * n);
    let mut groups = Vec::with_capacity(2 * n);
    for (i, l) in la.iter().enumerate() {
        x.row_mut(2 * i).assign(&xa.row(i));
        x.row_mut(2 * i + 1).assign(&xb.row(i));
        assert!(xa.row(i).dot(&xb.row(i)) > 0.999, "twins");
        labels.push(format!("A_{l}"));
        labels.push(format!("B_{l}"));
        groups.push("A");
        groups.push("B");
    }
    let g = common::gallery(&x, &labels);
    let params = common::episodes(0.3, 0.5, 6, 4, linear_grid(-0.2..=1.0, 240));
    for rule in [
        Rule::Top1,
        Rule::Knn {
            k: 3,
            per_identity: 2,
            aggregate: Aggregate::Mean,
        },
    ] {
        let cal = self_calibrate_groups(&g, &groups, &rule, &params).unwrap();
        assert!(cal.skipped.is_empty(), "{:?}", cal.skipped);
        assert_eq!(
            cal.per_group.keys().map(String::as_str).collect::<Vec<_>>(),
            ["A", "B"]
        );
        for name in ["A", "B"] {
            let rows = rows_of_group(&groups, name);
            let alone = self_calibrate(&g.select_rows(&rows).unwrap(), &rule, &params).unwrap();
            assert_eq!(cal.per_group[name], alone, "{rule}: group {name}");
            // Also from a gallery built from scratch of the group's rows.
            let own_labels: Vec<&str> = rows.iter().map(|&r| labels[r].as_str()).collect();
            let scratch = common::gallery(&common::rows_of(&x, &rows), &own_labels);
            assert_eq!(self_calibrate(&scratch, &rule, &params).unwrap(), alone);
            assert_eq!(
                cal.thresholds.get(Some(name)).to_bits(),
                alone.threshold.to_bits()
            );
            // Clean inside the group: every episode scores 1 (a twin of
            // another identity in an episode's gallery would break it).
            assert_eq!(alone.score_mean, 1.0, "{rule}: group {name}");
            // By construction: the group's episodes, mapped to gallery rows,
            // never hold a row of the other group.
            for ep in simulate_episodes(&own_labels, &params).unwrap() {
                for &r in ep.gallery.iter().chain(&ep.queries) {
                    assert_eq!(groups[rows[r]], name);
                }
            }
        }
        // Episodes across groups (the whole gallery as one group) interfere.
        let crossing = self_calibrate(&g, &rule, &params).unwrap();
        assert!(crossing.score_mean < 0.8, "{rule}: {}", crossing.score_mean);

        // The default maximises the mean over groups of the group curves.
        let (a, b) = (&cal.per_group["A"], &cal.per_group["B"]);
        let mean = mean_of_curves(&[a, b]);
        for (p, m) in cal.all.curve.iter().zip(&mean) {
            assert!((p.mean - m).abs() < 1e-12, "{} vs {m}", p.mean);
        }
        let want = middle_of_best(params.grid(), &mean);
        assert_eq!(cal.all.threshold, want, "{rule}");
        assert_eq!(cal.thresholds.default_threshold(), want);
        assert_eq!(cal.thresholds.get(None), want);
        assert_eq!(cal.all.score_mean, 1.0);
        // Episode e of the default pools episode e of each group.
        assert_eq!(cal.all.episodes.len(), 6);
        for (e, p) in cal.all.episodes.iter().enumerate() {
            assert_eq!(
                p.known_queries,
                a.episodes[e].known_queries + b.episodes[e].known_queries
            );
            assert_eq!(
                p.new_queries,
                a.episodes[e].new_queries + b.episodes[e].new_queries
            );
        }
    }
}

/// One clean group (planted gap, plateau of score 1) and one noisy group
/// (no gap): the default is the argmax of the mean of the two groups'
/// curves, not either group's own threshold nor their midpoint.
#[test]
fn default_threshold_maximises_the_mean_over_groups() {
    let (xa, la) = common::planted(&[4; 12], 0.2, 0.4, 300, 41);
    let mut sizes_b = vec![3; 12];
    sizes_b.extend(vec![1; 6]);
    let (xb, lb) = common::planted(&sizes_b, 0.3, 0.2, 8, 42);
    let x = common::block_diag(&[&xa, &xb]);
    let mut labels: Vec<String> = la.iter().map(|l| format!("A_{l}")).collect();
    labels.extend(lb.iter().map(|l| format!("B_{l}")));
    let mut groups = vec!["clean"; xa.nrows()];
    groups.extend(vec!["noisy"; xb.nrows()]);
    let g = common::gallery(&x, &labels);
    let params = common::episodes(0.3, 0.5, 8, 6, linear_grid(-0.2..=1.0, 240));
    let cal = self_calibrate_groups(&g, &groups, &Rule::Top1, &params).unwrap();
    let (a, b) = (&cal.per_group["clean"], &cal.per_group["noisy"]);
    assert_eq!(a.score_mean, 1.0);
    assert!(
        b.score_mean < 0.95,
        "the noisy group is noisy: {}",
        b.score_mean
    );
    let mean = mean_of_curves(&[a, b]);
    let want = middle_of_best(params.grid(), &mean);
    assert_eq!(cal.all.threshold, want);
    let best = mean.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert!((cal.all.score_mean - best).abs() < 1e-12);
    // A value someone could get wrong: neither group's own threshold, nor
    // their midpoint.
    assert_ne!(want, a.threshold);
    assert_ne!(want, b.threshold);
    assert!((f64::from(want) - f64::from(a.threshold + b.threshold) / 2.0).abs() > 1e-3);
    // The per-group thresholds are each group's own calibration.
    for name in ["clean", "noisy"] {
        let rows = rows_of_group(&groups, name);
        let alone = self_calibrate(&g.select_rows(&rows).unwrap(), &Rule::Top1, &params).unwrap();
        assert_eq!(cal.per_group[name], alone);
    }
}

/// With one group the default is that group's calibration exactly, and
/// both are the calibration of the whole gallery.
#[test]
fn one_group_default_is_its_calibration() {
    let mut sizes = vec![3; 10];
    sizes.extend(vec![1; 5]);
    let (x, labels) = common::planted(&sizes, 0.3, 0.2, 8, 51);
    let g = common::gallery(&x, &labels);
    let params = common::episodes(0.3, 0.5, 5, 2, linear_grid(-0.2..=1.0, 120));
    let rule = Rule::Knn {
        k: 4,
        per_identity: 2,
        aggregate: Aggregate::Mean,
    };
    let cal = self_calibrate_groups(&g, &vec!["only"; x.nrows()], &rule, &params).unwrap();
    let whole = self_calibrate(&g, &rule, &params).unwrap();
    assert_eq!(cal.per_group["only"], whole);
    assert_eq!(cal.all, whole);
    assert_eq!(
        cal.thresholds.get(None).to_bits(),
        whole.threshold.to_bits()
    );
    assert_eq!(
        cal.thresholds.get(Some("only")).to_bits(),
        whole.threshold.to_bits()
    );
}

/// A group with one identity, or only singletons, cannot form episodes: it
/// is listed in `skipped` (with the reason), gets the default, and does
/// not change the default. When no group can, the error lists them all.
#[test]
fn groups_that_cannot_form_episodes() {
    let (xa, la) = common::planted(&[3; 8], 0.2, 0.4, 100, 61);
    let (xc, _) = common::planted(&[4], 0.2, 0.4, 100, 62);
    let (xd, _) = common::planted(&[1; 3], 0.2, 0.4, 100, 63);
    let x = common::block_diag(&[&xa, &xc, &xd]);
    let mut labels: Vec<String> = la.iter().map(|l| format!("A_{l}")).collect();
    labels.extend(vec!["lynx_7".to_string(); 4]);
    labels.extend((0..3).map(|i| format!("S_{i}")));
    let mut groups = vec!["Usable"; xa.nrows()];
    groups.extend(vec!["OneLynx"; 4]);
    groups.extend(vec!["Singletons"; 3]);
    let g = common::gallery(&x, &labels);
    let params = common::episodes(0.3, 0.5, 4, 3, linear_grid(-0.2..=1.0, 120));
    let cal = self_calibrate_groups(&g, &groups, &Rule::Top1, &params).unwrap();
    assert_eq!(
        cal.skipped.keys().map(String::as_str).collect::<Vec<_>>(),
        ["OneLynx", "Singletons"]
    );
    assert!(
        cal.skipped["OneLynx"].contains("2 identities"),
        "{:?}",
        cal.skipped
    );
    assert!(
        cal.skipped["Singletons"].contains("two images"),
        "{:?}",
        cal.skipped
    );
    assert_eq!(
        cal.per_group.keys().map(String::as_str).collect::<Vec<_>>(),
        ["Usable"]
    );
    assert_eq!(
        cal.thresholds
            .groups()
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["Usable"]
    );
    assert_eq!(cal.thresholds.get(Some("OneLynx")), cal.all.threshold);
    assert_eq!(cal.thresholds.get(Some("Singletons")), cal.all.threshold);
    // The default is the usable group's calibration, unchanged by the rest.
    let usable = rows_of_group(&groups, "Usable");
    let alone = self_calibrate(&g.select_rows(&usable).unwrap(), &Rule::Top1, &params).unwrap();
    assert_eq!(cal.all, alone);
    assert_eq!(cal.per_group["Usable"], alone);

    // No group can: an Episodes error naming every group.
    let rows: Vec<usize> = (xa.nrows()..x.nrows()).collect();
    let sub = g.select_rows(&rows).unwrap();
    let sub_groups: Vec<&str> = rows.iter().map(|&r| groups[r]).collect();
    match self_calibrate_groups(&sub, &sub_groups, &Rule::Top1, &params) {
        Err(OpensetError::Episodes(msg)) => {
            assert!(
                msg.contains("OneLynx") && msg.contains("Singletons"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Groups that do not pair up with the rows.
    assert!(matches!(
        self_calibrate_groups(&g, &groups[1..], &Rule::Top1, &params),
        Err(OpensetError::Length { .. })
    ));
    // A bad rule is an error, not a skipped group.
    let bad = Rule::Knn {
        k: 0,
        per_identity: 1,
        aggregate: Aggregate::Max,
    };
    assert!(matches!(
        self_calibrate_groups(&g, &groups, &bad, &params),
        Err(OpensetError::InvalidParam { name: "k", .. })
    ));
}

/// A gallery record without identity cannot be calibrated on: an
/// `Unlabelled` error naming it (also inside a group, never skipped).
#[test]
fn unlabelled_records_are_errors() {
    let (x, labels) = common::planted(&[3; 6], 0.2, 0.4, 50, 71);
    let records: Vec<Record> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let r = Record::new(format!("img{i}"), "");
            if i == 4 { r } else { r.with_identity(l) }
        })
        .collect();
    let g = Gallery::from_parts("m", x.view(), records).unwrap();
    let params = ValidSelfCalibrationParams::default();
    let named_img4 = |r: Result<_, OpensetError>| matches!(r, Err(OpensetError::Unlabelled { image_id }) if image_id == "img4");
    assert!(named_img4(
        self_calibrate(&g, &Rule::Top1, &params).map(|_| ())
    ));
    let groups: Vec<&str> = (0..x.nrows())
        .map(|i| if i < 9 { "a" } else { "b" })
        .collect();
    assert!(named_img4(
        self_calibrate_groups(&g, &groups, &Rule::Top1, &params).map(|_| ())
    ));
}

/// Exact embeddings of `ids` identities × `per_id` images: `sqrt(shared)
/// e0 + sqrt(own) e_id + sqrt(1 - shared - own) f_image` with orthonormal
/// e's and f's, so same-identity cosine is exactly `shared + own` and
/// different-identity cosine exactly `shared` (up to f32 rounding).
fn exact(ids: usize, per_id: usize, shared: f64, own: f64) -> (Array2<f32>, Vec<String>) {
    let n = ids * per_id;
    let mut x = Array2::<f32>::zeros((n, 1 + ids + n));
    let mut labels = Vec::with_capacity(n);
    for i in 0..ids {
        for j in 0..per_id {
            let r = i * per_id + j;
            x[[r, 0]] = shared.sqrt() as f32;
            x[[r, 1 + i]] = own.sqrt() as f32;
            x[[r, 1 + ids + r]] = (1.0 - shared - own).sqrt() as f32;
            labels.push(format!("id{i}"));
        }
    }
    (x, labels)
}

/// Worked by hand. Group A: same identity 0.9, different 0.3, so every
/// episode scores 1 exactly on thresholds in (0.3, 0.9] and 0 elsewhere
/// (BAUS 0 at or below 0.3, BAKS 0 above 0.9). Group B: same 0.6,
/// different 0.4: 1 on (0.4, 0.6]. On the grid 0.025, 0.075, ..., 1.025:
/// - A ties on 0.325 ... 0.875 (12 values): the middle is the 7th, 0.625;
/// - B ties on 0.425, 0.475, 0.525, 0.575 (4 values): the 3rd, 0.525;
/// - the mean over groups is 1 on B's 4 values, 0.5 on the rest of A's
///   plateau, 0 elsewhere: the default is again the 3rd of 4, 0.525 (not
///   the lower middle 0.475, nor the midpoint of the groups' 0.575).
#[test]
fn default_threshold_by_hand_with_even_ties() {
    let (xa, la) = exact(5, 3, 0.3, 0.6);
    let (xb, lb) = exact(5, 3, 0.4, 0.2);
    let x = common::block_diag(&[&xa, &xb]);
    let mut labels: Vec<String> = la.iter().map(|l| format!("A_{l}")).collect();
    labels.extend(lb.iter().map(|l| format!("B_{l}")));
    let mut groups = vec!["A"; xa.nrows()];
    groups.extend(vec!["B"; xb.nrows()]);
    let g = common::gallery(&x, &labels);
    let params = common::episodes(0.4, 0.5, 3, 8, linear_grid(0.025..=1.025, 20));
    let grid = params.grid();
    assert_eq!(grid.len(), 21);
    let at = |t: f64| {
        grid.iter()
            .position(|&v| (f64::from(v) - t).abs() < 1e-6)
            .unwrap()
    };
    for rule in [
        Rule::Top1,
        Rule::Knn {
            k: 4,
            per_identity: 2,
            aggregate: Aggregate::Max,
        },
    ] {
        let cal = self_calibrate_groups(&g, &groups, &rule, &params).unwrap();
        let (a, b) = (&cal.per_group["A"], &cal.per_group["B"]);
        assert_eq!(a.threshold, grid[at(0.625)], "{rule}");
        assert_eq!(b.threshold, grid[at(0.525)], "{rule}");
        assert_eq!(cal.all.threshold, grid[at(0.525)], "{rule}");
        assert_eq!(cal.all.score_mean, 1.0);
        assert_eq!(cal.all.score_std, 0.0);
        for (i, p) in cal.all.curve.iter().enumerate() {
            let t = f64::from(grid[i]);
            let in_a = t > 0.3 && t <= 0.9;
            let in_b = t > 0.4 && t <= 0.6;
            let want = (f64::from(u8::from(in_a)) + f64::from(u8::from(in_b))) / 2.0;
            assert_eq!(p.mean, want, "{rule} at {t}");
            assert_eq!(p.std, 0.0, "{rule} at {t}");
        }
        // Each episode's own best threshold: the middle of its own ties,
        // the same 4 (B) or 12 (A) values.
        for e in &b.episodes {
            assert_eq!(e.best_threshold, grid[at(0.525)]);
        }
        for e in &a.episodes {
            assert_eq!(e.best_threshold, grid[at(0.625)]);
        }
        assert_eq!(
            middle_of_best(grid, &mean_of_curves(&[a, b])),
            cal.all.threshold
        );
    }
}

/// The encounters named in the episode settings reach the episodes the
/// calibration draws: on a database whose photos of one video are near
/// copies (cosine ≈ 1) while two videos of one animal meet at cosine ≈ 0.5,
/// photo-level episodes score known pseudo-queries by their copy, and
/// episodes by `video` by another video of the animal, as a real query
/// from a new video would be.
#[test]
fn calibration_samples_follow_the_encounters() {
    use reid_openset::probability::database_samples;
    use reid_openset::{Encounters, ParamGuard, Rule, SelfCalibrationParams};
    const D: usize = 64;
    let mut rows: Vec<Vec<f32>> = Vec::new();
    let mut records = Vec::new();
    for id in 0..8 {
        for v in 0..3 {
            // Identity axis id, video axis 8 + 3·id + v: cos between
            // videos of one animal 0.5, between animals 0.
            let mut x = vec![0.0f32; D];
            x[id] = 1.0;
            x[8 + 3 * id + v] = 1.0;
            for p in 0..2 {
                let mut y = x.clone();
                y[D - 1] = 0.01 * p as f32;
                let n = y.iter().map(|a| a * a).sum::<f32>().sqrt();
                rows.push(y.iter().map(|a| a / n).collect());
                let mut r = Record::new(format!("{id}-{v}-{p}"), "x.jpg");
                r.identity = Some(format!("id{id}"));
                r.attributes.insert("video".into(), format!("{id}-{v}"));
                records.push(r);
            }
        }
    }
    let x = Array2::from_shape_fn((rows.len(), D), |(i, j)| rows[i][j]);
    let g = Gallery::from_parts("m", x.view(), records).unwrap();
    let known_scores = |enc: Option<Encounters>| {
        let p = SelfCalibrationParams::default()
            .new_fraction(0.25)
            .query_fraction(0.3)
            .episodes(6)
            .seed(3)
            .encounters(enc)
            .check()
            .unwrap();
        let s = database_samples(&g, &Rule::Top1, &p).unwrap();
        let known: Vec<f32> = s
            .scores
            .iter()
            .zip(&s.is_new)
            .filter(|(_, n)| !**n)
            .map(|(v, _)| *v)
            .collect();
        assert!(!known.is_empty());
        known
    };
    // By photo, most known pseudo-queries find their video's copy.
    let by_photo = known_scores(None);
    let copies = by_photo.iter().filter(|&&v| v > 0.99).count();
    assert!(copies * 2 > by_photo.len(), "{by_photo:?}");
    // By video (named, or found by `auto`), none can: every one is 0.5.
    for enc in [
        Some(Encounters::Column("video".into())),
        Some(Encounters::Auto),
    ] {
        let by_video = known_scores(enc);
        assert!(
            by_video.iter().all(|&v| (v - 0.5).abs() < 1e-3),
            "{by_video:?}"
        );
    }
}
