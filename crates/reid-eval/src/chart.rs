//! Charts for reports: lines (a CMC curve, a self-calibration curve with its
//! spread, a reliability diagram) and histograms (the decision scores of known
//! and of new queries), with vertical rules (thresholds), drawn as PNG and
//! SVG; and the figures they show, computed here so that a test can check
//! them: [`Histogram`] (bins placed so that a threshold is a bin edge, so the
//! counts on each side of it are exact) and [`Reliability`] (the bins of a
//! reliability diagram and the expected calibration error).
//!
//! A [`Chart`] keeps its data as plain values (it serialises with the
//! `report` feature), so a report can keep the numbers at full precision
//! beside the picture.
//!
//! ```
//! use reid_eval::chart::{Bars, Chart, Histogram, Line, Reliability, Rule};
//!
//! // Known queries score high, new ones low; the threshold 0.5 is a bin edge.
//! let known = Histogram::aligned(&[0.55, 0.7, 0.8, 0.45], 0.5, 0.1)?;
//! assert_eq!(known.count_at_least(0.5), 3);
//! let new = Histogram::aligned(&[0.2, 0.3, 0.52], 0.5, 0.1)?;
//! let chart = Chart::new("Decision scores", "best score", "queries")
//!     .bars(Bars::new("known", known))
//!     .bars(Bars::new("new", new))
//!     .rule(Rule::new("threshold", 0.5));
//! assert!(chart.render_svg()?.contains("<svg"));
//!
//! let r = Reliability::new(&[0.05, 0.15, 0.15, 0.95], &[false, true, false, true], 10)?;
//! assert!((r.ece - 0.2).abs() < 1e-12);
//! let diagram = Chart::new("Reliability", "predicted", "observed")
//!     .diagonal()
//!     .line(Line::new("fused", r.points()).markers(true));
//! let files = diagram.write(std::env::temp_dir().join("reid-eval-doc-reliability"))?;
//! assert!(files.png.exists() && files.svg.exists());
//! # Ok::<(), reid_eval::EvalError>(())
//! ```

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{EvalError, Result};
use crate::plot::{FONT, Figure, PlotFiles, grid, identity_colour, render_svg, write_both};

/// Counts of values in bins of one width, placed so that an anchor (a
/// threshold) is a bin edge: a value `v` falls in the bin `[lo + k w, lo +
/// (k + 1) w)` with `k = floor((v - anchor) / w) - floor((lo - anchor) /
/// w)`, so every value `>= anchor` is counted at or after the anchor's bin
/// and every value below it before. Non-finite values are not binned but
/// counted in [`Histogram::non_finite`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "report", derive(serde::Serialize, serde::Deserialize))]
pub struct Histogram {
    /// The left edge of the first bin.
    pub lo: f64,
    /// The bin width.
    pub width: f64,
    /// The count of each bin.
    pub counts: Vec<usize>,
    /// The anchor: an edge of the bins.
    pub anchor: f64,
    /// Values left out because they were NaN or infinite.
    pub non_finite: usize,
}

/// At most this many bins in a [`Histogram`].
pub const MAX_BINS: usize = 10_000;

impl Histogram {
    /// Bins `values` with bins of `width` having `anchor` as an edge, from
    /// the bin of the smallest finite value (or the anchor, if smaller) to
    /// that of the largest (or the anchor's). Fails when `anchor` or
    /// `width` is not finite, `width <= 0`, or more than [`MAX_BINS`] bins
    /// would be needed.
    pub fn aligned(values: &[f64], anchor: f64, width: f64) -> Result<Self> {
        if !anchor.is_finite() {
            return Err(EvalError::InvalidParam {
                name: "anchor",
                reason: format!("must be finite, got {anchor}"),
            });
        }
        if !(width.is_finite() && width > 0.0) {
            return Err(EvalError::InvalidParam {
                name: "width",
                reason: format!("must be finite and > 0, got {width}"),
            });
        }
        let bin = |v: f64| -> f64 {
            let d = v - anchor;
            let k = (d / width).floor();
            // A tiny negative distance must not round into the anchor's bin.
            if d < 0.0 && k >= 0.0 { -1.0 } else { k }
        };
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let (mut first, mut last) = (0.0f64, 0.0f64);
        for &v in &finite {
            let k = bin(v);
            first = first.min(k);
            last = last.max(k);
        }
        let n = last - first + 1.0;
        if n > MAX_BINS as f64 {
            return Err(EvalError::InvalidParam {
                name: "width",
                reason: format!(
                    "{width} needs {n} bins to cover the values and the anchor {anchor}, more than {MAX_BINS}"
                ),
            });
        }
        let mut counts = vec![0usize; n as usize];
        for &v in &finite {
            counts[(bin(v) - first) as usize] += 1;
        }
        Ok(Histogram {
            lo: anchor + first * width,
            width,
            counts,
            anchor,
            non_finite: values.len() - finite.len(),
        })
    }

    /// The bin edges (one more than bins).
    pub fn edges(&self) -> Vec<f64> {
        (0..=self.counts.len())
            .map(|k| self.lo + k as f64 * self.width)
            .collect()
    }

    /// The values binned (non-finite ones left out).
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// The values binned at or above `edge`, which must be a bin edge (the
    /// anchor, say): the exact count of values `>= anchor` when `edge` is
    /// the anchor. An `edge` between edges counts from the next edge up.
    pub fn count_at_least(&self, edge: f64) -> usize {
        let k = ((edge - self.lo) / self.width).round().max(0.0) as usize;
        self.counts.iter().skip(k).sum()
    }

    /// The highest count (0 when empty).
    pub fn max_count(&self) -> usize {
        self.counts.iter().copied().max().unwrap_or(0)
    }
}

/// One non-empty bin of a [`Reliability`] diagram.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "report", derive(serde::Serialize, serde::Deserialize))]
pub struct ReliabilityBin {
    /// Its left edge.
    pub lo: f64,
    /// Its right edge.
    pub hi: f64,
    /// Predictions in it.
    pub count: usize,
    /// Their mean predicted probability.
    pub mean_probability: f64,
    /// The fraction of them that came true.
    pub frequency: f64,
}

/// A reliability diagram: predicted probabilities in equal-width bins over
/// `[0, 1]` (1.0 in the last bin), each bin's mean prediction against how
/// often the predictions came true; and the expected calibration error, the
/// sum over bins of `count / n * |frequency - mean probability|`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "report", derive(serde::Serialize, serde::Deserialize))]
pub struct Reliability {
    /// The non-empty bins, in order.
    pub bins: Vec<ReliabilityBin>,
    /// The number of bins over `[0, 1]`.
    pub bin_count: usize,
    /// The predictions.
    pub samples: usize,
    /// Expected calibration error.
    pub ece: f64,
}

impl Reliability {
    /// The diagram of `probabilities` (each in `[0, 1]`) and whether each
    /// came true, in `bins` bins. Fails, naming the position, on a value
    /// outside `[0, 1]` or NaN, on lengths that differ, on no samples or
    /// on 0 bins.
    pub fn new(probabilities: &[f64], outcomes: &[bool], bins: usize) -> Result<Self> {
        if probabilities.len() != outcomes.len() {
            return Err(EvalError::LengthMismatch {
                name: "outcomes",
                expected: probabilities.len(),
                got: outcomes.len(),
            });
        }
        if probabilities.is_empty() {
            return Err(EvalError::InvalidParam {
                name: "probabilities",
                reason: "no predictions".into(),
            });
        }
        if bins == 0 {
            return Err(EvalError::InvalidParam {
                name: "bins",
                reason: "must be at least 1".into(),
            });
        }
        if let Some(i) = probabilities.iter().position(|p| !(0.0..=1.0).contains(p)) {
            return Err(EvalError::InvalidParam {
                name: "probabilities",
                reason: format!(
                    "value {} at position {i} is not a probability in [0, 1]",
                    probabilities[i]
                ),
            });
        }
        let mut acc = vec![(0usize, 0.0f64, 0usize); bins];
        for (&p, &o) in probabilities.iter().zip(outcomes) {
            let b = ((p * bins as f64) as usize).min(bins - 1);
            acc[b].0 += 1;
            acc[b].1 += p;
            acc[b].2 += usize::from(o);
        }
        let n = probabilities.len() as f64;
        let mut out = Vec::new();
        let mut ece = 0.0;
        for (b, &(count, sum, hits)) in acc.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let mean_probability = sum / count as f64;
            let frequency = hits as f64 / count as f64;
            ece += count as f64 / n * (frequency - mean_probability).abs();
            out.push(ReliabilityBin {
                lo: b as f64 / bins as f64,
                hi: (b + 1) as f64 / bins as f64,
                count,
                mean_probability,
                frequency,
            });
        }
        Ok(Reliability {
            bins: out,
            bin_count: bins,
            samples: probabilities.len(),
            ece,
        })
    }

    /// `(mean probability, frequency)` of each non-empty bin: the points of
    /// the diagram.
    pub fn points(&self) -> Vec<(f64, f64)> {
        self.bins
            .iter()
            .map(|b| (b.mean_probability, b.frequency))
            .collect()
    }
}

/// A named line of a [`Chart`], with an optional band around it (a spread)
/// and optional point markers.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "report", derive(serde::Serialize, serde::Deserialize))]
pub struct Line {
    /// Its name in the legend.
    pub name: String,
    /// Its points, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// `(low, high)` at each point: a shaded band.
    pub band: Option<Vec<(f64, f64)>>,
    /// Draw a marker at each point.
    pub markers: bool,
}

impl Line {
    /// A line through `points`.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Line {
            name: name.into(),
            points,
            band: None,
            markers: false,
        }
    }
    /// A shaded band from `low` to `high` at each point.
    #[must_use]
    pub fn band(mut self, band: Vec<(f64, f64)>) -> Self {
        self.band = Some(band);
        self
    }
    /// Markers at the points.
    #[must_use]
    pub fn markers(mut self, on: bool) -> Self {
        self.markers = on;
        self
    }
}

/// A named histogram of a [`Chart`], drawn as translucent bars.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "report", derive(serde::Serialize, serde::Deserialize))]
pub struct Bars {
    /// Its name in the legend.
    pub name: String,
    /// The counts.
    pub histogram: Histogram,
}

impl Bars {
    /// Bars of `histogram`.
    pub fn new(name: impl Into<String>, histogram: Histogram) -> Self {
        Bars {
            name: name.into(),
            histogram,
        }
    }
}

/// A vertical line across a [`Chart`] at `x` (a threshold).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "report", derive(serde::Serialize, serde::Deserialize))]
pub struct Rule {
    /// Its name in the legend.
    pub name: String,
    /// Where.
    pub x: f64,
    /// Drawn dashed.
    pub dashed: bool,
}

impl Rule {
    /// A solid rule at `x`.
    pub fn new(name: impl Into<String>, x: f64) -> Self {
        Rule {
            name: name.into(),
            x,
            dashed: false,
        }
    }
    /// Drawn dashed.
    #[must_use]
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
}

/// Where a [`Chart`]'s legend sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "report", derive(serde::Serialize, serde::Deserialize))]
pub enum Corner {
    /// The top corner that the data leave emptier ([`Chart::legend_corner`]).
    #[default]
    Auto,
    /// Top left.
    UpperLeft,
    /// Top right.
    UpperRight,
    /// Bottom left.
    LowerLeft,
    /// Bottom right.
    LowerRight,
}

/// A chart: histograms drawn as bars, then bands, lines, the diagonal
/// `y = x` if asked, and vertical rules, with a title, axis names, a grid
/// and a legend. Ranges default to the data (bars from 0). Colours follow
/// the order of the series: bars, then lines, take the identity palette of
/// [`crate::plot::identity_colour`]; rules are red, then dark grey, then
/// purple.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "report", derive(serde::Serialize, serde::Deserialize))]
pub struct Chart {
    /// The title.
    pub title: String,
    /// The x axis name.
    pub x_label: String,
    /// The y axis name.
    pub y_label: String,
    /// Width in pixels (200 to 10000).
    pub width: u32,
    /// Height in pixels (200 to 10000).
    pub height: u32,
    /// The x range shown (default: the data's, with a margin).
    pub x_range: Option<(f64, f64)>,
    /// The y range shown (default: the data's, with a margin).
    pub y_range: Option<(f64, f64)>,
    /// Histograms.
    pub bars: Vec<Bars>,
    /// Lines.
    pub lines: Vec<Line>,
    /// Vertical rules.
    pub rules: Vec<Rule>,
    /// Draw the diagonal `y = x` (a reliability diagram's ideal).
    pub diagonal: bool,
    /// Where the legend sits.
    pub legend: Corner,
}

const RULE_COLOURS: [[u8; 3]; 3] = [[214, 39, 40], [70, 70, 70], [148, 103, 189]];

impl Chart {
    /// An empty chart, 900 x 500 pixels.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Chart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            width: 900,
            height: 500,
            x_range: None,
            y_range: None,
            bars: Vec::new(),
            lines: Vec::new(),
            rules: Vec::new(),
            diagonal: false,
            legend: Corner::default(),
        }
    }
    /// Adds a histogram.
    #[must_use]
    pub fn bars(mut self, bars: Bars) -> Self {
        self.bars.push(bars);
        self
    }
    /// Adds a line.
    #[must_use]
    pub fn line(mut self, line: Line) -> Self {
        self.lines.push(line);
        self
    }
    /// Adds a vertical rule.
    #[must_use]
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }
    /// Draws the diagonal `y = x`.
    #[must_use]
    pub fn diagonal(mut self) -> Self {
        self.diagonal = true;
        self
    }
    /// Shows `lo..hi` on the x axis.
    #[must_use]
    pub fn x_range(mut self, lo: f64, hi: f64) -> Self {
        self.x_range = Some((lo, hi));
        self
    }
    /// Shows `lo..hi` on the y axis.
    #[must_use]
    pub fn y_range(mut self, lo: f64, hi: f64) -> Self {
        self.y_range = Some((lo, hi));
        self
    }
    /// The size in pixels.
    #[must_use]
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }
    /// Puts the legend in `corner` (default [`Corner::Auto`]).
    #[must_use]
    pub fn legend(mut self, corner: Corner) -> Self {
        self.legend = corner;
        self
    }

    /// Checks the chart: size in range, every coordinate finite, a band
    /// point per line point, ranges with `lo < hi`.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if !(200..=10_000).contains(&v) {
                return Err(EvalError::InvalidParam {
                    name,
                    reason: format!("must be 200 to 10000 pixels, got {v}"),
                });
            }
        }
        for (name, r) in [("x_range", self.x_range), ("y_range", self.y_range)] {
            if let Some((lo, hi)) = r
                && !(lo.is_finite() && hi.is_finite() && lo < hi)
            {
                return Err(EvalError::InvalidParam {
                    name,
                    reason: format!("must be finite with lo < hi, got {lo}..{hi}"),
                });
            }
        }
        for l in &self.lines {
            if let Some(row) = l
                .points
                .iter()
                .position(|p| !(p.0.is_finite() && p.1.is_finite()))
            {
                return Err(EvalError::NonFinite {
                    name: "line points",
                    row,
                    value: if l.points[row].0.is_finite() {
                        l.points[row].1
                    } else {
                        l.points[row].0
                    },
                });
            }
            if let Some(band) = &l.band {
                if band.len() != l.points.len() {
                    return Err(EvalError::LengthMismatch {
                        name: "band",
                        expected: l.points.len(),
                        got: band.len(),
                    });
                }
                if let Some(row) = band
                    .iter()
                    .position(|p| !(p.0.is_finite() && p.1.is_finite()))
                {
                    return Err(EvalError::NonFinite {
                        name: "band",
                        row,
                        value: band[row].0 + band[row].1,
                    });
                }
            }
        }
        if let Some(row) = self.rules.iter().position(|r| !r.x.is_finite()) {
            return Err(EvalError::NonFinite {
                name: "rules",
                row,
                value: self.rules[row].x,
            });
        }
        Ok(())
    }

    /// Renders the chart as an SVG document.
    pub fn render_svg(&self) -> Result<String> {
        self.validate()?;
        render_svg(self)
    }

    /// Writes `<stem>.png` and `<stem>.svg` (atomically) and returns both
    /// paths.
    pub fn write(&self, stem: impl AsRef<Path>) -> Result<PlotFiles> {
        self.validate()?;
        write_both(self, stem.as_ref())
    }

    /// Where the legend goes: the corner set, or for [`Corner::Auto`] the
    /// upper corner whose quarter of the plot holds fewer bar tops and line
    /// points (the upper right on a tie).
    pub fn legend_corner(&self) -> Corner {
        if self.legend != Corner::Auto {
            return self.legend;
        }
        let ((x0, x1), (y0, y1)) = self.ranges();
        let (xm, ym) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        let mut marks: Vec<(f64, f64)> = Vec::new();
        for b in &self.bars {
            let e = b.histogram.edges();
            for (k, &n) in b.histogram.counts.iter().enumerate() {
                if n > 0 {
                    marks.push(((e[k] + e[k + 1]) / 2.0, n as f64));
                }
            }
        }
        for l in &self.lines {
            marks.extend(l.points.iter().copied());
        }
        let upper = |left: bool| {
            marks
                .iter()
                .filter(|&&(x, y)| y >= ym && ((x < xm) == left))
                .count()
        };
        if upper(true) < upper(false) {
            Corner::UpperLeft
        } else {
            Corner::UpperRight
        }
    }

    /// The ranges shown: the ones set, else the data's with a 4 % margin
    /// (bars from 0; a unit range around a single value).
    pub fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for b in &self.bars {
            let e = b.histogram.edges();
            xs.extend([e[0], e[e.len() - 1]]);
            ys.extend([0.0, b.histogram.max_count() as f64]);
        }
        for l in &self.lines {
            for (i, &(x, y)) in l.points.iter().enumerate() {
                xs.push(x);
                ys.push(y);
                if let Some(b) = l.band.as_ref().and_then(|b| b.get(i)) {
                    ys.extend([b.0, b.1]);
                }
            }
        }
        xs.extend(self.rules.iter().map(|r| r.x));
        if self.diagonal {
            xs.extend([0.0, 1.0]);
            ys.extend([0.0, 1.0]);
        }
        let span = |v: &[f64], floor_zero: bool| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if !(lo.is_finite() && hi.is_finite()) {
                return (0.0, 1.0);
            }
            if hi - lo <= f64::EPSILON * lo.abs().max(1.0) {
                return (lo - 0.5, hi + 0.5);
            }
            let m = 0.04 * (hi - lo);
            let lo = if floor_zero && lo >= 0.0 { lo } else { lo - m };
            (lo, hi + m)
        };
        let x = self.x_range.unwrap_or_else(|| span(&xs, false));
        let y = self
            .y_range
            .unwrap_or_else(|| span(&ys, !self.bars.is_empty()));
        (x, y)
    }
}

fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

impl Figure for Chart {
    type Drawn = ();

    fn what(&self) -> String {
        format!("chart `{}`", self.title)
    }

    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let h = f64::from(self.height);
        let title_size = (h / 24.0).clamp(14.0, 26.0);
        let label_size = (h / 36.0).clamp(11.0, 16.0);
        let ((x0, x1), (y0, y1)) = self.ranges();
        let mut builder = ChartBuilder::on(root);
        builder
            .margin(14)
            .x_label_area_size((label_size * 3.4) as u32)
            .y_label_area_size((label_size * 5.0) as u32);
        if !self.title.is_empty() {
            builder.caption(&self.title, (FONT, title_size, FontStyle::Bold).into_font());
        }
        let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?;
        grid(&mut chart, label_size)
            .axis_desc_style((FONT, label_size * 1.1))
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .x_labels(8)
            .draw()
            .map_err(err)?;

        let mut colour_index = 0usize;
        for b in &self.bars {
            let c = rgb(identity_colour(colour_index));
            colour_index += 1;
            let hist = &b.histogram;
            let edges = hist.edges();
            let boxes: Vec<[(f64, f64); 2]> = hist
                .counts
                .iter()
                .enumerate()
                .filter(|&(_, &n)| n > 0)
                .map(|(k, &n)| [(edges[k], 0.0), (edges[k + 1], n as f64)])
                .collect();
            let fill = c.mix(0.45).filled();
            let rects = boxes.iter().map(|&b| Rectangle::new(b, fill));
            let outline = boxes.iter().map(|&b| Rectangle::new(b, c.stroke_width(1)));
            chart
                .draw_series(rects)
                .map_err(err)?
                .label(format!("{} ({})", b.name, hist.total()))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.mix(0.6).filled())
                });
            chart.draw_series(outline).map_err(err)?;
        }
        for l in &self.lines {
            let c = rgb(identity_colour(colour_index));
            colour_index += 1;
            if let Some(band) = &l.band {
                let mut poly: Vec<(f64, f64)> =
                    l.points.iter().zip(band).map(|(p, b)| (p.0, b.1)).collect();
                poly.extend(l.points.iter().zip(band).rev().map(|(p, b)| (p.0, b.0)));
                chart
                    .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18).filled())))
                    .map_err(err)?;
            }
            chart
                .draw_series(LineSeries::new(l.points.iter().copied(), c.stroke_width(2)))
                .map_err(err)?
                .label(l.name.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
            if l.markers {
                chart
                    .draw_series(l.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                    .map_err(err)?;
            }
        }
        if self.diagonal {
            let grey = RGBColor(150, 150, 150);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, 0.0), (1.0, 1.0)],
                    6,
                    5,
                    grey.stroke_width(1),
                ))
                .map_err(err)?
                .label("perfectly calibrated")
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], grey.stroke_width(1))
                });
        }
        for (i, r) in self.rules.iter().enumerate() {
            let c = rgb(RULE_COLOURS[i % RULE_COLOURS.len()]);
            let style = c.stroke_width(2);
            let pts = vec![(r.x, y0), (r.x, y1)];
            let anno = if r.dashed {
                chart.draw_series(DashedLineSeries::new(pts, 8, 6, style))
            } else {
                chart.draw_series(LineSeries::new(pts, style))
            };
            anno.map_err(err)?
                .label(format!("{} = {}", r.name, significant(r.x, 3)))
                .legend(move |(x, y)| PathElement::new([(x + 7, y - 6), (x + 7, y + 6)], style));
        }
        if !(self.bars.is_empty() && self.lines.is_empty() && self.rules.is_empty()) {
            let pos = match self.legend_corner() {
                Corner::Auto | Corner::UpperLeft => SeriesLabelPosition::UpperLeft,
                Corner::UpperRight => SeriesLabelPosition::UpperRight,
                Corner::LowerLeft => SeriesLabelPosition::LowerLeft,
                Corner::LowerRight => SeriesLabelPosition::LowerRight,
            };
            chart
                .configure_series_labels()
                .position(pos)
                .label_font((FONT, label_size))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(190, 190, 190))
                .draw()
                .map_err(err)?;
        }
        Ok(())
    }
}

/// `v` for reading: integers as integers; otherwise `digits` significant
/// digits (whole numbers up to 10^6 keep every digit of their integer part;
/// scientific notation below 10^-3 and from 10^6), trailing zeros dropped.
pub fn significant(v: f64, digits: u32) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let digits = digits.max(1) as i32;
    let a = v.abs();
    if (1e-3..1e6).contains(&a) {
        let decimals = (digits - 1 - a.log10().floor() as i32).clamp(0, digits + 2) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let decimals = (digits - 1) as usize;
        format!("{v:.decimals$e}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn histogram_bins_by_hand() {
        // Anchor 0.5, width 0.25: 0.1 is in [0, 0.25), 0.49 in [0.25, 0.5),
        // 0.5 and 0.6 in [0.5, 0.75), 1.0 in [1.0, 1.25).
        let h = Histogram::aligned(&[0.1, 0.49, 0.5, 0.6, 1.0, f64::NAN], 0.5, 0.25).unwrap();
        assert_eq!(h.lo, 0.0);
        assert_eq!(h.counts, vec![1, 1, 2, 0, 1]);
        assert_eq!(h.non_finite, 1);
        assert_eq!(h.total(), 5);
        assert_eq!(h.count_at_least(0.5), 3);
        assert_eq!(h.edges(), vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25]);
        // The anchor is an edge even when far from the values.
        let far = Histogram::aligned(&[0.9, 0.95], 0.2, 0.1).unwrap();
        assert!((far.lo - 0.2).abs() < 1e-12);
        assert_eq!(far.count_at_least(0.2), 2);
        assert!(Histogram::aligned(&[1.0], 0.0, 0.0).is_err());
        assert!(Histogram::aligned(&[1e9], 0.0, 1e-6).is_err());
        assert!(Histogram::aligned(&[1.0], f64::NAN, 0.1).is_err());
        // Only non-finite values: the anchor's bin alone, empty.
        let none = Histogram::aligned(&[f64::NEG_INFINITY], 0.3, 0.1).unwrap();
        assert_eq!(
            (none.total(), none.counts.len(), none.non_finite),
            (0, 1, 1)
        );
    }

    #[test]
    fn reliability_by_hand() {
        let r = Reliability::new(
            &[0.05, 0.15, 0.15, 0.95, 1.0],
            &[false, true, false, true, true],
            10,
        )
        .unwrap();
        // bins: [0, .1): 1 at .05, 0 true; [.1, .2): 2 at .15, 1 true;
        // [.9, 1]: 2 at .975, 2 true.
        assert_eq!(r.bins.len(), 3);
        assert_eq!(r.bins[1].count, 2);
        assert!((r.bins[1].frequency - 0.5).abs() < 1e-12);
        assert!((r.bins[2].mean_probability - 0.975).abs() < 1e-12);
        let ece = (0.05 + 2.0 * 0.35 + 2.0 * 0.025) / 5.0;
        assert!((r.ece - ece).abs() < 1e-12, "{} vs {ece}", r.ece);
        assert!(Reliability::new(&[1.5], &[true], 10).is_err());
        assert!(Reliability::new(&[f64::NAN], &[true], 10).is_err());
        assert!(Reliability::new(&[0.5], &[true, false], 10).is_err());
        assert!(Reliability::new(&[], &[], 10).is_err());
        assert!(Reliability::new(&[0.5], &[true], 0).is_err());
    }

    #[test]
    fn significant_digits() {
        assert_eq!(significant(0.21932730748686816, 3), "0.219");
        assert_eq!(significant(0.7550000548362732, 3), "0.755");
        assert_eq!(significant(12.345, 3), "12.3");
        assert_eq!(significant(3.0, 3), "3");
        assert_eq!(significant(0.0012345, 3), "0.00123");
        assert_eq!(significant(-0.5, 3), "-0.5");
        assert_eq!(significant(2.5e-7, 3), "2.50e-7");
    }

    #[test]
    fn the_legend_avoids_the_data() {
        // Tall bars on the left: the legend goes right, and the other way.
        let left = Histogram::aligned(&[0.1, 0.1, 0.1, 0.1, 0.9], 0.5, 0.1).unwrap();
        let right = Histogram::aligned(&[0.1, 0.9, 0.9, 0.9, 0.9], 0.5, 0.1).unwrap();
        let chart = |h: Histogram| Chart::new("t", "x", "y").bars(Bars::new("b", h));
        assert_eq!(chart(left).legend_corner(), Corner::UpperRight);
        assert_eq!(chart(right).legend_corner(), Corner::UpperLeft);
        // A corner set by hand is kept.
        let set = Chart::new("t", "x", "y").legend(Corner::LowerLeft);
        assert_eq!(set.legend_corner(), Corner::LowerLeft);
    }

    #[test]
    fn bad_charts_are_refused() {
        let c = Chart::new("t", "x", "y").line(Line::new("a", vec![(0.0, f64::NAN)]));
        assert!(matches!(c.validate(), Err(EvalError::NonFinite { .. })));
        let c = Chart::new("t", "x", "y").line(Line::new("a", vec![(0.0, 1.0)]).band(vec![]));
        assert!(matches!(
            c.validate(),
            Err(EvalError::LengthMismatch { .. })
        ));
        assert!(Chart::new("t", "x", "y").size(10, 500).validate().is_err());
        assert!(
            Chart::new("t", "x", "y")
                .x_range(1.0, 0.0)
                .validate()
                .is_err()
        );
        assert!(
            Chart::new("t", "x", "y")
                .rule(Rule::new("r", f64::INFINITY))
                .validate()
                .is_err()
        );
    }
}
