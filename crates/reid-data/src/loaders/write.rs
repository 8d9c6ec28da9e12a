//! Writing a dataset as an AnimalCLEF `metadata.csv`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use reid_core::fs::AtomicWrite;

use super::{ANIMALCLEF_COLUMNS, BBOX_COLUMNS, csv_folder};
use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// Writes `ds` as an AnimalCLEF `metadata.csv` at `path`, atomically.
///
/// Columns: [`ANIMALCLEF_COLUMNS`], then [`BBOX_COLUMNS`] if any record has a
/// box, then one column per attribute key (sorted; records without the key
/// get an empty field). Paths under the CSV's folder are written relative to
/// it (with `/`), others as absolute paths. The output loads back with
/// [`load_animalclef`](super::load_animalclef) into equal records, given that record paths are as a
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

#[cfg(test)]
mod tests {
    use super::*;

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
