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
//!   to [`Record::attributes`] (empty values are left out);
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

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::BufReader;
use std::path::{Component, Path, PathBuf};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::record::{BBox, Date, Record, SplitRole};
use reid_core::fs::AtomicWrite;

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

/// Bounding-box columns of a CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BboxColumns {
    /// Four columns: left, top, width, height.
    Xywh {
        /// Left edge column.
        x: String,
        /// Top edge column.
        y: String,
        /// Width column.
        w: String,
        /// Height column.
        h: String,
    },
    /// Four columns: two corners `(x1, y1)` top-left and `(x2, y2)` bottom-right.
    Xyxy {
        /// Left edge column.
        x1: String,
        /// Top edge column.
        y1: String,
        /// Right edge column.
        x2: String,
        /// Bottom edge column.
        y2: String,
    },
    /// One column holding `[x, y, w, h]` (brackets optional; commas or spaces).
    List(String),
}

impl BboxColumns {
    /// `x,y,w,h` columns with the given names.
    pub fn xywh(x: &str, y: &str, w: &str, h: &str) -> Self {
        BboxColumns::Xywh {
            x: x.into(),
            y: y.into(),
            w: w.into(),
            h: h.into(),
        }
    }

    /// `x1,y1,x2,y2` columns with the given names.
    pub fn xyxy(x1: &str, y1: &str, x2: &str, y2: &str) -> Self {
        BboxColumns::Xyxy {
            x1: x1.into(),
            y1: y1.into(),
            x2: x2.into(),
            y2: y2.into(),
        }
    }

    fn names(&self) -> Vec<&str> {
        match self {
            BboxColumns::Xywh { x, y, w, h } => vec![x, y, w, h],
            BboxColumns::Xyxy { x1, y1, x2, y2 } => vec![x1, y1, x2, y2],
            BboxColumns::List(c) => vec![c],
        }
    }
}

/// Column names of a generic CSV (see [`load_csv`]).
///
/// `image_id` and `path` are required. Every other column is used only when
/// named here (`Some`), and a named column must exist in the header
/// ([`DataError::MissingColumn`] otherwise). The default is the AnimalCLEF
/// layout without bounding boxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvColumns {
    /// Unique image id column.
    pub image_id: String,
    /// Image path column.
    pub path: String,
    /// Identity column (empty value = unlabelled).
    pub identity: Option<String>,
    /// Species column.
    pub species: Option<String>,
    /// Split column (`database`, `query`, ...).
    pub split: Option<String>,
    /// Source-dataset column.
    pub dataset: Option<String>,
    /// Date column.
    pub date: Option<String>,
    /// Orientation / viewpoint column.
    pub orientation: Option<String>,
    /// Bounding-box column(s).
    pub bbox: Option<BboxColumns>,
}

impl Default for CsvColumns {
    fn default() -> Self {
        CsvColumns {
            image_id: "image_id".into(),
            path: "path".into(),
            identity: Some("identity".into()),
            species: Some("species".into()),
            split: Some("split".into()),
            dataset: Some("dataset".into()),
            date: Some("date".into()),
            orientation: Some("orientation".into()),
            bbox: None,
        }
    }
}

impl CsvColumns {
    /// Only the two required columns; set the others as needed.
    pub fn new(image_id: &str, path: &str) -> Self {
        CsvColumns {
            image_id: image_id.into(),
            path: path.into(),
            identity: None,
            species: None,
            split: None,
            dataset: None,
            date: None,
            orientation: None,
            bbox: None,
        }
    }
}

/// The AnimalCLEF columns, in the order [`write_metadata_csv`] writes them.
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

/// The bounding-box columns [`write_metadata_csv`] adds when any record has a box.
pub const BBOX_COLUMNS: [&str; 4] = ["bbox_x", "bbox_y", "bbox_w", "bbox_h"];

/// Image file extensions recognised by [`load_folders`] (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"];

// ---------------------------------------------------------------------------
// Public loaders

/// Loads an AnimalCLEF-style `metadata.csv`.
///
/// Required columns: `image_id, identity, path, species, split, dataset`;
/// optional: `date, orientation`, and a bounding box given either as
/// `bbox_x, bbox_y, bbox_w, bbox_h`, as `bbox_x1, bbox_y1, bbox_x2, bbox_y2`
/// or as one `bbox` column `[x, y, w, h]`. Other columns go to
/// [`Record::attributes`]. The root is the CSV's folder. An empty identity
/// (AnimalCLEF query rows) is `None`.
pub fn load_animalclef(csv: &Path, opts: &LoadOptions) -> Result<(Dataset, LoadReport)> {
    let root = csv_folder(csv);
    let cols = CsvColumns::default();
    load_csv_impl(csv, &root, &cols, &["date", "orientation"], true, opts)
}

/// Loads a generic CSV with the given column names; the root is the CSV's folder.
pub fn load_csv(
    csv: &Path,
    cols: &CsvColumns,
    opts: &LoadOptions,
) -> Result<(Dataset, LoadReport)> {
    load_csv_with_root(csv, &csv_folder(csv), cols, opts)
}

/// Like [`load_csv`], with relative image paths resolved against `root`.
pub fn load_csv_with_root(
    csv: &Path,
    root: &Path,
    cols: &CsvColumns,
    opts: &LoadOptions,
) -> Result<(Dataset, LoadReport)> {
    load_csv_impl(csv, root, cols, &[], false, opts)
}

/// Loads a folder-per-identity image tree.
///
/// Every image file below `root` (recognised by extension, see
/// [`IMAGE_EXTENSIONS`]; decoding elsewhere goes by content) becomes a
/// record whose identity is the name of the folder holding it, so nested
/// layouts such as `train/<id>/x.jpg`, `val/<id>/y.jpg` work. Images lying
/// directly in `root` have no identity (`None`). The `image_id` is the path
/// relative to `root` with `/` separators; records are in sorted path order.
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

/// Writes `ds` as an AnimalCLEF `metadata.csv` at `path`, atomically.
///
/// Columns: [`ANIMALCLEF_COLUMNS`], then [`BBOX_COLUMNS`] if any record has a
/// box, then one column per attribute key (sorted; records without the key
/// get an empty field). Paths under the CSV's folder are written relative to
/// it (with `/`), others as absolute paths. The output loads back with
/// [`load_animalclef`] into equal records, given that record paths are as a
/// loader resolves them and attribute values are non-empty.
///
/// Errors: an empty `image_id` or path, a repeated `image_id`
/// ([`DataError::DuplicateId`] with the lines it would be written at), an
/// attribute key that clashes with a standard column, or an I/O failure.
pub fn write_metadata_csv(path: &Path, ds: &Dataset) -> Result<()> {
    let dir = csv_folder(path);
    let any_bbox = ds.records.iter().any(|r| r.bbox.is_some());
    let attr_keys: BTreeSet<&str> = ds
        .records
        .iter()
        .flat_map(|r| r.attributes.keys().map(String::as_str))
        .collect();
    let mut header: Vec<&str> = ANIMALCLEF_COLUMNS.to_vec();
    if any_bbox {
        header.extend(BBOX_COLUMNS);
    }
    for k in &attr_keys {
        if header.iter().any(|h| h.eq_ignore_ascii_case(k)) || k.is_empty() {
            return Err(DataError::param(
                "attributes",
                format!("attribute key `{k}` clashes with a standard column or is empty"),
            ));
        }
    }
    header.extend(attr_keys.iter().copied());

    let mut rows: Vec<Vec<String>> = Vec::with_capacity(ds.records.len());
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for (i, r) in ds.records.iter().enumerate() {
        let line = i as u64 + 2;
        if r.image_id.is_empty() {
            return Err(DataError::param(
                "records",
                format!("record {i} has an empty image_id"),
            ));
        }
        if r.path.as_os_str().is_empty() {
            return Err(DataError::param(
                "records",
                format!("record `{}` has an empty path", r.image_id),
            ));
        }
        if let Some(&first_line) = seen.get(r.image_id.as_str()) {
            return Err(DataError::DuplicateId {
                path: path.to_path_buf(),
                line,
                image_id: r.image_id.clone(),
                first_line,
            });
        }
        seen.insert(&r.image_id, line);
        let s = |o: &Option<String>| o.clone().unwrap_or_default();
        let mut row = vec![
            r.image_id.clone(),
            s(&r.identity),
            path_for_csv(&r.path, &dir),
            r.date.map(|d| d.to_string()).unwrap_or_default(),
            s(&r.orientation),
            s(&r.species),
            r.split
                .as_ref()
                .map(|x| x.as_str().to_string())
                .unwrap_or_default(),
            s(&r.dataset),
        ];
        if any_bbox {
            match &r.bbox {
                Some(b) => row.extend([b.x, b.y, b.w, b.h].iter().map(|v| v.to_string())),
                None => row.extend(std::iter::repeat_n(String::new(), 4)),
            }
        }
        for k in &attr_keys {
            row.push(r.attributes.get(*k).cloned().unwrap_or_default());
        }
        rows.push(row);
    }

    AtomicWrite::new().create_dirs(true).with(path, |w| {
        let mut wtr = csv::Writer::from_writer(w);
        wtr.write_record(&header)?;
        for row in &rows {
            wtr.write_record(row)?;
        }
        wtr.flush()
    })?;
    Ok(())
}

/// Parses `YYYY-MM-DD`, optionally followed by ` HH:MM[:SS]` or `THH:MM[:SS]`
/// (the time is validated and dropped). The error says what is wrong.
pub fn parse_date(s: &str) -> std::result::Result<Date, String> {
    let bad = || format!("`{s}` is not a date (expected YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)");
    let (date, time) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], Some(s[i + 1..].trim())),
        None => (s, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    if !(digits(y, 4) && digits(m, 2) && digits(d, 2)) {
        return Err(bad());
    }
    let (year, month, day): (i32, u8, u8) = match (y.parse(), m.parse(), d.parse()) {
        (Ok(y), Ok(m), Ok(d)) => (y, m, d),
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&month) {
        return Err(format!("`{s}`: month {month} is not in 1..=12"));
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day < 1 || day > days {
        return Err(format!(
            "`{s}`: day {day} is not in 1..={days} for month {month}"
        ));
    }
    if let Some(t) = time {
        let tp: Vec<&str> = t.split(':').collect();
        let limits = [23u32, 59, 60];
        let ok = (tp.len() == 2 || tp.len() == 3)
            && tp.iter().zip(limits).all(|(p, lim)| {
                digits(p, 2) && p.parse::<u32>().map(|v| v <= lim).unwrap_or(false)
            });
        if !ok {
            return Err(bad());
        }
    }
    Ok(Date { year, month, day })
}

// ---------------------------------------------------------------------------
// CSV internals

enum BboxIdx {
    Xywh([usize; 4]),
    Xyxy([usize; 4]),
    List(usize),
}

struct ColIdx {
    n: usize,
    image_id: usize,
    path: usize,
    identity: Option<usize>,
    species: Option<usize>,
    split: Option<usize>,
    dataset: Option<usize>,
    date: Option<usize>,
    orientation: Option<usize>,
    bbox: Option<(BboxIdx, Vec<String>)>,
    extra: Vec<(usize, String)>,
}

fn csv_folder(csv: &Path) -> PathBuf {
    csv.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn find_col(header: &[String], name: &str) -> Option<usize> {
    header
        .iter()
        .position(|h| h == name)
        .or_else(|| header.iter().position(|h| h.eq_ignore_ascii_case(name)))
}

fn resolve_columns(
    csv: &Path,
    header: &[String],
    cols: &CsvColumns,
    optional: &[&str],
    auto_bbox: bool,
) -> Result<ColIdx> {
    let header_text = header.join(",");
    let missing = |name: &str| DataError::MissingColumn {
        path: csv.to_path_buf(),
        column: name.to_string(),
        header: header_text.clone(),
    };
    for (i, h) in header.iter().enumerate() {
        if header[..i].iter().any(|p| p.eq_ignore_ascii_case(h)) {
            return Err(DataError::BadRow {
                path: csv.to_path_buf(),
                line: 1,
                reason: format!("column `{h}` appears twice in the header"),
            });
        }
    }
    let req = |name: &str| find_col(header, name).ok_or_else(|| missing(name));
    let opt = |name: &Option<String>| -> Result<Option<usize>> {
        match name {
            None => Ok(None),
            Some(n) => match find_col(header, n) {
                Some(i) => Ok(Some(i)),
                None if optional.contains(&n.as_str()) => Ok(None),
                None => Err(missing(n)),
            },
        }
    };
    let bbox_from = |b: &BboxColumns| -> Result<(BboxIdx, Vec<String>)> {
        let names = b.names();
        let mut idx = Vec::with_capacity(names.len());
        for n in &names {
            idx.push(req(n)?);
        }
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let kind = match (b, idx.as_slice()) {
            (BboxColumns::Xywh { .. }, &[a, b, c, d]) => BboxIdx::Xywh([a, b, c, d]),
            (BboxColumns::Xyxy { .. }, &[a, b, c, d]) => BboxIdx::Xyxy([a, b, c, d]),
            (_, &[a, ..]) => BboxIdx::List(a),
            _ => return Err(missing("bbox")),
        };
        Ok((kind, names))
    };
    let bbox = match &cols.bbox {
        Some(b) => Some(bbox_from(b)?),
        None if auto_bbox => {
            let present = |names: &[&str]| names.iter().all(|n| find_col(header, n).is_some());
            let candidates = [
                BboxColumns::xywh("bbox_x", "bbox_y", "bbox_w", "bbox_h"),
                BboxColumns::xyxy("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2"),
                BboxColumns::List("bbox".into()),
            ];
            match candidates.iter().find(|c| present(&c.names())) {
                Some(c) => Some(bbox_from(c)?),
                None => None,
            }
        }
        None => None,
    };
    let mut idx = ColIdx {
        n: header.len(),
        image_id: req(&cols.image_id)?,
        path: req(&cols.path)?,
        identity: opt(&cols.identity)?,
        species: opt(&cols.species)?,
        split: opt(&cols.split)?,
        dataset: opt(&cols.dataset)?,
        date: opt(&cols.date)?,
        orientation: opt(&cols.orientation)?,
        bbox,
        extra: Vec::new(),
    };
    let mut used: Vec<usize> = vec![idx.image_id, idx.path];
    used.extend(
        [
            idx.identity,
            idx.species,
            idx.split,
            idx.dataset,
            idx.date,
            idx.orientation,
        ]
        .into_iter()
        .flatten(),
    );
    match &idx.bbox {
        Some((BboxIdx::Xywh(a) | BboxIdx::Xyxy(a), _)) => used.extend(a),
        Some((BboxIdx::List(a), _)) => used.push(*a),
        None => {}
    }
    idx.extra = header
        .iter()
        .enumerate()
        .filter(|(i, _)| !used.contains(i))
        .map(|(i, h)| (i, h.clone()))
        .collect();
    Ok(idx)
}

fn parse_num(s: &str, col: &str) -> std::result::Result<f32, String> {
    let v: f32 = s
        .parse()
        .map_err(|_| format!("bbox column `{col}`: `{s}` is not a number"))?;
    if !v.is_finite() {
        return Err(format!("bbox column `{col}`: `{s}` is not a finite number"));
    }
    Ok(v)
}

fn make_bbox(x: f32, y: f32, w: f32, h: f32) -> std::result::Result<BBox, String> {
    if w <= 0.0 || h <= 0.0 {
        return Err(format!(
            "bbox has a non-positive size (x={x}, y={y}, w={w}, h={h})"
        ));
    }
    Ok(BBox { x, y, w, h })
}

fn parse_bbox(
    row: &csv::StringRecord,
    kind: &BboxIdx,
    names: &[String],
) -> std::result::Result<Option<BBox>, String> {
    let get = |i: usize| row.get(i).unwrap_or("");
    match kind {
        BboxIdx::Xywh(idx) | BboxIdx::Xyxy(idx) => {
            let vals: Vec<&str> = idx.iter().map(|&i| get(i)).collect();
            if vals.iter().all(|v| v.is_empty()) {
                return Ok(None);
            }
            if vals.iter().any(|v| v.is_empty()) {
                return Err(format!(
                    "bbox columns {} are only partly filled",
                    names.join(",")
                ));
            }
            let mut n = [0f32; 4];
            for (k, (v, name)) in vals.iter().zip(names).enumerate() {
                n[k] = parse_num(v, name)?;
            }
            match kind {
                BboxIdx::Xywh(_) => make_bbox(n[0], n[1], n[2], n[3]).map(Some),
                _ => make_bbox(n[0], n[1], n[2] - n[0], n[3] - n[1]).map(Some),
            }
        }
        BboxIdx::List(i) => {
            let raw = get(*i);
            if raw.is_empty() {
                return Ok(None);
            }
            let name = names.first().map(String::as_str).unwrap_or("bbox");
            let inner = raw
                .trim_start_matches(['[', '('])
                .trim_end_matches([']', ')'])
                .trim();
            let parts: Vec<&str> = if inner.contains(',') {
                inner.split(',').map(str::trim).collect()
            } else {
                inner.split_whitespace().collect()
            };
            let [x, y, w, h] = parts.as_slice() else {
                return Err(format!(
                    "bbox column `{name}`: `{raw}` is not four numbers [x, y, w, h]"
                ));
            };
            make_bbox(
                parse_num(x, name)?,
                parse_num(y, name)?,
                parse_num(w, name)?,
                parse_num(h, name)?,
            )
            .map(Some)
        }
    }
}

fn parse_row(
    csv: &Path,
    root: &Path,
    row: &csv::StringRecord,
    line: u64,
    idx: &ColIdx,
    cols: &CsvColumns,
) -> Result<Record> {
    let bad = |reason: String| DataError::BadRow {
        path: csv.to_path_buf(),
        line,
        reason,
    };
    if row.len() != idx.n {
        return Err(bad(format!(
            "expected {} fields (as in the header), found {}",
            idx.n,
            row.len()
        )));
    }
    let get = |i: usize| row.get(i).unwrap_or("");
    let opt = |i: Option<usize>| i.map(get).filter(|s| !s.is_empty()).map(String::from);
    let image_id = get(idx.image_id);
    if image_id.is_empty() {
        return Err(bad(format!("empty image_id (column `{}`)", cols.image_id)));
    }
    let rel = get(idx.path);
    if rel.is_empty() {
        return Err(bad(format!("empty path (column `{}`)", cols.path)));
    }
    let rel = Path::new(rel);
    let path = if rel.is_absolute() {
        rel.to_path_buf()
    } else {
        root.join(rel)
    };
    let mut r = Record::new(image_id, path);
    r.identity = opt(idx.identity);
    r.species = opt(idx.species);
    r.split = opt(idx.split).map(|s| SplitRole::parse(&s));
    r.dataset = opt(idx.dataset);
    r.orientation = opt(idx.orientation);
    if let Some(d) = opt(idx.date) {
        let col = cols.date.as_deref().unwrap_or("date");
        r.date = Some(parse_date(&d).map_err(|e| bad(format!("column `{col}`: {e}")))?);
    }
    if let Some((kind, names)) = &idx.bbox {
        r.bbox = parse_bbox(row, kind, names).map_err(bad)?;
    }
    for (i, name) in &idx.extra {
        let v = get(*i);
        if !v.is_empty() {
            r.attributes.insert(name.clone(), v.to_string());
        }
    }
    Ok(r)
}

fn check_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if !meta.is_file() {
        return Err(DataError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    if meta.len() == 0 {
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Converts a csv error: row-level problems become `BadRow` (skippable),
/// I/O problems `Io` (always fatal).
fn csv_error(csv: &Path, e: csv::Error) -> (DataError, bool) {
    let line = e.position().map(|p| p.line());
    let msg = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(io) => (DataError::io(csv, io), false),
        _ => (
            DataError::BadRow {
                path: csv.to_path_buf(),
                line: line.unwrap_or(0),
                reason: msg,
            },
            line.is_some(),
        ),
    }
}

fn load_csv_impl(
    csv: &Path,
    root: &Path,
    cols: &CsvColumns,
    optional: &[&str],
    auto_bbox: bool,
    opts: &LoadOptions,
) -> Result<(Dataset, LoadReport)> {
    let file = File::open(csv).map_err(|e| DataError::io(csv, e))?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(BufReader::new(file));
    let mut rows = rdr.records();
    let header: Vec<String> = match rows.next() {
        None => {
            return Err(DataError::Empty {
                what: format!("{}: CSV (no header, no rows)", csv.display()),
            });
        }
        Some(Err(e)) => return Err(csv_error(csv, e).0),
        Some(Ok(h)) => h
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let f = if i == 0 {
                    f.trim_start_matches('\u{feff}')
                } else {
                    f
                };
                match f.trim() {
                    // Unnamed columns (e.g. a pandas index) get a placeholder name.
                    "" => format!("column{}", i + 1),
                    name => name.to_string(),
                }
            })
            .collect(),
    };
    let idx = resolve_columns(csv, &header, cols, optional, auto_bbox)?;

    let mut report = LoadReport::default();
    let mut records: Vec<Record> = Vec::new();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    let mut data_rows = 0usize;
    let skip = opts.on_error == OnError::Skip;
    for res in rows {
        data_rows += 1;
        let (row, line) = match res {
            Ok(row) => {
                let line = row.position().map(|p| p.line()).unwrap_or(0);
                (row, line)
            }
            Err(e) => {
                let (err, row_level) = csv_error(csv, e);
                if skip && row_level {
                    let location = match &err {
                        DataError::BadRow { line, .. } => format!("{}:{line}", csv.display()),
                        _ => csv.display().to_string(),
                    };
                    report.skipped.push(Skipped {
                        location,
                        error: err,
                    });
                    continue;
                }
                return Err(err);
            }
        };
        let result = parse_row(csv, root, &row, line, &idx, cols).and_then(|r| {
            if let Some(&first) = first_line.get(&r.image_id) {
                return Err(DataError::DuplicateId {
                    path: csv.to_path_buf(),
                    line,
                    image_id: r.image_id.clone(),
                    first_line: first,
                });
            }
            if opts.check_files {
                check_file(&r.path)?;
            }
            Ok(r)
        });
        match result {
            Ok(r) => {
                first_line.insert(r.image_id.clone(), line);
                records.push(r);
            }
            Err(error) if skip => report.skipped.push(Skipped {
                location: format!("{}:{line}", csv.display()),
                error,
            }),
            Err(error) => return Err(error),
        }
    }
    if records.is_empty() {
        let what = if data_rows == 0 {
            format!("{}: CSV (header only, no data rows)", csv.display())
        } else {
            let first = report
                .skipped
                .first()
                .map(|s| s.error.to_string())
                .unwrap_or_default();
            format!(
                "{}: CSV after skipping all {data_rows} rejected rows (first: {first})",
                csv.display()
            )
        };
        return Err(DataError::Empty { what });
    }
    Ok((Dataset::new(root, records), report))
}

/// The string written to the `path` column: relative (with `/`) when under
/// `dir`, otherwise absolute.
fn path_for_csv(p: &Path, dir: &Path) -> String {
    let joined = |rel: &Path| {
        rel.components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/")
    };
    match p.strip_prefix(dir) {
        Ok(rel) if !rel.has_root() && !rel.as_os_str().is_empty() => joined(rel),
        _ => std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .to_string_lossy()
            .into_owned(),
    }
}

// ---------------------------------------------------------------------------
// Folder walker

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
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
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

fn is_image_name(p: &Path) -> bool {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let d = |y, m, dd| Date {
            year: y,
            month: m,
            day: dd,
        };
        assert_eq!(parse_date("2020-02-29"), Ok(d(2020, 2, 29)));
        assert_eq!(parse_date("2019-12-31 23:59:59"), Ok(d(2019, 12, 31)));
        assert_eq!(parse_date("2019-12-31T08:00"), Ok(d(2019, 12, 31)));
        for bad in [
            "2019-02-29",
            "2019-13-01",
            "2019-1-01",
            "20190101",
            "2019-01-01 25:00:00",
            "yesterday",
            "2019-01-00",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_paths() {
        let dir = Path::new("/data/x");
        assert_eq!(path_for_csv(Path::new("/data/x/a/b.jpg"), dir), "a/b.jpg");
        assert_eq!(
            path_for_csv(Path::new("/data/y/b.jpg"), dir),
            "/data/y/b.jpg"
        );
        assert_eq!(path_for_csv(Path::new("a/b.jpg"), Path::new("")), "a/b.jpg");
    }
}
