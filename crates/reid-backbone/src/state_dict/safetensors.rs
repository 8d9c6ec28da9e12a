//! safetensors files: an 8-byte header length, a JSON header, raw data.

use std::collections::HashMap;
use std::path::Path;

use tch::{Kind, Tensor};

use super::{bad, torch_err};
use crate::error::Result;

#[derive(serde::Deserialize)]
struct SafeEntry {
    dtype: String,
    shape: Vec<i64>,
    data_offsets: [u64; 2],
}

fn safetensors_kind(dtype: &str) -> Option<Kind> {
    Some(match dtype {
        "F64" => Kind::Double,
        "F32" => Kind::Float,
        "F16" => Kind::Half,
        "BF16" => Kind::BFloat16,
        "I64" => Kind::Int64,
        "I32" => Kind::Int,
        "I16" => Kind::Int16,
        "I8" => Kind::Int8,
        "U8" => Kind::Uint8,
        "BOOL" => Kind::Bool,
        _ => return None,
    })
}

/// The tensors of a safetensors file (CPU, in the order of their data).
pub(super) fn read(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let truncated = || bad(path, "safetensors header is truncated");
    let mut le = [0u8; 8];
    le.copy_from_slice(bytes.get(..8).ok_or_else(truncated)?);
    let n = usize::try_from(u64::from_le_bytes(le)).map_err(|_| truncated())?;
    let end = n.checked_add(8).ok_or_else(truncated)?;
    let header = bytes.get(8..end).ok_or_else(truncated)?;
    let data = bytes.get(end..).unwrap_or_default();
    let map: HashMap<String, serde_json::Value> = serde_json::from_slice(header)
        .map_err(|e| bad(path, format!("safetensors header is not valid JSON: {e}")))?;
    let mut entries = Vec::with_capacity(map.len());
    for (name, value) in map {
        if name == "__metadata__" {
            continue;
        }
        let entry: SafeEntry = serde_json::from_value(value)
            .map_err(|e| bad(path, format!("safetensors entry `{name}`: {e}")))?;
        entries.push((name, entry));
    }
    entries.sort_by(|a, b| (a.1.data_offsets[0], &a.0).cmp(&(b.1.data_offsets[0], &b.0)));
    let mut out = Vec::with_capacity(entries.len());
    for (name, e) in entries {
        let kind = safetensors_kind(&e.dtype).ok_or_else(|| {
            bad(
                path,
                format!("tensor `{name}`: unsupported dtype {}", e.dtype),
            )
        })?;
        let [start, stop] = e.data_offsets;
        let numel = numel_of(&e.shape)
            .ok_or_else(|| bad(path, format!("tensor `{name}`: bad shape {:?}", e.shape)))?;
        let nbytes = numel.checked_mul(kind.elt_size_in_bytes() as u64);
        let slice = usize::try_from(start)
            .ok()
            .zip(usize::try_from(stop).ok())
            .and_then(|(a, b)| data.get(a..b))
            .filter(|s| Some(s.len() as u64) == nbytes)
            .ok_or_else(|| {
                bad(
                    path,
                    format!(
                        "tensor `{name}`: data offsets {start}..{stop} do not fit shape {:?} \
                         {} in {} data bytes (truncated?)",
                        e.shape,
                        e.dtype,
                        data.len()
                    ),
                )
            })?;
        let t = Tensor::f_from_data_size(slice, &e.shape, kind)
            .map_err(torch_err(format!("{}: tensor `{name}`", path.display())))?;
        out.push((name, t));
    }
    Ok(out)
}

fn numel_of(shape: &[i64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| {
        u64::try_from(d).ok().and_then(|d| acc.checked_mul(d))
    })
}
