//! Helpers shared by the integration tests of `reid-data`.
#![allow(clippy::print_stderr, dead_code)]

use std::path::PathBuf;

/// The shared data folder (`reid_core::paths::shared_dir`), or `None` after
/// printing why the calling test is skipped.
pub fn shared() -> Option<PathBuf> {
    reid_core::paths::shared_data()
        .map_err(|e| eprintln!("skipping: {e}"))
        .ok()
}
