//! EfficientNetV2 (timm key names).
//!
//! Layout as in timm 1.0.31's `EfficientNet` built from
//! `_gen_efficientnetv2_{s,m,l}`: `conv_stem` (3×3, stride 2) + `bn1`;
//! `blocks.S.B` where stage 0 is `ConvBnAct` (`conv`, `bn1`, residual),
//! stages 1–2 are FusedMBConv (timm `EdgeResidual`: `conv_exp` 3×3, `bn1`,
//! `conv_pwl` 1×1, `bn2`) and the rest MBConv (timm `InvertedResidual`:
//! `conv_pw`, `bn1`, `conv_dw` 3×3 depthwise, `bn2`, `se.conv_reduce`,
//! `se.conv_expand`, `conv_pwl`, `bn3`); head `conv_head` 1×1 + `bn2`;
//! `classifier`. SiLU everywhere, sigmoid gate in squeeze-excitation, no
//! activation after the projection batch norm. Only the first block of a
//! stage strides; a block adds its input when its stride is 1 and its input
//! and output widths match.
//!
//! The `tf_` variants (ported TensorFlow weights) use batch-norm eps 1e-3 and
//! TensorFlow 'same' padding: stride-2 convolutions pad by
//! `max((ceil(i/s) - 1)·s + k - i, 0)` split with the smaller half first,
//! computed from each input's size; stride-1 convolutions pad symmetrically.
//! The plain variants use eps 1e-5 and symmetric padding `(s - 1 + k - 1) / 2`.

use reid_data::preprocess::Interpolation;
use tch::Tensor;
use tch::nn;

use super::{
    Architecture, BuildOptions, DefaultPooling, FeatureLayout, ModelSpec, Tap, to_kind_of,
};

/// Inception-style mean (timm `IMAGENET_INCEPTION_MEAN`), used by the `tf_` weights.
const INCEPTION_MEAN: [f32; 3] = [0.5, 0.5, 0.5];
/// Inception-style std (timm `IMAGENET_INCEPTION_STD`).
const INCEPTION_STD: [f32; 3] = [0.5, 0.5, 0.5];
/// ImageNet mean (timm `IMAGENET_DEFAULT_MEAN`).
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet std (timm `IMAGENET_DEFAULT_STD`).
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Block type of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// timm `ConvBnAct` (`cn`): 3×3 conv, batch norm, SiLU, residual.
    ConvBnAct,
    /// FusedMBConv, timm `EdgeResidual` (`er`).
    Fused,
    /// MBConv with squeeze-excitation, timm `InvertedResidual` (`ir`).
    MbConv,
}

/// One stage of the layer table (all kernels are 3×3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageDef {
    /// Block type.
    pub kind: BlockKind,
    /// Number of blocks.
    pub repeats: usize,
    /// Stride of the first block.
    pub stride: i64,
    /// Expansion ratio.
    pub expand: i64,
    /// Output channels.
    pub out: i64,
}

/// Layer table of one EfficientNetV2 size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EfficientNetV2Config {
    /// Stem output channels.
    pub stem: i64,
    /// Stages in order.
    pub stages: &'static [StageDef],
    /// Head (`conv_head`) output channels = pooled width.
    pub num_features: i64,
}

const fn st(kind: BlockKind, repeats: usize, stride: i64, expand: i64, out: i64) -> StageDef {
    StageDef {
        kind,
        repeats,
        stride,
        expand,
        out,
    }
}

use BlockKind::{ConvBnAct as Cn, Fused as Er, MbConv as Ir};

// Layer tables from timm 1.0.31 `efficientnet.py` `_gen_efficientnetv2_{s,m,l}`
// (channel and depth multipliers 1.0; squeeze-excitation ratio 0.25 of the
// block input on every `ir` stage).
/// EfficientNetV2-S.
pub const S: EfficientNetV2Config = EfficientNetV2Config {
    stem: 24,
    stages: &[
        st(Cn, 2, 1, 1, 24),
        st(Er, 4, 2, 4, 48),
        st(Er, 4, 2, 4, 64),
        st(Ir, 6, 2, 4, 128),
        st(Ir, 9, 1, 6, 160),
        st(Ir, 15, 2, 6, 256),
    ],
    num_features: 1280,
};
/// EfficientNetV2-M.
pub const M: EfficientNetV2Config = EfficientNetV2Config {
    stem: 24,
    stages: &[
        st(Cn, 3, 1, 1, 24),
        st(Er, 5, 2, 4, 48),
        st(Er, 5, 2, 4, 80),
        st(Ir, 7, 2, 4, 160),
        st(Ir, 14, 1, 6, 176),
        st(Ir, 18, 2, 6, 304),
        st(Ir, 5, 1, 6, 512),
    ],
    num_features: 1280,
};
/// EfficientNetV2-L.
pub const L: EfficientNetV2Config = EfficientNetV2Config {
    stem: 32,
    stages: &[
        st(Cn, 4, 1, 1, 32),
        st(Er, 7, 2, 4, 64),
        st(Er, 7, 2, 4, 96),
        st(Ir, 10, 2, 4, 192),
        st(Ir, 19, 1, 6, 224),
        st(Ir, 25, 2, 6, 384),
        st(Ir, 7, 1, 6, 640),
    ],
    num_features: 1280,
};

/// Padding and batch-norm flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// timm `tf_efficientnetv2_*`: TensorFlow 'same' padding, batch-norm eps 1e-3.
    Tf,
    /// timm `efficientnetv2_*`: symmetric padding, batch-norm eps 1e-5.
    Torch,
}

impl Flavour {
    fn bn_eps(self) -> f64 {
        match self {
            Flavour::Tf => 1e-3,
            Flavour::Torch => 1e-5,
        }
    }
}

macro_rules! spec {
    ($name:literal, $size:literal, $mean:expr, $std:expr, $build:ident) => {
        ModelSpec {
            name: $name,
            family: "efficientnet_v2",
            input_size: $size,
            crop_pct: 1.0,
            interpolation: Interpolation::Bicubic,
            mean: $mean,
            std: $std,
            num_classes: 1000,
            num_features: 1280,
            build: $build,
        }
    };
}

// Preprocessing from timm 1.0.31 `efficientnet.py` pretrained_cfg of each
// model's default tag. input_size is timm's `test_input_size` (the eval size
// of the EfficientNetV2 paper); timm's `input_size` is the train size.
// tf_efficientnetv2_s: tag `in21k_ft_in1k`, test 384 (train 300);
// tf_efficientnetv2_m / _l: tag `in21k_ft_in1k`, test 480 (train 384);
// all crop_pct 1.0, bicubic, mean = std = 0.5.
// efficientnetv2_s/m/l: timm has no weights (tag `untrained`); test 384 / 416 /
// 480 (train 288 / 320 / 384), crop_pct 1.0, bicubic, ImageNet mean/std.
/// The models of this family.
pub const SPECS: &[ModelSpec] = &[
    spec!(
        "tf_efficientnetv2_s",
        384,
        INCEPTION_MEAN,
        INCEPTION_STD,
        build_tf_s
    ),
    spec!(
        "tf_efficientnetv2_m",
        480,
        INCEPTION_MEAN,
        INCEPTION_STD,
        build_tf_m
    ),
    spec!(
        "tf_efficientnetv2_l",
        480,
        INCEPTION_MEAN,
        INCEPTION_STD,
        build_tf_l
    ),
    spec!(
        "efficientnetv2_s",
        384,
        IMAGENET_MEAN,
        IMAGENET_STD,
        build_s
    ),
    spec!(
        "efficientnetv2_m",
        416,
        IMAGENET_MEAN,
        IMAGENET_STD,
        build_m
    ),
    spec!(
        "efficientnetv2_l",
        480,
        IMAGENET_MEAN,
        IMAGENET_STD,
        build_l
    ),
];

fn build_tf_s(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(EfficientNetV2::new(p, &S, Flavour::Tf, opts.num_classes))
}
fn build_tf_m(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(EfficientNetV2::new(p, &M, Flavour::Tf, opts.num_classes))
}
fn build_tf_l(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(EfficientNetV2::new(p, &L, Flavour::Tf, opts.num_classes))
}
fn build_s(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(EfficientNetV2::new(p, &S, Flavour::Torch, opts.num_classes))
}
fn build_m(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(EfficientNetV2::new(p, &M, Flavour::Torch, opts.num_classes))
}
fn build_l(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(EfficientNetV2::new(p, &L, Flavour::Torch, opts.num_classes))
}

/// timm `make_divisible(v, 8)`: nearest multiple of 8, at least 8, and not
/// below 90 % of `v`.
fn make_divisible(v: f64) -> i64 {
    const DIV: i64 = 8;
    // Truncation toward zero as Python's int() on a positive value.
    let mut n = (((v + (DIV / 2) as f64) as i64) / DIV * DIV).max(DIV);
    if (n as f64) < 0.9 * v {
        n += DIV;
    }
    n
}

/// A convolution without bias, padded like timm's `create_conv2d`.
#[derive(Debug)]
struct Conv {
    conv: nn::Conv2D,
    kernel: i64,
    stride: i64,
    /// Pad at run time from the input size (TensorFlow 'same', stride > 1).
    dynamic: bool,
}

impl Conv {
    #[allow(clippy::too_many_arguments)]
    fn new(
        p: nn::Path<'_>,
        cin: i64,
        cout: i64,
        kernel: i64,
        stride: i64,
        groups: i64,
        flavour: Flavour,
    ) -> Self {
        // Kernels are odd, so stride-1 'same' padding is static and symmetric.
        let dynamic = flavour == Flavour::Tf && stride > 1;
        let padding = if dynamic {
            0
        } else {
            (stride - 1 + kernel - 1) / 2
        };
        let cfg = nn::ConvConfig {
            stride,
            padding,
            groups,
            bias: false,
            ..Default::default()
        };
        Conv {
            conv: nn::conv2d(p, cin, cout, kernel, cfg),
            kernel,
            stride,
            dynamic,
        }
    }

    fn same_pad(&self, size: i64) -> (i64, i64) {
        let out = (size + self.stride - 1) / self.stride;
        let total = ((out - 1) * self.stride + self.kernel - size).max(0);
        (total / 2, total - total / 2)
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        if self.dynamic {
            let size = x.size();
            let (h, w) = match size.as_slice() {
                [.., h, w] => (*h, *w),
                _ => (0, 0),
            };
            let (top, bottom) = self.same_pad(h);
            let (left, right) = self.same_pad(w);
            x.constant_pad_nd([left, right, top, bottom])
                .apply(&self.conv)
        } else {
            x.apply(&self.conv)
        }
    }
}

/// Batch norm with an optional SiLU (timm `BatchNormAct2d`).
#[derive(Debug)]
struct BnAct {
    bn: nn::BatchNorm,
    act: bool,
}

impl BnAct {
    fn new(p: nn::Path<'_>, dim: i64, flavour: Flavour, act: bool) -> Self {
        let cfg = nn::BatchNormConfig {
            eps: flavour.bn_eps(),
            ws_init: nn::Init::Const(1.0),
            ..Default::default()
        };
        BnAct {
            bn: nn::batch_norm2d(p, dim, cfg),
            act,
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let y = x.apply_t(&self.bn, train);
        if self.act { y.silu() } else { y }
    }
}

/// Squeeze-excitation (timm `SqueezeExcite`): mean → 1×1 → SiLU → 1×1 → sigmoid gate.
#[derive(Debug)]
struct SqueezeExcite {
    conv_reduce: nn::Conv2D,
    conv_expand: nn::Conv2D,
}

impl SqueezeExcite {
    fn forward(&self, x: &Tensor) -> Tensor {
        let s = x
            .mean_dim(&[2i64, 3][..], true, None)
            .apply(&self.conv_reduce)
            .silu()
            .apply(&self.conv_expand)
            .sigmoid();
        x * s
    }
}

/// One block; `ConvBnAct` holds `conv` and `bn1`.
#[derive(Debug)]
enum Block {
    ConvBnAct(Box<(Conv, BnAct)>),
    Fused(Box<Fused>),
    MbConv(Box<MbConv>),
}

/// The layers of a FusedMBConv block (boxed to keep `Block` small).
#[derive(Debug)]
struct Fused {
    conv_exp: Conv,
    bn1: BnAct,
    conv_pwl: Conv,
    bn2: BnAct,
}

/// The layers of an MBConv block (boxed to keep `Block` small).
#[derive(Debug)]
struct MbConv {
    conv_pw: Conv,
    bn1: BnAct,
    conv_dw: Conv,
    bn2: BnAct,
    se: SqueezeExcite,
    conv_pwl: Conv,
    bn3: BnAct,
}

#[derive(Debug)]
struct Residual {
    block: Block,
    skip: bool,
}

impl Residual {
    fn new(
        p: &nn::Path<'_>,
        kind: BlockKind,
        cin: i64,
        cout: i64,
        stride: i64,
        expand: i64,
        fl: Flavour,
    ) -> Self {
        let skip = stride == 1 && cin == cout;
        let block = match kind {
            BlockKind::ConvBnAct => Block::ConvBnAct(Box::new((
                Conv::new(p / "conv", cin, cout, 3, stride, 1, fl),
                BnAct::new(p / "bn1", cout, fl, true),
            ))),
            BlockKind::Fused => {
                let mid = make_divisible((cin * expand) as f64);
                Block::Fused(Box::new(Fused {
                    conv_exp: Conv::new(p / "conv_exp", cin, mid, 3, stride, 1, fl),
                    bn1: BnAct::new(p / "bn1", mid, fl, true),
                    conv_pwl: Conv::new(p / "conv_pwl", mid, cout, 1, 1, 1, fl),
                    bn2: BnAct::new(p / "bn2", cout, fl, false),
                }))
            }
            BlockKind::MbConv => {
                let mid = make_divisible((cin * expand) as f64);
                // timm: rd_ratio = 0.25 / exp_ratio of the expanded width,
                // rounded with Python's round (ties to even).
                let rd = (mid as f64 * (0.25 / expand as f64)).round_ties_even() as i64;
                let se = p / "se";
                let bias = nn::ConvConfig {
                    bias: true,
                    ..Default::default()
                };
                Block::MbConv(Box::new(MbConv {
                    conv_pw: Conv::new(p / "conv_pw", cin, mid, 1, 1, 1, fl),
                    bn1: BnAct::new(p / "bn1", mid, fl, true),
                    conv_dw: Conv::new(p / "conv_dw", mid, mid, 3, stride, mid, fl),
                    bn2: BnAct::new(p / "bn2", mid, fl, true),
                    se: SqueezeExcite {
                        conv_reduce: nn::conv2d(&se / "conv_reduce", mid, rd, 1, bias),
                        conv_expand: nn::conv2d(&se / "conv_expand", rd, mid, 1, bias),
                    },
                    conv_pwl: Conv::new(p / "conv_pwl", mid, cout, 1, 1, 1, fl),
                    bn3: BnAct::new(p / "bn3", cout, fl, false),
                }))
            }
        };
        Residual { block, skip }
    }

    /// The first convolution's weight (its kind is the block's).
    fn weight(&self) -> &Tensor {
        match &self.block {
            Block::ConvBnAct(b) => &b.0.conv.ws,
            Block::Fused(b) => &b.conv_exp.conv.ws,
            Block::MbConv(b) => &b.conv_pw.conv.ws,
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let y = match &self.block {
            Block::ConvBnAct(b) => {
                let (conv, bn1) = b.as_ref();
                bn1.forward(&conv.forward(x), train)
            }
            Block::Fused(b) => {
                let Fused {
                    conv_exp,
                    bn1,
                    conv_pwl,
                    bn2,
                } = b.as_ref();
                let y = bn1.forward(&conv_exp.forward(x), train);
                bn2.forward(&conv_pwl.forward(&y), train)
            }
            Block::MbConv(b) => {
                let MbConv {
                    conv_pw,
                    bn1,
                    conv_dw,
                    bn2,
                    se,
                    conv_pwl,
                    bn3,
                } = b.as_ref();
                let y = bn1.forward(&conv_pw.forward(x), train);
                let y = bn2.forward(&conv_dw.forward(&y), train);
                let y = se.forward(&y);
                bn3.forward(&conv_pwl.forward(&y), train)
            }
        };
        if self.skip { y + x } else { y }
    }
}

/// An EfficientNetV2 network with timm's key names.
#[derive(Debug)]
pub struct EfficientNetV2 {
    conv_stem: Conv,
    bn1: BnAct,
    blocks: Vec<Residual>,
    conv_head: Conv,
    bn2: BnAct,
    classifier: Option<nn::Linear>,
    num_features: i64,
    /// `blocks.i.j`: each block's output.
    taps: Vec<Tap>,
}

impl EfficientNetV2 {
    /// Creates the variables under `p`; `num_classes` 0 builds no `classifier`.
    pub fn new(
        p: &nn::Path<'_>,
        cfg: &EfficientNetV2Config,
        flavour: Flavour,
        num_classes: i64,
    ) -> Self {
        let conv_stem = Conv::new(p / "conv_stem", 3, cfg.stem, 3, 2, 1, flavour);
        let bn1 = BnAct::new(p / "bn1", cfg.stem, flavour, true);
        let mut blocks = Vec::new();
        let mut taps = Vec::new();
        let mut total_stride = 2;
        let mut cin = cfg.stem;
        for (i, stage) in cfg.stages.iter().enumerate() {
            for j in 0..stage.repeats {
                let stride = if j == 0 { stage.stride } else { 1 };
                total_stride *= stride;
                taps.push(Tap {
                    name: format!("blocks.{i}.{j}"),
                    channels: stage.out,
                    stride: total_stride,
                });
                let bp = p / "blocks" / i / j;
                blocks.push(Residual::new(
                    &bp,
                    stage.kind,
                    cin,
                    stage.out,
                    stride,
                    stage.expand,
                    flavour,
                ));
                cin = stage.out;
            }
        }
        let conv_head = Conv::new(p / "conv_head", cin, cfg.num_features, 1, 1, 1, flavour);
        let bn2 = BnAct::new(p / "bn2", cfg.num_features, flavour, true);
        let classifier = (num_classes > 0).then(|| {
            nn::linear(
                p / "classifier",
                cfg.num_features,
                num_classes,
                Default::default(),
            )
        });
        EfficientNetV2 {
            conv_stem,
            bn1,
            blocks,
            conv_head,
            bn2,
            classifier,
            num_features: cfg.num_features,
            taps,
        }
    }
}

impl EfficientNetV2 {
    /// The stem and the first `n` blocks.
    fn stem_and_blocks(&self, x: &Tensor, n: usize, train: bool) -> Tensor {
        let mut x = self.bn1.forward(&self.conv_stem.forward(x), train);
        for block in self.blocks.iter().take(n) {
            x = block.forward(&to_kind_of(&x, block.weight()), train);
        }
        x
    }
}

impl Architecture for EfficientNetV2 {
    fn forward_features(&self, x: &Tensor, train: bool) -> Tensor {
        let x = self.stem_and_blocks(x, self.blocks.len(), train);
        self.bn2.forward(&self.conv_head.forward(&x), train)
    }

    fn taps(&self) -> &[Tap] {
        &self.taps
    }

    fn forward_tap(&self, x: &Tensor, index: usize, train: bool) -> Option<Tensor> {
        (index < self.blocks.len()).then(|| self.stem_and_blocks(x, index + 1, train))
    }

    fn layout(&self) -> FeatureLayout {
        FeatureLayout::Spatial
    }

    fn num_features(&self) -> i64 {
        self.num_features
    }

    fn classifier(&self, pre_logits: &Tensor) -> Option<Tensor> {
        self.classifier.as_ref().map(|fc| pre_logits.apply(fc))
    }

    fn default_pooling(&self) -> DefaultPooling {
        DefaultPooling::Avg
    }

    fn full_precision_prefixes(&self) -> &'static [&'static str] {
        &["conv_stem.", "bn1.", "blocks.0.0.", "classifier."]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_matches_timm_rule() {
        // Worked by hand from timm's make_divisible(v, 8, round_limit=0.9).
        assert_eq!(make_divisible(96.0), 96);
        assert_eq!(make_divisible(100.0), 104); // int(104) // 8 * 8
        assert_eq!(make_divisible(99.0), 96); // int(103) // 8 * 8 = 96 >= 89.1
        assert_eq!(make_divisible(3.0), 8); // floor at the divisor
        assert_eq!(make_divisible(19.0), 24); // 16 < 0.9 * 19 = 17.1 → 24
    }

    #[test]
    fn same_padding_matches_tensorflow() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let conv = Conv::new(vs.root() / "c", 1, 1, 3, 2, 1, Flavour::Tf);
        // Even input 8: out 4, total (4-1)*2+3-8 = 1 → (0, 1); odd 7: out 4, total 2 → (1, 1).
        assert_eq!(conv.same_pad(8), (0, 1));
        assert_eq!(conv.same_pad(7), (1, 1));
        let x = Tensor::ones([1, 1, 8, 7], (tch::Kind::Float, tch::Device::Cpu));
        assert_eq!(conv.forward(&x).size(), vec![1, 1, 4, 4]);
    }
}
