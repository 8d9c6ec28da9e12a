//! Vision Transformer and DINOv2 (timm key names).
//!
//! timm's `VisionTransformer` as its `vit_base_patch16_{224,384}` and
//! `vit_{small,base,large}_patch14_dinov2` entries build it: a strided
//! convolution patch embedding (`patch_embed.proj`), a class token
//! (`cls_token`), a learned position embedding that covers the class token
//! (`pos_embed`, `[1, 1 + gh·gw, D]`), pre-norm blocks (`blocks.N.norm1`,
//! `attn.qkv` with bias, `attn.proj`, `norm2`, `mlp.fc1`, `mlp.fc2`, and for
//! DINOv2 LayerScale `ls1.gamma` / `ls2.gamma`), a final `norm` (LayerNorm,
//! eps 1e-6) and a linear `head`. Pooling is the class token; `fc_norm` is
//! identity for class-token pooling, so [`Architecture::pre_logits`] is too.
//!
//! The position embedding is sized for `img_size / patch_size` patches per
//! side. A checkpoint made at another size is resampled with
//! [`resample_abs_pos_embed`] / [`resample_checkpoint_pos_embed`]; an input
//! whose patch grid differs from the built one gets the embedding resampled
//! on the fly (bicubic with antialias, as timm's `dynamic_img_size` does).

use reid_data::preprocess::Interpolation;
use tch::{Kind, Tensor, nn, nn::Module};

use super::transformer::{Mlp, dims, layer_norm, linear, merge_heads, split_qkv};
use super::{Architecture, BuildOptions, DefaultPooling, FeatureLayout, ModelSpec, to_kind_of};
use crate::{BackboneError, Result};

/// timm's `IMAGENET_INCEPTION_MEAN` / `_STD` (the original ViT weights).
const INCEPTION_MEAN: [f32; 3] = [0.5, 0.5, 0.5];
const INCEPTION_STD: [f32; 3] = [0.5, 0.5, 0.5];
/// timm's `IMAGENET_DEFAULT_MEAN` / `_STD` (DINOv2).
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The hyper-parameters of one ViT variant.
#[derive(Debug, Clone, Copy)]
struct VitConfig {
    patch_size: i64,
    embed_dim: i64,
    depth: i64,
    num_heads: i64,
    /// LayerScale init value; `Some` creates `ls1.gamma` / `ls2.gamma`.
    layer_scale: Option<f64>,
}

/// `vit_base_patch16_*`: patch 16, 768 wide, 12 blocks, 12 heads.
const VIT_B16: VitConfig = VitConfig {
    patch_size: 16,
    embed_dim: 768,
    depth: 12,
    num_heads: 12,
    layer_scale: None,
};
/// `vit_small_patch14_dinov2`: patch 14, 384 wide, 12 blocks, 6 heads, LayerScale 1e-5.
const VIT_S14_DINOV2: VitConfig = VitConfig {
    patch_size: 14,
    embed_dim: 384,
    depth: 12,
    num_heads: 6,
    layer_scale: Some(1e-5),
};
/// `vit_base_patch14_dinov2`: patch 14, 768 wide, 12 blocks, 12 heads, LayerScale 1e-5.
const VIT_B14_DINOV2: VitConfig = VitConfig {
    patch_size: 14,
    embed_dim: 768,
    depth: 12,
    num_heads: 12,
    layer_scale: Some(1e-5),
};
/// `vit_large_patch14_dinov2`: patch 14, 1024 wide, 24 blocks, 16 heads, LayerScale 1e-5.
const VIT_L14_DINOV2: VitConfig = VitConfig {
    patch_size: 14,
    embed_dim: 1024,
    depth: 24,
    num_heads: 16,
    layer_scale: Some(1e-5),
};

/// timm's LayerNorm eps for ViT.
const LN_EPS: f64 = 1e-6;

fn build_b16(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(VisionTransformer::new(&VIT_B16, p, opts))
}
fn build_s14_dinov2(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(VisionTransformer::new(&VIT_S14_DINOV2, p, opts))
}
fn build_b14_dinov2(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(VisionTransformer::new(&VIT_B14_DINOV2, p, opts))
}
fn build_l14_dinov2(p: &nn::Path<'_>, opts: &BuildOptions) -> Box<dyn Architecture> {
    Box::new(VisionTransformer::new(&VIT_L14_DINOV2, p, opts))
}

/// The models of this family.
///
/// Defaults from timm 1.0.31's `pretrained_cfg` of each model's default tag
/// (`timm/models/vision_transformer.py`, `default_cfgs`):
/// `vit_base_patch16_224.augreg2_in21k_ft_in1k` (224, crop 0.9, bicubic,
/// inception mean/std 0.5), `vit_base_patch16_384.augreg_in21k_ft_in1k` (384,
/// crop 1.0), `vit_{small,base,large}_patch14_dinov2.lvd142m` (518, crop 1.0,
/// bicubic, ImageNet mean/std, `num_classes=0`: no classifier).
pub const SPECS: &[ModelSpec] = &[
    ModelSpec {
        name: "vit_base_patch16_224",
        family: "vit",
        input_size: 224,
        crop_pct: 0.9,
        interpolation: Interpolation::Bicubic,
        mean: INCEPTION_MEAN,
        std: INCEPTION_STD,
        num_classes: 1000,
        num_features: 768,
        build: build_b16,
    },
    ModelSpec {
        name: "vit_base_patch16_384",
        family: "vit",
        input_size: 384,
        crop_pct: 1.0,
        interpolation: Interpolation::Bicubic,
        mean: INCEPTION_MEAN,
        std: INCEPTION_STD,
        num_classes: 1000,
        num_features: 768,
        build: build_b16,
    },
    ModelSpec {
        name: "vit_small_patch14_dinov2",
        family: "dinov2",
        input_size: 518,
        crop_pct: 1.0,
        interpolation: Interpolation::Bicubic,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        num_classes: 0,
        num_features: 384,
        build: build_s14_dinov2,
    },
    ModelSpec {
        name: "vit_base_patch14_dinov2",
        family: "dinov2",
        input_size: 518,
        crop_pct: 1.0,
        interpolation: Interpolation::Bicubic,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        num_classes: 0,
        num_features: 768,
        build: build_b14_dinov2,
    },
    ModelSpec {
        name: "vit_large_patch14_dinov2",
        family: "dinov2",
        input_size: 518,
        crop_pct: 1.0,
        interpolation: Interpolation::Bicubic,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        num_classes: 0,
        num_features: 1024,
        build: build_l14_dinov2,
    },
];

fn config(name: &str) -> Option<&'static VitConfig> {
    match name {
        "vit_base_patch16_224" | "vit_base_patch16_384" => Some(&VIT_B16),
        "vit_small_patch14_dinov2" => Some(&VIT_S14_DINOV2),
        "vit_base_patch14_dinov2" => Some(&VIT_B14_DINOV2),
        "vit_large_patch14_dinov2" => Some(&VIT_L14_DINOV2),
        _ => None,
    }
}

/// The patch grid (rows, columns) a model of this family called `name` has
/// when built for `img_size` pixels: `img_size / patch_size` per side (at
/// least 1), e.g. `(24, 24)` for `vit_base_patch16_384` at 384 and
/// `(37, 37)` for a DINOv2 model at 518. `None` for names not in [`SPECS`].
pub fn grid_size(name: &str, img_size: i64) -> Option<(i64, i64)> {
    config(name).map(|c| {
        let g = (img_size / c.patch_size).max(1);
        (g, g)
    })
}

fn shape_err(what: &str, expected: String, got: &Tensor) -> BackboneError {
    BackboneError::Shape {
        what: what.to_string(),
        expected,
        got: format!("{:?}", got.size()),
    }
}

/// Resamples an absolute position embedding `[1, prefix + oh·ow, D]` to a
/// `new_grid` of patches, as timm's `resample_abs_pos_embed` does: the first
/// `num_prefix_tokens` rows (class / register tokens) are kept as they are,
/// the rest are laid out as an `oh × ow` grid (`old_grid`, or the square root
/// of their count when `None`), resized with bicubic interpolation
/// (`align_corners=False`; `antialias` as given, computed in float32) and
/// flattened back row-major. Returns the input when the grid already matches.
///
/// `antialias` selects PyTorch's `_upsample_bicubic2d_aa` kernel: it differs
/// from plain bicubic when shrinking (it widens the filter) and also when
/// growing (its cubic uses a = -0.5 instead of -0.75). timm's default is on
/// (`resample_abs_pos_embed(..., antialias=True)`, and `checkpoint_filter_fn`
/// when it loads a checkpoint into a model of another size).
///
/// # Errors
/// [`BackboneError::Shape`] if `posemb` is not `[1, N, D]`, if `N -
/// num_prefix_tokens` is not `oh·ow` (or not a square when `old_grid` is
/// `None`); [`BackboneError::InvalidParam`] for a non-positive grid side or a
/// negative prefix; [`BackboneError::Torch`] if libtorch fails.
pub fn resample_abs_pos_embed(
    posemb: &Tensor,
    new_grid: (i64, i64),
    old_grid: Option<(i64, i64)>,
    num_prefix_tokens: i64,
    antialias: bool,
) -> Result<Tensor> {
    if new_grid.0 <= 0 || new_grid.1 <= 0 {
        return Err(BackboneError::InvalidParam {
            name: "new_grid",
            reason: format!("grid sides must be positive, got {new_grid:?}"),
        });
    }
    if num_prefix_tokens < 0 {
        return Err(BackboneError::InvalidParam {
            name: "num_prefix_tokens",
            reason: format!("must be >= 0, got {num_prefix_tokens}"),
        });
    }
    let size = posemb.size();
    let (n, d) = match size.as_slice() {
        [1, n, d] if *n >= num_prefix_tokens => (*n, *d),
        _ => {
            return Err(shape_err(
                "pos_embed",
                format!("[1, >= {num_prefix_tokens}, D]"),
                posemb,
            ));
        }
    };
    let patches = n - num_prefix_tokens;
    let old = match old_grid {
        Some(g) => g,
        None => {
            // integer square root without float rounding trouble
            let side = (patches as f64).sqrt().round() as i64;
            (side, side)
        }
    };
    if old.0 <= 0 || old.1 <= 0 || old.0 * old.1 != patches {
        return Err(shape_err(
            "pos_embed",
            format!(
                "[1, {num_prefix_tokens} + {}x{}, D] (prefix tokens + old grid)",
                old.0, old.1
            ),
            posemb,
        ));
    }
    if old == new_grid {
        return Ok(posemb.shallow_clone());
    }
    let kind = posemb.kind();
    let prefix = posemb.f_narrow(1, 0, num_prefix_tokens)?;
    let grid = posemb
        .f_narrow(1, num_prefix_tokens, patches)?
        .f_to_kind(Kind::Float)?
        .f_reshape([1, old.0, old.1, d])?
        .f_permute([0, 3, 1, 2])?;
    let out_size = [new_grid.0, new_grid.1];
    let resized = if antialias {
        grid.f_internal_upsample_bicubic2d_aa(out_size, false, None, None)?
    } else {
        grid.f_upsample_bicubic2d(out_size, false, None, None)?
    };
    let resized = resized
        .f_permute([0, 2, 3, 1])?
        .f_reshape([1, new_grid.0 * new_grid.1, d])?
        .f_to_kind(kind)?;
    Ok(Tensor::f_cat(&[prefix, resized], 1)?)
}

/// Fits the `pos_embed` entry of a checkpoint (`name → tensor` pairs, e.g.
/// from [`Tensor::read_safetensors`]) to a model whose patch grid is
/// `model_grid` (see [`grid_size`]), with [`resample_abs_pos_embed`] and a
/// square old grid. Returns whether it changed the entry (false when the
/// checkpoint has no `pos_embed` or it already fits). This is how a
/// `vit_base_patch16_224` checkpoint loads into a model built at 384 (grid
/// 24) or a DINOv2 checkpoint (518 px, grid 37) into a model built at 224
/// (grid 16).
///
/// # Errors
/// As [`resample_abs_pos_embed`].
pub fn resample_checkpoint_pos_embed(
    tensors: &mut [(String, Tensor)],
    model_grid: (i64, i64),
    num_prefix_tokens: i64,
    antialias: bool,
) -> Result<bool> {
    for (name, t) in tensors.iter_mut() {
        if name == "pos_embed" {
            let want = num_prefix_tokens + model_grid.0 * model_grid.1;
            if t.size().get(1) == Some(&want) {
                return Ok(false);
            }
            *t = resample_abs_pos_embed(t, model_grid, None, num_prefix_tokens, antialias)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// One pre-norm block: `x + ls1(attn(norm1(x)))`, `x + ls2(mlp(norm2(x)))`.
#[derive(Debug)]
struct Block {
    norm1: nn::LayerNorm,
    qkv: nn::Linear,
    proj: nn::Linear,
    num_heads: i64,
    ls1: Option<Tensor>,
    norm2: nn::LayerNorm,
    mlp: Mlp,
    ls2: Option<Tensor>,
}

impl Block {
    fn new(p: nn::Path<'_>, cfg: &VitConfig) -> Self {
        let d = cfg.embed_dim;
        let ls = |name: &str| {
            cfg.layer_scale
                .map(|v| (&p / name).var("gamma", &[d], nn::Init::Const(v)))
        };
        Block {
            norm1: layer_norm(&p / "norm1", d, LN_EPS),
            qkv: linear(&p / "attn" / "qkv", d, 3 * d, true),
            proj: linear(&p / "attn" / "proj", d, d, true),
            num_heads: cfg.num_heads,
            ls1: ls("ls1"),
            norm2: layer_norm(&p / "norm2", d, LN_EPS),
            mlp: Mlp::new(&p / "mlp", d, 4 * d),
            ls2: ls("ls2"),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.norm1.forward(x);
        let (q, k, v) = split_qkv(&self.qkv.forward(&h), self.num_heads);
        let a = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<Tensor>,
            0.0,
            false,
            None,
            false,
        );
        let a = self.proj.forward(&merge_heads(&a));
        let a = match &self.ls1 {
            Some(g) => a * g,
            None => a,
        };
        let x = x + a;
        let m = self.mlp.forward(&self.norm2.forward(&x));
        let m = match &self.ls2 {
            Some(g) => m * g,
            None => m,
        };
        x + m
    }
}

/// timm's `VisionTransformer` with a class token, class-token pooling and no
/// register tokens.
#[derive(Debug)]
struct VisionTransformer {
    patch_embed: nn::Conv2D,
    cls_token: Tensor,
    pos_embed: Tensor,
    grid: (i64, i64),
    blocks: Vec<Block>,
    norm: nn::LayerNorm,
    head: Option<nn::Linear>,
    embed_dim: i64,
}

impl VisionTransformer {
    fn new(cfg: &VitConfig, p: &nn::Path<'_>, opts: &BuildOptions) -> Self {
        let d = cfg.embed_dim;
        let g = (opts.img_size / cfg.patch_size).max(1);
        let conv = nn::ConvConfig {
            stride: cfg.patch_size,
            ..Default::default()
        };
        VisionTransformer {
            patch_embed: nn::conv2d(p / "patch_embed" / "proj", 3, d, cfg.patch_size, conv),
            cls_token: p.var(
                "cls_token",
                &[1, 1, d],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 1e-6,
                },
            ),
            pos_embed: p.var(
                "pos_embed",
                &[1, 1 + g * g, d],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            grid: (g, g),
            blocks: (0..cfg.depth)
                .map(|i| Block::new(p / "blocks" / i, cfg))
                .collect(),
            norm: layer_norm(p / "norm", d, LN_EPS),
            head: (opts.num_classes > 0).then(|| linear(p / "head", d, opts.num_classes, true)),
            embed_dim: d,
        }
    }
}

impl Architecture for VisionTransformer {
    fn forward_features(&self, x: &Tensor, _train: bool) -> Tensor {
        let x = self.patch_embed.forward(x);
        let [b, _, gh, gw] = dims::<4>(&x);
        let x = x.flatten(2, 3).transpose(1, 2);
        let cls = self.cls_token.expand([b, -1, -1], false);
        let x = Tensor::cat(&[cls, x], 1);
        let pos = if (gh, gw) == self.grid {
            self.pos_embed.shallow_clone()
        } else {
            // timm's dynamic_img_size path: resample to the input's grid.
            resample_abs_pos_embed(&self.pos_embed, (gh, gw), Some(self.grid), 1, true)
                .unwrap_or_else(|_| self.pos_embed.shallow_clone())
        };
        let mut x = x + pos;
        for block in &self.blocks {
            x = block.forward(&to_kind_of(&x, &block.qkv.ws));
        }
        self.norm.forward(&x)
    }

    fn layout(&self) -> FeatureLayout {
        FeatureLayout::Tokens { prefix: 1 }
    }

    fn num_features(&self) -> i64 {
        self.embed_dim
    }

    fn classifier(&self, pre_logits: &Tensor) -> Option<Tensor> {
        self.head.as_ref().map(|h| h.forward(pre_logits))
    }

    fn default_pooling(&self) -> DefaultPooling {
        DefaultPooling::Cls
    }

    fn full_precision_prefixes(&self) -> &'static [&'static str] {
        &[
            "patch_embed.",
            "cls_token",
            "pos_embed",
            "blocks.0.",
            "head.",
        ]
    }
}
