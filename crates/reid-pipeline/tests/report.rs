//! The figures of an evaluation go into a report that round-trips, and the
//! pictures are written (or skipped with a reason) beside it.
#![cfg(feature = "report")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::Array2;
use reid_eval::report::Report;
use reid_pipeline::report::{PictureParams, add_figures, write_pictures, write_report};
use reid_pipeline::{OpenSetParams, ParamGuard, Record, SplitRole, evaluate, identify};

/// Two identities of 6 photos each in the database (directions 0° and 90°
/// in a plane, spread over 5°), 4 queries of each plus 2 of a new animal
/// along a third axis; image files do not exist (the sheets show
/// placeholders).
fn setup() -> (Vec<Record>, Array2<f32>) {
    let mut records = Vec::new();
    let mut rows: Vec<[f32; 3]> = Vec::new();
    let mut push = |id: String, who: &str, split, v: [f32; 3]| {
        records.push(
            Record::new(id.clone(), format!("/nonexistent/{id}.jpg"))
                .with_identity(who)
                .with_split(split)
                .with_dataset("x"),
        );
        rows.push(v);
    };
    for (who, base) in [("a", 0.0f32), ("b", 90.0)] {
        for k in 0..10 {
            let deg = (base + k as f32).to_radians();
            let split = if k < 6 {
                SplitRole::Database
            } else {
                SplitRole::Query
            };
            push(format!("{who}{k}"), who, split, [deg.cos(), deg.sin(), 0.0]);
        }
    }
    for k in 0..2 {
        let d = (k as f32).to_radians();
        push(
            format!("n{k}"),
            "n",
            SplitRole::Query,
            [0.0, d.sin(), d.cos()],
        );
    }
    let emb = Array2::from_shape_fn((rows.len(), 3), |(i, j)| rows[i][j]);
    (records, emb)
}

#[test]
fn figures_and_pictures_go_into_the_report() {
    let (records, emb) = setup();
    let params = OpenSetParams::default()
        .fixed_threshold(Some(0.5))
        .check()
        .unwrap();
    let ident = identify(&records, emb.view(), &params).unwrap();
    let evaluation = evaluate(&records, emb.view(), &ident).unwrap();
    let s = evaluation.score.as_ref().unwrap();
    assert_eq!(s.animalclef.score, 1.0);
    let r = evaluation.ranking.as_ref().unwrap();
    assert_eq!((r.top_k(1), r.mean_ap), (Some(1.0), 1.0));
    let d = evaluation.discovery.unwrap();
    assert_eq!((d.queries, d.ari), (2, 1.0));
    // The console text names the figures.
    let text = evaluation.to_string();
    assert!(
        text.contains("AnimalCLEF score 1.000") && text.contains("top-1 1.000"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut report = Report::new("pipeline");
    add_figures(&mut report, &ident, &evaluation).unwrap();
    let mut pictures = |params: PictureParams| {
        write_pictures(
            &mut report,
            &records,
            emb.view(),
            &ident,
            dir.path(),
            &params.check().unwrap(),
        )
        .unwrap()
    };
    // 22 points: perplexity 30 is too high, so the t-SNE is skipped with the reason.
    let pics = pictures(PictureParams::default().sheets(3));
    assert!(pics.tsne.is_none());
    assert!(pics.tsne_skipped.as_deref().unwrap().contains("perplexity"));
    let sheets = pics.sheets.as_ref().unwrap();
    assert_eq!(sheets.pages.len(), 3, "one query a page");
    assert!(sheets.pages.iter().all(|p| p.is_file()));
    assert!(
        !sheets.failures.is_empty(),
        "missing images are placeholders"
    );
    // With a perplexity that fits, the plot is drawn.
    let pics = pictures(
        PictureParams::default()
            .sheets(0)
            .perplexity(4.0)
            .tsne_iter(300),
    );
    let t = pics.tsne.as_ref().unwrap();
    assert_eq!(t.points, 22);
    assert!(t.files.png.is_file() && t.files.svg.is_file());
    let (json, html) = write_report(&report, dir.path()).unwrap();
    let back = Report::read_json(&json).unwrap();
    assert_eq!(back, report);
    let text = std::fs::read_to_string(&json).unwrap();
    assert!(text.contains("AnimalCLEF score"));
    assert!(std::fs::read_to_string(&html).unwrap().contains("<html"));
}
