//! Parity of the ViT / DINOv2 / Swin builds with timm 1.0.31 on seeded
//! random weights (fixtures from `scripts/fixtures/timm_transformers.py`),
//! parameter counts, registry defaults against timm's `pretrained_cfg`, and
//! position-embedding resampling against `timm.layers.resample_abs_pos_embed`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod common;

use common::{assert_rel, fixture_dir, read_tensors};
use reid_backbone::BackboneError;
use reid_backbone::arch::vit::{grid_size, resample_abs_pos_embed, resample_checkpoint_pos_embed};
use reid_backbone::arch::{self, BuildOptions, DefaultPooling, FeatureLayout, ModelSpec};
use reid_data::preprocess::Interpolation;
use tch::{Device, Kind, Tensor, nn};

const STEM: &str = "timm_transformers";
const RTOL: f64 = 1e-4;

const MODELS: &[&str] = &[
    "vit_base_patch16_224",
    "vit_base_patch16_384",
    "vit_small_patch14_dinov2",
    "vit_base_patch14_dinov2",
    "vit_large_patch14_dinov2",
    "swin_base_patch4_window12_384",
    "swin_large_patch4_window12_384",
];

fn meta(name: &str) -> serde_json::Value {
    let path = fixture_dir(STEM).join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn spec(name: &str) -> &'static ModelSpec {
    arch::find(name).unwrap_or_else(|| panic!("{name} not in the registry"))
}

fn trainable_params(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

/// The pooling the tests apply for a layout (timm's default for the family).
fn pool(features: &Tensor, layout: FeatureLayout, pooling: DefaultPooling) -> Tensor {
    match (layout, pooling) {
        (FeatureLayout::Spatial, _) => features.mean_dim([2i64, 3].as_slice(), false, Kind::Float),
        (FeatureLayout::Tokens { .. }, DefaultPooling::Cls) => features.select(1, 0),
        (FeatureLayout::Tokens { prefix }, DefaultPooling::Avg) => {
            let n = features.size()[1];
            features
                .narrow(1, prefix as i64, n - prefix as i64)
                .mean_dim([1i64].as_slice(), false, Kind::Float)
        }
    }
}

/// Builds `name` at the fixture's size, loads timm's state dict, compares
/// features, pooled pre-logits and logits, and the parameter count.
fn parity(name: &str) {
    let dir = fixture_dir(STEM);
    let m = meta(name);
    let spec = spec(name);
    let img_size = m["img_size"].as_i64().unwrap();
    let num_classes = m["num_classes"].as_i64().unwrap();
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = (spec.build)(
        &vs.root(),
        &BuildOptions {
            num_classes,
            img_size,
        },
    );
    vs.load(dir.join(format!("{name}.safetensors"))).unwrap();
    assert_eq!(
        trainable_params(&vs),
        m["params"].as_i64().unwrap(),
        "{name}: parameter count"
    );

    let io = read_tensors(&dir.join(format!("{name}.io.safetensors")));
    let (feats, pre, logits) = tch::no_grad(|| {
        let feats = model.forward_features(&io["input"], false);
        let pooled = pool(&feats, model.layout(), model.default_pooling());
        let pre = model.pre_logits(&pooled, false);
        let logits = model.classifier(&pre);
        (feats, pre, logits)
    });
    let want_feats = match model.layout() {
        // timm's Swin returns NHWC; ours is permuted to NCHW.
        FeatureLayout::Spatial => io["features"].permute([0, 3, 1, 2]),
        FeatureLayout::Tokens { .. } => io["features"].shallow_clone(),
    };
    report(name, "features", &feats, &want_feats);
    report(name, "pre_logits", &pre, &io["pre_logits"]);
    assert_eq!(model.num_features(), spec.num_features);
    match (logits, io.get("logits")) {
        (Some(got), Some(want)) => report(name, "logits", &got, want),
        (None, None) => {}
        (got, want) => panic!(
            "{name}: classifier present here: {}, in timm: {}",
            got.is_some(),
            want.is_some()
        ),
    }
}

fn report(name: &str, what: &str, got: &Tensor, want: &Tensor) {
    let (d, m) = common::diff(got, want);
    eprintln!(
        "{name} {what}: max abs diff {d:.3e}, max |timm| {m:.3e}, rel {:.3e}",
        d / m
    );
    assert_rel(got, want, RTOL, &format!("{name} {what}"));
}

#[test]
fn parity_vit_base_patch16_224() {
    parity("vit_base_patch16_224");
}

#[test]
fn parity_vit_base_patch16_384() {
    parity("vit_base_patch16_384");
}

#[test]
fn parity_vit_small_patch14_dinov2() {
    parity("vit_small_patch14_dinov2");
}

#[test]
fn parity_vit_base_patch14_dinov2() {
    parity("vit_base_patch14_dinov2");
}

#[test]
fn parity_vit_large_patch14_dinov2() {
    parity("vit_large_patch14_dinov2");
}

#[test]
fn parity_swin_base_patch4_window12_384() {
    parity("swin_base_patch4_window12_384");
}

#[test]
fn parity_swin_large_patch4_window12_384() {
    parity("swin_large_patch4_window12_384");
}

/// Each spec built at its default size and class count has timm's parameter
/// count at timm's default size (DINOv2 at 518: `pos_embed` of 1 + 37² rows).
#[test]
fn default_parameter_counts_match_timm() {
    for &name in MODELS {
        let m = meta(name);
        let spec = spec(name);
        assert_eq!(
            spec.input_size,
            m["default_img_size"].as_i64().unwrap(),
            "{name}"
        );
        let vs = nn::VarStore::new(Device::Cpu);
        let _model = (spec.build)(
            &vs.root(),
            &BuildOptions {
                num_classes: spec.num_classes,
                img_size: spec.input_size,
            },
        );
        assert_eq!(
            trainable_params(&vs),
            m["default_params"].as_i64().unwrap(),
            "{name}"
        );
    }
}

/// Registry defaults equal timm's `pretrained_cfg` of the default tag.
#[test]
fn specs_match_timm_pretrained_cfg() {
    for &name in MODELS {
        let m = meta(name);
        let cfg = &m["pretrained_cfg"];
        let spec = spec(name);
        let size = cfg["input_size"].as_array().unwrap();
        assert_eq!(
            spec.input_size,
            size[1].as_i64().unwrap(),
            "{name} input size"
        );
        assert_eq!(
            spec.input_size,
            size[2].as_i64().unwrap(),
            "{name} input size"
        );
        assert!((f64::from(spec.crop_pct) - cfg["crop_pct"].as_f64().unwrap()).abs() < 1e-6);
        assert_eq!(cfg["interpolation"].as_str().unwrap(), "bicubic", "{name}");
        assert_eq!(spec.interpolation, Interpolation::Bicubic, "{name}");
        for c in 0..3 {
            let mean = cfg["mean"][c].as_f64().unwrap();
            let std = cfg["std"][c].as_f64().unwrap();
            assert!((f64::from(spec.mean[c]) - mean).abs() < 1e-6, "{name} mean");
            assert!((f64::from(spec.std[c]) - std).abs() < 1e-6, "{name} std");
        }
        assert_eq!(
            spec.num_classes,
            m["num_classes"].as_i64().unwrap(),
            "{name} classes"
        );
        assert_eq!(
            spec.num_features,
            m["num_features"].as_i64().unwrap(),
            "{name} features"
        );
    }
}

#[test]
fn pos_embed_resample_matches_timm() {
    let t = read_tensors(&fixture_dir(STEM).join("pos_embed_resample.safetensors"));
    // (case, prefix, old grid, new grid)
    let cases = [
        ("b16_224_to_384", 1, Some((14, 14)), (24, 24)),
        ("dinov2_518_to_224", 1, None, (16, 16)),
        ("rect_noprefix", 0, Some((6, 10)), (9, 4)),
    ];
    for (case, prefix, old, new) in cases {
        let input = &t[&format!("{case}.in")];
        for aa in [false, true] {
            let got = resample_abs_pos_embed(input, new, old, prefix, aa).unwrap();
            let want = &t[&format!("{case}.aa{}", u8::from(aa))];
            report(case, &format!("antialias={aa}"), &got, want);
            // prefix tokens pass through unchanged
            if prefix > 0 {
                assert!(got.narrow(1, 0, prefix).equal(&input.narrow(1, 0, prefix)));
            }
        }
    }
    // antialias changes the result even when growing (different cubic)
    let input = &t["b16_224_to_384.in"];
    let a = resample_abs_pos_embed(input, (24, 24), None, 1, false).unwrap();
    let b = resample_abs_pos_embed(input, (24, 24), None, 1, true).unwrap();
    assert!(common::diff(&a, &b).0 > 1e-3);
}

#[test]
fn pos_embed_resample_rejects_bad_input() {
    let pe = Tensor::zeros([1, 1 + 15, 8], (Kind::Float, Device::Cpu));
    // 15 patch tokens are no square grid
    assert!(matches!(
        resample_abs_pos_embed(&pe, (4, 4), None, 1, false),
        Err(BackboneError::Shape { .. })
    ));
    // an explicit old grid that does not cover the tokens
    assert!(matches!(
        resample_abs_pos_embed(&pe, (4, 4), Some((4, 4)), 1, false),
        Err(BackboneError::Shape { .. })
    ));
    // 3 x 5 does
    assert_eq!(
        resample_abs_pos_embed(&pe, (4, 4), Some((3, 5)), 1, false)
            .unwrap()
            .size(),
        vec![1, 17, 8]
    );
    // wrong rank
    let flat = Tensor::zeros([17, 8], (Kind::Float, Device::Cpu));
    assert!(matches!(
        resample_abs_pos_embed(&flat, (4, 4), None, 1, false),
        Err(BackboneError::Shape { .. })
    ));
    // empty target grid, negative prefix
    assert!(matches!(
        resample_abs_pos_embed(&pe, (0, 4), Some((3, 5)), 1, false),
        Err(BackboneError::InvalidParam { .. })
    ));
    assert!(matches!(
        resample_abs_pos_embed(&pe, (4, 4), Some((3, 5)), -1, false),
        Err(BackboneError::InvalidParam { .. })
    ));
}

#[test]
fn grid_sizes() {
    assert_eq!(grid_size("vit_base_patch16_384", 384), Some((24, 24)));
    assert_eq!(grid_size("vit_large_patch14_dinov2", 518), Some((37, 37)));
    assert_eq!(grid_size("vit_small_patch14_dinov2", 224), Some((16, 16)));
    assert_eq!(grid_size("swin_base_patch4_window12_384", 384), None);
}

/// timm's path for a 224 checkpoint in a 384 model: `checkpoint_filter_fn`
/// resamples `pos_embed` (bicubic, antialias on) and the model runs at 384.
#[test]
fn vit_224_checkpoint_in_384_model_matches_timm() {
    let dir = fixture_dir(STEM);
    let mut tensors =
        Tensor::read_safetensors(dir.join("vit_base_patch16_224.safetensors")).unwrap();
    let grid = grid_size("vit_base_patch16_384", 384).unwrap();
    assert!(resample_checkpoint_pos_embed(&mut tensors, grid, 1, true).unwrap());
    // a second call finds it fitting already
    assert!(!resample_checkpoint_pos_embed(&mut tensors, grid, 1, true).unwrap());

    let spec = spec("vit_base_patch16_384");
    let vs = nn::VarStore::new(Device::Cpu);
    let model = (spec.build)(
        &vs.root(),
        &BuildOptions {
            num_classes: 1000,
            img_size: 384,
        },
    );
    let mut vars = vs.variables();
    tch::no_grad(|| {
        for (name, t) in &tensors {
            let var = vars
                .get_mut(name)
                .unwrap_or_else(|| panic!("{name} not in the model"));
            assert_eq!(var.size(), t.size(), "{name}");
            var.copy_(t);
        }
    });
    assert_eq!(vars.len(), tensors.len());

    let io = read_tensors(&dir.join("vit_base_patch16_224_to_384.io.safetensors"));
    let got_pos = vars["pos_embed"].shallow_clone();
    report("224->384", "pos_embed", &got_pos, &io["pos_embed"]);
    let (feats, pre, logits) = tch::no_grad(|| {
        let feats = model.forward_features(&io["input"], false);
        let pre = model.pre_logits(&feats.select(1, 0), false);
        let logits = model.classifier(&pre).unwrap();
        (feats, pre, logits)
    });
    report("224->384", "features", &feats, &io["features"]);
    report("224->384", "pre_logits", &pre, &io["pre_logits"]);
    report("224->384", "logits", &logits, &io["logits"]);
}
