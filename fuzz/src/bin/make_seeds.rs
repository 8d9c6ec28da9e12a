//! Writes the seed corpora that the library itself can make, under the
//! folder given as the only argument (`<dir>/<target>/<name>`): small images
//! in every format the decoder sniffs (one JPEG with an EXIF orientation),
//! gallery files (format version 2, written by `Gallery::save`), feature
//! cache files (`write_features_file`) and embedding-cache entries. Run by
//! scripts/fuzz.sh; not a fuzz target.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use reid_core::{BBox, Record, SplitRole};
use reid_index::Gallery;
use reid_local::cache::{CacheKey, write_features_file};
use reid_local::{Features, Keypoint};
use sha2::{Digest, Sha256};

type Res = Result<(), Box<dyn std::error::Error>>;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Res {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format)?;
    Ok(out.into_inner())
}

/// A JPEG with an APP1 EXIF segment holding orientation `o`, inserted after SOI.
fn with_exif_orientation(jpeg: &[u8], o: u16) -> Vec<u8> {
    // TIFF little-endian header, one IFD with one entry: 0x0112 SHORT 1 = o.
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&o.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn images(dir: &Path) -> Res {
    let rgb = RgbImage::from_fn(9, 6, |x, y| Rgb([(x * 28) as u8, (y * 40) as u8, 128]));
    let rgba = RgbaImage::from_fn(5, 4, |x, y| {
        Rgba([(x * 50) as u8, 10, (y * 60) as u8, (x * y * 20) as u8])
    });
    let rgb = DynamicImage::ImageRgb8(rgb);
    let rgba = DynamicImage::ImageRgba8(rgba);
    let gray = DynamicImage::ImageLuma8(rgb.to_luma8());
    let gray16 = DynamicImage::ImageLuma16(rgb.to_luma16());
    let jpeg = encode(&rgb, ImageFormat::Jpeg)?;
    write(dir, "rgb.jpg", &jpeg)?;
    write(dir, "rgb_exif6.jpg", &with_exif_orientation(&jpeg, 6))?;
    write(dir, "gray.jpg", &encode(&gray, ImageFormat::Jpeg)?)?;
    write(dir, "rgb.png", &encode(&rgb, ImageFormat::Png)?)?;
    write(dir, "rgba.png", &encode(&rgba, ImageFormat::Png)?)?;
    write(dir, "gray16.png", &encode(&gray16, ImageFormat::Png)?)?;
    write(dir, "rgb.tif", &encode(&rgb, ImageFormat::Tiff)?)?;
    write(dir, "rgba.webp", &encode(&rgba, ImageFormat::WebP)?)?;
    write(dir, "rgb.bmp", &encode(&rgb, ImageFormat::Bmp)?)?;
    write(dir, "rgba.gif", &encode(&rgba, ImageFormat::Gif)?)?;
    Ok(())
}

fn galleries(dir: &Path) -> Res {
    std::fs::create_dir_all(dir)?;
    let records = vec![
        Record::new("a", "imgs/a.jpg")
            .with_identity("lynx-1")
            .with_split(SplitRole::parse("database"))
            .with_species("lynx")
            .with("note", "x"),
        {
            let mut r = Record::new("b", "/abs/b.png").with_dataset("SeaTurtleID");
            r.bbox = Some(BBox {
                x: 1.0,
                y: 2.0,
                w: 3.0,
                h: 4.0,
            });
            r
        },
    ];
    let emb = ndarray::arr2(&[[1.0f32, 0.0, 0.5], [0.0, 1.0, -0.25]]);
    let g = Gallery::from_parts("model-x", emb.view(), records)?;
    g.save(dir.join("two_rows.gal"))?;
    let one = Gallery::from_parts(
        "m",
        ndarray::arr2(&[[0.5f32]]).view(),
        vec![Record::new("only", "p")],
    )?;
    one.save(dir.join("one_row.gal"))?;
    Ok(())
}

fn features(dir: &Path) -> Res {
    std::fs::create_dir_all(dir)?;
    let kp = |x: f32, y: f32, r: f32| Keypoint {
        x,
        y,
        sigma: 1.6,
        angle: 0.5,
        response: r,
        octave: 0,
    };
    let key = CacheKey([7u8; 32]);
    let kps = vec![kp(3.0, 4.0, 0.9), kp(10.0, 2.0, 0.5), kp(6.0, 8.0, 0.3)];
    let desc: Vec<f32> = (0..kps.len() * 4).map(|i| i as f32 / 10.0).collect();
    let f = Features::builder((32, 24), kps, desc)
        .dim(4)
        .original_size((64, 48))
        .build()?;
    write_features_file(&dir.join("three_kp.rlf"), &key, &f)?;
    let empty = Features::builder((8, 8), vec![], vec![]).dim(2).build()?;
    write_features_file(&dir.join("empty.rlf"), &CacheKey([0u8; 32]), &empty)?;
    Ok(())
}

fn embedding_entries(dir: &Path) -> Res {
    // The entry layout of reid_backbone::cache (not public): magic, dim,
    // values, first 8 bytes of the SHA-256 of everything before.
    for values in [&[0.5f32, -1.0, 2.25][..], &[1.0f32][..]] {
        let mut v = b"REIDEMB1".to_vec();
        v.extend_from_slice(&(values.len() as u32).to_le_bytes());
        for x in values {
            v.extend_from_slice(&x.to_le_bytes());
        }
        let sum = Sha256::digest(&v);
        v.extend_from_slice(&sum[..8]);
        write(dir, &format!("dim{}.emb", values.len()), &v)?;
    }
    Ok(())
}

fn main() -> Res {
    let Some(out) = std::env::args_os().nth(1) else {
        return Err("usage: make_seeds OUT_DIR".into());
    };
    let out = Path::new(&out);
    images(&out.join("image"))?;
    galleries(&out.join("gallery"))?;
    features(&out.join("feature_cache"))?;
    embedding_entries(&out.join("embedding_cache"))?;
    Ok(())
}
