//! The decisions CSV: what `animal-reid identify` suggests for each new
//! photo, for a person to confirm or correct, and what `animal-reid apply`
//! reads back.
//!
//! [`write_decisions`] writes one row per query photo, with the columns
//!
//! ```text
//! photo,path,content_hash,dataset,species,suggestion,suggested,score,threshold,candidates,verdict,individual,reviewer,note
//! ```
//!
//! - `photo`, `path`, `content_hash` (SHA-256 of the file, hex), `dataset`,
//!   `species`: the query photo;
//! - `suggestion`: `known` (the photo looks like an individual of the
//!   catalogue) or `new` (it looks like no one the catalogue knows);
//! - `suggested`: for `known`, the catalogue id of the suggested individual
//!   (`ind-000012`); for `new`, a group label (`new_0001`) shared by the
//!   photos that look like the same new animal;
//! - `score`, `threshold`: the decision score of the best candidate and the
//!   threshold it was compared to;
//! - `candidates`: the best catalogue matches, best first, as
//!   `id:name:score;...` (at most [`TOP_CANDIDATES`], scores with 4
//!   decimals); for the reader only, never read back;
//! - `verdict`, `individual`, `reviewer`, `note`: left empty, for the person.
//!
//! # Filling in the verdicts
//!
//! For each row, write in `verdict` (upper or lower case, surrounding spaces
//! do not matter):
//!
//! - `confirm`: the photo is the individual `individual` (a catalogue id or
//!   an individual's name); leave `individual` empty to accept `suggested`;
//! - `new`: the photo is an individual the catalogue does not know yet; all
//!   the rows of one dataset with the same `individual` label become one
//!   new individual (leave `individual` empty to keep the `suggested` group,
//!   or write the name to give it);
//! - `reject`: the suggested match is wrong, and the photo stays unassigned;
//! - `skip`, or nothing: not decided yet; `apply` leaves the photo alone.
//!
//! `reviewer` (who decided) and `note` (free text) are optional. The file
//! may be opened and saved in a spreadsheet: [`read_decisions`] finds the
//! columns by their header names (in any order; other columns are ignored),
//! and tolerates a byte-order mark and CRLF line ends. Errors name the file
//! and the 1-based line where the offending record starts.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{CatalogueError, Result};

/// The columns of a decisions CSV, in the order [`write_decisions`] writes
/// them.
pub const COLUMNS: [&str; 14] = [
    "photo",
    "path",
    "content_hash",
    "dataset",
    "species",
    "suggestion",
    "suggested",
    "score",
    "threshold",
    "candidates",
    "verdict",
    "individual",
    "reviewer",
    "note",
];

/// The columns [`read_decisions`] requires; the others are optional.
pub const REQUIRED_COLUMNS: [&str; 8] = [
    "photo",
    "path",
    "content_hash",
    "dataset",
    "suggestion",
    "suggested",
    "verdict",
    "individual",
];

/// How many candidates the `candidates` column lists.
pub const TOP_CANDIDATES: usize = 5;

/// What the search suggests for a query photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suggestion {
    /// An individual of the catalogue.
    Known,
    /// An individual the catalogue does not know.
    New,
}

impl Suggestion {
    /// `known` or `new`, as in the CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Suggestion::Known => "known",
            Suggestion::New => "new",
        }
    }
}

impl fmt::Display for Suggestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Suggestion {
    type Err = CatalogueError;

    /// Parses `known` or `new`, ignoring case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "known" => Ok(Suggestion::Known),
            "new" => Ok(Suggestion::New),
            _ => Err(CatalogueError::Invalid(format!(
                "suggestion {s:?} is neither `known` nor `new`"
            ))),
        }
    }
}

/// A person's verdict on a suggestion (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The photo is `individual` (or `suggested` when `individual` is empty).
    Confirm,
    /// The suggested match is wrong; the photo stays unassigned.
    Reject,
    /// The photo is a new individual, grouped by `individual` (or
    /// `suggested`) within its dataset.
    New,
    /// Not decided yet.
    Skip,
}

impl Verdict {
    /// `confirm`, `reject`, `new` or `skip`, as in the CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Confirm => "confirm",
            Verdict::Reject => "reject",
            Verdict::New => "new",
            Verdict::Skip => "skip",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = CatalogueError;

    /// Parses a verdict, ignoring case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "confirm" => Ok(Verdict::Confirm),
            "reject" => Ok(Verdict::Reject),
            "new" => Ok(Verdict::New),
            "skip" => Ok(Verdict::Skip),
            _ => Err(CatalogueError::Invalid(format!(
                "verdict {s:?} is not one of confirm, reject, new, skip (or empty)"
            ))),
        }
    }
}

/// A catalogue individual that a query photo resembles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The catalogue id (`ind-000012`).
    pub individual: String,
    /// The individual's human name.
    pub name: String,
    /// The decision score of the match.
    pub score: f32,
    /// The individual's catalogue photo that matched best.
    pub photo: PathBuf,
}

/// A query photo with what the search suggests for it: a row of the
/// decisions CSV and a card of the review page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    /// The query's image id.
    pub photo: String,
    /// The image file.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, 64 hex digits.
    pub content_hash: String,
    /// The dataset the photo belongs to.
    pub dataset: String,
    /// The species, when known.
    pub species: Option<String>,
    /// Known or new.
    pub suggestion: Suggestion,
    /// [`Suggestion::Known`]: the candidate's individual id;
    /// [`Suggestion::New`]: a group label (`new_0001`) shared by the queries
    /// judged to be the same new animal.
    pub suggested: String,
    /// The decision score of the best candidate.
    pub score: f32,
    /// The threshold the score was compared to.
    pub threshold: f32,
    /// The best catalogue matches, best first.
    pub candidates: Vec<Candidate>,
}

/// A row of a decisions CSV as a person left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRow {
    /// The 1-based line of the file where the row starts.
    pub line: u64,
    /// The query's image id.
    pub photo: String,
    /// The image file.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, 64 lowercase hex digits.
    pub content_hash: String,
    /// The dataset.
    pub dataset: String,
    /// The species, when given.
    pub species: Option<String>,
    /// What was suggested.
    pub suggestion: Suggestion,
    /// The suggested individual id or new-group label.
    pub suggested: String,
    /// The verdict; `None` when left empty.
    pub verdict: Option<Verdict>,
    /// The individual (id or name) or new-group label; `None` when empty.
    pub individual: Option<String>,
    /// Who decided.
    pub reviewer: Option<String>,
    /// A free note.
    pub note: Option<String>,
}

impl DecisionRow {
    /// Whether the verdict decides something (confirm, reject or new).
    pub fn is_decided(&self) -> bool {
        matches!(
            self.verdict,
            Some(Verdict::Confirm | Verdict::Reject | Verdict::New)
        )
    }

    /// For `confirm` and `new`, the individual or new-group label the photo
    /// goes to: `individual`, or `suggested` when `individual` is empty;
    /// `None` for the other verdicts.
    pub fn target(&self) -> Option<&str> {
        match self.verdict {
            Some(Verdict::Confirm | Verdict::New) => {
                Some(self.individual.as_deref().unwrap_or(&self.suggested))
            }
            _ => None,
        }
    }
}

/// Writes the decisions CSV for `items` (see the [module
/// documentation](self)), atomically.
///
/// Fails with [`CatalogueError::Invalid`] on an item that could not be read
/// back: an empty photo, path, dataset or suggested value, a content hash
/// that is not 64 hex digits, a path that is not UTF-8.
pub fn write_decisions(path: &Path, items: &[ReviewItem]) -> Result<()> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let csv_err = |e: csv::Error| CatalogueError::Invalid(format!("{}: {e}", path.display()));
    w.write_record(COLUMNS).map_err(csv_err)?;
    for (i, item) in items.iter().enumerate() {
        let bad = |what: String| {
            CatalogueError::Invalid(format!(
                "{}: review item {} (photo {:?}): {what}",
                path.display(),
                i + 1,
                item.photo
            ))
        };
        for (name, value) in [
            ("photo", item.photo.as_str()),
            ("dataset", item.dataset.as_str()),
            ("suggested", item.suggested.as_str()),
        ] {
            if value.trim().is_empty() {
                return Err(bad(format!("{name} is empty")));
            }
        }
        let file = item
            .path
            .to_str()
            .ok_or_else(|| bad(format!("path {:?} is not UTF-8", item.path)))?;
        if file.trim().is_empty() {
            return Err(bad("path is empty".into()));
        }
        let hash = check_hash(&item.content_hash).map_err(bad)?;
        let candidates = item
            .candidates
            .iter()
            .take(TOP_CANDIDATES)
            .map(|c| format!("{}:{}:{}", c.individual, c.name, fmt_score(c.score)))
            .collect::<Vec<_>>()
            .join(";");
        w.write_record([
            item.photo.as_str(),
            file,
            hash.as_str(),
            item.dataset.as_str(),
            item.species.as_deref().unwrap_or(""),
            item.suggestion.as_str(),
            item.suggested.as_str(),
            fmt_score(item.score).as_str(),
            fmt_score(item.threshold).as_str(),
            candidates.as_str(),
            "",
            "",
            "",
            "",
        ])
        .map_err(csv_err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| CatalogueError::Invalid(format!("{}: {}", path.display(), e.error())))?;
    reid_core::fs::write_atomic(path, &bytes)?;
    Ok(())
}

/// A score with 4 decimals; empty when it is not finite.
fn fmt_score(v: f32) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        String::new()
    }
}

/// `s`, trimmed and lowercased, when it is 64 hex digits.
fn check_hash(s: &str) -> std::result::Result<String, String> {
    let t = s.trim();
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(t.to_ascii_lowercase())
    } else {
        Err(format!(
            "content_hash {s:?} is not a SHA-256 (64 hex digits)"
        ))
    }
}

/// Reads a decisions CSV (see the [module documentation](self)), usually
/// after a person filled in the verdicts.
///
/// Rows whose fields are all empty (a spreadsheet's trailing rows) are
/// skipped. Fails with [`CatalogueError::Row`] naming the file and the line
/// on: a missing required column, a record with another number of fields
/// than the header, an empty photo, path, dataset or suggested value, a
/// content hash that is not 64 hex digits, an unknown suggestion or verdict,
/// a field that is not UTF-8, and two rows of one dataset with the same
/// content hash but conflicting decisions (the error names both lines).
pub fn read_decisions(path: &Path) -> Result<Vec<DecisionRow>> {
    let bytes = std::fs::read(path).map_err(|source| CatalogueError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&bytes, path)
}

/// Where the columns of a decisions CSV are.
struct Columns {
    /// Number of fields of the header.
    width: usize,
    photo: usize,
    path: usize,
    content_hash: usize,
    dataset: usize,
    suggestion: usize,
    suggested: usize,
    verdict: usize,
    individual: usize,
    species: Option<usize>,
    reviewer: Option<usize>,
    note: Option<usize>,
}

impl Columns {
    fn from_header(header: &csv::ByteRecord) -> std::result::Result<Self, String> {
        let mut at: HashMap<&str, usize> = HashMap::new();
        for (i, raw) in header.iter().enumerate() {
            let name = String::from_utf8_lossy(raw);
            let name = name
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase();
            let Some(known) = COLUMNS.iter().find(|c| **c == name) else {
                continue;
            };
            if let Some(first) = at.insert(known, i) {
                return Err(format!(
                    "column `{known}` appears twice in the header (columns {} and {})",
                    first + 1,
                    i + 1
                ));
            }
        }
        let missing: Vec<&str> = REQUIRED_COLUMNS
            .iter()
            .copied()
            .filter(|c| !at.contains_key(c))
            .collect();
        if !missing.is_empty() {
            let s = if missing.len() > 1 { "s" } else { "" };
            return Err(format!(
                "missing required column{s} {} (the header must name at least {})",
                missing
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                REQUIRED_COLUMNS.join(", ")
            ));
        }
        let req = |c: &str| at.get(c).copied().unwrap_or_default();
        Ok(Columns {
            width: header.len(),
            photo: req("photo"),
            path: req("path"),
            content_hash: req("content_hash"),
            dataset: req("dataset"),
            suggestion: req("suggestion"),
            suggested: req("suggested"),
            verdict: req("verdict"),
            individual: req("individual"),
            species: at.get("species").copied(),
            reviewer: at.get("reviewer").copied(),
            note: at.get("note").copied(),
        })
    }
}

/// Turns csv's record positions (the byte where the reader stood before the
/// record, blank lines included) into the 1-based line where the record
/// itself starts; positions only grow, so the count goes on from the last.
struct LineCounter<'a> {
    bytes: &'a [u8],
    at: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineCounter {
            bytes,
            at: 0,
            line: 1,
        }
    }

    fn line_of(&mut self, pos: Option<&csv::Position>) -> u64 {
        let Some(pos) = pos else {
            return self.line;
        };
        let mut b = usize::try_from(pos.byte())
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        while b < self.bytes.len() && matches!(self.bytes[b], b'\n' | b'\r') {
            b += 1;
        }
        if b >= self.at {
            self.line += self.bytes[self.at..b]
                .iter()
                .filter(|c| **c == b'\n')
                .count() as u64;
        } else {
            self.line = 1 + self.bytes[..b].iter().filter(|c| **c == b'\n').count() as u64;
        }
        self.at = b;
        self.line
    }
}

/// The decision a decided row makes, to compare rows with the same content.
#[derive(Debug, PartialEq, Eq)]
enum Effect<'a> {
    Assign(&'a str),
    NewGroup(&'a str),
    Unassigned,
}

impl fmt::Display for Effect<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Assign(who) => write!(f, "confirm {who:?}"),
            Effect::NewGroup(label) => write!(f, "new {label:?}"),
            Effect::Unassigned => f.write_str("reject"),
        }
    }
}

fn effect(row: &DecisionRow) -> Option<Effect<'_>> {
    match row.verdict? {
        Verdict::Confirm => row.target().map(Effect::Assign),
        Verdict::New => row.target().map(Effect::NewGroup),
        Verdict::Reject => Some(Effect::Unassigned),
        Verdict::Skip => None,
    }
}

fn parse(bytes: &[u8], path: &Path) -> Result<Vec<DecisionRow>> {
    let row_err = |line: u64, message: String| CatalogueError::Row {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut lines = LineCounter::new(bytes);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut rec = csv::ByteRecord::new();
    let mut next = |rec: &mut csv::ByteRecord, lines: &mut LineCounter<'_>| {
        rdr.read_byte_record(rec).map_err(|e| {
            let line = lines.line_of(e.position());
            row_err(line, e.to_string())
        })
    };
    if !next(&mut rec, &mut lines)? {
        return Err(row_err(1, "empty file: no header line".into()));
    }
    let header_line = lines.line_of(rec.position());
    let cols = Columns::from_header(&rec).map_err(|m| row_err(header_line, m))?;

    let mut rows = Vec::new();
    while next(&mut rec, &mut lines)? {
        let line = lines.line_of(rec.position());
        if rec.iter().all(|f| f.trim_ascii().is_empty()) {
            continue;
        }
        if rec.len() != cols.width {
            return Err(row_err(
                line,
                format!(
                    "{} fields, but the header (line {header_line}) has {}",
                    rec.len(),
                    cols.width
                ),
            ));
        }
        rows.push(parse_row(&rec, &cols, line).map_err(|m| row_err(line, m))?);
    }

    let mut seen: HashMap<(&str, &str), &DecisionRow> = HashMap::new();
    for row in &rows {
        let Some(this) = effect(row) else {
            continue;
        };
        let key = (row.dataset.as_str(), row.content_hash.as_str());
        match seen.get(&key) {
            None => {
                seen.insert(key, row);
            }
            Some(first) => {
                let before = effect(first);
                if before.as_ref() != Some(&this) {
                    let before = before.map_or_else(String::new, |e| e.to_string());
                    return Err(row_err(
                        row.line,
                        format!(
                            "photo {:?} has the same content ({}) in dataset {:?} as photo {:?} \
                             on line {}, but a conflicting decision: {this} here, {before} there",
                            row.photo, row.content_hash, row.dataset, first.photo, first.line
                        ),
                    ));
                }
            }
        }
    }
    Ok(rows)
}

fn parse_row(
    rec: &csv::ByteRecord,
    cols: &Columns,
    line: u64,
) -> std::result::Result<DecisionRow, String> {
    let field = |i: usize, name: &str| -> std::result::Result<&str, String> {
        let raw = rec.get(i).unwrap_or_default();
        std::str::from_utf8(raw)
            .map_err(|e| format!("column `{name}` is not UTF-8 ({e}); save the file as UTF-8"))
    };
    let required = |i: usize, name: &str| -> std::result::Result<String, String> {
        let v = field(i, name)?;
        if v.trim().is_empty() {
            Err(format!("{name} is empty"))
        } else {
            Ok(v.to_string())
        }
    };
    let optional = |i: Option<usize>, name: &str| -> std::result::Result<Option<String>, String> {
        let Some(i) = i else {
            return Ok(None);
        };
        let v = field(i, name)?.trim();
        Ok((!v.is_empty()).then(|| v.to_string()))
    };
    let photo = required(cols.photo, "photo")?;
    let file = required(cols.path, "path")?;
    let dataset = required(cols.dataset, "dataset")?;
    let suggested = required(cols.suggested, "suggested")?;
    let content_hash = check_hash(field(cols.content_hash, "content_hash")?)?;
    let suggestion: Suggestion = field(cols.suggestion, "suggestion")?
        .parse()
        .map_err(|e: CatalogueError| e.to_string())?;
    let verdict = field(cols.verdict, "verdict")?;
    let verdict = if verdict.trim().is_empty() {
        None
    } else {
        Some(
            verdict
                .parse::<Verdict>()
                .map_err(|e: CatalogueError| e.to_string())?,
        )
    };
    let species = match cols.species {
        Some(i) => {
            let v = field(i, "species")?;
            (!v.trim().is_empty()).then(|| v.to_string())
        }
        None => None,
    };
    Ok(DecisionRow {
        line,
        photo,
        path: PathBuf::from(file),
        content_hash,
        dataset,
        species,
        suggestion,
        suggested,
        verdict,
        individual: optional(Some(cols.individual), "individual")?,
        reviewer: optional(cols.reviewer, "reviewer")?,
        note: optional(cols.note, "note")?,
    })
}
