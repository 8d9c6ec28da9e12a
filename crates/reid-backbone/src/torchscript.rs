//! TorchScript models (`torch.jit.save`) as embedding backbones.
//!
//! Any network PyTorch can trace or script — MegaDescriptor, MiewID, a
//! fine-tuned timm model — becomes a backbone here without a native
//! architecture: `scripts/export_model.py` traces it at a fixed input size and
//! writes `<model>.pt` plus a JSON sidecar `<model>.json` ([`ExportSidecar`])
//! with the preprocessing it expects.
//!
//! [`TorchScriptModel::embed`] takes a float batch `[B, 3, H, W]` and returns
//! `[B, D]` embeddings (not normalised). Accepted model outputs:
//! - a tensor `[B, D]`;
//! - a tuple or list whose **first** element is a tensor `[B, D]` (e.g.
//!   `(embedding, logits)`);
//! - a dict with a tensor `[B, D]` under one of [`EMBEDDING_KEYS`] (first found).
//!
//! Anything else (a feature map `[B, C, H, W]`, a batch size other than the
//! input's, a non-float tensor) is a [`BackboneError::ModelOutput`].
//!
//! ```no_run
//! use reid_backbone::torchscript::TorchScriptModel;
//!
//! let model = TorchScriptModel::load("megadescriptor-l-384.pt", tch::Device::Cpu)?;
//! let x = tch::Tensor::zeros([2, 3, 384, 384], (tch::Kind::Float, tch::Device::Cpu));
//! let emb = model.embed(&x)?; // [2, 1536]
//! # Ok::<(), reid_backbone::BackboneError>(())
//! ```

use std::path::{Path, PathBuf};

use tch::{CModule, Device, IValue, Kind, Tensor};

use crate::error::{BackboneError, Result};

/// Dict keys under which [`TorchScriptModel::embed`] looks for the embedding.
pub const EMBEDDING_KEYS: [&str; 4] = ["embedding", "embeddings", "features", "pooler_output"];

/// A TorchScript module in eval mode on one device.
#[derive(Debug)]
pub struct TorchScriptModel {
    module: CModule,
    path: PathBuf,
    device: Device,
}

/// What can be told about `path` as a TorchScript file before libtorch reads
/// it: a zip archive (as `torch.jit.save` writes) whose central directory
/// reads, holding a model's `constants.pkl` or `code/`.
fn check_torchscript_file(path: &Path) -> Result<()> {
    let bad = |reason: String| BackboneError::BadWeightsFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(|source| BackboneError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut head = [0u8; 4];
    let n = std::io::Read::read(&mut file, &mut head).map_err(|source| BackboneError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if n < 4 || head != *b"PK\x03\x04" {
        let what = if n == 0 {
            "the file is empty".to_string()
        } else if head[0] == 0x80 {
            "it is a pickle (a legacy torch.save file, e.g. a state dict): give a state dict \
             with --weights and the backbone's name"
                .to_string()
        } else {
            "it is not a zip archive, as torch.jit.save writes".to_string()
        };
        return Err(bad(format!("not a TorchScript model: {what}")));
    }
    let archive = zip::ZipArchive::new(file)
        .map_err(|e| bad(format!("damaged or truncated TorchScript archive: {e}")))?;
    let names: Vec<&str> = archive.file_names().collect();
    let has = |suffix: &str| {
        names
            .iter()
            .any(|n| n.ends_with(suffix) || n.contains(suffix))
    };
    if has("/constants.pkl") || has("/code/") {
        return Ok(());
    }
    if has("/data.pkl") {
        return Err(bad(
            "not a TorchScript model: a torch.save archive (a state dict?); give it with \
             --weights and the backbone's name"
                .into(),
        ));
    }
    Err(bad(
        "not a TorchScript model: a zip archive without a model's `constants.pkl` or `code/`"
            .into(),
    ))
}

impl TorchScriptModel {
    /// Loads `path` onto `device` and puts it in eval mode.
    ///
    /// A missing file is [`BackboneError::Io`]; a file that is not a
    /// TorchScript model (not a zip archive, a truncated one, a `torch.save`
    /// state dict, any other archive) is [`BackboneError::BadWeightsFile`]
    /// saying which, checked before libtorch reads it; what libtorch still
    /// refuses is [`BackboneError::BadWeightsFile`] with the first line of
    /// its message.
    pub fn load(path: impl AsRef<Path>, device: Device) -> Result<Self> {
        let path = path.as_ref();
        check_torchscript_file(path)?;
        let mut module = CModule::load_on_device(path, device).map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let first = first
                .strip_prefix("Internal torch error: ")
                .unwrap_or(first);
            BackboneError::BadWeightsFile {
                path: path.to_path_buf(),
                reason: format!("libtorch cannot load it as a TorchScript model: {first}"),
            }
        })?;
        module.set_eval();
        Ok(TorchScriptModel {
            module,
            path: path.to_path_buf(),
            device,
        })
    }

    /// The device the model runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sidecar written beside the model by `scripts/export_model.py`
    /// (`<model>.json`), if there is one.
    pub fn sidecar(&self) -> Result<Option<ExportSidecar>> {
        let path = self.path.with_extension("json");
        if path.is_file() {
            ExportSidecar::read(&path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Embeds a float batch `[B, 3, H, W]` (moved to the model's device),
    /// without gradients; returns `[B, D]` on the model's device.
    pub fn embed(&self, images: &Tensor) -> Result<Tensor> {
        let shape = images.size();
        let kind = images.kind();
        let float = matches!(
            kind,
            Kind::Float | Kind::Half | Kind::BFloat16 | Kind::Double
        );
        if shape.len() != 4 || shape.get(1) != Some(&3) || !float {
            return Err(BackboneError::InputShape {
                shape,
                kind: format!("{kind:?}"),
                expected: "a float batch [B, 3, H, W]".to_string(),
            });
        }
        let batch = shape.first().copied().unwrap_or(0);
        let input = images.to_device(self.device);
        let output = tch::no_grad(|| self.module.forward_is(&[IValue::Tensor(input)])).map_err(
            |source| BackboneError::Torch {
                context: format!("{}: forward on input {shape:?}", self.path.display()),
                source,
            },
        )?;
        let tensor = self.pick(output)?;
        let out_shape = tensor.size();
        if out_shape.len() != 2 || out_shape.first() != Some(&batch) {
            return Err(self.bad_output(format!(
                "output has shape {out_shape:?}, expected [{batch}, D] for an input of {shape:?} \
                 (export a model that pools its features, e.g. timm with num_classes=0)"
            )));
        }
        if !tensor.is_floating_point() {
            return Err(
                self.bad_output(format!("output is of kind {:?}, not float", tensor.kind()))
            );
        }
        Ok(tensor)
    }

    fn bad_output(&self, reason: String) -> BackboneError {
        BackboneError::ModelOutput {
            model: self.path.display().to_string(),
            reason,
        }
    }

    /// Finds the embedding tensor in a model's output.
    fn pick(&self, output: IValue) -> Result<Tensor> {
        match output {
            IValue::Tensor(t) => Ok(t),
            IValue::Tuple(items) | IValue::GenericList(items) => match items.into_iter().next() {
                Some(IValue::Tensor(t)) => Ok(t),
                _ => Err(self.bad_output(
                    "output is a tuple or list whose first element is not a tensor".to_string(),
                )),
            },
            IValue::TensorList(items) => items
                .into_iter()
                .next()
                .ok_or_else(|| self.bad_output("output is an empty list".to_string())),
            IValue::GenericDict(items) => {
                let mut found: Vec<(String, Tensor)> = Vec::new();
                let mut keys = Vec::new();
                for (k, v) in items {
                    if let IValue::String(k) = k {
                        keys.push(k.clone());
                        if let IValue::Tensor(t) = v {
                            found.push((k, t));
                        }
                    }
                }
                EMBEDDING_KEYS
                    .iter()
                    .find_map(|want| {
                        found
                            .iter()
                            .find(|(k, _)| k == want)
                            .map(|(_, t)| t.shallow_clone())
                    })
                    .ok_or_else(|| {
                        self.bad_output(format!(
                            "output dict has keys {keys:?}, none of {EMBEDDING_KEYS:?} holding a tensor"
                        ))
                    })
            }
            other => Err(self.bad_output(format!("output is {}", ivalue_name(&other)))),
        }
    }
}

fn ivalue_name(v: &IValue) -> &'static str {
    match v {
        IValue::None => "None",
        IValue::Double(_) => "a float",
        IValue::Int(_) => "an int",
        IValue::Bool(_) => "a bool",
        IValue::String(_) => "a string",
        IValue::Object(_) => "an object",
        _ => "of an unsupported type",
    }
}

/// What `scripts/export_model.py` writes beside an exported model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExportSidecar {
    /// The model's name (timm name, `hf-hub:` id or checkpoint).
    pub model: String,
    /// Input `[C, H, W]` the model was exported (traced) at.
    pub input_size: [i64; 3],
    /// Normalisation mean (RGB, 0–1 scale).
    pub mean: [f32; 3],
    /// Normalisation std.
    pub std: [f32; 3],
    /// Resize interpolation (`"bicubic"`, `"bilinear"`, …).
    pub interpolation: String,
    /// timm's eval `crop_pct`.
    pub crop_pct: f32,
    /// Width of the embedding the model returns.
    pub embedding_dim: i64,
    /// The files this sidecar describes (names beside it).
    #[serde(default)]
    pub files: Vec<String>,
}

impl ExportSidecar {
    /// Reads a sidecar JSON file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read(path).map_err(|source| BackboneError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| BackboneError::Json {
            path: path.to_path_buf(),
            source,
        })
    }
}
