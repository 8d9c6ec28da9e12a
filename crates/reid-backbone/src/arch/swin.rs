//! Swin Transformer (timm key names).
//!
//! timm 1.x's `SwinTransformer` as `swin_{base,large}_patch4_window12_384`
//! build it (MegaDescriptor-L-384 is `swin_large_patch4_window12_384`):
//!
//! * `patch_embed.proj` (4×4 stride-4 convolution), then NHWC and
//!   `patch_embed.norm`;
//! * four stages `layers.N`; stages 1–3 start with patch merging
//!   (`layers.N.downsample.norm` on the 2×2-concatenated `4C` channels, then
//!   `layers.N.downsample.reduction`, `4C → 2C`, no bias);
//! * blocks `layers.N.blocks.M`: `norm1`, window attention (`attn.qkv`,
//!   `attn.proj`, `attn.relative_position_bias_table`
//!   `[(2w-1)², heads]`; the relative position index is computed here, not
//!   loaded), `norm2`, `mlp.fc1`, `mlp.fc2`. Odd blocks shift the windows by
//!   half a window (cyclic roll) and mask attention across the rolled seams
//!   (−100, computed at build time for the built size). Where a stage's
//!   resolution is not above the window, the window shrinks to the
//!   resolution and the shift is dropped, as in timm;
//! * final `norm` (all LayerNorms eps 1e-5) and `head.fc`.
//!
//! [`Architecture::forward_features`] returns timm's NHWC features permuted to
//! NCHW ([`FeatureLayout::Spatial`]); timm's head averages over H, W.

use reid_data::preprocess::Interpolation;
use tch::{Tensor, nn, nn::Module};

use super::transformer::{Mlp, dims, layer_norm, linear, merge_heads, split_qkv};
use super::{Architecture, BuildOptions, DefaultPooling, FeatureLayout, ModelSpec, to_kind_of};

/// timm's `IMAGENET_DEFAULT_MEAN` / `_STD`.
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// `nn.LayerNorm`'s default eps, which timm's Swin uses.
const LN_EPS: f64 = 1e-5;
/// The value timm puts between tokens of different regions of a shifted window.
const MASK_VALUE: f32 = -100.0;

/// The hyper-parameters of one Swin variant.
#[derive(Debug, Clone, Copy)]
struct SwinConfig {
    patch_size: i64,
    window: i64,
    embed_dim: i64,
    depths: [i64; 4],
    num_heads: [i64; 4],
}

/// `swin_base_patch4_window12_384`.
const SWIN_B_W12: SwinConfig = SwinConfig {
    patch_size: 4,
    window: 12,
    embed_dim: 128,
    depths: [2, 2, 18, 2],
    num_heads: [4, 8, 16, 32],
};
/// `swin_large_patch4_window12_384`.
const SWIN_L_W12: SwinConfig = SwinConfig {
    patch_size: 4,
    window: 12,
    embed_dim: 192,
    depths: [2, 2, 18, 2],
    num_heads: [6, 12, 24, 48],
};

fn build_b_w12(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(SwinTransformer::new(&SWIN_B_W12, p, opts))
}
fn build_l_w12(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(SwinTransformer::new(&SWIN_L_W12, p, opts))
}

/// The models of this family.
///
/// Defaults from timm 1.0.31's `pretrained_cfg` of each model's default tag
/// (`timm/models/swin_transformer.py`, `default_cfgs`,
/// `swin_{base,large}_patch4_window12_384.ms_in22k_ft_in1k`): 384 px, crop
/// 1.0, bicubic, ImageNet mean/std, 1000 classes.
pub const SPECS: &[ModelSpec] = &[
    ModelSpec {
        name: "swin_base_patch4_window12_384",
        family: "swin",
        input_size: 384,
        crop_pct: 1.0,
        interpolation: Interpolation::Bicubic,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        num_classes: 1000,
        num_features: 1024,
        build: build_b_w12,
    },
    ModelSpec {
        name: "swin_large_patch4_window12_384",
        family: "swin",
        input_size: 384,
        crop_pct: 1.0,
        interpolation: Interpolation::Bicubic,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        num_classes: 1000,
        num_features: 1536,
        build: build_l_w12,
    },
];

/// Pair-wise relative position index of a `wh × ww` window, flattened
/// `[(wh·ww)²]`: `(dy + wh - 1)·(2ww - 1) + (dx + ww - 1)` for tokens in
/// row-major order.
fn relative_position_index(wh: i64, ww: i64) -> Vec<i64> {
    let coords: Vec<(i64, i64)> = (0..wh).flat_map(|y| (0..ww).map(move |x| (y, x))).collect();
    let mut index = Vec::with_capacity(coords.len() * coords.len());
    for &(yi, xi) in &coords {
        for &(yj, xj) in &coords {
            index.push((yi - yj + wh - 1) * (2 * ww - 1) + (xi - xj + ww - 1));
        }
    }
    index
}

/// The shifted-window attention mask `[nW, N, N]` for a padded map
/// `hp × wp`: tokens are labelled by which of the 3×3 regions (cut at
/// `-window` and `-shift` from the end of each axis) they lie in after the
/// roll; pairs with different labels get −100, others 0.
fn shifted_window_mask(hp: i64, wp: i64, window: (i64, i64), shift: (i64, i64)) -> Tensor {
    let region = |v: i64, len: i64, win: i64, sh: i64| {
        if v < len - win {
            0
        } else if v < len - sh {
            1
        } else {
            2
        }
    };
    let (wh, ww) = window;
    let (nwh, nww) = (hp / wh, wp / ww);
    let n = wh * ww;
    let mut values = Vec::with_capacity((nwh * nww * n * n).max(0) as usize);
    for wy in 0..nwh {
        for wx in 0..nww {
            let labels: Vec<i64> = (0..wh)
                .flat_map(|iy| (0..ww).map(move |ix| (iy, ix)))
                .map(|(iy, ix)| {
                    3 * region(wy * wh + iy, hp, wh, shift.0)
                        + region(wx * ww + ix, wp, ww, shift.1)
                })
                .collect();
            for &a in &labels {
                for &b in &labels {
                    values.push(if a == b { 0.0 } else { MASK_VALUE });
                }
            }
        }
    }
    Tensor::from_slice(&values).reshape([nwh * nww, n, n])
}

/// Window multi-head self-attention with a learned relative position bias.
#[derive(Debug)]
struct WindowAttention {
    qkv: nn::Linear,
    proj: nn::Linear,
    table: Tensor,
    index: Tensor,
    num_heads: i64,
    window_area: i64,
    scale: f64,
}

impl WindowAttention {
    fn new(p: nn::Path<'_>, dim: i64, num_heads: i64, window: (i64, i64)) -> Self {
        let (wh, ww) = window;
        let head_dim = (dim / num_heads.max(1)).max(1);
        WindowAttention {
            qkv: linear(&p / "qkv", dim, 3 * dim, true),
            proj: linear(&p / "proj", dim, dim, true),
            table: p.var(
                "relative_position_bias_table",
                &[(2 * wh - 1) * (2 * ww - 1), num_heads],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            index: Tensor::from_slice(&relative_position_index(wh, ww)).to_device(p.device()),
            num_heads,
            window_area: wh * ww,
            scale: (head_dim as f64).powf(-0.5),
        }
    }

    /// `x`: `[B·nW, N, C]`; `mask`: `[nW, N, N]` (0 / −100) for shifted windows.
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let n = self.window_area;
        let (q, k, v) = split_qkv(&self.qkv.forward(x), self.num_heads);
        let bias = self
            .table
            .index_select(0, &self.index.to_device(self.table.device()))
            .view([n, n, -1])
            .permute([2, 0, 1])
            .unsqueeze(0);
        let mut attn = (q * self.scale).matmul(&k.transpose(-2, -1)) + bias;
        if let Some(mask) = mask {
            let [num_windows, _, _] = dims::<3>(mask);
            let mask = mask.to_device(attn.device()).to_kind(attn.kind());
            attn = (attn.view([-1, num_windows, self.num_heads, n, n])
                + mask.unsqueeze(1).unsqueeze(0))
            .view([-1, self.num_heads, n, n]);
        }
        let attn = attn.softmax(-1, attn.kind());
        self.proj.forward(&merge_heads(&attn.matmul(&v)))
    }
}

/// One Swin block on an NHWC map.
#[derive(Debug)]
struct SwinBlock {
    norm1: nn::LayerNorm,
    attn: WindowAttention,
    norm2: nn::LayerNorm,
    mlp: Mlp,
    window: (i64, i64),
    shift: (i64, i64),
    /// The padded resolution the precomputed mask is for.
    padded: (i64, i64),
    mask: Option<Tensor>,
}

fn pad_to(len: i64, win: i64) -> i64 {
    if win <= 0 {
        len
    } else {
        (len + win - 1) / win * win
    }
}

impl SwinBlock {
    fn new(
        p: nn::Path<'_>,
        dim: i64,
        num_heads: i64,
        resolution: (i64, i64),
        target_window: i64,
        shifted: bool,
    ) -> Self {
        // timm's `_calc_window_shift` (always_partition=False).
        let fit = |r: i64| {
            if r <= target_window {
                r.max(1)
            } else {
                target_window
            }
        };
        let window = (fit(resolution.0), fit(resolution.1));
        let target_shift = if shifted { target_window / 2 } else { 0 };
        let shift_of = |r: i64, w: i64| if r <= w { 0 } else { target_shift };
        let shift = (
            shift_of(resolution.0, window.0),
            shift_of(resolution.1, window.1),
        );
        let padded = (
            pad_to(resolution.0, window.0),
            pad_to(resolution.1, window.1),
        );
        let mask = (shift != (0, 0))
            .then(|| shifted_window_mask(padded.0, padded.1, window, shift).to_device(p.device()));
        SwinBlock {
            norm1: layer_norm(&p / "norm1", dim, LN_EPS),
            attn: WindowAttention::new(&p / "attn", dim, num_heads, window),
            norm2: layer_norm(&p / "norm2", dim, LN_EPS),
            mlp: Mlp::new(&p / "mlp", dim, 4 * dim),
            window,
            shift,
            padded,
            mask,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let [b, h, w, c] = dims::<4>(x);
        let (wh, ww) = self.window;
        let (sh, sw) = self.shift;
        let has_shift = self.shift != (0, 0);
        let mut s = self.norm1.forward(x);
        if has_shift {
            s = s.roll([-sh, -sw], [1, 2]);
        }
        let (hp, wp) = (pad_to(h, wh), pad_to(w, ww));
        if (hp, wp) != (h, w) {
            s = s.constant_pad_nd([0, 0, 0, wp - w, 0, hp - h]);
        }
        let windows = s
            .view([b, hp / wh, wh, wp / ww, ww, c])
            .permute([0, 1, 3, 2, 4, 5])
            .contiguous()
            .view([-1, wh * ww, c]);
        let dynamic_mask;
        let mask = match &self.mask {
            Some(m) if (hp, wp) == self.padded => Some(m),
            Some(_) => {
                // input of another size than built: timm's dynamic_mask path
                dynamic_mask = shifted_window_mask(hp, wp, self.window, self.shift);
                Some(&dynamic_mask)
            }
            None => None,
        };
        let a = self.attn.forward(&windows, mask);
        let mut a = a
            .view([-1, hp / wh, wp / ww, wh, ww, c])
            .permute([0, 1, 3, 2, 4, 5])
            .contiguous()
            .view([-1, hp, wp, c]);
        if (hp, wp) != (h, w) {
            a = a.narrow(1, 0, h).narrow(2, 0, w);
        }
        if has_shift {
            a = a.roll([sh, sw], [1, 2]);
        }
        let x = (x + a).reshape([b, -1, c]);
        let x = &x + self.mlp.forward(&self.norm2.forward(&x));
        x.reshape([b, h, w, c])
    }
}

/// timm's `PatchMerging`: 2×2 neighbours concatenated (order x0, x1, x2, x3
/// of the original Swin = row offset fastest), LayerNorm, linear `4C → 2C`.
#[derive(Debug)]
struct PatchMerging {
    norm: nn::LayerNorm,
    reduction: nn::Linear,
}

impl PatchMerging {
    fn new(p: nn::Path<'_>, dim: i64, out_dim: i64) -> Self {
        PatchMerging {
            norm: layer_norm(&p / "norm", 4 * dim, LN_EPS),
            reduction: linear(&p / "reduction", 4 * dim, out_dim, false),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let [b, h, w, c] = dims::<4>(x);
        let x = if h % 2 != 0 || w % 2 != 0 {
            x.constant_pad_nd([0, 0, 0, w % 2, 0, h % 2])
        } else {
            x.shallow_clone()
        };
        let (h, w) = (h + h % 2, w + w % 2);
        let x = x
            .reshape([b, h / 2, 2, w / 2, 2, c])
            .permute([0, 1, 3, 4, 2, 5])
            .flatten(3, -1);
        self.reduction.forward(&self.norm.forward(&x))
    }
}

#[derive(Debug)]
struct Stage {
    downsample: Option<PatchMerging>,
    blocks: Vec<SwinBlock>,
}

/// timm's `SwinTransformer` (NHWC internally).
#[derive(Debug)]
struct SwinTransformer {
    patch_embed: nn::Conv2D,
    patch_norm: nn::LayerNorm,
    stages: Vec<Stage>,
    norm: nn::LayerNorm,
    head: Option<nn::Linear>,
    num_features: i64,
}

impl SwinTransformer {
    fn new(cfg: &SwinConfig, p: &nn::Path<'_>, opts: &BuildOptions) -> Self {
        let g = (opts.img_size / cfg.patch_size).max(1);
        let conv = nn::ConvConfig {
            stride: cfg.patch_size,
            ..Default::default()
        };
        let mut stages = Vec::with_capacity(cfg.depths.len());
        let mut res = (g, g);
        let mut in_dim = cfg.embed_dim;
        for (i, (&depth, &heads)) in cfg.depths.iter().zip(&cfg.num_heads).enumerate() {
            let sp = p / "layers" / i;
            let out_dim = cfg.embed_dim << i;
            let downsample = (i > 0).then(|| {
                res = ((res.0 + 1) / 2, (res.1 + 1) / 2);
                PatchMerging::new(&sp / "downsample", in_dim, out_dim)
            });
            let blocks = (0..depth)
                .map(|j| {
                    SwinBlock::new(
                        &sp / "blocks" / j,
                        out_dim,
                        heads,
                        res,
                        cfg.window,
                        j % 2 == 1,
                    )
                })
                .collect();
            stages.push(Stage { downsample, blocks });
            in_dim = out_dim;
        }
        SwinTransformer {
            patch_embed: nn::conv2d(
                p / "patch_embed" / "proj",
                3,
                cfg.embed_dim,
                cfg.patch_size,
                conv,
            ),
            patch_norm: layer_norm(p / "patch_embed" / "norm", cfg.embed_dim, LN_EPS),
            stages,
            norm: layer_norm(p / "norm", in_dim, LN_EPS),
            head: (opts.num_classes > 0)
                .then(|| linear(p / "head" / "fc", in_dim, opts.num_classes, true)),
            num_features: in_dim,
        }
    }
}

impl Architecture for SwinTransformer {
    fn forward_features(&self, x: &Tensor, _train: bool) -> Tensor {
        let mut x = self
            .patch_norm
            .forward(&self.patch_embed.forward(x).permute([0, 2, 3, 1]));
        for stage in &self.stages {
            if let Some(d) = &stage.downsample {
                x = d.forward(&x);
            }
            for block in &stage.blocks {
                x = block.forward(&to_kind_of(&x, &block.attn.qkv.ws));
            }
        }
        self.norm.forward(&x).permute([0, 3, 1, 2])
    }

    fn layout(&self) -> FeatureLayout {
        FeatureLayout::Spatial
    }

    fn num_features(&self) -> i64 {
        self.num_features
    }

    fn classifier(&self, pre_logits: &Tensor) -> Option<Tensor> {
        self.head.as_ref().map(|h| h.forward(pre_logits))
    }

    fn default_pooling(&self) -> DefaultPooling {
        DefaultPooling::Avg
    }

    fn full_precision_prefixes(&self) -> &'static [&'static str] {
        &["patch_embed.", "layers.0.blocks.0.", "head."]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    /// Hand-worked: a 2×2 window has offsets dy, dx ∈ {-1, 0, 1}; index =
    /// (dy + 1)·3 + (dx + 1). Token 0 = (0,0), 3 = (1,1).
    #[test]
    fn relative_index_2x2() {
        let idx = relative_position_index(2, 2);
        assert_eq!(idx.len(), 16);
        // row of token 0 against tokens (0,0) (0,1) (1,0) (1,1)
        assert_eq!(&idx[0..4], &[4, 3, 1, 0]);
        // row of token 3 = (1,1)
        assert_eq!(&idx[12..16], &[8, 7, 5, 4]);
    }

    /// Hand-worked: a 4×4 map, window 2, shift 1. Regions per axis: [0,2) → 0,
    /// [2,3) → 1, [3,4) → 2. The bottom-right window holds (2,2) (2,3) (3,2)
    /// (3,3) with labels 4, 5, 7, 8: all different.
    #[test]
    fn shifted_mask_4x4() {
        let m = shifted_window_mask(4, 4, (2, 2), (1, 1));
        assert_eq!(m.size(), vec![4, 4, 4]);
        // first window: all in region (0, 0)
        assert_eq!(m.get(0).abs().sum(Kind::Float).double_value(&[]), 0.0);
        // last window: only the diagonal is 0
        let last = m.get(3);
        for i in 0..4 {
            for j in 0..4 {
                let want = if i == j { 0.0 } else { -100.0 };
                assert_eq!(last.double_value(&[i, j]), want);
            }
        }
        // top-right window (rows 0-1, cols 2-3): labels 1, 2, 1, 2
        let tr = m.get(1);
        assert_eq!(tr.double_value(&[0, 2]), 0.0);
        assert_eq!(tr.double_value(&[0, 1]), -100.0);
    }
}
