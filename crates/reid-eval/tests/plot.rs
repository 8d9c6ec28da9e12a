//! Scatter plots: the PNG decodes back at the requested size with the
//! identity colours where the points are, the SVG parses with the legend and
//! one marker per point, bad input gives typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use ndarray::Array2;
use reid_eval::plot::{OTHER_COLOUR, ScatterParams, ScatterPlot, ValidScatterParams};
use reid_eval::{EvalError, ParamGuard};

/// Where sample pictures are kept for a person to look at.
fn samples() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("reid-eval-samples");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// 12 identities of sizes 12, 11, ..., 1 (78 points), each point in its own
/// cell of a 13 x 6 grid, so no two markers overlap.
fn grid_points() -> (Array2<f64>, Vec<String>) {
    let mut labels = Vec::new();
    for id in 0..12usize {
        for _ in 0..(12 - id) {
            labels.push(format!("lion_{id:02}"));
        }
    }
    let n = labels.len();
    let mut pts = Array2::zeros((n, 2));
    for k in 0..n {
        pts[[k, 0]] = (k % 13) as f64 * 1.5 - 3.0;
        pts[[k, 1]] = (k / 13) as f64 * 2.0 + 10.0;
    }
    (pts, labels)
}

fn px(img: &image::RgbImage, (x, y): (i32, i32)) -> [u8; 3] {
    img.get_pixel(x as u32, y as u32).0
}

#[test]
fn png_has_size_and_identity_colours_at_points() {
    let (pts, labels) = grid_points();
    let params = ScatterParams::new()
        .title("t-SNE of lion embeddings")
        .width(900)
        .height(640)
        .check()
        .unwrap();
    let plot = ScatterPlot::new(pts.view(), &labels, params).unwrap();
    // 10 coloured identities and the grey rest (2 identities, 3 points).
    let legend = plot.legend();
    assert_eq!(legend.len(), 11);
    assert_eq!(legend[0].label, "lion_00");
    assert_eq!(legend[0].count, 12);
    assert_eq!(legend[10].label, "2 other identities");
    assert_eq!(legend[10].count, 3);
    assert_eq!(legend[10].colour, OTHER_COLOUR);
    let distinct: std::collections::HashSet<_> = legend.iter().map(|e| e.colour).collect();
    assert_eq!(distinct.len(), 11, "colours must be distinct");

    let path = samples().join("scatter.png");
    let written = plot.write_png(&path).unwrap();
    assert_eq!(written, path);
    let img = image::open(&path).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (900, 640));

    let rendered = plot.render_rgb().unwrap();
    assert_eq!(rendered.image, img, "the file holds the rendered picture");
    assert_eq!(rendered.positions.len(), labels.len());
    for (row, &(x, y)) in rendered.positions.iter().enumerate() {
        let want = plot.colour_of(row).unwrap();
        // The centre and its 4 neighbours of a filled radius-4 circle.
        for (dx, dy) in [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)] {
            assert_eq!(
                px(&img, (x + dx, y + dy)),
                want,
                "point {row} ({}) at ({x}, {y})",
                labels[row]
            );
        }
        // Inside the plot area, left of the legend.
        assert!(
            x > 40 && x < 900 - 150 && y > 30 && y < 640 - 20,
            "{row}: ({x}, {y})"
        );
    }
    // Grey rest: the last three points.
    assert_eq!(px(&img, rendered.positions[77]), OTHER_COLOUR);
    // Points keep their data order on screen: x grows to the right, y up.
    let (p0, p1, p13) = (
        rendered.positions[0],
        rendered.positions[1],
        rendered.positions[13],
    );
    assert!(p1.0 > p0.0 && p1.1 == p0.1);
    assert!(p13.1 < p0.1, "larger y is higher up");
    // Each legend swatch colour appears in the legend column.
    for e in legend {
        let found =
            (0..img.height()).any(|y| (900 - 200..900).any(|x| img.get_pixel(x, y).0 == e.colour));
        assert!(found, "legend swatch of {} missing", e.label);
    }
    // Text was drawn (dark anti-aliased pixels in the title band).
    let dark = (0..40)
        .flat_map(|y| (0..700).map(move |x| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&c| c < 100))
        .count();
    assert!(dark > 100, "title text missing ({dark} dark pixels)");
}

#[test]
fn markers_for_new_and_wrong() {
    let (pts, labels) = grid_points();
    let n = labels.len();
    let known: Vec<bool> = (0..n).map(|i| i % 3 != 0).collect();
    let correct: Vec<bool> = (0..n).map(|i| i % 4 != 1).collect();
    let plot = ScatterPlot::new(
        pts.view(),
        &labels,
        ScatterParams::new()
            .title("open set")
            .point_radius(6)
            .check()
            .unwrap(),
    )
    .unwrap()
    .known(&known)
    .unwrap()
    .correct(&correct)
    .unwrap();
    let files = plot.write(samples().join("scatter-markers")).unwrap();
    assert!(files.png.ends_with("scatter-markers.png"));
    assert!(files.svg.ends_with("scatter-markers.svg"));
    let img = image::open(&files.png).unwrap().to_rgb8();
    let r = plot.render_rgb().unwrap();
    for (row, &(x, y)) in r.positions.iter().enumerate() {
        let want = plot.colour_of(row).unwrap();
        let centre = px(&img, (x, y));
        // Somewhere within the marker's box the identity colour shows.
        let near = (-7..=7).any(|dy| (-7..=7).any(|dx| px(&img, (x + dx, y + dy)) == want));
        assert!(near, "point {row}: colour {want:?} not near ({x}, {y})");
        if correct[row] {
            assert_eq!(centre, want, "filled marker {row}");
        } else {
            assert_ne!(
                centre, want,
                "hollow marker {row} must have an empty centre"
            );
        }
    }
    // SVG: one circle per known point (two for a hollow one: the ring and
    // its white inside) plus 4 legend circles (known, right, wrong as two),
    // one polygon per new point (two when hollow) plus the legend triangle.
    let svg = std::fs::read_to_string(&files.svg).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let count = |tag: &str| doc.descendants().filter(|e| e.has_tag_name(tag)).count();
    let n_known = known.iter().filter(|&&k| k).count();
    let known_wrong = (0..n).filter(|&i| known[i] && !correct[i]).count();
    let new_wrong = (0..n).filter(|&i| !known[i] && !correct[i]).count();
    assert_eq!(count("circle"), n_known + known_wrong + 4);
    assert_eq!(count("polygon"), n - n_known + new_wrong + 1);
    let texts: Vec<String> = doc
        .descendants()
        .filter(|e| e.has_tag_name("text"))
        .map(|e| e.text().unwrap_or("").trim().to_string())
        .collect();
    for want in [
        "known identity",
        "new identity",
        "right decision",
        "wrong decision",
        "open set",
    ] {
        assert!(
            texts.iter().any(|t| t == want),
            "no text {want:?} in {texts:?}"
        );
    }
}

#[test]
fn svg_is_well_formed_with_legend_and_one_circle_per_point() {
    let (pts, mut labels) = grid_points();
    labels[77] = "a<b & \"c\"".into(); // must be escaped
    let params = ScatterParams::new()
        .title("t-SNE & co")
        .top_identities(12)
        .check()
        .unwrap();
    let plot = ScatterPlot::new(pts.view(), &labels, params).unwrap();
    let svg = plot.render_svg().unwrap();
    assert!(svg.trim_start().starts_with("<svg"), "{}", &svg[..80]);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("width"), Some("1000"));
    assert_eq!(root.attribute("height"), Some("750"));
    let circles: Vec<_> = doc
        .descendants()
        .filter(|e| e.has_tag_name("circle"))
        .collect();
    assert_eq!(
        circles.len(),
        labels.len(),
        "one circle per point, no legend circles"
    );
    // The circle colours are the identity colours.
    let fill = |c: [u8; 3]| format!("#{:02X}{:02X}{:02X}", c[0], c[1], c[2]);
    for row in 0..labels.len() {
        let want = fill(plot.colour_of(row).unwrap());
        assert!(
            circles.iter().any(|c| c
                .attribute("fill")
                .is_some_and(|f| f.eq_ignore_ascii_case(&want))),
            "no circle filled {want}"
        );
    }
    let texts: Vec<String> = doc
        .descendants()
        .filter(|e| e.has_tag_name("text"))
        .map(|e| e.text().unwrap_or("").trim().to_string())
        .collect();
    assert!(texts.iter().any(|t| t == "t-SNE & co"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "identities (12)"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "lion_01 (11)"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "a<b & \"c\" (1)"), "{texts:?}");
    let path = plot.write_svg(samples().join("scatter.svg")).unwrap();
    assert_eq!(std::fs::read_to_string(path).unwrap(), svg);
}

#[test]
fn many_identities_and_top_n() {
    // 30 identities, all coloured: colours beyond the palette stay distinct.
    let n = 300;
    let pts = Array2::from_shape_fn((n, 2), |(i, j)| {
        let a = i as f64 * 0.37;
        if j == 0 {
            a.cos() * (1.0 + i as f64 / 50.0)
        } else {
            a.sin() * (1.0 + i as f64 / 50.0)
        }
    });
    let labels: Vec<usize> = (0..n).map(|i| i % 30).collect();
    let plot = ScatterPlot::new(
        pts.view(),
        &labels,
        ScatterParams::new()
            .top_identities(30)
            .title("30 identities")
            .check()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(plot.legend().len(), 30);
    let distinct: std::collections::HashSet<_> = plot.legend().iter().map(|e| e.colour).collect();
    assert_eq!(distinct.len(), 30);
    plot.write_png(samples().join("scatter-30.png")).unwrap();
    // top 0: everything grey, one legend line.
    let top0 = ScatterParams::new().top_identities(0).check().unwrap();
    let grey = ScatterPlot::new(pts.view(), &labels, top0).unwrap();
    assert_eq!(grey.legend().len(), 1);
    assert!((0..n).all(|i| grey.colour_of(i) == Some(OTHER_COLOUR)));
}

#[test]
fn single_point_and_empty_plot_render() {
    let one = Array2::from_elem((1, 2), 5.0);
    let p = ScatterPlot::new(one.view(), &["x"], ValidScatterParams::default()).unwrap();
    let r = p.render_rgb().unwrap();
    assert_eq!(px(&r.image, r.positions[0]), p.colour_of(0).unwrap());
    let empty = Array2::<f64>::zeros((0, 2));
    let e = ScatterPlot::new(empty.view(), &[] as &[&str], ValidScatterParams::default()).unwrap();
    assert!(e.is_empty());
    assert!(e.render_svg().unwrap().contains("<svg"));
}

#[test]
fn bad_input_is_a_typed_error() {
    let (pts, labels) = grid_points();
    let n = labels.len();
    match ScatterPlot::new(pts.view(), &labels[..n - 1], ValidScatterParams::default()) {
        Err(EvalError::LengthMismatch {
            name: "labels",
            expected,
            got,
        }) => {
            assert_eq!((expected, got), (n, n - 1));
        }
        other => panic!("{other:?}"),
    }
    let plot = ScatterPlot::new(pts.view(), &labels, ValidScatterParams::default()).unwrap();
    assert!(matches!(
        plot.clone().known(&vec![true; n + 2]),
        Err(EvalError::LengthMismatch { name: "known", .. })
    ));
    assert!(matches!(
        plot.clone().correct(&[true]),
        Err(EvalError::LengthMismatch {
            name: "correct",
            ..
        })
    ));
    let mut bad = pts.clone();
    bad[[3, 1]] = f64::NAN;
    let err = ScatterPlot::new(bad.view(), &labels, ValidScatterParams::default()).unwrap_err();
    assert!(
        matches!(
            err,
            EvalError::NonFinite {
                name: "points",
                row: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("row 3"), "{err}");
    bad[[3, 1]] = 0.0;
    bad[[7, 0]] = f64::INFINITY;
    assert!(matches!(
        ScatterPlot::new(bad.view(), &labels, ValidScatterParams::default()),
        Err(EvalError::NonFinite { row: 7, .. })
    ));
    let three = Array2::<f64>::zeros((4, 3));
    assert!(matches!(
        ScatterPlot::new(three.view(), &["a"; 4], ValidScatterParams::default()),
        Err(EvalError::Shape { .. })
    ));
    for (params, name, value) in [
        (ScatterParams::new().width(10), "width", "10"),
        (ScatterParams::new().height(20_000), "height", "20000"),
        (ScatterParams::new().point_radius(0), "point_radius", "0"),
        (
            ScatterParams::new().top_identities(5000),
            "top_identities",
            "5000",
        ),
    ] {
        common::assert_refused(params, name, value);
    }
    let v = ScatterParams::new().width(640).check().unwrap();
    assert_eq!((v.width(), v.height(), v.point_radius()), (640, 750, 4));
    assert_eq!(
        ScatterParams::new().check().unwrap(),
        ValidScatterParams::default()
    );
    // A write into a missing folder names the file and leaves nothing behind.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("missing").join("plot.png");
    let err = plot.write_png(&target).unwrap_err();
    assert!(matches!(err, EvalError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("plot.png"), "{err}");
    // A successful write leaves only the file (no temporary files).
    plot.write(dir.path().join("p")).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["p.png", "p.svg"]);
}
