//! The AnimalCLEF 2025 Kaggle submission: a CSV `image_id,identity` with one
//! row per query image, the identity being a database identity of the
//! query's dataset (identities are prefixed by their dataset, e.g.
//! `LynxID2025_lynx_37`, `SeaTurtleID2022_t001`, `SalamanderID2025_10`) or
//! [`NEW_INDIVIDUAL`] for an animal that is not in the database.
//!
//! - [`write_submission`] writes rows atomically (a temporary file in the
//!   same folder, synced, then renamed over the target), so a failed write
//!   leaves an existing file untouched;
//! - [`read_submission`] reads one back (malformed rows are
//!   [`EvalError::BadRow`] with their line);
//! - [`SubmissionReference`], built from the competition's `metadata.csv`
//!   (through [`reid_data::loaders::load_animalclef`]), checks that every
//!   query appears exactly once, that no unknown image is named and that
//!   every identity is `new_individual` or a database identity of the same
//!   dataset; every problem is reported ([`SubmissionProblem`]).
//!
//! Rows are numbered from 1 in data order (row 1 is line 2 of the file,
//! under the header).
//!
//! ```
//! use reid_data::{Dataset, Record, SplitRole};
//! use reid_eval::submission::{SubmissionReference, read_submission, submission_rows, write_submission};
//! use reid_openset::Decision;
//!
//! let rec = |id: &str, identity: Option<&str>, split: SplitRole| {
//!     let mut r = Record::new(id, format!("{id}.jpg"));
//!     r.identity = identity.map(Into::into);
//!     r.split = Some(split);
//!     r.dataset = Some("LynxID2025".into());
//!     r
//! };
//! let metadata = Dataset::new(".", vec![
//!     rec("0", Some("LynxID2025_lynx_37"), SplitRole::Database),
//!     rec("1", None, SplitRole::Query),
//!     rec("2", None, SplitRole::Query),
//! ]);
//! let reference = SubmissionReference::from_dataset(&metadata)?;
//! let rows = submission_rows(&["1", "2"], &[Decision::Known("LynxID2025_lynx_37".into()), Decision::New])?;
//! reference.validate(&rows)?;
//!
//! let dir = tempfile::tempdir().map_err(|e| reid_eval::EvalError::Io { path: ".".into(), source: e })?;
//! let path = dir.path().join("submission.csv");
//! write_submission(&path, &rows)?;
//! assert_eq!(read_submission(&path)?, rows);
//! # Ok::<(), reid_eval::EvalError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use reid_data::{Dataset, LoadOptions, SplitRole};
use reid_openset::{Decision, NEW_INDIVIDUAL};

use crate::error::{EvalError, Result};
use crate::io::{io_err, write_atomic};

/// One row of a submission: a query image and the answer for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionRow {
    /// The query's `image_id` as in the metadata.
    pub image_id: String,
    /// The identity, or [`Decision::New`] (written `new_individual`).
    pub decision: Decision,
}

impl SubmissionRow {
    /// A row.
    pub fn new(image_id: impl Into<String>, decision: Decision) -> Self {
        SubmissionRow {
            image_id: image_id.into(),
            decision,
        }
    }
}

/// Rows from parallel lists of image ids and decisions (same length, else
/// [`EvalError::LengthMismatch`]).
pub fn submission_rows<S: AsRef<str>>(
    image_ids: &[S],
    decisions: &[Decision],
) -> Result<Vec<SubmissionRow>> {
    if image_ids.len() != decisions.len() {
        return Err(EvalError::LengthMismatch {
            name: "decisions",
            expected: image_ids.len(),
            got: decisions.len(),
        });
    }
    Ok(image_ids
        .iter()
        .zip(decisions)
        .map(|(id, d)| SubmissionRow::new(id.as_ref(), d.clone()))
        .collect())
}

/// A way in which a submission breaks the competition's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubmissionProblem {
    /// A field that cannot be written or read back as given (empty,
    /// surrounded by spaces, or a known identity spelled `new_individual`).
    BadValue {
        /// 1-based data row.
        row: usize,
        /// What is wrong.
        reason: String,
    },
    /// An image id given a second time.
    Duplicate {
        /// 1-based data row of the repeat.
        row: usize,
        /// The image id.
        image_id: String,
        /// 1-based data row where it was first given.
        first_row: usize,
    },
    /// An image id that is no query of the metadata.
    UnknownImage {
        /// 1-based data row.
        row: usize,
        /// The image id.
        image_id: String,
    },
    /// An identity that is not a database identity of the query's dataset.
    UnknownIdentity {
        /// 1-based data row.
        row: usize,
        /// The query.
        image_id: String,
        /// The identity given.
        identity: String,
        /// The query's dataset.
        dataset: String,
        /// The dataset whose database does hold this identity, if any.
        belongs_to: Option<String>,
    },
    /// A query of the metadata that has no row.
    Missing {
        /// The query's image id.
        image_id: String,
    },
}

impl fmt::Display for SubmissionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmissionProblem::BadValue { row, reason } => write!(f, "row {row}: {reason}"),
            SubmissionProblem::Duplicate {
                row,
                image_id,
                first_row,
            } => write!(
                f,
                "row {row}: image_id `{image_id}` given again (first on row {first_row})"
            ),
            SubmissionProblem::UnknownImage { row, image_id } => {
                write!(f, "row {row}: image_id `{image_id}` is not a query image")
            }
            SubmissionProblem::UnknownIdentity {
                row,
                image_id,
                identity,
                dataset,
                belongs_to,
            } => {
                write!(
                    f,
                    "row {row}: identity `{identity}` of query `{image_id}` is not in the \
                     database of {dataset}"
                )?;
                match belongs_to {
                    Some(other) => write!(f, " (it belongs to {other})"),
                    None => Ok(()),
                }
            }
            SubmissionProblem::Missing { image_id } => {
                write!(f, "query `{image_id}` has no row")
            }
        }
    }
}

/// The message of [`EvalError::InvalidSubmission`]: the count and the first
/// few problems.
pub(crate) fn describe_problems(problems: &[SubmissionProblem]) -> String {
    const SHOWN: usize = 5;
    let mut s = format!("invalid submission: {} problem(s)", problems.len());
    for (i, p) in problems.iter().take(SHOWN).enumerate() {
        s.push_str(if i == 0 { ": " } else { "; " });
        s.push_str(&p.to_string());
    }
    if problems.len() > SHOWN {
        s.push_str("; …");
    }
    s
}

/// Checks of one value that must survive a write and a read unchanged.
fn value_problem(row: usize, what: &str, v: &str) -> Option<SubmissionProblem> {
    let reason = if v.is_empty() {
        format!("{what} is empty")
    } else if v.trim() != v {
        format!("{what} `{v}` has leading or trailing spaces")
    } else {
        return None;
    };
    Some(SubmissionProblem::BadValue { row, reason })
}

/// The problems of rows taken on their own (no metadata): bad values and
/// repeated image ids.
fn row_problems(
    rows: &[SubmissionRow],
    mut each: impl FnMut(usize, &SubmissionRow, &mut Vec<SubmissionProblem>),
) -> Vec<SubmissionProblem> {
    let mut problems = Vec::new();
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let row = i + 1;
        problems.extend(value_problem(row, "image_id", &r.image_id));
        if let Decision::Known(id) = &r.decision {
            if id == NEW_INDIVIDUAL {
                problems.push(SubmissionProblem::BadValue {
                    row,
                    reason: format!("a known identity may not be called `{NEW_INDIVIDUAL}`"),
                });
            } else {
                problems.extend(value_problem(row, "identity", id));
            }
        }
        match first.get(r.image_id.as_str()) {
            Some(&first_row) => problems.push(SubmissionProblem::Duplicate {
                row,
                image_id: r.image_id.clone(),
                first_row,
            }),
            None => {
                first.insert(&r.image_id, row);
            }
        }
        each(row, r, &mut problems);
    }
    problems
}

/// Writes `rows` as an AnimalCLEF submission CSV (`image_id,identity`,
/// `new_individual` for [`Decision::New`]), atomically: the rows stream into
/// a temporary file beside `path`, which is synced and renamed over `path`
/// only when every row was good. On any error the temporary file is removed
/// and an existing `path` is left as it was.
///
/// Errors: an empty or space-padded value, a known identity spelled
/// `new_individual`, or an image id given twice
/// ([`EvalError::InvalidSubmission`] listing every such row); an I/O
/// failure ([`EvalError::Io`] naming `path`).
pub fn write_submission(path: &Path, rows: &[SubmissionRow]) -> Result<()> {
    let mut problems = Vec::new();
    let written = write_atomic(path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(["image_id", "identity"])?;
        for r in rows {
            csv.write_record([r.image_id.as_str(), r.decision.submission_label()])?;
        }
        csv.flush()?;
        // Checked inside the atomic write, with the rows already in the
        // temporary file: a rejected submission takes the same discard path
        // as an I/O failure, so the existing file is seen to survive both.
        problems = row_problems(rows, |_, _, _| {});
        if problems.is_empty() {
            Ok(())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "invalid submission rows",
            ))
        }
    });
    match written {
        Err(_) if !problems.is_empty() => Err(EvalError::InvalidSubmission { problems }),
        other => other,
    }
}

/// Position of a column in a header: exact name, then case-insensitive.
fn column(header: &csv::StringRecord, name: &str) -> Option<usize> {
    header
        .iter()
        .position(|h| h == name)
        .or_else(|| header.iter().position(|h| h.eq_ignore_ascii_case(name)))
}

/// Reads a submission CSV written by [`write_submission`] or by hand: a
/// header with the columns `image_id` and `identity` (any order; names
/// matched exactly, then case-insensitively; a UTF-8 byte-order mark is
/// ignored), then one row per query; fields are trimmed, `new_individual`
/// is [`Decision::New`].
///
/// Errors: the file cannot be read ([`EvalError::Io`]); a column missing
/// ([`EvalError::MissingColumn`]); another column in the header, a row with
/// the wrong number of fields, an empty field or bytes that are not UTF-8
/// ([`EvalError::BadRow`] with the file's line). Repeated or unknown image
/// ids are for [`SubmissionReference::validate`] to report.
pub fn read_submission(path: &Path) -> Result<Vec<SubmissionRow>> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(std::io::BufReader::new(file));
    let bad = |line: u64, reason: String| EvalError::BadRow {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let csv_err = |e: csv::Error| {
        let line = e.position().map_or(0, |p| p.line());
        match e.into_kind() {
            csv::ErrorKind::Io(source) => io_err(path, source),
            kind => bad(line, format!("{kind:?}")),
        }
    };
    let header = rdr.headers().map_err(csv_err)?.clone();
    let header_text = header.iter().collect::<Vec<_>>().join(",");
    let find = |name: &'static str| {
        column(&header, name).ok_or_else(|| EvalError::MissingColumn {
            path: path.to_path_buf(),
            column: name,
            header: header_text.clone(),
        })
    };
    let (id_col, identity_col) = (find("image_id")?, find("identity")?);
    if let Some(extra) = header
        .iter()
        .enumerate()
        .find(|(i, _)| *i != id_col && *i != identity_col)
    {
        return Err(bad(
            1,
            format!(
                "unexpected column `{}` (a submission has only image_id,identity)",
                extra.1
            ),
        ));
    }
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(csv_err)?;
        let line = rec.position().map_or(0, |p| p.line());
        if rec.len() != header.len() {
            return Err(bad(
                line,
                format!("{} fields, the header has {}", rec.len(), header.len()),
            ));
        }
        let field = |col: usize, name: &str| match rec.get(col) {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => Err(bad(line, format!("empty {name}"))),
        };
        let image_id = field(id_col, "image_id")?;
        let identity = field(identity_col, "identity")?;
        let decision = if identity == NEW_INDIVIDUAL {
            Decision::New
        } else {
            Decision::Known(identity)
        };
        rows.push(SubmissionRow { image_id, decision });
    }
    Ok(rows)
}

/// What a submission is checked against: the query images of the
/// competition's metadata (with their dataset) and the database identities
/// of each dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionReference {
    /// `(image_id, dataset)` of each query, in metadata order.
    queries: Vec<(String, String)>,
    /// Query image id → position in `queries`.
    query_index: HashMap<String, usize>,
    /// Dataset → its database identities.
    identities: BTreeMap<String, BTreeSet<String>>,
}

impl SubmissionReference {
    /// Reads an AnimalCLEF `metadata.csv` (columns
    /// `image_id,identity,path,date,orientation,species,split,dataset`)
    /// through [`reid_data::loaders::load_animalclef`] (failing on the first
    /// malformed row, which names its line; image files are not needed) and
    /// keeps what validation needs.
    pub fn from_metadata(path: &Path) -> Result<Self> {
        let (ds, _) = reid_data::loaders::load_animalclef(path, &LoadOptions::default())?;
        Self::from_dataset(&ds)
    }

    /// The reference of loaded metadata: records with split `query` are the
    /// queries; the identities of records with split `database` are the
    /// valid answers, per dataset (records without a dataset form the
    /// dataset `""`). Other splits are ignored. No query is
    /// [`EvalError::Empty`].
    pub fn from_dataset(ds: &Dataset) -> Result<Self> {
        let mut queries = Vec::new();
        let mut query_index = HashMap::new();
        let mut identities: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in &ds.records {
            let dataset = r.dataset.clone().unwrap_or_default();
            match r.split {
                Some(SplitRole::Query) => {
                    query_index.insert(r.image_id.clone(), queries.len());
                    queries.push((r.image_id.clone(), dataset));
                }
                Some(SplitRole::Database) => {
                    let set = identities.entry(dataset).or_default();
                    if let Some(id) = &r.identity {
                        set.insert(id.clone());
                    }
                }
                _ => {}
            }
        }
        if queries.is_empty() {
            return Err(EvalError::Empty {
                what: "query rows (split `query`) of the metadata",
            });
        }
        Ok(SubmissionReference {
            queries,
            query_index,
            identities,
        })
    }

    /// `(image_id, dataset)` of every query, in metadata order.
    pub fn queries(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.queries.iter().map(|(i, d)| (i.as_str(), d.as_str()))
    }

    /// The number of queries.
    pub fn num_queries(&self) -> usize {
        self.queries.len()
    }

    /// The dataset of a query image, `None` for an image that is no query.
    pub fn dataset_of(&self, image_id: &str) -> Option<&str> {
        self.query_index
            .get(image_id)
            .and_then(|&i| self.queries.get(i))
            .map(|(_, d)| d.as_str())
    }

    /// The database identities of a dataset (sorted), `None` for a dataset
    /// without database rows.
    pub fn database_identities(&self, dataset: &str) -> Option<&BTreeSet<String>> {
        self.identities.get(dataset)
    }

    /// Every problem of `rows` as a submission for this metadata, in row
    /// order, then the missing queries in metadata order; empty for a valid
    /// submission.
    pub fn problems(&self, rows: &[SubmissionRow]) -> Vec<SubmissionProblem> {
        let mut seen = vec![false; self.queries.len()];
        let mut problems = row_problems(rows, |row, r, problems| {
            let Some(&q) = self.query_index.get(&r.image_id) else {
                problems.push(SubmissionProblem::UnknownImage {
                    row,
                    image_id: r.image_id.clone(),
                });
                return;
            };
            if let Some(s) = seen.get_mut(q) {
                *s = true;
            }
            let (Decision::Known(identity), Some((_, dataset))) =
                (&r.decision, self.queries.get(q))
            else {
                return;
            };
            let known = self
                .identities
                .get(dataset)
                .is_some_and(|ids| ids.contains(identity));
            if !known && identity != NEW_INDIVIDUAL {
                let belongs_to = self
                    .identities
                    .iter()
                    .find(|(_, ids)| ids.contains(identity))
                    .map(|(d, _)| d.clone());
                problems.push(SubmissionProblem::UnknownIdentity {
                    row,
                    image_id: r.image_id.clone(),
                    identity: identity.clone(),
                    dataset: dataset.clone(),
                    belongs_to,
                });
            }
        });
        problems.extend(self.queries.iter().zip(&seen).filter(|(_, s)| !**s).map(
            |((id, _), _)| SubmissionProblem::Missing {
                image_id: id.clone(),
            },
        ));
        problems
    }

    /// `Ok` for a valid submission, else [`EvalError::InvalidSubmission`]
    /// with every problem (see [`SubmissionReference::problems`]).
    pub fn validate(&self, rows: &[SubmissionRow]) -> Result<()> {
        let problems = self.problems(rows);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(EvalError::InvalidSubmission { problems })
        }
    }
}

/// Writes `rows` like [`write_submission`] after checking them against
/// `reference` (nothing is written when a problem is found).
pub fn write_validated_submission(
    path: &Path,
    rows: &[SubmissionRow],
    reference: &SubmissionReference,
) -> Result<()> {
    reference.validate(rows)?;
    write_submission(path, rows)
}
