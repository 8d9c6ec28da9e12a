//! The feature store and the pair scorer, driven by a fake extractor and a
//! fake matcher whose outputs are known by construction (no weights).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::path::PathBuf;

use image::{Rgb, RgbImage};
use reid_glue::scorer::pair_score;
use reid_glue::{
    Extractor, GlueError, GlueScorer, GlueStore, Keypoints, PairMatcher, PairMatches, PairScore,
    ParamGuard, ScoreParams, StoreParams,
};
use reid_local::{CacheStatus, FeatureCache, Features, Keypoint};
use reid_openset::PairScorer;
use tch::{Device, Kind, Tensor};

/// One keypoint per image at the brightest pixel's... simpler: at (1, 2),
/// with score = the image's mean red value and a 2-d descriptor
/// (mean red, mean green) normalised; counts its calls and batch sizes.
struct Fake {
    batches: RefCell<Vec<(i64, i64, i64)>>,
}

impl Extractor for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn key_bytes(&self) -> Vec<u8> {
        vec![1]
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn extract_batch(&self, images: &Tensor) -> reid_glue::Result<Vec<Keypoints>> {
        let s = images.size();
        self.batches.borrow_mut().push((s[0], s[2], s[3]));
        let mean = images.mean_dim([2i64, 3].as_slice(), false, Kind::Float); // [B, 3]
        (0..s[0])
            .map(|b| {
                let m = mean.get(b);
                let red = m.double_value(&[0]) as f32;
                let green = m.double_value(&[1]) as f32;
                let n = (red * red + green * green).sqrt().max(1e-6);
                Ok(Keypoints {
                    keypoints: Tensor::from_slice(&[1.0f32, 2.0]).view([1, 2]),
                    scores: Tensor::from_slice(&[red]),
                    descriptors: Tensor::from_slice(&[red / n, green / n]).view([1, 2]),
                })
            })
            .collect()
    }
}

fn write(dir: &std::path::Path, name: &str, w: u32, h: u32, rgb: [u8; 3]) -> PathBuf {
    let p = dir.join(name);
    RgbImage::from_pixel(w, h, Rgb(rgb)).save(&p).unwrap();
    p
}

#[test]
fn store_extracts_by_size_caches_and_names_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let paths = vec![
        write(dir.path(), "a.png", 64, 48, [255, 0, 0]),
        write(dir.path(), "b.png", 64, 48, [0, 255, 0]),
        write(dir.path(), "c.png", 1000, 500, [51, 102, 0]),
        write(dir.path(), "d.png", 64, 48, [102, 0, 0]),
    ];
    let cache = FeatureCache::new(dir.path().join("cache")).unwrap();
    let fake = Fake {
        batches: RefCell::new(Vec::new()),
    };
    let params = StoreParams::default()
        .max_side(200)
        .batch_size(2)
        .check()
        .unwrap();
    let mut seen = Vec::new();
    let store = GlueStore::extract(&paths, &fake, &params, Some(&cache), |d, t| {
        seen.push((d, t))
    })
    .unwrap();
    assert_eq!(store.len(), 4);
    assert_eq!(seen.last(), Some(&(4, 4)));
    // Three 64x48 images in batches of 2 (2 + 1), and the 1000x500 one
    // downscaled to 200x100, alone.
    let mut b = fake.batches.borrow().clone();
    b.sort();
    assert_eq!(b, vec![(1, 48, 64), (1, 100, 200), (2, 48, 64)]);
    let f = store.features();
    assert_eq!(f[2].scaled_size(), (200, 100));
    assert_eq!(f[2].original_size(), (1000, 500));
    assert_eq!(f[0].dim(), 2);
    assert!((f[0].keypoints()[0].response - 1.0).abs() < 1e-6);
    assert!((f[3].keypoints()[0].response - 0.4).abs() < 1e-6);
    assert!((f[2].descriptor(0).unwrap()[0] - 0.2 / (0.2f32.hypot(0.4))).abs() < 1e-5);
    assert!(
        store
            .cache_status()
            .iter()
            .all(|s| *s == CacheStatus::Computed)
    );

    // A second run reads every image back: no network call.
    fake.batches.borrow_mut().clear();
    let again = GlueStore::extract(&paths, &fake, &params, Some(&cache), |_, _| {}).unwrap();
    assert!(fake.batches.borrow().is_empty());
    assert!(again.cache_status().iter().all(|s| *s == CacheStatus::Hit));
    assert_eq!(again.features(), store.features());
    // Other settings are other keys.
    let other = StoreParams::default().max_side(100).check().unwrap();
    let third = GlueStore::extract(&paths, &fake, &other, Some(&cache), |_, _| {}).unwrap();
    assert!(
        third
            .cache_status()
            .iter()
            .all(|s| *s == CacheStatus::Computed)
    );
    assert_eq!(third.features()[2].scaled_size(), (100, 50));

    // Damaged cache files are recomputed, and say why.
    for e in std::fs::read_dir(dir.path().join("cache")).unwrap() {
        std::fs::write(e.unwrap().path(), b"not a feature file").unwrap();
    }
    let fourth = GlueStore::extract(&paths, &fake, &params, Some(&cache), |_, _| {}).unwrap();
    assert!(
        fourth
            .cache_status()
            .iter()
            .all(|s| matches!(s, CacheStatus::Recomputed { .. }))
    );
    assert_eq!(fourth.features(), store.features());

    // A missing file and a truncated PNG are errors naming the file.
    let truncated = dir.path().join("t.png");
    let bytes = std::fs::read(&paths[0]).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    for bad in [dir.path().join("missing.png"), truncated] {
        let err = GlueStore::extract(std::slice::from_ref(&bad), &fake, &params, None, |_, _| {})
            .unwrap_err();
        let name = bad.file_name().unwrap().to_string_lossy().into_owned();
        assert!(err.to_string().contains(&name), "{err}");
    }
    // Settings out of range are refused, naming the setting.
    for (p, name) in [
        (StoreParams::default().max_side(8), "max_side"),
        (StoreParams::default().batch_size(0), "batch_size"),
    ] {
        assert!(matches!(p.check(), Err(GlueError::InvalidParam { name: n, .. }) if n == name));
    }
}

fn features(points: &[(f32, f32)]) -> Features {
    let kps: Vec<Keypoint> = points
        .iter()
        .map(|&(x, y)| Keypoint {
            x,
            y,
            sigma: 1.0,
            angle: 0.0,
            response: 1.0,
            octave: 0,
        })
        .collect();
    let n = kps.len();
    Features::builder((100, 100), kps, vec![1.0; n])
        .dim(1)
        .build()
        .unwrap()
}

/// Matches keypoint i of the query with keypoint i of the other for
/// i < (number of keypoints the other has), with confidence 0.9 for even
/// i and 0.3 for odd i; records the batch sizes.
struct Diagonal {
    calls: RefCell<Vec<usize>>,
}

impl PairMatcher for Diagonal {
    fn name(&self) -> &str {
        "diagonal"
    }
    fn match_one_to_many(
        &self,
        query: &Features,
        others: &[&Features],
    ) -> reid_glue::Result<Vec<PairMatches>> {
        self.calls.borrow_mut().push(others.len());
        Ok(others
            .iter()
            .map(|o| {
                (0..query.len().min(o.len()))
                    .map(|i| (i, i, if i % 2 == 0 { 0.9 } else { 0.3 }))
                    .collect()
            })
            .collect())
    }
}

#[test]
fn scorer_counts_confident_matches_in_batches_and_remembers() {
    let q = vec![features(&[(0.0, 0.0); 10])];
    let g: Vec<Features> = [2usize, 5, 10, 0]
        .iter()
        .map(|&n| features(&vec![(0.0, 0.0); n]))
        .collect();
    let m = Diagonal {
        calls: RefCell::new(Vec::new()),
    };
    let params = ScoreParams::default().batch_size(3).check().unwrap();
    let s = GlueScorer::new(&m, &q, &g, params);
    // Even indices below the gallery image's count are above 0.5.
    let got = s.score_many(&[(0, 0), (0, 1), (0, 2), (0, 3)]).unwrap();
    assert_eq!(got, vec![1.0, 3.0, 5.0, 0.0]);
    assert_eq!(*m.calls.borrow(), vec![3, 1]);
    // Remembered: no new matcher call; order of the request is kept.
    assert_eq!(s.score_many(&[(0, 2), (0, 0)]).unwrap(), vec![5.0, 1.0]);
    assert_eq!(m.calls.borrow().len(), 2);
    assert_eq!(s.known_pairs(), 4);
    assert_eq!(s.score(0, 1).unwrap(), 3.0);
    // A threshold below 0.3 counts every match.
    let all = GlueScorer::new(
        &m,
        &q,
        &g,
        ScoreParams::default().min_confidence(0.2).check().unwrap(),
    );
    assert_eq!(all.score(0, 2).unwrap(), 10.0);
    // Out-of-range pairs name the pair and its index.
    let (i, e) = s.score_many(&[(0, 0), (0, 9)]).unwrap_err();
    assert_eq!(i, 1);
    assert!(e.contains("(0, 9)"), "{e}");
    assert!(ScoreParams::default().min_confidence(1.0).check().is_err());
    assert!(ScoreParams::default().batch_size(0).check().is_err());
}

#[test]
fn inliers_keep_the_matches_a_shift_explains() {
    // 12 points shifted by (5, -3), then 4 of them moved far away.
    let a: Vec<(f32, f32)> = (0..12)
        .map(|i| ((i * 7 % 50) as f32 + 10.0, (i * 13 % 40) as f32 + 20.0))
        .collect();
    let mut b: Vec<(f32, f32)> = a.iter().map(|&(x, y)| (x + 5.0, y - 3.0)).collect();
    for (k, p) in b.iter_mut().enumerate().take(4) {
        *p = (90.0 - 9.0 * k as f32, 5.0 + 17.0 * k as f32);
    }
    let (fa, fb) = (features(&a), features(&b));
    let matches: PairMatches = (0..12).map(|i| (i, i, 0.9)).collect();
    let inl = ScoreParams::default()
        .score(PairScore::Inliers)
        .check()
        .unwrap();
    assert_eq!(pair_score(&fa, &fb, &matches, &inl).unwrap(), 8.0);
    let cnt = ScoreParams::default().check().unwrap();
    assert_eq!(pair_score(&fa, &fb, &matches, &cnt).unwrap(), 12.0);
    // An index past the keypoints is a typed error, not a panic.
    let bad: PairMatches = vec![(0, 40, 0.9)];
    assert!(matches!(
        pair_score(&fa, &fb, &bad, &inl),
        Err(GlueError::Shape { .. })
    ));
}
