//! The pickle machine: reads the pickles of `torch.save` files without
//! running Python code. It understands tensors, storages and
//! `collections.OrderedDict`; any other global is an opaque placeholder that
//! is never constructed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use tch::Kind;

use super::bad;
use crate::error::{BackboneError, Result};

/// An allowed Python global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Global {
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
pub(super) struct StorageRef {
    pub(super) key: String,
    pub(super) kind: Kind,
    /// Elements of the whole storage `key`.
    pub(super) root_numel: i64,
    /// Start of this (view of the) storage in the root storage, in elements.
    pub(super) offset: i64,
    /// Elements of this (view of the) storage.
    pub(super) numel: i64,
}

#[derive(Debug)]
pub(super) struct TensorRef {
    pub(super) storage: Rc<StorageRef>,
    pub(super) offset: i64,
    pub(super) size: Vec<i64>,
    pub(super) stride: Vec<i64>,
}

pub(super) type Dict = Rc<RefCell<Vec<(Value, Value)>>>;

/// A pickled value. Its `Debug` is shallow (containers by type and length):
/// a pickle can build a container that holds itself (through the memo), and
/// a derived, recursive `Debug` of one never ends (found by fuzzing: a stack
/// overflow).
#[derive(Clone)]
pub(super) enum Value {
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

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Str(s) => write!(f, "{:?}", s.chars().take(64).collect::<String>()),
            Value::Tuple(t) => write!(f, "tuple of {}", t.len()),
            Value::List(l) => write!(f, "list of {}", l.try_borrow().map_or(0, |l| l.len())),
            Value::Dict(d) => write!(f, "dict of {}", d.try_borrow().map_or(0, |d| d.len())),
            Value::Global(g) => write!(f, "global {g:?}"),
            Value::Opaque(o) => write!(f, "object {o}"),
            other => f.write_str(other.type_name()),
        }
    }
}

impl Value {
    pub(super) fn type_name(&self) -> &'static str {
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
    if !items.len().is_multiple_of(2) {
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
pub(super) fn unpickle(
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

pub(super) fn key_list(dict: &Dict) -> String {
    dict.borrow()
        .iter()
        .map(|(k, _)| match k {
            Value::Str(s) => s.to_string(),
            other => format!("<{}>", other.type_name()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn has_tensor(dict: &Dict) -> bool {
    dict.borrow()
        .iter()
        .any(|(_, v)| matches!(v, Value::Tensor(_)))
}
