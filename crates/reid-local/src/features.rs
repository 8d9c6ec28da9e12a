//! Keypoints and the features of one image.

use crate::error::{LocalError, Result};

/// Length of a SIFT / RootSIFT descriptor: 4 × 4 spatial cells × 8
/// orientation bins.
pub const DESCRIPTOR_LEN: usize = 128;

/// One keypoint, in the scaled frame of its image (see
/// [`Features::scaled_size`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keypoint {
    /// Column, in pixels (the centre of the top-left pixel is `0.0`).
    pub x: f32,
    /// Row, in pixels.
    pub y: f32,
    /// Scale: the blur σ of the keypoint, in pixels of the scaled frame.
    pub sigma: f32,
    /// Dominant gradient orientation in radians, `[0, 2π)`, measured from
    /// the +x axis towards +y (clockwise on screen, as rows grow downwards).
    pub angle: f32,
    /// Absolute DoG contrast after sub-pixel refinement (the strength used
    /// to keep the strongest keypoints).
    pub response: f32,
    /// Octave index (0 is the input resolution, -1 the doubled image).
    pub octave: i32,
}

/// The keypoints and descriptors of one image.
///
/// Keypoints are ordered by decreasing [`Keypoint::response`]; descriptor
/// `i` (of length [`Features::dim`]) belongs to keypoint `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    width: u32,
    height: u32,
    original_width: u32,
    original_height: u32,
    dim: usize,
    keypoints: Vec<Keypoint>,
    descriptors: Vec<f32>,
}

/// Features assembled from their parts by [`Features::builder`] and
/// checked by [`FeaturesBuilder::build`].
///
/// ```
/// use reid_local::{Features, Keypoint};
///
/// let kp = Keypoint { x: 3.0, y: 4.0, sigma: 1.6, angle: 0.0, response: 0.1, octave: 0 };
/// let f = Features::builder((320, 240), vec![kp], vec![0.5; 4])
///     .dim(4)
///     .original_size((640, 480))
///     .build()?;
/// assert_eq!((f.len(), f.scale()), (1, (0.5, 0.5)));
/// // Three values are not one descriptor of length 4.
/// assert!(Features::builder((320, 240), vec![kp], vec![0.5; 3]).dim(4).build().is_err());
/// # Ok::<(), reid_local::LocalError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct FeaturesBuilder {
    scaled_size: (u32, u32),
    original_size: Option<(u32, u32)>,
    dim: usize,
    keypoints: Vec<Keypoint>,
    descriptors: Vec<f32>,
}

impl FeaturesBuilder {
    reid_core::setters! {
        /// Descriptor length; default [`DESCRIPTOR_LEN`] (128).
        dim: usize,
    }

    /// `(width, height)` of the decoded image before downscaling; default
    /// the scaled size (not downscaled).
    pub fn original_size(mut self, size: (u32, u32)) -> Self {
        self.original_size = Some(size);
        self
    }

    /// Checks that there are `dim` descriptor values per keypoint and that
    /// every number is finite, and assembles the features.
    pub fn build(self) -> Result<Features> {
        let FeaturesBuilder {
            scaled_size,
            original_size,
            dim,
            keypoints,
            descriptors,
        } = self;
        if dim == 0 {
            return Err(LocalError::param(
                "dim",
                "descriptor length must be at least 1, got 0",
            ));
        }
        if keypoints.len().checked_mul(dim) != Some(descriptors.len()) {
            return Err(LocalError::Shape {
                what: "descriptors",
                expected: format!("{} x {dim} values", keypoints.len()),
                got: format!("{} values", descriptors.len()),
            });
        }
        if let Some(i) = keypoints.iter().position(|k| {
            !(k.x.is_finite()
                && k.y.is_finite()
                && k.sigma.is_finite()
                && k.angle.is_finite()
                && k.response.is_finite())
        }) {
            return Err(LocalError::NonFinite {
                what: "keypoints",
                index: i,
            });
        }
        if let Some(i) = descriptors.iter().position(|v| !v.is_finite()) {
            return Err(LocalError::NonFinite {
                what: "descriptors",
                index: i,
            });
        }
        Ok(Features::from_checked(
            scaled_size,
            original_size.unwrap_or(scaled_size),
            dim,
            keypoints,
            descriptors,
        ))
    }
}

impl Features {
    /// Starts assembling features from `keypoints`, in the frame of
    /// `scaled_size` (`(width, height)` of the downscaled image), and their
    /// `descriptors` (row-major, one row of [`FeaturesBuilder::dim`] values
    /// per keypoint); the original size and the descriptor length are set on
    /// the builder, and [`FeaturesBuilder::build`] checks everything.
    pub fn builder(
        scaled_size: (u32, u32),
        keypoints: Vec<Keypoint>,
        descriptors: Vec<f32>,
    ) -> FeaturesBuilder {
        FeaturesBuilder {
            scaled_size,
            original_size: None,
            dim: DESCRIPTOR_LEN,
            keypoints,
            descriptors,
        }
    }

    /// Trusted constructor for values produced by this crate.
    pub(crate) fn from_checked(
        scaled_size: (u32, u32),
        original_size: (u32, u32),
        dim: usize,
        keypoints: Vec<Keypoint>,
        descriptors: Vec<f32>,
    ) -> Self {
        Features {
            width: scaled_size.0,
            height: scaled_size.1,
            original_width: original_size.0,
            original_height: original_size.1,
            dim,
            keypoints,
            descriptors,
        }
    }

    /// Number of keypoints.
    pub fn len(&self) -> usize {
        self.keypoints.len()
    }

    /// Whether there are no keypoints.
    pub fn is_empty(&self) -> bool {
        self.keypoints.is_empty()
    }

    /// Descriptor length (128 for SIFT / RootSIFT).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `(width, height)` of the scaled frame the keypoints are in.
    pub fn scaled_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// `(width, height)` of the decoded image before downscaling.
    pub fn original_size(&self) -> (u32, u32) {
        (self.original_width, self.original_height)
    }

    /// Factors `(sx, sy)` from original to scaled coordinates; `(1, 1)`
    /// when not downscaled. With pixel centres at integer coordinates, a
    /// keypoint at `x` in the scaled frame lies at `(x + 0.5) / sx - 0.5`
    /// in the original image.
    pub fn scale(&self) -> (f32, f32) {
        (
            self.width as f32 / self.original_width.max(1) as f32,
            self.height as f32 / self.original_height.max(1) as f32,
        )
    }

    /// The keypoints, strongest first.
    pub fn keypoints(&self) -> &[Keypoint] {
        &self.keypoints
    }

    /// All descriptors, row-major `[len, dim]`.
    pub fn descriptors(&self) -> &[f32] {
        &self.descriptors
    }

    /// Descriptor of keypoint `i`, if there is one.
    pub fn descriptor(&self, i: usize) -> Option<&[f32]> {
        self.descriptors.get(i * self.dim..(i + 1) * self.dim)
    }
}
