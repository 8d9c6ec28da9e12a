//! Extraction, matching and verification on synthetic textures with known
//! warps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{apply, similarity, texture, warp};
use reid_local::ParamGuard;
use reid_local::{Features, LocalParams, Model, ModelKind, PairMatch, extract_image, match_pair};

fn features(img: &image::RgbImage, params: &LocalParams) -> Features {
    extract_image(img, params.check().unwrap().extract()).unwrap()
}

fn pair(a: &Features, b: &Features, params: &LocalParams) -> PairMatch {
    match_pair(a, b, &params.check().unwrap()).unwrap()
}

/// Largest distance between the fitted model and the true map over a grid
/// of points inside the image.
fn max_model_error(model: &Model, truth: impl Fn(f64, f64) -> (f64, f64), w: f64, h: f64) -> f64 {
    let mut worst: f64 = 0.0;
    for gy in 1..10 {
        for gx in 1..10 {
            let (x, y) = (w * gx as f64 / 10.0, h * gy as f64 / 10.0);
            let p = model.apply([x, y]).expect("finite");
            let t = truth(x, y);
            worst = worst.max((p[0] - t.0).hypot(p[1] - t.1));
        }
    }
    worst
}

#[test]
fn a_rotated_scaled_shifted_copy_is_recovered() {
    let params = LocalParams::default();
    let a = texture(240, 200, 7, 140);
    // Rotate 25° and scale 0.85 about the centre, then shift by (12, -8).
    let (fwd, inv) = similarity(120.0, 100.0, 25.0, 0.85, 12.0, -8.0);
    let b = warp(&a, 240, 200, |x, y| apply(&inv, x, y));
    let (fa, fb) = (features(&a, &params), features(&b, &params));
    assert!(
        fa.len() > 100 && fb.len() > 100,
        "{} / {} keypoints",
        fa.len(),
        fb.len()
    );
    let m = pair(&fa, &fb, &params);
    assert!(
        m.inliers >= 60,
        "{} inliers of {} matches",
        m.inliers,
        m.matches
    );
    assert!(m.inlier_ratio > 0.6, "inlier ratio {}", m.inlier_ratio);
    let model = m.model.expect("a model");
    assert_eq!(model.kind(), ModelKind::Affine);
    let err = max_model_error(&model, |x, y| apply(&fwd, x, y), 240.0, 200.0);
    assert!(err < 1.0, "model off by {err:.3} px: {model:?}");
    // The same with a homography model.
    let mut hp = params;
    hp.ransac.model = ModelKind::Homography;
    let mh = pair(&fa, &fb, &hp);
    assert!(mh.inliers >= 60, "{} homography inliers", mh.inliers);
    let model = mh.model.expect("a model");
    assert_eq!(model.kind(), ModelKind::Homography);
    let err = max_model_error(&model, |x, y| apply(&fwd, x, y), 240.0, 200.0);
    assert!(err < 1.5, "homography off by {err:.3} px");
}

#[test]
fn a_quarter_turn_and_a_perspective_warp_are_recovered() {
    let a = texture(200, 200, 8, 120);
    let (fwd, inv) = similarity(100.0, 100.0, 90.0, 1.0, 0.0, 0.0);
    let b = warp(&a, 200, 200, |x, y| apply(&inv, x, y));
    let params = LocalParams::default();
    let fa = features(&a, &params);
    let m = pair(&fa, &features(&b, &params), &params);
    assert!(m.inliers >= 60, "{} inliers", m.inliers);
    let err = max_model_error(&m.model.unwrap(), |x, y| apply(&fwd, x, y), 200.0, 200.0);
    assert!(err < 1.0, "{err}");

    // A mild perspective: x' = (x + 0.1 y + 5) / w, y' = (0.05 x + y) / w,
    // w = 1 + 0.0008 x.
    let hf = |x: f64, y: f64| {
        let w = 1.0 + 0.0008 * x;
        ((x + 0.1 * y + 5.0) / w, (0.05 * x + y) / w)
    };
    // Inverse by Newton iterations on the forward map (small warp).
    let hinv = |u: f64, v: f64| {
        let (mut x, mut y) = (u, v);
        for _ in 0..30 {
            let (fu, fv) = hf(x, y);
            x -= fu - u;
            y -= fv - v;
        }
        (x, y)
    };
    let c = warp(&a, 200, 200, hinv);
    let mut hp = params;
    hp.ransac.model = ModelKind::Homography;
    let m = pair(&fa, &features(&c, &hp), &hp);
    assert!(m.inliers >= 50, "{} inliers", m.inliers);
    let err = max_model_error(&m.model.unwrap(), hf, 200.0, 200.0);
    assert!(err < 1.5, "{err}");
}

#[test]
fn unrelated_images_give_few_inliers() {
    let params = LocalParams::default();
    let a = features(&texture(240, 200, 7, 140), &params);
    let b = features(&texture(240, 200, 1234, 140), &params);
    let m = pair(&a, &b, &params);
    assert!(
        m.inliers <= 6,
        "{} inliers of {} matches",
        m.inliers,
        m.matches
    );
    let same = pair(&a, &a, &params);
    assert_eq!(same.inliers, a.len(), "an image matches itself entirely");
}

#[test]
fn keypoints_are_bounded_in_number_and_live_in_the_scaled_frame() {
    let img = texture(900, 600, 3, 600);
    let mut p = LocalParams::default();
    p.extract.max_side = 300;
    p.extract.max_keypoints = 150;
    let f = features(&img, &p);
    assert_eq!(f.scaled_size(), (300, 200));
    assert_eq!(f.original_size(), (900, 600));
    assert_eq!(f.len(), 150);
    assert_eq!(f.descriptors().len(), 150 * 128);
    for k in f.keypoints() {
        assert!(
            k.x >= 0.0 && k.x < 300.0 && k.y >= 0.0 && k.y < 200.0,
            "{k:?}"
        );
        assert!(k.angle >= 0.0 && k.angle < std::f32::consts::TAU);
    }
    // Strongest first.
    assert!(
        f.keypoints()
            .windows(2)
            .all(|w| w[0].response >= w[1].response)
    );
    // RootSIFT descriptors are non-negative unit vectors.
    for d in f.descriptors().chunks(128) {
        let n: f32 = d.iter().map(|v| v * v).sum();
        assert!((n - 1.0).abs() < 1e-4 && d.iter().all(|&v| v >= 0.0));
    }
    // A tiny or flat image has no keypoints, and no error.
    let flat = image::RgbImage::from_pixel(64, 64, image::Rgb([90, 90, 90]));
    assert!(features(&flat, &LocalParams::default()).is_empty());
    let tiny = image::RgbImage::from_pixel(3, 2, image::Rgb([0, 0, 0]));
    assert!(features(&tiny, &LocalParams::default()).is_empty());
}

#[test]
fn extraction_is_deterministic() {
    let img = texture(200, 160, 9, 100);
    let p = LocalParams::default();
    assert_eq!(features(&img, &p), features(&img, &p));
}
