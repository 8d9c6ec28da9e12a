//! Loaders: AnimalCLEF `metadata.csv`, folder-per-identity image trees and
//! generic CSVs with bounding boxes; and the matching writer
//! [`write_metadata_csv`].
//!
//! Every loader takes [`LoadOptions`]: with [`OnError::FailFast`] the first
//! bad row or file is returned as a typed [`DataError`] naming the file and
//! line; with [`OnError::Skip`] bad rows and files are listed in the
//! [`LoadReport`] (where and why) and loading goes on with the good ones.
//!
//! CSV rules shared by all CSV loaders:
//! - columns are found by header name (exact, then case-insensitive), in any
//!   order; fields are trimmed; a UTF-8 byte-order mark is ignored; an
//!   unnamed column (e.g. a pandas index) is called `column<N>` (1-based);
//!   a name repeated in the header is a [`DataError::BadRow`] on line 1;
//! - the header is line 1; every row must have as many fields as the header;
//! - `image_id` and `path` must be non-empty and `image_id` unique;
//! - relative paths are joined to the dataset root (by default the CSV's
//!   folder), absolute paths are kept;
//! - empty optional fields become `None`; columns the loader does not know go
//!   to [`Record::attributes`](crate::Record::attributes) (empty values are left out);
//! - dates are `YYYY-MM-DD`, optionally followed by ` HH:MM[:SS]` or
//!   `THH:MM[:SS]` (the time is dropped);
//! - a CSV with no data rows is [`DataError::Empty`].
//!
//! ```no_run
//! use reid_data::loaders::{load_animalclef, LoadOptions};
//! let (ds, _report) = load_animalclef(
//!     "animalclef2025/metadata.csv".as_ref(),
//!     &LoadOptions::default(),
//! )?;
//! println!("{}", ds.stats());
//! # Ok::<(), reid_data::DataError>(())
//! ```
//!
//! One file per job: `animalclef` (the AnimalCLEF schema), `generic_csv`
//! (any CSV with named columns and bounding boxes), `folders`
//! (folder-per-identity trees), `write` ([`write_metadata_csv`]) and `date`
//! ([`parse_date`]); everything is re-exported here.

mod animalclef;
mod date;
mod folders;
mod generic_csv;
mod write;

pub use animalclef::{ANIMALCLEF_COLUMNS, BBOX_COLUMNS, load_animalclef};
pub use date::parse_date;
pub use folders::{IMAGE_EXTENSIONS, load_folders};
pub use generic_csv::{
    BboxColumns, CsvColumns, is_url_cell, load_csv, load_csv_with_root, url_scheme,
};
pub use write::write_metadata_csv;

use std::path::{Path, PathBuf};

use crate::error::DataError;

/// What a loader does with a bad row or file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Stop at the first problem and return it as the error.
    #[default]
    FailFast,
    /// Record the problem in the [`LoadReport`] and go on.
    Skip,
}

/// Options shared by every loader.
///
/// Options, not params: every combination of settings is valid, so there is
/// no checked form and no [`reid_core::ParamGuard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadOptions {
    /// Fail fast (default) or skip bad rows/files.
    pub on_error: OnError,
    /// Check that every image file exists and is non-empty (CSV loaders;
    /// the folder loader always sees the files). Default `false`.
    pub check_files: bool,
}

impl LoadOptions {
    /// Options that skip bad rows instead of failing.
    pub fn skip() -> Self {
        LoadOptions {
            on_error: OnError::Skip,
            ..LoadOptions::default()
        }
    }

    /// The same options with `check_files` set.
    pub fn with_check_files(mut self, check: bool) -> Self {
        self.check_files = check;
        self
    }
}

/// One row or file that was left out in [`OnError::Skip`] mode.
#[derive(Debug)]
pub struct Skipped {
    /// Where: `file.csv:LINE` for a CSV row, the file path for an image.
    pub location: String,
    /// Why.
    pub error: DataError,
}

/// What a loader left out (always empty in [`OnError::FailFast`] mode).
#[derive(Debug, Default)]
pub struct LoadReport {
    /// The skipped rows / files, in file order.
    pub skipped: Vec<Skipped>,
}

impl LoadReport {
    /// True when nothing was skipped.
    pub fn is_clean(&self) -> bool {
        self.skipped.is_empty()
    }
}

/// The folder a CSV lies in: the default root of its relative paths.
fn csv_folder(csv: &Path) -> PathBuf {
    csv.parent().map(Path::to_path_buf).unwrap_or_default()
}
