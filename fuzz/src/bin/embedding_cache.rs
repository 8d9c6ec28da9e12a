//! Fuzz target `embedding_cache`: arbitrary bytes as an entry of the
//! embedding cache (`reid_backbone::cache::EmbeddingCache`), read by `get`
//! for several dimensions (3, 512, and the one the entry's length implies),
//! as it is and with its last 8 bytes replaced by the checksum the format
//! expects, so that mutations reach the checks behind it. On the first input
//! the cache folder is also damaged in the ways a crash or a person can
//! (an entry that is a folder, `config.json` a folder, the configuration
//! folder a file) and opened and read again.

use std::path::Path;
use std::sync::Once;

use animal_reid_fuzz::{consume, scratch, sha256};
use reid_backbone::cache::EmbeddingCache;

const KEY: &str = "ab0123456789";
const CONFIG: &str = "{\"model\":\"fuzz\"}";

fn entry(cache: &EmbeddingCache) -> std::path::PathBuf {
    cache.dir().join(&KEY[..2]).join(format!("{KEY}.emb"))
}

fn damaged_folders(root: &Path) {
    // An entry that is a folder.
    if let Ok(c) = EmbeddingCache::open(&root.join("a"), CONFIG, 3) {
        let _ = std::fs::create_dir_all(entry(&c));
        consume(c.get(KEY));
        consume(c.put(KEY, &[1.0, 2.0, 3.0]));
        consume(c.get("x"));
        consume(c.get(""));
        consume(c.get("é"));
    }
    // config.json is a folder.
    if let Ok(c) = EmbeddingCache::open(&root.join("b"), CONFIG, 3) {
        let about = c.dir().join("config.json");
        let _ = std::fs::remove_file(&about);
        let _ = std::fs::create_dir_all(&about);
        consume(EmbeddingCache::open(&root.join("b"), CONFIG, 3).map(|c| c.get(KEY)));
    }
    // The configuration folder is a file; the root is a file.
    if let Ok(c) = EmbeddingCache::open(&root.join("c"), CONFIG, 3) {
        let dir = c.dir().to_path_buf();
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::write(&dir, b"not a folder");
        consume(c.get(KEY));
        consume(c.put(KEY, &[1.0, 2.0, 3.0]));
        consume(EmbeddingCache::open(&root.join("c"), CONFIG, 3).map(|c| c.get(KEY)));
    }
    let _ = std::fs::write(root.join("d"), b"file");
    consume(EmbeddingCache::open(&root.join("d"), CONFIG, 3).map(|c| c.get(KEY)));
}

fn read_all(caches: &[EmbeddingCache], bytes: &[u8]) {
    // Every cache has the same configuration, so the same folder and entry
    // path: one write, one read per dimension.
    let Some(first) = caches.first() else { return };
    if std::fs::write(entry(first), bytes).is_ok() {
        for c in caches {
            consume(c.get(KEY));
        }
    }
}

fn main() {
    let root = scratch().join("embeddings");
    let once = Once::new();
    let fixed_dims = [0usize, 3, 512];
    let mut caches: Vec<EmbeddingCache> = fixed_dims
        .iter()
        .filter_map(|&d| EmbeddingCache::open(&root, CONFIG, d).ok())
        .collect();
    if let Some(c) = caches.first() {
        let _ = std::fs::create_dir_all(entry(c).parent().unwrap_or(c.dir()));
    }
    afl::fuzz_nohook!(|data: &[u8]| {
        once.call_once(|| damaged_folders(&scratch().join("damaged")));
        // The dimension the entry's length implies (magic, dim, values, sum).
        let implied = data.len().saturating_sub(20) / 4;
        let extra = EmbeddingCache::open(&root, CONFIG, implied).ok();
        if let Some(c) = &extra {
            caches.push(c.clone());
        }
        read_all(&caches, data);
        if data.len() > 8 {
            let (body, _) = data.split_at(data.len() - 8);
            let mut fixed = body.to_vec();
            fixed.extend_from_slice(&sha256(body)[..8]);
            read_all(&caches, &fixed);
        }
        if extra.is_some() {
            caches.pop();
        }
    });
}
