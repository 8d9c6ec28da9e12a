//! Where the project keeps things outside a clone, by environment variable:
//! the cache (libtorch, weights, fixtures, feature caches), the shared data
//! folder of the development machines, and the test fixtures.
//!
//! ```
//! let cache = reid_core::paths::cache_dir();
//! assert!(reid_core::paths::fixtures_dir().starts_with(&cache)
//!     || std::env::var_os("ANIMAL_REID_FIXTURES").is_some());
//! ```

use std::path::PathBuf;

use crate::{CoreError, Result};

/// The variable naming the cache folder.
pub const CACHE_ENV: &str = "ANIMAL_REID_CACHE";
/// The variable naming the shared data folder.
pub const SHARED_ENV: &str = "ANIMAL_REID_SHARED";
/// The variable naming the fixtures folder.
pub const FIXTURES_ENV: &str = "ANIMAL_REID_FIXTURES";

/// A non-empty environment variable as a path.
fn var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The project's cache folder: `$ANIMAL_REID_CACHE`, else
/// `$HOME/.cache/animal-reid` (`.cache/animal-reid` in the current folder
/// when `HOME` is unset).
pub fn cache_dir() -> PathBuf {
    var(CACHE_ENV).unwrap_or_else(|| {
        var("HOME")
            .unwrap_or_default()
            .join(".cache")
            .join("animal-reid")
    })
}

/// The shared data folder of the development machines (lion, cattle, the
/// AnimalCLEF metadata): `$ANIMAL_REID_SHARED`, else `shared` beside this
/// repository's folder.
pub fn shared_dir() -> PathBuf {
    var(SHARED_ENV)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// The folder of test fixtures made by `scripts/setup.sh test`:
/// `$ANIMAL_REID_FIXTURES`, else `fixtures` in [`cache_dir`].
pub fn fixtures_dir() -> PathBuf {
    var(FIXTURES_ENV).unwrap_or_else(|| cache_dir().join("fixtures"))
}

/// [`shared_dir`] when it holds the `datasets` folder, else an error that
/// names it (tests and benchmarks that need real photos skip on it).
pub fn shared_data() -> Result<PathBuf> {
    let dir = shared_dir();
    if dir.join("datasets").is_dir() {
        Ok(dir)
    } else {
        Err(CoreError::Missing {
            what: "shared data folder",
            path: dir,
            hint: "set ANIMAL_REID_SHARED",
        })
    }
}

/// The fixtures made by `scripts/fixtures/<stem>.py` in [`fixtures_dir`],
/// or an error that names the folder and the command that makes it.
pub fn fixture_dir(stem: &str) -> Result<PathBuf> {
    let dir = fixtures_dir().join(stem);
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(CoreError::Missing {
            what: "fixtures",
            path: dir,
            hint: "run `scripts/setup.sh test` (it runs scripts/fixtures/*.py)",
        })
    }
}
