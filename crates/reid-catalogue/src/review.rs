//! The review page: one self-contained HTML file showing, for each new
//! photo, what `animal-reid identify` suggests and the catalogue photos it
//! was matched with, for the person who fills in the decisions CSV
//! ([`crate::decisions`]).
//!
//! The page makes no request of its own: the pictures are embedded as
//! `data:` URIs of downscaled JPEG thumbnails, and the style is inline.
//! Each distinct image file is decoded once ([`reid_data::decode_image`]:
//! by content, EXIF orientation applied, JPEGs at reduced scale) and
//! downscaled, in parallel. An image that cannot be read or decoded does not
//! fail the page: it is replaced by a box that names the file and the error.
//! Each photo's card has the anchor `#photo-N` (N from 1, in the order of
//! the items, which is also the order of the CSV rows).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use image::DynamicImage;
use image::codecs::jpeg::JpegEncoder;
use rayon::prelude::*;
use reid_data::decode::{DecodeOptions, SizeHint, decode_image};
use reid_eval::report::{base64, escape};

use crate::decisions::{ReviewItem, Suggestion};
use crate::error::{CatalogueError, Result};

/// The default thumbnail size (longer side, pixels).
pub const DEFAULT_THUMBNAIL_PX: u32 = 224;

/// The thumbnail sizes [`write_review_page`] accepts.
pub const THUMBNAIL_PX_RANGE: std::ops::RangeInclusive<u32> = 16..=2048;

/// JPEG quality of the thumbnails.
const JPEG_QUALITY: u8 = 80;

/// What the review page shows.
#[derive(Debug, Clone)]
pub struct ReviewPage<'a> {
    /// The page title.
    pub title: String,
    /// The catalogue (its location or name).
    pub catalogue: String,
    /// The model that embedded the photos.
    pub model: String,
    /// The query photos, in the order of the decisions CSV.
    pub items: &'a [ReviewItem],
    /// Longer side of the thumbnails in pixels ([`DEFAULT_THUMBNAIL_PX`]),
    /// within [`THUMBNAIL_PX_RANGE`].
    pub thumbnail_px: u32,
    /// Reads photos registered by URL or under a mapped prefix (`None`:
    /// every path is read as it is).
    pub photos: Option<&'a crate::storage::PhotoFetcher>,
}

impl<'a> ReviewPage<'a> {
    /// A page with [`DEFAULT_THUMBNAIL_PX`] thumbnails.
    pub fn new(
        title: impl Into<String>,
        catalogue: impl Into<String>,
        model: impl Into<String>,
        items: &'a [ReviewItem],
    ) -> Self {
        ReviewPage {
            title: title.into(),
            catalogue: catalogue.into(),
            model: model.into(),
            items,
            thumbnail_px: DEFAULT_THUMBNAIL_PX,
            photos: None,
        }
    }
}

/// Writes the review page to `path` (atomically).
///
/// Fails only on a thumbnail size outside [`THUMBNAIL_PX_RANGE`]
/// ([`CatalogueError::Invalid`]) and when the file cannot be written;
/// unreadable images become placeholders.
pub fn write_review_page(path: &Path, page: &ReviewPage<'_>) -> Result<()> {
    let html = review_page_html(page)?;
    reid_core::fs::write_atomic(path, html.as_bytes())?;
    Ok(())
}

/// The review page as HTML (what [`write_review_page`] writes).
pub fn review_page_html(page: &ReviewPage<'_>) -> Result<String> {
    if !THUMBNAIL_PX_RANGE.contains(&page.thumbnail_px) {
        return Err(CatalogueError::Invalid(format!(
            "review page thumbnail size {} px is outside {}..={}",
            page.thumbnail_px,
            THUMBNAIL_PX_RANGE.start(),
            THUMBNAIL_PX_RANGE.end()
        )));
    }
    let thumbs = thumbnails(page.items, page.thumbnail_px, page.photos);
    Ok(render(page, &thumbs))
}

/// A thumbnail as a `data:` URI, or why there is none.
type Thumb = std::result::Result<String, String>;

/// The thumbnails of every distinct file of `items`, decoded in parallel.
fn thumbnails<'a>(
    items: &'a [ReviewItem],
    px: u32,
    photos: Option<&crate::storage::PhotoFetcher>,
) -> HashMap<&'a Path, Thumb> {
    let mut files: Vec<&Path> = items
        .iter()
        .flat_map(|it| {
            std::iter::once(it.path.as_path())
                .chain(it.candidates.iter().map(|c| c.photo.as_path()))
        })
        .collect();
    files.sort_unstable();
    files.dedup();
    files
        .into_par_iter()
        .map(|f| {
            let t = match photos.map(|p| p.local(f)) {
                None => thumbnail(f, px),
                Some(Ok(local)) => thumbnail(&local, px),
                Some(Err(e)) => Err(e.to_string()),
            };
            (f, t)
        })
        .collect()
}

/// Decodes `file` and encodes a JPEG whose longer side is at most `px`.
fn thumbnail(file: &Path, px: u32) -> Thumb {
    let decoded = decode_image(
        file,
        None,
        SizeHint::longer_side(px),
        &DecodeOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    let img = decoded.image;
    let img = if img.width().max(img.height()) > px {
        DynamicImage::ImageRgb8(img).thumbnail(px, px).into_rgb8()
    } else {
        img
    };
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
        .encode_image(&img)
        .map_err(|e| format!("{}: cannot encode the thumbnail: {e}", file.display()))?;
    Ok(format!("data:image/jpeg;base64,{}", base64(&jpeg)))
}

/// A score with 4 decimals, a dash when it is not finite.
fn score(v: f32) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "\u{2013}".into()
    }
}

/// `score vs threshold`, with the comparison spelled out.
fn versus(s: f32, t: f32) -> String {
    let op = if !(s.is_finite() && t.is_finite()) {
        "vs"
    } else if s >= t {
        "\u{2265}"
    } else {
        "<"
    };
    format!("{} {op} threshold {}", score(s), score(t))
}

/// The picture of `file`: an `<img>` or the placeholder naming the error.
fn picture(h: &mut String, thumbs: &HashMap<&Path, Thumb>, file: &Path, alt: &str) {
    match thumbs.get(file) {
        Some(Ok(uri)) => {
            let _ = write!(
                h,
                "<img src=\"{uri}\" alt=\"{}\" title=\"{}\">",
                escape(alt),
                escape(&file.display().to_string())
            );
        }
        other => {
            let error = match other {
                Some(Err(e)) => e.as_str(),
                _ => "not decoded",
            };
            let name = file.file_name().map_or_else(
                || file.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let _ = write!(
                h,
                "<div class=\"ph\" title=\"{}\"><b>image unavailable</b>\
                 <span class=\"file\">{}</span><span class=\"err\">{}</span></div>",
                escape(&file.display().to_string()),
                escape(&name),
                escape(error)
            );
        }
    }
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f4f4f2;color:#1e1e1e}\
header{background:#fff;border-bottom:1px solid #ddd;padding:12px 20px}\
h1{font-size:1.4em;margin:0 0 6px}\
.meta,.counts,.how{margin:3px 0}\
.how{color:#444}\
main{padding:12px 20px}\
.card{background:#fff;border:1px solid #ddd;border-left:6px solid #888;border-radius:4px;margin:0 0 14px;padding:10px;display:flex;gap:16px;flex-wrap:wrap}\
.card.known{border-left-color:#2a7de1}\
.card.new{border-left-color:#e18a2a}\
.query{flex:0 0 auto}\
.info{flex:1 1 300px;min-width:0}\
h2{font-size:1.05em;margin:0 0 6px;word-break:break-all}\
h2 a{color:inherit;text-decoration:none}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;margin:0 0 8px}\
dt{color:#666}dd{margin:0;word-break:break-all}\
.cands{display:flex;gap:10px;flex-wrap:wrap}\
figure{margin:0;padding:4px;border:2px solid transparent;border-radius:4px;max-width:var(--px)}\
figure.suggested{border-color:#2a9d3a;background:#eef8ef}\
figcaption{font-size:.85em;word-break:break-all}\
.tag{display:inline-block;background:#2a9d3a;color:#fff;border-radius:3px;padding:0 4px;font-size:.8em}\
img{display:block;max-width:var(--px);max-height:var(--px)}\
.ph{box-sizing:border-box;width:var(--px);height:var(--px);overflow:auto;background:#fbe9e9;border:2px dashed #c0392b;padding:6px;font-size:.8em;display:flex;flex-direction:column;gap:4px}\
.ph .file{font-weight:bold;word-break:break-all}\
.ph .err{color:#7a1f1f;word-break:break-word}\
";

fn render(page: &ReviewPage<'_>, thumbs: &HashMap<&Path, Thumb>) -> String {
    let items = page.items;
    let known = items
        .iter()
        .filter(|i| i.suggestion == Suggestion::Known)
        .count();
    let new = items.len() - known;
    let groups = {
        let mut g: Vec<(&str, &str)> = items
            .iter()
            .filter(|i| i.suggestion == Suggestion::New)
            .map(|i| (i.dataset.as_str(), i.suggested.as_str()))
            .collect();
        g.sort_unstable();
        g.dedup();
        g.len()
    };
    let failed = thumbs.values().filter(|t| t.is_err()).count();
    let plural = |n: usize, one: &str, many: &str| {
        if n == 1 {
            format!("{n} {one}")
        } else {
            format!("{n} {many}")
        }
    };

    let mut h = String::with_capacity(4096 + thumbs.len() * 16 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>:root{{--px:{}px}}{STYLE}</style></head><body>\n<header><h1>{}</h1>",
        escape(&page.title),
        page.thumbnail_px,
        escape(&page.title)
    );
    let _ = write!(
        h,
        "<p class=\"meta\">Catalogue <b>{}</b> &middot; model <b>{}</b></p>",
        escape(&page.catalogue),
        escape(&page.model)
    );
    let _ = write!(
        h,
        "<p class=\"counts\">{}: {} known, {} new ({})",
        plural(items.len(), "photo", "photos"),
        known,
        new,
        plural(groups, "new group", "new groups")
    );
    if failed > 0 {
        let _ = write!(
            h,
            " &middot; <b>{} could not be shown</b>",
            plural(failed, "image", "images")
        );
    }
    h.push_str("</p>");
    h.push_str(
        "<p class=\"how\">How to review: for each photo below, fill the <b>verdict</b> column \
         of the decisions CSV written with this page (same order, one row per photo): \
         <b>confirm</b> (the photo is the suggested individual, or the one named in \
         <b>individual</b>), <b>new</b> (a new individual; rows with the same \
         <b>individual</b> label become one), <b>reject</b> (the suggestion is wrong), \
         or leave it empty / <b>skip</b>; then run <code>animal-reid apply</code>.</p>",
    );
    h.push_str("</header>\n<main>\n");

    for (n, item) in items.iter().enumerate() {
        let n = n + 1;
        let class = item.suggestion.as_str();
        let _ = write!(h, "<section class=\"card {class}\" id=\"photo-{n}\">");
        h.push_str("<div class=\"query\">");
        picture(&mut h, thumbs, &item.path, &item.photo);
        h.push_str("</div><div class=\"info\">");
        let _ = write!(
            h,
            "<h2><a href=\"#photo-{n}\">{n}. {}</a></h2><dl>",
            escape(&item.photo)
        );
        let _ = write!(h, "<dt>dataset</dt><dd>{}</dd>", escape(&item.dataset));
        if let Some(species) = &item.species {
            let _ = write!(h, "<dt>species</dt><dd>{}</dd>", escape(species));
        }
        match item.suggestion {
            Suggestion::Known => {
                let name = item
                    .candidates
                    .iter()
                    .find(|c| c.individual == item.suggested)
                    .map(|c| format!(" ({})", escape(&c.name)))
                    .unwrap_or_default();
                let _ = write!(
                    h,
                    "<dt>suggestion</dt><dd>known: <b>{}</b>{name}</dd>",
                    escape(&item.suggested)
                );
            }
            Suggestion::New => {
                let _ = write!(
                    h,
                    "<dt>suggestion</dt><dd>new individual, group <b>{}</b></dd>",
                    escape(&item.suggested)
                );
            }
        }
        let _ = write!(
            h,
            "<dt>score</dt><dd>{}</dd><dt>file</dt><dd>{}</dd></dl>",
            escape(&versus(item.score, item.threshold)),
            escape(&item.path.display().to_string())
        );
        if item.candidates.is_empty() {
            h.push_str("<p>No catalogue candidates.</p>");
        } else {
            h.push_str("<div class=\"cands\">");
            for c in &item.candidates {
                let suggested =
                    item.suggestion == Suggestion::Known && c.individual == item.suggested;
                let _ = write!(
                    h,
                    "<figure class=\"cand{}\">",
                    if suggested { " suggested" } else { "" }
                );
                picture(&mut h, thumbs, &c.photo, &c.individual);
                let _ = write!(
                    h,
                    "<figcaption>{}<b>{}</b> {}<br>score {}</figcaption></figure>",
                    if suggested {
                        "<span class=\"tag\">suggested</span> "
                    } else {
                        ""
                    },
                    escape(&c.individual),
                    escape(&c.name),
                    score(c.score)
                );
            }
            h.push_str("</div>");
        }
        h.push_str("</div></section>\n");
    }
    h.push_str("</main></body></html>\n");
    h
}
