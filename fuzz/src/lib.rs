//! Helpers shared by the fuzz targets: a per-process scratch folder (in
//! `/dev/shm` when there is one, so the readers that take a path do not wear
//! the disk) and SHA-256 fix-ups that let mutated payloads get past the
//! checksums of the binary formats.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// A folder private to this process, created on first use and reused by
/// every input (the fuzzers run in persistent mode).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("FUZZ_SCRATCH")
            .map(PathBuf::from)
            .or_else(|| {
                let shm = Path::new("/dev/shm");
                shm.is_dir().then(|| shm.to_path_buf())
            })
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("animal-reid-fuzz-{}", std::process::id()));
        // Best effort: a failure shows up as an I/O error of the reader.
        let _ = std::fs::create_dir_all(&dir);
        dir
    })
    .as_path()
}

/// Writes `bytes` to `name` inside [`scratch`] and returns the path.
pub fn write_input(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    let _ = std::fs::write(&path, bytes);
    path
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Black-boxes a value so the reader's work is not optimised away; with
/// `FUZZ_DEBUG` set (replaying one input outside AFL), also prints it,
/// shortened, to stderr: did the seed load, or which error did it give?
pub fn consume<T: std::fmt::Debug>(v: T) {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    if *DEBUG.get_or_init(|| std::env::var_os("FUZZ_DEBUG").is_some()) {
        let text = format!("{v:?}");
        let short: String = text.chars().take(300).collect();
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{short}");
        }
    }
    std::hint::black_box(v);
}
