//! The extraction pipeline and the backbone wrapper: embeddings equal the
//! model run by hand, the cache returns the same values and recomputes a
//! damaged entry, test-time augmentation averages, and bad input is a typed
//! error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reid_backbone::BackboneError;
use reid_backbone::ParamGuard;
use reid_backbone::backbone::{
    Backbone, BackboneBuilder, Precision, array4_to_tensor, tensor_to_array2,
};
use reid_backbone::pipeline::{ExtractParams, Tta, embed_tta, extract, extract_skipping};
use reid_backbone::pool::Pooling;
use std::time::Duration;

use tch::{Kind, Tensor};

fn lite0() -> Backbone {
    BackboneBuilder::new("efficientnet_lite0").build().unwrap()
}

fn max_abs(a: &ndarray::Array2<f32>, b: &ndarray::Array2<f32>) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn extract_equals_the_model_by_hand_and_the_cache_returns_it() {
    let bb = lite0();
    let records = common::lion_records(10);
    let pre = bb.preprocess_params().check().unwrap();
    let batch = pre.batch(&records).unwrap();
    let by_hand = bb.embed(batch.images.view()).unwrap();
    // Rows are unit vectors.
    for row in by_hand.outer_iter() {
        let n: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-5, "norm {n}");
    }
    assert_eq!(by_hand.ncols() as i64, bb.info().dim);

    let dir = tempfile::tempdir().unwrap();
    let params = ExtractParams::default()
        .batch_size(4)
        .cache_dir(dir.path())
        .check()
        .unwrap();
    let mut last = None;
    let first = extract(&bb, &records, &params, |p| last = Some(p)).unwrap();
    let p = last.unwrap();
    assert_eq!((p.done, p.total, p.cached), (10, 10, 0));
    // Where the time went: the network ran, the cache was written.
    assert!(
        p.network > Duration::ZERO && p.cache_time > Duration::ZERO,
        "{p:?}"
    );
    assert_eq!(first.ids, batch.ids);
    // Batches of 4 against one batch of 10: same values up to kernel rounding.
    assert!(max_abs(&first.matrix, &by_hand) < 1e-5);

    // Second run: everything from the cache, bit for bit.
    let mut last = None;
    let second = extract(&bb, &records, &params, |p| last = Some(p)).unwrap();
    let p = last.unwrap();
    assert_eq!(p.cached, 10);
    // Nothing decoded, nothing through the network.
    assert_eq!((p.network, p.decode_wait), (Duration::ZERO, Duration::ZERO));
    assert!(p.cache_time > Duration::ZERO);
    assert_eq!(second.matrix, first.matrix);

    // Damage one entry: it is recomputed, not trusted.
    let entry = walk(dir.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "emb"))
        .unwrap();
    let mut bytes = std::fs::read(&entry).unwrap();
    bytes[20] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    let mut last = None;
    let third = extract(&bb, &records, &params, |p| last = Some(p)).unwrap();
    let p = last.unwrap();
    assert_eq!((p.cached, p.damaged), (9, 1));
    assert!(max_abs(&third.matrix, &first.matrix) < 1e-5);

    // Flip TTA is another configuration: nothing cached for it yet.
    let flip = ExtractParams::default()
        .batch_size(4)
        .flip(true)
        .cache_dir(dir.path())
        .check()
        .unwrap();
    let mut last = None;
    let flipped = extract(&bb, &records, &flip, |p| last = Some(p)).unwrap();
    assert_eq!(last.unwrap().cached, 0);
    // Equal to the normalised sum of the embeddings of the image and its mirror.
    let x = array4_to_tensor(batch.images.view());
    let a = bb.embed_tensor(&x).unwrap();
    let b = bb.embed_tensor(&x.flip([3])).unwrap();
    let sum = &a + &b;
    let want = &sum / sum.norm_scalaropt_dim(2.0, [1i64].as_slice(), true);
    assert!(max_abs(&flipped.matrix, &tensor_to_array2(&want).unwrap()) < 1e-5);
    assert!(max_abs(&flipped.matrix, &first.matrix) > 1e-3);
}

/// A truncated JPEG among the records: `extract` stops naming it;
/// `extract_skipping` leaves it (and an empty file) out, reports both, and
/// embeds the others exactly as without them, in order, through batches
/// that mix good and bad images.
#[test]
fn unreadable_images_stop_extract_and_are_skipped_by_extract_skipping() {
    let bb = lite0();
    let mut records = common::lion_records(7);
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(&records[2].path).unwrap();
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    records[2].path = cut.clone();
    records[5].path = empty;
    let params = ExtractParams::default().batch_size(3).check().unwrap();
    let e = extract(&bb, &records, &params, |_| {}).unwrap_err();
    assert!(e.to_string().contains("cut.jpg"), "{e}");

    let good: Vec<_> = [0, 1, 3, 4, 6]
        .iter()
        .map(|&i| records[i].clone())
        .collect();
    let want = extract(&bb, &good, &params, |_| {}).unwrap();
    // Batches of 3 mix good and bad images; batches of 1 hold a bad one alone.
    for batch in [3, 1] {
        let params = ExtractParams::default().batch_size(batch).check().unwrap();
        let mut last = None;
        let (emb, skipped) = extract_skipping(&bb, &records, &params, |p| last = Some(p)).unwrap();
        assert_eq!(last.unwrap().done, 7);
        let idx: Vec<usize> = skipped.iter().map(|s| s.index).collect();
        assert_eq!(idx, [2, 5]);
        assert!(skipped[0].error.contains("cut.jpg"), "{}", skipped[0].error);
        assert_eq!(skipped[1].image_id, records[5].image_id);
        assert_eq!(emb.ids, want.ids);
        assert!(max_abs(&emb.matrix, &want.matrix) < 1e-5);
    }
    // Nothing bad: the same as extract.
    let (all, none) = extract_skipping(&bb, &good, &params, |_| {}).unwrap();
    assert!(none.is_empty());
    assert_eq!(all, want);
}

#[test]
fn five_crop_takes_corner_and_centre_crops() {
    let bb = lite0();
    let s = bb.info().input_size;
    let big = (s * 8 + 6) / 7;
    tch::manual_seed(1);
    let x = Tensor::rand([2, 3, big, big], (Kind::Float, tch::Device::Cpu));
    let got = embed_tta(
        &bb,
        &x,
        Tta {
            flip: false,
            five_crop: true,
        },
        s,
    )
    .unwrap();
    let o = big - s;
    let mut sum = Tensor::zeros([2, bb.info().dim], (Kind::Float, tch::Device::Cpu));
    for (t, l) in [(0, 0), (0, o), (o, 0), (o, o), (o / 2, o / 2)] {
        sum += bb.embed_tensor(&x.narrow(2, t, s).narrow(3, l, s)).unwrap();
    }
    let want = &sum / sum.norm_scalaropt_dim(2.0, [1i64].as_slice(), true);
    common::assert_abs(&got, &want, 1e-5, "five-crop");
}

#[test]
fn bad_input_is_a_typed_error() {
    let bb = lite0();
    let s = bb.info().input_size;
    let cpu = (Kind::Float, tch::Device::Cpu);
    // Wrong channel count and wrong size.
    let e = bb
        .embed_tensor(&Tensor::zeros([1, 1, s, s], cpu))
        .unwrap_err();
    assert!(matches!(e, BackboneError::Shape { .. }), "{e}");
    assert!(e.to_string().contains("[1, 1,"), "{e}");
    let e = bb
        .embed_tensor(&Tensor::zeros([1, 3, s + 1, s], cpu))
        .unwrap_err();
    assert!(matches!(e, BackboneError::Shape { .. }), "{e}");
    let arr = ndarray::Array4::<f32>::zeros((2, 4, s as usize, s as usize));
    assert!(matches!(
        bb.embed(arr.view()).unwrap_err(),
        BackboneError::Shape { .. }
    ));
    // NaN in, NaN out: named, with the row.
    let x = Tensor::zeros([3, 3, s, s], cpu);
    let _ = x.get(2).fill_(f64::NAN);
    let e = bb.embed_tensor(&x).unwrap_err();
    match e {
        BackboneError::NonFinite { row, .. } => assert_eq!(row, 2),
        other => panic!("{other}"),
    }
    // f16 on the CPU (bf16 is tested in tests/bf16_cpu.rs), unknown model,
    // pooling that does not fit.
    let e = BackboneBuilder::new("efficientnet_lite0")
        .precision(Precision::F16)
        .build()
        .unwrap_err();
    assert!(matches!(e, BackboneError::Precision { .. }), "{e}");
    assert!(e.to_string().contains("f16"), "{e}");
    assert!(BackboneBuilder::new("resnet9000").build().is_err());
    let e = BackboneBuilder::new("efficientnet_lite0")
        .pooling(Pooling::Cls)
        .build()
        .unwrap_err();
    assert!(matches!(e, BackboneError::InvalidParam { .. }), "{e}");
    // A weights file for another model: the mismatch names the variables.
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("other.safetensors");
    Tensor::write_safetensors(&[("conv.weight", Tensor::zeros([2, 2], cpu))], &w).unwrap();
    let e = BackboneBuilder::new("efficientnet_lite0")
        .weights_file(&w)
        .build()
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("missing") && msg.contains("unexpected: conv.weight"),
        "{msg}"
    );
    // Float weights declared as I32 in the file: a typed error naming the
    // variable and both element types, never a silent cast.
    let good = dir.path().join("lite0.safetensors");
    let vars = lite0().var_store().variables();
    let mut named: Vec<(String, Tensor)> = vars.into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let first = named[0].0.clone();
    named[0].1 = named[0].1.to_kind(Kind::Int);
    let refs: Vec<(&str, Tensor)> = named
        .iter()
        .map(|(n, t)| (n.as_str(), t.contiguous()))
        .collect();
    Tensor::write_safetensors(&refs, &good).unwrap();
    let e = BackboneBuilder::new("efficientnet_lite0")
        .weights_file(&good)
        .build()
        .unwrap_err();
    match &e {
        BackboneError::WeightsDoNotFit { path, source, .. } => {
            assert_eq!(path, &good);
            assert!(
                matches!(**source, BackboneError::KindMismatch { .. }),
                "{e}"
            );
        }
        other => panic!("{other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("lite0.safetensors") && msg.contains("efficientnet_lite0"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{first}: file Int, model Float")),
        "{msg}"
    );
    // Missing weights file.
    let e = BackboneBuilder::new("efficientnet_lite0")
        .weights_file(dir.path().join("nope.pth"))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("nope.pth"), "{e}");
}

#[test]
fn gem_pooling_with_p_one_is_the_average() {
    // GeM with p = 1 equals average pooling (up to the 1e-6 clamp floor,
    // which is why real weights are used: random ones give near-zero features).
    let avg = BackboneBuilder::new("efficientnet_lite0")
        .pooling(Pooling::Avg)
        .build()
        .unwrap();
    let gem1 = BackboneBuilder::new("efficientnet_lite0")
        .pooling(Pooling::Gem {
            p: 1.0,
            learnable: false,
        })
        .build()
        .unwrap();
    let s = avg.info().input_size;
    tch::manual_seed(5);
    let x = Tensor::rand([2, 3, s, s], (Kind::Float, tch::Device::Cpu));
    // Lite features are ReLU6 outputs (>= 0), so the GeM clamp changes nothing.
    common::assert_abs(
        &gem1.embed_tensor(&x).unwrap(),
        &avg.embed_tensor(&x).unwrap(),
        1e-5,
        "GeM p=1 vs avg",
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_checkpoint_without_its_classifier_loads_headless() {
    // timm's convnext_tiny weights (seeded, from the fixtures) with and
    // without `head.fc.*`, as scripts/export_model.py writes by default.
    let full = common::fixture_dir("timm_cnn").join("convnext_tiny.safetensors");
    let tensors = Tensor::read_safetensors(&full).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let headless = dir.path().join("headless.safetensors");
    let kept: Vec<(String, Tensor)> = tensors
        .into_iter()
        .filter(|(k, _)| !k.starts_with("head.fc."))
        .collect();
    Tensor::write_safetensors(&kept, &headless).unwrap();
    let a = BackboneBuilder::new("convnext_tiny")
        .weights_file(&full)
        .build()
        .unwrap();
    let b = BackboneBuilder::new("convnext_tiny")
        .weights_file(&headless)
        .build()
        .unwrap();
    let s = a.info().input_size;
    tch::manual_seed(2);
    let x = Tensor::rand([1, 3, s, s], (Kind::Float, tch::Device::Cpu));
    common::assert_abs(
        &b.embed_tensor(&x).unwrap(),
        &a.embed_tensor(&x).unwrap(),
        0.0,
        "embeddings with and without the classifier",
    );
    assert!(a.logits(&x).is_ok());
    assert!(b.logits(&x).is_err());
}

/// The whole builder path: the `.pth` file read by our unpickler, loaded by
/// name, run with channels-last strides, pooled: logits equal PyTorch's.
#[test]
fn builder_with_pth_weights_equals_pytorch() {
    let dir = common::fixture_dir("real_weights");
    for name in ["efficientnet_lite0", "mobilenet_v2"] {
        let bb = BackboneBuilder::new(name).build().unwrap();
        assert!(bb.info().weights.as_ref().unwrap().extension().unwrap() == "pth");
        let io = common::read_tensors(&dir.join(format!("{name}.io.safetensors")));
        for kind in ["random", "photo"] {
            let got = bb.logits(&io[&format!("{kind}_input")]).unwrap();
            common::assert_abs(&got, &io[&format!("{kind}_logits")], 1e-4, name);
        }
    }
}

/// A timm CNN through the builder (channels-last, headed) equals timm.
#[test]
fn builder_convnext_equals_timm() {
    let dir = common::fixture_dir("timm_cnn");
    let io = common::read_tensors(&dir.join("convnext_tiny.io.safetensors"));
    let x = &io["input"];
    let bb = BackboneBuilder::new("convnext_tiny")
        .weights_file(dir.join("convnext_tiny.safetensors"))
        .img_size(x.size()[2])
        .build()
        .unwrap();
    common::assert_rel(&bb.logits(x).unwrap(), &io["logits"], 1e-4, "convnext_tiny");
}

/// The batch norms folded into the convolutions in eval mode are recomputed
/// from the variables at each call: changing a running variance (what
/// fine-tuning does) changes the next embedding, and putting it back gives the
/// first one bit for bit.
#[test]
fn folded_batch_norms_follow_the_variables() {
    let bb = lite0();
    let s = bb.info().input_size;
    tch::manual_seed(1);
    let x = Tensor::randn([2, 3, s, s], (Kind::Float, tch::Device::Cpu));
    let before = bb.embed_tensor(&x).unwrap();
    let mut var = bb.var_store().variables()["_bn1.running_var"].shallow_clone();
    let saved = var.copy();
    tch::no_grad(|| {
        let _ = var.g_mul_scalar_(4.0);
    });
    let changed = bb.embed_tensor(&x).unwrap();
    let moved = (&changed - &before).abs().max().double_value(&[]);
    assert!(moved > 1e-3, "embedding moved by {moved}");
    tch::no_grad(|| var.copy_(&saved));
    let back = bb.embed_tensor(&x).unwrap();
    assert!(back.equal(&before));
}

/// An ensemble of two models' embeddings: unit rows whose cosines are the
/// mean of the parts' (worked out by hand), and typed errors naming the
/// part and row for parts of other records.
#[test]
fn ensemble_embeddings_average_the_cosines() {
    use ndarray::array;
    use reid_backbone::pipeline::{Embeddings, concat_embeddings};
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let a = Embeddings {
        ids: ids(&["x", "y", "z"]),
        matrix: array![[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]],
    };
    let b = Embeddings {
        ids: ids(&["x", "y", "z"]),
        matrix: array![[0.0, 0.0, 1.0], [0.0, 0.8, 0.6], [1.0, 0.0, 0.0]],
    };
    let e = concat_embeddings(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(e.ids, a.ids);
    assert_eq!(e.matrix.dim(), (3, 5));
    let cos = |i: usize, j: usize| e.matrix.row(i).dot(&e.matrix.row(j));
    for i in 0..3 {
        assert!((cos(i, i) - 1.0).abs() < 1e-6);
    }
    // x·y: (0 + 0.6) / 2; x·z: (0.6 + 0) / 2; y·z: (0.8 + 0) / 2.
    assert!((cos(0, 1) - 0.3).abs() < 1e-6);
    assert!((cos(0, 2) - 0.3).abs() < 1e-6);
    assert!((cos(1, 2) - 0.4).abs() < 1e-6);
    // One part: itself.
    assert_eq!(concat_embeddings(std::slice::from_ref(&a)).unwrap(), a);

    let err = concat_embeddings(&[]).unwrap_err().to_string();
    assert!(err.contains("at least one part"), "{err}");
    let swapped = Embeddings {
        ids: ids(&["x", "z", "y"]),
        ..b.clone()
    };
    let err = concat_embeddings(&[a.clone(), swapped])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("part 1, row 1") && err.contains("\"z\""),
        "{err}"
    );
    let short = Embeddings {
        ids: ids(&["x", "y"]),
        matrix: array![[1.0, 0.0], [0.0, 1.0]],
    };
    let err = concat_embeddings(&[a, short]).unwrap_err().to_string();
    assert!(err.contains("part 1") && err.contains("2 rows"), "{err}");
}
