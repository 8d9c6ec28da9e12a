//! # reid-backbone
//!
//! The libtorch side of animal-reid: image batches in, L2-normalised
//! embeddings out.
//!
//! - [`arch`]: the architectures, built on `tch::nn` with the original
//!   PyTorch key names, and the registry of named models
//!   ([`arch::models`], [`arch::find`]): EfficientNet-Lite0/1/2, MobileNetV2
//!   (with their real ImageNet weights), ConvNeXt-T/S/B, EfficientNetV2-S/M/L
//!   (`tf_` and plain), ViT-B/16 @224/@384, DINOv2 ViT-S/B/L/14 and Swin-B/L
//!   window 12 @384 (MegaDescriptor's architecture), each with its
//!   preprocessing.
//! - [`backbone`]: [`backbone::BackboneBuilder`] → [`backbone::Backbone`]:
//!   weights (bundled, a file, or seeded random), device (`cpu`, `cuda:N`),
//!   precision (f32; f16 on CUDA; bf16 on CUDA and CPUs with AVX-512 BF16,
//!   the stem and first block kept in f32), pooling ([`pool::Pooling`]:
//!   average, GeM, class token, class token + mean patch, and grid
//!   descriptors: a feature map averaged over an `N × N` grid, by default
//!   that of the last block at stride 16, [`arch::Architecture::taps`],
//!   where the network stops; the CNNs have taps, the transformers none).
//! - [`pipeline`]: records → prefetched parallel batches → backbone →
//!   [`pipeline::Embeddings`], with flip / five-crop test-time augmentation and
//!   the on-disk [`cache`] keyed by model, weights, preprocessing and image content.
//! - [`state_dict`] reads `.pth`/`.bin` (legacy and zip `torch.save`) and
//!   safetensors files and loads them into a `VarStore` by key name;
//!   [`torchscript`] runs `torch.jit.save`d models (exported, for instance, by
//!   `scripts/export_model.py`) as backbones.
//! - [`tiny`]: tiny-image descriptors (grey thumbnails, no network), which
//!   the pipeline may append to a backbone's embedding.
//! - [`weights`]: where the bundled pretrained weights live and how they are
//!   checked; [`device`]: which devices libtorch sees.
//!
//! Linking: binaries that use this crate need libtorch at run time. The
//! workspace's build scripts add an rpath to libtorch and link
//! `libtorch_cuda` explicitly; a downstream project does the same with a
//! build script (see the README, "Using the crates from your own project").
//!
//! ```no_run
//! use reid_backbone::backbone::BackboneBuilder;
//! use reid_backbone::ParamGuard;
//! use reid_backbone::pipeline::{ExtractParams, extract};
//!
//! let (ds, _) = reid_data::loaders::load_folders("photos".as_ref(), &Default::default())?;
//! let bb = BackboneBuilder::new("efficientnet_lite2").build()?;
//! let emb = extract(&bb, &ds.records, &ExtractParams::default().check()?, |_| {})?;
//! assert_eq!(emb.matrix.ncols() as i64, bb.info().dim);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod arch;
pub mod backbone;
pub mod cache;
pub mod device;
pub mod error;
pub mod pipeline;
pub mod pool;
pub mod state_dict;
pub mod tiny;
pub mod torchscript;
pub mod weights;

pub use error::{BackboneError, Result};
/// The workspace convention for checked parameters (see `reid_core::params`).
pub use reid_core::ParamGuard;
