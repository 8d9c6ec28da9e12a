//! The layers of LightGlue, created under the original state-dict names
//! (`posenc.Wr`, `input_proj`, `transformers.{i}.self_attn.Wqkv`, …,
//! `log_assignment.{i}.final_proj`, `token_confidence.{i}.token.0`).
//!
//! Every operation is the one the reference runs on the CPU, in the same
//! order (the same `einsum` equations, `scaled_dot_product_attention` for
//! self-attention, explicit softmaxes for cross-attention), so that the
//! results agree with it to float rounding.
//!
//! The attention blocks run their linear layers (projections and
//! feed-forward) in the element kind of their weights (`f32` as loaded;
//! `bf16` after [`Net::reduce_precision`]) and everything else in `f32`:
//! the attention itself (similarities, softmax, weighted sums), the
//! residual stream, the positional encoding, the token confidences and the
//! log assignment.

use tch::{Kind, Tensor, nn, nn::Module};

use reid_backbone::arch::{linear, to_kind_of};
use reid_backbone::backbone::cast_variables;

use super::params::GlueKind;

/// The sizes of a tensor of known rank; zeros when the rank differs.
pub(crate) fn dims<const N: usize>(t: &Tensor) -> [i64; N] {
    t.size().try_into().unwrap_or([0; N])
}

/// `rotate_half`: each consecutive pair `(x1, x2)` of the last dimension
/// becomes `(-x2, x1)` (the interleaved layout).
fn rotate_half(x: &Tensor) -> Tensor {
    let mut shape = x.size();
    let last = shape.pop().unwrap_or(0);
    shape.extend([last / 2, 2]);
    let x = x.reshape(shape.as_slice());
    let (x1, x2) = (x.select(-1, 0), x.select(-1, 1));
    Tensor::stack(&[x2.neg(), x1], -1).flatten(-2, -1)
}

/// `apply_cached_rotary_emb`: `t * cos + rotate_half(t) * sin`, with
/// `freqs` = `[2, B, 1, N, d]` (cosines, sines).
fn apply_rotary(freqs: &Tensor, t: &Tensor) -> Tensor {
    t * freqs.get(0) + rotate_half(t) * freqs.get(1)
}

/// `LearnableFourierPositionalEncoding` (`posenc.Wr`, no bias).
#[derive(Debug)]
struct PosEnc {
    wr: nn::Linear,
}

impl PosEnc {
    /// `[B, N, 2]` normalised keypoints → `[2, B, 1, N, head_dim]`: the
    /// cosines and sines of the projected positions, each repeated twice
    /// in place (`repeat_interleave(2, -1)`).
    fn forward(&self, x: &Tensor) -> Tensor {
        let projected = self.wr.forward(x);
        Tensor::stack(&[projected.cos(), projected.sin()], 0)
            .unsqueeze(-3)
            .repeat_interleave_self_int(2, -1, None::<i64>)
    }
}

/// The feed-forward part of both blocks: `ffn.0` (2D → 2D), `ffn.1`
/// (LayerNorm, eps 1e-5), exact (erf) GELU, `ffn.3` (2D → D).
#[derive(Debug)]
struct Ffn {
    fc0: nn::Linear,
    norm: nn::LayerNorm,
    fc3: nn::Linear,
}

impl Ffn {
    fn new(p: nn::Path<'_>, dim: i64) -> Self {
        Ffn {
            fc0: linear(&p / "0", 2 * dim, 2 * dim, true),
            norm: nn::layer_norm(&p / "1", vec![2 * dim], Default::default()),
            fc3: linear(&p / "3", 2 * dim, dim, true),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.fc3
            .forward(&self.norm.forward(&self.fc0.forward(x)).gelu("none"))
    }
}

/// `SelfBlock`: rotary multi-head self-attention with the fused `Wqkv`
/// (its output laid out as `(heads, head_dim, 3)`), `out_proj`, and
/// `x + ffn([x, message])`.
#[derive(Debug)]
struct SelfBlock {
    wqkv: nn::Linear,
    out_proj: nn::Linear,
    ffn: Ffn,
    heads: i64,
}

impl SelfBlock {
    fn new(p: nn::Path<'_>, dim: i64, heads: i64) -> Self {
        SelfBlock {
            wqkv: linear(&p / "Wqkv", dim, 3 * dim, true),
            out_proj: linear(&p / "out_proj", dim, dim, true),
            ffn: Ffn::new(&p / "ffn", dim),
            heads,
        }
    }

    /// `x` `[B, N, D]`, `encoding` `[2, B, 1, N, d]`; `key_mask` `[B, 1, 1, N]`
    /// (true for real keypoints) hides padding from every query.
    fn forward(&self, x: &Tensor, encoding: &Tensor, key_mask: Option<&Tensor>) -> Tensor {
        let [b, n, _] = dims::<3>(x);
        let xc = to_kind_of(x, &self.wqkv.ws);
        // The projections in the weights' kind, the attention in f32.
        let qkv = to_kind_of(&self.wqkv.forward(&xc), x)
            .reshape([b, n, self.heads, -1, 3])
            .transpose(1, 2);
        let q = apply_rotary(encoding, &qkv.select(-1, 0));
        let k = apply_rotary(encoding, &qkv.select(-1, 1));
        let v = qkv.select(-1, 2);
        let context = Tensor::scaled_dot_product_attention(
            &q.contiguous(),
            &k.contiguous(),
            &v.contiguous(),
            key_mask,
            0.0,
            false,
            None::<f64>,
            false,
        );
        let context = to_kind_of(&context.transpose(1, 2).flatten(-2, -1), &xc);
        let message = self.out_proj.forward(&context);
        x + to_kind_of(&self.ffn.forward(&Tensor::cat(&[&xc, &message], -1)), x)
    }
}

/// `CrossBlock`: bidirectional cross-attention with a shared `to_qk`
/// projection and one similarity matrix for both directions, each side
/// scaled by `head_dim^-1/4`.
#[derive(Debug)]
struct CrossBlock {
    to_qk: nn::Linear,
    to_v: nn::Linear,
    to_out: nn::Linear,
    ffn: Ffn,
    heads: i64,
    /// `(head_dim ** -0.5) ** 0.5`, computed as the reference does.
    qk_scale: f64,
}

impl CrossBlock {
    fn new(p: nn::Path<'_>, dim: i64, heads: i64) -> Self {
        let head_dim = dim / heads;
        CrossBlock {
            to_qk: linear(&p / "to_qk", dim, dim, true),
            to_v: linear(&p / "to_v", dim, dim, true),
            to_out: linear(&p / "to_out", dim, dim, true),
            ffn: Ffn::new(&p / "ffn", dim),
            heads,
            qk_scale: (head_dim as f64).powf(-0.5).powf(0.5),
        }
    }

    fn split_heads(&self, t: &Tensor) -> Tensor {
        let [b, n, _] = dims::<3>(t);
        t.reshape([b, n, self.heads, -1]).transpose(1, 2)
    }

    /// `x0` `[B, M, D]`, `x1` `[B, N, D]`; `key_mask1` `[B, 1, 1, N]` (true for
    /// real keypoints of image 1) hides the padding of image 1 from image 0.
    /// Image 0 is never padded, so the other direction needs no mask; the
    /// rows of padded keypoints come out finite and are never read.
    fn forward(&self, x0: &Tensor, x1: &Tensor, key_mask1: Option<&Tensor>) -> (Tensor, Tensor) {
        let (xc0, xc1) = (
            to_kind_of(x0, &self.to_qk.ws),
            to_kind_of(x1, &self.to_qk.ws),
        );
        // The projections in the weights' kind, the attention in f32.
        let project = |l: &nn::Linear, xc: &Tensor, x: &Tensor| {
            self.split_heads(&to_kind_of(&l.forward(xc), x))
        };
        let qk0 = project(&self.to_qk, &xc0, x0) * self.qk_scale;
        let qk1 = project(&self.to_qk, &xc1, x1) * self.qk_scale;
        let v0 = project(&self.to_v, &xc0, x0);
        let v1 = project(&self.to_v, &xc1, x1);
        let sim = Tensor::einsum("bhid, bhjd -> bhij", &[&qk0, &qk1], None::<&[i64]>);
        let attn01 = match key_mask1 {
            Some(mask) => sim
                .masked_fill(&mask.logical_not(), f64::NEG_INFINITY)
                .softmax(-1, None::<Kind>),
            None => sim.softmax(-1, None::<Kind>),
        };
        let attn10 = sim.transpose(-2, -1).contiguous().softmax(-1, None::<Kind>);
        let m0 = Tensor::einsum("bhij, bhjd -> bhid", &[&attn01, &v1], None::<&[i64]>);
        let m1 = Tensor::einsum(
            "bhji, bhjd -> bhid",
            &[&attn10.transpose(-2, -1), &v0],
            None::<&[i64]>,
        );
        let m0 = self
            .to_out
            .forward(&to_kind_of(&m0.transpose(1, 2).flatten(-2, -1), &xc0));
        let m1 = self
            .to_out
            .forward(&to_kind_of(&m1.transpose(1, 2).flatten(-2, -1), &xc1));
        let y0 = x0 + to_kind_of(&self.ffn.forward(&Tensor::cat(&[&xc0, &m0], -1)), x0);
        let y1 = x1 + to_kind_of(&self.ffn.forward(&Tensor::cat(&[&xc1, &m1], -1)), x1);
        (y0, y1)
    }
}

/// `TransformerLayer`: self-attention on each image, then cross-attention.
#[derive(Debug)]
struct TransformerLayer {
    self_attn: SelfBlock,
    cross_attn: CrossBlock,
}

/// `MatchAssignment`: `final_proj` and `matchability` of one layer.
#[derive(Debug)]
struct MatchAssignment {
    matchability: nn::Linear,
    final_proj: nn::Linear,
    /// `descriptor_dim ** 0.25`.
    norm: f64,
}

impl MatchAssignment {
    /// The log assignment matrix `[B, M + 1, N + 1]`: the dual log-softmax
    /// of the similarity plus both log-matchabilities inside, the
    /// log-unmatchabilities in the last column and row, 0 in the corner.
    fn forward(&self, desc0: &Tensor, desc1: &Tensor) -> Tensor {
        let md0 = self.final_proj.forward(desc0) / self.norm;
        let md1 = self.final_proj.forward(desc1) / self.norm;
        let sim = Tensor::einsum("bmd,bnd->bmn", &[&md0, &md1], None::<&[i64]>);
        let z0 = self.matchability.forward(desc0);
        let z1 = self.matchability.forward(desc1);
        let certainties = z0.log_sigmoid() + z1.log_sigmoid().transpose(1, 2);
        let scores0 = sim.log_softmax(2, None::<Kind>);
        let scores1 = sim
            .transpose(-1, -2)
            .contiguous()
            .log_softmax(2, None::<Kind>)
            .transpose(-1, -2);
        let inner = scores0 + scores1 + certainties;
        let [b, _, _] = dims::<3>(&inner);
        let unmatched0 = z0.neg().log_sigmoid(); // [B, M, 1]
        let unmatched1 = z1.neg().log_sigmoid().transpose(1, 2); // [B, 1, N]
        let corner = Tensor::zeros([b, 1, 1], (inner.kind(), inner.device()));
        let top = Tensor::cat(&[&inner, &unmatched0], 2);
        let bottom = Tensor::cat(&[&unmatched1, &corner], 2);
        Tensor::cat(&[top, bottom], 1)
    }

    /// `sigmoid(matchability(desc))` `[B, N]`.
    fn matchability(&self, desc: &Tensor) -> Tensor {
        self.matchability.forward(desc).sigmoid().squeeze_dim(-1)
    }
}

/// The whole network, its variables named as the reference's state dict.
#[derive(Debug)]
pub(crate) struct Net {
    input_proj: Option<nn::Linear>,
    posenc: PosEnc,
    layers: Vec<TransformerLayer>,
    log_assignment: Vec<MatchAssignment>,
    token_confidence: Vec<nn::Linear>,
    /// `confidence_thresholds` (a buffer the files lack, computed as in the
    /// reference and rounded to `f32` as its `torch.Tensor` is).
    thresholds: Vec<f32>,
}

impl Net {
    /// Creates every variable of `kind` under `p` (the root).
    pub(crate) fn new(p: &nn::Path<'_>, kind: GlueKind) -> Self {
        let (din, d, h, n) = (
            kind.input_dim(),
            kind.descriptor_dim(),
            kind.num_heads(),
            kind.n_layers(),
        );
        let input_proj = (din != d).then(|| linear(p / "input_proj", din, d, true));
        let head_dim = d / h;
        let posenc = PosEnc {
            wr: linear(p / "posenc" / "Wr", 2, head_dim / 2, false),
        };
        let layers = (0..n)
            .map(|i| {
                let q = p / "transformers" / i;
                TransformerLayer {
                    self_attn: SelfBlock::new(&q / "self_attn", d, h),
                    cross_attn: CrossBlock::new(&q / "cross_attn", d, h),
                }
            })
            .collect();
        let log_assignment = (0..n)
            .map(|i| {
                let q = p / "log_assignment" / i;
                MatchAssignment {
                    matchability: linear(&q / "matchability", d, 1, true),
                    final_proj: linear(&q / "final_proj", d, d, true),
                    norm: (d as f64).powf(0.25),
                }
            })
            .collect();
        let token_confidence = (0..n.saturating_sub(1))
            .map(|i| linear(p / "token_confidence" / i / "token" / "0", d, 1, true))
            .collect();
        let thresholds = (0..n).map(|i| confidence_threshold(i, n) as f32).collect();
        Net {
            input_proj,
            posenc,
            layers,
            log_assignment,
            token_confidence,
            thresholds,
        }
    }

    /// Casts the attention blocks' weights (`transformers.*`) to `kind`;
    /// the rest stays `f32`.
    pub(crate) fn reduce_precision(vs: &nn::VarStore, kind: Kind) {
        cast_variables(vs, kind, |name| name.starts_with("transformers."));
    }

    /// Layers.
    pub(crate) fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// `input_proj` (identity when the sizes agree).
    pub(crate) fn project(&self, desc: &Tensor) -> Tensor {
        match &self.input_proj {
            Some(l) => l.forward(desc),
            None => desc.shallow_clone(),
        }
    }

    /// The cached positional encoding of normalised keypoints `[B, N, 2]`.
    pub(crate) fn encode(&self, kpts: &Tensor) -> Tensor {
        self.posenc.forward(kpts)
    }

    /// Layer `i` on both images; `key_mask1` `[B, 1, 1, N]` marks the real
    /// keypoints of a padded image 1.
    pub(crate) fn layer(
        &self,
        i: usize,
        desc0: &Tensor,
        desc1: &Tensor,
        enc0: &Tensor,
        enc1: &Tensor,
        key_mask1: Option<&Tensor>,
    ) -> (Tensor, Tensor) {
        let l = &self.layers[i];
        let d0 = l.self_attn.forward(desc0, enc0, None);
        let d1 = l.self_attn.forward(desc1, enc1, key_mask1);
        l.cross_attn.forward(&d0, &d1, key_mask1)
    }

    /// The log assignment of layer `i`.
    pub(crate) fn log_assignment(&self, i: usize, desc0: &Tensor, desc1: &Tensor) -> Tensor {
        self.log_assignment[i].forward(desc0, desc1)
    }

    /// The matchability of layer `i` `[B, N]`.
    pub(crate) fn matchability(&self, i: usize, desc: &Tensor) -> Tensor {
        self.log_assignment[i].matchability(desc)
    }

    /// The token confidence of layer `i < n_layers - 1` `[B, N]`.
    pub(crate) fn token_confidence(&self, i: usize, desc: &Tensor) -> Tensor {
        self.token_confidence[i]
            .forward(desc)
            .sigmoid()
            .squeeze_dim(-1)
    }

    /// The confidence threshold of layer `i`.
    pub(crate) fn threshold(&self, i: usize) -> f32 {
        self.thresholds[i]
    }

    /// Every layer's confidence threshold.
    pub(crate) fn thresholds(&self) -> &[f32] {
        &self.thresholds
    }
}

/// `clip(0.8 + 0.1 * exp(-4 i / n), 0, 1)`.
pub(crate) fn confidence_threshold(layer: usize, n_layers: usize) -> f64 {
    let t = 0.8 + 0.1 * (-4.0 * layer as f64 / n_layers as f64).exp();
    t.clamp(0.0, 1.0)
}

/// `filter_matches` on a log assignment `[B, M + 1, N + 1]` (M, N > 0):
/// mutual best matches among the inner scores; the score of a mutual
/// match is the exp of its log assignment (0 otherwise), and it is kept
/// when that exceeds `threshold`. Returns `(matches0 [B, M], matches1
/// [B, N], scores0 [B, M], scores1 [B, N])`, -1 for unmatched.
pub(crate) fn filter_matches(scores: &Tensor, threshold: f64) -> (Tensor, Tensor, Tensor, Tensor) {
    let [_, m1, n1] = dims::<3>(scores);
    let inner = scores.narrow(1, 0, m1 - 1).narrow(2, 0, n1 - 1);
    let (max0, m0) = inner.max_dim(2, false);
    let (_, m1i) = inner.max_dim(1, false);
    let dev = scores.device();
    let idx0 = Tensor::arange(m1 - 1, (Kind::Int64, dev)).unsqueeze(0);
    let idx1 = Tensor::arange(n1 - 1, (Kind::Int64, dev)).unsqueeze(0);
    let mutual0 = idx0.eq_tensor(&m1i.gather(1, &m0, false));
    let mutual1 = idx1.eq_tensor(&m0.gather(1, &m1i, false));
    let max0_exp = max0.exp();
    let zero = Tensor::zeros(&[] as &[i64], (max0_exp.kind(), dev));
    let mscores0 = max0_exp.where_self(&mutual0, &zero);
    let mscores1 = mscores0.gather(1, &m1i, false).where_self(&mutual1, &zero);
    let valid0 = mutual0.logical_and(&mscores0.gt(threshold));
    let valid1 = mutual1.logical_and(&valid0.gather(1, &m1i, false));
    let none = Tensor::full(&[] as &[i64], -1, (Kind::Int64, dev));
    let matches0 = m0.where_self(&valid0, &none);
    let matches1 = m1i.where_self(&valid1, &none);
    (matches0, matches1, mscores0, mscores1)
}
