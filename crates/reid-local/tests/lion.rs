//! Real photos: lion crops from the shared data set (`$ANIMAL_REID_SHARED`,
//! default `../shared` next to the workspace). Skipped, with a note, when
//! the data is not there.
//!
//! The set holds, per lion, crops of different parts of (often) the same
//! photograph: an ear crop and the portrait of the same lion share pixels,
//! so they match geometrically; the same part of another lion does not.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use reid_local::ParamGuard;
use reid_local::{FeatureCache, FeatureStore, LocalParams};

/// `(query, same lion, other lion)`; the identities are checked in lion.csv.
const TRIPLES: [(&str, &str, &str); 5] = [
    (
        "train/Kokoo/Kokoo_Left_Ear.png",
        "train/Kokoo/Kokoo_Portrait.png",
        "train/Joy/Joy_Portrait.png",
    ),
    (
        "train/Enkume/Enkume_Right_Ear.png",
        "train/Enkume/Enkume_Right_Face.png",
        "train/Ayo/Ayo_Right_Face.png",
    ),
    (
        "val/Autumn/Autumn_Left_ear.png",
        "val/Autumn/Autumn_Left_face.png",
        "val/Amber/Amber_Left_Face.png",
    ),
    (
        "val/Bibi/Bibi_Right_Ear.png",
        "val/Bibi/Bibi_Portrait.png",
        "val/Etana/Etana_Portrait.png",
    ),
    (
        "val/Etana/Etana_Right_Ear.png",
        "val/Etana/Etana_Portrait.png",
        "val/Bibi/Bibi_Portrait.png",
    ),
];

fn lion_root() -> Option<PathBuf> {
    let root = common::shared_dir().join("datasets/lion");
    if root.join("lion.csv").is_file() {
        Some(root)
    } else {
        eprintln!(
            "note: {} not found (set ANIMAL_REID_SHARED); skipping the lion test",
            root.join("lion.csv").display()
        );
        None
    }
}

#[test]
fn same_lion_crops_score_more_inliers_than_other_lions() {
    let Some(root) = lion_root() else {
        return;
    };
    // path -> identity, from the CSV (columns image_id,identity,path,...).
    let csv = std::fs::read_to_string(root.join("lion.csv")).unwrap();
    let identity: HashMap<&str, &str> = csv
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut c = l.split(',');
            let (_, id, path) = (c.next()?, c.next()?, c.next()?);
            Some((path, id))
        })
        .collect();
    let mut paths: Vec<&str> = TRIPLES.iter().flat_map(|t| [t.0, t.1, t.2]).collect();
    paths.sort_unstable();
    paths.dedup();
    for (q, same, other) in TRIPLES {
        assert_eq!(identity[q], identity[same], "{q} / {same}");
        assert_ne!(identity[q], identity[other], "{q} / {other}");
    }
    let index = |p: &str| paths.iter().position(|x| *x == p).unwrap();
    let files: Vec<PathBuf> = paths.iter().map(|p| root.join(p)).collect();

    let tmp = tempfile::tempdir().unwrap();
    let cache = FeatureCache::new(tmp.path()).unwrap();
    let params = LocalParams::default().check().unwrap();
    let store = FeatureStore::extract(&files, &params, Some(&cache)).unwrap();
    for f in store.features() {
        assert!(f.len() >= 50, "{} keypoints", f.len());
    }
    let pairs: Vec<(usize, usize)> = TRIPLES
        .iter()
        .flat_map(|t| [(index(t.0), index(t.1)), (index(t.0), index(t.2))])
        .collect();
    let scored = store.score_pairs(&pairs).unwrap();
    for (k, (q, same, other)) in TRIPLES.iter().enumerate() {
        let (s, o) = (&scored[2 * k], &scored[2 * k + 1]);
        eprintln!(
            "{q}: same lion {} inliers / {} matches, other lion {} / {}",
            s.inliers, s.matches, o.inliers, o.matches
        );
        assert!(s.inliers >= 15, "{q} vs {same}: {} inliers", s.inliers);
        assert!(
            s.inliers >= 2 * o.inliers.max(1),
            "{q}: {} (same) vs {} ({other})",
            s.inliers,
            o.inliers
        );
        assert!(s.inlier_ratio > 0.6, "{}", s.inlier_ratio);
    }
    // The second pass reads every image from the cache, with equal scores.
    let again = FeatureStore::extract(&files, &params, Some(&cache)).unwrap();
    assert!(
        again
            .cache_status()
            .iter()
            .all(|s| *s == reid_local::CacheStatus::Hit)
    );
    assert_eq!(again.score_pairs(&pairs).unwrap(), scored);
}
