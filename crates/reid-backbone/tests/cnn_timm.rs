//! Parity of the ConvNeXt and EfficientNetV2 builds with timm 1.0.31.
//!
//! Fixtures come from `scripts/fixtures/timm_cnn.py`: seeded random-init timm
//! models (norm weights, biases, layer scales and batch-norm statistics
//! re-drawn so they matter), their state dicts, a batch-2 input and timm's
//! forward_features / pre-logits / logits, plus timm's parameter count.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reid_backbone::arch::{self, BuildOptions, DefaultPooling, FeatureLayout};
use tch::{Device, Kind, Tensor, nn};

const STEM: &str = "timm_cnn";
const RTOL: f64 = 1e-4;

/// Every model of the two families.
const MODELS: [&str; 9] = [
    "convnext_tiny",
    "convnext_small",
    "convnext_base",
    "tf_efficientnetv2_s",
    "tf_efficientnetv2_m",
    "tf_efficientnetv2_l",
    "efficientnetv2_s",
    "efficientnetv2_m",
    "efficientnetv2_l",
];

/// What the fixture script recorded beside each model.
#[derive(serde::Deserialize)]
struct Meta {
    params: i64,
    weights: String,
    input: [i64; 2],
    cfg: Cfg,
    /// The grid descriptors' default tap, where the fixture holds its map.
    tap: String,
}

/// timm's pretrained_cfg of the model's default tag.
#[derive(serde::Deserialize)]
struct Cfg {
    input_size: i64,
    test_input_size: i64,
    crop_pct: f64,
    interpolation: String,
    mean: [f64; 3],
    std: [f64; 3],
    num_classes: i64,
    num_features: i64,
}

/// Builds `name` from the registry, loads timm's state dict and compares
/// forward_features, pooled pre-logits and logits within `RTOL` of the
/// largest reference value.
fn check(name: &str) {
    let dir = common::fixture_dir(STEM);
    let meta: Meta =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    let spec = arch::find(name);
    assert!(spec.is_some(), "{name} not in the registry");
    let spec = spec.unwrap();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = (spec.build)(
        &vs.root(),
        &BuildOptions {
            num_classes: spec.num_classes,
            img_size: meta.input[0],
        },
    );
    let trainable: i64 = vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    assert_eq!(trainable, meta.params, "{name}: trainable parameter count");
    // The fixture stores weights as float16; libtorch loads them with the
    // file's precision, so cast back to the float32 timm computed with.
    vs.load(dir.join(&meta.weights)).unwrap();
    vs.float();

    let io = common::read_tensors(&dir.join(format!("{name}.io.safetensors")));
    let x = &io["input"];
    assert_eq!(x.size(), vec![2, 3, meta.input[0], meta.input[1]]);
    assert_eq!(model.layout(), FeatureLayout::Spatial);
    assert_eq!(model.default_pooling(), DefaultPooling::Avg);
    assert_eq!(model.num_features(), spec.num_features);

    let (feats, pre, logits) = tch::no_grad(|| {
        let feats = model.forward_features(x, false);
        let pooled = feats.mean_dim(&[2i64, 3][..], false, Kind::Float);
        let pre = model.pre_logits(&pooled, false);
        let logits = model.classifier(&pre).expect("classifier");
        (feats, pre, logits)
    });
    common::assert_rel(
        &feats,
        &io["features"],
        RTOL,
        &format!("{name} forward_features"),
    );
    common::assert_rel(&pre, &io["pre_logits"], RTOL, &format!("{name} pre_logits"));
    common::assert_rel(&logits, &io["logits"], RTOL, &format!("{name} logits"));

    // The grid descriptors' default tap (the last at stride 16), where the
    // fixture holds timm's map.
    let taps = model.taps();
    let t = arch::default_grid_tap(taps).expect("a stride-16 tap");
    assert_eq!(taps[t].name, meta.tap, "{name}: default tap");
    let got = tch::no_grad(|| model.forward_tap(x, t, false)).unwrap();
    assert_eq!(
        got.size()[1],
        taps[t].channels,
        "{name}: channels at the tap"
    );
    common::assert_rel(&got, &io["tap"], RTOL, &format!("{name} {}", meta.tap));
    if name.starts_with("convnext") {
        // Its last tap is its last stage: the features themselves.
        let last = tch::no_grad(|| model.forward_tap(x, taps.len() - 1, false)).unwrap();
        assert_eq!(common::diff(&last, &feats).0, 0.0, "{name}: last tap");
    }
    assert!(model.forward_tap(x, taps.len(), false).is_none());
}

#[test]
fn convnext_tiny_matches_timm() {
    check("convnext_tiny");
}

#[test]
fn convnext_small_matches_timm() {
    check("convnext_small");
}

#[test]
fn convnext_base_matches_timm() {
    check("convnext_base");
}

#[test]
fn tf_efficientnetv2_s_matches_timm() {
    check("tf_efficientnetv2_s");
}

#[test]
fn tf_efficientnetv2_m_matches_timm() {
    check("tf_efficientnetv2_m");
}

#[test]
fn tf_efficientnetv2_l_matches_timm() {
    check("tf_efficientnetv2_l");
}

#[test]
fn efficientnetv2_s_matches_timm() {
    check("efficientnetv2_s");
}

#[test]
fn efficientnetv2_m_matches_timm() {
    check("efficientnetv2_m");
}

#[test]
fn efficientnetv2_l_matches_timm() {
    check("efficientnetv2_l");
}

/// Train mode uses batch statistics: timm's train-mode forward_features of
/// tf_efficientnetv2_s on the same batch (no dropout / drop-path in features).
#[test]
fn tf_efficientnetv2_s_train_mode_matches_timm() {
    let dir = common::fixture_dir(STEM);
    let spec = arch::find("tf_efficientnetv2_s").unwrap();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = (spec.build)(
        &vs.root(),
        &BuildOptions {
            num_classes: 0,
            img_size: 112,
        },
    );
    vs.load(dir.join("tf_efficientnetv2_s.safetensors"))
        .unwrap();
    vs.float();
    let io = common::read_tensors(&dir.join("tf_efficientnetv2_s.io.safetensors"));
    let got = tch::no_grad(|| model.forward_features(&io["input"], true));
    common::assert_rel(
        &got,
        &io["features_train"],
        RTOL,
        "tf_efficientnetv2_s train-mode features",
    );
    // Eval differs from train (running vs batch statistics): the test above is not vacuous.
    let (d, m) = common::diff(&io["features"], &io["features_train"]);
    assert!(d > 1e-2 * m, "train and eval fixtures should differ");
}

/// num_classes 0 builds no classifier, and the trainable count drops by the
/// head's weight and bias (1000 × width + 1000).
#[test]
fn headless_builds_have_no_classifier() {
    for name in ["convnext_tiny", "tf_efficientnetv2_s"] {
        let spec = arch::find(name).unwrap();
        let count = |num_classes| {
            let vs = nn::VarStore::new(Device::Cpu);
            let model = (spec.build)(
                &vs.root(),
                &BuildOptions {
                    num_classes,
                    img_size: 64,
                },
            );
            let n: i64 = vs
                .trainable_variables()
                .iter()
                .map(|t| t.numel() as i64)
                .sum();
            (model, n)
        };
        let (headless, n0) = count(0);
        let (_, n1000) = count(1000);
        assert_eq!(n1000 - n0, 1000 * spec.num_features + 1000, "{name}");
        let pooled = Tensor::zeros([1, spec.num_features], (Kind::Float, Device::Cpu));
        assert!(headless.classifier(&pooled).is_none(), "{name}");
    }
}

/// Registry entries carry timm's pretrained_cfg values of each model's
/// default tag, as the fixture script recorded them. ConvNeXt uses timm's
/// `input_size` (224); EfficientNetV2 uses `test_input_size`, the eval size
/// (timm's `input_size` is the train size there).
#[test]
fn specs_match_timm_pretrained_cfg() {
    let dir = common::fixture_dir(STEM);
    for name in MODELS {
        let meta: Meta = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let c = &meta.cfg;
        let s = arch::find(name).unwrap();
        let size = if s.family == "convnext" {
            c.input_size
        } else {
            c.test_input_size
        };
        assert_eq!(s.input_size, size, "{name} input_size");
        assert!(
            (f64::from(s.crop_pct) - c.crop_pct).abs() < 1e-6,
            "{name} crop_pct"
        );
        for k in 0..3 {
            assert!(
                (f64::from(s.mean[k]) - c.mean[k]).abs() < 1e-6,
                "{name} mean"
            );
            assert!((f64::from(s.std[k]) - c.std[k]).abs() < 1e-6, "{name} std");
        }
        assert_eq!(c.interpolation, "bicubic", "{name}");
        assert_eq!(
            s.interpolation,
            reid_data::preprocess::Interpolation::Bicubic,
            "{name}"
        );
        assert_eq!(
            (s.num_classes, s.num_features),
            (c.num_classes, c.num_features),
            "{name}"
        );
    }
}
