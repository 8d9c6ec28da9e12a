//! Affine and homography fitting, and RANSAC on synthetic correspondences.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reid_local::ParamGuard;
use reid_local::{Affine, Homography, LocalError, Model, ModelKind, Point, RansacParams, ransac};

fn h_apply(h: &[[f64; 3]; 3], p: Point) -> Point {
    let w = h[2][0] * p[0] + h[2][1] * p[1] + h[2][2];
    [
        (h[0][0] * p[0] + h[0][1] * p[1] + h[0][2]) / w,
        (h[1][0] * p[0] + h[1][1] * p[1] + h[1][2]) / w,
    ]
}

const H_TRUE: [[f64; 3]; 3] = [[0.9, 0.12, 14.0], [-0.08, 1.05, -6.0], [3e-4, -2e-4, 1.0]];

const A_TRUE: [[f64; 3]; 2] = [[0.8, -0.3, 25.0], [0.35, 0.9, -12.0]];

fn a_apply(p: Point) -> Point {
    Affine { m: A_TRUE }.apply(p)
}

#[test]
fn homography_dlt_on_four_exact_points_reproduces_them() {
    let src = [[10.0, 20.0], [300.0, 15.0], [280.0, 260.0], [30.0, 240.0]];
    let dst = [[5.0, 30.0], [310.0, 40.0], [250.0, 300.0], [0.0, 220.0]];
    let h = Homography::fit(&src, &dst).expect("non-degenerate quad");
    for (s, d) in src.iter().zip(&dst) {
        let p = h.apply(*s).expect("finite");
        assert!(
            (p[0] - d[0]).abs() < 1e-9 && (p[1] - d[1]).abs() < 1e-9,
            "{p:?} vs {d:?}"
        );
    }
    assert!((h.h[2][2] - 1.0).abs() < 1e-12);
}

#[test]
fn homography_dlt_on_many_points_recovers_the_matrix() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let src: Vec<Point> = (0..25)
        .map(|_| [rng.gen_range(0.0..400.0), rng.gen_range(0.0..300.0)])
        .collect();
    let dst: Vec<Point> = src.iter().map(|&p| h_apply(&H_TRUE, p)).collect();
    let h = Homography::fit(&src, &dst).expect("fit");
    for (r, t) in h.h.iter().flatten().zip(H_TRUE.iter().flatten()) {
        assert!((r - t).abs() < 1e-8 * t.abs().max(1.0), "{:?}", h.h);
    }
}

#[test]
fn affine_from_three_points_is_exact_and_collinear_points_are_rejected() {
    let src = [[0.0, 0.0], [100.0, 10.0], [20.0, 80.0]];
    let dst: Vec<Point> = src.iter().map(|&p| a_apply(p)).collect();
    let a = Affine::fit(&src, &dst).expect("fit");
    for (r, t) in a.m.iter().flatten().zip(A_TRUE.iter().flatten()) {
        assert!((r - t).abs() < 1e-12, "{:?}", a.m);
    }
    let line = [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]];
    assert!(Affine::fit(&line, &line).is_none());
    assert!(Homography::fit(&[[0.0, 0.0]; 4], &[[1.0, 1.0]; 4]).is_none());
}

/// `n` correspondences of which the first `n_in` follow `f` exactly and the
/// rest are at least 30 px away from it.
fn with_outliers(
    n: usize,
    n_in: usize,
    seed: u64,
    f: impl Fn(Point) -> Point,
) -> (Vec<Point>, Vec<Point>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut src = Vec::new();
    let mut dst = Vec::new();
    for i in 0..n {
        let s = [rng.gen_range(0.0..500.0), rng.gen_range(0.0..400.0)];
        let t = f(s);
        let d = if i < n_in {
            t
        } else {
            loop {
                let d = [rng.gen_range(-50.0..550.0), rng.gen_range(-50.0..450.0)];
                if (d[0] - t[0]).hypot(d[1] - t[1]) > 30.0 {
                    break d;
                }
            }
        };
        src.push(s);
        dst.push(d);
    }
    // Interleave so inliers are not a prefix.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (i * 7919) % n);
    (
        order.iter().map(|&i| src[i]).collect(),
        order.iter().map(|&i| dst[i]).collect(),
    )
}

#[test]
fn ransac_recovers_an_affine_model_exactly_under_40_percent_outliers() {
    let (src, dst) = with_outliers(100, 60, 11, a_apply);
    let r = ransac(&src, &dst, &RansacParams::default().check().unwrap()).unwrap();
    let Some(Model::Affine(a)) = r.model else {
        panic!("no affine model: {r:?}")
    };
    for (x, t) in a.m.iter().flatten().zip(A_TRUE.iter().flatten()) {
        assert!((x - t).abs() < 1e-9, "{:?}", a.m);
    }
    let truth: Vec<usize> = (0..100)
        .filter(|&i| {
            let t = a_apply(src[i]);
            (t[0] - dst[i][0]).abs() < 1e-9 && (t[1] - dst[i][1]).abs() < 1e-9
        })
        .collect();
    assert_eq!(truth.len(), 60);
    assert_eq!(r.inliers, truth);
    // Adaptive stopping: far fewer than the 2000 allowed samples
    // (about 30 are needed at 60 % inliers and 99.9 % confidence).
    assert!(r.iterations < 200, "{} iterations", r.iterations);
}

#[test]
fn ransac_recovers_a_homography_exactly_under_50_percent_outliers() {
    let (src, dst) = with_outliers(80, 40, 5, |p| h_apply(&H_TRUE, p));
    let params = RansacParams {
        model: ModelKind::Homography,
        ..RansacParams::default()
    }
    .check()
    .unwrap();
    let r = ransac(&src, &dst, &params).unwrap();
    let Some(Model::Homography(h)) = r.model else {
        panic!("no homography: {r:?}")
    };
    for (x, t) in h.h.iter().flatten().zip(H_TRUE.iter().flatten()) {
        assert!((x - t).abs() < 1e-8 * t.abs().max(1.0), "{:?}", h.h);
    }
    assert_eq!(r.inliers.len(), 40);
    assert!(r.iterations < 2000);
}

#[test]
fn ransac_is_deterministic_under_a_seed_and_stops_at_once_without_outliers() {
    let (src, dst) = with_outliers(60, 30, 8, a_apply);
    let p = RansacParams {
        refine: false,
        ..RansacParams::default()
    };
    let a = ransac(&src, &dst, &p.check().unwrap()).unwrap();
    let b = ransac(&src, &dst, &p.check().unwrap()).unwrap();
    assert_eq!(a, b);
    let other = RansacParams { seed: 99, ..p };
    let c = ransac(&src, &dst, &other.check().unwrap()).unwrap();
    assert_eq!(a.inliers, c.inliers);

    let clean: Vec<Point> = src.iter().map(|&s| a_apply(s)).collect();
    let r = ransac(&src, &clean, &p.check().unwrap()).unwrap();
    assert_eq!(r.inliers.len(), 60);
    assert_eq!(r.iterations, 1);
}

#[test]
fn ransac_rejects_mirrored_and_too_small_inputs() {
    // A reflection (x -> -x) is never accepted as a model.
    let src: Vec<Point> = (0..30)
        .map(|i| [(i * 13 % 50) as f64, (i * 7 % 40) as f64])
        .collect();
    let dst: Vec<Point> = src.iter().map(|p| [-p[0], p[1]]).collect();
    let r = ransac(&src, &dst, &RansacParams::default().check().unwrap()).unwrap();
    assert!(r.model.is_none() && r.inliers.is_empty(), "{r:?}");
    // Fewer correspondences than a sample.
    let r = ransac(
        &src[..2],
        &dst[..2],
        &RansacParams::default().check().unwrap(),
    )
    .unwrap();
    assert_eq!((r.model, r.iterations), (None, 0));
}

#[test]
fn ransac_input_errors_are_typed() {
    let p = RansacParams::default().check().unwrap();
    let e = ransac(&[[0.0, 0.0]; 3], &[[0.0, 0.0]; 2], &p).unwrap_err();
    assert!(matches!(e, LocalError::Shape { .. }), "{e}");
    let mut src = vec![[1.0, 2.0]; 5];
    src[3][1] = f64::NAN;
    let e = ransac(&src, &[[0.0, 0.0]; 5], &p).unwrap_err();
    assert!(
        matches!(
            e,
            LocalError::NonFinite {
                what: "source points",
                index: 3
            }
        ),
        "{e}"
    );
}
