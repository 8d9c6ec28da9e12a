//! The on-disk feature cache: round trips, damaged files, keys, and the
//! errors of missing and corrupt images.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use reid_local::ParamGuard;
use reid_local::cache::{CacheKey, FeatureCache, decode_features, encode_features};
use reid_local::{
    CacheStatus, Features, LocalError, LocalParams, extract_file, extract_image, read_features_file,
};

/// Every number of the features as bits, and the sizes.
type Bits = (Vec<u32>, Vec<u32>, (u32, u32), (u32, u32));

fn bits(f: &Features) -> Bits {
    let kp = f
        .keypoints()
        .iter()
        .flat_map(|k| {
            [k.x, k.y, k.sigma, k.angle, k.response]
                .map(f32::to_bits)
                .into_iter()
                .chain([k.octave as u32])
        })
        .collect();
    let d = f.descriptors().iter().map(|v| v.to_bits()).collect();
    (kp, d, f.scaled_size(), f.original_size())
}

fn write_png(dir: &Path, name: &str, seed: u64) -> std::path::PathBuf {
    let p = dir.join(name);
    common::texture(160, 120, seed, 50).save(&p).unwrap();
    p
}

fn only_cache_file(dir: &Path) -> std::path::PathBuf {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// A temporary folder with one seeded PNG, a cache inside it, and the
/// default parameters.
fn setup(
    seed: u64,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    FeatureCache,
    reid_local::ValidLocalParams,
) {
    let tmp = tempfile::tempdir().unwrap();
    let img = write_png(tmp.path(), "a.png", seed);
    let cache = FeatureCache::new(tmp.path().join("cache")).unwrap();
    (tmp, img, cache, LocalParams::default().check().unwrap())
}

#[test]
fn cache_round_trip_is_bit_identical_and_hits_the_second_time() {
    let (_dir, img, cache, params) = setup(1);

    let (f1, s1) = extract_file(&img, &params, Some(&cache)).unwrap();
    assert_eq!(s1, CacheStatus::Computed);
    assert!(f1.len() > 20, "{} keypoints", f1.len());
    let (f2, s2) = extract_file(&img, &params, Some(&cache)).unwrap();
    assert_eq!(s2, CacheStatus::Hit);
    assert_eq!(bits(&f1), bits(&f2));
    // Same as computing without a cache, and as from the decoded image.
    let (f3, s3) = extract_file(&img, &params, None).unwrap();
    assert_eq!(s3, CacheStatus::Uncached);
    assert_eq!(bits(&f1), bits(&f3));
    let decoded = image::open(&img).unwrap().to_rgb8();
    assert_eq!(
        bits(&f1),
        bits(&extract_image(&decoded, params.extract()).unwrap())
    );
    // One file, no temporary left behind.
    let file = only_cache_file(cache.dir());
    assert_eq!(file.extension().and_then(|e| e.to_str()), Some("rlf"));
    // Through the byte codec too.
    let key = CacheKey::new(&std::fs::read(&img).unwrap(), &params);
    assert_eq!(file, cache.path_for(&key));
    let bytes = encode_features(&key, &f1);
    assert_eq!(bytes, std::fs::read(&file).unwrap());
    assert_eq!(
        bits(&decode_features(&bytes, &file, Some(&key)).unwrap()),
        bits(&f1)
    );
}

#[test]
fn damaged_cache_files_are_typed_errors_and_are_recomputed() {
    let (_dir, img, cache, params) = setup(2);
    let (good, _) = extract_file(&img, &params, Some(&cache)).unwrap();
    let file = only_cache_file(cache.dir());
    let intact = std::fs::read(&file).unwrap();
    let key = CacheKey::new(&std::fs::read(&img).unwrap(), &params);

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", intact[..intact.len() - 100].to_vec()),
        ("header only", intact[..40].to_vec()),
        ("empty", Vec::new()),
        ("garbage", b"definitely not features".to_vec()),
    ];
    let mut flipped = intact.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    cases.push(("bit flip", flipped));
    let mut version = intact.clone();
    version[8..12].copy_from_slice(&99u32.to_le_bytes());
    cases.push(("other version", version));

    for (what, bytes) in cases {
        std::fs::write(&file, &bytes).unwrap();
        let e = read_features_file(&file, Some(&key)).unwrap_err();
        match what {
            "other version" => assert!(
                matches!(
                    e,
                    LocalError::CacheVersion {
                        found: 99,
                        expected: 1,
                        ..
                    }
                ),
                "{what}: {e}"
            ),
            _ => assert!(matches!(e, LocalError::CacheCorrupt { .. }), "{what}: {e}"),
        }
        assert!(
            e.to_string().contains(&key.hex()),
            "{what}: error names the file: {e}"
        );
        assert!(cache.load(&key).is_err());
        // extract_file recomputes and repairs the file.
        let (f, s) = extract_file(&img, &params, Some(&cache)).unwrap();
        assert!(matches!(s, CacheStatus::Recomputed { .. }), "{what}: {s:?}");
        assert_eq!(bits(&f), bits(&good), "{what}");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            intact,
            "{what}: file repaired"
        );
        assert_eq!(
            extract_file(&img, &params, Some(&cache)).unwrap().1,
            CacheStatus::Hit
        );
    }
}

#[test]
fn keys_depend_on_image_bytes_and_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let a = std::fs::read(write_png(tmp.path(), "a.png", 3)).unwrap();
    let b = std::fs::read(write_png(tmp.path(), "b.png", 4)).unwrap();
    let p = LocalParams::default();
    let vp = p.check().unwrap();
    assert_eq!(CacheKey::new(&a, &vp), CacheKey::new(&a, &vp));
    assert_ne!(CacheKey::new(&a, &vp), CacheKey::new(&b, &vp));
    let mut q = p;
    q.extract.max_keypoints = 500;
    assert_ne!(
        CacheKey::new(&a, &vp),
        CacheKey::new(&a, &q.check().unwrap())
    );
    // Matching and RANSAC settings do not change the features.
    let mut r = p;
    r.matching.ratio = 0.7;
    r.ransac.inlier_threshold = 3.0;
    assert_eq!(
        CacheKey::new(&a, &vp),
        CacheKey::new(&a, &r.check().unwrap())
    );

    // A valid file under another key is refused by name.
    let cache = FeatureCache::new(tmp.path().join("c")).unwrap();
    let ka = CacheKey::new(&a, &vp);
    let kb = CacheKey::new(&b, &vp);
    let f = extract_image(
        &image::load_from_memory(&a).unwrap().to_rgb8(),
        vp.extract(),
    )
    .unwrap();
    cache.store(&ka, &f).unwrap();
    std::fs::copy(cache.path_for(&ka), cache.path_for(&kb)).unwrap();
    assert!(matches!(
        cache.load(&kb),
        Err(LocalError::CacheKeyMismatch { .. })
    ));
    assert!(cache.load(&ka).unwrap().is_some());
    assert!(cache.load(&CacheKey([7; 32])).unwrap().is_none());
}

#[test]
fn missing_and_corrupt_images_are_typed_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let params = LocalParams::default().check().unwrap();
    let missing = tmp.path().join("nope.jpg");
    let e = extract_file(&missing, &params, None).unwrap_err();
    match &e {
        LocalError::Io { path, source } => {
            assert_eq!(path, &missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other}"),
    }
    // A PNG cut in half, and bytes that are no image at all.
    let good = std::fs::read(write_png(tmp.path(), "g.png", 5)).unwrap();
    let cut = tmp.path().join("cut.png");
    std::fs::write(&cut, &good[..good.len() / 2]).unwrap();
    let junk = tmp.path().join("junk.jpg");
    std::fs::write(&junk, b"hello, not an image").unwrap();
    let empty = tmp.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let cache = FeatureCache::new(tmp.path().join("cache")).unwrap();
    for p in [&cut, &junk, &empty] {
        let e = extract_file(p, &params, Some(&cache)).unwrap_err();
        assert!(matches!(e, LocalError::Decode(_)), "{e}");
        assert!(
            e.to_string()
                .contains(p.file_name().unwrap().to_str().unwrap()),
            "{e}"
        );
    }
    // Nothing was cached for them.
    assert_eq!(std::fs::read_dir(cache.dir()).unwrap().count(), 0);
}

/// Features assembled from parts (what a cache or another extractor holds):
/// the builder checks the descriptor shape and every number, by name.
#[test]
fn features_builder_checks_its_parts() {
    let kp = reid_local::Keypoint {
        x: 10.0,
        y: 20.0,
        sigma: 2.0,
        angle: 1.0,
        response: 0.05,
        octave: 0,
    };
    let f = Features::builder((100, 80), vec![kp, kp], vec![0.25; 256])
        .build()
        .unwrap();
    assert_eq!((f.len(), f.dim()), (2, reid_local::DESCRIPTOR_LEN));
    assert_eq!((f.scaled_size(), f.original_size()), ((100, 80), (100, 80)));
    let f = Features::builder((100, 80), vec![kp], vec![1.0; 8])
        .dim(8)
        .original_size((400, 320))
        .build()
        .unwrap();
    assert_eq!(
        (f.scale(), f.descriptor(0)),
        ((0.25, 0.25), Some(&[1.0; 8][..]))
    );

    let e = Features::builder((100, 80), vec![kp], vec![1.0; 8])
        .build()
        .unwrap_err();
    assert!(
        matches!(
            &e,
            LocalError::Shape {
                what: "descriptors",
                ..
            }
        ),
        "{e}"
    );
    let e = Features::builder((100, 80), vec![], vec![])
        .dim(0)
        .build()
        .unwrap_err();
    assert!(
        matches!(&e, LocalError::InvalidParam { name: "dim", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("got 0"), "{e}");
    let bad = reid_local::Keypoint {
        sigma: f32::NAN,
        ..kp
    };
    let e = Features::builder((100, 80), vec![kp, bad], vec![0.0; 8])
        .dim(4)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            LocalError::NonFinite {
                what: "keypoints",
                index: 1
            }
        ),
        "{e}"
    );
    let mut d = vec![0.0; 8];
    d[5] = f32::INFINITY;
    let e = Features::builder((100, 80), vec![kp, kp], d)
        .dim(4)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            LocalError::NonFinite {
                what: "descriptors",
                index: 5
            }
        ),
        "{e}"
    );
}
