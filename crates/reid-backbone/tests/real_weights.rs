//! Real ImageNet weights: EfficientNet-Lite0/1/2 and MobileNetV2 against the
//! PyTorch reference (`efficientnet_lite_pytorch`, torchvision) computed by
//! `scripts/fixtures/real_weights.py` from the same weights.
//!
//! Checks per model: the key names and shapes equal the state dict's, the
//! parameter count equals PyTorch's, features and logits of a seeded random
//! batch and of lion photos (preprocessed in Python) are within 1e-4 max
//! abs of PyTorch's, and the crate's own preprocessing of lion photos gives
//! top-1 class 291 ("lion") like the reference.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod common;

use std::path::PathBuf;

use reid_backbone::ParamGuard;
use reid_backbone::arch::{self, BuildOptions, FeatureLayout};
use reid_backbone::weights::Pretrained;
use reid_data::preprocess::PreprocessParams;
use tch::{Device, Kind, Tensor, nn};

use common::{assert_abs, assert_rel, diff, fixture_dir, read_tensors};

const STEM: &str = "real_weights";
const ATOL: f64 = 1e-4;

use reid_core::paths::shared_dir;

fn meta(name: &str) -> serde_json::Value {
    let path = fixture_dir(STEM).join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Builds `name` from the registry and loads the fixture's converted state dict.
fn load(name: &str) -> (nn::VarStore, Box<dyn arch::Architecture>) {
    let spec = arch::find(name).unwrap_or_else(|| panic!("{name} not in the registry"));
    let mut vs = nn::VarStore::new(Device::Cpu);
    let opts = BuildOptions {
        num_classes: spec.num_classes,
        img_size: spec.input_size,
    };
    let model = (spec.build)(&vs.root(), &opts);
    let weights = fixture_dir(STEM).join(format!("{name}.safetensors"));
    // Key sets must be equal both ways (vs.load only checks one way).
    let file = read_tensors(&weights);
    let vars = vs.variables();
    let mut missing: Vec<_> = vars.keys().filter(|k| !file.contains_key(*k)).collect();
    let mut extra: Vec<_> = file.keys().filter(|k| !vars.contains_key(*k)).collect();
    missing.sort();
    extra.sort();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{name}: missing {missing:?}, unexpected {extra:?}"
    );
    for (k, v) in &vars {
        assert_eq!(v.size(), file[k].size(), "{name}: shape of {k}");
    }
    vs.load(&weights).unwrap();
    (vs, model)
}

fn logits(model: &dyn arch::Architecture, x: &Tensor) -> (Tensor, Tensor) {
    tch::no_grad(|| {
        let f = model.forward_features(x, false);
        assert_eq!(model.layout(), FeatureLayout::Spatial);
        let pooled = f.mean_dim([2i64, 3].as_slice(), false, Kind::Float);
        let l = model.classifier(&model.pre_logits(&pooled, false)).unwrap();
        (f, l)
    })
}

fn check(name: &str) {
    let (vs, model) = load(name);
    let spec = arch::find(name).unwrap();
    let m = meta(name);

    // Parameter count equals PyTorch's sum of numel over parameters().
    let ours: i64 = vs
        .trainable_variables()
        .iter()
        .map(Tensor::numel)
        .map(|n| n as i64)
        .sum();
    assert_eq!(
        ours,
        m["params"].as_i64().unwrap(),
        "{name}: parameter count"
    );
    eprintln!("{name}: {ours} parameters");

    // The fixture used this spec's preprocessing for its photos.
    assert_eq!(m["input_size"].as_i64().unwrap(), spec.input_size);
    assert!((m["crop_pct"].as_f64().unwrap() - f64::from(spec.crop_pct)).abs() < 1e-6);
    for c in 0..3 {
        assert!((m["mean"][c].as_f64().unwrap() - f64::from(spec.mean[c])).abs() < 1e-6);
        assert!((m["std"][c].as_f64().unwrap() - f64::from(spec.std[c])).abs() < 1e-6);
    }

    // Parity on the Python-preprocessed inputs.
    let io = read_tensors(&fixture_dir(STEM).join(format!("{name}.io.safetensors")));
    for kind in ["random", "photo"] {
        let x = &io[&format!("{kind}_input")];
        let (f, l) = logits(model.as_ref(), x);
        let (df, _) = diff(&f, &io[&format!("{kind}_features")]);
        let (dl, _) = diff(&l, &io[&format!("{kind}_logits")]);
        eprintln!("{name} {kind}: max abs diff features {df:e}, logits {dl:e}");
        assert_abs(
            &f,
            &io[&format!("{kind}_features")],
            ATOL,
            &format!("{name} {kind} features"),
        );
        assert_abs(
            &l,
            &io[&format!("{kind}_logits")],
            ATOL,
            &format!("{name} {kind} logits"),
        );
    }

    // The grid descriptor's default tap: the same block, and the same map,
    // as PyTorch's; the network has no tap past its last.
    let taps = model.taps();
    let t = arch::default_grid_tap(taps).unwrap();
    assert_eq!(t as i64, m["grid_tap_index"].as_i64().unwrap(), "{name}");
    assert_eq!(taps[t].name, m["grid_tap"].as_str().unwrap(), "{name}");
    assert_eq!(taps[t].stride, 16, "{name}");
    let tap = tch::no_grad(|| model.forward_tap(&io["photo_input"], t, false)).unwrap();
    assert_eq!(
        tap.size()[1],
        taps[t].channels,
        "{name}: channels at the tap"
    );
    let (dt, _) = diff(&tap, &io["photo_tap"]);
    eprintln!("{name}: tap {}: max abs diff {dt:e}", taps[t].name);
    // The block outputs are linear (no ReLU6 bound: |x| up to ~40 on
    // Lite2), so relative to the largest value.
    assert_rel(
        &tap,
        &io["photo_tap"],
        1e-5,
        &format!("{name} {}", taps[t].name),
    );
    assert!(
        model
            .forward_tap(&io["photo_input"], taps.len(), false)
            .is_none()
    );

    // Known content through the crate's own preprocessing.
    let lion = m["lion_class"].as_i64().unwrap();
    let photos: Vec<PathBuf> = m["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| shared_dir().join(p.as_str().unwrap()))
        .collect();
    assert!(photos.len() >= 2, "{name}: fixture lists too few photos");
    let size = u32::try_from(spec.input_size).unwrap();
    let pre = PreprocessParams::timm_eval(size, spec.crop_pct)
        .interpolation(spec.interpolation)
        .mean(spec.mean)
        .std(spec.std)
        .check()
        .unwrap();
    let batch = pre.files(&photos).unwrap();
    let shape: Vec<i64> = batch.shape().iter().map(|&d| d as i64).collect();
    let data: Vec<f32> = batch.iter().copied().collect();
    let x = Tensor::from_slice(&data).reshape(shape.as_slice());
    let (dx, _) = diff(&x, &io["photo_input"]);
    eprintln!("{name}: crate preprocessing vs PIL max abs diff {dx:e} (informative)");
    let (_, l) = logits(model.as_ref(), &x);
    let top1 = l.argmax(1, false);
    for (i, path) in photos.iter().enumerate() {
        let got = top1.int64_value(&[i as i64]);
        assert_eq!(
            got,
            lion,
            "{name}: top-1 of {} is {got}, want {lion}",
            path.display()
        );
    }
}

#[test]
fn efficientnet_lite0_matches_pytorch() {
    check("efficientnet_lite0");
}

#[test]
fn efficientnet_lite1_matches_pytorch() {
    check("efficientnet_lite1");
}

#[test]
fn efficientnet_lite2_matches_pytorch() {
    check("efficientnet_lite2");
}

#[test]
fn mobilenet_v2_matches_torchvision() {
    check("mobilenet_v2");
}

/// MobileNetV2's taps are torchvision's `features.0` … `features.18`, the
/// last being the head (the same map as `forward_features`); a grid of
/// the default tap through the builder is `96 · 4²` wide, unit length, and
/// its 1 × 1 grid at the head is the default embedding; a tap the network
/// lacks is an error naming the taps it has.
#[test]
fn mobilenet_v2_grid_descriptors() {
    use reid_backbone::backbone::BackboneBuilder;
    use reid_backbone::pool::Pooling;

    let (_vs, model) = load("mobilenet_v2");
    let taps = model.taps();
    assert_eq!(taps.len(), 19);
    assert_eq!(taps[13].name, "features.13");
    assert_eq!((taps[13].channels, taps[13].stride), (96, 16));
    assert_eq!((taps[18].channels, taps[18].stride), (1280, 32));
    let x = Tensor::randn([1, 3, 96, 96], (Kind::Float, Device::Cpu));
    let (head, features) = tch::no_grad(|| {
        (
            model.forward_tap(&x, 18, false).unwrap(),
            model.forward_features(&x, false),
        )
    });
    assert_eq!(diff(&head, &features).0, 0.0);

    let grid = |p: &str| {
        BackboneBuilder::new("mobilenet_v2")
            .pooling(Pooling::parse(p).unwrap())
            .build()
    };
    let bb = grid("grid:4@13").unwrap();
    assert_eq!(bb.info().dim, 96 * 16);
    let x = Tensor::randn([2, 3, 224, 224], (Kind::Float, Device::Cpu));
    let e = bb.embed_tensor(&x).unwrap();
    assert_eq!(e.size(), [2, 96 * 16]);
    let norms = e.norm_scalaropt_dim(2.0, [1i64].as_slice(), false);
    assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-5);
    let whole = grid("grid:1@18").unwrap().embed_tensor(&x).unwrap();
    let plain = BackboneBuilder::new("mobilenet_v2")
        .build()
        .unwrap()
        .embed_tensor(&x)
        .unwrap();
    assert_abs(&whole, &plain, 1e-6, "grid:1@18 vs the default pooling");
    let err = grid("grid:4@19").unwrap_err().to_string();
    assert!(
        err.contains("taps 0 to 18") && err.contains("features.18") && err.contains("19"),
        "{err}"
    );
}

/// The weights the fixture converted are the provisioned ones: the real
/// files exist where the crate looks for them, and the spec names match.
#[test]
fn pretrained_files_are_located() {
    for w in Pretrained::ALL {
        let path = w.locate().unwrap();
        assert!(path.is_file());
        assert!(
            arch::find(w.name()).is_some(),
            "{} has no ModelSpec",
            w.name()
        );
    }
}
