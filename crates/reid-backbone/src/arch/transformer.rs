//! Layers shared by the ViT and Swin modules: LayerNorm with timm's eps, the
//! two-layer GELU MLP (`mlp.fc1`, `mlp.fc2`) and shape helpers.

use tch::{Tensor, nn, nn::Module};

/// `nn.LayerNorm(dim, eps)` with keys `weight`, `bias`.
pub(crate) fn layer_norm(p: nn::Path<'_>, dim: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(
        p,
        vec![dim],
        nn::LayerNormConfig {
            eps,
            ..Default::default()
        },
    )
}

/// `nn.Linear(inp, out, bias)` with keys `weight` (and `bias`).
pub fn linear(p: nn::Path<'_>, inp: i64, out: i64, bias: bool) -> nn::Linear {
    nn::linear(
        p,
        inp,
        out,
        nn::LinearConfig {
            bias,
            ..Default::default()
        },
    )
}

/// timm's `Mlp`: `fc1`, exact (erf) GELU, `fc2`; dropout is 0 in every
/// model of these families.
#[derive(Debug)]
pub(crate) struct Mlp {
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl Mlp {
    /// Creates `p/fc1` (`dim → hidden`) and `p/fc2` (`hidden → dim`).
    pub(crate) fn new(p: nn::Path<'_>, dim: i64, hidden: i64) -> Self {
        Mlp {
            fc1: linear(&p / "fc1", dim, hidden, true),
            fc2: linear(&p / "fc2", hidden, dim, true),
        }
    }

    /// `fc2(gelu(fc1(x)))` on the last dimension.
    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        self.fc2.forward(&self.fc1.forward(x).gelu("none"))
    }
}

/// The sizes of a tensor of known rank; zeros when the rank differs (the
/// next libtorch operation then reports the shape).
pub(crate) fn dims<const N: usize>(t: &Tensor) -> [i64; N] {
    t.size().try_into().unwrap_or([0; N])
}

/// Splits the output of a fused `qkv` linear, `[B, N, 3·H·d]`, into
/// `q`, `k`, `v`, each `[B, H, N, d]` (timm's reshape + permute + unbind).
pub(crate) fn split_qkv(qkv: &Tensor, num_heads: i64) -> (Tensor, Tensor, Tensor) {
    let [b, n, _] = dims::<3>(qkv);
    let qkv = qkv
        .reshape([b, n, 3, num_heads, -1])
        .permute([2, 0, 3, 1, 4]);
    (qkv.select(0, 0), qkv.select(0, 1), qkv.select(0, 2))
}

/// Joins heads back: `[B, H, N, d]` → `[B, N, H·d]`.
pub(crate) fn merge_heads(x: &Tensor) -> Tensor {
    let [b, _, n, _] = dims::<4>(x);
    x.transpose(1, 2).reshape([b, n, -1])
}
