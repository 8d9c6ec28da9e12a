//! The settings of [`XFeat::extract`](super::XFeat::extract), checked once
//! (the workspace's [`ParamGuard`](reid_core::ParamGuard) convention).

use crate::error::GlueError;

/// Sparse-extraction settings of XFeat, with the reference defaults of
/// `XFeat.__init__` / `detectAndCompute`.
///
/// ```
/// use reid_core::ParamGuard;
/// use reid_glue::xfeat::XFeatParams;
///
/// let p = XFeatParams::default().top_k(1024).check()?;
/// assert_eq!((p.top_k(), p.detection_threshold()), (1024, 0.05));
/// let e = XFeatParams::default().detection_threshold(1.5).check().unwrap_err();
/// assert!(e.to_string().contains("`detection_threshold`"));
/// # Ok::<(), reid_glue::GlueError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct XFeatParams {
    /// At most this many keypoints per image, highest score first.
    /// In `1..=1_000_000`; default 4096 (the reference's `top_k`).
    pub top_k: usize,
    /// A pixel is a keypoint candidate when its keypoint probability (the
    /// softmax over the 65 cells, spread to full resolution) is above this
    /// and is the maximum of its 5×5 neighbourhood. Finite, in `[0, 1)`;
    /// default 0.05 (the reference's `detection_threshold`).
    pub detection_threshold: f64,
}

impl Default for XFeatParams {
    fn default() -> Self {
        XFeatParams {
            top_k: 4096,
            detection_threshold: 0.05,
        }
    }
}

impl XFeatParams {
    reid_core::setters! {
        /// Sets [`top_k`](#structfield.top_k).
        top_k: usize,
        /// Sets [`detection_threshold`](#structfield.detection_threshold).
        detection_threshold: f64,
    }
}

/// Checked [`XFeatParams`]; made by [`ParamGuard::check`](reid_core::ParamGuard::check).
/// Its `Default` is the default [`XFeatParams`], checked.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ValidXFeatParams(XFeatParams);

impl ValidXFeatParams {
    reid_core::getters! {
        /// [`XFeatParams::top_k`].
        top_k: usize,
        /// [`XFeatParams::detection_threshold`].
        detection_threshold: f64,
    }

    /// The settings, as given.
    pub fn get(&self) -> &XFeatParams {
        &self.0
    }
}

// Validates every field; errors with [`GlueError::InvalidParam`] naming the
// first bad one and its value.
reid_core::param_guard!(XFeatParams => ValidXFeatParams, GlueError, |p| {
    if !(1..=1_000_000).contains(&p.top_k) {
        return Err(GlueError::param(
            "top_k",
            format!("must be in 1..=1000000, got {}", p.top_k),
        ));
    }
    if !(p.detection_threshold.is_finite()
        && (0.0..1.0).contains(&p.detection_threshold))
    {
        return Err(GlueError::param(
            "detection_threshold",
            format!("must be finite and in [0, 1), got {}", p.detection_threshold),
        ));
    }
    Ok(())
});
