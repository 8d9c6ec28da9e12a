//! State-dict reading (legacy and zip `torch.save`, safetensors) and loading
//! into a `VarStore`, checked against what `torch.load` reads
//! (fixtures from `scripts/fixtures/state_dicts.py`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use reid_backbone::BackboneError;
use reid_backbone::state_dict::{self, FileFormat, Loader, ReadOptions, SubDict};
use reid_backbone::weights::Pretrained;
use tch::{Device, Kind, Tensor, nn};

fn fixtures() -> PathBuf {
    common::fixture_dir("state_dicts")
}

fn expected_json() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["entries"].as_array().unwrap().clone()
}

fn kind_of(dtype: &str) -> Kind {
    match dtype {
        "float32" => Kind::Float,
        "float16" => Kind::Half,
        "bfloat16" => Kind::BFloat16,
        "float64" => Kind::Double,
        "int64" => Kind::Int64,
        "int32" => Kind::Int,
        "uint8" => Kind::Uint8,
        "bool" => Kind::Bool,
        other => panic!("dtype {other}"),
    }
}

fn ints(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// Checks keys (in order for pickles), kinds, shapes and exact values;
/// strides too when `strided` (pickles keep torch's views).
fn check_small(got: &[(String, Tensor)], strided: bool, what: &str) {
    let want = common::read_tensors(&fixtures().join("expected.safetensors"));
    let entries = expected_json();
    let mut keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    let mut want_keys: Vec<&str> = entries.iter().map(|e| e["key"].as_str().unwrap()).collect();
    if !strided {
        // safetensors files keep the writer's order (Python's sorts by dtype, then name).
        keys.sort_unstable();
        want_keys.sort_unstable();
    }
    assert_eq!(keys, want_keys, "{what}: keys");
    for (key, t) in got {
        let e = entries.iter().find(|e| e["key"] == key.as_str()).unwrap();
        assert_eq!(
            t.kind(),
            kind_of(e["dtype"].as_str().unwrap()),
            "{what}: {key} kind"
        );
        assert_eq!(t.size(), ints(&e["shape"]), "{what}: {key} shape");
        assert_eq!(t.device(), Device::Cpu);
        if strided {
            assert_eq!(t.stride(), ints(&e["stride"]), "{what}: {key} stride");
        }
        let w = &want[key];
        assert!(t.equal(w), "{what}: {key} values differ: {t} vs {w}");
    }
}

#[test]
fn reads_legacy_zip_odd_prefix_and_safetensors_exactly() {
    let dir = fixtures();
    for (file, format, strided) in [
        ("legacy.pth", FileFormat::TorchLegacy, true),
        ("zip.pth", FileFormat::TorchZip, true),
        ("odd-prefix.v2.pth", FileFormat::TorchZip, true),
        ("state.safetensors", FileFormat::Safetensors, false),
    ] {
        let path = dir.join(file);
        assert_eq!(state_dict::detect_format(&path).unwrap(), format, "{file}");
        let got = state_dict::read(&path).unwrap();
        check_small(&got, strided, file);
    }
}

#[test]
fn views_share_storage_like_torch() {
    let entries = expected_json();
    let offset = |key: &str| {
        entries.iter().find(|e| e["key"] == key).unwrap()["storage_offset"]
            .as_i64()
            .unwrap()
    };
    for file in ["legacy.pth", "zip.pth"] {
        let by: HashMap<_, _> = state_dict::read(fixtures().join(file))
            .unwrap()
            .into_iter()
            .collect();
        // shared_a and shared_b view one storage, as in torch.load.
        let (a, b) = (&by["extra.shared_a"], &by["extra.shared_b"]);
        let bytes = b.data_ptr() as i64 - a.data_ptr() as i64;
        assert_eq!(
            bytes,
            4 * (offset("extra.shared_b") - offset("extra.shared_a")),
            "{file}"
        );
        assert!(!by["extra.transposed"].is_contiguous(), "{file}");
        assert!(!by["extra.sliced"].is_contiguous(), "{file}");
    }
}

#[test]
fn nested_checkpoints_and_module_prefix() {
    let dir = fixtures();
    for file in ["nested_legacy.pth", "nested_zip.pth"] {
        let path = dir.join(file);
        let raw = state_dict::read(&path).unwrap();
        assert!(raw.iter().all(|(k, _)| k.starts_with("module.")), "{file}");
        let opts = ReadOptions::default().strip_prefix("module.");
        check_small(&state_dict::read_with(&path, &opts).unwrap(), true, file);
        let opts = ReadOptions::default()
            .sub_dict("state_dict")
            .strip_prefix("module.");
        check_small(&state_dict::read_with(&path, &opts).unwrap(), true, file);
        // The root holds numbers and dicts but no tensors.
        let root = ReadOptions {
            sub_dict: SubDict::Root,
            strip_prefix: None,
        };
        assert!(state_dict::read_with(&path, &root).unwrap().is_empty());
        let err =
            state_dict::read_with(&path, &ReadOptions::default().sub_dict("model")).unwrap_err();
        match err {
            BackboneError::NoStateDict {
                path: p,
                key,
                available,
            } => {
                assert_eq!(p, path);
                assert!(key.contains("model"), "{key}");
                assert_eq!(available, "epoch, lr, meta, state_dict");
            }
            other => panic!("{file}: {other}"),
        }
    }
}

#[test]
fn skips_unknown_objects_outside_the_state_dict() {
    // {"args": argparse.Namespace(...), "state_dict": ...}: Namespace is never built.
    let got = state_dict::read(fixtures().join("with_args.pth")).unwrap();
    check_small(&got, true, "with_args.pth");
}

#[test]
fn refuses_globals_outside_the_allow_list() {
    for file in ["evil_root.pth", "evil_inside.pth"] {
        let path = fixtures().join(file);
        match state_dict::read(&path).unwrap_err() {
            BackboneError::UnsupportedGlobal { path: p, global } => {
                assert_eq!(p, path);
                // os.system pickles as posix.system on Linux.
                assert!(global.ends_with(".system"), "{file}: {global}");
            }
            other => panic!("{file}: {other}"),
        }
    }
}

fn real_json() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("real_weights.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn reads_the_four_real_legacy_weight_files() {
    let real = real_json();
    for w in Pretrained::ALL {
        let path = Pretrained::from_name(w.name()).unwrap().locate().unwrap();
        assert_eq!(
            state_dict::detect_format(&path).unwrap(),
            FileFormat::TorchLegacy
        );
        let want = &real[w.file_name()];
        let got = state_dict::read(&path).unwrap();
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        let want_keys: Vec<&str> = want["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(keys.len(), want_keys.len(), "{}: key count", w.name());
        assert_eq!(keys, want_keys, "{}: key order", w.name());
        let mut abs_sum = 0.0;
        for (k, t) in &got {
            assert_eq!(t.size(), ints(&want["shapes"][k]), "{k}");
            assert_eq!(
                t.kind(),
                kind_of(want["dtypes"][k].as_str().unwrap()),
                "{k}"
            );
            abs_sum += t
                .to_kind(Kind::Double)
                .abs()
                .sum(Kind::Double)
                .double_value(&[]);
        }
        for (k, s) in want["sums"].as_object().unwrap() {
            let t = &got.iter().find(|(n, _)| n == k).unwrap().1;
            let sum = t.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
            let s = s.as_f64().unwrap();
            assert!(
                (sum - s).abs() <= 1e-9 * s.abs().max(1.0),
                "{}: {k} sum {sum} vs {s}",
                w.name()
            );
        }
        let s = want["abs_sum_all"].as_f64().unwrap();
        assert!(
            (abs_sum - s).abs() <= 1e-9 * s,
            "{}: |sum| {abs_sum} vs {s}",
            w.name()
        );
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn truncated_and_damaged_files_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for file in [
        "legacy.pth",
        "zip.pth",
        "nested_legacy.pth",
        "state.safetensors",
    ] {
        let bytes = std::fs::read(fixtures().join(file)).unwrap();
        let n = bytes.len();
        // Every truncation must fail, naming the file.
        let mut cuts: Vec<usize> = (0..n).step_by(n / 60 + 1).collect();
        cuts.extend([1, 2, 8, 9, 16, n / 2, n - 8, n - 2, n - 1]);
        for cut in cuts {
            let p = write(tmp.path(), &format!("cut-{cut}-{file}"), &bytes[..cut]);
            let err = state_dict::read(&p).expect_err(&format!("{file} cut at {cut} read"));
            assert!(err.to_string().contains(&p.display().to_string()), "{err}");
        }
        // Flipped bytes: an error or a (wrong) state dict, never a panic or abort.
        for i in 0..150 {
            let mut damaged = bytes.clone();
            for _ in 0..1 + (i % 3) {
                let at = (next() % n as u64) as usize;
                damaged[at] ^= 1 << (next() % 8);
            }
            let p = write(tmp.path(), &format!("flip-{i}-{file}"), &damaged);
            if let Err(e) = state_dict::read(&p) {
                assert!(e.to_string().contains(&p.display().to_string()), "{e}");
            }
        }
    }
}

#[test]
fn unknown_empty_missing_and_torchscript_files() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("text.pth", b"hello, world\n".as_slice()),
        ("empty.pth", b"".as_slice()),
        ("pickle.pkl", b"\x80\x02K\x05.".as_slice()),
    ] {
        let p = write(tmp.path(), name, bytes);
        match state_dict::read(&p).unwrap_err() {
            BackboneError::BadWeightsFile { path, .. } => assert_eq!(path, p),
            other => panic!("{name}: {other}"),
        }
    }
    let missing = tmp.path().join("nope.pth");
    assert!(matches!(
        state_dict::read(&missing).unwrap_err(),
        BackboneError::Io { .. }
    ));
    match state_dict::read(fixtures().join("tiny_tensor.pt")).unwrap_err() {
        BackboneError::BadWeightsFile { reason, .. } => {
            assert!(reason.contains("TorchScript"), "{reason}")
        }
        other => panic!("{other}"),
    }
}

/// Variables named like `Small` of the fixture script (no num_batches_tracked).
fn small_model(vs: &nn::VarStore, fc_out: i64) {
    let root = vs.root();
    let _ = nn::conv2d(&root / "conv", 3, 4, 3, Default::default());
    let _ = nn::batch_norm2d(&root / "bn", 4, Default::default());
    let _ = nn::linear(&root / "fc", 4, fc_out, Default::default());
}

fn var(vs: &nn::VarStore, name: &str) -> Tensor {
    vs.variables()[name].shallow_clone()
}

#[test]
fn loads_into_a_var_store_and_reports() {
    let want = common::read_tensors(&fixtures().join("expected.safetensors"));
    let tensors = state_dict::read(fixtures().join("zip.pth")).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    small_model(&vs, 5);
    let report = Loader::new().load(&vs, tensors).unwrap();
    assert_eq!(report.loaded, 8);
    assert!(report.missing.is_empty(), "{:?}", report.missing);
    assert!(report.shape_mismatch.is_empty());
    let extras: Vec<String> = expected_json()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .filter(|k| k.starts_with("extra."))
        .collect();
    assert_eq!(
        report.unexpected, extras,
        "num_batches_tracked is not reported"
    );
    for name in [
        "conv.weight",
        "conv.bias",
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(var(&vs, name).equal(&want[name]), "{name}");
    }
}

#[test]
fn strict_mode_lists_every_difference() {
    let tensors = state_dict::read(fixtures().join("legacy.pth")).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    small_model(&vs, 3); // fc is [3, 4], the file has [5, 4]
    let _ = vs.root().zeros("head", &[2]);
    let before = var(&vs, "conv.weight").copy();
    match Loader::new().strict(true).load(&vs, tensors).unwrap_err() {
        BackboneError::StateDictMismatch {
            missing,
            unexpected,
            shape_mismatch,
        } => {
            assert_eq!(missing, vec!["head".to_string()]);
            let extras = expected_json()
                .iter()
                .filter(|e| e["key"].as_str().unwrap().starts_with("extra."))
                .count();
            assert_eq!(unexpected.len(), extras);
            assert!(unexpected.iter().all(|k| k.starts_with("extra.")));
            let names: Vec<_> = shape_mismatch.iter().map(|m| m.name.as_str()).collect();
            assert_eq!(names, ["fc.weight", "fc.bias"]);
            assert_eq!(shape_mismatch[0].expected, [3, 4]);
            assert_eq!(shape_mismatch[0].got, [5, 4]);
        }
        other => panic!("{other}"),
    }
    assert!(
        var(&vs, "conv.weight").equal(&before),
        "strict failure copies nothing"
    );
}

#[test]
fn key_map_transform_and_kind_conversion() {
    let want = common::read_tensors(&fixtures().join("expected.safetensors"));
    let tensors = state_dict::read(fixtures().join("nested_legacy.pth")).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let _ = nn::conv2d(&root / "body" / "conv", 3, 4, 3, Default::default());
    let fc_t = root.zeros("fc_t", &[4, 5]); // fc.weight transposed
    let half_as_float = (&root / "extra").zeros("half", &[2, 3]);
    let report = Loader::new()
        .strict(true)
        .map_keys(|k| {
            let k = k.strip_prefix("module.")?;
            match k {
                "conv.weight" | "conv.bias" => Some(format!("body.{k}")),
                "fc.weight" => Some("fc_t".to_string()),
                "extra.half" => Some(k.to_string()),
                _ => None,
            }
        })
        .transform(|name, t, shape| (name == "fc_t" && t.size() != shape).then(|| t.tr()))
        .load(&vs, tensors)
        .unwrap();
    assert_eq!(report.loaded, 4);
    assert!(report.is_complete());
    assert!(var(&vs, "body.conv.weight").equal(&want["conv.weight"]));
    assert!(fc_t.equal(&want["fc.weight"].tr()));
    assert_eq!(half_as_float.kind(), Kind::Float);
    assert!(half_as_float.equal(&want["extra.half"].to_kind(Kind::Float)));
}

/// A pickle can build a dict that holds itself (a memo reference inside the
/// dict being filled). Found by fuzzing: describing one in an error message
/// recursed until the stack overflowed. Now a typed error.
#[test]
fn a_self_referencing_pickle_is_a_typed_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    // Legacy torch.save: the magic number, then a "protocol" pickle that is
    // {"a": <itself>} instead of 1001.
    let mut bytes = vec![0x80, 0x02, 0x8a, 0x0a];
    bytes.extend(0x1950_a86a_20f9_469c_fc6c_u128.to_le_bytes()[..10].iter());
    bytes.push(b'.');
    bytes.extend(b"\x80\x02}q\x00(X\x01\x00\x00\x00ah\x00u.");
    let p = dir.path().join("cycle.pth");
    std::fs::write(&p, &bytes).unwrap();
    let e = state_dict::read(&p).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("cycle.pth") && msg.contains("dict of 1"),
        "{msg}"
    );
    // The fuzzer's own inputs, when this checkout has them.
    let found =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/out/afl/state_dict/default/crashes");
    if let Ok(entries) = std::fs::read_dir(found) {
        for e in entries.flatten().filter(|e| e.file_name() != "README.txt") {
            assert!(
                state_dict::read(e.path()).is_err(),
                "{}",
                e.path().display()
            );
        }
    }
}
