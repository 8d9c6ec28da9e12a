//! Folder-per-identity image trees.

use std::path::{Component, Path, PathBuf};

use super::{LoadOptions, LoadReport, OnError, Skipped};
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::record::Record;

/// Image file extensions recognised by [`load_folders`] (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"];

/// Loads a folder-per-identity image tree.
///
/// Every image file below `root` (recognised by extension, see
/// [`IMAGE_EXTENSIONS`]; decoding elsewhere goes by content) becomes a
/// record whose identity is the name of the folder holding it, so nested
/// layouts such as `train/<id>/x.jpg`, `val/<id>/y.jpg` work. Images lying
/// directly in `root` have no identity (`None`). The `image_id` is the path
/// relative to `root` with `/` separators (a byte of a name that is not
/// UTF-8 written `\xNN`); records are in sorted path order.
/// Hidden files and folders (name starting with `.`) are ignored; symbolic
/// links are followed up to a nesting depth of 64. A zero-byte image is
/// [`DataError::EmptyFile`] (or skipped).
pub fn load_folders(root: &Path, opts: &LoadOptions) -> Result<(Dataset, LoadReport)> {
    let meta = std::fs::metadata(root).map_err(|e| DataError::io(root, e))?;
    if !meta.is_dir() {
        return Err(DataError::io(
            root,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a folder"),
        ));
    }
    let mut walker = Walker {
        root,
        opts,
        records: Vec::new(),
        report: LoadReport::default(),
    };
    walker.walk(root, 0)?;
    if walker.records.is_empty() {
        return Err(DataError::Empty {
            what: format!(
                "{}: image folder (no non-empty image files found)",
                root.display()
            ),
        });
    }
    Ok((Dataset::new(root, walker.records), walker.report))
}

const MAX_DEPTH: usize = 64;

struct Walker<'a> {
    root: &'a Path,
    opts: &'a LoadOptions,
    records: Vec<Record>,
    report: LoadReport,
}

impl Walker<'_> {
    fn fail(&mut self, location: &Path, error: DataError) -> Result<()> {
        if self.opts.on_error == OnError::Skip {
            self.report.skipped.push(Skipped {
                location: location.display().to_string(),
                error,
            });
            Ok(())
        } else {
            Err(error)
        }
    }

    fn walk(&mut self, dir: &Path, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            let err = DataError::io(
                dir,
                std::io::Error::other(format!(
                    "folders nested deeper than {MAX_DEPTH} levels (symbolic-link loop?)"
                )),
            );
            return self.fail(dir, err);
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if depth == 0 => return Err(DataError::io(dir, e)),
            Err(e) => return self.fail(dir, DataError::io(dir, e)),
        };
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => {
                    if !e.file_name().to_string_lossy().starts_with('.') {
                        paths.push(e.path());
                    }
                }
                Err(e) => self.fail(dir, DataError::io(dir, e))?,
            }
        }
        paths.sort();
        for p in paths {
            let meta = match std::fs::metadata(&p) {
                Ok(m) => m,
                Err(e) => {
                    self.fail(&p, DataError::io(&p, e))?;
                    continue;
                }
            };
            if meta.is_dir() {
                self.walk(&p, depth + 1)?;
            } else if meta.is_file() && is_image_name(&p) {
                if meta.len() == 0 {
                    self.fail(&p, DataError::EmptyFile { path: p.clone() })?;
                    continue;
                }
                self.push(p);
            }
        }
        Ok(())
    }

    fn push(&mut self, p: PathBuf) {
        let rel = p.strip_prefix(self.root).unwrap_or(&p);
        let comps: Vec<String> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(name_of(s)),
                _ => None,
            })
            .collect();
        let identity = if comps.len() >= 2 {
            comps.get(comps.len() - 2).cloned()
        } else {
            None
        };
        let mut r = Record::new(comps.join("/"), p);
        r.identity = identity;
        self.records.push(r);
    }
}

/// A file or folder name as text: valid UTF-8 as it is, each byte that is
/// not (a Unix name can hold any) as `\xNN`, so that two different names
/// never become the same image id or identity (a lossy conversion would turn
/// both into `\u{FFFD}`).
fn name_of(s: &std::ffi::OsStr) -> String {
    let bytes = s.as_encoded_bytes();
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

fn is_image_name(p: &Path) -> bool {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}
