//! Helpers shared by the integration tests of `reid-eval`: where the shared
//! data and the generated fixtures are (the same places and variables as the
//! other crates' tests use).
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

/// The folder of fixtures made by `scripts/fixtures/<stem>.py` (run by
/// `scripts/setup.sh`): `ANIMAL_REID_FIXTURES`, else `ANIMAL_REID_CACHE`'s
/// `fixtures`, else `~/.cache/animal-reid/fixtures`. Missing fixtures fail
/// the test with the command to run.
pub fn fixture_dir(stem: &str) -> PathBuf {
    let base = std::env::var_os("ANIMAL_REID_FIXTURES")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("ANIMAL_REID_CACHE")
                .filter(|v| !v.is_empty())
                .map(|c| PathBuf::from(c).join("fixtures"))
        })
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/animal-reid/fixtures")
        });
    let dir = base.join(stem);
    assert!(
        dir.is_dir(),
        "fixtures {} missing: run scripts/setup.sh (it runs scripts/fixtures/{stem}.py)",
        dir.display()
    );
    dir
}
