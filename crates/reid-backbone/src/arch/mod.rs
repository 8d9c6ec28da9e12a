//! Network architectures built on `tch::nn`, with variable names equal to
//! the original PyTorch key names (timm, torchvision, `efficientnet_lite_pytorch`),
//! so a state dict saved by PyTorch loads without renaming.
//!
//! Every architecture implements [`Architecture`]; every named model is one
//! [`ModelSpec`] listed by [`models`], the registry the rest of the crate uses.

pub mod convnext;
pub mod efficientnet_lite;
pub mod efficientnet_v2;
pub mod mobilenet_v2;
pub mod swin;
mod transformer;
pub mod vit;

pub use transformer::linear;

use reid_data::preprocess::Interpolation;
use tch::nn::{Module, ModuleT};
use tch::{Kind, Tensor, nn};

/// How the output of [`Architecture::forward_features`] is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureLayout {
    /// A feature map `[B, C, H, W]` (CNNs; Swin is permuted to this layout).
    Spatial,
    /// Tokens `[B, N, D]`; the first `prefix` tokens are class or register
    /// tokens, the rest are patch tokens.
    Tokens {
        /// Number of class/register tokens in front of the patch tokens.
        prefix: usize,
    },
}

/// A network body with timm's split into features, pre-logits and classifier.
///
/// `forward_features` is timm's `forward_features` (for Swin, permuted from
/// NHWC to NCHW). Global pooling is done outside, by the caller's choice of
/// pooling; `pre_logits` is what timm applies between pooling and the
/// classifier (ConvNeXt's `head.norm`, ViT's `fc_norm`), identity otherwise.
pub trait Architecture: Send + std::fmt::Debug {
    /// Features before global pooling; `train` selects batch-norm statistics
    /// and dropout as in PyTorch's `train()` mode.
    fn forward_features(&self, x: &Tensor, train: bool) -> Tensor;
    /// Layout of [`forward_features`](Self::forward_features).
    fn layout(&self) -> FeatureLayout;
    /// Width of the pooled feature vector (timm's `num_features`).
    fn num_features(&self) -> i64;
    /// What timm applies after pooling and before the classifier.
    fn pre_logits(&self, pooled: &Tensor, _train: bool) -> Tensor {
        pooled.shallow_clone()
    }
    /// The classifier on pre-logits, `None` when built without one.
    fn classifier(&self, pre_logits: &Tensor) -> Option<Tensor>;
    /// The pooling timm uses for this model by default.
    fn default_pooling(&self) -> DefaultPooling;
    /// Prefixes of the variable names that stay in f32 when the rest of the
    /// network computes in reduced precision: the stem and the first block
    /// (where rounding to bf16 costs the most accuracy: MobileNetV2's ImageNet
    /// weights on lion photos give a worst per-image cosine to f32 of 0.9978
    /// all in bf16, 0.9998 with these two in f32, at 5 % of the speed-up), and
    /// whatever [`pre_logits`](Self::pre_logits) uses, since pooling is done in
    /// f32. `forward_features` casts the activations at the boundary with
    /// [`to_kind_of`].
    fn full_precision_prefixes(&self) -> &'static [&'static str];
    /// The intermediate feature maps the network can stop at, in order:
    /// the outputs of its blocks, named by their key prefix (MobileNetV2's
    /// `features.N`, EfficientNet-Lite's `_blocks.N`, ConvNeXt's `stages.N`,
    /// EfficientNetV2's `blocks.i.j`). Empty for architectures that offer
    /// none.
    fn taps(&self) -> &[Tap] {
        &[]
    }
    /// The feature map `[B, C, H, W]` at tap `index` of [`taps`](Self::taps),
    /// computing nothing beyond it; `None` for an index the network does not
    /// have.
    fn forward_tap(&self, _x: &Tensor, _index: usize, _train: bool) -> Option<Tensor> {
        None
    }
}

/// An intermediate feature map of a network ([`Architecture::taps`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tap {
    /// The key prefix of the block that produces it (`features.13`).
    pub name: String,
    /// Its channels.
    pub channels: i64,
    /// Its stride: input pixels per feature-map cell.
    pub stride: i64,
}

/// The tap a grid descriptor ([`Pooling::Grid`](crate::pool::Pooling::Grid))
/// uses by default: the last one at stride 16, where a CNN's features still
/// say where on the animal a pattern lies but already describe patterns
/// rather than pixels (on cattle's database, MobileNetV2's `features.13`
/// pooled on a 4 × 4 grid finds the right cow in other videos for 0.69 of
/// photos, its last layer for 0.36). `None` when no tap is at stride 16.
pub fn default_grid_tap(taps: &[Tap]) -> Option<usize> {
    taps.iter().rposition(|t| t.stride == 16)
}

/// Stride, symmetric padding and groups of a 2-D convolution (tch keeps its
/// own configuration private), for [`conv_bn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub stride: i64,
    pub padding: i64,
    pub groups: i64,
}

/// `conv` (with geometry `geom`, the one it was built with) followed by `bn`
/// (epsilon `eps`), `train` selecting batch statistics. In eval mode in f32,
/// run as ONE convolution: the batch norm folded into the weights and bias,
/// w·γ/√(σ² + ε) per output channel and β + (b − μ)·γ/√(σ² + ε). Folding
/// skips the batch-norm pass over the activations (a third of MobileNetV2's
/// CPU time in PyTorch's profile) for one pass over the weights; it is redone
/// from the current variables at every call, so fine-tuning never leaves it
/// stale. In reduced precision the two stay apart (weights folded in f32 and
/// rounded again to bf16 double-round them: EfficientNet-Lite0's worst cosine
/// to f32 on lion photos fell from 0.9992 to 0.9983; a bf16 bias, to 0.9981),
/// and the batch norm normalises the bf16 output with its f32 statistics in
/// place ([`batch_norm_in_place`]).
pub(crate) fn conv_bn(
    x: &Tensor,
    conv: &nn::Conv2D,
    geom: ConvGeometry,
    bn: &nn::BatchNorm,
    eps: f64,
    train: bool,
) -> Tensor {
    if train {
        return bn.forward_t(&conv.forward(x), train);
    }
    if conv.ws.kind() != Kind::Float {
        return batch_norm_in_place(conv.forward(x), bn, eps);
    }
    let f32 = |t: &Tensor| t.to_kind(Kind::Float);
    let mut scale = (f32(&bn.running_var) + eps).rsqrt();
    if let Some(gamma) = &bn.ws {
        scale *= f32(gamma);
    }
    let mut shift = -f32(&bn.running_mean);
    if let Some(b) = &conv.bs {
        shift += f32(b);
    }
    let mut shift = shift * &scale;
    if let Some(beta) = &bn.bs {
        shift += f32(beta);
    }
    let weight = f32(&conv.ws) * scale.view([-1, 1, 1, 1]);
    x.conv2d(
        &weight,
        Some(&shift),
        [geom.stride; 2],
        [geom.padding; 2],
        [1, 1],
        geom.groups,
    )
}

/// The eval-mode batch norm `bn` (running statistics, epsilon `eps`) of a
/// fresh activation `y`, written over `y` itself: the same values as
/// `bn.forward_t(&y, false)` (libtorch's element-wise kernel reads each value
/// before writing it), without a new buffer, which for large activations
/// costs more than the normalisation (a bf16 `[32, 96, 112, 112]`: 19.7 ms out
/// of place, 3.6 ms in place, PyTorch 2.11 here). Where libtorch refuses
/// (autograd through `out=`), the ordinary call.
pub(crate) fn batch_norm_in_place(y: Tensor, bn: &nn::BatchNorm, eps: f64) -> Tensor {
    let stats = || Tensor::empty([0], (Kind::Float, y.device()));
    match y.f_native_batch_norm_out(
        &y,
        &stats(),
        &stats(),
        bn.ws.as_ref(),
        bn.bs.as_ref(),
        Some(&bn.running_mean),
        Some(&bn.running_var),
        false,
        0.0,
        eps,
    ) {
        Ok(_) => y,
        Err(_) => bn.forward_t(&y, false),
    }
}

/// ReLU6 of a tensor the caller owns, in place: one pass and no new
/// activation buffer (a fresh buffer above glibc's 32 MB mmap threshold is
/// page-faulted and zeroed on every batch). Autograd allows it where the
/// input came from a convolution or batch norm, neither of which keeps its
/// output for the backward pass.
pub(crate) fn relu6_in_place(mut t: Tensor) -> Tensor {
    let _ = t.relu6_();
    t
}

/// `y + x` into `y`'s buffer (a residual add; `y` is a layer's fresh
/// output, which the add's backward pass does not need).
pub(crate) fn add_in_place(mut y: Tensor, x: &Tensor) -> Tensor {
    y += x;
    y
}

/// `y * s` into `y`'s buffer when `y` takes no part in autograd (the
/// backward pass of a product needs both factors), else a new tensor.
pub(crate) fn mul_owned(mut y: Tensor, s: &Tensor) -> Tensor {
    if y.requires_grad() {
        return y * s;
    }
    y *= s;
    y
}

/// Exact (erf) GELU of a tensor the caller owns, in place when it takes no
/// part in autograd (GELU's backward pass needs its input), else a new
/// tensor.
pub(crate) fn gelu_owned(mut y: Tensor) -> Tensor {
    if y.requires_grad() {
        return y.gelu("none");
    }
    let _ = y.gelu_("none");
    y
}

/// `x` in the floating-point kind of `like` (a weight of the layer about to
/// run): the boundary between the layers kept in f32 and those in reduced
/// precision ([`Architecture::full_precision_prefixes`]). A cheap no-op when
/// the kinds agree, which is every call in an all-f32 network.
pub fn to_kind_of(x: &Tensor, like: &Tensor) -> Tensor {
    if x.kind() == like.kind() {
        x.shallow_clone()
    } else {
        x.to_kind(like.kind())
    }
}

/// The global pooling an architecture was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultPooling {
    /// Spatial average over `[B, C, H, W]`, or mean over patch tokens.
    Avg,
    /// The first (class) token.
    Cls,
}

/// Build parameters common to every architecture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildOptions {
    /// Classifier outputs; 0 builds no classifier.
    pub num_classes: i64,
    /// Input side in pixels (square). Transformers size their position
    /// embeddings / attention windows from it.
    pub img_size: i64,
}

/// One named model of the registry.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// Registry name, e.g. `"convnext_tiny"`; equal to timm's name where timm has the model.
    pub name: &'static str,
    /// Family, e.g. `"convnext"`.
    pub family: &'static str,
    /// Default input side in pixels (square).
    pub input_size: i64,
    /// timm's eval `crop_pct` (resize the shorter side to `input_size / crop_pct`, centre crop).
    pub crop_pct: f32,
    /// Resize interpolation.
    pub interpolation: Interpolation,
    /// Normalisation mean (RGB, 0–1 scale).
    pub mean: [f32; 3],
    /// Normalisation std.
    pub std: [f32; 3],
    /// Classes of the original classifier (1000 for ImageNet-1k; 0 if none).
    pub num_classes: i64,
    /// Pooled feature width.
    pub num_features: i64,
    /// Constructor: creates the variables under `p` with the original key names.
    pub build: fn(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture>,
}

/// The per-family spec tables; each family module exports `SPECS`.
const FAMILIES: &[&[ModelSpec]] = &[
    efficientnet_lite::SPECS,
    mobilenet_v2::SPECS,
    convnext::SPECS,
    efficientnet_v2::SPECS,
    vit::SPECS,
    swin::SPECS,
];

/// Every model this crate can build, in registry order.
pub fn models() -> impl Iterator<Item = &'static ModelSpec> {
    FAMILIES.iter().flat_map(|f| f.iter())
}

/// The model called `name`, if the registry has it.
pub fn find(name: &str) -> Option<&'static ModelSpec> {
    models().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// In inference the batch norm writes over its input, bit for bit what
    /// the module computes (bf16 and f32, channels-last like the backbones'
    /// activations); with autograd on it falls back to a new buffer, same
    /// values.
    #[test]
    fn batch_norm_in_place_equals_the_module_and_reuses_the_buffer() {
        let vs = nn::VarStore::new(Device::Cpu);
        let bn = nn::batch_norm2d(vs.root() / "bn", 16, Default::default());
        tch::manual_seed(3);
        let opts = (Kind::Float, Device::Cpu);
        tch::no_grad(|| {
            let mut m = bn.running_mean.shallow_clone();
            m.copy_(&Tensor::randn([16], opts));
            let mut v = bn.running_var.shallow_clone();
            v.copy_(&(Tensor::rand([16], opts) + 0.1));
            for t in [&bn.ws, &bn.bs].into_iter().flatten() {
                let mut t = t.shallow_clone();
                t.copy_(&Tensor::randn([16], opts));
            }
        });
        for kind in [Kind::BFloat16, Kind::Float] {
            let y = (Tensor::randn([2, 16, 5, 7], opts) * 3.0)
                .to_kind(kind)
                .permute([0, 2, 3, 1])
                .contiguous()
                .permute([0, 3, 1, 2]);
            let want = tch::no_grad(|| bn.forward_t(&y, false));
            let fresh = y.copy();
            let at = fresh.data_ptr();
            let got = tch::no_grad(|| batch_norm_in_place(fresh, &bn, 1e-5));
            assert_eq!(got.data_ptr(), at, "{kind:?}: not in place");
            assert_eq!(got.kind(), kind);
            assert!(got.equal(&want), "{kind:?}: values differ");
            // The running statistics are untouched.
            let again = tch::no_grad(|| bn.forward_t(&y, false));
            assert!(again.equal(&want));
            // Autograd on (the variables are trainable): a new buffer.
            let fresh = y.copy();
            let at = fresh.data_ptr();
            let got = batch_norm_in_place(fresh, &bn, 1e-5);
            assert_ne!(got.data_ptr(), at, "{kind:?}: autograd through out=");
            assert!(got.detach().equal(&want));
        }
    }
}
