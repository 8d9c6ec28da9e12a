//! Reports: the JSON round-trips through serde_json, the HTML escapes what
//! it is given and embeds its images so that it opens offline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use image::{Rgb, RgbImage};
use ndarray::Array2;
use reid_eval::matchsheet::{
    Candidate, Decision, MatchSheetParams, QueryMatches, SheetImage, Truth, write_match_sheets,
};
use reid_eval::plot::{ScatterParams, ScatterPlot};
use reid_eval::report::{Cell, Item, Report, Table};
use reid_eval::{EvalError, ParamGuard};

use common::samples;

/// Standard base64 decoding (the test's own, to check the embedding).
fn unbase64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64 {c}"),
    };
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let mut n = 0u32;
        for &c in chunk {
            n = (n << 6) | if c == b'=' { 0 } else { u32::from(val(c)) };
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    out
}

/// The payloads of all `data:<mime>;base64,` URIs in `html`.
fn data_uris(html: &str, mime: &str) -> Vec<Vec<u8>> {
    let tag = format!("data:{mime};base64,");
    html.match_indices(&tag)
        .map(|(i, _)| {
            let rest = &html[i + tag.len()..];
            let end = rest.find('"').unwrap();
            unbase64(&rest[..end])
        })
        .collect()
}

/// A plot and two match-sheet pages (one with a missing image) in `dir`.
fn pictures(
    dir: &Path,
) -> (
    reid_eval::plot::ScatterFiles,
    reid_eval::matchsheet::MatchSheets,
) {
    let pts = Array2::from_shape_fn((40, 2), |(i, j)| {
        (i as f64 * if j == 0 { 0.7 } else { 1.3 }).sin()
    });
    let labels: Vec<String> = (0..40).map(|i| format!("id{}", i % 4)).collect();
    let params = ScatterParams::new().title("embedding").check().unwrap();
    let plot = ScatterPlot::new(pts.view(), &labels, params).unwrap();
    let files = plot.write(dir.join("tsne")).unwrap();
    let photo = dir.join("photo.png");
    RgbImage::from_fn(100, 80, |x, y| Rgb([x as u8 * 2, y as u8 * 3, 90]))
        .save(&photo)
        .unwrap();
    let qs = [
        QueryMatches::new("q1", SheetImage::new(&photo), Decision::Known("A".into()))
            .truth(Truth::known("A"))
            .candidate(Candidate::new(SheetImage::new(&photo), "A", 0.9)),
        QueryMatches::new("q2", SheetImage::new(dir.join("gone.jpg")), Decision::New)
            .candidate(Candidate::new(SheetImage::new(&photo), "B", 0.4)),
    ];
    let params = MatchSheetParams::new().top_k(3).check().unwrap();
    let sheets = write_match_sheets(&qs, dir.join("sheets"), &params).unwrap();
    assert_eq!(sheets.pages.len(), 2);
    assert_eq!(sheets.failures.len(), 1);
    (files, sheets)
}

fn build(dir: &Path) -> Report {
    let (plot, sheets) = pictures(dir);
    let mut r = Report::new("Lions <open set> & \"friends\"");
    r.version("backbone", "efficientnet_lite2 'v1'")
        .config(serde_json::json!({"threshold": 0.62, "k": 5, "dataset": "lion<csv>"}))
        .timing("load", 0.25)
        .timing_duration("embed", std::time::Duration::from_millis(1500));
    let x = r.time("search", || 6 * 7);
    assert_eq!(x, 42);
    r.section("Scores")
        .metric("BAKS", 0.3125)
        .metric("BAUS", 0.5)
        .metric("queries", 310.0)
        .text("Threshold from the database alone; <b>not</b> tuned on queries.")
        .table(
            Table::new("per dataset", ["dataset", "queries", "score", "note"])
                .row(["lion".into(), 310.into(), 0.395.into(), Cell::Null])
                .unwrap()
                .row([
                    "nyala & co".into(),
                    12u32.into(),
                    f64::NAN.into(),
                    "<i>x</i>".into(),
                ])
                .unwrap(),
        );
    r.section("Structured")
        .value("confusion", serde_json::json!({"known": [[10, 2], [3, 5]]}))
        .value_from("sheet summary", &sheets)
        .unwrap();
    r.section("Pictures")
        .scatter(&plot, "t-SNE <of> embeddings")
        .image(plot.png.clone(), "PNG plot")
        .match_sheets(&sheets, 1);
    r
}

#[test]
fn json_round_trips() {
    let dir = samples("report-json");
    let r = build(&dir);
    let path = r.write_json(dir.join("report.json")).unwrap();
    let back = Report::read_json(&path).unwrap();
    // NaN != NaN: compare everything but that cell, then the cell.
    let fix = |mut r: Report| {
        if let Item::Table(t) = &mut r.sections[0].items[4] {
            assert!(matches!(t.rows[1][2], Cell::Null | Cell::Number(_)));
            t.rows[1][2] = Cell::Null;
        } else {
            panic!("no table");
        }
        r
    };
    assert_eq!(fix(back.clone()), fix(r.clone()));
    // The JSON is plain structured data.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["title"], "Lions <open set> & \"friends\"");
    assert_eq!(v["versions"]["reid-eval"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["versions"]["backbone"], "efficientnet_lite2 'v1'");
    assert_eq!(v["config"]["k"], 5);
    assert_eq!(v["timings"][0]["stage"], "load");
    assert_eq!(v["timings"][0]["seconds"], 0.25);
    assert_eq!(v["timings"][1]["seconds"], 1.5);
    assert_eq!(v["timings"][2]["stage"], "search");
    let scores = &v["sections"][0];
    assert_eq!(scores["name"], "Scores");
    assert_eq!(scores["items"][0]["kind"], "metric");
    assert_eq!(scores["items"][0]["name"], "BAKS");
    assert_eq!(scores["items"][0]["value"], 0.3125);
    let table = &scores["items"][4];
    assert_eq!(table["kind"], "table");
    assert_eq!(table["columns"][1], "queries");
    assert_eq!(table["rows"][0][1], 310.0);
    assert!(table["rows"][1][2].is_null(), "NaN is written as null");
    assert_eq!(
        v["sections"][1]["items"][1]["value"]["failures"][0]["query"],
        "q2"
    );
    // A NaN metric comes back as NaN.
    let mut m = Report::new("nan");
    m.metric("x", f64::NAN);
    let p = m.write_json(dir.join("nan.json")).unwrap();
    let back = Report::read_json(p).unwrap();
    match &back.sections[0].items[0] {
        Item::Metric { value, .. } => assert!(value.is_nan()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn html_escapes_and_embeds() {
    let dir = samples("report-html");
    let r = build(&dir);
    let path = r.write_html(dir.join("report.html")).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Escaped, never raw.
    assert!(html.contains("<title>Lions &lt;open set&gt; &amp; &quot;friends&quot;</title>"));
    assert!(html.contains("&lt;b&gt;not&lt;/b&gt; tuned"));
    assert!(!html.contains("<b>not</b>"));
    assert!(html.contains("nyala &amp; co"));
    assert!(html.contains("&lt;i&gt;x&lt;/i&gt;"));
    assert!(html.contains("efficientnet_lite2 &#39;v1&#39;"));
    assert!(html.contains("lion&lt;csv&gt;"));
    assert!(html.contains("t-SNE &lt;of&gt; embeddings"));
    // Figures.
    assert!(
        html.contains("<td>BAKS</td><td class=\"num\">0.3125</td>"),
        "metric row"
    );
    assert!(html.contains("<td class=\"num\">310</td>"));
    assert!(html.contains("<td class=\"num\">0.395</td>"));
    assert!(html.contains("<td>embed</td><td class=\"num\">1.500</td>"));
    assert!(html.contains(&format!("reid-eval {}", env!("CARGO_PKG_VERSION"))));
    // Images embedded byte for byte: the SVG plot, the PNG plot and the
    // first match sheet; no reference to an image file remains.
    let svgs = data_uris(&html, "image/svg+xml");
    assert_eq!(svgs.len(), 1);
    assert_eq!(svgs[0], std::fs::read(dir.join("tsne.svg")).unwrap());
    let pngs = data_uris(&html, "image/png");
    assert_eq!(pngs.len(), 2);
    assert_eq!(pngs[0], std::fs::read(dir.join("tsne.png")).unwrap());
    assert_eq!(
        pngs[1],
        std::fs::read(dir.join("sheets/matches-0001.png")).unwrap()
    );
    assert!(!html.contains("<img src=\"tsne"), "images must be embedded");
    // Links relative to the HTML file.
    assert!(html.contains("<a href=\"tsne.png\">PNG version</a>"));
    assert!(html.contains("<a href=\"sheets/matches-0002.png\">match sheet 2</a>"));
    // The failure table of the match sheets.
    assert!(html.contains("images not shown"));
    assert!(html.contains("gone.jpg"));
    // Balanced structure.
    for tag in ["table", "section", "figure", "tr", "p"] {
        let open =
            html.matches(&format!("<{tag}>")).count() + html.matches(&format!("<{tag} ")).count();
        let close = html.matches(&format!("</{tag}>")).count();
        assert_eq!(open, close, "<{tag}>");
    }
    // Written atomically: no temporary files left.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Links resolve from another folder too.
    let sub = dir.join("html");
    std::fs::create_dir_all(&sub).unwrap();
    let html2 = std::fs::read_to_string(r.write_html(sub.join("r.html")).unwrap()).unwrap();
    assert!(html2.contains("<a href=\"../tsne.png\">PNG version</a>"));
}

#[test]
fn missing_image_and_bad_rows_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Report::new("t");
    r.image(dir.path().join("nope.png"), "missing");
    let out = dir.path().join("r.html");
    let err = r.write_html(&out).unwrap_err();
    assert!(matches!(err, EvalError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.png"), "{err}");
    assert!(!out.exists());
    // Not an image.
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "hello").unwrap();
    let mut r = Report::new("t");
    r.image(&txt, "text");
    let err = r.to_html(dir.path()).unwrap_err();
    assert!(err.to_string().contains("notes.txt"), "{err}");
    // A row with the wrong number of cells.
    let err = Table::new("", ["a", "b"])
        .row([Cell::from(1.0)])
        .unwrap_err();
    assert!(
        matches!(
            err,
            EvalError::LengthMismatch {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{err:?}"
    );
    // Unwritable target.
    let err = Report::new("t")
        .write_json(dir.path().join("no/dir/r.json"))
        .unwrap_err();
    assert!(matches!(err, EvalError::Io { .. }));
    assert!(err.to_string().contains("r.json"));
    // Corrupt JSON names the file.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{ not json").unwrap();
    let err = Report::read_json(&bad).unwrap_err();
    assert!(matches!(err, EvalError::Json { .. }), "{err:?}");
    assert!(err.to_string().contains("bad.json"));
}

#[test]
fn items_before_any_section_and_empty_report() {
    let mut r = Report::new("plain");
    r.metric("a", 1.0).metrics([("b", 2.5), ("c", 1e-9)]);
    assert_eq!(r.sections.len(), 1);
    assert_eq!(r.sections[0].name, "");
    assert_eq!(r.sections[0].items.len(), 3);
    let html = r.to_html(Path::new(".")).unwrap();
    assert!(html.contains("<td>c</td><td class=\"num\">1.000e-9</td>"));
    assert!(!html.contains("<nav>"), "no contents for unnamed sections");
    let empty = Report::new("empty").to_html(Path::new(".")).unwrap();
    assert!(empty.contains("<h1>empty</h1>"));
}
