//! The record: one photo and what is known about it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// An axis-aligned bounding box in pixels: top-left corner plus size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    /// Left edge, pixels from the image's left side.
    pub x: f32,
    /// Top edge, pixels from the image's top.
    pub y: f32,
    /// Width in pixels (> 0).
    pub w: f32,
    /// Height in pixels (> 0).
    pub h: f32,
}

impl fmt::Display for BBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{},{}", self.x, self.y, self.w, self.h)
    }
}

/// The role of a record in an open-set evaluation.
///
/// AnimalCLEF calls the gallery `database` and the probes `query`; training
/// folds may use `train`, `valid`, `test`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SplitRole {
    /// Gallery images with known identities.
    Database,
    /// Probe images to be identified (or declared new).
    Query,
    /// Any other split name, kept verbatim (`train`, `test`, ...).
    Other(String),
}

impl SplitRole {
    /// Parses a split name; `database`/`gallery` and `query`/`probe` are
    /// recognised case-insensitively, anything else is kept as [`SplitRole::Other`].
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "database" | "gallery" => SplitRole::Database,
            "query" | "probe" => SplitRole::Query,
            _ => SplitRole::Other(s.trim().to_string()),
        }
    }

    /// The name written to CSV files.
    pub fn as_str(&self) -> &str {
        match self {
            SplitRole::Database => "database",
            SplitRole::Query => "query",
            SplitRole::Other(s) => s,
        }
    }
}

impl fmt::Display for SplitRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A calendar date (`YYYY-MM-DD`), used by time-aware splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Date {
    /// Year.
    pub year: i32,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of month, 1..=31.
    pub day: u8,
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// One photo and its metadata.
///
/// `identity` is `None` for unlabelled queries (the AnimalCLEF test set).
/// `path` is as resolved by the loader (joined to the dataset root).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Unique id of the image within its collection.
    pub image_id: String,
    /// The individual shown, when known.
    pub identity: Option<String>,
    /// Image file.
    pub path: PathBuf,
    /// Species, e.g. `loggerhead turtle`, `lynx`, `lion`.
    pub species: Option<String>,
    /// Role in the evaluation (database / query / other).
    pub split: Option<SplitRole>,
    /// Source dataset, e.g. `SeaTurtleID2022`.
    pub dataset: Option<String>,
    /// Date the photo was taken.
    pub date: Option<Date>,
    /// Viewpoint, e.g. `left`, `right`, `top`.
    pub orientation: Option<String>,
    /// Region of the animal in the image.
    pub bbox: Option<BBox>,
    /// Any other columns, by name.
    pub attributes: BTreeMap<String, String>,
}

impl Record {
    /// A record with only the required fields set.
    pub fn new(image_id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Record {
            image_id: image_id.into(),
            identity: None,
            path: path.into(),
            species: None,
            split: None,
            dataset: None,
            date: None,
            orientation: None,
            bbox: None,
            attributes: BTreeMap::new(),
        }
    }
}
