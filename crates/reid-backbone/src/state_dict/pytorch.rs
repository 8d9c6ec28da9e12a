//! PyTorch containers: the zip archive of `torch.save` (PyTorch ≥ 1.6) and
//! the legacy stream (magic number, pickles, raw storages); picking the state
//! dict out of the unpickled object and making its tensors.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use tch::{Kind, Tensor};

use super::pickle::{TensorRef, Value, has_tensor, key_list, unpickle};
use super::{AUTO_KEYS, SubDict, bad, torch_err};
use crate::error::{BackboneError, Result};

/// The magic number that starts a legacy `torch.save` file (pickled as an int).
const LEGACY_MAGIC: i128 = 0x1950a86a20f9469cfc6c;
/// The protocol version the legacy format writes after the magic number.
const LEGACY_PROTOCOL: i128 = 1001;

/// Picks the state dict out of the unpickled root and lists its tensors.
fn select(path: &Path, root: Value, sub: &SubDict) -> Result<Vec<(String, Rc<TensorRef>)>> {
    let root = match root {
        Value::Dict(d) => d,
        Value::Opaque(name) => {
            return Err(BackboneError::UnsupportedGlobal {
                path: path.to_path_buf(),
                global: name.to_string(),
            });
        }
        other => {
            return Err(bad(
                path,
                format!("holds a {}, not a dict of tensors", other.type_name()),
            ));
        }
    };
    let lookup = |key: &str| {
        root.borrow().iter().find_map(|(k, v)| match (k, v) {
            (Value::Str(s), v) if &**s == key => Some(v.clone()),
            _ => None,
        })
    };
    let no_dict = |key: String| BackboneError::NoStateDict {
        path: path.to_path_buf(),
        key,
        available: key_list(&root),
    };
    let chosen = match sub {
        SubDict::Root => root.clone(),
        SubDict::Key(key) => match lookup(key) {
            Some(Value::Dict(d)) => d,
            Some(Value::Opaque(name)) => {
                return Err(BackboneError::UnsupportedGlobal {
                    path: path.to_path_buf(),
                    global: name.to_string(),
                });
            }
            _ => return Err(no_dict(format!("`{key}`"))),
        },
        SubDict::Auto if has_tensor(&root) => root.clone(),
        SubDict::Auto => AUTO_KEYS
            .iter()
            .find_map(|key| match lookup(key) {
                Some(Value::Dict(d)) if has_tensor(&d) => Some(d),
                _ => None,
            })
            .ok_or_else(|| no_dict(format!("the top level or any of {AUTO_KEYS:?}")))?,
    };
    let mut out = Vec::new();
    for (k, v) in chosen.borrow().iter() {
        match v {
            Value::Tensor(t) => {
                let Value::Str(name) = k else {
                    return Err(bad(path, format!("a tensor has a {} key", k.type_name())));
                };
                out.push((name.to_string(), t.clone()));
            }
            Value::Opaque(name) => {
                return Err(BackboneError::UnsupportedGlobal {
                    path: path.to_path_buf(),
                    global: name.to_string(),
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Makes the tensors from their storages (each storage read once).
fn materialise(
    path: &Path,
    refs: Vec<(String, Rc<TensorRef>)>,
    mut storage_bytes: impl FnMut(&str, Kind, i64) -> Result<Tensor>,
) -> Result<Vec<(String, Tensor)>> {
    let mut cache: HashMap<String, Tensor> = HashMap::new();
    let mut out = Vec::with_capacity(refs.len());
    for (name, t) in refs {
        let s = &t.storage;
        let base = match cache.get(&s.key) {
            Some(b) => b.shallow_clone(),
            None => {
                let b = storage_bytes(&s.key, s.kind, s.root_numel)?;
                cache.insert(s.key.clone(), b.shallow_clone());
                b
            }
        };
        let tensor = base
            .f_as_strided(&t.size, &t.stride, Some(s.offset + t.offset))
            .map_err(torch_err(format!("{}: tensor `{name}`", path.display())))?;
        out.push((name, tensor));
    }
    Ok(out)
}

fn storage_tensor(path: &Path, key: &str, raw: &[u8], kind: Kind, numel: i64) -> Result<Tensor> {
    let nbytes = usize::try_from(numel)
        .ok()
        .and_then(|n| n.checked_mul(kind.elt_size_in_bytes()));
    let Some(data) = nbytes.and_then(|n| raw.get(..n)) else {
        return Err(bad(
            path,
            format!(
                "storage `{key}` needs {numel} elements of {kind:?} but has {} bytes (truncated?)",
                raw.len()
            ),
        ));
    };
    Tensor::f_from_data_size(data, &[numel], kind)
        .map_err(torch_err(format!("{}: storage `{key}`", path.display())))
}

/// The tensors of a legacy `torch.save` stream.
pub(super) fn read_legacy(
    path: &Path,
    bytes: &[u8],
    sub: &SubDict,
) -> Result<Vec<(String, Tensor)>> {
    let mut storages = HashMap::new();
    let (magic, pos) = unpickle(path, bytes, 0, &mut storages, true)?;
    if !matches!(magic, Value::Int(LEGACY_MAGIC)) {
        return Err(bad(
            path,
            "a pickle, but not a torch.save file (no PyTorch magic number)",
        ));
    }
    let (proto, pos) = unpickle(path, bytes, pos, &mut storages, true)?;
    if !matches!(proto, Value::Int(LEGACY_PROTOCOL)) {
        return Err(bad(path, format!("legacy protocol {proto:?} is not 1001")));
    }
    let (sys_info, pos) = unpickle(path, bytes, pos, &mut storages, true)?;
    if let Value::Dict(d) = &sys_info {
        let big = d.borrow().iter().any(|(k, v)| {
            matches!((k, v), (Value::Str(s), Value::Bool(false)) if &**s == "little_endian")
        });
        if big {
            return Err(bad(path, "big-endian files are not supported"));
        }
    }
    let (root, pos) = unpickle(path, bytes, pos, &mut storages, true)?;
    let (keys, mut pos) = unpickle(path, bytes, pos, &mut storages, true)?;
    let Value::List(keys) = keys else {
        return Err(bad(path, "storage key list missing after the pickle"));
    };
    // Storages follow in the order of the key list: an 8-byte count, then the data.
    let mut spans: HashMap<String, (usize, Kind, i64)> = HashMap::new();
    for key in keys.borrow().iter() {
        let key = match key {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            _ => return Err(bad(path, "storage key is not a string")),
        };
        let Some(&(kind, numel)) = storages.get(&key) else {
            return Err(bad(
                path,
                format!("storage `{key}` is listed but never used"),
            ));
        };
        let mut le = [0u8; 8];
        let head = pos.checked_add(8).and_then(|e| bytes.get(pos..e));
        le.copy_from_slice(head.ok_or_else(|| {
            bad(
                path,
                format!("storage `{key}` header truncated at byte {pos}"),
            )
        })?);
        let count = i64::from_le_bytes(le);
        if count != numel {
            return Err(bad(
                path,
                format!("storage `{key}` holds {count} elements, the pickle says {numel}"),
            ));
        }
        let start = pos + 8;
        let end = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(kind.elt_size_in_bytes()))
            .and_then(|n| n.checked_add(start))
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                bad(
                    path,
                    format!("storage `{key}` ({numel} x {kind:?}) truncated at byte {start}"),
                )
            })?;
        spans.insert(key, (start, kind, numel));
        pos = end;
    }
    let refs = select(path, root, sub)?;
    materialise(path, refs, |key, kind, numel| {
        let Some(&(start, _, _)) = spans.get(key) else {
            return Err(bad(path, format!("storage `{key}` has no data")));
        };
        storage_tensor(
            path,
            key,
            bytes.get(start..).unwrap_or_default(),
            kind,
            numel,
        )
    })
}

/// The tensors of a `torch.save` zip archive.
pub(super) fn read_zip(path: &Path, bytes: &[u8], sub: &SubDict) -> Result<Vec<(String, Tensor)>> {
    let zip_err = |e: zip::result::ZipError| bad(path, format!("damaged zip archive: {e}"));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(zip_err)?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    let Some(prefix) = names.iter().find_map(|n| {
        n.strip_suffix("/data.pkl")
            .filter(|p| !p.contains('/'))
            .map(str::to_string)
    }) else {
        return Err(bad(
            path,
            "zip archive without `<name>/data.pkl` (not a torch.save file)",
        ));
    };
    if names
        .iter()
        .any(|n| *n == format!("{prefix}/constants.pkl"))
    {
        return Err(bad(
            path,
            "a TorchScript archive, not a state dict; load it with torchscript::TorchScriptModel",
        ));
    }
    let mut entry = |name: &str| -> Result<Vec<u8>> {
        let mut file = archive.by_name(name).map_err(zip_err)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(|e| bad(path, format!("zip entry `{name}`: {e}")))?;
        Ok(buf)
    };
    if names.iter().any(|n| *n == format!("{prefix}/byteorder")) {
        let order = entry(&format!("{prefix}/byteorder"))?;
        if order.trim_ascii() != b"little" {
            return Err(bad(path, "big-endian files are not supported"));
        }
    }
    let pickle = entry(&format!("{prefix}/data.pkl"))?;
    let mut storages = HashMap::new();
    let (root, _) = unpickle(path, &pickle, 0, &mut storages, false)?;
    let refs = select(path, root, sub)?;
    materialise(path, refs, |key, kind, numel| {
        let raw = entry(&format!("{prefix}/data/{key}"))?;
        storage_tensor(path, key, &raw, kind, numel)
    })
}
