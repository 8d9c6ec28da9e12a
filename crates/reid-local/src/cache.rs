//! Features cached on disk, one versioned binary file per image.
//!
//! The key of an image is the SHA-256 of the extractor version, the
//! extraction and decoding parameters, and the image file's bytes: a changed
//! photo, a changed parameter or a new extractor never reads stale features.
//! Files are written atomically (a temporary file in the same folder,
//! `fsync`, `rename`, then a best-effort `fsync` of the folder), so a reader
//! sees either the old file, no file or the whole new file.
//!
//! # Damaged files
//!
//! [`read_features_file`] and [`FeatureCache::load`] return a typed error
//! ([`LocalError::CacheCorrupt`], [`LocalError::CacheVersion`],
//! [`LocalError::CacheKeyMismatch`]) for a truncated, corrupted (checksum),
//! foreign or other-version file. [`crate::extract_file`] (and so
//! [`crate::FeatureStore`]) instead **recomputes** the features, overwrites
//! the file and reports [`CacheStatus::Recomputed`] with the reason.
//!
//! # Format (version 1, little-endian)
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `RLOCFEAT` |
//! | 4 | format version (`u32`) |
//! | 32 | key |
//! | 16 | scaled width, height, original width, height (`u32`) |
//! | 8 | descriptor length `d`, keypoint count `n` (`u32`) |
//! | 24 n | keypoints: `x, y, sigma, angle, response` (`f32`), `octave` (`i32`) |
//! | 4 n d | descriptors (`f32`) |
//! | 32 | SHA-256 of everything before |

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{LocalError, Result};
use crate::features::{Features, Keypoint};
use crate::params::ValidLocalParams;

/// Version of the cache file layout this build writes and reads.
pub const CACHE_FORMAT_VERSION: u32 = 1;
/// Version of the extractor, part of every key: bump it whenever a change
/// to the code changes the features it computes.
pub const EXTRACTOR_VERSION: u32 = 1;
/// File name extension of cache files.
pub const CACHE_EXTENSION: &str = "rlf";

const MAGIC: &[u8; 8] = b"RLOCFEAT";
const HEADER_LEN: usize = 8 + 4 + 32 + 16 + 8;
const KEYPOINT_LEN: usize = 24;
const CHECKSUM_LEN: usize = 32;
/// Upper bounds that keep a damaged header from asking for absurd sizes.
const MAX_DIM: usize = 4096;
const MAX_KEYPOINTS: usize = 1_000_000;

/// The cache key of one image under one set of parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// The key of an image file's `bytes` under `params`.
    pub fn new(image_bytes: &[u8], params: &ValidLocalParams) -> Self {
        Self::from_parts(
            "reid-local/features",
            EXTRACTOR_VERSION,
            &params.key_bytes(),
            image_bytes,
        )
    }

    /// The key of an image file's `bytes` for another extractor (e.g. a
    /// learned one in `reid-glue`): `namespace` names the extractor,
    /// `version` changes whenever its code changes its output, and `params`
    /// encodes every setting that changes its output. Keys of different
    /// namespaces, versions or settings never collide in practice (SHA-256
    /// over length-prefixed parts).
    pub fn from_parts(namespace: &str, version: u32, params: &[u8], image_bytes: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(namespace.as_bytes());
        h.update(b"\0");
        h.update(version.to_le_bytes());
        h.update((params.len() as u64).to_le_bytes());
        h.update(params);
        h.update(image_bytes);
        CacheKey(h.finalize().into())
    }

    /// Lower-case hex, the file stem of the cache file.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// How the features of one image were obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    /// Read from an intact cache file.
    Hit,
    /// Computed, then written to the cache (there was no file).
    Computed,
    /// The cache file was damaged, of another version or foreign: the
    /// features were recomputed and the file rewritten.
    Recomputed {
        /// Why the file was not used (the read error's message).
        reason: String,
    },
    /// Computed without a cache.
    Uncached,
}

/// A folder of cache files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureCache {
    dir: PathBuf,
}

impl FeatureCache {
    /// Uses (and creates if needed) the folder `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| LocalError::io(&dir, e))?;
        Ok(FeatureCache { dir })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the features of `key` live.
    pub fn path_for(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.{CACHE_EXTENSION}", key.hex()))
    }

    /// What the cache holds for `key`: the features of an intact file
    /// ([`CacheStatus::Hit`]), else `None` with the status to report once
    /// they are computed and stored: [`CacheStatus::Computed`] when there
    /// is no file, [`CacheStatus::Recomputed`] (with the reason) when it is
    /// damaged.
    pub fn lookup(&self, key: &CacheKey) -> (Option<Features>, CacheStatus) {
        match self.load(key) {
            Ok(Some(f)) => (Some(f), CacheStatus::Hit),
            Ok(None) => (None, CacheStatus::Computed),
            Err(e) => (
                None,
                CacheStatus::Recomputed {
                    reason: e.to_string(),
                },
            ),
        }
    }

    /// The cached features of `key`: `Ok(None)` when there is no file, a
    /// typed error when the file is damaged (see the [module docs](self)).
    pub fn load(&self, key: &CacheKey) -> Result<Option<Features>> {
        let path = self.path_for(key);
        match fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LocalError::io(&path, e)),
            Ok(_) => {}
        }
        read_features_file(&path, Some(key)).map(Some)
    }

    /// Writes the features of `key` atomically.
    pub fn store(&self, key: &CacheKey, features: &Features) -> Result<()> {
        write_features_file(&self.path_for(key), key, features)
    }
}

/// The bytes of a cache file.
pub fn encode_features(key: &CacheKey, f: &Features) -> Vec<u8> {
    let n = f.len();
    let d = f.dim();
    let mut v = Vec::with_capacity(HEADER_LEN + n * KEYPOINT_LEN + n * d * 4 + CHECKSUM_LEN);
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&CACHE_FORMAT_VERSION.to_le_bytes());
    v.extend_from_slice(&key.0);
    let (sw, sh) = f.scaled_size();
    let (ow, oh) = f.original_size();
    for x in [sw, sh, ow, oh, d as u32, n as u32] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    for k in f.keypoints() {
        for x in [k.x, k.y, k.sigma, k.angle, k.response] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&k.octave.to_le_bytes());
    }
    for x in f.descriptors() {
        v.extend_from_slice(&x.to_le_bytes());
    }
    let sum: [u8; 32] = Sha256::digest(&v).into();
    v.extend_from_slice(&sum);
    v
}

/// Parses the bytes of a cache file (`path` names it in errors); checks
/// magic, version, checksum, lengths, finiteness and, when given, the key.
pub fn decode_features(bytes: &[u8], path: &Path, expected: Option<&CacheKey>) -> Result<Features> {
    let corrupt = |reason: String| LocalError::CacheCorrupt {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(corrupt(format!(
            "not a feature cache file ({} bytes, no `RLOCFEAT` magic)",
            bytes.len()
        )));
    }
    let u32_at = |at: usize| -> u32 {
        let mut b = [0u8; 4];
        if let Some(s) = bytes.get(at..at + 4) {
            b.copy_from_slice(s);
        }
        u32::from_le_bytes(b)
    };
    let version = u32_at(8);
    if version != CACHE_FORMAT_VERSION {
        return Err(LocalError::CacheVersion {
            path: path.to_path_buf(),
            found: version,
            expected: CACHE_FORMAT_VERSION,
        });
    }
    if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
        return Err(corrupt(format!(
            "truncated: {} bytes, shorter than the {}-byte header and checksum",
            bytes.len(),
            HEADER_LEN + CHECKSUM_LEN
        )));
    }
    let dim = u32_at(60) as usize;
    let n = u32_at(64) as usize;
    if dim == 0 || dim > MAX_DIM || n > MAX_KEYPOINTS {
        return Err(corrupt(format!(
            "impossible sizes: {n} keypoints of dimension {dim}"
        )));
    }
    let expected_len = n
        .checked_mul(dim)
        .and_then(|v| v.checked_mul(4))
        .and_then(|v| v.checked_add(n.checked_mul(KEYPOINT_LEN)?))
        .and_then(|v| v.checked_add(HEADER_LEN + CHECKSUM_LEN));
    let Some(expected_len) = expected_len else {
        return Err(corrupt(format!(
            "impossible sizes: {n} keypoints of dimension {dim}"
        )));
    };
    if bytes.len() != expected_len {
        return Err(corrupt(format!(
            "{} bytes, expected {expected_len} for {n} keypoints of dimension {dim} (truncated?)",
            bytes.len()
        )));
    }
    let body = &bytes[..expected_len - CHECKSUM_LEN];
    let sum: [u8; 32] = Sha256::digest(body).into();
    if sum[..] != bytes[expected_len - CHECKSUM_LEN..] {
        return Err(corrupt("checksum mismatch".into()));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes[12..44]);
    if let Some(k) = expected
        && k.0 != key
    {
        return Err(LocalError::CacheKeyMismatch {
            path: path.to_path_buf(),
            found: hex::encode(key),
            expected: k.hex(),
        });
    }
    let (sw, sh, ow, oh) = (u32_at(44), u32_at(48), u32_at(52), u32_at(56));
    let f32_at = |at: usize| f32::from_bits(u32_at(at));
    let mut keypoints = Vec::with_capacity(n);
    for i in 0..n {
        let at = HEADER_LEN + i * KEYPOINT_LEN;
        keypoints.push(Keypoint {
            x: f32_at(at),
            y: f32_at(at + 4),
            sigma: f32_at(at + 8),
            angle: f32_at(at + 12),
            response: f32_at(at + 16),
            octave: u32_at(at + 20) as i32,
        });
    }
    let d0 = HEADER_LEN + n * KEYPOINT_LEN;
    let descriptors: Vec<f32> = bytes[d0..d0 + n * dim * 4]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Features::builder((sw, sh), keypoints, descriptors)
        .dim(dim)
        .original_size((ow, oh))
        .build()
        .map_err(|e| corrupt(format!("invalid contents: {e}")))
}

/// Reads a cache file; see [`decode_features`].
pub fn read_features_file(path: &Path, expected: Option<&CacheKey>) -> Result<Features> {
    let bytes = fs::read(path).map_err(|e| LocalError::io(path, e))?;
    decode_features(&bytes, path, expected)
}

/// Writes a cache file atomically and durably (`reid_core::fs`).
pub fn write_features_file(path: &Path, key: &CacheKey, features: &Features) -> Result<()> {
    reid_core::fs::write_atomic(path, &encode_features(key, features))?;
    Ok(())
}
