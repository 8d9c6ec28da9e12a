//! Atomic file writes: the one writer every crate of the workspace uses.
//!
//! The content goes to a fresh temporary file in the target's folder
//! (`.<name>.tmp-<pid>-<n>`, created exclusively), is flushed and, unless
//! [`AtomicWrite::durable`] is off, synced to disk; the temporary file is then
//! renamed over the target and the folder synced (where the platform can).
//! A reader therefore sees the old file or the complete new one, never half
//! a file; on any error the temporary file is removed and the old file is
//! left as it was. A writer killed mid-write leaves its temporary file; the
//! first write into that folder by a later process removes it (once per
//! folder and process, where `/proc` tells which writers are gone).
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

/// Removes, once per folder and process, the temporary files that writers
/// killed mid-write (SIGKILL, power cut) left in `dir`: names of the form
/// `.<name>.tmp-<pid>-<n>` whose process no longer runs. Only where a
/// process can be looked up (`/proc`); a live process's files are kept.
fn sweep_once(dir: &Path) {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static SWEPT: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    if !Path::new("/proc/self").exists() {
        return;
    }
    let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    {
        let Ok(mut swept) = SWEPT.lock() else {
            return;
        };
        if !swept.get_or_insert_with(HashSet::new).insert(key) {
            return;
        }
    }
    let _ = remove_stale_temps(dir);
}

/// The temporary files of dead writers in `dir`, removed; returns how many.
pub fn remove_stale_temps(dir: &Path) -> std::io::Result<usize> {
    let me = std::process::id();
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temp_owner) else {
            continue;
        };
        let dead = pid != me && !Path::new(&format!("/proc/{pid}")).exists();
        if dead && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The process id in a temporary name `.<name>.tmp-<pid>-<n>`.
fn temp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(".tmp-")?;
    let (pid, n) = tail.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
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
        sweep_once(&dir);
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

    /// The temporary file of a killed writer (a process that no longer
    /// exists) goes at the next write into its folder; a live writer's and
    /// other files stay.
    #[test]
    fn stale_temps_of_dead_writers_are_removed() {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // Above Linux's largest pid (2^22), so never a live process.
        let dead = dir.path().join(".a.bin.tmp-4194400-3");
        let live = dir
            .path()
            .join(format!(".a.bin.tmp-{}-999", std::process::id()));
        let other = dir.path().join(".a.bin.tmp-notapid-1");
        for p in [&dead, &live, &other] {
            std::fs::write(p, b"half").unwrap();
        }
        assert_eq!(temp_owner(".a.bin.tmp-4194400-3"), Some(4_194_400));
        assert_eq!(temp_owner("a.bin"), None);
        write_atomic(&dir.path().join("a.bin"), b"whole").unwrap();
        assert!(!dead.exists());
        assert!(live.exists() && other.exists());
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 0);
    }

    #[test]
    fn temp_names_are_unique() {
        let p = Path::new("/tmp/x.bin");
        assert_ne!(temp_beside(p).unwrap(), temp_beside(p).unwrap());
    }
}
