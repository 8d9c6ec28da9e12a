//! One-file persistence of a [`Gallery`].
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! | --- | --- |
//! | 8 | magic `REIDGAL\0` |
//! | 4 | format version ([`FORMAT_VERSION`]) |
//! | 4 | reserved, 0 |
//! | 8 | payload length in bytes |
//! | 32 | SHA-256 of the payload |
//! | … | payload: header length (8 bytes), header JSON (model id, dim, rows, records), then `rows × dim` `f32` |
//!
//! The file is written to a temporary file in the same folder, synced and
//! renamed over the target, so an interrupted save never damages a file
//! already there. Loading checks magic, version, length, checksum and the
//! header's dimensions before building anything. The approximate (HNSW)
//! index is not stored: rebuild it after loading.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use reid_core::SplitRole;
use sha2::{Digest, Sha256};

use crate::gallery::{Gallery, Record};
use crate::{IndexError, Result};

/// Magic bytes opening every gallery file.
pub const MAGIC: [u8; 8] = *b"REIDGAL\0";
/// The format version this build writes. Version 2 stores the workspace's
/// one record type (`reid_core::Record`); version 1 files (records as id,
/// identity and a string map) are still read.
pub const FORMAT_VERSION: u32 = 2;
/// Bytes before the payload.
pub const PREAMBLE_LEN: usize = 8 + 4 + 4 + 8 + 32;

#[derive(serde::Serialize, serde::Deserialize)]
struct Header<R> {
    model_id: String,
    dim: usize,
    rows: usize,
    records: Vec<R>,
}

/// A record as format version 1 stored it.
#[derive(serde::Deserialize)]
struct RecordV1 {
    id: String,
    identity: String,
    #[serde(default)]
    meta: BTreeMap<String, String>,
}

impl From<RecordV1> for Record {
    /// The `path`, `split`, `dataset` and `species` attributes that version 1
    /// files written by the `embed` example carry become those fields; an
    /// empty identity becomes none.
    fn from(v1: RecordV1) -> Self {
        let mut meta = v1.meta;
        let mut r = Record::new(v1.id, meta.remove("path").unwrap_or_default());
        r.identity = Some(v1.identity).filter(|i| !i.is_empty());
        r.split = meta.remove("split").map(|s| SplitRole::parse(&s));
        r.dataset = meta.remove("dataset");
        r.species = meta.remove("species");
        r.attributes = meta;
        r
    }
}

fn io_err(path: &Path, source: std::io::Error) -> IndexError {
    IndexError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Calls `f` on the embeddings as little-endian bytes, in blocks.
fn for_each_le_block(
    data: &[f32],
    mut f: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1 << 16);
    for chunk in data.chunks(1 << 14) {
        buf.clear();
        for x in chunk {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        f(&buf)?;
    }
    Ok(())
}

impl Gallery {
    /// Saves the gallery to `path` (one file, written atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let header = Header {
            model_id: self.model_id.clone(),
            dim: self.dim,
            rows: self.records.len(),
            records: self.records.clone(),
        };
        let json = serde_json::to_vec(&header).map_err(|e| IndexError::Malformed {
            path: path.to_path_buf(),
            reason: format!("cannot encode header: {e}"),
        })?;
        let emb_bytes = (self.data.len() as u64) * 4;
        let payload_len = 8 + json.len() as u64 + emb_bytes;
        let mut h = Sha256::new();
        h.update((json.len() as u64).to_le_bytes());
        h.update(&json);
        for_each_le_block(&self.data, |b| {
            h.update(b);
            Ok(())
        })
        .map_err(|e| io_err(path, e))?;
        let digest = h.finalize();
        reid_core::fs::write_atomic_with(path, |w| {
            w.write_all(&MAGIC)?;
            w.write_all(&FORMAT_VERSION.to_le_bytes())?;
            w.write_all(&0u32.to_le_bytes())?;
            w.write_all(&payload_len.to_le_bytes())?;
            w.write_all(&digest)?;
            w.write_all(&(json.len() as u64).to_le_bytes())?;
            w.write_all(&json)?;
            for_each_le_block(&self.data, |b| w.write_all(b))
        })?;
        Ok(())
    }

    /// Loads a gallery saved by [`Gallery::save`], checking magic, version,
    /// length, checksum and consistency of the content.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io_err(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let pb = || path.to_path_buf();
        let found = bytes.len() as u64;
        let magic_len = bytes.len().min(MAGIC.len());
        if bytes.get(..magic_len) != MAGIC.get(..magic_len) {
            return Err(IndexError::BadMagic { path: pb() });
        }
        if bytes.len() < PREAMBLE_LEN {
            return Err(IndexError::Truncated {
                path: pb(),
                expected: PREAMBLE_LEN as u64,
                found,
            });
        }
        let (pre, payload) = bytes.split_at(PREAMBLE_LEN);
        let u32_at = |o: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&pre[o..o + 4]);
            u32::from_le_bytes(b)
        };
        let version = u32_at(8);
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(IndexError::UnsupportedVersion {
                path: pb(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let mut lb = [0u8; 8];
        lb.copy_from_slice(&pre[16..24]);
        let payload_len = u64::from_le_bytes(lb);
        if payload_len != payload.len() as u64 {
            return Err(IndexError::Truncated {
                path: pb(),
                expected: (PREAMBLE_LEN as u64).saturating_add(payload_len),
                found,
            });
        }
        if Sha256::digest(payload).as_slice() != &pre[24..56] {
            return Err(IndexError::Checksum { path: pb() });
        }
        let malformed = |reason: String| IndexError::Malformed { path: pb(), reason };
        let (hl, rest) = payload
            .split_first_chunk::<8>()
            .ok_or_else(|| malformed("payload shorter than its header length".into()))?;
        let hl = usize::try_from(u64::from_le_bytes(*hl))
            .map_err(|_| malformed("header length does not fit in memory".into()))?;
        if hl > rest.len() {
            return Err(malformed(format!("header length {hl} exceeds the payload")));
        }
        let (json, emb) = rest.split_at(hl);
        let bad_json = |e: serde_json::Error| malformed(format!("bad header JSON: {e}"));
        let header: Header<Record> = if version == 1 {
            let v1: Header<RecordV1> = serde_json::from_slice(json).map_err(bad_json)?;
            Header {
                model_id: v1.model_id,
                dim: v1.dim,
                rows: v1.rows,
                records: v1.records.into_iter().map(Record::from).collect(),
            }
        } else {
            serde_json::from_slice(json).map_err(bad_json)?
        };
        if header.records.len() != header.rows {
            return Err(malformed(format!(
                "header says {} rows but lists {} records",
                header.rows,
                header.records.len()
            )));
        }
        let want = header
            .rows
            .checked_mul(header.dim)
            .and_then(|x| x.checked_mul(4))
            .ok_or_else(|| malformed("rows x dim overflows".into()))?;
        if want != emb.len() {
            return Err(malformed(format!(
                "{} rows x {} dims need {want} embedding bytes, found {}",
                header.rows,
                header.dim,
                emb.len()
            )));
        }
        let data: Vec<f32> = emb
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let view = ndarray::ArrayView2::from_shape((header.rows, header.dim), &data)
            .map_err(|e| malformed(format!("embedding shape: {e}")))?;
        let mut g =
            Gallery::new(header.model_id, header.dim).map_err(|e| malformed(e.to_string()))?;
        g.add(view, header.records)
            .map_err(|e| malformed(e.to_string()))?;
        Ok(g)
    }
}
