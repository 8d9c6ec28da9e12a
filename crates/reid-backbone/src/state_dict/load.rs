//! Loading a state dict into a [`VarStore`] by variable name.

use std::collections::HashSet;
use std::path::Path;

use tch::Tensor;
use tch::nn::VarStore;

use super::{ReadOptions, read_with, torch_err};
use crate::error::{BackboneError, Result};

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

/// A name present in both the model and the state dict with element types
/// that do not convert without changing values (see
/// [`BackboneError::KindMismatch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindMismatch {
    /// The variable's name.
    pub name: String,
    /// The model's element type.
    pub expected: String,
    /// The file's.
    pub got: String,
}

/// `name: file I32, model Float; ...` for the first few mismatches.
pub fn kind_summary(mismatches: &[KindMismatch]) -> String {
    let mut parts: Vec<String> = mismatches
        .iter()
        .take(8)
        .map(|m| format!("{}: file {}, model {}", m.name, m.got, m.expected))
        .collect();
    if mismatches.len() > 8 {
        parts.push(format!("+{} more", mismatches.len() - 8));
    }
    parts.join("; ")
}

fn is_float(k: tch::Kind) -> bool {
    matches!(
        k,
        tch::Kind::Float | tch::Kind::Double | tch::Kind::Half | tch::Kind::BFloat16
    )
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

    reid_core::setters! {
        /// Strict: any missing, unexpected or mis-shaped name is a
        /// [`BackboneError::StateDictMismatch`] and nothing is copied.
        strict: bool,
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
    /// between floating-point kinds and to the variable's device). A tensor
    /// whose element type is integer where the variable's is floating, or
    /// the other way, is [`BackboneError::KindMismatch`]: such a copy would
    /// cast the values silently.
    pub fn load(&self, vs: &VarStore, tensors: Vec<(String, Tensor)>) -> Result<LoadReport> {
        let vars = vs.variables();
        let mut report = LoadReport::default();
        let mut seen = HashSet::new();
        let mut pending = Vec::new();
        let mut kind_mismatch = Vec::new();
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
            if is_float(var.kind()) != is_float(tensor.kind()) {
                kind_mismatch.push(KindMismatch {
                    name,
                    expected: format!("{:?}", var.kind()),
                    got: format!("{:?}", tensor.kind()),
                });
                continue;
            }
            pending.push((name, var, tensor));
        }
        if !kind_mismatch.is_empty() {
            return Err(BackboneError::KindMismatch {
                mismatches: kind_mismatch,
            });
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
