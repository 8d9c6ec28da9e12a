//! Helpers shared by the integration tests of `reid-data`.
#![allow(clippy::print_stderr, dead_code)]

use std::path::{Path, PathBuf};

/// The shared data folder (`ANIMAL_REID_SHARED`, else `../shared` beside the
/// repository), or `None` after printing why the calling test is skipped.
pub fn shared() -> Option<PathBuf> {
    let p = match std::env::var_os("ANIMAL_REID_SHARED") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    if p.join("datasets").is_dir() {
        Some(p)
    } else {
        eprintln!(
            "skipping: shared data folder {} not found (set ANIMAL_REID_SHARED)",
            p.display()
        );
        None
    }
}
