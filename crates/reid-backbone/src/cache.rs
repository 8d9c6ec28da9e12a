//! On-disk embedding cache.
//!
//! One small file per image and configuration:
//! `<root>/<config key>/<h[0..2]>/<h>.emb`, where the configuration key hashes
//! the model name, the weights' sha256, the preprocessing, pooling, precision
//! and test-time augmentation, and `h` hashes the image file's bytes and its
//! crop box. So editing an image, changing a weight or a setting misses the
//! cache, and a re-run with the same settings skips finished images.
//!
//! Entry layout: `b"REIDEMB1"`, the dimension as `u32` LE, the values as
//! `f32` LE, then the first 8 bytes of the sha256 of everything before. An
//! entry that is short, long, of another dimension or fails its checksum is
//! treated as absent (recomputed and rewritten), never trusted.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{BackboneError, Result};

const MAGIC: &[u8; 8] = b"REIDEMB1";

/// An embedding cache for one configuration.
#[derive(Debug, Clone)]
pub struct EmbeddingCache {
    dir: PathBuf,
    dim: usize,
}

/// What reading one entry found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// A valid entry.
    Hit(Vec<f32>),
    /// No entry.
    Miss,
    /// An entry that failed its checks (it will be overwritten).
    Damaged,
}

impl EmbeddingCache {
    /// Opens (creating) the cache folder for the configuration described by
    /// `config` (any stable text, e.g. JSON) with embeddings of width `dim`.
    pub fn open(root: &Path, config: &str, dim: usize) -> Result<Self> {
        let key = hex::encode(&Sha256::digest(config.as_bytes())[..8]);
        let dir = root.join(key);
        std::fs::create_dir_all(&dir).map_err(|e| BackboneError::Cache {
            path: dir.clone(),
            reason: format!("cannot create the folder: {e}"),
        })?;
        // The configuration in clear beside the entries, for people reading the folder.
        let about = dir.join("config.json");
        if !about.exists() {
            reid_core::fs::write_atomic(&about, config.as_bytes()).map_err(|e| {
                BackboneError::Cache {
                    path: about.clone(),
                    reason: e.to_string(),
                }
            })?;
        }
        Ok(EmbeddingCache { dir, dim })
    }

    /// The folder of this configuration.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The content key of an image: sha256 of its bytes and its crop box.
    pub fn content_key(path: &Path, bbox: Option<&reid_data::BBox>) -> Result<String> {
        let bytes = std::fs::read(path).map_err(|e| BackboneError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let mut h = Sha256::new();
        h.update(&bytes);
        if let Some(b) = bbox {
            h.update(format!("bbox:{},{},{},{}", b.x, b.y, b.w, b.h).as_bytes());
        }
        Ok(hex::encode(h.finalize()))
    }

    fn entry(&self, key: &str) -> PathBuf {
        let shard = key.get(..2).unwrap_or("00");
        self.dir.join(shard).join(format!("{key}.emb"))
    }

    /// Reads the entry for `key`.
    pub fn get(&self, key: &str) -> Lookup {
        let Ok(bytes) = std::fs::read(self.entry(key)) else {
            return Lookup::Miss;
        };
        match decode(&bytes, self.dim) {
            Some(v) => Lookup::Hit(v),
            None => Lookup::Damaged,
        }
    }

    /// Writes the entry for `key` atomically.
    pub fn put(&self, key: &str, values: &[f32]) -> Result<()> {
        if values.len() != self.dim {
            return Err(BackboneError::Shape {
                what: "cache entry".into(),
                expected: format!("[{}]", self.dim),
                got: format!("[{}]", values.len()),
            });
        }
        let path = self.entry(key);
        let err = |reason: String| BackboneError::Cache {
            path: path.clone(),
            reason,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
        }
        reid_core::fs::write_atomic(&path, &encode(values)).map_err(|e| err(e.to_string()))
    }
}

fn encode(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 4 + 4 * values.len() + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum[..8]);
    out
}

fn decode(bytes: &[u8], dim: usize) -> Option<Vec<f32>> {
    let body_len = 12 + 4 * dim;
    if bytes.len() != body_len + 8 || &bytes[..8] != MAGIC {
        return None;
    }
    let stored_dim = u32::from_le_bytes(bytes[8..12].try_into().ok()?) as usize;
    if stored_dim != dim {
        return None;
    }
    let sum = Sha256::digest(&bytes[..body_len]);
    if sum[..8] != bytes[body_len..] {
        return None;
    }
    let v: Vec<f32> = bytes[12..body_len]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    v.iter().all(|x| x.is_finite()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let c = EmbeddingCache::open(dir.path(), "{\"model\":\"x\"}", 3).unwrap();
        assert_eq!(c.get("abcd"), Lookup::Miss);
        c.put("abcd", &[0.5, -1.0, 2.25]).unwrap();
        assert_eq!(c.get("abcd"), Lookup::Hit(vec![0.5, -1.0, 2.25]));
        assert!(c.put("abcd", &[1.0]).is_err());
        // Flip one value byte: the checksum catches it.
        let p = c.entry("abcd");
        let mut b = std::fs::read(&p).unwrap();
        b[13] ^= 0x40;
        std::fs::write(&p, &b).unwrap();
        assert_eq!(c.get("abcd"), Lookup::Damaged);
        // Truncated.
        std::fs::write(&p, &b[..10]).unwrap();
        assert_eq!(c.get("abcd"), Lookup::Damaged);
        // Rewritten: valid again.
        c.put("abcd", &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(c.get("abcd"), Lookup::Hit(vec![1.0, 2.0, 3.0]));
        // Another configuration or dimension does not see it.
        let c2 = EmbeddingCache::open(dir.path(), "{\"model\":\"y\"}", 3).unwrap();
        assert_eq!(c2.get("abcd"), Lookup::Miss);
        let c3 = EmbeddingCache::open(dir.path(), "{\"model\":\"x\"}", 4).unwrap();
        assert_eq!(c3.get("abcd"), Lookup::Damaged);
    }

    #[test]
    fn content_key_follows_bytes_and_box() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.jpg");
        std::fs::write(&f, b"one").unwrap();
        let k1 = EmbeddingCache::content_key(&f, None).unwrap();
        let b = reid_data::BBox {
            x: 1.0,
            y: 2.0,
            w: 3.0,
            h: 4.0,
        };
        let k2 = EmbeddingCache::content_key(&f, Some(&b)).unwrap();
        assert_ne!(k1, k2);
        std::fs::write(&f, b"two").unwrap();
        assert_ne!(EmbeddingCache::content_key(&f, None).unwrap(), k1);
        assert!(EmbeddingCache::content_key(&dir.path().join("missing"), None).is_err());
    }
}
