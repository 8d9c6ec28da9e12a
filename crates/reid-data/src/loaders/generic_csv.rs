//! Generic CSVs: columns found by name, bounding boxes in several layouts,
//! the row parser shared with the AnimalCLEF loader.

use std::collections::HashMap;
use std::path::Path;

use super::{LoadOptions, LoadReport, OnError, Skipped, csv_folder, parse_date};
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::record::{BBox, Record, SplitRole};

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
    /// AnimalCLEF rules: split values other than database / query, and
    /// database rows without an identity, are errors.
    strict_split: bool,
}

fn find_col(header: &[String], name: &str) -> Option<usize> {
    header
        .iter()
        .position(|h| h == name)
        .or_else(|| header.iter().position(|h| h.eq_ignore_ascii_case(name)))
}

/// With `animalclef` (the AnimalCLEF schema): the bounding-box columns are
/// found by name, a split other than database / query is an error, and so
/// is a database row without an identity.
fn resolve_columns(
    csv: &Path,
    header: &[String],
    cols: &CsvColumns,
    optional: &[&str],
    animalclef: bool,
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
        None if animalclef => {
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
        // The AnimalCLEF schema has two splits only.
        strict_split: animalclef,
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
    let path = if rel.is_absolute() || is_url_cell(rel) {
        rel.to_path_buf()
    } else {
        root.join(rel)
    };
    let mut r = Record::new(image_id, path);
    r.identity = opt(idx.identity);
    r.species = opt(idx.species);
    r.split = match opt(idx.split) {
        Some(s) => {
            let role = SplitRole::parse(&s);
            if idx.strict_split && matches!(role, SplitRole::Other(_)) {
                let col = cols.split.as_deref().unwrap_or("split");
                return Err(bad(format!(
                    "column `{col}`: split `{s}` is neither `database` nor `query`"
                )));
            }
            Some(role)
        }
        None => None,
    };
    if idx.strict_split && r.split == Some(SplitRole::Database) && r.identity.is_none() {
        let col = cols.identity.as_deref().unwrap_or("identity");
        return Err(bad(format!(
            "a database row needs an identity (column `{col}` is empty)"
        )));
    }
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

/// Whether a path cell is an `http://` or `https://` URL: kept as it is
/// (not joined to the CSV's folder, not checked on disk), for callers that
/// fetch photos from shared storage (`reid_catalogue::storage`).
pub fn is_url_cell(path: &Path) -> bool {
    path.to_str()
        .and_then(url_scheme)
        .is_some_and(|scheme| scheme == "http" || scheme == "https")
}

/// The lower-cased scheme of `s` when it reads `scheme://...` with a
/// well-formed scheme (RFC 3986: a letter, then letters, digits, `+`, `-`
/// or `.`); `None` for anything else, such as a Windows path `C:\...`.
pub fn url_scheme(s: &str) -> Option<String> {
    let (scheme, _) = s.split_once("://")?;
    let ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then(|| scheme.to_ascii_lowercase())
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
fn csv_error(csv: &Path, e: csv::Error, line_of: impl Fn(u64) -> u64) -> (DataError, bool) {
    let line = e.position().map(|p| line_of(p.byte()));
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

pub(super) fn load_csv_impl(
    csv: &Path,
    root: &Path,
    cols: &CsvColumns,
    optional: &[&str],
    animalclef: bool,
    opts: &LoadOptions,
) -> Result<(Dataset, LoadReport)> {
    let bytes = std::fs::read(csv).map_err(|e| DataError::io(csv, e))?;
    // Lines are counted here from the byte where each record starts (the
    // csv crate's own count is one short after CRLF endings): the newlines
    // at or before it. After a CRLF the record's recorded start is the `\n`
    // that ends the line above (the `\r` ended the record), and after an
    // LF it is the byte after it; either way that newline counts.
    let newlines: Vec<u64> = bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .map(|(i, _)| i as u64)
        .collect();
    let line_of = |byte: u64| 1 + newlines.partition_point(|&n| n <= byte) as u64;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let mut rows = rdr.records();
    let header: Vec<String> = match rows.next() {
        None => {
            return Err(DataError::Empty {
                what: format!("{}: CSV (no header, no rows)", csv.display()),
            });
        }
        Some(Err(e)) => return Err(csv_error(csv, e, line_of).0),
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
    let idx = resolve_columns(csv, &header, cols, optional, animalclef)?;

    let mut report = LoadReport::default();
    let mut records: Vec<Record> = Vec::new();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    let mut data_rows = 0usize;
    let skip = opts.on_error == OnError::Skip;
    for res in rows {
        data_rows += 1;
        let (row, line) = match res {
            Ok(row) => {
                let line = row.position().map(|p| line_of(p.byte())).unwrap_or(0);
                (row, line)
            }
            Err(e) => {
                let (err, row_level) = csv_error(csv, e, line_of);
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
            if opts.check_files && !is_url_cell(&r.path) {
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
