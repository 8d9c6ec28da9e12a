//! The trainable parts on top of the backbone: a projection head to the
//! embedding size, and the loss with its class weights.

use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

use reid_core::ParamGuard;

use crate::error::{Result, TrainError};
use crate::loss::{
    ArcFace, ArcFaceParams, SubCenterArcFace, SubCenterParams, Triplet, TripletParams,
    check_embeddings, softmax_cross_entropy,
};

/// Projection from the pooled backbone features to the embedding:
/// `Linear(in, out)` then optionally `BatchNorm1d(out)`, or the identity.
#[derive(Debug)]
pub struct ProjectionHead {
    linear: Option<nn::Linear>,
    bn: Option<nn::BatchNorm>,
    in_dim: i64,
    out_dim: i64,
}

impl ProjectionHead {
    /// A head under `p` (`neck.linear`, `neck.bn`); `out_dim = None` is the
    /// identity (embedding = pooled features).
    pub fn new(p: &nn::Path<'_>, in_dim: i64, out_dim: Option<i64>, bn: bool) -> Result<Self> {
        if in_dim < 1 {
            return Err(TrainError::param(
                "in_dim",
                format!("{in_dim}; must be >= 1"),
            ));
        }
        let Some(out) = out_dim else {
            if bn {
                return Err(TrainError::param(
                    "head_bn",
                    "batch norm needs a projection (set an embedding size)",
                ));
            }
            return Ok(Self {
                linear: None,
                bn: None,
                in_dim,
                out_dim: in_dim,
            });
        };
        if !(1..=65536).contains(&out) {
            return Err(TrainError::param(
                "embedding_dim",
                format!("{out}; use 1 to 65536"),
            ));
        }
        let p = p / "neck";
        let linear = nn::linear(&p / "linear", in_dim, out, Default::default());
        let bn = bn.then(|| nn::batch_norm1d(&p / "bn", out, Default::default()));
        Ok(Self {
            linear: Some(linear),
            bn,
            in_dim,
            out_dim: out,
        })
    }

    /// Input width.
    pub fn in_dim(&self) -> i64 {
        self.in_dim
    }

    /// Output (embedding) width.
    pub fn out_dim(&self) -> i64 {
        self.out_dim
    }

    /// Un-normalised embeddings `[B, out]` of pooled features `[B, in]`.
    pub fn forward(&self, pooled: &Tensor, train: bool) -> Tensor {
        let y = match &self.linear {
            Some(l) => l.forward(pooled),
            None => pooled.shallow_clone(),
        };
        match &self.bn {
            Some(bn) => bn.forward_t(&y, train),
            None => y,
        }
    }
}

/// Which loss to train with, and its settings, unchecked;
/// [`ParamGuard::check`] gives the [`ValidLossParams`] a [`Criterion`] is
/// made from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossParams {
    /// ArcFace over the training identities.
    ArcFace(ArcFaceParams),
    /// Sub-center ArcFace.
    SubCenter(SubCenterParams),
    /// Batch-hard triplet (no class weights).
    Triplet(TripletParams),
    /// Linear softmax classifier with cross-entropy.
    Softmax,
}

impl LossParams {
    /// Short name for logs: `arcface`, `subcenter`, `triplet`, `softmax`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ArcFace(_) => "arcface",
            Self::SubCenter(_) => "subcenter",
            Self::Triplet(_) => "triplet",
            Self::Softmax => "softmax",
        }
    }
}

impl ParamGuard for LossParams {
    type Checked = ValidLossParams;
    type Error = TrainError;

    /// Checks the settings of the chosen loss.
    fn check_ref(&self) -> Result<()> {
        match self {
            Self::ArcFace(a) => a.check_ref(),
            Self::SubCenter(s) => s.check_ref(),
            Self::Triplet(t) => t.check_ref(),
            Self::Softmax => Ok(()),
        }
    }

    fn check(self) -> Result<ValidLossParams> {
        Ok(match self {
            Self::ArcFace(a) => ValidLossParams::ArcFace(a.check()?),
            Self::SubCenter(s) => ValidLossParams::SubCenter(s.check()?),
            Self::Triplet(t) => ValidLossParams::Triplet(t.check()?),
            Self::Softmax => ValidLossParams::Softmax,
        })
    }
}

/// Checked [`LossParams`]: the chosen loss operator, without its class
/// weights (a [`Criterion`] adds them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValidLossParams {
    /// ArcFace.
    ArcFace(ArcFace),
    /// Sub-center ArcFace.
    SubCenter(SubCenterArcFace),
    /// Batch-hard triplet.
    Triplet(Triplet),
    /// Linear softmax classifier with cross-entropy.
    Softmax,
}

impl ValidLossParams {
    /// Short name for logs: `arcface`, `subcenter`, `triplet`, `softmax`
    /// (as [`LossParams::name`]).
    ///
    /// ```
    /// use reid_train::{LossParams, ParamGuard};
    /// for p in [
    ///     LossParams::ArcFace(Default::default()),
    ///     LossParams::SubCenter(Default::default()),
    ///     LossParams::Triplet(Default::default()),
    ///     LossParams::Softmax,
    /// ] {
    ///     assert_eq!(p.check()?.name(), p.name());
    /// }
    /// # Ok::<(), reid_train::TrainError>(())
    /// ```
    pub fn name(&self) -> &'static str {
        self.settings().name()
    }

    /// The settings this loss was checked from.
    fn settings(&self) -> LossParams {
        match *self {
            Self::ArcFace(a) => LossParams::ArcFace(*a.params()),
            Self::SubCenter(s) => LossParams::SubCenter(SubCenterParams {
                arcface: *s.arcface().params(),
                k: s.k(),
            }),
            Self::Triplet(t) => LossParams::Triplet(*t.params()),
            Self::Softmax => LossParams::Softmax,
        }
    }
}

#[derive(Debug)]
enum Kind2 {
    ArcFace(ArcFace, Tensor),
    SubCenter(SubCenterArcFace, Tensor),
    Triplet(Triplet),
    Softmax(Tensor, Tensor),
}

/// A checked loss with its trainable class weights (under `loss.*`).
#[derive(Debug)]
pub struct Criterion {
    kind: Kind2,
    classes: i64,
}

impl Criterion {
    /// Creates the loss for `classes` identities on embeddings of width `dim`
    /// (its class weights under `p / "loss"`).
    pub fn new(p: &nn::Path<'_>, loss: &ValidLossParams, dim: i64, classes: usize) -> Result<Self> {
        let classes = i64::try_from(classes).unwrap_or(i64::MAX);
        if classes < 2 {
            return Err(TrainError::param(
                "classes",
                format!("{classes} training identities; need at least 2"),
            ));
        }
        let p = p / "loss";
        let xavier = nn::Init::Randn {
            mean: 0.0,
            stdev: (2.0 / (dim + classes) as f64).sqrt(),
        };
        let kind = match *loss {
            ValidLossParams::ArcFace(a) => {
                Kind2::ArcFace(a, p.var("weight", &[classes, dim], xavier))
            }
            ValidLossParams::SubCenter(s) => {
                let w = p.var("weight", &[classes * s.k(), dim], xavier);
                Kind2::SubCenter(s, w)
            }
            ValidLossParams::Triplet(t) => Kind2::Triplet(t),
            ValidLossParams::Softmax => Kind2::Softmax(
                p.var("weight", &[classes, dim], xavier),
                p.var("bias", &[classes], nn::Init::Const(0.0)),
            ),
        };
        Ok(Self { kind, classes })
    }

    /// Number of identities.
    pub fn classes(&self) -> i64 {
        self.classes
    }

    /// The mean loss of un-normalised embeddings `[B, D]` (f32) and labels.
    pub fn loss(&self, emb: &Tensor, labels: &Tensor) -> Result<Tensor> {
        check_embeddings(emb, "embeddings")?;
        let emb = emb.to_kind(Kind::Float);
        match &self.kind {
            Kind2::ArcFace(a, w) => a.loss(&emb, w, labels),
            Kind2::SubCenter(s, w) => s.loss(&emb, w, labels),
            Kind2::Triplet(t) => t.loss(&emb, labels),
            Kind2::Softmax(w, b) => softmax_cross_entropy(&emb, w, Some(b), labels),
        }
    }
}
