//! Probability calibration (similarity -> match probability): parity with
//! scikit-learn, monotonicity, ECE by hand, fitting on database episodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reid_openset::probability::database_samples;
use reid_openset::{
    CalibrationMethod, Calibrator, IsotonicModel, OpensetError, PlattModel, Rule,
    calibrate_from_database, expected_calibration_error,
};

fn bools(v: &[f64]) -> Vec<bool> {
    v.iter().map(|&y| y > 0.5).collect()
}

#[test]
fn isotonic_matches_sklearn() {
    let fx = common::sklearn_fixture();
    for (i, c) in fx["isotonic"].as_array().unwrap().iter().enumerate() {
        let x: Vec<f32> = common::f64s(&c["x"]).iter().map(|&v| v as f32).collect();
        let y = bools(&common::f64s(&c["y"]));
        let m = IsotonicModel::fit(&x, &y).unwrap();
        for (g, want) in common::f64s(&c["grid"])
            .iter()
            .zip(common::f64s(&c["pred"]))
        {
            let got = f64::from(m.predict(*g as f32));
            // f32 inputs: the knots moved by ~1e-8.
            assert!(
                (got - want).abs() < 1e-5,
                "case {i} at {g}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn platt_matches_sklearn() {
    let fx = common::sklearn_fixture();
    for (i, c) in fx["sigmoid"].as_array().unwrap().iter().enumerate() {
        let f: Vec<f32> = common::f64s(&c["f"]).iter().map(|&v| v as f32).collect();
        let y = bools(&common::f64s(&c["y"]));
        let m = PlattModel::fit(&f, &y).unwrap();
        let (a, b) = (c["a"].as_f64().unwrap(), c["b"].as_f64().unwrap());
        // scikit-learn stops L-BFGS at gtol 1e-6; compare the fitted curve.
        assert!(
            (m.a - a).abs() < 1e-2 * a.abs().max(1.0),
            "case {i}: a {} vs {a}",
            m.a
        );
        assert!(
            (m.b - b).abs() < 1e-2 * b.abs().max(1.0),
            "case {i}: b {} vs {b}",
            m.b
        );
        for (g, want) in common::f64s(&c["grid"])
            .iter()
            .zip(common::f64s(&c["prob"]))
        {
            let got = f64::from(m.predict(*g as f32));
            assert!(
                (got - want).abs() < 1e-3,
                "case {i} at {g}: {got} vs {want}"
            );
        }
    }
}

/// Pool-adjacent-violators by hand: scores 1..5 with outcomes
/// 0,1,0,1,1 pool (2,3) into 0.5, giving 0, .5, .5, 1, 1; in between the
/// knots the map interpolates, outside it clips.
#[test]
fn isotonic_by_hand() {
    let m = IsotonicModel::fit(
        &[1.0, 2.0, 3.0, 4.0, 5.0],
        &[false, true, false, true, true],
    )
    .unwrap();
    let want = [
        (0.0, 0.0),
        (1.0, 0.0),
        (1.5, 0.25),
        (2.5, 0.5),
        (3.5, 0.75),
        (4.5, 1.0),
        (9.0, 1.0),
    ];
    for (s, p) in want {
        assert!(
            (m.predict(s) - p).abs() < 1e-7,
            "{s}: {} vs {p}",
            m.predict(s)
        );
    }
    // Repeated scores are pooled first: two samples at 1.0, one right.
    let m = IsotonicModel::fit(&[1.0, 1.0, 2.0], &[true, false, true]).unwrap();
    assert!((m.predict(1.0) - 0.5).abs() < 1e-7);
}

/// Property: on random noisy data both maps are non-decreasing and within
/// [0, 1].
#[test]
fn calibration_is_monotone() {
    for seed in 0..20u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = rng.gen_range(2..300);
        let s: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let l: Vec<bool> = s
            .iter()
            .map(|&v| rng.gen_bool(f64::from((v + 1.0) / 2.0).clamp(0.0, 1.0)))
            .collect();
        for method in [CalibrationMethod::Isotonic, CalibrationMethod::Platt] {
            let c = Calibrator::fit(method, &s, &l).unwrap();
            let mut prev = -1.0f32;
            for i in 0..=400 {
                let x = -1.5 + 3.0 * i as f32 / 400.0;
                let p = c.probability(x);
                assert!((0.0..=1.0).contains(&p), "{method:?} seed {seed}: {p}");
                assert!(
                    p >= prev - 1e-6,
                    "{method:?} seed {seed}: {p} < {prev} at {x}"
                );
                prev = p;
            }
        }
    }
}

/// Two bins: probs 0.1, 0.3 (bin 0; mean 0.2, outcome mean 0.5) and 0.8, 1.0
/// (bin 1; mean 0.9, outcome mean 1): ECE = 2/4·0.3 + 2/4·0.1 = 0.2.
#[test]
fn ece_by_hand() {
    let e =
        expected_calibration_error(&[0.1, 0.3, 0.8, 1.0], &[true, false, true, true], 2).unwrap();
    assert!((e - 0.2).abs() < 1e-7, "{e}");
    let perfect = expected_calibration_error(&[0.0, 1.0], &[false, true], 10).unwrap();
    assert_eq!(perfect, 0.0);
}

#[test]
fn calibration_errors() {
    assert!(matches!(
        IsotonicModel::fit(&[], &[]),
        Err(OpensetError::Empty { .. })
    ));
    assert!(matches!(
        PlattModel::fit(&[0.1, f32::NAN], &[true, false]),
        Err(OpensetError::NonFinite { col: 1, .. })
    ));
    assert!(matches!(
        PlattModel::fit(&[0.1], &[true, false]),
        Err(OpensetError::Length { .. })
    ));
    assert!(matches!(
        expected_calibration_error(&[0.5], &[true], 0),
        Err(OpensetError::InvalidParam { .. })
    ));
    assert!(matches!(
        expected_calibration_error(&[1.5], &[true], 10),
        Err(OpensetError::InvalidParam { .. })
    ));
}

/// On planted data (same identity ≈ 0.6, different ≈ 0.2) every pseudo-query
/// with a score in the same-identity band has the right top-1 and every
/// pseudo-new one scores ≈ 0.2: both maps separate them and the isotonic
/// map is (in sample) perfectly calibrated.
#[test]
fn fitted_on_database_episodes() {
    let mut sizes = vec![3; 15];
    sizes.extend(vec![1; 10]);
    let (x, labels) = common::planted(&sizes, 0.2, 0.4, 300, 9);
    let g = common::gallery(&x, &labels);
    let params = common::episodes(0.3, 0.5, 5, 3, vec![0.0]);
    let s = database_samples(&g, &Rule::Top1, &params).unwrap();
    for ((&score, &ok), &new) in s.scores.iter().zip(&s.correct).zip(&s.is_new) {
        // Definition: positive iff the candidate is right; pseudo-new never.
        assert_eq!(ok, !new);
        assert_eq!(ok, score > 0.4, "score {score}");
    }
    let iso =
        calibrate_from_database(&g, &Rule::Top1, &params, CalibrationMethod::Isotonic).unwrap();
    assert!(iso.ece < 1e-9, "{}", iso.ece);
    assert_eq!(iso.samples, s.scores.len());
    assert_eq!(iso.positives, s.correct.iter().filter(|&&c| c).count());
    assert!(iso.calibrator.probability(0.6) > 0.99);
    assert!(iso.calibrator.probability(0.2) < 0.01);
    let platt =
        calibrate_from_database(&g, &Rule::Top1, &params, CalibrationMethod::Platt).unwrap();
    assert!(platt.calibrator.probability(0.6) > 0.9);
    assert!(platt.calibrator.probability(0.2) < 0.1);
    assert!(
        platt.ece < platt.ece_raw,
        "{} vs raw {}",
        platt.ece,
        platt.ece_raw
    );
}
