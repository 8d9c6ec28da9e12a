//! Match sheets: pictures for a person to check decisions by eye.
//!
//! Each page (a PNG) shows one or more queries; for each, the query photo
//! beside its top-k gallery matches as thumbnails, each with its identity and
//! score printed under it, and a header line with the decision (a known
//! identity, or a new individual) and, when the truth is known, whether it was
//! right. Matches of the query's true identity get a green frame.
//!
//! Images are decoded by [`reid_data::decode_image`] (by content, with the
//! EXIF orientation applied, cropped to an optional bounding box). An image
//! that cannot be read becomes a placeholder tile that shows the error; the
//! sheet is still written and the failure is listed in
//! [`MatchSheets::failures`]. Pages are rendered in parallel and written
//! atomically as `<prefix>-0001.png`, `<prefix>-0002.png`, ...
//!
//! ```no_run
//! use reid_eval::ParamGuard;
//! use reid_eval::matchsheet::{
//!     Candidate, Decision, MatchSheetParams, QueryMatches, SheetImage, Truth, write_match_sheets,
//! };
//!
//! let q = QueryMatches::new("q17", SheetImage::new("photos/q17.jpg"), Decision::Known("Amber".into()))
//!     .truth(Truth::known("Amber"))
//!     .candidate(Candidate::new(SheetImage::new("photos/a1.jpg"), "Amber", 0.91))
//!     .candidate(Candidate::new(SheetImage::new("photos/b4.jpg"), "Blackie", 0.72));
//! let params = MatchSheetParams::new().top_k(2).check()?;
//! let sheets = write_match_sheets(&[q], "out/matches", &params)?;
//! for f in &sheets.failures {
//!     eprintln!("{}: {}", f.image.display(), f.error);
//! }
//! # Ok::<(), reid_eval::EvalError>(())
//! ```

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage, imageops};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use rayon::prelude::*;
#[cfg(doc)]
use reid_core::ParamGuard;
use reid_data::BBox;
use reid_data::decode::{DecodeOptions, SizeHint, decode_image};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::io::{io_err, write_png_atomic};
use crate::plot::{FONT, GlyphBitmap, ensure_font, fit_text};

/// An image on a sheet: a file and an optional bounding box (in the
/// coordinates of the upright, full-resolution image) to crop it to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SheetImage {
    /// The image file.
    pub path: PathBuf,
    /// Crop to this box, if any.
    pub bbox: Option<BBox>,
}

impl SheetImage {
    /// The whole image at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SheetImage {
            path: path.into(),
            bbox: None,
        }
    }
    /// Crops the image to `bbox`.
    pub fn with_bbox(mut self, bbox: BBox) -> Self {
        self.bbox = Some(bbox);
        self
    }
}

impl<P: Into<PathBuf>> From<P> for SheetImage {
    fn from(p: P) -> Self {
        SheetImage::new(p)
    }
}

/// One gallery match of a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Its photo.
    pub image: SheetImage,
    /// Its identity.
    pub identity: String,
    /// Its similarity score.
    pub score: f64,
}

impl Candidate {
    /// A match showing `image`, of `identity`, with `score`. The image is a
    /// [`SheetImage`] (not any string) so that it cannot swap silently with
    /// the identity.
    pub fn new(image: SheetImage, identity: impl Into<String>, score: f64) -> Self {
        Candidate {
            image,
            identity: identity.into(),
            score,
        }
    }
}

/// The open-set decision for a query (the one of `reid-openset`).
pub use reid_openset::Decision;

/// The truth about a query, where known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    /// The query's true identity.
    pub identity: String,
    /// Whether that identity is in the database (else the right answer is
    /// [`Decision::New`]).
    pub known: bool,
}

impl Truth {
    /// A query of `identity`, which the database holds.
    pub fn known(identity: impl Into<String>) -> Self {
        Truth {
            identity: identity.into(),
            known: true,
        }
    }
    /// A query of `identity`, which the database does not hold.
    pub fn new_individual(identity: impl Into<String>) -> Self {
        Truth {
            identity: identity.into(),
            known: false,
        }
    }
    /// The right decision for this query.
    pub fn expected(&self) -> Decision {
        if self.known {
            Decision::Known(self.identity.clone())
        } else {
            Decision::New
        }
    }
}

/// A query, its ranked matches and the decision taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryMatches {
    /// A name for the query (record id, file name).
    pub id: String,
    /// Its photo.
    pub image: SheetImage,
    /// Gallery matches, best first (only the first `top_k` are drawn).
    pub candidates: Vec<Candidate>,
    /// The decision.
    pub decision: Decision,
    /// The truth, if known.
    pub truth: Option<Truth>,
}

impl QueryMatches {
    /// A query named `id` showing `image`, with `decision` and no matches
    /// yet. The image is a [`SheetImage`] (not any string) so that it cannot
    /// swap silently with the name.
    pub fn new(id: impl Into<String>, image: SheetImage, decision: Decision) -> Self {
        QueryMatches {
            id: id.into(),
            image,
            candidates: Vec::new(),
            decision,
            truth: None,
        }
    }
    /// Sets the truth.
    pub fn truth(mut self, truth: Truth) -> Self {
        self.truth = Some(truth);
        self
    }
    /// Appends a match (call best first).
    pub fn candidate(mut self, c: Candidate) -> Self {
        self.candidates.push(c);
        self
    }
    /// Whether the decision was right; `None` when the truth is unknown.
    pub fn is_correct(&self) -> Option<bool> {
        self.truth.as_ref().map(|t| t.expected() == self.decision)
    }
}

/// Settings of the match sheets: a builder, checked once by
/// [`ParamGuard::check`] into the [`ValidMatchSheetParams`] that
/// [`write_match_sheets`] takes.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchSheetParams {
    thumb: u32,
    top_k: usize,
    queries_per_page: usize,
    prefix: String,
    title: String,
}

impl Default for MatchSheetParams {
    fn default() -> Self {
        MatchSheetParams {
            thumb: 224,
            top_k: 5,
            queries_per_page: 1,
            prefix: "matches".into(),
            title: String::new(),
        }
    }
}

impl MatchSheetParams {
    /// Defaults: 224-pixel thumbnails, top 5 matches, one query a page,
    /// files `matches-0001.png`, ..., no title.
    pub fn new() -> Self {
        Self::default()
    }
    reid_core::setters! {
        /// Thumbnail side in pixels, 96 to 1024.
        thumb: u32,
        /// How many matches to show per query, 1 to 20.
        top_k: usize,
        /// Queries on one page, 1 to 50.
        queries_per_page: usize,
    }
    /// File name prefix of the pages (letters, digits, `-`, `_`, `.`).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
    /// A title printed at the top of every page (empty: none).
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }
}

reid_core::param_guard!(MatchSheetParams => ValidMatchSheetParams, EvalError, |p| {
    let bad = |name, reason: String| Err(EvalError::InvalidParam { name, reason });
    if !(96..=1024).contains(&p.thumb) {
        return bad(
            "thumb",
            format!("must be 96 to 1024 pixels, got {}", p.thumb),
        );
    }
    if !(1..=20).contains(&p.top_k) {
        return bad("top_k", format!("must be 1 to 20, got {}", p.top_k));
    }
    if !(1..=50).contains(&p.queries_per_page) {
        return bad(
            "queries_per_page",
            format!("must be 1 to 50, got {}", p.queries_per_page),
        );
    }
    let ok = !p.prefix.is_empty()
        && !p.prefix.starts_with('.')
        && p
            .prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return bad(
            "prefix",
            format!(
                "must be letters, digits, '-', '_' or '.', not starting with '.', got {:?}",
                p.prefix
            ),
        );
    }
    Ok(())
});

/// [`MatchSheetParams`] that passed [`ParamGuard::check`]. Its `Default` is
/// the default [`MatchSheetParams`], checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidMatchSheetParams(MatchSheetParams);

impl ValidMatchSheetParams {
    reid_core::getters! {
        /// Thumbnail side in pixels.
        thumb: u32,
        /// Matches shown per query.
        top_k: usize,
        /// Queries on one page.
        queries_per_page: usize,
    }
    /// File name prefix of the pages.
    pub fn prefix(&self) -> &str {
        &self.0.prefix
    }
    /// The title printed on every page (empty: none).
    pub fn title(&self) -> &str {
        &self.0.title
    }
}

/// An image that could not be shown (drawn as a placeholder tile).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFailure {
    /// The page it is on.
    pub page: PathBuf,
    /// The query whose row it is in.
    pub query: String,
    /// The image file.
    pub image: PathBuf,
    /// Why it could not be shown.
    pub error: String,
}

/// What [`write_match_sheets`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MatchSheets {
    /// The pages, in query order.
    pub pages: Vec<PathBuf>,
    /// Images drawn as placeholders, in page order.
    pub failures: Vec<ImageFailure>,
}

/// Writes the match sheets of `queries` into `out_dir` (created if absent)
/// and returns the pages written and the images that could not be shown.
///
/// Fails only when a page cannot be written (the settings were checked by
/// [`ParamGuard::check`]); unreadable images become placeholder tiles.
pub fn write_match_sheets(
    queries: &[QueryMatches],
    out_dir: impl AsRef<Path>,
    params: &ValidMatchSheetParams,
) -> Result<MatchSheets> {
    let params = &params.0;
    ensure_font()?;
    let out_dir = out_dir.as_ref();
    std::fs::create_dir_all(out_dir).map_err(|e| io_err(out_dir, e))?;
    let chunks: Vec<&[QueryMatches]> = queries.chunks(params.queries_per_page).collect();
    let n_pages = chunks.len();
    let results: Vec<(PathBuf, Vec<ImageFailure>)> = chunks
        .par_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let path = out_dir.join(format!("{}-{:04}.png", params.prefix, i + 1));
            let at = PageAt {
                first: i * params.queries_per_page,
                total: queries.len(),
                page: i,
                n_pages,
            };
            let (img, failed) = render_page(chunk, at, params)?;
            write_png_atomic(&img, &path)?;
            let failures = failed
                .into_iter()
                .map(|(query, image, error)| ImageFailure {
                    page: path.clone(),
                    query,
                    image,
                    error,
                })
                .collect();
            Ok((path, failures))
        })
        .collect::<Result<_>>()?;
    let mut out = MatchSheets::default();
    for (page, failures) in results {
        out.pages.push(page);
        out.failures.extend(failures);
    }
    Ok(out)
}

/// Layout constants of a page, in pixels, derived from the thumbnail size.
struct Layout {
    t: u32,
    pad: u32,
    gap: u32,
    sep: u32,
    title_h: u32,
    header_h: u32,
    caption_h: u32,
    block_h: u32,
    width: u32,
    font: f64,
}

impl Layout {
    fn new(p: &MatchSheetParams) -> Self {
        let t = p.thumb;
        let font = (f64::from(t) / 14.0).clamp(11.0, 22.0);
        let (pad, gap, sep) = (16, 10, 30);
        let title_h = if p.title.is_empty() {
            0
        } else {
            (font * 2.4) as u32
        };
        let header_h = (font * 2.3) as u32;
        let caption_h = (font * 3.0) as u32;
        let block_h = header_h + t + caption_h + pad;
        let width = 2 * pad + t + sep + p.top_k as u32 * (t + gap) - gap;
        Layout {
            t,
            pad,
            gap,
            sep,
            title_h,
            header_h,
            caption_h,
            block_h,
            width,
            font,
        }
    }
    fn height(&self, n_queries: usize) -> u32 {
        self.pad + self.title_h + n_queries as u32 * self.block_h
    }
    /// Top-left corner of the query tile (`slot` 0) or match `slot - 1`.
    fn tile_origin(&self, row: usize, slot: usize) -> (u32, u32) {
        let y = self.pad + self.title_h + row as u32 * self.block_h + self.header_h;
        let x = if slot == 0 {
            self.pad
        } else {
            self.pad + self.t + self.sep + (slot as u32 - 1) * (self.t + self.gap)
        };
        (x, y)
    }
}

const TILE_BG: Rgb<u8> = Rgb([236, 236, 236]);
const PLACEHOLDER_BG: Rgb<u8> = Rgb([252, 228, 228]);
const GREEN: RGBColor = RGBColor(20, 140, 50);
const RED: RGBColor = RGBColor(200, 30, 30);
const INK: RGBColor = RGBColor(30, 30, 30);
const MUTED: RGBColor = RGBColor(100, 100, 100);

/// A tile: the picture (letterboxed) or the error that replaced it.
enum Tile {
    Image(RgbImage),
    Failed(String),
}

fn load_tile(img: &SheetImage, t: u32) -> Tile {
    let decoded = decode_image(
        &img.path,
        img.bbox.as_ref(),
        SizeHint::longer_side(t),
        &DecodeOptions::default(),
    );
    match decoded {
        Ok(d) => {
            let (w, h) = d.image.dimensions();
            let s = (f64::from(t) / f64::from(w)).min(f64::from(t) / f64::from(h));
            let nw = ((f64::from(w) * s).round() as u32).clamp(1, t);
            let nh = ((f64::from(h) * s).round() as u32).clamp(1, t);
            let small = if (nw, nh) == (w, h) {
                d.image
            } else {
                imageops::resize(&d.image, nw, nh, imageops::FilterType::Triangle)
            };
            let mut tile = RgbImage::from_pixel(t, t, TILE_BG);
            imageops::replace(
                &mut tile,
                &small,
                i64::from((t - nw) / 2),
                i64::from((t - nh) / 2),
            );
            Tile::Image(tile)
        }
        Err(e) => Tile::Failed(e.to_string()),
    }
}

/// An image that failed on a page: (query id, image path, error).
type Failed = (String, PathBuf, String);

/// Where a page stands in the sheet.
#[derive(Debug, Clone, Copy)]
struct PageAt {
    /// Index of the page's first query among all the queries.
    first: usize,
    /// Number of queries in the sheet.
    total: usize,
    /// Index of the page.
    page: usize,
    /// Number of pages.
    n_pages: usize,
}

/// Renders one page; returns the picture and the failed images.
fn render_page(
    queries: &[QueryMatches],
    at: PageAt,
    p: &MatchSheetParams,
) -> Result<(RgbImage, Vec<Failed>)> {
    let lay = Layout::new(p);
    let (w, h) = (lay.width, lay.height(queries.len()));
    let mut canvas = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let mut failed = Vec::new();
    let mut failed_tiles = Vec::new();
    // Pixels first: thumbnails and placeholders.
    for (row, q) in queries.iter().enumerate() {
        let images =
            std::iter::once(&q.image).chain(q.candidates.iter().take(p.top_k).map(|c| &c.image));
        for (slot, img) in images.enumerate() {
            let (x, y) = lay.tile_origin(row, slot);
            match load_tile(img, lay.t) {
                Tile::Image(tile) => {
                    imageops::replace(&mut canvas, &tile, i64::from(x), i64::from(y))
                }
                Tile::Failed(e) => {
                    let ph = RgbImage::from_pixel(lay.t, lay.t, PLACEHOLDER_BG);
                    imageops::replace(&mut canvas, &ph, i64::from(x), i64::from(y));
                    failed.push((q.id.clone(), img.path.clone(), e.clone()));
                    failed_tiles.push((row, slot, e));
                }
            }
        }
        // Empty slots when there are fewer matches than top_k.
        for slot in q.candidates.len().min(p.top_k) + 1..=p.top_k {
            let (x, y) = lay.tile_origin(row, slot);
            let empty = RgbImage::from_pixel(lay.t, lay.t, Rgb([248, 248, 248]));
            imageops::replace(&mut canvas, &empty, i64::from(x), i64::from(y));
        }
    }
    // Then lines and text, drawn by plotters into the same buffer.
    {
        let buf: &mut [u8] = &mut canvas;
        let root = GlyphBitmap::with_buffer(buf, (w, h)).into_drawing_area();
        draw_text_layer(&root, queries, at, p, &lay, &failed_tiles)
            .and_then(|()| root.present())
            .map_err(|e| EvalError::Draw {
                what: format!("match sheet page {}", at.page + 1),
                reason: e.to_string(),
            })?;
    }
    Ok((canvas, failed))
}

type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw_text_layer<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    queries: &[QueryMatches],
    at: PageAt,
    p: &MatchSheetParams,
    lay: &Layout,
    failed_tiles: &[(usize, usize, String)],
) -> DrawResult<DB> {
    let t = lay.t as i32;
    let f = lay.font;
    let text = (FONT, f).into_font().color(&INK);
    let muted = (FONT, f).into_font().color(&MUTED);
    let bold = |c: &'static RGBColor| (FONT, f * 1.1, FontStyle::Bold).into_font().color(c);
    if !p.title.is_empty() {
        let s = (FONT, f * 1.3, FontStyle::Bold).into_font().color(&INK);
        let title = format!("{}  (page {} of {})", p.title, at.page + 1, at.n_pages);
        root.draw(&Text::new(
            title,
            (lay.pad as i32, (lay.pad as f64 + f * 0.2) as i32),
            s,
        ))?;
    }
    let failed_at = |row: usize, slot: usize| {
        failed_tiles
            .iter()
            .find(|(r, s, _)| *r == row && *s == slot)
            .map(|(_, _, e)| e.as_str())
    };
    for (row, q) in queries.iter().enumerate() {
        let (qx, qy) = lay.tile_origin(row, 0);
        let (qx, qy) = (qx as i32, qy as i32);
        // Header: query number and decision.
        let hy = qy - lay.header_h as i32 + (f * 0.5) as i32;
        let mut x = lay.pad as i32;
        let head = format!("Query {} of {}", at.first + row + 1, at.total);
        x += draw_run(root, &head, (x, hy), &bold(&INK))? + (f * 1.5) as i32;
        let decision = match &q.decision {
            Decision::Known(id) => format!("decision: known, {id}"),
            Decision::New => "decision: new individual".to_string(),
        };
        x += draw_run(root, &decision, (x, hy), &bold(&INK))? + (f * 1.0) as i32;
        match q.is_correct() {
            Some(true) => {
                draw_run(root, "RIGHT", (x, hy), &bold(&GREEN))?;
            }
            Some(false) => {
                let why = match q.truth.as_ref().map(Truth::expected) {
                    Some(Decision::Known(id)) => format!("WRONG (should be {id})"),
                    _ => "WRONG (should be new)".to_string(),
                };
                draw_run(root, &why, (x, hy), &bold(&RED))?;
            }
            None => {
                draw_run(root, "(truth unknown)", (x, hy), &muted)?;
            }
        }
        // Separator between the query and its matches.
        let sx = (lay.pad + lay.t + lay.sep / 2) as i32;
        root.draw(&PathElement::new(
            vec![(sx, qy), (sx, qy + t + lay.caption_h as i32 - 6)],
            RGBColor(190, 190, 190).stroke_width(2),
        ))?;
        // Query caption.
        let cy = qy + t + (f * 0.35) as i32;
        let line2 = cy + (f * 1.35) as i32;
        let max_w = t;
        let qtext = fit_text(root, &format!("query {}", q.id), &text, max_w);
        root.draw(&Text::new(qtext, (qx, cy), text.clone()))?;
        let truth = match &q.truth {
            Some(tr) if tr.known => format!("truth: {} (known)", tr.identity),
            Some(tr) => format!("truth: {} (new)", tr.identity),
            None => "truth: unknown".to_string(),
        };
        root.draw(&Text::new(
            fit_text(root, &truth, &muted, max_w),
            (qx, line2),
            muted.clone(),
        ))?;
        frame(root, (qx, qy), t, &RGBColor(40, 90, 200), 3)?;
        if let Some(e) = failed_at(row, 0) {
            placeholder_text(root, (qx, qy), t, f, e)?;
        }
        // Matches.
        let truth_id = q.truth.as_ref().map(|tr| tr.identity.as_str());
        for (k, c) in q.candidates.iter().take(p.top_k).enumerate() {
            let (x, y) = lay.tile_origin(row, k + 1);
            let (x, y) = (x as i32, y as i32);
            let is_true = truth_id == Some(c.identity.as_str());
            if is_true {
                frame(root, (x, y), t, &GREEN, 4)?;
            }
            let style = if is_true {
                (FONT, f, FontStyle::Bold).into_font().color(&GREEN)
            } else {
                text.clone()
            };
            let id = fit_text(root, &format!("#{} {}", k + 1, c.identity), &style, max_w);
            root.draw(&Text::new(id, (x, cy), style))?;
            let score = if c.score.is_finite() {
                format!("score {:.4}", c.score)
            } else {
                format!("score {}", c.score)
            };
            root.draw(&Text::new(score, (x, line2), muted.clone()))?;
            if let Some(e) = failed_at(row, k + 1) {
                placeholder_text(root, (x, y), t, f, e)?;
            }
        }
        if q.candidates.is_empty() {
            let (x, y) = lay.tile_origin(row, 1);
            root.draw(&Text::new(
                "no matches",
                (x as i32 + 8, y as i32 + 8),
                muted.clone(),
            ))?;
        }
    }
    Ok(())
}

/// Draws `s` at `pos` and returns its width in pixels.
fn draw_run<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &str,
    pos: (i32, i32),
    style: &TextStyle<'_>,
) -> std::result::Result<i32, DrawingAreaErrorKind<DB::ErrorType>> {
    root.draw(&Text::new(s.to_string(), pos, style.clone()))?;
    Ok(root
        .estimate_text_size(s, style)
        .map_or(0, |(w, _)| w as i32))
}

/// A frame `width` pixels thick just inside the tile at `pos`.
fn frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    pos: (i32, i32),
    t: i32,
    colour: &RGBColor,
    width: i32,
) -> DrawResult<DB> {
    let (x, y) = pos;
    for (a, b) in [
        ((x, y), (x + t, y + width)),
        ((x, y + t - width), (x + t, y + t)),
        ((x, y), (x + width, y + t)),
        ((x + t - width, y), (x + t, y + t)),
    ] {
        root.draw(&Rectangle::new([a, b], colour.filled()))?;
    }
    Ok(())
}

/// The text of a placeholder tile: a heading and the error, wrapped.
fn placeholder_text<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    pos: (i32, i32),
    t: i32,
    f: f64,
    error: &str,
) -> DrawResult<DB> {
    let head = (FONT, f, FontStyle::Bold).into_font().color(&RED);
    let small_f = (f * 0.8).max(10.0);
    let small = (FONT, small_f).into_font().color(&INK);
    let (x, mut y) = (pos.0 + 8, pos.1 + 8);
    root.draw(&Text::new("image not shown", (x, y), head))?;
    y += (f * 1.6) as i32;
    let max_w = t - 16;
    let line_h = (small_f * 1.3) as i32;
    for line in wrap(root, error, &small, max_w) {
        if y + line_h > pos.1 + t - 4 {
            break;
        }
        root.draw(&Text::new(line, (x, y), small.clone()))?;
        y += line_h;
    }
    Ok(())
}

/// Greedy wrapping of `s` into lines at most `max_w` pixels wide, breaking
/// at spaces and slashes, and inside words longer than a line.
fn wrap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &str,
    style: &TextStyle<'_>,
    max_w: i32,
) -> Vec<String> {
    let width = |s: &str| {
        root.estimate_text_size(s, style)
            .map_or(0, |(w, _)| w as i32)
    };
    // Pieces ending after a space or a slash.
    let mut pieces = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        cur.push(c);
        if c == ' ' || c == '/' {
            pieces.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        pieces.push(cur);
    }
    let mut lines = Vec::new();
    let mut line = String::new();
    for piece in pieces {
        let candidate = format!("{line}{piece}");
        if width(candidate.trim_end()) <= max_w {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(line.trim_end().to_string());
            line = String::new();
        }
        // Split a piece longer than a line by characters.
        for c in piece.chars() {
            let mut next = line.clone();
            next.push(c);
            if width(next.trim_end()) > max_w && !line.is_empty() {
                lines.push(line.trim_end().to_string());
                line = c.to_string();
            } else {
                line = next;
            }
        }
    }
    if !line.trim().is_empty() {
        lines.push(line.trim_end().to_string());
    }
    lines
}
