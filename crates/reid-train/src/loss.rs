//! Metric-learning losses on tch tensors: ArcFace, sub-center ArcFace,
//! batch-hard triplet and plain softmax cross-entropy.
//!
//! Every loss checks its inputs first (embeddings `[B, D]`, finite; labels
//! int64 `[B]` within `[0, C)`) and returns a [`TrainError`] naming the
//! shape. The values and gradients equal PyTorch's on the fixture made by
//! `scripts/fixtures/train_losses.py` (the formulas are written out there).
//!
//! Each loss's settings are a `FooParams` builder ([`Default`] and one
//! setter per setting); [`ParamGuard::check`] turns them into the loss
//! itself ([`ArcFace`], [`SubCenterArcFace`], [`Triplet`]): the checked form
//! is the operator that computes the loss, as `reid_data`'s `Preprocess` is
//! for its params, rather than a `ValidFooParams`.

use std::f64::consts::PI;

use tch::{Device, Kind, Tensor};

use reid_core::ParamGuard;

use crate::error::{Result, TrainError};

/// Rows divided by their L2 norm (clamped at 1e-12, as `F.normalize`);
/// the backbone's own, which normalises every embedding.
pub use reid_backbone::pool::l2_normalize;

fn shape_str(t: &Tensor) -> String {
    format!("{:?}", t.size())
}

/// Checks `x` is a finite `[B, D]` float tensor; returns `(B, D)`.
pub fn check_embeddings(x: &Tensor, what: &str) -> Result<(i64, i64)> {
    let s = x.size();
    if s.len() != 2 || s[0] == 0 || s[1] == 0 {
        return Err(TrainError::Shape {
            what: what.into(),
            expected: "[B, D] with B, D > 0".into(),
            got: format!("{s:?}"),
        });
    }
    if !matches!(
        x.kind(),
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    ) {
        return Err(TrainError::Shape {
            what: what.into(),
            expected: "a floating-point tensor".into(),
            got: format!("{:?} of {s:?}", x.kind()),
        });
    }
    check_finite(x, what)?;
    Ok((s[0], s[1]))
}

/// An error if `x` holds NaN or infinity.
pub fn check_finite(x: &Tensor, what: &str) -> Result<()> {
    let ok = tch::no_grad(|| x.isfinite().all().int64_value(&[])) == 1;
    if ok {
        Ok(())
    } else {
        Err(TrainError::NonFinite {
            what: what.into(),
            shape: shape_str(x),
        })
    }
}

/// Checks `labels` is int64 `[batch]` with values in `[0, classes)`
/// (`classes = None`: only non-negative).
pub fn check_labels(labels: &Tensor, batch: i64, classes: Option<i64>) -> Result<()> {
    let s = labels.size();
    let bad = |reason: String| TrainError::Labels {
        shape: format!("{s:?}"),
        reason,
    };
    if labels.kind() != Kind::Int64 {
        return Err(bad(format!("expected int64, got {:?}", labels.kind())));
    }
    if s != [batch] {
        return Err(bad(format!("expected [{batch}] (one per embedding row)")));
    }
    let (lo, hi) = tch::no_grad(|| (labels.min().int64_value(&[]), labels.max().int64_value(&[])));
    if lo < 0 {
        return Err(bad(format!("label {lo} is negative")));
    }
    if let Some(c) = classes
        && hi >= c
    {
        return Err(bad(format!("label {hi} is not below the {c} classes")));
    }
    Ok(())
}

fn check_weight(w: &Tensor, rows: i64, dim: i64, what: &str) -> Result<()> {
    let s = w.size();
    if s.len() != 2 || s[1] != dim || s[0] != rows || rows == 0 {
        return Err(TrainError::Shape {
            what: what.into(),
            expected: format!("[{rows}, {dim}]"),
            got: format!("{s:?}"),
        });
    }
    Ok(())
}

/// Settings of [`ArcFace`]; [`ParamGuard::check`] validates them into the loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArcFaceParams {
    /// Additive angular margin `m` in radians, in `[0, pi/2)` (default 0.5).
    pub margin: f64,
    /// Logit scale `s` > 0 (default 64).
    pub scale: f64,
    /// `easy_margin` of insightface: apply the margin only where
    /// `cos(theta) > 0` (default `false`: where `cos(theta) > cos(pi - m)`,
    /// else the linear fallback `cos(theta) - m sin(m)`).
    pub easy_margin: bool,
}

impl Default for ArcFaceParams {
    fn default() -> Self {
        Self {
            margin: 0.5,
            scale: 64.0,
            easy_margin: false,
        }
    }
}

impl ArcFaceParams {
    reid_core::setters! {
        /// Sets the margin `m` in radians.
        margin: f64,
        /// Sets the logit scale `s`.
        scale: f64,
        /// Sets `easy_margin`.
        easy_margin: bool,
    }
}

impl ParamGuard for ArcFaceParams {
    type Checked = ArcFace;
    type Error = TrainError;

    /// Margin in `[0, pi/2)`, scale finite and positive.
    fn check_ref(&self) -> Result<()> {
        if !(self.margin.is_finite() && (0.0..PI / 2.0).contains(&self.margin)) {
            return Err(TrainError::param(
                "margin",
                format!("{} rad; must be in [0, pi/2)", self.margin),
            ));
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(TrainError::param(
                "scale",
                format!("{}; must be > 0", self.scale),
            ));
        }
        Ok(())
    }

    fn check(self) -> Result<ArcFace> {
        self.check_ref()?;
        Ok(ArcFace { p: self })
    }
}

/// Checked ArcFace (additive angular margin) loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArcFace {
    p: ArcFaceParams,
}

impl ArcFace {
    /// The parameters.
    pub fn params(&self) -> &ArcFaceParams {
        &self.p
    }

    /// Margin-adjusted, scaled logits from cosines `[B, C]`.
    pub fn logits_from_cosine(&self, cos: &Tensor, labels: &Tensor) -> Tensor {
        let m = self.p.margin;
        let sq: Tensor = cos * cos;
        let sine = (sq.neg() + 1.0).clamp(0.0, 1.0).sqrt();
        let phi = cos * m.cos() - sine * m.sin();
        let phi = if self.p.easy_margin {
            phi.where_self(&cos.gt(0.0), cos)
        } else {
            let th = (PI - m).cos();
            let mm = (PI - m).sin() * m;
            phi.where_self(&cos.gt(th), &(cos - mm))
        };
        let classes = cos.size()[1];
        let one_hot = labels.one_hot(classes).to_kind(cos.kind());
        (&one_hot * phi + (one_hot.neg() + 1.0) * cos) * self.p.scale
    }

    /// Mean ArcFace loss of embeddings `[B, D]` against class weights `[C, D]`.
    pub fn loss(&self, x: &Tensor, weight: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let (b, d) = check_embeddings(x, "embeddings")?;
        let c = weight.size().first().copied().unwrap_or(0);
        check_weight(weight, c, d, "ArcFace class weights")?;
        check_labels(labels, b, Some(c))?;
        let cos = l2_normalize(x).matmul(&l2_normalize(weight).tr());
        Ok(self
            .logits_from_cosine(&cos, labels)
            .log_softmax(-1, x.kind())
            .nll_loss(labels))
    }
}

/// Settings of [`SubCenterArcFace`]; [`ParamGuard::check`] validates them
/// into the loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubCenterParams {
    /// The ArcFace margin and scale.
    pub arcface: ArcFaceParams,
    /// Centres per class, `k >= 1` (default 3).
    pub k: i64,
}

impl Default for SubCenterParams {
    fn default() -> Self {
        Self {
            arcface: ArcFaceParams::default(),
            k: 3,
        }
    }
}

impl SubCenterParams {
    reid_core::setters! {
        /// Sets the ArcFace margin and scale.
        arcface: ArcFaceParams,
        /// Sets the centres per class.
        k: i64,
    }
}

impl ParamGuard for SubCenterParams {
    type Checked = SubCenterArcFace;
    type Error = TrainError;

    /// `k >= 1` and valid ArcFace settings.
    fn check_ref(&self) -> Result<()> {
        if self.k < 1 {
            return Err(TrainError::param(
                "k",
                format!("{} centres per class; must be >= 1", self.k),
            ));
        }
        self.arcface.check_ref()
    }

    fn check(self) -> Result<SubCenterArcFace> {
        self.check_ref()?;
        Ok(SubCenterArcFace {
            arc: self.arcface.check()?,
            k: self.k,
        })
    }
}

/// Checked sub-center ArcFace: `k` centres per class, the cosine to a class
/// is the largest over its centres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubCenterArcFace {
    arc: ArcFace,
    k: i64,
}

impl SubCenterArcFace {
    /// Centres per class.
    pub fn k(&self) -> i64 {
        self.k
    }

    /// The ArcFace part.
    pub fn arcface(&self) -> &ArcFace {
        &self.arc
    }

    /// Mean loss against weights `[C * k, D]` (rows `c*k .. c*k+k` are class `c`).
    pub fn loss(&self, x: &Tensor, weight: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let (b, d) = check_embeddings(x, "embeddings")?;
        let rows = weight.size().first().copied().unwrap_or(0);
        if rows % self.k != 0 {
            return Err(TrainError::Shape {
                what: "sub-center class weights".into(),
                expected: format!("[C * {}, {d}]", self.k),
                got: shape_str(weight),
            });
        }
        let c = rows / self.k;
        check_weight(weight, rows, d, "sub-center class weights")?;
        check_labels(labels, b, Some(c))?;
        let cos = l2_normalize(x)
            .matmul(&l2_normalize(weight).tr())
            .view([b, c, self.k])
            .max_dim(2, false)
            .0;
        Ok(self
            .arc
            .logits_from_cosine(&cos, labels)
            .log_softmax(-1, x.kind())
            .nll_loss(labels))
    }
}

/// Distance of [`Triplet`] between L2-normalised embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    /// `sqrt(max(|a - b|^2, 1e-12))`.
    Euclidean,
    /// `1 - cos(a, b)`.
    Cosine,
}

impl std::str::FromStr for Distance {
    type Err = TrainError;

    /// `euclidean` or `cosine`.
    fn from_str(s: &str) -> Result<Self, TrainError> {
        match s.trim() {
            "euclidean" => Ok(Distance::Euclidean),
            "cosine" => Ok(Distance::Cosine),
            other => Err(TrainError::param(
                "distance",
                format!("`{other}`: use euclidean or cosine"),
            )),
        }
    }
}

/// Settings of [`Triplet`]; [`ParamGuard::check`] validates them into the
/// loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TripletParams {
    /// Margin > 0 (default 0.3). Euclidean distances of unit vectors lie in
    /// `[0, 2]`, cosine distances too: margins above 2 are rejected.
    pub margin: f64,
    /// Distance (default euclidean).
    pub distance: Distance,
}

impl Default for TripletParams {
    fn default() -> Self {
        Self {
            margin: 0.3,
            distance: Distance::Euclidean,
        }
    }
}

impl TripletParams {
    reid_core::setters! {
        /// Sets the margin.
        margin: f64,
        /// Sets the distance.
        distance: Distance,
    }
}

impl ParamGuard for TripletParams {
    type Checked = Triplet;
    type Error = TrainError;

    /// Margin in `(0, 2]`.
    fn check_ref(&self) -> Result<()> {
        if !(self.margin.is_finite() && self.margin > 0.0 && self.margin <= 2.0) {
            return Err(TrainError::param(
                "margin",
                format!("{}; a triplet margin must be in (0, 2]", self.margin),
            ));
        }
        Ok(())
    }

    fn check(self) -> Result<Triplet> {
        self.check_ref()?;
        Ok(Triplet { p: self })
    }
}

/// Checked batch-hard triplet loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Triplet {
    p: TripletParams,
}

impl Triplet {
    /// The parameters.
    pub fn params(&self) -> &TripletParams {
        &self.p
    }

    /// Pairwise distances `[B, B]` of the normalised rows of `x`.
    pub fn distances(&self, x: &Tensor) -> Tensor {
        let e = l2_normalize(x);
        match self.p.distance {
            Distance::Euclidean => {
                let diff = e.unsqueeze(1) - e.unsqueeze(0);
                (&diff * &diff)
                    .sum_dim_intlist([2i64].as_slice(), false, None)
                    .clamp_min(1e-12)
                    .sqrt()
            }
            Distance::Cosine => e.matmul(&e.tr()).neg() + 1.0,
        }
    }

    /// Mean over anchors (that have a positive and a negative in the batch)
    /// of `relu(d(a, hardest positive) - d(a, hardest negative) + margin)`.
    /// An error when no anchor has both.
    pub fn loss(&self, x: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let (b, _) = check_embeddings(x, "embeddings")?;
        check_labels(labels, b, None)?;
        let d = self.distances(x);
        let dev = x.device();
        let same = labels.unsqueeze(0).eq_tensor(&labels.unsqueeze(1));
        let eye = Tensor::eye(b, (Kind::Bool, dev));
        let pos = same.logical_and(&eye.logical_not());
        let neg = same.logical_not();
        let d_ap = d.where_self(&pos, &d.zeros_like()).max_dim(1, false).0;
        let d_an = d.where_self(&neg, &d.full_like(1e9)).min_dim(1, false).0;
        let valid = pos
            .any_dim(1, false)
            .logical_and(&neg.any_dim(1, false))
            .to_kind(d.kind());
        let n_valid = tch::no_grad(|| valid.sum(Kind::Double).double_value(&[]));
        if n_valid < 1.0 {
            return Err(TrainError::Labels {
                shape: shape_str(labels),
                reason: "no anchor has both a positive and a negative; \
                         batches need K >= 2 images of P >= 2 identities"
                    .into(),
            });
        }
        let per = (d_ap - d_an + self.p.margin).relu() * &valid;
        Ok(per.sum(d.kind()) / n_valid)
    }
}

/// Mean softmax cross-entropy of the linear head `x W^T + b`
/// (weights `[C, D]`, bias `[C]`).
pub fn softmax_cross_entropy(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    labels: &Tensor,
) -> Result<Tensor> {
    let (b, d) = check_embeddings(x, "embeddings")?;
    let c = weight.size().first().copied().unwrap_or(0);
    check_weight(weight, c, d, "softmax class weights")?;
    if let Some(bias) = bias
        && bias.size() != [c]
    {
        return Err(TrainError::Shape {
            what: "softmax bias".into(),
            expected: format!("[{c}]"),
            got: shape_str(bias),
        });
    }
    check_labels(labels, b, Some(c))?;
    let logits = x.linear(weight, bias);
    Ok(logits.log_softmax(-1, x.kind()).nll_loss(labels))
}

/// A device-independent helper: labels as an int64 tensor on `device`.
pub fn labels_tensor(labels: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(labels).to_device(device)
}
