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

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::error::{BackboneError, Result};

/// The magic number that starts a legacy `torch.save` file (pickled as an int).
const LEGACY_MAGIC: i128 = 0x1950a86a20f9469cfc6c;
/// The protocol version the legacy format writes after the magic number.
const LEGACY_PROTOCOL: i128 = 1001;
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
            read_safetensors(path, &bytes)?
        }
        FileFormat::TorchLegacy => read_legacy(path, &bytes, &opts.sub_dict)?,
        FileFormat::TorchZip => read_zip(path, &bytes, &opts.sub_dict)?,
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

// ---------------------------------------------------------------- safetensors

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

fn read_safetensors(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
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

// ---------------------------------------------------------------- pickles

/// An allowed Python global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    TensorClass,
    ParameterClass,
    Storage(Kind),
}

/// A storage (or, in legacy files, a view of one) referenced by a persistent id.
#[derive(Debug)]
struct StorageRef {
    key: String,
    kind: Kind,
    /// Elements of the whole storage `key`.
    root_numel: i64,
    /// Start of this (view of the) storage in the root storage, in elements.
    offset: i64,
    /// Elements of this (view of the) storage.
    numel: i64,
}

#[derive(Debug)]
struct TensorRef {
    storage: Rc<StorageRef>,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

type Dict = Rc<RefCell<Vec<(Value, Value)>>>;

#[derive(Debug, Clone)]
enum Value {
    None,
    Bool(bool),
    Int(i128),
    /// A float (its value is never needed).
    Float,
    Str(Rc<str>),
    /// Bytes (their value is never needed).
    Bytes,
    Tuple(Rc<[Value]>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(Dict),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    /// A global outside the allow-list, or anything made from one. Never constructed.
    Opaque(Rc<str>),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float => "float",
            Value::Str(_) => "str",
            Value::Bytes => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "class or function",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
            Value::Opaque(_) => "object",
        }
    }

    fn same_key(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::None, Value::None) => true,
            _ => false,
        }
    }
}

/// Why unpickling stopped (the file path is added by the caller).
enum PickleError {
    Format(String),
    Global(String),
}

type PResult<T> = std::result::Result<T, PickleError>;

fn perr<T>(msg: impl Into<String>) -> PResult<T> {
    Err(PickleError::Format(msg.into()))
}

fn resolve_global(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch", "Tensor") => Global::TensorClass,
        ("torch.nn.parameter", "Parameter") => Global::ParameterClass,
        ("torch", storage) => Global::Storage(match storage {
            "FloatStorage" => Kind::Float,
            "DoubleStorage" => Kind::Double,
            "HalfStorage" => Kind::Half,
            "BFloat16Storage" => Kind::BFloat16,
            "LongStorage" => Kind::Int64,
            "IntStorage" => Kind::Int,
            "ShortStorage" => Kind::Int16,
            "CharStorage" => Kind::Int8,
            "ByteStorage" | "UntypedStorage" => Kind::Uint8,
            "BoolStorage" => Kind::Bool,
            _ => return None,
        }),
        _ => return None,
    })
}

/// The pickle virtual machine: a stack, a mark stack and a memo.
struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    /// Storages seen in persistent ids, by key: (kind, root numel).
    storages: &'a mut HashMap<String, (Kind, i64)>,
    /// Whether persistent ids may carry a legacy view description.
    legacy: bool,
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> PResult<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let end = self.pos.checked_add(n).filter(|&e| e <= data.len());
        match end.and_then(|e| data.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => perr(format!(
                "pickle truncated at byte {} (needs {n} more bytes)",
                self.pos
            )),
        }
    }

    fn u8(&mut self) -> PResult<u8> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }

    fn le<const N: usize>(&mut self) -> PResult<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn len_u32(&mut self) -> PResult<usize> {
        Ok(u32::from_le_bytes(self.le::<4>()?) as usize)
    }

    fn len_u64(&mut self) -> PResult<usize> {
        usize::try_from(u64::from_le_bytes(self.le::<8>()?))
            .or_else(|_| perr("length does not fit in memory"))
    }

    fn line(&mut self) -> PResult<&'a str> {
        let data: &'a [u8] = self.data;
        let rest = data.get(self.pos..).unwrap_or_default();
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return perr(format!("unterminated text at byte {}", self.pos));
        };
        let text = rest.get(..n).unwrap_or_default();
        self.pos += n + 1;
        std::str::from_utf8(text).or_else(|_| perr("text is not UTF-8"))
    }

    fn text(&mut self, n: usize) -> PResult<Value> {
        let raw = self.take(n)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(Value::Str(Rc::from(s))),
            Err(_) => perr(format!("string before byte {} is not UTF-8", self.pos)),
        }
    }

    fn pop(&mut self) -> PResult<Value> {
        match self.stack.pop() {
            Some(v) if self.marks.last().is_none_or(|&m| self.stack.len() >= m) => Ok(v),
            _ => perr(format!("stack underflow at byte {}", self.pos)),
        }
    }

    fn top(&mut self) -> PResult<&mut Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return perr(format!("stack underflow at byte {}", self.pos));
        }
        match self.stack.last_mut() {
            Some(v) => Ok(v),
            None => perr(format!("stack underflow at byte {}", self.pos)),
        }
    }

    fn pop_mark(&mut self) -> PResult<Vec<Value>> {
        let Some(mark) = self.marks.pop() else {
            return perr(format!("no MARK before byte {}", self.pos));
        };
        if mark > self.stack.len() {
            return perr(format!("MARK past the stack at byte {}", self.pos));
        }
        Ok(self.stack.split_off(mark))
    }

    fn memo_get(&self, idx: u64) -> PResult<Value> {
        match self.memo.get(&idx) {
            Some(v) => Ok(v.clone()),
            None => perr(format!("memo entry {idx} missing (byte {})", self.pos)),
        }
    }

    fn memo_put(&mut self, idx: u64) -> PResult<()> {
        let v = self.top()?.clone();
        self.memo.insert(idx, v);
        Ok(())
    }

    /// Runs until STOP and returns the pickled object.
    fn run(&mut self) -> PResult<Value> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return perr(format!("pickle protocol {proto} is not supported"));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.le::<4>()?);
                    self.stack.push(Value::Int(v.into()));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le::<2>()?);
                    self.stack.push(Value::Int(v.into()));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.len_u32()?
                    };
                    if n > 16 {
                        return perr(format!("integer of {n} bytes at byte {at} is too large"));
                    }
                    let raw = self.take(n)?;
                    let mut buf = if raw.last().is_some_and(|&b| b & 0x80 != 0) {
                        [0xffu8; 16]
                    } else {
                        [0u8; 16]
                    };
                    if let Some(dst) = buf.get_mut(..n) {
                        dst.copy_from_slice(raw);
                    }
                    self.stack.push(Value::Int(i128::from_le_bytes(buf)));
                }
                b'I' | b'L' => {
                    let line = self.line()?;
                    let t = line.trim_end_matches('L');
                    let v = match t {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        _ => match t.parse::<i128>() {
                            Ok(i) => Value::Int(i),
                            Err(_) => return perr(format!("bad integer `{line}` at byte {at}")),
                        },
                    };
                    self.stack.push(v);
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(Value::Float);
                }
                b'X' => {
                    let n = self.len_u32()?;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = self.len_u64()?;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                b'B' | b'C' | 0x8e | b'T' | b'U' => {
                    let n = match op {
                        b'B' | b'T' => self.len_u32()?,
                        0x8e => self.len_u64()?,
                        _ => self.u8()? as usize,
                    };
                    let raw = self.take(n)?;
                    self.stack.push(if op == b'T' || op == b'U' {
                        // Protocol-1 strings are bytes; decode as Latin-1 like torch.load.
                        Value::Str(Rc::from(
                            raw.iter().map(|&b| char::from(b)).collect::<String>(),
                        ))
                    } else {
                        Value::Bytes
                    });
                }
                b'}' => self.stack.push(Value::Dict(Rc::default())),
                b']' => self.stack.push(Value::List(Rc::default())),
                b')' => self.stack.push(Value::Tuple(Rc::from(Vec::new()))),
                0x8f => self.stack.push(Value::List(Rc::default())), // EMPTY_SET, kept as a list
                b'd' => {
                    let items = self.pop_mark()?;
                    let dict: Dict = Rc::default();
                    set_items(&dict, items)?;
                    self.stack.push(Value::Dict(dict));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(Rc::new(RefCell::new(items))));
                }
                b't' | 0x91 => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(Rc::from(items)));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return perr(format!("stack underflow at byte {at}"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(Rc::from(items)));
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().push(v),
                        other => return perr(format!("APPEND to a {}", other.type_name())),
                    }
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().extend(items),
                        other => return perr(format!("APPENDS to a {}", other.type_name())),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top()? {
                        Value::Dict(d) => set_items(d, vec![k, v])?,
                        Value::Opaque(_) => {}
                        other => return perr(format!("SETITEM on a {}", other.type_name())),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::Dict(d) => set_items(d, items)?,
                        Value::Opaque(_) => {}
                        other => return perr(format!("SETITEMS on a {}", other.type_name())),
                    }
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(global_value(module, name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&module, &name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(global_value(m, n)),
                        _ => return perr(format!("STACK_GLOBAL of non-strings at byte {at}")),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.call(&func, &args)?;
                    self.stack.push(v);
                }
                0x81 | 0x92 => {
                    if op == 0x92 {
                        self.pop()?; // kwargs
                    }
                    let _args = self.pop()?;
                    let cls = self.pop()?;
                    let v = match cls {
                        Value::Global(Global::OrderedDict) => Value::Dict(Rc::default()),
                        Value::Global(g) => Value::Opaque(Rc::from(format!("{g:?}"))),
                        Value::Opaque(name) => Value::Opaque(name),
                        other => return perr(format!("NEWOBJ of a {}", other.type_name())),
                    };
                    self.stack.push(v);
                }
                b'b' => {
                    // BUILD sets attributes (an OrderedDict's `_metadata`, an
                    // object's __dict__); nothing of that is needed here.
                    self.pop()?;
                    self.top()?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(&pid)?;
                    self.stack.push(v);
                }
                b'q' => {
                    let i = self.u8()?;
                    self.memo_put(i.into())?;
                }
                b'r' => {
                    let i = self.len_u32()?;
                    self.memo_put(i as u64)?;
                }
                0x94 => {
                    let i = self.memo.len() as u64;
                    self.memo_put(i)?;
                }
                b'p' => {
                    let line = self.line()?;
                    let i = line.parse::<u64>().or_else(|_| perr("bad PUT index"))?;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8()?;
                    let v = self.memo_get(i.into())?;
                    self.stack.push(v);
                }
                b'j' => {
                    let i = self.len_u32()?;
                    let v = self.memo_get(i as u64)?;
                    self.stack.push(v);
                }
                b'g' => {
                    let line = self.line()?;
                    let i = line.parse::<u64>().or_else(|_| perr("bad GET index"))?;
                    let v = self.memo_get(i)?;
                    self.stack.push(v);
                }
                other => {
                    return perr(format!(
                        "unsupported pickle opcode 0x{other:02x} at byte {at}"
                    ));
                }
            }
        }
    }

    /// Calls an allowed global (REDUCE). Opaque callables give opaque results.
    fn call(&mut self, func: &Value, args: &Value) -> PResult<Value> {
        let Value::Tuple(args) = args else {
            return perr(format!("REDUCE with {} arguments", args.type_name()));
        };
        let g = match func {
            Value::Global(g) => *g,
            Value::Opaque(name) => return Ok(Value::Opaque(name.clone())),
            other => return perr(format!("REDUCE on a {}", other.type_name())),
        };
        match g {
            Global::OrderedDict => {
                let dict: Dict = Rc::default();
                if let Some(items) = args.first() {
                    let pairs = match items {
                        Value::List(l) => l.borrow().clone(),
                        Value::Tuple(t) => t.to_vec(),
                        Value::Dict(d) => {
                            return Ok(Value::Dict(Rc::new(RefCell::new(d.borrow().clone()))));
                        }
                        other => return perr(format!("OrderedDict({})", other.type_name())),
                    };
                    for pair in pairs {
                        match pair {
                            Value::Tuple(kv) if kv.len() == 2 => set_items(&dict, kv.to_vec())?,
                            _ => return perr("OrderedDict item is not a pair"),
                        }
                    }
                }
                Ok(Value::Dict(dict))
            }
            Global::RebuildTensorV2 | Global::RebuildTensor => {
                let (Some(storage), Some(offset), Some(size), Some(stride)) =
                    (args.first(), args.get(1), args.get(2), args.get(3))
                else {
                    return perr("_rebuild_tensor with fewer than 4 arguments");
                };
                rebuild_tensor(storage, offset, size, stride)
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => match args.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                Some(Value::Opaque(name)) => Ok(Value::Opaque(name.clone())),
                _ => perr("_rebuild_parameter without a tensor"),
            },
            Global::RebuildFromTypeV2 => {
                let (Some(inner), Some(inner_args)) = (args.first(), args.get(2)) else {
                    return perr("_rebuild_from_type_v2 with fewer than 3 arguments");
                };
                if !matches!(
                    args.get(1),
                    Some(Value::Global(Global::TensorClass | Global::ParameterClass))
                ) {
                    return match args.get(1) {
                        Some(Value::Opaque(name)) => Ok(Value::Opaque(name.clone())),
                        _ => perr("_rebuild_from_type_v2 of an unknown type"),
                    };
                }
                self.call(inner, inner_args)
            }
            Global::TensorClass | Global::ParameterClass | Global::Storage(_) => {
                Ok(Value::Opaque(Rc::from(format!("{g:?}"))))
            }
        }
    }

    /// Resolves a `('storage', type, key, location, numel[, view])` persistent id.
    fn persistent_load(&mut self, pid: &Value) -> PResult<Value> {
        let Value::Tuple(t) = pid else {
            return perr(format!("persistent id is a {}", pid.type_name()));
        };
        match t.first() {
            Some(Value::Str(s)) if &**s == "storage" => {}
            Some(Value::Str(s)) if &**s == "module" && self.legacy => return Ok(Value::None),
            _ => return perr("persistent id is not a storage"),
        }
        let kind = match t.get(1) {
            Some(Value::Global(Global::Storage(k))) => *k,
            Some(Value::Opaque(name)) => return Err(PickleError::Global(name.to_string())),
            _ => return perr("storage of an unknown type"),
        };
        let key = match t.get(2) {
            Some(Value::Str(s)) => s.to_string(),
            Some(Value::Int(i)) => i.to_string(),
            _ => return perr("storage key is not a string"),
        };
        let root_numel = match t.get(4) {
            Some(Value::Int(n)) => i64::try_from(*n).ok().filter(|&n| n >= 0),
            _ => None,
        };
        let Some(root_numel) = root_numel else {
            return perr(format!("storage `{key}` has no valid size"));
        };
        match self.storages.get(&key) {
            Some(&(k, n)) if k != kind || n != root_numel => {
                return perr(format!("storage `{key}` is declared twice differently"));
            }
            _ => {
                self.storages.insert(key.clone(), (kind, root_numel));
            }
        }
        let (offset, numel) = match t.get(5) {
            Some(Value::Tuple(view)) if self.legacy => match (view.get(1), view.get(2)) {
                (Some(Value::Int(o)), Some(Value::Int(n)))
                    if *o >= 0 && *n >= 0 && o + n <= root_numel.into() =>
                {
                    (*o as i64, *n as i64)
                }
                _ => return perr(format!("storage `{key}` has a bad view")),
            },
            None | Some(Value::None) => (0, root_numel),
            _ => return perr(format!("storage `{key}` has a bad view")),
        };
        Ok(Value::Storage(Rc::new(StorageRef {
            key,
            kind,
            root_numel,
            offset,
            numel,
        })))
    }
}

fn global_value(module: &str, name: &str) -> Value {
    match resolve_global(module, name) {
        Some(g) => Value::Global(g),
        None => Value::Opaque(Rc::from(format!("{module}.{name}"))),
    }
}

fn set_items(dict: &Dict, items: Vec<Value>) -> PResult<()> {
    if items.len() % 2 != 0 {
        return perr("SETITEMS with an odd number of items");
    }
    let mut d = dict.borrow_mut();
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        match d.iter_mut().find(|(old, _)| old.same_key(&k)) {
            Some(slot) => slot.1 = v,
            None => d.push((k, v)),
        }
    }
    Ok(())
}

fn int_tuple(v: &Value, what: &str) -> PResult<Vec<i64>> {
    let items: Vec<Value> = match v {
        Value::Tuple(t) => t.to_vec(),
        Value::List(l) => l.borrow().clone(),
        Value::Opaque(name) => return Err(PickleError::Global(name.to_string())),
        other => return perr(format!("tensor {what} is a {}", other.type_name())),
    };
    items
        .iter()
        .map(|x| match x {
            Value::Int(i) => i64::try_from(*i).ok().filter(|&i| i >= 0),
            _ => None,
        })
        .collect::<Option<Vec<i64>>>()
        .map_or_else(
            || perr(format!("tensor {what} is not a tuple of sizes")),
            Ok,
        )
}

fn rebuild_tensor(storage: &Value, offset: &Value, size: &Value, stride: &Value) -> PResult<Value> {
    let storage = match storage {
        Value::Storage(s) => s.clone(),
        Value::Opaque(name) => return Err(PickleError::Global(name.to_string())),
        other => return perr(format!("tensor rebuilt from a {}", other.type_name())),
    };
    let offset = match offset {
        Value::Int(o) => i64::try_from(*o).ok().filter(|&o| o >= 0),
        _ => None,
    };
    let Some(offset) = offset else {
        return perr("tensor storage offset is not a size");
    };
    let size = int_tuple(size, "size")?;
    let stride = int_tuple(stride, "stride")?;
    if size.len() != stride.len() {
        return perr(format!(
            "tensor size {size:?} and stride {stride:?} differ in rank"
        ));
    }
    // The last element reached must lie inside the storage.
    if size.iter().all(|&s| s > 0) {
        let last = size
            .iter()
            .zip(&stride)
            .map(|(&s, &st)| i128::from(s - 1) * i128::from(st))
            .sum::<i128>()
            + i128::from(offset);
        if last >= i128::from(storage.numel) {
            return perr(format!(
                "tensor of size {size:?}, stride {stride:?} and offset {offset} overruns its \
                 storage `{}` of {} elements",
                storage.key, storage.numel
            ));
        }
    }
    Ok(Value::Tensor(Rc::new(TensorRef {
        storage,
        offset,
        size,
        stride,
    })))
}

/// Unpickles one object starting at `pos`; returns it and the position after STOP.
fn unpickle(
    path: &Path,
    data: &[u8],
    pos: usize,
    storages: &mut HashMap<String, (Kind, i64)>,
    legacy: bool,
) -> Result<(Value, usize)> {
    let mut m = Machine {
        data,
        pos,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        storages,
        legacy,
    };
    match m.run() {
        Ok(v) => Ok((v, m.pos)),
        Err(PickleError::Format(reason)) => Err(bad(path, reason)),
        Err(PickleError::Global(global)) => Err(BackboneError::UnsupportedGlobal {
            path: path.to_path_buf(),
            global,
        }),
    }
}

fn key_list(dict: &Dict) -> String {
    dict.borrow()
        .iter()
        .map(|(k, _)| match k {
            Value::Str(s) => s.to_string(),
            other => format!("<{}>", other.type_name()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn has_tensor(dict: &Dict) -> bool {
    dict.borrow()
        .iter()
        .any(|(_, v)| matches!(v, Value::Tensor(_)))
}

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

fn read_legacy(path: &Path, bytes: &[u8], sub: &SubDict) -> Result<Vec<(String, Tensor)>> {
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

fn read_zip(path: &Path, bytes: &[u8], sub: &SubDict) -> Result<Vec<(String, Tensor)>> {
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

// ---------------------------------------------------------------- loading

/// A name present in both the model and the state dict with different shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The variable's name.
    pub name: String,
    /// The model's shape.
    pub expected: Vec<i64>,
    /// The state dict's shape (after the transform hook, if any).
    pub got: Vec<i64>,
}

/// What [`Loader::load`] matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Variables copied.
    pub loaded: usize,
    /// Model variables absent from the state dict (sorted).
    pub missing: Vec<String>,
    /// State-dict keys (after key mapping) the model lacks, in file order.
    pub unexpected: Vec<String>,
    /// Names in both with different shapes (not copied).
    pub shape_mismatch: Vec<ShapeMismatch>,
}

impl LoadReport {
    /// Whether every variable was loaded and every key used.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.shape_mismatch.is_empty()
    }
}

/// A short description of a mismatch, used by [`BackboneError::StateDictMismatch`].
pub fn mismatch_summary(
    missing: &[String],
    unexpected: &[String],
    shape_mismatch: &[ShapeMismatch],
) -> String {
    fn list(items: &[String]) -> String {
        let shown: Vec<&str> = items.iter().take(8).map(String::as_str).collect();
        let more = items.len().saturating_sub(shown.len());
        if more > 0 {
            format!("{} (+{more} more)", shown.join(", "))
        } else {
            shown.join(", ")
        }
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("{} missing: {}", missing.len(), list(missing)));
    }
    if !unexpected.is_empty() {
        parts.push(format!(
            "{} unexpected: {}",
            unexpected.len(),
            list(unexpected)
        ));
    }
    if !shape_mismatch.is_empty() {
        let shapes: Vec<String> = shape_mismatch
            .iter()
            .map(|m| format!("{} (model {:?}, file {:?})", m.name, m.expected, m.got))
            .collect();
        parts.push(format!(
            "{} shape mismatches: {}",
            shapes.len(),
            list(&shapes)
        ));
    }
    parts.join("; ")
}

type KeyMap<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;
type Transform<'a> = Box<dyn Fn(&str, &Tensor, &[i64]) -> Option<Tensor> + 'a>;

/// Copies a state dict into a [`VarStore`] by variable name.
///
/// Non-strict by default: what matched is copied and the rest reported.
pub struct Loader<'a> {
    strict: bool,
    map_key: Option<KeyMap<'a>>,
    transform: Option<Transform<'a>>,
}

impl std::fmt::Debug for Loader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("strict", &self.strict)
            .field("map_key", &self.map_key.is_some())
            .field("transform", &self.transform.is_some())
            .finish()
    }
}

impl Default for Loader<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Loader<'a> {
    /// A non-strict loader without hooks.
    pub fn new() -> Self {
        Loader {
            strict: false,
            map_key: None,
            transform: None,
        }
    }

    /// Strict: any missing, unexpected or mis-shaped name is a
    /// [`BackboneError::StateDictMismatch`] and nothing is copied.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Renames state-dict keys before matching: `Some(name)` to use `name`,
    /// `None` to drop the key (it is then not reported as unexpected).
    pub fn map_keys(mut self, f: impl Fn(&str) -> Option<String> + 'a) -> Self {
        self.map_key = Some(Box::new(f));
        self
    }

    /// Replaces a tensor before the shape check: called with the variable's
    /// name, the file's tensor and the model's shape; `Some(t)` uses `t`,
    /// `None` keeps the file's tensor (e.g. resample a position embedding).
    pub fn transform(mut self, f: impl Fn(&str, &Tensor, &[i64]) -> Option<Tensor> + 'a) -> Self {
        self.transform = Some(Box::new(f));
        self
    }

    /// Matches `tensors` to the variables of `vs` and copies them (converting
    /// the element kind and device to the variable's).
    pub fn load(&self, vs: &VarStore, tensors: Vec<(String, Tensor)>) -> Result<LoadReport> {
        let vars = vs.variables();
        let mut report = LoadReport::default();
        let mut seen = HashSet::new();
        let mut pending = Vec::new();
        for (key, tensor) in tensors {
            let name = match &self.map_key {
                Some(f) => match f(&key) {
                    Some(n) => n,
                    None => continue,
                },
                None => key,
            };
            let Some(var) = vars.get(&name) else {
                if !is_ignored(&name) {
                    report.unexpected.push(name);
                }
                continue;
            };
            if !seen.insert(name.clone()) {
                report.unexpected.push(name);
                continue;
            }
            let expected = var.size();
            let tensor = match &self.transform {
                Some(f) => f(&name, &tensor, &expected).unwrap_or(tensor),
                None => tensor,
            };
            let got = tensor.size();
            if got != expected {
                report.shape_mismatch.push(ShapeMismatch {
                    name,
                    expected,
                    got,
                });
                continue;
            }
            pending.push((name, var, tensor));
        }
        report.missing = vars
            .keys()
            .filter(|name| !seen.contains(*name) && !is_ignored(name))
            .cloned()
            .collect();
        report.missing.sort();
        if self.strict && !report.is_complete() {
            return Err(BackboneError::StateDictMismatch {
                missing: report.missing,
                unexpected: report.unexpected,
                shape_mismatch: report.shape_mismatch,
            });
        }
        tch::no_grad(|| -> Result<()> {
            for (name, var, tensor) in &pending {
                let mut var = var.shallow_clone();
                var.f_copy_(tensor)
                    .map_err(torch_err(format!("copying `{name}` into the model")))?;
            }
            Ok(())
        })?;
        report.loaded = pending.len();
        Ok(report)
    }

    /// [`read_with`] then [`Loader::load`].
    pub fn load_file(
        &self,
        vs: &VarStore,
        path: impl AsRef<Path>,
        opts: &ReadOptions,
    ) -> Result<LoadReport> {
        let path = path.as_ref();
        let tensors = read_with(path, opts)?;
        self.load(vs, tensors)
    }
}

fn is_ignored(name: &str) -> bool {
    name == "num_batches_tracked" || name.ends_with(".num_batches_tracked")
}
