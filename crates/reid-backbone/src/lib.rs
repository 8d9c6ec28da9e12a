//! # reid-backbone
//!
//! The libtorch side of animal-reid: where pretrained weights live and how
//! they are checked ([`weights`]), and which devices libtorch sees
//! ([`device`]). Backbone architectures and the embedding extraction pipeline
//! are tracked in the project's backbone issue; nothing here embeds images yet.
//!
//! Linking: binaries that use this crate need libtorch at run time. The
//! workspace's build scripts add an rpath to libtorch and link
//! `libtorch_cuda` explicitly; a downstream project does the same with a
//! build script (see the README, "Using the crates from your own project").
//!
//! ```no_run
//! use reid_backbone::{device::DeviceInfo, weights::Pretrained};
//!
//! let info = DeviceInfo::query();
//! println!("CUDA available: {}", info.cuda_available);
//! let lite2 = Pretrained::from_name("efficientnet_lite2")?.verify()?;
//! println!("weights at {}", lite2.display());
//! # Ok::<(), reid_backbone::BackboneError>(())
//! ```

pub mod arch;
pub mod device;
pub mod state_dict;
pub mod torchscript;
pub mod error;
pub mod weights;

pub use error::{BackboneError, Result};
