//! The settings of a LightGlue matcher ([`LightGlueParams`], checked into
//! [`ValidLightGlueParams`]) and the three networks it runs ([`GlueKind`]).

use crate::error::{GlueError, Result};

/// Which trained LightGlue network: the keypoints it was trained on, which
/// fixes its sizes and its weights file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlueKind {
    /// LightGlue for DISK features (`disk_lightglue.pth`): 128-d input
    /// descriptors, 256-d inside, 9 layers of 4 heads.
    Disk,
    /// LightGlue for ALIKED features (`aliked_lightglue.pth`): 128-d input
    /// descriptors, 256-d inside, 9 layers of 4 heads.
    Aliked,
    /// XFeat's LighterGlue (`xfeat-lighterglue.pt`, keys under `matcher.`):
    /// 64-d input descriptors, 96-d inside, 6 layers of one head.
    XFeat,
}

impl GlueKind {
    /// Every kind.
    pub const ALL: [GlueKind; 3] = [GlueKind::Disk, GlueKind::Aliked, GlueKind::XFeat];

    /// Short name (`disk`, `aliked`, `xfeat`), as the reference's `features`.
    pub fn name(self) -> &'static str {
        match self {
            GlueKind::Disk => "disk",
            GlueKind::Aliked => "aliked",
            GlueKind::XFeat => "xfeat",
        }
    }

    /// The weights file, as provisioned by `scripts/setup.sh`.
    pub fn weights(self) -> crate::GlueWeights {
        match self {
            GlueKind::Disk => crate::GlueWeights::DiskLightGlue,
            GlueKind::Aliked => crate::GlueWeights::AlikedLightGlue,
            GlueKind::XFeat => crate::GlueWeights::LighterGlue,
        }
    }

    /// The weights file's name, as provisioned by `scripts/setup.sh` in
    /// [`reid_backbone::weights::weights_dir`].
    pub fn weights_file(self) -> &'static str {
        self.weights().file_name()
    }

    /// Where [`weights_file`](Self::weights_file) is expected (it may be absent).
    pub fn weights_path(self) -> std::path::PathBuf {
        reid_backbone::weights::weights_dir().join(self.weights_file())
    }

    /// The descriptor size the network takes (`input_dim`).
    pub fn input_dim(self) -> i64 {
        match self {
            GlueKind::Disk | GlueKind::Aliked => 128,
            GlueKind::XFeat => 64,
        }
    }

    /// The descriptor size inside the network (`descriptor_dim`).
    pub fn descriptor_dim(self) -> i64 {
        match self {
            GlueKind::Disk | GlueKind::Aliked => 256,
            GlueKind::XFeat => 96,
        }
    }

    /// Transformer layers (`n_layers`).
    pub fn n_layers(self) -> usize {
        match self {
            GlueKind::Disk | GlueKind::Aliked => 9,
            GlueKind::XFeat => 6,
        }
    }

    /// Attention heads (`num_heads`).
    pub fn num_heads(self) -> i64 {
        match self {
            GlueKind::Disk | GlueKind::Aliked => 4,
            GlueKind::XFeat => 1,
        }
    }

    /// The reference's default settings for this network
    /// ([`LightGlueParams::for_kind`]).
    pub fn default_params(self) -> LightGlueParams {
        LightGlueParams::for_kind(self)
    }
}

impl std::fmt::Display for GlueKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Settings of a LightGlue matcher; the `Default` is LightGlue's reference
/// `default_conf` (the DISK and ALIKED networks). [`for_kind`](Self::for_kind)
/// gives each network's reference defaults.
///
/// Confidences follow the reference: a value in `(0, 1]` enables the
/// mechanism, `-1` disables it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LightGlueParams {
    /// Early stopping (adaptive depth): after each layer but the last, stop
    /// when the share of keypoints of the pair whose token confidence
    /// reaches the layer's threshold exceeds this. `-1` or in `(0, 1]`;
    /// default 0.95 (LightGlue), -1 for LighterGlue.
    pub depth_confidence: f64,
    /// Point pruning (adaptive width): after each layer but the last, drop
    /// the keypoints whose matchability is at most `1 - width_confidence`
    /// (unless early stopping is on and their token confidence is at most
    /// the layer's threshold). `-1` or in `(0, 1]`; default 0.99 (LightGlue),
    /// 0.95 for LighterGlue.
    pub width_confidence: f64,
    /// A mutual best match is kept when its score (the exp of the log
    /// assignment) exceeds this. In `[0, 1]`; default 0.1.
    pub filter_threshold: f64,
    /// Point pruning runs on an image only while it has more keypoints than
    /// this. `None` is the reference's choice for the model's device: every
    /// time on the CPU (its threshold -1), above 1536 keypoints on CUDA (its
    /// FlashAttention threshold). Default `None`.
    pub pruning_min_keypoints: Option<usize>,
    /// Pairs run together by [`LightGlue::match_batch`](super::LightGlue::match_batch)
    /// (padded to the largest of them). In `1..=4096`; default 16.
    pub batch_size: usize,
}

impl Default for LightGlueParams {
    fn default() -> Self {
        LightGlueParams {
            depth_confidence: 0.95,
            width_confidence: 0.99,
            filter_threshold: 0.1,
            pruning_min_keypoints: None,
            batch_size: 16,
        }
    }
}

impl LightGlueParams {
    /// The reference defaults of `kind`: LightGlue's `default_conf` for
    /// [`GlueKind::Disk`] and [`GlueKind::Aliked`] (depth 0.95, width 0.99,
    /// threshold 0.1), LighterGlue's `default_conf_xfeat` for
    /// [`GlueKind::XFeat`] (depth -1, width 0.95, threshold 0.1).
    pub fn for_kind(kind: GlueKind) -> Self {
        match kind {
            GlueKind::Disk | GlueKind::Aliked => LightGlueParams::default(),
            GlueKind::XFeat => LightGlueParams {
                depth_confidence: -1.0,
                width_confidence: 0.95,
                ..LightGlueParams::default()
            },
        }
    }

    /// [`for_kind`](Self::for_kind)`(GlueKind::Disk)`.
    pub fn disk() -> Self {
        Self::for_kind(GlueKind::Disk)
    }

    /// [`for_kind`](Self::for_kind)`(GlueKind::Aliked)`.
    pub fn aliked() -> Self {
        Self::for_kind(GlueKind::Aliked)
    }

    /// [`for_kind`](Self::for_kind)`(GlueKind::XFeat)`: LighterGlue.
    pub fn xfeat() -> Self {
        Self::for_kind(GlueKind::XFeat)
    }

    /// Early stopping and point pruning off (both confidences -1): every
    /// layer runs on every keypoint, as in [`LightGlue::match_batch`](super::LightGlue::match_batch)
    /// and as wildlife-tools runs LightGlue.
    #[must_use]
    pub fn full_depth(self) -> Self {
        LightGlueParams {
            depth_confidence: -1.0,
            width_confidence: -1.0,
            ..self
        }
    }

    reid_core::setters! {
        /// Sets [`depth_confidence`](#structfield.depth_confidence).
        depth_confidence: f64,
        /// Sets [`width_confidence`](#structfield.width_confidence).
        width_confidence: f64,
        /// Sets [`filter_threshold`](#structfield.filter_threshold).
        filter_threshold: f64,
        /// Sets [`pruning_min_keypoints`](#structfield.pruning_min_keypoints).
        pruning_min_keypoints: Option<usize>,
        /// Sets [`batch_size`](#structfield.batch_size).
        batch_size: usize,
    }
}

/// Checked [`LightGlueParams`]; made by [`ParamGuard::check`](reid_core::ParamGuard::check). Its `Default`
/// is the default [`LightGlueParams`], checked.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ValidLightGlueParams(LightGlueParams);

fn check_confidence(name: &'static str, value: f64) -> Result<()> {
    if value == -1.0 || (value.is_finite() && value > 0.0 && value <= 1.0) {
        Ok(())
    } else {
        Err(GlueError::param(
            name,
            format!("must be -1 (disabled) or in (0, 1], got {value}"),
        ))
    }
}

// Validates every field; the error names the first bad one and its value.
reid_core::param_guard!(LightGlueParams => ValidLightGlueParams, GlueError, |p| {
    check_confidence("depth_confidence", p.depth_confidence)?;
    check_confidence("width_confidence", p.width_confidence)?;
    if !(p.filter_threshold.is_finite() && (0.0..=1.0).contains(&p.filter_threshold)) {
        return Err(GlueError::param(
            "filter_threshold",
            format!("must be in [0, 1], got {}", p.filter_threshold),
        ));
    }
    if !(1..=4096).contains(&p.batch_size) {
        return Err(GlueError::param(
            "batch_size",
            format!("must be in 1..=4096, got {}", p.batch_size),
        ));
    }
    Ok(())
});

impl ValidLightGlueParams {
    /// The checked values.
    pub fn get(&self) -> &LightGlueParams {
        &self.0
    }

    /// Whether early stopping runs (`depth_confidence > 0`).
    pub fn early_stopping(&self) -> bool {
        self.0.depth_confidence > 0.0
    }

    /// Whether point pruning runs (`width_confidence > 0`).
    pub fn point_pruning(&self) -> bool {
        self.0.width_confidence > 0.0
    }

    /// The reference defaults of `kind`, checked.
    pub fn for_kind(kind: GlueKind) -> Self {
        ValidLightGlueParams(LightGlueParams::for_kind(kind))
    }
}
