//! Reports of a run: JSON for programs, self-contained HTML for people.
//!
//! A [`Report`] is built up stage by stage: a title, versions (this crate's
//! is filled in), the run's config as a JSON value, timings in seconds per
//! stage, and named sections holding metrics, free text, tables, structured
//! figures, images (plots, match sheets) and links. Every figure is kept as a
//! structured value, so [`Report::write_json`] gives a file that
//! [`Report::read_json`] reads back into an equal report.
//!
//! [`Report::write_html`] gives one HTML file that opens offline: styles are
//! inline, and images (PNG, JPEG, GIF, WebP, SVG) are embedded as base64
//! `data:` URIs, read when the HTML is written. Links point to their files
//! relative to the HTML file. All text is HTML-escaped. Both files are
//! written atomically.
//!
//! ```
//! use reid_eval::report::{Report, Table};
//!
//! let mut r = Report::new("lion, open set");
//! r.version("backbone", "efficientnet_lite2")
//!     .config(serde_json::json!({ "threshold": 0.62, "k": 5 }))
//!     .timing("embed", 12.5)
//!     .section("Scores")
//!     .metric("BAKS", 0.31)
//!     .metric("BAUS", 0.42)
//!     .table(Table::new("per dataset", ["dataset", "queries", "score"]).row(["lion".into(), 310.into(), 0.36.into()])?);
//! let dir = std::env::temp_dir();
//! r.write_json(dir.join("reid-eval-doc-report.json"))?;
//! let html = r.to_html(&dir)?;
//! assert!(html.contains("BAKS"));
//! # Ok::<(), reid_eval::EvalError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize};

use crate::chart::Chart;
use crate::error::{EvalError, Result};
use crate::io::{io_err, write_bytes_atomic};
use crate::matchsheet::MatchSheets;
use crate::plot::{PlotFiles, ScatterFiles};

/// Time spent in one stage of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// The stage.
    pub stage: String,
    /// Seconds.
    pub seconds: f64,
}

/// One cell of a [`Table`]. Non-finite numbers are written to JSON as `null`
/// and read back as [`Cell::Null`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cell {
    /// A number.
    Number(f64),
    /// Text.
    Text(String),
    /// Nothing.
    Null,
}

impl From<f64> for Cell {
    fn from(v: f64) -> Self {
        Cell::Number(v)
    }
}
impl From<f32> for Cell {
    fn from(v: f32) -> Self {
        Cell::Number(f64::from(v))
    }
}
macro_rules! cell_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Cell {
            fn from(v: $t) -> Self {
                Cell::Number(v as f64)
            }
        }
    )*};
}
cell_from_int!(usize, u64, u32, i64, i32);
impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Text(v.to_string())
    }
}
impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Text(v)
    }
}
impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Null, Into::into)
    }
}

/// A table of figures: a caption, column names and rows of cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Caption (may be empty).
    pub caption: String,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each with one cell per column.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new<S: Into<String>>(
        caption: impl Into<String>,
        columns: impl IntoIterator<Item = S>,
    ) -> Self {
        Table {
            caption: caption.into(),
            columns: columns.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }
    /// Appends a row; it must have one cell per column.
    pub fn row(mut self, cells: impl IntoIterator<Item = Cell>) -> Result<Self> {
        self.push_row(cells)?;
        Ok(self)
    }
    /// Appends a row in place; it must have one cell per column.
    pub fn push_row(&mut self, cells: impl IntoIterator<Item = Cell>) -> Result<()> {
        let cells: Vec<Cell> = cells.into_iter().collect();
        if cells.len() != self.columns.len() {
            return Err(EvalError::LengthMismatch {
                name: "table row",
                expected: self.columns.len(),
                got: cells.len(),
            });
        }
        self.rows.push(cells);
        Ok(())
    }
}

/// One entry of a [`Section`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    /// A named number. A non-finite value is written as `null` and read back
    /// as NaN.
    Metric {
        /// Its name.
        name: String,
        /// Its value.
        #[serde(deserialize_with = "f64_or_nan")]
        value: f64,
    },
    /// A paragraph.
    Text {
        /// The text.
        text: String,
    },
    /// A table.
    Table(Table),
    /// Any structured figure (shown as formatted JSON).
    Value {
        /// Its name.
        name: String,
        /// The value.
        value: serde_json::Value,
    },
    /// An image, embedded in the HTML.
    Image {
        /// The file.
        path: PathBuf,
        /// Its caption.
        caption: String,
    },
    /// A chart: its data (kept at full precision in the JSON) and its
    /// files; the HTML embeds the SVG and links the PNG.
    Chart {
        /// The data drawn.
        chart: Box<Chart>,
        /// The PNG and SVG written.
        files: PlotFiles,
        /// Its caption.
        caption: String,
    },
    /// A link to a file, relative to the HTML file.
    Link {
        /// The file.
        path: PathBuf,
        /// The link text.
        text: String,
    },
}

fn f64_or_nan<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A named part of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    /// Its heading (empty for what comes before the first section).
    pub name: String,
    /// Its entries, in order.
    pub items: Vec<Item>,
}

/// A report of a run; see the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The title.
    pub title: String,
    /// Versions of the software involved (`reid-eval` is filled in).
    pub versions: BTreeMap<String, String>,
    /// The run's settings.
    pub config: serde_json::Value,
    /// Seconds per stage, in order.
    pub timings: Vec<Timing>,
    /// The sections, in order.
    pub sections: Vec<Section>,
}

impl Report {
    /// An empty report with this title and the version of `reid-eval`.
    pub fn new(title: impl Into<String>) -> Self {
        let mut versions = BTreeMap::new();
        versions.insert(
            "reid-eval".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        );
        Report {
            title: title.into(),
            versions,
            config: serde_json::Value::Null,
            timings: Vec::new(),
            sections: Vec::new(),
        }
    }

    /// Records the version of `name`.
    pub fn version(&mut self, name: impl Into<String>, version: impl Into<String>) -> &mut Self {
        self.versions.insert(name.into(), version.into());
        self
    }

    /// Sets the run's config.
    pub fn config(&mut self, config: serde_json::Value) -> &mut Self {
        self.config = config;
        self
    }

    /// Sets the run's config from any serialisable settings.
    pub fn config_from<T: Serialize + ?Sized>(&mut self, config: &T) -> Result<&mut Self> {
        self.config = serde_json::to_value(config).map_err(|source| EvalError::Json {
            path: PathBuf::from("<config>"),
            source,
        })?;
        Ok(self)
    }

    /// Records `seconds` spent in `stage`.
    pub fn timing(&mut self, stage: impl Into<String>, seconds: f64) -> &mut Self {
        self.timings.push(Timing {
            stage: stage.into(),
            seconds,
        });
        self
    }

    /// Records the time elapsed since `start` for `stage`.
    pub fn timing_since(&mut self, stage: impl Into<String>, start: Instant) -> &mut Self {
        self.timing_duration(stage, start.elapsed())
    }

    /// Records `d` spent in `stage`.
    pub fn timing_duration(&mut self, stage: impl Into<String>, d: Duration) -> &mut Self {
        self.timing(stage, d.as_secs_f64())
    }

    /// Runs `work`, records its time for `stage` and returns its result.
    pub fn time<T>(&mut self, stage: impl Into<String>, work: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = work();
        self.timing_since(stage, start);
        out
    }

    /// Starts a new section; what follows goes into it.
    pub fn section(&mut self, name: impl Into<String>) -> &mut Self {
        self.sections.push(Section {
            name: name.into(),
            items: Vec::new(),
        });
        self
    }

    fn push(&mut self, item: Item) -> &mut Self {
        if self.sections.is_empty() {
            self.section("");
        }
        if let Some(s) = self.sections.last_mut() {
            s.items.push(item);
        }
        self
    }

    /// Adds a metric to the current section.
    pub fn metric(&mut self, name: impl Into<String>, value: f64) -> &mut Self {
        self.push(Item::Metric {
            name: name.into(),
            value,
        })
    }

    /// Adds several metrics to the current section.
    pub fn metrics<S: Into<String>>(
        &mut self,
        metrics: impl IntoIterator<Item = (S, f64)>,
    ) -> &mut Self {
        for (n, v) in metrics {
            self.metric(n, v);
        }
        self
    }

    /// Adds a paragraph to the current section.
    pub fn text(&mut self, text: impl Into<String>) -> &mut Self {
        self.push(Item::Text { text: text.into() })
    }

    /// Adds a table to the current section.
    pub fn table(&mut self, table: Table) -> &mut Self {
        self.push(Item::Table(table))
    }

    /// Adds a structured figure to the current section.
    pub fn value(&mut self, name: impl Into<String>, value: serde_json::Value) -> &mut Self {
        self.push(Item::Value {
            name: name.into(),
            value,
        })
    }

    /// Adds a structured figure from anything serialisable.
    pub fn value_from<T: Serialize + ?Sized>(
        &mut self,
        name: impl Into<String>,
        value: &T,
    ) -> Result<&mut Self> {
        let name = name.into();
        let value = serde_json::to_value(value).map_err(|source| EvalError::Json {
            path: PathBuf::from(format!("<{name}>")),
            source,
        })?;
        Ok(self.value(name, value))
    }

    /// Adds an image (PNG, JPEG, GIF, WebP or SVG), embedded in the HTML.
    pub fn image(&mut self, path: impl Into<PathBuf>, caption: impl Into<String>) -> &mut Self {
        self.push(Item::Image {
            path: path.into(),
            caption: caption.into(),
        })
    }

    /// Adds a link to a file.
    pub fn link(&mut self, path: impl Into<PathBuf>, text: impl Into<String>) -> &mut Self {
        self.push(Item::Link {
            path: path.into(),
            text: text.into(),
        })
    }

    /// Adds a scatter plot (its SVG, embedded) with a link to its PNG.
    pub fn scatter(&mut self, files: &ScatterFiles, caption: impl Into<String>) -> &mut Self {
        self.image(files.svg.clone(), caption);
        self.link(files.png.clone(), "PNG version")
    }

    /// Draws `chart` into `<stem>.png` and `<stem>.svg` and adds it (the
    /// SVG embedded in the HTML, a link to the PNG, the data in the JSON);
    /// returns the files.
    pub fn chart(
        &mut self,
        chart: Chart,
        stem: impl AsRef<Path>,
        caption: impl Into<String>,
    ) -> Result<PlotFiles> {
        let files = chart.write(stem)?;
        self.push(Item::Chart {
            chart: Box::new(chart),
            files: files.clone(),
            caption: caption.into(),
        });
        Ok(files)
    }

    /// Adds match sheets: the first `embed` pages embedded, links to all
    /// pages, and a table of the images that could not be shown.
    pub fn match_sheets(&mut self, sheets: &MatchSheets, embed: usize) -> &mut Self {
        for (i, p) in sheets.pages.iter().take(embed).enumerate() {
            self.image(
                p.clone(),
                format!("match sheet {} of {}", i + 1, sheets.pages.len()),
            );
        }
        for (i, p) in sheets.pages.iter().enumerate() {
            self.link(p.clone(), format!("match sheet {}", i + 1));
        }
        if !sheets.failures.is_empty() {
            let mut t = Table::new("images not shown", ["page", "query", "image", "error"]);
            for f in &sheets.failures {
                t.rows.push(vec![
                    f.page.display().to_string().into(),
                    f.query.clone().into(),
                    f.image.display().to_string().into(),
                    f.error.clone().into(),
                ]);
            }
            self.table(t);
        }
        self
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|source| EvalError::Json {
            path: PathBuf::from("<report>"),
            source,
        })
    }

    /// Writes the report as JSON to `path` (atomically); returns the path.
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let path = path.as_ref();
        let mut json = serde_json::to_string_pretty(self).map_err(|source| EvalError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        json.push('\n');
        write_bytes_atomic(path, json.as_bytes())?;
        Ok(path.to_path_buf())
    }

    /// Reads a report written by [`write_json`](Self::write_json).
    pub fn read_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
        serde_json::from_str(&text).map_err(|source| EvalError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the report as one self-contained HTML file to `path`
    /// (atomically); images are read and embedded now, links are made
    /// relative to `path`'s folder. Returns the path.
    pub fn write_html(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let path = path.as_ref();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let html = self.to_html(&dir)?;
        write_bytes_atomic(path, html.as_bytes())?;
        Ok(path.to_path_buf())
    }

    /// The report as HTML, with links relative to `base_dir` (the folder the
    /// HTML will be in). Fails, naming the file, when an image cannot be
    /// read or is not a known image format.
    pub fn to_html(&self, base_dir: &Path) -> Result<String> {
        let mut h = String::with_capacity(16 * 1024);
        let title = escape(&self.title);
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
        );
        // Contents.
        let named: Vec<(usize, &Section)> = self
            .sections
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.name.is_empty())
            .collect();
        if !named.is_empty() {
            h.push_str("<nav><ul>\n");
            for (i, s) in &named {
                let _ = writeln!(h, "<li><a href=\"#s{i}\">{}</a></li>", escape(&s.name));
            }
            h.push_str("<li><a href=\"#run\">Run</a></li>\n</ul></nav>\n");
        }
        for (i, s) in self.sections.iter().enumerate() {
            let _ = writeln!(h, "<section id=\"s{i}\">");
            if !s.name.is_empty() {
                let _ = writeln!(h, "<h2>{}</h2>", escape(&s.name));
            }
            self.section_html(&mut h, s, base_dir)?;
            h.push_str("</section>\n");
        }
        // Run details: timings, config, versions.
        h.push_str("<section id=\"run\">\n<h2>Run</h2>\n");
        if !self.timings.is_empty() {
            let total: f64 = self
                .timings
                .iter()
                .map(|t| t.seconds)
                .filter(|s| s.is_finite())
                .sum();
            h.push_str("<h3>Timings</h3>\n<table class=\"timings\">\n<thead><tr><th>stage</th><th class=\"num\">seconds</th><th>share</th></tr></thead>\n<tbody>\n");
            for t in &self.timings {
                let share = if total > 0.0 && t.seconds.is_finite() {
                    (t.seconds / total * 100.0).clamp(0.0, 100.0)
                } else {
                    0.0
                };
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td class=\"num\">{}</td><td><div class=\"bar\" style=\"width:{share:.1}%\"></div></td></tr>",
                    escape(&t.stage),
                    fmt_seconds(t.seconds)
                );
            }
            let _ = writeln!(
                h,
                "</tbody>\n<tfoot><tr><th>total</th><th class=\"num\">{}</th><th></th></tr></tfoot>\n</table>",
                fmt_seconds(total)
            );
        }
        if !self.config.is_null() {
            h.push_str("<h3>Config</h3>\n");
            value_html(&mut h, &self.config);
        }
        h.push_str("<h3>Versions</h3>\n<table>\n<tbody>\n");
        for (k, v) in &self.versions {
            let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(v));
        }
        h.push_str("</tbody>\n</table>\n</section>\n");
        let _ = writeln!(
            h,
            "<footer>written by reid-eval {}</footer>\n</body>\n</html>",
            escape(env!("CARGO_PKG_VERSION"))
        );
        Ok(h)
    }

    fn section_html(&self, h: &mut String, s: &Section, base_dir: &Path) -> Result<()> {
        let mut i = 0;
        while i < s.items.len() {
            match &s.items[i] {
                Item::Metric { .. } => {
                    // Consecutive metrics form one table.
                    h.push_str("<table class=\"metrics\">\n<tbody>\n");
                    while let Some(Item::Metric { name, value }) = s.items.get(i) {
                        let _ = writeln!(
                            h,
                            "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
                            escape(name),
                            escape(&fmt_num(*value))
                        );
                        i += 1;
                    }
                    h.push_str("</tbody>\n</table>\n");
                    continue;
                }
                Item::Text { text } => {
                    let _ = writeln!(h, "<p>{}</p>", escape(text));
                }
                Item::Table(t) => table_html(h, t),
                Item::Value { name, value } => {
                    let _ = writeln!(h, "<h3>{}</h3>", escape(name));
                    value_html(h, value);
                }
                Item::Image { path, caption } => {
                    let uri = data_uri(path)?;
                    let _ = writeln!(
                        h,
                        "<figure><img src=\"{uri}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
                        escape(caption),
                        escape(caption)
                    );
                }
                Item::Chart { files, caption, .. } => {
                    let uri = data_uri(&files.svg)?;
                    let _ = writeln!(
                        h,
                        "<figure><img src=\"{uri}\" alt=\"{}\"><figcaption>{} \
                         <a href=\"{}\">PNG</a></figcaption></figure>",
                        escape(caption),
                        escape(caption),
                        escape(&relative_url(&files.png, base_dir))
                    );
                }
                Item::Link { path, text } => {
                    let _ = writeln!(
                        h,
                        "<p class=\"link\"><a href=\"{}\">{}</a></p>",
                        escape(&relative_url(path, base_dir)),
                        escape(text)
                    );
                }
            }
            i += 1;
        }
        Ok(())
    }
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;\
max-width:1200px;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}\
h1{border-bottom:2px solid #ccc;padding-bottom:.3em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}\
nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1em}\
table{border-collapse:collapse;margin:.8em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f2f2f2}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\
caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}\
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}\
figcaption{color:#555;font-size:.9em}pre{background:#f6f6f6;padding:.8em;overflow:auto}\
.timings td:last-child{width:40%}.bar{background:#4a7fc1;height:.8em}\
footer{margin-top:3em;color:#888;font-size:.85em}";

fn table_html(h: &mut String, t: &Table) {
    h.push_str("<table>\n");
    if !t.caption.is_empty() {
        let _ = writeln!(h, "<caption>{}</caption>", escape(&t.caption));
    }
    h.push_str("<thead><tr>");
    for c in &t.columns {
        let _ = write!(h, "<th>{}</th>", escape(c));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        h.push_str("<tr>");
        for c in row {
            match c {
                Cell::Number(v) => {
                    let _ = write!(h, "<td class=\"num\">{}</td>", escape(&fmt_num(*v)));
                }
                Cell::Text(s) => {
                    let _ = write!(h, "<td>{}</td>", escape(s));
                }
                Cell::Null => h.push_str("<td></td>"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n");
}

/// A JSON value: an object of scalars as a two-column table, anything else
/// as formatted JSON.
fn value_html(h: &mut String, v: &serde_json::Value) {
    use serde_json::Value;
    if let Value::Object(m) = v
        && m.values().all(|x| !x.is_object() && !x.is_array())
    {
        h.push_str("<table>\n<tbody>\n");
        for (k, x) in m {
            let cell = match x {
                Value::String(s) => format!("<td>{}</td>", escape(s)),
                Value::Number(n) => format!(
                    "<td class=\"num\">{}</td>",
                    escape(&n.as_f64().map_or_else(|| n.to_string(), fmt_num))
                ),
                other => format!("<td>{}</td>", escape(&other.to_string())),
            };
            let _ = writeln!(h, "<tr><td>{}</td>{cell}</tr>", escape(k));
        }
        h.push_str("</tbody>\n</table>\n");
        return;
    }
    let rounded = rounded(v);
    let text = serde_json::to_string_pretty(&rounded).unwrap_or_else(|_| rounded.to_string());
    let _ = writeln!(h, "<pre>{}</pre>", escape(&text));
}

/// `v` with every non-integer number rounded for reading ([`fmt_num`]).
fn rounded(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => n
            .as_f64()
            .and_then(|x| fmt_num(x).parse::<f64>().ok())
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| v.clone(), Value::Number),
        Value::Array(a) => Value::Array(a.iter().map(rounded).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), rounded(x))).collect()),
        other => other.clone(),
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number for people: 4 significant digits ([`crate::chart::significant`]).
fn fmt_num(v: f64) -> String {
    crate::chart::significant(v, 4)
}

fn fmt_seconds(s: f64) -> String {
    if !s.is_finite() {
        return s.to_string();
    }
    if s < 10.0 {
        format!("{s:.3}")
    } else {
        format!("{s:.1}")
    }
}

/// The image file at `path` as a `data:` URI, its type sniffed from its bytes.
fn data_uri(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let mime = sniff_mime(&bytes).ok_or_else(|| {
        io_err(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a PNG, JPEG, GIF, WebP or SVG image",
            ),
        )
    })?;
    Ok(format!("data:{mime};base64,{}", base64(&bytes)))
}

fn sniff_mime(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        return Some("image/png");
    }
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some("image/jpeg");
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return Some("image/gif");
    }
    if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    let head = String::from_utf8_lossy(&b[..b.len().min(1024)]);
    let head = head.trim_start_matches('\u{feff}').trim_start();
    if head.starts_with("<svg") || (head.starts_with("<?xml") && head.contains("<svg")) {
        return Some("image/svg+xml");
    }
    None
}

/// Standard base64 with padding (RFC 4648), as `data:` URIs want it.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(char::from(A[(n >> 18) as usize & 63]));
        out.push(char::from(A[(n >> 12) as usize & 63]));
        out.push(if chunk.len() > 1 {
            char::from(A[(n >> 6) as usize & 63])
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            char::from(A[n as usize & 63])
        } else {
            '='
        });
    }
    out
}

/// A URL for `target` relative to the folder `base` (both made absolute
/// against the current folder first), with `/` separators and
/// percent-encoding; falls back to an absolute `file://` URL when no
/// relative path exists (e.g. another drive).
fn relative_url(target: &Path, base: &Path) -> String {
    let (Ok(t), Ok(b)) = (std::path::absolute(target), std::path::absolute(base)) else {
        return encode_path(target.components().filter_map(comp_str));
    };
    let t: Vec<Component<'_>> = normalise(&t);
    let b: Vec<Component<'_>> = normalise(&b);
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return format!(
            "file://{}",
            encode_path(t.iter().copied().filter_map(comp_str))
        );
    }
    let ups = b.len() - common;
    let parts: Vec<String> = std::iter::repeat_n("..".to_string(), ups)
        .chain(t[common..].iter().copied().filter_map(comp_str))
        .collect();
    encode_path(parts.into_iter())
}

/// Components with `.` dropped and `..` applied lexically.
fn normalise(p: &Path) -> Vec<Component<'_>> {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.last(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn comp_str(c: Component<'_>) -> Option<String> {
    match c {
        Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
        Component::ParentDir => Some("..".into()),
        Component::RootDir => Some(String::new()),
        Component::Prefix(p) => Some(p.as_os_str().to_string_lossy().into_owned()),
        Component::CurDir => None,
    }
}

fn encode_path(parts: impl Iterator<Item = String>) -> String {
    let mut out = String::new();
    for (i, p) in parts.enumerate() {
        if i > 0 {
            out.push('/');
        }
        for b in p.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn base64_known_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(base64(&[0xFF, 0xFE, 0xFD]), "//79");
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_num(0.123456), "0.1235");
        assert_eq!(fmt_num(1.5e-7), "1.500e-7");
        assert_eq!(fmt_num(0.21932730748686816), "0.2193");
        assert_eq!(fmt_num(0.7550000548362732), "0.755");
        assert_eq!(fmt_num(12.3456), "12.35");
        assert_eq!(fmt_num(1234.56), "1235");
        assert_eq!(fmt_num(0.0012346), "0.001235");
        assert_eq!(fmt_num(f64::NAN), "NaN");
    }

    #[test]
    fn relative_urls() {
        let base = Path::new("/data/out");
        assert_eq!(
            relative_url(Path::new("/data/out/plots/a b.svg"), base),
            "plots/a%20b.svg"
        );
        assert_eq!(
            relative_url(Path::new("/data/sheets/m-0001.png"), base),
            "../sheets/m-0001.png"
        );
        assert_eq!(
            relative_url(Path::new("/data/out/./x/../y.png"), base),
            "y.png"
        );
    }
}
