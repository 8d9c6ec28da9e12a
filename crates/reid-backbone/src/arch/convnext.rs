//! ConvNeXt (timm key names).
//!
//! Layout as in timm 1.0.31's `ConvNeXt` with the default `patch` stem and
//! `conv_mlp=False`: `stem.0` (4×4 conv, stride 4) and `stem.1` (LayerNorm2d);
//! four stages `stages.N` whose stages 1–3 start with `downsample.0`
//! (LayerNorm2d) and `downsample.1` (2×2 conv, stride 2); blocks
//! `stages.N.blocks.M` with `conv_dw` (7×7 depthwise), `norm` (LayerNorm over
//! channels, channels-last), `mlp.fc1` → exact GELU → `mlp.fc2` and the
//! layer scale `gamma`; head `head.norm` (applied after pooling) and `head.fc`.
//! Every LayerNorm uses eps 1e-6.

use reid_data::preprocess::Interpolation;
use tch::Tensor;
use tch::nn::{self, Module};

use super::{
    Architecture, BuildOptions, DefaultPooling, FeatureLayout, ModelSpec, Tap, add_in_place,
    gelu_owned, mul_owned, to_kind_of,
};

/// LayerNorm eps of every ConvNeXt norm (timm's `LayerNorm`/`LayerNorm2d` default).
const LN_EPS: f64 = 1e-6;

/// ImageNet mean (timm `IMAGENET_DEFAULT_MEAN`).
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet std (timm `IMAGENET_DEFAULT_STD`).
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Depths and widths of the four stages of one ConvNeXt size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvNeXtConfig {
    /// Blocks per stage.
    pub depths: [usize; 4],
    /// Channels per stage.
    pub dims: [i64; 4],
}

/// ConvNeXt-Tiny (timm `convnext_tiny`).
pub const TINY: ConvNeXtConfig = ConvNeXtConfig {
    depths: [3, 3, 9, 3],
    dims: [96, 192, 384, 768],
};
/// ConvNeXt-Small (timm `convnext_small`).
pub const SMALL: ConvNeXtConfig = ConvNeXtConfig {
    depths: [3, 3, 27, 3],
    dims: [96, 192, 384, 768],
};
/// ConvNeXt-Base (timm `convnext_base`).
pub const BASE: ConvNeXtConfig = ConvNeXtConfig {
    depths: [3, 3, 27, 3],
    dims: [128, 256, 512, 1024],
};

// Preprocessing from timm 1.0.31 `convnext.py` pretrained_cfg of each model's
// default tag (the first tag listed for the name): input_size 224 (the size
// the weights were trained and evaluated at; timm also lists test_input_size
// 288 with test_crop_pct 1.0), bicubic, ImageNet mean/std, 1000 classes.
// convnext_tiny / convnext_small: tag `in12k_ft_in1k`, crop_pct 0.95;
// convnext_base: tag `fb_in22k_ft_in1k`, crop_pct 0.875.
/// The models of this family.
pub const SPECS: &[ModelSpec] = &[
    ModelSpec {
        name: "convnext_tiny",
        family: "convnext",
        input_size: 224,
        crop_pct: 0.95,
        interpolation: Interpolation::Bicubic,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        num_classes: 1000,
        num_features: 768,
        build: build_tiny,
    },
    ModelSpec {
        name: "convnext_small",
        family: "convnext",
        input_size: 224,
        crop_pct: 0.95,
        interpolation: Interpolation::Bicubic,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        num_classes: 1000,
        num_features: 768,
        build: build_small,
    },
    ModelSpec {
        name: "convnext_base",
        family: "convnext",
        input_size: 224,
        crop_pct: 0.875,
        interpolation: Interpolation::Bicubic,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        num_classes: 1000,
        num_features: 1024,
        build: build_base,
    },
];

fn build_tiny(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(ConvNeXt::new(p, &TINY, opts.num_classes))
}

fn build_small(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(ConvNeXt::new(p, &SMALL, opts.num_classes))
}

fn build_base(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(ConvNeXt::new(p, &BASE, opts.num_classes))
}

fn layer_norm(p: nn::Path<'_>, dim: i64) -> nn::LayerNorm {
    nn::layer_norm(
        p,
        vec![dim],
        nn::LayerNormConfig {
            eps: LN_EPS,
            ..Default::default()
        },
    )
}

/// LayerNorm over the channels of an NCHW tensor (timm `LayerNorm2d`).
fn layer_norm_2d(norm: &nn::LayerNorm, x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).apply(norm).permute([0, 3, 1, 2])
}

/// One ConvNeXt block (timm `ConvNeXtBlock`, channels-last MLP).
#[derive(Debug)]
struct Block {
    conv_dw: nn::Conv2D,
    norm: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    gamma: Tensor,
}

impl Block {
    fn new(p: &nn::Path<'_>, dim: i64) -> Self {
        let dw = nn::ConvConfig {
            padding: 3,
            groups: dim,
            ..Default::default()
        };
        let mlp = p / "mlp";
        Block {
            conv_dw: nn::conv2d(p / "conv_dw", dim, dim, 7, dw),
            norm: layer_norm(p / "norm", dim),
            fc1: nn::linear(&mlp / "fc1", dim, 4 * dim, Default::default()),
            fc2: nn::linear(&mlp / "fc2", 4 * dim, dim, Default::default()),
            gamma: p.var("gamma", &[dim], nn::Init::Const(1e-6)),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        // Channels-last: layer scale multiplies the last (channel) dimension.
        // Each fresh activation is reused in place where autograd allows
        // (fresh buffers above glibc's mmap threshold are zeroed pages).
        let h = x
            .apply(&self.conv_dw)
            .permute([0, 2, 3, 1])
            .apply(&self.norm)
            .apply(&self.fc1);
        let y = mul_owned(gelu_owned(h).apply(&self.fc2), &self.gamma);
        add_in_place(y.permute([0, 3, 1, 2]), x)
    }
}

/// One stage: optional downsample, then blocks.
#[derive(Debug)]
struct Stage {
    downsample: Option<(nn::LayerNorm, nn::Conv2D)>,
    blocks: Vec<Block>,
}

/// A ConvNeXt network with timm's key names.
#[derive(Debug)]
pub struct ConvNeXt {
    stem_conv: nn::Conv2D,
    stem_norm: nn::LayerNorm,
    stages: Vec<Stage>,
    head_norm: nn::LayerNorm,
    fc: Option<nn::Linear>,
    num_features: i64,
    /// `stages.0` … `stages.3`: each stage's output (strides 4 to 32).
    taps: Vec<Tap>,
}

impl ConvNeXt {
    /// Creates the variables under `p`; `num_classes` 0 builds no `head.fc`.
    pub fn new(p: &nn::Path<'_>, cfg: &ConvNeXtConfig, num_classes: i64) -> Self {
        let [d0, ..] = cfg.dims;
        let stem = p / "stem";
        let stem_cfg = nn::ConvConfig {
            stride: 4,
            ..Default::default()
        };
        let stem_conv = nn::conv2d(&stem / 0, 3, d0, 4, stem_cfg);
        let stem_norm = layer_norm(&stem / 1, d0);
        let mut stages = Vec::with_capacity(4);
        let mut taps = Vec::with_capacity(4);
        let mut prev = d0;
        for (i, (&depth, &dim)) in cfg.depths.iter().zip(cfg.dims.iter()).enumerate() {
            let sp = p / "stages" / i;
            let downsample = (i > 0).then(|| {
                let ds = &sp / "downsample";
                let conv_cfg = nn::ConvConfig {
                    stride: 2,
                    ..Default::default()
                };
                (
                    layer_norm(&ds / 0, prev),
                    nn::conv2d(&ds / 1, prev, dim, 2, conv_cfg),
                )
            });
            let blocks = (0..depth)
                .map(|j| Block::new(&(&sp / "blocks" / j), dim))
                .collect();
            stages.push(Stage { downsample, blocks });
            taps.push(Tap {
                name: format!("stages.{i}"),
                channels: dim,
                stride: 4 << i,
            });
            prev = dim;
        }
        let head = p / "head";
        let head_norm = layer_norm(&head / "norm", prev);
        let fc = (num_classes > 0)
            .then(|| nn::linear(&head / "fc", prev, num_classes, Default::default()));
        ConvNeXt {
            stem_conv,
            stem_norm,
            stages,
            head_norm,
            fc,
            num_features: prev,
            taps,
        }
    }
}

impl ConvNeXt {
    /// The stem and the first `n` stages. No batch norm or dropout;
    /// drop-path is identity (rate 0 by default).
    fn stages_up_to(&self, x: &Tensor, n: usize) -> Tensor {
        let mut x = layer_norm_2d(&self.stem_norm, &x.apply(&self.stem_conv));
        for stage in self.stages.iter().take(n) {
            if let Some((norm, conv)) = &stage.downsample {
                x = layer_norm_2d(norm, &x).apply(conv);
            }
            for block in &stage.blocks {
                x = block.forward(&to_kind_of(&x, &block.conv_dw.ws));
            }
        }
        x
    }
}

impl Architecture for ConvNeXt {
    fn forward_features(&self, x: &Tensor, _train: bool) -> Tensor {
        self.stages_up_to(x, self.stages.len())
    }

    fn taps(&self) -> &[Tap] {
        &self.taps
    }

    fn forward_tap(&self, x: &Tensor, index: usize, _train: bool) -> Option<Tensor> {
        (index < self.stages.len()).then(|| self.stages_up_to(x, index + 1))
    }

    fn layout(&self) -> FeatureLayout {
        FeatureLayout::Spatial
    }

    fn num_features(&self) -> i64 {
        self.num_features
    }

    fn pre_logits(&self, pooled: &Tensor, _train: bool) -> Tensor {
        // timm's `head.norm` is a LayerNorm2d on [B, C, 1, 1]: a LayerNorm over C.
        self.head_norm.forward(pooled)
    }

    fn classifier(&self, pre_logits: &Tensor) -> Option<Tensor> {
        self.fc.as_ref().map(|fc| pre_logits.apply(fc))
    }

    fn default_pooling(&self) -> DefaultPooling {
        DefaultPooling::Avg
    }

    fn full_precision_prefixes(&self) -> &'static [&'static str] {
        &["stem.", "stages.0.blocks.0.", "head."]
    }
}
