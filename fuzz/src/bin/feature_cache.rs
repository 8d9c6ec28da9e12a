//! Fuzz target `feature_cache`: arbitrary bytes as a local-feature cache
//! file (`reid_local::cache`), through `read_features_file` (with no key and
//! with the file's own key) and `FeatureCache::load` (the file stored under
//! its key's name). Each input is read as it is and with its last 32 bytes
//! replaced by the SHA-256 of the rest, so that mutations reach the parsing
//! behind the checksum. Features that load are then used as the pipeline
//! uses them: scale, and (up to 64 keypoints) `match_pair` with themselves
//! (mutual nearest neighbours and RANSAC on the loaded coordinates).

use animal_reid_fuzz::{consume, sha256, write_input};
use reid_local::ValidLocalParams;
use reid_local::cache::{CacheKey, FeatureCache, read_features_file};

fn run(cache: &FeatureCache, params: &ValidLocalParams, bytes: &[u8]) {
    let path = write_input("features.rlf", bytes);
    if let Ok(f) = read_features_file(&path, None) {
        consume(f.scale());
        consume(f.descriptor(0).map(<[f32]>::len));
        if f.len() <= 64 {
            consume(reid_local::match_pair(&f, &f, params).map(|m| m.inliers));
        }
    }
    let mut key = [0u8; 32];
    if let Some(k) = bytes.get(12..44) {
        key.copy_from_slice(k);
    }
    let key = CacheKey(key);
    consume(read_features_file(&path, Some(&key)).map(|f| f.len()));
    let stored = cache.path_for(&key);
    if std::fs::write(&stored, bytes).is_ok() {
        consume(cache.lookup(&key));
        consume(cache.load(&key).map(|f| f.map(|f| f.dim())));
        let _ = std::fs::remove_file(&stored);
    }
}

fn main() {
    let cache = FeatureCache::new(animal_reid_fuzz::scratch().join("features"))
        .expect("scratch cache folder");
    let params = ValidLocalParams::default();
    afl::fuzz_nohook!(|data: &[u8]| {
        run(&cache, &params, data);
        if data.len() > 32 {
            let (body, _) = data.split_at(data.len() - 32);
            let mut fixed = body.to_vec();
            fixed.extend_from_slice(&sha256(body));
            run(&cache, &params, &fixed);
        }
    });
}
