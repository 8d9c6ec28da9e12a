//! Scatter plots of 2-D points (a t-SNE embedding, say) as PNG and SVG.
//!
//! Points are coloured by identity: the `top_identities` largest identities
//! (default 10) each get a distinct colour, every other identity is grey.
//! When known/new flags are given, known identities are circles and new
//! ones triangles; when right/wrong flags are given, right decisions are
//! filled and wrong ones hollow. A legend on the right names the colours and
//! the marker shapes.
//!
//! Text is drawn with the DejaVu Sans font embedded by the `dejavu` crate, so
//! no system font is needed. The PNG is rendered into an RGB buffer and
//! encoded with the `image` crate. Files are written atomically.
//!
//! ```
//! use ndarray::array;
//! use reid_eval::ParamGuard;
//! use reid_eval::plot::{ScatterParams, ScatterPlot};
//!
//! let points = array![[0.0, 0.0], [1.0, 1.0], [2.0, 0.5]];
//! let params = ScatterParams::new().title("t-SNE").width(600).height(400).check()?;
//! let plot = ScatterPlot::new(points.view(), &["a", "a", "b"], params)?
//!     .known(&[true, true, false])?;
//! let svg = plot.render_svg()?;
//! assert!(svg.contains("<svg"));
//! let dir = std::env::temp_dir();
//! let files = plot.write(dir.join("reid-eval-doc-scatter"))?;
//! assert!(files.png.exists() && files.svg.exists());
//! # Ok::<(), reid_eval::EvalError>(())
//! ```

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::RgbImage;
use ndarray::ArrayView2;
use plotters::chart::{ChartContext, MeshStyle};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind, FontTransform,
};
#[cfg(doc)]
use reid_core::ParamGuard;

use crate::error::{EvalError, Result};
use crate::io::{write_bytes_atomic, write_png_atomic};

/// The font family name under which the embedded DejaVu Sans is registered
/// with plotters (and which SVG viewers map to their own sans-serif font).
pub(crate) const FONT: &str = "sans-serif";

/// Registers DejaVu Sans (regular and bold) with plotters once per process.
pub(crate) fn ensure_font() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "DejaVu Sans regular is not a valid font".to_string())?;
        plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold())
            .map_err(|_| "DejaVu Sans bold is not a valid font".to_string())
    })
    .clone()
    .map_err(|reason| EvalError::Draw {
        what: "font".into(),
        reason,
    })
}

/// DejaVu Sans regular and bold for drawing text into bitmaps.
fn glyph_fonts() -> Option<&'static (FontRef<'static>, FontRef<'static>)> {
    static FONTS: OnceLock<Option<(FontRef<'static>, FontRef<'static>)>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let r = FontRef::try_from_slice(dejavu::sans::regular()).ok()?;
            let b = FontRef::try_from_slice(dejavu::sans::bold()).ok()?;
            Some((r, b))
        })
        .as_ref()
}

/// Where the baseline sits below the top of plotters' text box, as a
/// fraction of the font size: capitals then start at the top of the box
/// and the x-height is centred in it (DejaVu Sans: cap height 0.626 and
/// x-height 0.47 of the ab_glyph pixel scale).
const BASELINE: f32 = 0.63;

/// plotters' bitmap backend with its own text rasteriser: glyphs placed by
/// their bounding boxes on a common baseline, at sub-pixel advances with
/// kerning (plotters' ab_glyph text drops the side bearings and misplaces
/// small glyphs such as `.` and `_` by a few pixels). Everything else is
/// delegated.
pub(crate) struct GlyphBitmap<'a> {
    inner: BitMapBackend<'a>,
}

impl<'a> GlyphBitmap<'a> {
    /// Draws into an RGB buffer of `size` pixels.
    pub(crate) fn with_buffer(buf: &'a mut [u8], size: (u32, u32)) -> Self {
        GlyphBitmap {
            inner: BitMapBackend::with_buffer(buf, size),
        }
    }
}

type BitmapErr = DrawingErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>;

impl DrawingBackend for GlyphBitmap<'_> {
    type ErrorType = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> std::result::Result<(), BitmapErr> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> std::result::Result<(), BitmapErr> {
        self.inner.present()
    }
    fn draw_pixel(
        &mut self,
        p: BackendCoord,
        c: BackendColor,
    ) -> std::result::Result<(), BitmapErr> {
        self.inner.draw_pixel(p, c)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> std::result::Result<(), BitmapErr> {
        self.inner.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        ul: BackendCoord,
        br: BackendCoord,
        style: &S,
        fill: bool,
    ) -> std::result::Result<(), BitmapErr> {
        self.inner.draw_rect(ul, br, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> std::result::Result<(), BitmapErr> {
        self.inner.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> std::result::Result<(), BitmapErr> {
        self.inner.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> std::result::Result<(), BitmapErr> {
        self.inner.fill_polygon(vert, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> std::result::Result<(), BitmapErr> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> std::result::Result<(), BitmapErr> {
        let colour = style.color();
        if colour.alpha == 0.0 {
            return Ok(());
        }
        let fonts = match (style.transform(), glyph_fonts()) {
            (FontTransform::None, Some(f)) => f,
            _ => return self.inner.draw_text(text, style, pos),
        };
        let font = if matches!(style.style(), FontStyle::Bold) {
            &fonts.1
        } else {
            &fonts.0
        };
        let size = style.size() as f32;
        let scaled = font.as_scaled(PxScale::from(size));
        // The anchor against the box plotters lays text out with.
        let (w, h) = self.estimate_text_size(text, style)?;
        let (w, h) = (w as i32, h as i32);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -w,
            HPos::Center => -w / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -h / 2,
            VPos::Bottom => -h,
        };
        let baseline = (pos.1 + dy) as f32 + size * BASELINE;
        let mut x = (pos.0 + dx) as f32;
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                x += scaled.kern(p, id);
            }
            prev = Some(id);
            let glyph = id.with_scale_and_position(size, ab_glyph::point(x, baseline));
            x += scaled.h_advance(id);
            let Some(outline) = font.outline_glyph(glyph) else {
                continue;
            };
            let b = outline.px_bounds();
            let (x0, y0) = (b.min.x as i32, b.min.y as i32);
            let mut failed = None;
            outline.draw(|gx, gy, cov| {
                if failed.is_some() || cov <= 0.0 {
                    return;
                }
                let c = BackendColor {
                    alpha: colour.alpha * f64::from(cov.min(1.0)),
                    rgb: colour.rgb,
                };
                if let Err(e) = self.inner.draw_pixel((x0 + gx as i32, y0 + gy as i32), c) {
                    failed = Some(e);
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// The grey of identities outside the largest `top_identities`.
pub const OTHER_COLOUR: [u8; 3] = [175, 175, 175];

/// Distinct colours for the largest identities (Tableau 20 without its greys,
/// strong shades first); identities past its end get hues spaced by the
/// golden angle.
const PALETTE: [[u8; 3]; 18] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [188, 189, 34],
    [23, 190, 207],
    [0, 0, 0],
    [174, 199, 232],
    [255, 187, 120],
    [152, 223, 138],
    [255, 152, 150],
    [197, 176, 213],
    [196, 156, 148],
    [247, 182, 210],
    [219, 219, 141],
];

/// The colour of the identity of rank `rank` (0 = largest).
pub fn identity_colour(rank: usize) -> [u8; 3] {
    if let Some(c) = PALETTE.get(rank) {
        return *c;
    }
    // Golden-angle hues at fixed saturation and value.
    let h = ((rank - PALETTE.len()) as f64 * 137.507_764).rem_euclid(360.0) / 60.0;
    let (s, v) = (0.75, 0.8);
    let c = v * s;
    let x = c * (1.0 - (h.rem_euclid(2.0) - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    let q = |t: f64| ((t + m) * 255.0).round() as u8;
    [q(r), q(g), q(b)]
}

/// A picture drawn the same way into a bitmap (PNG) and an SVG: the scatter
/// plot here, the charts of [`crate::chart`].
pub(crate) trait Figure {
    /// What the drawing returns besides the picture.
    type Drawn;
    /// What it is, for errors ("scatter plot", "chart `CMC`").
    fn what(&self) -> String;
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws everything onto `root`.
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<Self::Drawn, String>;
}

/// A light grid with grey axes and labels of 3 significant digits, 6 on
/// each axis: the look every plot and chart here shares.
pub(crate) fn grid<'a, 'b, DB: DrawingBackend>(
    chart: &'b mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    label_size: f64,
) -> MeshStyle<'a, 'b, RangedCoordf64, RangedCoordf64, DB> {
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(RGBColor(246, 246, 246))
        .bold_line_style(RGBColor(224, 224, 224))
        .axis_style(RGBColor(120, 120, 120))
        .label_style((FONT, label_size))
        .y_labels(6)
        .x_label_formatter(&axis_label)
        .y_label_formatter(&axis_label);
    mesh
}

fn axis_label(v: &f64) -> String {
    crate::chart::significant(*v, 3)
}

/// Draws `fig` onto `root` and presents it; errors name `what`.
fn draw_and_present<F: Figure, DB: DrawingBackend>(
    fig: &F,
    root: &DrawingArea<DB, Shift>,
    what: &str,
) -> Result<F::Drawn> {
    let drawn = fig.draw(root).map_err(|reason| EvalError::Draw {
        what: what.to_string(),
        reason,
    })?;
    root.present().map_err(|e| EvalError::Draw {
        what: what.to_string(),
        reason: e.to_string(),
    })?;
    Ok(drawn)
}

/// Renders `fig` into an RGB image.
pub(crate) fn render_rgb<F: Figure>(fig: &F) -> Result<(RgbImage, F::Drawn)> {
    ensure_font()?;
    let (w, h) = fig.size();
    let what = format!("{} (PNG)", fig.what());
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    let drawn = {
        let root = GlyphBitmap::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw_and_present(fig, &root, &what)?
    };
    let image = RgbImage::from_raw(w, h, buf).ok_or_else(|| EvalError::Draw {
        what,
        reason: "pixel buffer has the wrong size".into(),
    })?;
    Ok((image, drawn))
}

/// Renders `fig` as an SVG document.
pub(crate) fn render_svg<F: Figure>(fig: &F) -> Result<String> {
    ensure_font()?;
    let what = format!("{} (SVG)", fig.what());
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, fig.size()).into_drawing_area();
        draw_and_present(fig, &root, &what)?;
    }
    Ok(s)
}

/// Writes `fig` as a PNG to `path` (atomically) and returns the path.
pub(crate) fn write_png<F: Figure>(fig: &F, path: &Path) -> Result<PathBuf> {
    let (image, _) = render_rgb(fig)?;
    write_png_atomic(&image, path)?;
    Ok(path.to_path_buf())
}

/// Writes `fig` as an SVG to `path` (atomically) and returns the path.
pub(crate) fn write_svg<F: Figure>(fig: &F, path: &Path) -> Result<PathBuf> {
    let svg = render_svg(fig)?;
    write_bytes_atomic(path, svg.as_bytes())?;
    Ok(path.to_path_buf())
}

/// Writes `<stem>.png` and `<stem>.svg`.
pub(crate) fn write_both<F: Figure>(fig: &F, stem: &Path) -> Result<PlotFiles> {
    let with = |ext: &str| {
        let mut s = OsString::from(stem.as_os_str());
        s.push(ext);
        PathBuf::from(s)
    };
    Ok(PlotFiles {
        png: write_png(fig, &with(".png"))?,
        svg: write_svg(fig, &with(".svg"))?,
    })
}

impl Figure for ScatterPlot {
    type Drawn = Vec<(i32, i32)>;
    fn what(&self) -> String {
        "scatter plot".into()
    }
    fn size(&self) -> (u32, u32) {
        (self.params.width, self.params.height)
    }
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<Self::Drawn, String> {
        self.draw_on(root)
    }
}

/// Settings of a scatter plot: a builder, checked once by
/// [`ParamGuard::check`] into the [`ValidScatterParams`] that
/// [`ScatterPlot::new`] takes.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterParams {
    title: String,
    width: u32,
    height: u32,
    top_identities: usize,
    point_radius: u32,
}

impl Default for ScatterParams {
    fn default() -> Self {
        ScatterParams {
            title: String::new(),
            width: 1000,
            height: 750,
            top_identities: 10,
            point_radius: 4,
        }
    }
}

impl ScatterParams {
    /// Defaults: no title, 1000 x 750 pixels, 10 coloured identities,
    /// point radius 4 pixels.
    pub fn new() -> Self {
        Self::default()
    }
    /// The title above the plot (empty: none).
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }
    reid_core::setters! {
        /// Image width in pixels (SVG user units), 200 to 10000; default 1000.
        width: u32,

        /// Image height in pixels (SVG user units), 200 to 10000; default 750.
        height: u32,

        /// How many of the largest identities get their own colour (0 to 1000);
        /// the rest are grey.
        top_identities: usize,

        /// Marker radius in pixels, 1 to 50.
        point_radius: u32,
    }
}

reid_core::param_guard!(ScatterParams => ValidScatterParams, EvalError, |p| {
    for (name, v) in [("width", p.width), ("height", p.height)] {
        if !(200..=10_000).contains(&v) {
            return Err(EvalError::InvalidParam {
                name,
                reason: format!("must be 200 to 10000 pixels, got {v}"),
            });
        }
    }
    if p.top_identities > 1000 {
        return Err(EvalError::InvalidParam {
            name: "top_identities",
            reason: format!("must be at most 1000, got {}", p.top_identities),
        });
    }
    if !(1..=50).contains(&p.point_radius) {
        return Err(EvalError::InvalidParam {
            name: "point_radius",
            reason: format!("must be 1 to 50 pixels, got {}", p.point_radius),
        });
    }
    Ok(())
});

/// [`ScatterParams`] that passed [`ParamGuard::check`]. Its `Default` is the
/// default [`ScatterParams`], checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidScatterParams(ScatterParams);

impl ValidScatterParams {
    /// The title (empty: none).
    pub fn title(&self) -> &str {
        &self.0.title
    }
    reid_core::getters! {
        /// Image width in pixels.
        width: u32,
        /// Image height in pixels.
        height: u32,
        /// How many of the largest identities get their own colour.
        top_identities: usize,
        /// Marker radius in pixels.
        point_radius: u32,
    }
}

/// One legend entry: an identity (or the grey rest) and its colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegendEntry {
    /// The identity, or `k other identities` for the grey rest.
    pub label: String,
    /// Its colour.
    pub colour: [u8; 3],
    /// How many points it has.
    pub count: usize,
}

/// A rendered PNG-ready image and where each point landed on it.
#[derive(Debug, Clone)]
pub struct RenderedScatter {
    /// The picture.
    pub image: RgbImage,
    /// Pixel position (x, y) of the centre of each point, in input order.
    pub positions: Vec<(i32, i32)>,
}

/// The files of a picture written as PNG and SVG ([`ScatterPlot::write`],
/// [`crate::chart::Chart::write`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "report", derive(serde::Serialize, serde::Deserialize))]
pub struct PlotFiles {
    /// The PNG.
    pub png: PathBuf,
    /// The SVG.
    pub svg: PathBuf,
}

/// The files written by [`ScatterPlot::write`] (another name for
/// [`PlotFiles`]).
pub type ScatterFiles = PlotFiles;

/// A checked scatter plot: points, labels and flags of equal length, all
/// coordinates finite, settings in range.
#[derive(Debug, Clone)]
pub struct ScatterPlot {
    params: ScatterParams,
    points: Vec<(f64, f64)>,
    labels: Vec<String>,
    known: Option<Vec<bool>>,
    correct: Option<Vec<bool>>,
    /// Colour rank of each point (`None`: grey).
    rank: Vec<Option<usize>>,
    legend: Vec<LegendEntry>,
}

impl ScatterPlot {
    /// Checks the points (`n x 2`, finite) and that there is one identity
    /// label per point; the settings were checked by [`ParamGuard::check`].
    pub fn new<S: ToString>(
        points: ArrayView2<'_, f64>,
        labels: &[S],
        params: ValidScatterParams,
    ) -> Result<Self> {
        let ValidScatterParams(params) = params;
        if points.ncols() != 2 {
            return Err(EvalError::Shape {
                expected: "n x 2 points".into(),
                got: format!("{} x {}", points.nrows(), points.ncols()),
            });
        }
        let n = points.nrows();
        if labels.len() != n {
            return Err(EvalError::LengthMismatch {
                name: "labels",
                expected: n,
                got: labels.len(),
            });
        }
        let mut pts = Vec::with_capacity(n);
        for (row, p) in points.outer_iter().enumerate() {
            for &v in [p[0], p[1]].iter() {
                if !v.is_finite() {
                    return Err(EvalError::NonFinite {
                        name: "points",
                        row,
                        value: v,
                    });
                }
            }
            pts.push((p[0], p[1]));
        }
        let labels: Vec<String> = labels.iter().map(ToString::to_string).collect();

        // Identities by size, largest first, ties by name.
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for l in &labels {
            *counts.entry(l.as_str()).or_default() += 1;
        }
        let mut by_size: Vec<(&str, usize)> = counts.into_iter().collect();
        by_size.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let top = params.top_identities.min(by_size.len());
        let rank_of: HashMap<&str, usize> = by_size[..top]
            .iter()
            .enumerate()
            .map(|(i, (l, _))| (*l, i))
            .collect();
        let mut legend: Vec<LegendEntry> = by_size[..top]
            .iter()
            .enumerate()
            .map(|(i, (l, c))| LegendEntry {
                label: (*l).to_string(),
                colour: identity_colour(i),
                count: *c,
            })
            .collect();
        let rest = &by_size[top..];
        if !rest.is_empty() {
            legend.push(LegendEntry {
                label: format!(
                    "{} other identit{}",
                    rest.len(),
                    if rest.len() == 1 { "y" } else { "ies" }
                ),
                colour: OTHER_COLOUR,
                count: rest.iter().map(|r| r.1).sum(),
            });
        }
        let rank = labels
            .iter()
            .map(|l| rank_of.get(l.as_str()).copied())
            .collect();
        Ok(ScatterPlot {
            params,
            points: pts,
            labels,
            known: None,
            correct: None,
            rank,
            legend,
        })
    }

    /// Adds per-point known (true: the identity is in the database, drawn as
    /// a circle) / new (false: a triangle) flags.
    pub fn known(mut self, known: &[bool]) -> Result<Self> {
        self.check_len("known", known.len())?;
        self.known = Some(known.to_vec());
        Ok(self)
    }

    /// Adds per-point right (true: filled marker) / wrong (false: hollow
    /// marker) decision flags.
    pub fn correct(mut self, correct: &[bool]) -> Result<Self> {
        self.check_len("correct", correct.len())?;
        self.correct = Some(correct.to_vec());
        Ok(self)
    }

    fn check_len(&self, name: &'static str, got: usize) -> Result<()> {
        if got != self.points.len() {
            return Err(EvalError::LengthMismatch {
                name,
                expected: self.points.len(),
                got,
            });
        }
        Ok(())
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The identity colours, largest identity first, then the grey rest (if
    /// any).
    pub fn legend(&self) -> &[LegendEntry] {
        &self.legend
    }

    /// The colour point `row` is drawn in, `None` when out of range.
    pub fn colour_of(&self, row: usize) -> Option<[u8; 3]> {
        self.rank
            .get(row)
            .map(|r| r.map_or(OTHER_COLOUR, identity_colour))
    }

    /// The identity label of point `row`.
    pub fn label_of(&self, row: usize) -> Option<&str> {
        self.labels.get(row).map(String::as_str)
    }

    /// Renders the plot into an RGB image (what [`write_png`](Self::write_png)
    /// encodes), with the pixel position of every point.
    pub fn render_rgb(&self) -> Result<RenderedScatter> {
        let (image, positions) = render_rgb(self)?;
        Ok(RenderedScatter { image, positions })
    }

    /// Renders the plot as an SVG document.
    pub fn render_svg(&self) -> Result<String> {
        render_svg(self)
    }

    /// Writes the plot as a PNG to `path` (atomically) and returns the path.
    pub fn write_png(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        write_png(self, path.as_ref())
    }

    /// Writes the plot as an SVG to `path` (atomically) and returns the path.
    pub fn write_svg(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        write_svg(self, path.as_ref())
    }

    /// Writes `<stem>.png` and `<stem>.svg` and returns both paths.
    pub fn write(&self, stem: impl AsRef<Path>) -> Result<ScatterFiles> {
        write_both(self, stem.as_ref())
    }

    /// Data range with a 5 % margin (a unit range around a single value).
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let axis = |f: fn(&(f64, f64)) -> f64| {
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for p in &self.points {
                lo = lo.min(f(p));
                hi = hi.max(f(p));
            }
            if !lo.is_finite() {
                return (-1.0, 1.0);
            }
            let span = hi - lo;
            if span <= f64::EPSILON * lo.abs().max(1.0) {
                (lo - 1.0, hi + 1.0)
            } else {
                (lo - 0.05 * span, hi + 0.05 * span)
            }
        };
        (axis(|p| p.0), axis(|p| p.1))
    }

    /// Draws everything onto `root`; returns the pixel position of each point.
    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<Vec<(i32, i32)>, String> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let (w, h) = (self.params.width, self.params.height);
        let legend_w = (w as f64 * 0.24).clamp(150.0, 320.0) as u32;
        let (plot_area, legend_area) = root.split_horizontally(w - legend_w);

        let title_size = (h as f64 / 28.0).clamp(14.0, 30.0);
        let label_size = (h as f64 / 50.0).clamp(10.0, 16.0);
        let ((x0, x1), (y0, y1)) = self.ranges();
        let mut builder = ChartBuilder::on(&plot_area);
        builder
            .margin(12)
            .x_label_area_size((label_size * 2.2) as u32)
            .y_label_area_size((label_size * 4.0) as u32);
        if !self.params.title.is_empty() {
            builder.caption(
                &self.params.title,
                (FONT, title_size, FontStyle::Bold).into_font(),
            );
        }
        let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?;
        grid(&mut chart, label_size)
            .x_labels(6)
            .draw()
            .map_err(err)?;

        // Grey points first, then the coloured ones, the largest identity on top.
        let positions: Vec<(i32, i32)> =
            self.points.iter().map(|p| chart.backend_coord(p)).collect();
        let mut order: Vec<usize> = (0..self.points.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.rank[i].map_or(usize::MAX, |r| r)));
        let r = self.params.point_radius as i32;
        for &i in &order {
            let [cr, cg, cb] = self.colour_of(i).unwrap_or(OTHER_COLOUR);
            let shape = if self.known.as_ref().is_none_or(|k| k[i]) {
                Shape::Circle
            } else {
                Shape::Triangle
            };
            let hollow = self.correct.as_ref().is_some_and(|c| !c[i]);
            draw_marker(root, positions[i], shape, r, RGBColor(cr, cg, cb), hollow).map_err(err)?;
        }

        self.draw_legend(&legend_area, label_size).map_err(err)?;
        Ok(positions)
    }

    fn draw_legend<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        label_size: f64,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let (aw, ah) = area.dim_in_pixel();
        let mut keys: Vec<(Marker, String)> = Vec::new();
        if self.known.is_some() {
            keys.push((Marker::Circle, "known identity".into()));
            keys.push((Marker::Triangle, "new identity".into()));
        }
        if self.correct.is_some() {
            keys.push((Marker::Filled, "right decision".into()));
            keys.push((Marker::Hollow, "wrong decision".into()));
        }
        let lines = 1 + self.legend.len() + if keys.is_empty() { 0 } else { 2 + keys.len() };
        let top = 40.0;
        let line_h = ((ah as f64 - top - 10.0) / lines as f64).clamp(8.0, label_size * 1.6);
        let font_size = (line_h / 1.45).min(label_size);
        let black = RGBColor(30, 30, 30);
        let text_style = (FONT, font_size).into_font().color(&black);
        let head_style = (FONT, font_size, FontStyle::Bold).into_font().color(&black);
        let sw = (font_size * 0.9) as i32;
        let x_text = 8 + sw + 8;
        let max_text_w = aw as i32 - x_text - 6;
        let mut y = top;
        let n_ids = self
            .labels
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len();
        area.draw(&Text::new(
            format!("identities ({n_ids})"),
            (8, y as i32),
            head_style.clone(),
        ))?;
        y += line_h;
        for e in &self.legend {
            let [r, g, b] = e.colour;
            let yi = y as i32;
            area.draw(&Rectangle::new(
                [(8, yi), (8 + sw, yi + sw)],
                RGBColor(r, g, b).filled(),
            ))?;
            let label = fit_text(
                area,
                &format!("{} ({})", e.label, e.count),
                &text_style,
                max_text_w,
            );
            area.draw(&Text::new(label, (x_text, yi), text_style.clone()))?;
            y += line_h;
        }
        if !keys.is_empty() {
            y += line_h;
            area.draw(&Text::new("markers", (8, y as i32), head_style.clone()))?;
            y += line_h;
            let grey = RGBColor(90, 90, 90);
            let rad = (sw / 2).max(2);
            for (m, text) in keys {
                let yi = y as i32;
                let c = (8 + sw / 2, yi + sw / 2);
                match m {
                    Marker::Circle | Marker::Filled => {
                        draw_marker(area, c, Shape::Circle, rad, grey, false)?
                    }
                    Marker::Triangle => draw_marker(area, c, Shape::Triangle, rad, grey, false)?,
                    Marker::Hollow => draw_marker(area, c, Shape::Circle, rad, grey, true)?,
                }
                area.draw(&Text::new(text, (x_text, yi), text_style.clone()))?;
                y += line_h;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Shape {
    Circle,
    Triangle,
}

/// Draws a marker of "radius" `r` centred at `c` (pixels). A hollow marker
/// is a filled one with a white inside (clean rings at any size, where
/// stroked outlines come out dotted in the bitmap backend).
fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    c: (i32, i32),
    shape: Shape,
    r: i32,
    colour: RGBColor,
    hollow: bool,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let ring = (r / 3).max(2);
    match shape {
        Shape::Circle => {
            area.draw(&Circle::new(c, r, colour.filled()))?;
            if hollow {
                area.draw(&Circle::new(c, (r - ring).max(1), WHITE.filled()))?;
            }
        }
        Shape::Triangle => {
            // Same area as the circle: circumradius r * 1.55.
            let big = (f64::from(r) * 1.55).round() as i32;
            area.draw(&TriangleMarker::new(c, big, colour.filled()))?;
            if hollow {
                // The inradius is half the circumradius.
                let small = (big - 2 * ring).max(1);
                area.draw(&TriangleMarker::new(c, small, WHITE.filled()))?;
            }
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Marker {
    Circle,
    Triangle,
    Filled,
    Hollow,
}

/// `text`, shortened with an ellipsis until it is at most `max_w` pixels wide.
pub(crate) fn fit_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle<'_>,
    max_w: i32,
) -> String {
    let width = |s: &str| {
        area.estimate_text_size(s, style)
            .map_or(0, |(w, _)| w as i32)
    };
    if width(text) <= max_w {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut n = chars.len();
    while n > 0 {
        n -= 1;
        let s: String = chars[..n].iter().collect::<String>() + "…";
        if width(&s) <= max_w {
            return s;
        }
    }
    "…".to_string()
}
