//! TorchScript backbones: traced PyTorch models give PyTorch's outputs
//! (fixtures from `scripts/fixtures/state_dicts.py`, which also runs
//! `scripts/export_model.py` offline on timm's `test_vit`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use reid_backbone::BackboneError;
use reid_backbone::state_dict;
use reid_backbone::torchscript::{ExportSidecar, TorchScriptModel};
use tch::{Device, Kind, Tensor};

fn fixtures() -> PathBuf {
    common::fixture_dir("state_dicts")
}

#[test]
fn tensor_tuple_and_dict_outputs_match_pytorch() {
    let io = common::read_tensors(&fixtures().join("tiny_io.safetensors"));
    for name in ["tensor", "tuple", "dict"] {
        let model = TorchScriptModel::load(fixtures().join(format!("tiny_{name}.pt")), Device::Cpu)
            .unwrap();
        let got = model.embed(&io["input"]).unwrap();
        assert_eq!(got.size(), [2, 6], "{name}");
        common::assert_abs(&got, &io[&format!("output_{name}")], 1e-5, name);
    }
}

#[test]
fn feature_map_output_is_rejected() {
    let io = common::read_tensors(&fixtures().join("tiny_io.safetensors"));
    let path = fixtures().join("tiny_map.pt");
    let model = TorchScriptModel::load(&path, Device::Cpu).unwrap();
    match model.embed(&io["input"]).unwrap_err() {
        BackboneError::ModelOutput { model, reason } => {
            assert_eq!(model, path.display().to_string());
            assert!(reason.contains("[2, 8, 20, 24]"), "{reason}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let model = TorchScriptModel::load(fixtures().join("tiny_tensor.pt"), Device::Cpu).unwrap();
    for x in [
        Tensor::zeros([2, 4, 8, 8], (Kind::Float, Device::Cpu)),
        Tensor::zeros([3, 8, 8], (Kind::Float, Device::Cpu)),
        Tensor::zeros([1, 3, 8, 8], (Kind::Uint8, Device::Cpu)),
    ] {
        match model.embed(&x).unwrap_err() {
            BackboneError::InputShape { shape, .. } => assert_eq!(shape, x.size()),
            other => panic!("{other}"),
        }
    }
}

#[test]
fn missing_and_damaged_files_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.pt");
    assert!(matches!(
        TorchScriptModel::load(&missing, Device::Cpu).unwrap_err(),
        BackboneError::Io { .. }
    ));
    let bytes = std::fs::read(fixtures().join("tiny_tensor.pt")).unwrap();
    let legacy = std::fs::read(fixtures().join("legacy.pth")).unwrap();
    let n = bytes.len();
    // Each says what is wrong with the user's file, not libtorch's internals.
    let zipped = std::fs::read(fixtures().join("zip.pth")).unwrap();
    for (name, data, says) in [
        ("half.pt", &bytes[..n / 2], "damaged or truncated"),
        ("head.pt", &bytes[..100], "damaged or truncated"),
        ("tail.pt", &bytes[..n - 30], "damaged or truncated"),
        ("text.pt", b"not a model".as_slice(), "not a zip archive"),
        ("empty.pt", b"".as_slice(), "the file is empty"),
        ("state_dict.pt", legacy.as_slice(), "legacy torch.save"),
        ("zip_state_dict.pt", zipped.as_slice(), "torch.save archive"),
    ] {
        let p = tmp.path().join(name);
        std::fs::write(&p, data).unwrap();
        match TorchScriptModel::load(&p, Device::Cpu).unwrap_err() {
            BackboneError::BadWeightsFile { path, reason } => {
                assert_eq!(path, p);
                assert!(reason.contains(says), "{name}: {reason}");
                assert!(!reason.contains("Internal torch error"), "{reason}");
            }
            other => panic!("{name}: {other}"),
        }
    }
}

#[test]
fn export_script_torchscript_and_safetensors_round_trip() {
    let dir = fixtures();
    let io = common::read_tensors(&dir.join("export_io.safetensors"));
    let model = TorchScriptModel::load(dir.join("export_test_vit.pt"), Device::Cpu).unwrap();
    let side = model.sidecar().unwrap().unwrap();
    assert_eq!(
        side,
        ExportSidecar::read(dir.join("export_test_vit.json")).unwrap()
    );
    assert_eq!(side.model, "test_vit");
    assert_eq!(side.input_size, [3, 160, 160]);
    assert_eq!(
        side.files,
        ["export_test_vit.safetensors", "export_test_vit.pt"]
    );
    let got = model.embed(&io["input"]).unwrap();
    assert_eq!(got.size(), [3, side.embedding_dim]);
    common::assert_rel(&got, &io["output"], 1e-5, "traced test_vit");
    // The safetensors file keeps timm's key names and order of state_dict().
    let keys: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("export_keys.json")).unwrap())
            .unwrap();
    let mut got: Vec<String> = state_dict::read(dir.join("export_test_vit.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut keys_sorted = keys.clone();
    got.sort();
    keys_sorted.sort();
    assert_eq!(got, keys_sorted);
}
