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

impl Features {
    /// Assembles features, checking that there are `dim` descriptor values
    /// per keypoint and that every number is finite.
    ///
    /// `scaled_size` is the frame the keypoints live in (the downscaled
    /// image), `original_size` the decoded image's size.
    pub fn new(
        scaled_size: (u32, u32),
        original_size: (u32, u32),
        dim: usize,
        keypoints: Vec<Keypoint>,
        descriptors: Vec<f32>,
    ) -> Result<Self> {
        if dim == 0 {
            return Err(LocalError::param(
                "dim",
                "descriptor length must be at least 1",
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
        Ok(Self::from_checked(
            scaled_size,
            original_size,
            dim,
            keypoints,
            descriptors,
        ))
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
