//! File output shared by the submission, plot, match-sheet and report
//! writers: atomic writes through `reid_core::fs` (a reader never sees half a
//! file; an interrupted write leaves the old file untouched) and, with the
//! `plot` feature, PNG encoding.

use std::io::Write;
use std::path::Path;

use crate::error::{EvalError, Result};

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> EvalError {
    EvalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes through `fill` atomically (`reid_core::fs`): a missing output
/// folder is the caller's mistake, named in the error, as is any failure;
/// `path` is then untouched.
pub(crate) fn write_atomic<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    reid_core::fs::write_atomic_with(path, fill).map_err(|e| {
        let (path, source) = e.into_io();
        EvalError::Io { path, source }
    })
}

/// [`write_atomic`] of a byte buffer.
#[cfg(feature = "plot")]
pub(crate) fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// Encodes an RGB image as PNG in memory; errors name `path`.
#[cfg(feature = "plot")]
pub(crate) fn encode_png(img: &image::RgbImage, path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png)
        .map_err(|source| EvalError::ImageEncode {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(buf)
}

/// Encodes `img` as PNG and writes it atomically to `path`.
#[cfg(feature = "plot")]
pub(crate) fn write_png_atomic(img: &image::RgbImage, path: &Path) -> Result<()> {
    let bytes = encode_png(img, path)?;
    write_bytes_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn failed_fill_leaves_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, |w| w.write_all(b"old")).unwrap();
        let err = write_atomic(&p, |w| {
            w.write_all(b"new, half")?;
            Err(std::io::Error::other("interrupted"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("a.txt"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn missing_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/dir/x.png");
        let err = write_atomic(&p, |w| w.write_all(b"x")).unwrap_err();
        assert!(matches!(err, EvalError::Io { .. }));
        assert!(err.to_string().contains("x.png"));
    }
}
