//! Atomic file writes: the one writer every crate of the workspace uses.
//!
//! The content goes to a fresh temporary file in the target's folder
//! (`.<name>.tmp-<pid>-<n>`, created exclusively), is flushed and, unless
//! [`AtomicWrite::durable`] is off, synced to disk; the temporary file is then
//! renamed over the target and the folder synced (where the platform can).
//! A reader therefore sees the old file or the complete new one, never half
//! a file; on any error the temporary file is removed and the old file is
//! left as it was.
//!
//! ```
//! use reid_core::fs::{AtomicWrite, write_atomic};
//! let dir = tempfile::tempdir()?;
//! let p = dir.path().join("a.txt");
//! write_atomic(&p, b"hello")?;
//! assert_eq!(std::fs::read(&p)?, b"hello");
//!
//! // Into a folder that does not exist yet, without syncing (many small files):
//! let q = dir.path().join("new/b.txt");
//! AtomicWrite::new().create_dirs(true).durable(false).bytes(&q, b"hi")?;
//! assert_eq!(std::fs::read(&q)?, b"hi");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{CoreError, Result};

/// How an atomic write is made; [`AtomicWrite::new`] is durable and does
/// not create folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtomicWrite {
    durable: bool,
    create_dirs: bool,
}

impl Default for AtomicWrite {
    fn default() -> Self {
        Self::new()
    }
}

fn write_err(path: &Path, source: std::io::Error) -> CoreError {
    CoreError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// The folder of `path` (`.` for a bare file name).
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A fresh temporary path beside `path`, unique within this process.
fn temp_beside(path: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        write_err(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"),
        )
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(folder_of(path).join(format!(
        ".{}.tmp-{}-{n}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

impl AtomicWrite {
    /// Durable (file and folder synced), folders not created.
    pub const fn new() -> Self {
        Self {
            durable: true,
            create_dirs: false,
        }
    }

    /// Sync the file and its folder before returning (default on). Off is
    /// still atomic, but a power cut may lose the new content; for many
    /// small files that can be remade (generated images, caches).
    #[must_use]
    pub const fn durable(mut self, on: bool) -> Self {
        self.durable = on;
        self
    }

    /// Create missing folders of the target (default off: a missing folder
    /// is an error naming it).
    #[must_use]
    pub const fn create_dirs(mut self, on: bool) -> Self {
        self.create_dirs = on;
        self
    }

    fn prepare(&self, path: &Path) -> Result<PathBuf> {
        let dir = folder_of(path);
        if self.create_dirs {
            std::fs::create_dir_all(&dir).map_err(|e| write_err(path, e))?;
        } else if !dir.is_dir() {
            let (kind, what) = if dir.exists() {
                (std::io::ErrorKind::NotADirectory, "is not a folder")
            } else {
                (std::io::ErrorKind::NotFound, "does not exist")
            };
            return Err(write_err(
                path,
                std::io::Error::new(kind, format!("{} {what}", dir.display())),
            ));
        }
        temp_beside(path)
    }

    fn commit(&self, tmp: &Path, path: &Path) -> std::io::Result<()> {
        std::fs::rename(tmp, path)?;
        if self.durable {
            // Make the rename durable where the platform can sync a folder.
            if let Ok(d) = std::fs::File::open(folder_of(path)) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// Writes `bytes` to `path`.
    pub fn bytes(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.with(path, |w| w.write_all(bytes))
    }

    /// Writes what `fill` produces into a buffered writer to `path`.
    pub fn with<F>(&self, path: &Path, fill: F) -> Result<()>
    where
        F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
    {
        let tmp = self.prepare(path)?;
        let result = (|| -> std::io::Result<()> {
            let file = std::fs::File::options()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            fill(&mut w)?;
            let file = w.into_inner().map_err(|e| e.into_error())?;
            if self.durable {
                file.sync_all()?;
            }
            drop(file);
            self.commit(&tmp, path)
        })();
        result.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            write_err(path, e)
        })
    }

    /// A temporary path beside `path` for writers that need a file name
    /// (a library that writes the file itself): write it, then
    /// [`TempFile::commit`]. Dropped without a commit, the temporary file is
    /// removed.
    pub fn temp_file(&self, path: &Path) -> Result<TempFile> {
        Ok(TempFile {
            tmp: self.prepare(path)?,
            target: path.to_path_buf(),
            how: *self,
            done: false,
        })
    }
}

/// A temporary file beside its target, renamed over it by
/// [`TempFile::commit`] or removed when dropped (see
/// [`AtomicWrite::temp_file`]).
#[derive(Debug)]
pub struct TempFile {
    tmp: PathBuf,
    target: PathBuf,
    how: AtomicWrite,
    done: bool,
}

impl TempFile {
    /// Where to write.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The file it will replace.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Syncs the written file (when durable) and renames it over the target.
    pub fn commit(mut self) -> Result<()> {
        let result = (|| -> std::io::Result<()> {
            if self.how.durable {
                std::fs::File::open(&self.tmp)?.sync_all()?;
            }
            self.how.commit(&self.tmp, &self.target)
        })();
        self.done = result.is_ok();
        result.map_err(|e| write_err(&self.target, e))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` atomically and durably ([`AtomicWrite::new`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    AtomicWrite::new().bytes(path, bytes)
}

/// Writes what `fill` produces to `path` atomically and durably.
pub fn write_atomic_with<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    AtomicWrite::new().with(path, fill)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    #[test]
    fn failed_fill_keeps_old_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        write_atomic(&p, b"old").unwrap();
        let e = write_atomic_with(&p, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("f.bin") && e.to_string().contains("disk full"));
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn missing_folder_is_named_unless_created() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/f.txt");
        let e = write_atomic(&p, b"x").unwrap_err().to_string();
        assert!(e.contains("does not exist") && e.contains("no/such"), "{e}");
        std::fs::write(dir.path().join("file"), b"").unwrap();
        let e = write_atomic(&dir.path().join("file/f.txt"), b"x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a folder"), "{e}");
        AtomicWrite::new()
            .create_dirs(true)
            .bytes(&p, b"x")
            .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
    }

    #[test]
    fn temp_file_commits_or_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        let t = AtomicWrite::new().temp_file(&p).unwrap();
        std::fs::write(t.path(), b"new").unwrap();
        assert!(!p.exists());
        t.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        {
            let t = AtomicWrite::new().temp_file(&p).unwrap();
            std::fs::write(t.path(), b"abandoned").unwrap();
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn temp_names_are_unique() {
        let p = Path::new("/tmp/x.bin");
        assert_ne!(temp_beside(p).unwrap(), temp_beside(p).unwrap());
    }
}
