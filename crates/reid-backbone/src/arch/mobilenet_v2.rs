//! MobileNetV2 with torchvision's key names.
//!
//! torchvision's `mobilenet_v2` (width 1.0): `features.0` is the 3×3 stride-2
//! stem (`features.0.0` conv, `features.0.1` batch norm), `features.1` …
//! `features.17` are inverted residual blocks (`features.N.conv.*`),
//! `features.18` the 1×1 head to 1280 channels, and `classifier.1` the linear
//! layer (`classifier.0` is dropout). ReLU6 activations, symmetric padding
//! `(k - 1) / 2`, batch norm with PyTorch's defaults (`eps = 1e-5`), so
//! torchvision's ImageNet weights ([`Pretrained::MobileNetV2`](crate::weights::Pretrained))
//! load as they are.

use reid_data::preprocess::{IMAGENET_MEAN, IMAGENET_STD, Interpolation};
use tch::Tensor;
use tch::nn::{self, Module};

use super::{
    Architecture, BuildOptions, ConvGeometry, DefaultPooling, FeatureLayout, ModelSpec, Tap,
    add_in_place, conv_bn, relu6_in_place, to_kind_of,
};

/// Batch-norm epsilon (PyTorch's default).
const BN_EPS: f64 = 1e-5;

/// Stem and head widths.
const STEM: i64 = 32;
const HEAD: i64 = 1280;

/// The inverted residual settings `(t, c, n, s)` of the MobileNetV2 paper
/// (expansion, output channels, repeats, first stride).
const SETTINGS: [(i64, i64, usize, i64); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Convolution + batch norm (+ ReLU6), torchvision's `Conv2dNormActivation`
/// (`<path>.0` conv, `<path>.1` batch norm); in eval mode one convolution
/// with the batch norm folded in ([`conv_bn`]).
#[derive(Debug)]
struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
    geom: ConvGeometry,
    relu: bool,
}

impl ConvBn {
    fn new(
        p: &nn::Path<'_>,
        cin: i64,
        cout: i64,
        kernel: i64,
        stride: i64,
        groups: i64,
        relu: bool,
    ) -> Self {
        Self::at(
            &(p / 0),
            &(p / 1),
            [cin, cout, kernel, stride, groups],
            relu,
        )
    }

    /// The convolution under `conv_p` and its batch norm under `bn_p`;
    /// `[cin, cout, kernel, stride, groups]`.
    fn at(conv_p: &nn::Path<'_>, bn_p: &nn::Path<'_>, shape: [i64; 5], relu: bool) -> Self {
        let [cin, cout, kernel, stride, groups] = shape;
        let geom = ConvGeometry {
            stride,
            padding: (kernel - 1) / 2,
            groups,
        };
        let cfg = nn::ConvConfig {
            stride,
            padding: geom.padding,
            groups,
            bias: false,
            ..Default::default()
        };
        ConvBn {
            conv: nn::conv2d(conv_p, cin, cout, kernel, cfg),
            bn: nn::batch_norm2d(bn_p, cout, Default::default()),
            geom,
            relu,
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let y = conv_bn(x, &self.conv, self.geom, &self.bn, BN_EPS, train);
        if self.relu { relu6_in_place(y) } else { y }
    }
}

/// torchvision's `InvertedResidual`: optional 1×1 expansion, 3×3 depthwise,
/// linear 1×1 projection; residual when stride 1 and widths match.
#[derive(Debug)]
struct InvertedResidual {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    /// The linear projection (`conv.<i+1>` conv, `conv.<i+2>` batch norm).
    project: ConvBn,
    residual: bool,
}

impl InvertedResidual {
    fn new(p: &nn::Path<'_>, cin: i64, cout: i64, stride: i64, expand: i64) -> Self {
        let conv = p / "conv";
        let hidden = cin * expand;
        // Index of the module inside `conv`: expansion (if any) comes first.
        let mut i = 0i64;
        let expand = (expand != 1).then(|| {
            i += 1;
            ConvBn::new(&(&conv / 0), cin, hidden, 1, 1, 1, true)
        });
        let depthwise = ConvBn::new(&(&conv / i), hidden, hidden, 3, stride, hidden, true);
        let project = ConvBn::at(
            &(&conv / (i + 1)),
            &(&conv / (i + 2)),
            [hidden, cout, 1, 1, 1],
            false,
        );
        InvertedResidual {
            expand,
            depthwise,
            project,
            residual: stride == 1 && cin == cout,
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let y = match &self.expand {
            Some(e) => e.forward(x, train),
            None => x.shallow_clone(),
        };
        let y = self.depthwise.forward(&y, train);
        let y = self.project.forward(&y, train);
        if self.residual { add_in_place(y, x) } else { y }
    }
}

/// MobileNetV2 (width 1.0), see the [module documentation](self).
#[derive(Debug)]
pub struct MobileNetV2 {
    stem: ConvBn,
    blocks: Vec<InvertedResidual>,
    head: ConvBn,
    classifier: Option<nn::Linear>,
    /// `features.0` … `features.18`: the stem, each block and the head.
    taps: Vec<Tap>,
}

impl MobileNetV2 {
    /// Creates the variables under `p` with torchvision's key names.
    /// `opts.img_size` is not needed (fully convolutional).
    pub fn new(p: &nn::Path<'_>, opts: &BuildOptions) -> Self {
        let features = p / "features";
        let stem = ConvBn::new(&(&features / 0), 3, STEM, 3, 2, 1, true);
        let mut blocks = Vec::new();
        let mut cin = STEM;
        let tap = |index: i64, channels: i64, stride: i64| Tap {
            name: format!("features.{index}"),
            channels,
            stride,
        };
        let mut total_stride = 2;
        let mut taps = vec![tap(0, STEM, total_stride)];
        for &(t, c, n, s) in &SETTINGS {
            for r in 0..n {
                let stride = if r == 0 { s } else { 1 };
                let index = blocks.len() as i64 + 1;
                total_stride *= stride;
                taps.push(tap(index, c, total_stride));
                blocks.push(InvertedResidual::new(
                    &(&features / index),
                    cin,
                    c,
                    stride,
                    t,
                ));
                cin = c;
            }
        }
        let head_index = blocks.len() as i64 + 1;
        let head = ConvBn::new(&(&features / head_index), cin, HEAD, 1, 1, 1, true);
        taps.push(tap(head_index, HEAD, total_stride));
        let classifier = (opts.num_classes > 0).then(|| {
            nn::linear(
                p / "classifier" / 1,
                HEAD,
                opts.num_classes,
                Default::default(),
            )
        });
        MobileNetV2 {
            stem,
            blocks,
            head,
            classifier,
            taps,
        }
    }
}

impl MobileNetV2 {
    /// The stem and the first `n` blocks.
    fn stem_and_blocks(&self, x: &Tensor, n: usize, train: bool) -> Tensor {
        let mut y = self.stem.forward(x, train);
        for block in self.blocks.iter().take(n) {
            y = block.forward(&to_kind_of(&y, &block.depthwise.conv.ws), train);
        }
        y
    }
}

impl Architecture for MobileNetV2 {
    fn forward_features(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.stem_and_blocks(x, self.blocks.len(), train);
        self.head.forward(&y, train)
    }

    fn layout(&self) -> FeatureLayout {
        FeatureLayout::Spatial
    }

    fn num_features(&self) -> i64 {
        HEAD
    }

    fn classifier(&self, pre_logits: &Tensor) -> Option<Tensor> {
        self.classifier.as_ref().map(|fc| fc.forward(pre_logits))
    }

    fn default_pooling(&self) -> DefaultPooling {
        DefaultPooling::Avg
    }

    fn full_precision_prefixes(&self) -> &'static [&'static str] {
        &["features.0.", "features.1.", "classifier."]
    }

    fn taps(&self) -> &[Tap] {
        &self.taps
    }

    fn forward_tap(&self, x: &Tensor, index: usize, train: bool) -> Option<Tensor> {
        // features.0 is the stem, features.1 … features.17 the blocks,
        // features.18 the head.
        match index.cmp(&(self.blocks.len() + 1)) {
            std::cmp::Ordering::Less => Some(self.stem_and_blocks(x, index, train)),
            std::cmp::Ordering::Equal => Some(self.forward_features(x, train)),
            std::cmp::Ordering::Greater => None,
        }
    }
}

fn build(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(MobileNetV2::new(p, opts))
}

/// The models of this family.
///
/// Preprocessing is torchvision's for `MobileNet_V2_Weights.IMAGENET1K_V1`
/// (`ImageClassification(crop_size=224)`: resize the shorter side to 256
/// bilinear with antialiasing, centre-crop 224, ImageNet mean/std), i.e.
/// crop_pct 224/256 = 0.875.
pub const SPECS: &[ModelSpec] = &[ModelSpec {
    name: "mobilenet_v2",
    family: "mobilenet_v2",
    input_size: 224,
    crop_pct: 0.875,
    interpolation: Interpolation::Bilinear,
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    num_classes: 1000,
    num_features: HEAD,
    build,
}];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_follow_torchvision() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let opts = BuildOptions {
            num_classes: 1000,
            img_size: 224,
        };
        let _m = MobileNetV2::new(&vs.root(), &opts);
        let vars = vs.variables();
        // Block without expansion: dw conv at conv.0, projection at conv.1/conv.2.
        for k in [
            "features.0.0.weight",
            "features.1.conv.0.0.weight",
            "features.1.conv.1.weight",
            "features.1.conv.2.running_var",
            "features.2.conv.0.0.weight",
            "features.2.conv.1.1.bias",
            "features.2.conv.3.weight",
            "features.17.conv.2.weight",
            "features.18.1.running_mean",
            "classifier.1.weight",
        ] {
            assert!(vars.contains_key(k), "missing {k}");
        }
        assert_eq!(
            vars["features.2.conv.0.0.weight"].size(),
            vec![96, 16, 1, 1]
        );
        assert_eq!(vars["features.18.0.weight"].size(), vec![1280, 320, 1, 1]);
        assert!(!vars.contains_key("features.19.0.weight"));
    }
}
