//! Match sheets on real lion photos from `../shared` (skipped when absent)
//! and on missing and corrupt files (placeholder tiles, reported).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use reid_eval::matchsheet::{
    Candidate, Decision, MatchSheetParams, QueryMatches, SheetImage, Truth, ValidMatchSheetParams,
    write_match_sheets,
};
use reid_eval::{EvalError, ParamGuard};

use common::samples;

const PLACEHOLDER: [u8; 3] = [252, 228, 228];

fn count_colour(img: &RgbImage, c: [u8; 3]) -> usize {
    img.pixels().filter(|p| p.0 == c).count()
}

/// Rows of lion.csv: (identity, absolute path, split).
fn lion_rows(shared: &Path) -> Vec<(String, PathBuf, String)> {
    let dir = shared.join("datasets/lion");
    let text = std::fs::read_to_string(dir.join("lion.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].to_string(), dir.join(f[2]), f[4].to_string())
        })
        .collect()
}

#[test]
fn sheets_of_real_lion_photos() {
    let Some(shared) = common::shared() else {
        return;
    };
    let rows = lion_rows(&shared);
    let mut gallery: BTreeMap<&str, Vec<&Path>> = BTreeMap::new();
    for (id, p, split) in &rows {
        if split == "database" {
            gallery.entry(id).or_default().push(p);
        }
    }
    let ids: Vec<&str> = gallery.keys().copied().collect();
    // Queries whose identity is in the database, and one that is not.
    let known_q: Vec<&(String, PathBuf, String)> = rows
        .iter()
        .filter(|(id, _, s)| s == "query" && gallery.contains_key(id.as_str()))
        .take(3)
        .collect();
    let new_q = rows
        .iter()
        .find(|(id, _, s)| s == "query" && !gallery.contains_key(id.as_str()))
        .unwrap();
    assert_eq!(known_q.len(), 3);
    let others = |skip: &str, k: usize| -> Vec<Candidate> {
        ids.iter()
            .filter(|&&id| id != skip)
            .take(k)
            .enumerate()
            .map(|(i, id)| {
                Candidate::new(SheetImage::new(gallery[id][0]), *id, 0.8 - 0.05 * i as f64)
            })
            .collect()
    };
    let mut queries = Vec::new();
    // Right: the true identity ranks first and is chosen.
    let (id, p, _) = known_q[0];
    let mut q = QueryMatches::new(
        "q-right",
        SheetImage::new(p.clone()),
        Decision::Known(id.clone()),
    )
    .truth(Truth::known(id.clone()))
    .candidate(Candidate::new(
        SheetImage::new(gallery[id.as_str()][0]),
        id.clone(),
        0.93,
    ));
    q.candidates.extend(others(id, 4));
    queries.push(q);
    // Wrong: another identity ranks first and is chosen; the true one is third.
    let (id, p, _) = known_q[1];
    let mut c = others(id, 4);
    c.insert(
        2,
        Candidate::new(SheetImage::new(gallery[id.as_str()][0]), id.clone(), 0.77),
    );
    let wrong_id = c[0].identity.clone();
    let mut q = QueryMatches::new(
        "q-wrong",
        SheetImage::new(p.clone()),
        Decision::Known(wrong_id),
    )
    .truth(Truth::known(id.clone()));
    q.candidates = c;
    queries.push(q);
    // New individual, rightly called new.
    let (id, p, _) = new_q;
    let mut q = QueryMatches::new("q-new", SheetImage::new(p.clone()), Decision::New)
        .truth(Truth::new_individual(id.clone()));
    q.candidates = others(id, 5);
    queries.push(q);
    // Truth unknown, only two matches.
    let (_, p, _) = known_q[2];
    let mut q = QueryMatches::new("q-unlabelled", SheetImage::new(p.clone()), Decision::New);
    q.candidates = others("", 2);
    queries.push(q);
    assert_eq!(queries[0].is_correct(), Some(true));
    assert_eq!(queries[1].is_correct(), Some(false));
    assert_eq!(queries[2].is_correct(), Some(true));
    assert_eq!(queries[3].is_correct(), None);

    let out = samples("lion-sheets");
    let params = MatchSheetParams::new()
        .title("lion, open set")
        .check()
        .unwrap();
    let sheets = write_match_sheets(&queries, &out, &params).unwrap();
    assert!(sheets.failures.is_empty(), "{:?}", sheets.failures);
    assert_eq!(sheets.pages.len(), 4);
    for (i, page) in sheets.pages.iter().enumerate() {
        assert_eq!(page, &out.join(format!("matches-{:04}.png", i + 1)));
        let img = image::open(page).unwrap().to_rgb8();
        // 16 + 224 + 30 + 5 * (224 + 10) - 10 + 16 wide.
        assert_eq!(img.width(), 1446, "{}", page.display());
        assert!(
            img.height() > 224 + 40 && img.height() < 500,
            "{}",
            img.height()
        );
        // Real photo pixels: many distinct colours (not flat tiles).
        let distinct: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        assert!(
            distinct.len() > 2000,
            "page {i}: {} colours",
            distinct.len()
        );
        assert_eq!(count_colour(&img, PLACEHOLDER), 0);
    }
    // The true match gets a green frame on pages 1 and 2, not on page 3 (new)
    // nor 4 (truth unknown).
    let green = |i: usize| {
        let img = image::open(&sheets.pages[i]).unwrap().to_rgb8();
        count_colour(&img, [20, 140, 50])
    };
    assert!(green(0) > 3000, "{}", green(0));
    assert!(green(1) > 3000, "{}", green(1));
    assert!(green(2) < 3000);
    assert_eq!(green(3), 0);

    // Several queries a page: 4 queries, 3 a page -> 2 pages, the second
    // shorter.
    let out2 = samples("lion-sheets-3pp");
    let params = MatchSheetParams::new()
        .queries_per_page(3)
        .thumb(160)
        .prefix("lions")
        .check()
        .unwrap();
    let sheets = write_match_sheets(&queries, &out2, &params).unwrap();
    assert_eq!(
        sheets.pages,
        [out2.join("lions-0001.png"), out2.join("lions-0002.png")]
    );
    let a = image::open(&sheets.pages[0]).unwrap().to_rgb8();
    let b = image::open(&sheets.pages[1]).unwrap().to_rgb8();
    assert_eq!(a.width(), b.width());
    assert_eq!(a.width(), 16 + 160 + 30 + 5 * 170 - 10 + 16);
    assert!(a.height() > 2 * b.height());
}

#[test]
fn missing_and_corrupt_images_become_reported_placeholders() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.png");
    let mut img = RgbImage::new(120, 90);
    for (x, y, p) in img.enumerate_pixels_mut() {
        *p = Rgb([(x * 2) as u8, (y * 2) as u8, 128]);
    }
    img.save(&good).unwrap();
    let corrupt = dir.path().join("corrupt.jpg");
    std::fs::write(&corrupt, b"\xFF\xD8\xFF\xE0 definitely not a jpeg").unwrap();
    let missing = dir.path().join("no such photo.jpg");

    let q = QueryMatches::new(
        "q1",
        SheetImage::new(missing.clone()),
        Decision::Known("B".into()),
    )
    .truth(Truth::known("A"))
    .candidate(Candidate::new(SheetImage::new(good.clone()), "B", 0.8))
    .candidate(Candidate::new(SheetImage::new(corrupt.clone()), "A", 0.7))
    .candidate(Candidate::new(SheetImage::new(good.clone()), "C", f64::NAN));
    let out = samples("placeholders");
    let sheets = write_match_sheets(&[q], &out, &ValidMatchSheetParams::default()).unwrap();
    assert_eq!(sheets.pages.len(), 1);
    assert_eq!(sheets.failures.len(), 2, "{:?}", sheets.failures);
    let f0 = &sheets.failures[0];
    assert_eq!(f0.image, missing);
    assert_eq!(f0.query, "q1");
    assert_eq!(f0.page, sheets.pages[0]);
    assert!(f0.error.contains("no such photo.jpg"), "{}", f0.error);
    assert_eq!(sheets.failures[1].image, corrupt);
    assert!(
        sheets.failures[1].error.contains("corrupt.jpg"),
        "{}",
        sheets.failures[1].error
    );
    let page = image::open(&sheets.pages[0]).unwrap().to_rgb8();
    // Two placeholder tiles (mostly background colour, some text on them).
    let n = count_colour(&page, PLACEHOLDER);
    assert!(n > 2 * 224 * 224 * 6 / 10, "{n}");
    assert!(n < 2 * 224 * 224, "{n}");
    // The good image shows (its blue channel is 128 throughout).
    assert!(
        page.pixels()
            .filter(|p| p.0[2] == 128 && p.0[0] > 60)
            .count()
            > 10_000
    );
}

#[test]
fn settings_are_checked_and_no_queries_write_nothing() {
    let out = tempfile::tempdir().unwrap();
    for (p, name, value) in [
        (MatchSheetParams::new().thumb(10), "thumb", "10"),
        (MatchSheetParams::new().top_k(0), "top_k", "0"),
        (
            MatchSheetParams::new().queries_per_page(0),
            "queries_per_page",
            "0",
        ),
        (
            MatchSheetParams::new().prefix("../escape"),
            "prefix",
            "\"../escape\"",
        ),
        (MatchSheetParams::new().prefix(""), "prefix", "\"\""),
    ] {
        assert!(p.check_ref().is_err());
        let err = p.check().unwrap_err();
        assert!(err.to_string().contains(&format!("got {value}")), "{err}");
        assert!(
            matches!(err, EvalError::InvalidParam { name: n, .. } if n == name),
            "{err:?}"
        );
    }
    let v = MatchSheetParams::new()
        .top_k(3)
        .prefix("p")
        .check()
        .unwrap();
    assert_eq!((v.top_k(), v.prefix(), v.thumb()), (3, "p", 224));
    assert_eq!(
        MatchSheetParams::new().check().unwrap(),
        ValidMatchSheetParams::default()
    );
    let sheets = write_match_sheets(&[], out.path(), &ValidMatchSheetParams::default()).unwrap();
    assert!(sheets.pages.is_empty() && sheets.failures.is_empty());
    // An output folder that cannot be created is named.
    let blocker = out.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let q = QueryMatches::new("q", SheetImage::new("x.jpg"), Decision::New);
    let err = write_match_sheets(&[q], blocker.join("sub"), &ValidMatchSheetParams::default())
        .unwrap_err();
    assert!(matches!(err, EvalError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("sub"), "{err}");
}

#[test]
fn truth_decides_right_and_wrong() {
    let q = |d: Decision, t: Truth| {
        QueryMatches::new("q", SheetImage::new("x"), d)
            .truth(t)
            .is_correct()
    };
    assert_eq!(q(Decision::New, Truth::new_individual("Z")), Some(true));
    assert_eq!(
        q(Decision::Known("Z".into()), Truth::new_individual("Z")),
        Some(false)
    );
    assert_eq!(
        q(Decision::Known("A".into()), Truth::known("A")),
        Some(true)
    );
    assert_eq!(
        q(Decision::Known("B".into()), Truth::known("A")),
        Some(false)
    );
    assert_eq!(q(Decision::New, Truth::known("A")), Some(false));
    assert_eq!(
        QueryMatches::new("q", SheetImage::new("x"), Decision::New).is_correct(),
        None
    );
}
