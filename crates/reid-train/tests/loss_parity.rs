//! Loss values and gradients against PyTorch on the fixed tensors of
//! `scripts/fixtures/train_losses.py` (float64; within 1e-5).

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use reid_train::loss::{
    ArcFaceParams, Distance, SubCenterParams, TripletParams, softmax_cross_entropy,
};
use reid_train::{ParamGuard, TrainError};
use serde_json::Value;
use tch::{Kind, Tensor};

// The fixture folder helper of reid-openset's tests (same cache layout).
#[path = "../../reid-openset/tests/common/mod.rs"]
mod openset_common;

fn fixtures() -> PathBuf {
    openset_common::fixture_dir("train_losses").join("train_losses.json")
}

fn tensor(v: &Value) -> Tensor {
    let shape: Vec<i64> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    let data: Vec<f64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    Tensor::from_slice(&data).view(shape.as_slice())
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

#[test]
#[allow(clippy::unwrap_used)]
fn losses_and_gradients_match_pytorch() {
    let path = fixtures();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `scripts/setup.sh test` to make the fixtures",
            path.display()
        )
    });
    let fx: Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for case in fx["cases"].as_array().unwrap() {
        let x0 = tensor(&case["embeddings"]);
        let labels: Vec<i64> = case["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let labels = Tensor::from_slice(&labels);
        let w1 = tensor(&case["weight"]);
        let wk = tensor(&case["weight_subcenter"]);
        let bias = tensor(&case["bias"]);
        for l in case["losses"].as_array().unwrap() {
            let p = &l["params"];
            let x = x0.copy().set_requires_grad(true);
            let name = l["loss"].as_str().unwrap();
            let (loss, w) = match name {
                "arcface" | "subcenter" => {
                    let a = ArcFaceParams::default()
                        .margin(p["margin"].as_f64().unwrap())
                        .scale(p["scale"].as_f64().unwrap())
                        .easy_margin(p["easy_margin"].as_bool().unwrap());
                    if name == "arcface" {
                        let w = w1.copy().set_requires_grad(true);
                        (a.check().unwrap().loss(&x, &w, &labels).unwrap(), Some(w))
                    } else {
                        let w = wk.copy().set_requires_grad(true);
                        let s = SubCenterParams::default()
                            .arcface(a)
                            .k(p["k"].as_i64().unwrap())
                            .check()
                            .unwrap();
                        (s.loss(&x, &w, &labels).unwrap(), Some(w))
                    }
                }
                "triplet" => {
                    let d = match p["metric"].as_str().unwrap() {
                        "cosine" => Distance::Cosine,
                        _ => Distance::Euclidean,
                    };
                    let t = TripletParams::default()
                        .margin(p["margin"].as_f64().unwrap())
                        .distance(d)
                        .check()
                        .unwrap();
                    (t.loss(&x, &labels).unwrap(), None)
                }
                "softmax" => {
                    let w = w1.copy().set_requires_grad(true);
                    let b = bias.copy().set_requires_grad(true);
                    (
                        softmax_cross_entropy(&x, &w, Some(&b), &labels).unwrap(),
                        Some(w),
                    )
                }
                other => panic!("unknown loss {other}"),
            };
            assert_eq!(loss.kind(), Kind::Double, "{name} {p}");
            let want = l["value"].as_f64().unwrap();
            let got = loss.double_value(&[]);
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{name} {p}: loss {got} vs PyTorch {want}"
            );
            loss.backward();
            let gx = max_abs_diff(&x.grad(), &tensor(&l["grad_embeddings"]));
            assert!(gx <= 1e-5, "{name} {p}: d/dx differs by {gx}");
            if let Some(w) = w {
                let gw = max_abs_diff(&w.grad(), &tensor(&l["grad_weight"]));
                assert!(gw <= 1e-5, "{name} {p}: d/dW differs by {gw}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * 10);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let opts = (Kind::Float, tch::Device::Cpu);
    let arc = ArcFaceParams::default()
        .check()
        .unwrap_or_else(|e| panic!("{e}"));
    let x = Tensor::randn([4, 8], opts);
    let w = Tensor::randn([3, 8], opts);
    // Label out of range: names the shape.
    let e = arc.loss(&x, &w, &Tensor::from_slice(&[0i64, 1, 3, 0]));
    assert!(
        matches!(&e, Err(TrainError::Labels { shape, .. }) if shape == "[4]"),
        "{e:?}"
    );
    // Wrong number of labels.
    let e = arc.loss(&x, &w, &Tensor::from_slice(&[0i64, 1]));
    assert!(matches!(e, Err(TrainError::Labels { .. })), "{e:?}");
    // Float labels.
    let e = arc.loss(&x, &w, &Tensor::from_slice(&[0f32, 1., 2., 0.]));
    assert!(matches!(e, Err(TrainError::Labels { .. })), "{e:?}");
    // Wrong weight width.
    let e = arc.loss(
        &x,
        &Tensor::randn([3, 7], opts),
        &Tensor::from_slice(&[0i64, 1, 2, 0]),
    );
    assert!(
        matches!(&e, Err(TrainError::Shape { got, .. }) if got == "[3, 7]"),
        "{e:?}"
    );
    // 1-D embeddings.
    let e = arc.loss(&Tensor::randn([8], opts), &w, &Tensor::from_slice(&[0i64]));
    assert!(matches!(e, Err(TrainError::Shape { .. })), "{e:?}");
    // NaN.
    let nan = x.copy();
    let _ = nan.get(1).get(2).fill_(f64::NAN);
    let e = arc.loss(&nan, &w, &Tensor::from_slice(&[0i64, 1, 2, 0]));
    assert!(
        matches!(&e, Err(TrainError::NonFinite { shape, .. }) if shape == "[4, 8]"),
        "{e:?}"
    );
    // Triplet with no positive pair at all.
    let t = TripletParams::default()
        .check()
        .unwrap_or_else(|e| panic!("{e}"));
    let e = t.loss(&x, &Tensor::from_slice(&[0i64, 1, 2, 3]));
    assert!(matches!(e, Err(TrainError::Labels { .. })), "{e:?}");
    // Sub-center weights not a multiple of k.
    let s = SubCenterParams::default()
        .check()
        .unwrap_or_else(|e| panic!("{e}"));
    let e = s.loss(
        &x,
        &Tensor::randn([4, 8], opts),
        &Tensor::from_slice(&[0i64, 1, 0, 0]),
    );
    assert!(matches!(e, Err(TrainError::Shape { .. })), "{e:?}");
}

#[test]
fn params_are_checked() {
    use std::f64::consts::PI;
    assert!(
        ArcFaceParams::default()
            .margin(-0.1)
            .scale(64.0)
            .check()
            .is_err()
    );
    assert!(
        ArcFaceParams::default()
            .margin(PI / 2.0)
            .scale(64.0)
            .check()
            .is_err()
    );
    assert!(
        ArcFaceParams::default()
            .margin(f64::NAN)
            .scale(64.0)
            .check()
            .is_err()
    );
    assert!(
        ArcFaceParams::default()
            .margin(0.5)
            .scale(0.0)
            .check()
            .is_err()
    );
    assert!(
        ArcFaceParams::default()
            .margin(0.0)
            .scale(1.0)
            .check()
            .is_ok()
    );
    assert!(
        SubCenterParams::default()
            .arcface(ArcFaceParams::default())
            .k(0)
            .check()
            .is_err()
    );
    assert!(
        SubCenterParams::default()
            .arcface(ArcFaceParams::default())
            .k(1)
            .check()
            .is_ok()
    );
    assert!(
        TripletParams::default()
            .margin(2.5)
            .distance(Distance::Euclidean)
            .check()
            .is_err()
    );
    let e = ArcFaceParams::default()
        .margin(2.0)
        .scale(64.0)
        .check()
        .err()
        .map(|e| e.to_string());
    assert!(e.is_some_and(|s| s.contains("margin")));
}
