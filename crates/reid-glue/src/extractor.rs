//! What every learned extractor gives, and the trait the store and the
//! scorer use to drive one.

use image::RgbImage;
use reid_local::{Features, Keypoint};
use tch::{Device, Kind, Tensor};

use crate::error::{GlueError, Result};

/// The keypoints of one image, as tensors: positions `[N, 2]` (`x`, `y` in
/// pixels of the image the extractor saw, the centre of the top-left pixel
/// at `0.0`), scores `[N]` and descriptors `[N, D]`, all `f32`.
#[derive(Debug)]
pub struct Keypoints {
    /// `[N, 2]`, `(x, y)`.
    pub keypoints: Tensor,
    /// `[N]`, the detection scores.
    pub scores: Tensor,
    /// `[N, D]`, L2-normalised.
    pub descriptors: Tensor,
}

impl Keypoints {
    /// The number of keypoints.
    pub fn len(&self) -> usize {
        self.keypoints.size().first().copied().unwrap_or(0).max(0) as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// As a [`reid_local::Features`] (for its on-disk cache and its RANSAC):
    /// `size` is the `(width, height)` the extractor saw, `original` the
    /// image's size before resizing. The score becomes
    /// [`Keypoint::response`]; learned keypoints have no scale or angle
    /// (`sigma` 1, `angle` 0).
    pub fn to_features(&self, size: (u32, u32), original: (u32, u32)) -> Result<Features> {
        let n = self.len();
        let kp = self.keypoints.to_device(Device::Cpu).to_kind(Kind::Float);
        let sc = self.scores.to_device(Device::Cpu).to_kind(Kind::Float);
        let de = self.descriptors.to_device(Device::Cpu).to_kind(Kind::Float);
        let (ks, ss, ds) = (kp.size(), sc.size(), de.size());
        if ks != [n as i64, 2] || ss != [n as i64] || ds.len() != 2 || ds[0] != n as i64 {
            return Err(GlueError::Shape {
                what: "keypoints, scores, descriptors".into(),
                expected: "[N, 2], [N], [N, D]".into(),
                got: format!("{ks:?}, {ss:?}, {ds:?}"),
            });
        }
        let dim = ds[1].max(0) as usize;
        let xy = Vec::<f32>::try_from(kp.contiguous().view([-1]))?;
        let scores = Vec::<f32>::try_from(sc.contiguous())?;
        let descriptors = Vec::<f32>::try_from(de.contiguous().view([-1]))?;
        let keypoints = (0..n)
            .map(|i| Keypoint {
                x: xy[2 * i],
                y: xy[2 * i + 1],
                sigma: 1.0,
                angle: 0.0,
                response: scores[i],
                octave: 0,
            })
            .collect();
        Ok(Features::builder(size, keypoints, descriptors)
            .dim(dim)
            .original_size(original)
            .build()?)
    }
}

/// A learned keypoint extractor (XFeat, DISK, ALIKED).
pub trait Extractor {
    /// Short name (`xfeat`), part of cache keys.
    fn name(&self) -> &'static str;
    /// Every setting that changes the output, as bytes (part of cache keys).
    fn key_bytes(&self) -> Vec<u8>;
    /// The device the network runs on.
    fn device(&self) -> Device;
    /// The keypoints of each image of a batch `[B, 3, H, W]` (RGB, `f32` in
    /// `[0, 1]`).
    fn extract_batch(&self, images: &Tensor) -> Result<Vec<Keypoints>>;
}

/// An RGB image as a `[1, 3, H, W]` `f32` tensor in `[0, 1]` on `device`.
pub fn image_tensor(img: &RgbImage, device: Device) -> Tensor {
    let (w, h) = img.dimensions();
    Tensor::from_slice(img.as_raw())
        .view([i64::from(h), i64::from(w), 3])
        .permute([2, 0, 1])
        .unsqueeze(0)
        .to_device(device)
        .to_kind(Kind::Float)
        / 255.0
}
