//! Reading PyTorch state dicts and loading them into a [`tch::nn::VarStore`].
//!
//! [`read`] / [`read_with`] return the tensors of a state dict, on the CPU, in
//! the file's key order (for safetensors: the order of the data in the file,
//! which Python's writer sorts by dtype, then name), from
//! - PyTorch files written by `torch.save` (`.pth`, `.pt`, `.bin`), in the
//!   zip format (PyTorch ≥ 1.6) **and** the legacy format
//!   (`_use_new_zipfile_serialization=False`, which libtorch's own reader does
//!   not understand);
//! - safetensors files.
//!
//! The format is recognised by content, never by extension ([`detect_format`]).
//! Pickles are read by a small pickle machine that never runs Python code: it
//! understands tensors, storages and `collections.OrderedDict`; any other
//! Python global is kept as an opaque placeholder that is never constructed,
//! and meeting one where a tensor or the state dict itself is needed is a
//! [`BackboneError::UnsupportedGlobal`] naming it. A damaged or truncated file
//! is a [`BackboneError::BadWeightsFile`] naming the file.
//!
//! A checkpoint that wraps the state dict (`{"epoch": …, "state_dict": {…}}`)
//! is handled by [`SubDict`]; a `module.` prefix (from `DataParallel`) is
//! removed with [`ReadOptions::strip_prefix`]. Values of the chosen dict that
//! are not tensors (numbers, strings, nested dicts) are skipped.
//!
//! [`Loader`] copies a state dict into a `VarStore`, matching variables by
//! their full dot-joined name (equal to PyTorch's key), checking shapes,
//! converting the element kind, and reporting what did not match
//! ([`LoadReport`]); `num_batches_tracked` buffers are ignored when absent on
//! either side.
//!
//! ```no_run
//! use reid_backbone::state_dict::{self, Loader, ReadOptions};
//!
//! let vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! // ... build a model under vs.root() ...
//! let tensors = state_dict::read_with("checkpoint.pth", &ReadOptions::default().strip_prefix("module."))?;
//! let report = Loader::new().strict(true).load(&vs, tensors)?;
//! assert!(report.is_complete());
//! # Ok::<(), reid_backbone::BackboneError>(())
//! ```

//!
//! The module is split by job: safetensors files (`safetensors`), the
//! pickle machine (`pickle`), the PyTorch containers (`pytorch`: zip and
//! legacy `torch.save`), and loading into a model (`load`: [`Loader`]);
//! everything public is re-exported here.

mod load;
mod pickle;
mod pytorch;
mod safetensors;

pub use load::{KindMismatch, LoadReport, Loader, ShapeMismatch, kind_summary, mismatch_summary};

use std::io::Read;
use std::path::Path;

use tch::Tensor;

use crate::error::{BackboneError, Result};

/// Keys tried, in order, by [`SubDict::Auto`] when the top-level dict holds no tensors.
pub const AUTO_KEYS: [&str; 6] = [
    "state_dict",
    "model_state_dict",
    "model",
    "module",
    "net",
    "params",
];

/// On-disk formats [`read`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// `torch.save` zip archive (`<prefix>/data.pkl` + `<prefix>/data/<key>`).
    TorchZip,
    /// Legacy `torch.save` stream (magic number, pickles, raw storages).
    TorchLegacy,
    /// safetensors (8-byte header length, JSON header, raw data).
    Safetensors,
}

/// Which dict of a pickled checkpoint holds the tensors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SubDict {
    /// The top-level dict if it holds any tensor, else the first of
    /// [`AUTO_KEYS`] whose value is a dict holding a tensor.
    #[default]
    Auto,
    /// The top-level dict.
    Root,
    /// The dict under this top-level key.
    Key(String),
}

/// How [`read_with`] reads a file.
///
/// Options, not params: every combination is valid (a key or prefix that
/// the file lacks is reported by [`read_with`]), so there is no checked
/// form and no [`reid_core::ParamGuard`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Which dict holds the tensors (pickles only; safetensors files are flat
    /// and accept only [`SubDict::Auto`] and [`SubDict::Root`]).
    pub sub_dict: SubDict,
    /// A prefix removed from every key that starts with it (e.g. `"module."`).
    pub strip_prefix: Option<String>,
}

impl ReadOptions {
    /// Reads the dict under `key` (e.g. `"state_dict"`, `"model"`).
    pub fn sub_dict(mut self, key: &str) -> Self {
        self.sub_dict = SubDict::Key(key.to_string());
        self
    }

    /// Removes `prefix` from every key that starts with it.
    pub fn strip_prefix(mut self, prefix: &str) -> Self {
        self.strip_prefix = Some(prefix.to_string());
        self
    }
}

/// Recognises a weights file by its first bytes.
pub fn detect_format(path: impl AsRef<Path>) -> Result<FileFormat> {
    let path = path.as_ref();
    let mut head = Vec::with_capacity(16);
    std::fs::File::open(path)
        .and_then(|f| f.take(16).read_to_end(&mut head))
        .map_err(|source| io_err(path, source))?;
    detect(&head, u64::MAX).ok_or_else(|| unrecognised(path, &head))
}

fn detect(head: &[u8], len: u64) -> Option<FileFormat> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Some(FileFormat::TorchZip);
    }
    if head.first() == Some(&0x80) {
        return Some(FileFormat::TorchLegacy);
    }
    if let (Some(n), Some(b'{')) = (head.get(..8), head.get(8)) {
        let mut le = [0u8; 8];
        le.copy_from_slice(n);
        if u64::from_le_bytes(le) <= len.saturating_sub(8) {
            return Some(FileFormat::Safetensors);
        }
    }
    None
}

fn unrecognised(path: &Path, head: &[u8]) -> BackboneError {
    bad(
        path,
        format!(
            "not a PyTorch (zip or legacy) or safetensors file (starts with {})",
            hex::encode(head.get(..head.len().min(16)).unwrap_or_default())
        ),
    )
}

/// Reads the state dict of a file with the default [`ReadOptions`].
pub fn read(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    read_with(path, &ReadOptions::default())
}

/// Reads the tensors of a state dict (CPU, file key order).
pub fn read_with(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<Vec<(String, Tensor)>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| io_err(path, source))?;
    let head = bytes.get(..bytes.len().min(16)).unwrap_or_default();
    let format = detect(head, bytes.len() as u64).ok_or_else(|| unrecognised(path, head))?;
    let mut tensors = match format {
        FileFormat::Safetensors => {
            if let SubDict::Key(key) = &opts.sub_dict {
                return Err(BackboneError::NoStateDict {
                    path: path.to_path_buf(),
                    key: format!("`{key}` (safetensors files are flat)"),
                    available: String::new(),
                });
            }
            safetensors::read(path, &bytes)?
        }
        FileFormat::TorchLegacy => pytorch::read_legacy(path, &bytes, &opts.sub_dict)?,
        FileFormat::TorchZip => pytorch::read_zip(path, &bytes, &opts.sub_dict)?,
    };
    if let Some(prefix) = opts.strip_prefix.as_deref().filter(|p| !p.is_empty()) {
        for (key, _) in &mut tensors {
            if let Some(rest) = key.strip_prefix(prefix) {
                *key = rest.to_string();
            }
        }
    }
    Ok(tensors)
}

fn io_err(path: &Path, source: std::io::Error) -> BackboneError {
    BackboneError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> BackboneError {
    BackboneError::BadWeightsFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn torch_err(context: String) -> impl FnOnce(tch::TchError) -> BackboneError {
    move |source| BackboneError::Torch { context, source }
}
