//! The AnimalCLEF `metadata.csv` schema and its loader.

use std::path::Path;

use super::generic_csv::{CsvColumns, load_csv_impl};
use super::{LoadOptions, LoadReport, csv_folder};
use crate::dataset::Dataset;
use crate::error::Result;

/// The AnimalCLEF columns, in the order [`write_metadata_csv`](super::write_metadata_csv) writes them.
pub const ANIMALCLEF_COLUMNS: [&str; 8] = [
    "image_id",
    "identity",
    "path",
    "date",
    "orientation",
    "species",
    "split",
    "dataset",
];

/// The bounding-box columns [`write_metadata_csv`](super::write_metadata_csv) adds when any record has a box.
pub const BBOX_COLUMNS: [&str; 4] = ["bbox_x", "bbox_y", "bbox_w", "bbox_h"];

/// Loads an AnimalCLEF-style `metadata.csv`.
///
/// Required columns: `image_id, identity, path, species, split, dataset`;
/// optional: `date, orientation`, and a bounding box given either as
/// `bbox_x, bbox_y, bbox_w, bbox_h`, as `bbox_x1, bbox_y1, bbox_x2, bbox_y2`
/// or as one `bbox` column `[x, y, w, h]`. Other columns go to
/// [`Record::attributes`](crate::Record::attributes). The root is the CSV's folder. An empty identity
/// (AnimalCLEF query rows) is `None`. A `split` other than `database` or
/// `query` (or their synonyms `gallery`, `probe`; any case) is a
/// [`DataError::BadRow`](crate::DataError::BadRow) naming the line and the
/// value: a typo such as `qurey` would otherwise drop the row from every
/// evaluation; so is a database row without an identity.
pub fn load_animalclef(csv: &Path, opts: &LoadOptions) -> Result<(Dataset, LoadReport)> {
    let root = csv_folder(csv);
    let cols = CsvColumns::default();
    load_csv_impl(csv, &root, &cols, &["date", "orientation"], true, opts)
}
