//! The DISK U-Net, with the key names of kornia's `DISK.unet`.
//!
//! kornia builds it as `Unet(in_features=3, size=5, down=[16, 32, 64, 64, 64],
//! up=[64, 64, 64, 129])`:
//!
//! - `unet.path_down.<i>` (`i` in `0..5`) is a `Sequential(downsample, conv)`:
//!   block 0 keeps the resolution and its conv block has neither norm nor
//!   gate; blocks 1–4 first halve the resolution with a 2×2 average pool.
//! - `unet.path_up.<j>` (`j` in `0..4`) doubles the deeper map bilinearly
//!   (`align_corners = false`), concatenates it with the skip map of the same
//!   resolution (upsampled channels first) and applies a conv block.
//! - A conv block is `Sequential(norm, gate, dropout, conv)`: instance norm
//!   without affine parameters or running statistics (`eps = 1e-5`), PReLU
//!   with one slope per input channel (key `.1.weight`), an empty dropout,
//!   and a 5×5 convolution with bias and `"same"` (2-pixel) zero padding
//!   (keys `.3.weight`, `.3.bias`).
//!
//! The output has 129 channels: 128 descriptor channels, then the heatmap.
//! Height and width must be multiples of 16 (four poolings).

use tch::Tensor;
use tch::nn;

use crate::error::Result;

/// Channels after each down block.
const DOWN: [i64; 5] = [16, 32, 64, 64, 64];
/// Channels after each up block (the last is 128 descriptor channels + 1 heatmap).
const UP: [i64; 4] = [64, 64, 64, DESC_DIM + 1];
/// Side of every convolution kernel.
const KERNEL: i64 = 5;
/// Instance norm epsilon (PyTorch's default).
const NORM_EPS: f64 = 1e-5;

/// Descriptor dimension of the pretrained DISK.
pub(crate) const DESC_DIM: i64 = 128;
/// Height and width of the U-Net input must be multiples of this.
pub(crate) const DIVISOR: i64 = 16;

/// kornia's `Conv`: optional instance norm + PReLU, then a 5×5 "same" conv.
#[derive(Debug)]
struct ConvBlock {
    /// PReLU slopes (`<path>.1.weight`); `None` for the first down block,
    /// which has neither norm nor gate.
    gate: Option<Tensor>,
    conv: nn::Conv2D,
}

impl ConvBlock {
    fn new(p: &nn::Path<'_>, cin: i64, cout: i64, norm_and_gate: bool) -> Self {
        let gate = norm_and_gate.then(|| (p / 1).var("weight", &[cin], nn::Init::Const(0.25)));
        let cfg = nn::ConvConfig {
            padding: KERNEL / 2,
            bias: true,
            ..Default::default()
        };
        ConvBlock {
            gate,
            conv: nn::conv2d(p / 3, cin, cout, KERNEL, cfg),
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = match &self.gate {
            Some(slopes) => {
                // `cudnn_enabled = true` as `F.instance_norm` passes it (the
                // backend flag's default); the result is the same either way.
                let none: Option<&Tensor> = None;
                x.f_instance_norm(none, none, none, none, true, 0.1, NORM_EPS, true)?
                    .f_prelu(slopes)?
            }
            None => x.shallow_clone(),
        };
        Ok(x.f_conv2d(
            &self.conv.ws,
            self.conv.bs.as_ref(),
            [1, 1],
            [KERNEL / 2, KERNEL / 2],
            [1, 1],
            1,
        )?)
    }
}

/// The DISK U-Net (see the [module documentation](self)).
#[derive(Debug)]
pub(crate) struct Unet {
    down: Vec<ConvBlock>,
    up: Vec<ConvBlock>,
}

impl Unet {
    /// Creates the variables under `p` (the `unet` path).
    pub(crate) fn new(p: &nn::Path<'_>) -> Self {
        let path_down = p / "path_down";
        let mut cin = 3;
        let mut down = Vec::with_capacity(DOWN.len());
        for (i, &cout) in DOWN.iter().enumerate() {
            down.push(ConvBlock::new(&(&path_down / i / 1), cin, cout, i > 0));
            cin = cout;
        }
        let path_up = p / "path_up";
        // Skip maps, deepest first: the outputs of down blocks 3, 2, 1, 0.
        let skips = DOWN.iter().rev().skip(1);
        let mut bottom = DOWN[DOWN.len() - 1];
        let mut up = Vec::with_capacity(UP.len());
        for (j, (&cout, &skip)) in UP.iter().zip(skips).enumerate() {
            up.push(ConvBlock::new(
                &(&path_up / j / "conv"),
                bottom + skip,
                cout,
                true,
            ));
            bottom = cout;
        }
        Unet { down, up }
    }

    /// `[B, 3, H, W]` (H, W multiples of 16) to `[B, 129, H, W]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut features: Vec<Tensor> = Vec::with_capacity(self.down.len());
        let mut y = x.shallow_clone();
        for (i, block) in self.down.iter().enumerate() {
            if i > 0 {
                y = y.f_avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None)?;
            }
            y = block.forward(&y)?;
            features.push(y.shallow_clone());
        }
        // The deepest map starts the way up; the others are the skips.
        let mut bottom = y;
        features.pop();
        for (block, skip) in self.up.iter().zip(features.iter().rev()) {
            let size = skip.size();
            // `F.interpolate(scale_factor=2, mode="bilinear", align_corners=False)`.
            let big = bottom.f_upsample_bilinear2d([size[2], size[3]], false, 2.0, 2.0)?;
            bottom = block.forward(&Tensor::f_cat(&[&big, skip], 1)?)?;
        }
        Ok(bottom)
    }
}
