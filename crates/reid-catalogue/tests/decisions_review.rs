//! The decisions CSV (round trip, errors naming the right line, files edited
//! in a spreadsheet) and the HTML review page (embedded thumbnails,
//! escaping, placeholders for unreadable images, atomic writing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use reid_catalogue::CatalogueError;
use reid_catalogue::decisions::{
    COLUMNS, Candidate, DecisionRow, ReviewItem, Suggestion, Verdict, read_decisions,
    write_decisions,
};
use reid_catalogue::review::{ReviewPage, write_review_page};
use sha2::{Digest, Sha256};

const H1: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const H2: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
const H3: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

const HEADER: &str = "photo,path,content_hash,dataset,species,suggestion,suggested,score,threshold,candidates,verdict,individual,reviewer,note";

fn cand(id: &str, name: &str, score: f32, photo: impl Into<PathBuf>) -> Candidate {
    Candidate {
        individual: id.into(),
        name: name.into(),
        score,
        photo: photo.into(),
    }
}

fn item(photo: &str, path: impl Into<PathBuf>, hash: &str, suggestion: Suggestion) -> ReviewItem {
    ReviewItem {
        photo: photo.into(),
        path: path.into(),
        content_hash: hash.into(),
        dataset: "lions".into(),
        species: Some("lion".into()),
        suggestion,
        suggested: match suggestion {
            Suggestion::Known => "ind-000001".into(),
            Suggestion::New => "new_0001".into(),
        },
        score: 0.8,
        threshold: 0.7,
        candidates: vec![cand("ind-000001", "Amber", 0.8, "cat/a.jpg")],
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The line and message of the `Row` error reading `path` fails with.
fn row_error(path: &Path) -> (u64, String) {
    match read_decisions(path) {
        Err(CatalogueError::Row {
            path: p,
            line,
            message,
        }) => {
            assert_eq!(p, path, "the error names the file");
            (line, message)
        }
        other => panic!("expected a Row error, got {other:?}"),
    }
}

/// A decisions row (the header's 14 columns) with these values.
fn row(photo: &str, hash: &str, verdict: &str, individual: &str, note: &str) -> String {
    format!(
        "{photo},img/{photo}.jpg,{hash},lions,lion,known,ind-000001,0.8000,0.7000,ind-000001:Amber:0.8000,{verdict},{individual},,{note}"
    )
}

#[test]
fn round_trip_keeps_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = item("q1", "photos/q 1.jpg", H1, Suggestion::Known);
    a.candidates = (1..=7)
        .map(|i| {
            cand(
                &format!("ind-00000{i}"),
                &format!("Name {i}"),
                1.0 / i as f32,
                format!("cat/{i}.jpg"),
            )
        })
        .collect();
    let mut b = item(
        "q2, \"quoted\"\nsecond line",
        "photos/q2.jpg",
        &H2.to_uppercase(),
        Suggestion::New,
    );
    b.species = None;
    b.dataset = "zebras, plains".into();
    b.suggested = "new_0007".into();
    b.candidates.clear();
    b.score = f32::NAN;
    let c = item("q3 ünïcode", "photos/q3.jpg", H3, Suggestion::Known);
    let items = vec![a, b, c];
    let path = dir.path().join("decisions.csv");
    write_decisions(&path, &items).unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().next().unwrap(), COLUMNS.join(","));
    assert_eq!(text.lines().next().unwrap(), HEADER);
    // Top 5 candidates, 4 decimals.
    assert!(text.contains(
        "ind-000001:Name 1:1.0000;ind-000002:Name 2:0.5000;ind-000003:Name 3:0.3333;\
         ind-000004:Name 4:0.2500;ind-000005:Name 5:0.2000,"
    ));
    assert!(!text.contains("ind-000006"));

    let rows = read_decisions(&path).unwrap();
    assert_eq!(rows.len(), items.len());
    // q2's id spans two physical lines, so q3 starts on line 5.
    assert_eq!(
        rows.iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![2, 3, 5]
    );
    for (r, it) in rows.iter().zip(&items) {
        assert_eq!(r.photo, it.photo);
        assert_eq!(r.path, it.path);
        assert_eq!(r.content_hash, it.content_hash.to_lowercase());
        assert_eq!(r.dataset, it.dataset);
        assert_eq!(r.species, it.species);
        assert_eq!(r.suggestion, it.suggestion);
        assert_eq!(r.suggested, it.suggested);
        assert_eq!(r.verdict, None);
        assert_eq!(r.individual, None);
        assert_eq!(r.reviewer, None);
        assert_eq!(r.note, None);
    }
}

#[test]
fn write_rejects_items_that_would_not_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.csv");
    let bad_hash = item("q1", "a.jpg", "abc", Suggestion::Known);
    let mut no_dataset = item("q1", "a.jpg", H1, Suggestion::Known);
    no_dataset.dataset = " ".into();
    for bad in [bad_hash, no_dataset] {
        assert!(matches!(
            write_decisions(&path, &[bad]),
            Err(CatalogueError::Invalid(_))
        ));
        assert!(!path.exists());
    }
}

#[test]
fn errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let ok1 = row("q1", H1, "confirm", "", "");
    let ok2 = row("q2", H2, "", "", "");
    let cases: Vec<(&str, String, u64, &str)> = vec![
        (
            "unknown verdict",
            format!(
                "{HEADER}\n{ok1}\n{ok2}\n{}\n",
                row("q3", H3, "maybe", "", "")
            ),
            4,
            "\"maybe\"",
        ),
        (
            "missing column",
            format!("{}\n{ok1}\n", HEADER.replace(",individual,", ",who,")),
            1,
            "`individual`",
        ),
        (
            "too few fields",
            format!("{HEADER}\n{ok1}\nq2,img/q2.jpg,{H2},lions\n{ok2}\n"),
            3,
            "4 fields",
        ),
        (
            "too many fields",
            format!("{HEADER}\n{ok1}\n{ok2}\n{ok2},extra\n"),
            4,
            "15 fields",
        ),
        (
            "short hash",
            format!("{HEADER}\n{ok1}\n{}\n", row("q2", "abc123", "", "", "")),
            3,
            "content_hash",
        ),
        (
            "non-hex hash",
            format!(
                "{HEADER}\n{}\n{ok2}\n",
                row("q1", &H1.replace('0', "g"), "", "", "")
            ),
            2,
            "content_hash",
        ),
        (
            "empty photo",
            format!("{HEADER}\n{ok1}\n{ok2}\n{}\n", row("", H3, "", "", "")),
            4,
            "photo is empty",
        ),
        (
            "empty path",
            format!(
                "{HEADER}\n{ok1}\n{}\n",
                row("q3", H3, "", "", "").replace("img/q3.jpg", "")
            ),
            3,
            "path is empty",
        ),
        (
            "empty dataset",
            format!(
                "{HEADER}\n{}\n{ok2}\n",
                row("q1", H1, "", "", "").replace(",lions,", ",  ,")
            ),
            2,
            "dataset is empty",
        ),
        (
            "unknown suggestion",
            format!(
                "{HEADER}\n{ok1}\n{}\n",
                row("q3", H3, "", "", "").replace(",known,", ",maybe-known,")
            ),
            3,
            "maybe-known",
        ),
        (
            // The note of line 2 spans lines 2 to 4: the bad row is line 5.
            "after a multi-line field",
            format!(
                "{HEADER}\n{}\n{}\n",
                row("q1", H1, "confirm", "", "\"first\nsecond\nthird\""),
                row("q2", H2, "maybe", "", "")
            ),
            5,
            "\"maybe\"",
        ),
        (
            // The bad record itself spans lines 3 to 5: it starts on line 3.
            "in a multi-line record",
            format!(
                "{HEADER}\n{ok1}\n{}\n{ok2}\n",
                row("q3", H3, "maybe", "", "\"a\nb\nc\"")
            ),
            3,
            "\"maybe\"",
        ),
        (
            "after a BOM, with CRLF",
            format!(
                "\u{feff}{HEADER}\r\n{ok1}\r\n{ok2}\r\n{}\r\n",
                row("q3", H3, "maybe", "", "")
            ),
            4,
            "\"maybe\"",
        ),
        (
            "after a multi-line field, with CRLF",
            format!(
                "\u{feff}{HEADER}\r\n{}\r\n{}\r\n",
                row("q1", H1, "", "", "\"x\r\ny\""),
                row("q2", "abc", "", "", "")
            ),
            4,
            "content_hash",
        ),
        (
            "after a blank line",
            format!("{HEADER}\n{ok1}\n\n{}\n", row("q3", H3, "maybe", "", "")),
            4,
            "\"maybe\"",
        ),
        ("empty file", String::new(), 1, "no header"),
    ];
    for (what, text, line, needle) in cases {
        let path = write(dir.path(), "d.csv", &text);
        let (got, message) = row_error(&path);
        assert_eq!(got, line, "{what}: {message}");
        assert!(
            message.contains(needle),
            "{what}: {message:?} lacks {needle:?}"
        );
    }
}

#[test]
fn conflicting_duplicates_name_both_lines() {
    let dir = tempfile::tempdir().unwrap();
    // Same content in one dataset: confirm on line 3, reject on line 5.
    let text = format!(
        "{HEADER}\n{}\n{}\n{}\n{}\n",
        row("q0", H3, "", "", ""),
        row("q1", H1, "confirm", "", ""),
        row("q2", H2, "new", "", ""),
        row("q1-copy", H1, "reject", "", ""),
    );
    let (line, message) = row_error(&write(dir.path(), "d.csv", &text));
    assert_eq!(line, 5, "{message}");
    assert!(message.contains("line 3"), "{message}");
    assert!(
        message.contains("q1-copy") && message.contains("\"q1\""),
        "{message}"
    );

    // Confirmed to different individuals conflicts too.
    let text = format!(
        "{HEADER}\n{}\n{}\n",
        row("q1", H1, "confirm", "ind-000002", ""),
        row("q1-copy", H1, "Confirm", "", ""),
    );
    let (line, message) = row_error(&write(dir.path(), "d.csv", &text));
    assert_eq!(line, 3, "{message}");
    assert!(message.contains("line 2"), "{message}");

    // Agreeing duplicates, an undecided duplicate, and the same content in
    // another dataset are fine.
    let text = format!(
        "{HEADER}\n{}\n{}\n{}\n{}\n{}\n",
        row("q1", H1, "confirm", "", ""),
        row("q1-copy", H1, "confirm", "ind-000001", ""),
        row("q1-again", H1, "skip", "", ""),
        row("q1-later", H1, "", "", ""),
        row("z1", H1, "reject", "", "").replace(",lions,", ",zebras,"),
    );
    let rows = read_decisions(&write(dir.path(), "d.csv", &text)).unwrap();
    assert_eq!(rows.len(), 5);
}

#[test]
fn reads_a_spreadsheet_edited_file() {
    let dir = tempfile::tempdir().unwrap();
    // Reordered columns, an extra column, no species/reviewer/note columns,
    // header names in another case, padded verdicts, a trailing empty row,
    // a BOM and CRLF line ends.
    let text = format!(
        "\u{feff}Verdict,photo,checked,individual,suggested,suggestion,dataset,content_hash,path\r\n\
         Confirm ,q1,yes,,ind-000001,known,lions,{H1},img/q1.jpg\r\n\
         \x20 NEW,q2,no, Bella ,new_0001,new,lions,{},img/q2.jpg\r\n\
         reject,q3,,,ind-000004,Known,lions,{H3},img/q3.jpg\r\n\
         ,q4,,,ind-000004,known,lions,{H3},img/q4.jpg\r\n\
         ,,,,,,,,\r\n",
        H2.to_uppercase()
    );
    let rows = read_decisions(&write(dir.path(), "edited.csv", &text)).unwrap();
    assert_eq!(rows.len(), 4);
    let expect = DecisionRow {
        line: 2,
        photo: "q1".into(),
        path: "img/q1.jpg".into(),
        content_hash: H1.into(),
        dataset: "lions".into(),
        species: None,
        suggestion: Suggestion::Known,
        suggested: "ind-000001".into(),
        verdict: Some(Verdict::Confirm),
        individual: None,
        reviewer: None,
        note: None,
    };
    assert_eq!(rows[0], expect);
    assert_eq!(rows[0].target(), Some("ind-000001"));
    assert_eq!(rows[1].line, 3);
    assert_eq!(rows[1].verdict, Some(Verdict::New));
    assert_eq!(rows[1].individual.as_deref(), Some("Bella"));
    assert_eq!(rows[1].target(), Some("Bella"));
    assert_eq!(rows[1].content_hash, H2);
    assert_eq!(rows[2].verdict, Some(Verdict::Reject));
    assert_eq!(rows[2].suggestion, Suggestion::Known);
    assert_eq!(rows[2].target(), None);
    assert_eq!(rows[3].verdict, None);
    assert!(!rows[3].is_decided());

    // The file as `write_decisions` wrote it, edited in place.
    let path = dir.path().join("decisions.csv");
    write_decisions(&path, &[item("q1", "img/q1.jpg", H1, Suggestion::Known)]).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    let edited = written.replace(",,,,\n", ",  Confirm ,,ana,looks right\n");
    assert_ne!(written, edited);
    std::fs::write(&path, edited).unwrap();
    let rows = read_decisions(&path).unwrap();
    assert_eq!(rows[0].verdict, Some(Verdict::Confirm));
    assert_eq!(rows[0].reviewer.as_deref(), Some("ana"));
    assert_eq!(rows[0].note.as_deref(), Some("looks right"));
}

// ---- review page ----

/// A small JPEG (or PNG) with a gradient; returns its path.
fn image_file(dir: &Path, name: &str, w: u32, h: u32) -> PathBuf {
    let img = RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((x + y) % 256) as u8,
        ])
    });
    let p = dir.join(name);
    img.save(&p).unwrap();
    p
}

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Decodes standard base64 (the test's own, to check the encoder).
fn unbase64(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = A.iter().position(|a| *a == c).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The `data:` URIs of the page's `<img>` tags, in order.
fn img_sources(html: &str) -> Vec<&str> {
    html.split("<img ")
        .skip(1)
        .map(|t| {
            let t = t.strip_prefix("src=\"").unwrap();
            &t[..t.find('"').unwrap()]
        })
        .collect()
}

/// Three queries (two known, one new) over four catalogue photos.
fn page_items(dir: &Path) -> Vec<ReviewItem> {
    let q1 = image_file(dir, "q1.jpg", 400, 200);
    let q2 = image_file(dir, "q2.png", 120, 300);
    let q3 = image_file(dir, "q3.jpg", 64, 64);
    let a = image_file(dir, "cat-a.jpg", 300, 300);
    let b = image_file(dir, "cat-b.png", 500, 250);
    let c = image_file(dir, "cat-c.jpg", 80, 160);
    let mut i1 = item("q1", &q1, &sha256_hex(&q1), Suggestion::Known);
    i1.candidates = vec![
        cand("ind-000001", "Amber", 0.91, &a),
        cand("ind-000002", "Blackie", 0.72, &b),
    ];
    let mut i2 = item("q2", &q2, &sha256_hex(&q2), Suggestion::Known);
    i2.suggested = "ind-000002".into();
    i2.candidates = vec![
        cand("ind-000002", "Blackie", 0.88, &b),
        cand("ind-000001", "Amber", 0.75, &a),
        cand("ind-000003", "Cleo", 0.71, &c),
    ];
    let mut i3 = item("q3", &q3, &sha256_hex(&q3), Suggestion::New);
    i3.score = 0.41;
    i3.candidates = vec![cand("ind-000003", "Cleo", 0.41, &c)];
    vec![i1, i2, i3]
}

fn leftovers(dir: &Path, keep: &[&Path]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !keep.contains(&p.as_path()))
        .filter(|p| p.extension().is_none_or(|e| e != "jpg" && e != "png"))
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn review_page_embeds_every_thumbnail() {
    let dir = tempfile::tempdir().unwrap();
    let items = page_items(dir.path());
    let out = dir.path().join("review.html");
    let mut page = ReviewPage::new("Lions, March", "sqlite://cat.db", "megadescriptor", &items);
    assert_eq!(page.thumbnail_px, 224);
    page.thumbnail_px = 64;
    write_review_page(&out, &page).unwrap();
    let html = std::fs::read_to_string(&out).unwrap();

    let n_pictures = items.len() + items.iter().map(|i| i.candidates.len()).sum::<usize>();
    let sources = img_sources(&html);
    assert_eq!(html.matches("<img").count(), n_pictures);
    assert_eq!(sources.len(), n_pictures);
    assert!(!html.contains("class=\"ph\""));
    // No external requests: every image is an embedded JPEG thumbnail.
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<link") && !html.contains("<script"));
    for s in &sources {
        let b64 = s.strip_prefix("data:image/jpeg;base64,").unwrap();
        let jpeg = unbase64(b64);
        let img = image::load_from_memory(&jpeg).unwrap();
        assert!(
            img.width().max(img.height()) <= 64,
            "{}x{}",
            img.width(),
            img.height()
        );
    }
    // q1 (400x200) downscaled to 64x32, aspect kept.
    let q1 = image::load_from_memory(&unbase64(&sources[0][23..])).unwrap();
    assert_eq!((q1.width(), q1.height()), (64, 32));
    // The same catalogue photo gives the same thumbnail everywhere.
    assert_eq!(sources[1], sources[5]); // cat-a under q1 and q2

    for n in 1..=items.len() {
        assert!(html.contains(&format!("id=\"photo-{n}\"")));
    }
    assert!(!html.contains("id=\"photo-4\""));
    // Header: catalogue, model, counts.
    assert!(html.contains("sqlite://cat.db") && html.contains("megadescriptor"));
    assert!(html.contains("3 photos: 2 known, 1 new"), "counts");
    assert!(html.contains("decisions CSV"));
    // The suggested candidate is highlighted: Amber under q1, Blackie under
    // q2, none under the new q3.
    assert_eq!(html.matches("class=\"cand suggested\"").count(), 2);
    let q2_card = &html[html.find("id=\"photo-2\"").unwrap()..html.find("id=\"photo-3\"").unwrap()];
    let hl = q2_card.find("cand suggested").unwrap();
    assert!(q2_card[hl..].find("ind-000002").unwrap() < q2_card[hl..].find("ind-000001").unwrap());
    // Score against threshold.
    assert!(html.contains("0.8000 \u{2265} threshold 0.7000"));
    assert!(html.contains("0.4100 &lt; threshold 0.7000"));

    assert!(
        leftovers(dir.path(), &[&out]).is_empty(),
        "{:?}",
        leftovers(dir.path(), &[&out])
    );
}

#[test]
fn review_page_escapes_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut items = page_items(dir.path());
    items[0].photo = "<script>alert('x')</script>".into();
    items[0].suggested = "ind-<b>&\"1\"".into();
    items[0].candidates[0].individual = "ind-<b>&\"1\"".into();
    items[0].candidates[1].name = "Tom & \"Jerry\" <i>".into();
    items[1].dataset = "</section><h1>".into();
    let out = dir.path().join("review.html");
    let page = ReviewPage::new("<title>&", "cat<1>", "m\"odel", &items);
    write_review_page(&out, &page).unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(!html.contains("<script"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(html.contains("ind-&lt;b&gt;&amp;&quot;1&quot;"));
    assert!(html.contains("Tom &amp; &quot;Jerry&quot; &lt;i&gt;"));
    assert!(html.contains("&lt;/section&gt;&lt;h1&gt;"));
    assert!(html.contains("<title>&lt;title&gt;&amp;</title>"));
    assert!(!html.contains("<i>") && !html.contains("<b>&"));
    assert_eq!(html.matches("<section").count(), 3);
    assert_eq!(html.matches("</section>").count(), 3);
    // The suggested candidate is still found through the escaped id.
    assert_eq!(html.matches("class=\"cand suggested\"").count(), 2);
}

#[test]
fn unreadable_images_become_placeholders() {
    let dir = tempfile::tempdir().unwrap();
    let mut items = page_items(dir.path());
    let missing = dir.path().join("gone-<1>.jpg");
    let corrupt = write(dir.path(), "corrupt.jpg", "this is not a JPEG");
    items[0].path = missing.clone();
    // The corrupt file is a candidate of two queries: one placeholder each.
    items[1].candidates[2].photo = corrupt.clone();
    items[2].candidates[0].photo = corrupt.clone();
    let out = dir.path().join("review.html");
    std::fs::write(&out, "old page").unwrap();
    let page = ReviewPage::new("t", "c", "m", &items);
    write_review_page(&out, &page).unwrap();
    let html = std::fs::read_to_string(&out).unwrap();

    let n_pictures = items.len() + items.iter().map(|i| i.candidates.len()).sum::<usize>();
    let placeholders = html.matches("class=\"ph\"").count();
    assert_eq!(placeholders, 3);
    assert_eq!(html.matches("<img").count(), n_pictures - placeholders);
    assert!(
        html.contains("gone-&lt;1&gt;.jpg"),
        "the missing file is named"
    );
    assert!(html.contains("corrupt.jpg"));
    assert!(html.contains("2 images could not be shown"));
    // Each placeholder states the error.
    let ph = &html[html.find("class=\"ph\"").unwrap()..];
    let ph = &ph[..ph.find("</div>").unwrap()];
    assert!(
        ph.contains("class=\"err\"") && ph.contains("gone-&lt;1&gt;.jpg"),
        "{ph}"
    );
    assert!(leftovers(dir.path(), &[&out]).is_empty());
}

#[test]
fn review_page_is_written_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let items = page_items(dir.path());
    let out = dir.path().join("review.html");
    std::fs::write(&out, "old page").unwrap();

    // A bad thumbnail size fails before writing: the old page stays.
    let mut page = ReviewPage::new("t", "c", "m", &items);
    page.thumbnail_px = 0;
    assert!(matches!(
        write_review_page(&out, &page),
        Err(CatalogueError::Invalid(_))
    ));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "old page");

    // Writing into a folder that does not exist fails and leaves nothing.
    let nowhere = dir.path().join("no/such/dir/review.html");
    page.thumbnail_px = 96;
    assert!(write_review_page(&nowhere, &page).is_err());
    assert!(!dir.path().join("no").exists());

    write_review_page(&out, &page).unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp") || n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "temporary files left: {names:?}");
    assert!(leftovers(dir.path(), &[&out]).is_empty());
}
