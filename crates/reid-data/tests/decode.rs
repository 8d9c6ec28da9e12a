#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Decoding by content: formats, pixel conversions, EXIF orientation, errors,
//! the pixel limit, reduced-scale JPEG decoding and bounding-box crops.

use std::io::Cursor;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::{ImageBuffer, ImageEncoder, Luma, LumaA, Rgb, RgbImage, Rgba};
use reid_data::decode::{
    AlphaMode, DecodeOptions, SizeHint, apply_orientation, crop_bbox, decode_bytes, decode_file,
    decode_image, image_dimensions, sniff_format,
};
use reid_data::{BBox, DataError};

mod common;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn jpeg_bytes(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

/// Smooth, varied content so JPEG compression behaves realistically.
fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let fx = x as f32 / w as f32;
        let fy = y as f32 / h as f32;
        Rgb([
            (255.0 * fx) as u8,
            (255.0 * fy) as u8,
            (128.0 + 100.0 * (6.0 * fx + 4.0 * fy).sin()) as u8,
        ])
    })
}

fn close(a: [u8; 3], b: [u8; 3], tol: i32) -> bool {
    (0..3).all(|c| (i32::from(a[c]) - i32::from(b[c])).abs() <= tol)
}

fn opts() -> DecodeOptions {
    DecodeOptions::new()
}

#[test]
fn sniffing_ignores_extension() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.png");
    let img = RgbImage::from_pixel(40, 30, Rgb([200, 100, 50]));
    std::fs::write(&p, jpeg_bytes(&img, 95)).unwrap();
    assert_eq!(
        sniff_format(&std::fs::read(&p).unwrap()),
        Some(reid_data::decode::ImageFormat::Jpeg)
    );
    let out = decode_file(&p, &opts()).unwrap();
    assert_eq!(out.dimensions(), (40, 30));
    for p in out.pixels() {
        assert!(close(p.0, [200, 100, 50], 3), "{:?}", p.0);
    }
    // And a PNG named .jpg.
    let q = dir.path().join("y.jpg");
    RgbImage::from_pixel(5, 4, Rgb([1, 2, 3]))
        .save_with_format(&q, image::ImageFormat::Png)
        .unwrap();
    let out = decode_file(&q, &opts()).unwrap();
    assert_eq!(out.dimensions(), (5, 4));
    assert_eq!(out.get_pixel(4, 3).0, [1, 2, 3]);
}

#[test]
fn png_16bit_to_rgb8() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a16.png");
    let img: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_pixel(6, 5, Rgb([65535, 32896, 0]));
    img.save(&p).unwrap();
    let out = decode_file(&p, &opts()).unwrap();
    assert_eq!(out.dimensions(), (6, 5));
    assert_eq!(out.get_pixel(3, 2).0, [255, 128, 0]);
}

#[test]
fn tiff_16bit_to_rgb8() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a16.tif");
    let img: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_pixel(6, 5, Rgb([257 * 10, 257 * 200, 65535]));
    img.save(&p).unwrap();
    let out = decode_file(&p, &opts()).unwrap();
    assert_eq!(out.dimensions(), (6, 5));
    assert_eq!(out.get_pixel(0, 4).0, [10, 200, 255]);
}

#[test]
fn grayscale_and_gray_alpha_to_rgb8() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("g.png");
    ImageBuffer::<Luma<u8>, _>::from_pixel(4, 3, Luma([77]))
        .save(&g)
        .unwrap();
    assert_eq!(
        decode_file(&g, &opts()).unwrap().get_pixel(1, 1).0,
        [77, 77, 77]
    );

    let ga = dir.path().join("ga.png");
    ImageBuffer::<LumaA<u8>, _>::from_pixel(4, 3, LumaA([100, 50]))
        .save(&ga)
        .unwrap();
    assert_eq!(
        decode_file(&ga, &opts()).unwrap().get_pixel(0, 0).0,
        [100, 100, 100]
    );
    let white = opts().with_alpha(AlphaMode::Composite([255, 255, 255]));
    // 100 * 50/255 + 255 * 205/255 = 224.6
    assert_eq!(
        decode_file(&ga, &white).unwrap().get_pixel(0, 0).0,
        [225, 225, 225]
    );

    // Grayscale JPEG too.
    let gj = dir.path().join("g.jpg");
    ImageBuffer::<Luma<u8>, _>::from_pixel(16, 16, Luma([90]))
        .save(&gj)
        .unwrap();
    let out = decode_file(&gj, &opts()).unwrap();
    assert!(close(out.get_pixel(8, 8).0, [90, 90, 90], 2));
}

#[test]
fn rgba_alpha_dropped_or_composited() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.png");
    let mut img = ImageBuffer::<Rgba<u8>, _>::from_pixel(4, 4, Rgba([10, 20, 30, 0]));
    img.put_pixel(1, 1, Rgba([200, 100, 0, 255]));
    img.put_pixel(2, 2, Rgba([200, 100, 0, 128]));
    img.save(&p).unwrap();
    let drop = decode_file(&p, &opts()).unwrap();
    assert_eq!(drop.get_pixel(0, 0).0, [10, 20, 30]);
    assert_eq!(drop.get_pixel(2, 2).0, [200, 100, 0]);
    let comp = decode_file(&p, &opts().with_alpha(AlphaMode::Composite([0, 0, 255]))).unwrap();
    assert_eq!(comp.get_pixel(0, 0).0, [0, 0, 255]);
    assert_eq!(comp.get_pixel(1, 1).0, [200, 100, 0]);
    // 200*128/255 = 100.4; 100*128/255 = 50.2; 255*127/255 = 127
    assert_eq!(comp.get_pixel(2, 2).0, [100, 50, 127]);
}

#[test]
fn cmyk_adobe_jpeg_to_rgb() {
    // Fixture made by Pillow (see fixtures/make_fixtures.py); Pillow decodes
    // it to white, cyan, 127 gray and red.
    let out = decode_file(fixture("cmyk_adobe.jpg"), &opts()).unwrap();
    assert_eq!(out.dimensions(), (32, 32));
    let expect = [
        ((8, 8), [255, 255, 255]),
        ((24, 8), [0, 255, 255]),
        ((8, 24), [127, 127, 127]),
        ((24, 24), [255, 0, 0]),
    ];
    for ((x, y), e) in expect {
        let got = out.get_pixel(x, y).0;
        assert!(close(got, e, 4), "({x},{y}): got {got:?}, expected {e:?}");
    }
}

fn load_png(p: &Path) -> RgbImage {
    image::open(p).unwrap().to_rgb8()
}

fn assert_images_close(a: &RgbImage, b: &RgbImage, tol: i32, what: &str) {
    assert_eq!(a.dimensions(), b.dimensions(), "{what}: dimensions");
    for (x, y, p) in a.enumerate_pixels() {
        let q = b.get_pixel(x, y);
        assert!(
            close(p.0, q.0, tol),
            "{what}: pixel ({x},{y}) {:?} vs {:?}",
            p.0,
            q.0
        );
    }
}

#[test]
fn exif_orientation_all_eight_match_pillow() {
    for n in 1..=8u8 {
        let d = decode_image(
            &fixture(&format!("orient_{n}.jpg")),
            None,
            SizeHint::Full,
            &opts(),
        )
        .unwrap();
        assert_eq!(d.orientation, n);
        let expected = load_png(&fixture(&format!("orient_{n}_expected.png")));
        assert_images_close(&d.image, &expected, 12, &format!("orientation {n}"));
        assert_eq!((d.full_width, d.full_height), d.image.dimensions());
        assert_eq!(
            image_dimensions(&fixture(&format!("orient_{n}.jpg"))).unwrap(),
            d.image.dimensions()
        );
    }
}

#[test]
fn exif_orientation_positions_3_6_8() {
    // Stored 24x16: blocks red, green, blue / white, black, yellow.
    let red = [255, 0, 0];
    let blue = [0, 0, 255];
    let white = [255, 255, 255];
    let yellow = [255, 255, 0];
    let get = |n: u8| decode_file(fixture(&format!("orient_{n}.jpg")), &opts()).unwrap();

    let o3 = get(3); // rotated 180
    assert_eq!(o3.dimensions(), (24, 16));
    assert!(close(o3.get_pixel(3, 3).0, yellow, 12));
    assert!(close(o3.get_pixel(20, 12).0, red, 12));

    let o6 = get(6); // rotate 90 clockwise to display
    assert_eq!(o6.dimensions(), (16, 24));
    assert!(close(o6.get_pixel(3, 3).0, white, 12));
    assert!(close(o6.get_pixel(12, 3).0, red, 12));
    assert!(close(o6.get_pixel(12, 20).0, blue, 12));

    let o8 = get(8); // rotate 90 counter-clockwise to display
    assert_eq!(o8.dimensions(), (16, 24));
    assert!(close(o8.get_pixel(3, 3).0, blue, 12));
    assert!(close(o8.get_pixel(3, 20).0, red, 12));
    assert!(close(o8.get_pixel(12, 20).0, white, 12));
}

#[test]
fn bbox_is_in_oriented_coordinates_for_every_orientation() {
    let boxes = [
        BBox {
            x: 0.0,
            y: 0.0,
            w: 8.0,
            h: 8.0,
        },
        BBox {
            x: 3.0,
            y: 5.0,
            w: 9.0,
            h: 4.0,
        },
        BBox {
            x: 10.0,
            y: 2.0,
            w: 6.0,
            h: 13.0,
        },
    ];
    for n in 1..=8u8 {
        let p = fixture(&format!("orient_{n}.jpg"));
        let full = decode_file(&p, &opts()).unwrap();
        for b in &boxes {
            let cropped = decode_image(&p, Some(b), SizeHint::Full, &opts())
                .unwrap()
                .image;
            let expected = crop_bbox(&full, b, &p).unwrap();
            assert_eq!(cropped, expected, "orientation {n}, bbox {b}");
            assert_eq!(cropped.dimensions(), (b.w as u32, b.h as u32));
        }
    }
}

#[test]
fn apply_orientation_matches_definitions() {
    // 3x2 image with distinct pixels; out(x, y) per EXIF definitions.
    let img = RgbImage::from_fn(3, 2, |x, y| Rgb([x as u8, y as u8, 0]));
    let o5 = apply_orientation(img.clone(), 5); // transpose
    assert_eq!(o5.dimensions(), (2, 3));
    assert_eq!(o5.get_pixel(1, 2).0, [2, 1, 0]);
    let o7 = apply_orientation(img.clone(), 7); // transverse: out(x,y) = in(W-1-y, H-1-x)
    assert_eq!(o7.get_pixel(0, 0).0, [2, 1, 0]);
    assert_eq!(o7.get_pixel(1, 2).0, [0, 0, 0]);
    let o2 = apply_orientation(img.clone(), 2);
    assert_eq!(o2.get_pixel(0, 1).0, [2, 1, 0]);
    let o4 = apply_orientation(img, 4);
    assert_eq!(o4.get_pixel(0, 0).0, [0, 1, 0]);
}

fn expect_path(e: &DataError, p: &Path) {
    assert!(
        e.to_string().contains(&p.display().to_string()),
        "{e} does not name {}",
        p.display()
    );
}

#[test]
fn error_variants_name_the_file() {
    let dir = tempfile::tempdir().unwrap();

    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let e = decode_file(&empty, &opts()).unwrap_err();
    assert!(
        matches!(&e, DataError::EmptyFile { path } if path == &empty),
        "{e:?}"
    );
    expect_path(&e, &empty);

    let full = jpeg_bytes(&gradient(64, 48), 90);
    let trunc = dir.path().join("trunc.png");
    std::fs::write(&trunc, &full[..full.len() / 2]).unwrap();
    let e = decode_file(&trunc, &opts()).unwrap_err();
    assert!(
        matches!(&e, DataError::Decode { path, .. } if path == &trunc),
        "{e:?}"
    );
    expect_path(&e, &trunc);

    let header_only = dir.path().join("header.jpg");
    std::fs::write(&header_only, &full[..40]).unwrap();
    let e = decode_file(&header_only, &opts()).unwrap_err();
    assert!(
        matches!(&e, DataError::Decode { path, .. } if path == &header_only),
        "{e:?}"
    );

    let random = dir.path().join("random.jpg");
    let mut bytes = vec![0u8; 1000];
    let mut s: u32 = 12345;
    for b in &mut bytes {
        s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (s >> 16) as u8;
    }
    bytes[0] = 0x13; // not a magic byte of any format
    std::fs::write(&random, &bytes).unwrap();
    let e = decode_file(&random, &opts()).unwrap_err();
    assert!(
        matches!(&e, DataError::UnsupportedFormat { path, .. } if path == &random),
        "{e:?}"
    );
    expect_path(&e, &random);

    let text = dir.path().join("notes.png");
    std::fs::write(&text, "image_id,identity\n1,lion_3\n").unwrap();
    let e = decode_file(&text, &opts()).unwrap_err();
    match &e {
        DataError::UnsupportedFormat { path, detail } => {
            assert_eq!(path, &text);
            assert!(detail.contains("text"), "{detail}");
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }

    let missing = dir.path().join("missing.jpg");
    let e = decode_file(&missing, &opts()).unwrap_err();
    assert!(
        matches!(&e, DataError::Io { path, .. } if path == &missing),
        "{e:?}"
    );

    // A PNG with a corrupt body.
    let png = dir.path().join("bad.png");
    let mut pb = Vec::new();
    gradient(32, 32)
        .write_to(&mut Cursor::new(&mut pb), image::ImageFormat::Png)
        .unwrap();
    let cut = pb.len() - 30;
    std::fs::write(&png, &pb[..cut]).unwrap();
    let e = decode_file(&png, &opts()).unwrap_err();
    assert!(
        matches!(&e, DataError::Decode { path, .. } if path == &png),
        "{e:?}"
    );
}

#[test]
fn corrupted_jpeg_bodies_never_panic() {
    // Flip bytes all over the entropy-coded data: any outcome but a panic is fine,
    // and errors must name the file.
    let base = jpeg_bytes(&gradient(48, 40), 85);
    let p = PathBuf::from("corrupt.jpg");
    for i in (20..base.len()).step_by(7) {
        let mut b = base.clone();
        b[i] ^= 0xA5;
        if let Err(e) = decode_bytes(&b, &p, None, SizeHint::Full, &opts()) {
            expect_path(&e, &p);
        }
    }
}

/// Sets the frame size in the SOF0 header of a baseline JPEG.
fn patch_sof(bytes: &mut [u8], w: u16, h: u16) {
    let i = bytes.windows(2).position(|s| s == [0xFF, 0xC0]).unwrap();
    bytes[i + 5..i + 7].copy_from_slice(&h.to_be_bytes());
    bytes[i + 7..i + 9].copy_from_slice(&w.to_be_bytes());
}

#[test]
fn pixel_limit_checked_from_header() {
    let dir = tempfile::tempdir().unwrap();
    // The header claims 60000x50000 but the data is that of a 16x16 image:
    // only a header check can report TooLarge (decoding would fail instead).
    let mut b = jpeg_bytes(&gradient(16, 16), 90);
    patch_sof(&mut b, 60000, 50000);
    let p = dir.path().join("bomb.jpg");
    std::fs::write(&p, &b).unwrap();
    let e = decode_file(&p, &opts()).unwrap_err();
    match &e {
        DataError::TooLarge {
            path,
            width,
            height,
            limit,
        } => {
            assert_eq!(path, &p);
            assert_eq!((*width, *height), (60000, 50000));
            assert_eq!(*limit, 100_000_000);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // A configurable limit, PNG path.
    let png = dir.path().join("big.png");
    gradient(64, 64).save(&png).unwrap();
    let small = opts().with_max_pixels(NonZeroU64::new(4095).unwrap());
    assert!(matches!(
        decode_file(&png, &small).unwrap_err(),
        DataError::TooLarge {
            width: 64,
            height: 64,
            limit: 4095,
            ..
        }
    ));
    assert!(
        decode_file(
            &png,
            &opts().with_max_pixels(NonZeroU64::new(4096).unwrap())
        )
        .is_ok()
    );
}

fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let s: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs())
        .sum();
    s / a.as_raw().len() as f64
}

#[test]
fn reduced_scale_picks_smallest_covering_scale() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.jpg");
    std::fs::write(&p, jpeg_bytes(&gradient(800, 600), 92)).unwrap();
    let full = decode_file(&p, &opts()).unwrap();

    let cases = [
        (
            SizeHint::AtLeast {
                width: 100,
                height: 75,
            },
            8,
            (100, 75),
        ),
        (
            SizeHint::AtLeast {
                width: 101,
                height: 75,
            },
            4,
            (200, 150),
        ),
        (SizeHint::ShorterSide(150), 4, (200, 150)),
        (SizeHint::ShorterSide(151), 2, (400, 300)),
        (
            SizeHint::FitWithin {
                width: 100,
                height: 100,
            },
            8,
            (100, 75),
        ),
        (
            SizeHint::AtLeast {
                width: 500,
                height: 10,
            },
            1,
            (800, 600),
        ),
        (SizeHint::Full, 1, (800, 600)),
    ];
    for (hint, denom, dims) in cases {
        let d = decode_image(&p, None, hint, &opts()).unwrap();
        assert_eq!(d.scale_denom, denom, "{hint:?}");
        assert_eq!(d.image.dimensions(), dims, "{hint:?}");
        assert_eq!((d.full_width, d.full_height), (800, 600));
        if denom > 1 {
            let reference = image::imageops::resize(
                &full,
                dims.0,
                dims.1,
                image::imageops::FilterType::Triangle,
            );
            let mad = mean_abs_diff(&d.image, &reference);
            assert!(mad < 2.5, "{hint:?}: mean abs diff {mad}");
        }
    }
    // Disabled: always full scale.
    let d = decode_image(
        &p,
        None,
        SizeHint::AtLeast {
            width: 100,
            height: 75,
        },
        &opts().with_reduced_scale(false),
    )
    .unwrap();
    assert_eq!((d.scale_denom, d.image.dimensions()), (1, (800, 600)));
}

#[test]
fn reduced_scale_scales_the_bbox() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.jpg");
    std::fs::write(&p, jpeg_bytes(&gradient(800, 600), 92)).unwrap();
    let b = BBox {
        x: 400.0,
        y: 200.0,
        w: 320.0,
        h: 240.0,
    };
    let d = decode_image(
        &p,
        Some(&b),
        SizeHint::AtLeast {
            width: 80,
            height: 60,
        },
        &opts(),
    )
    .unwrap();
    assert_eq!(d.scale_denom, 4);
    assert_eq!(d.image.dimensions(), (80, 60));
    let full = decode_file(&p, &opts()).unwrap();
    let reference = image::imageops::resize(
        &crop_bbox(&full, &b, &p).unwrap(),
        80,
        60,
        image::imageops::FilterType::Triangle,
    );
    let mad = mean_abs_diff(&d.image, &reference);
    assert!(mad < 2.5, "mean abs diff {mad}");
}

#[test]
fn reduced_scale_with_orientation() {
    // An orientation-6 photo: the hint refers to the upright image.
    let p = fixture("orient_6.jpg");
    let d = decode_image(
        &p,
        None,
        SizeHint::AtLeast {
            width: 8,
            height: 12,
        },
        &opts(),
    )
    .unwrap();
    assert_eq!(d.scale_denom, 2);
    assert_eq!(d.image.dimensions(), (8, 12));
    assert_eq!((d.full_width, d.full_height), (16, 24));
}

#[test]
fn bbox_crop_exact_pixels_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("coords.png");
    RgbImage::from_fn(20, 20, |x, y| Rgb([x as u8, y as u8, 7]))
        .save(&p)
        .unwrap();
    let dec = |b: BBox| decode_image(&p, Some(&b), SizeHint::Full, &opts());

    let c = dec(BBox {
        x: 3.0,
        y: 4.0,
        w: 5.0,
        h: 6.0,
    })
    .unwrap()
    .image;
    assert_eq!(c.dimensions(), (5, 6));
    assert_eq!(c.get_pixel(0, 0).0, [3, 4, 7]);
    assert_eq!(c.get_pixel(4, 5).0, [7, 9, 7]);

    // Fractional edges: floor left/top, ceil right/bottom.
    let c = dec(BBox {
        x: 2.5,
        y: 3.2,
        w: 1.0,
        h: 1.0,
    })
    .unwrap()
    .image;
    assert_eq!(c.dimensions(), (2, 2));
    assert_eq!(c.get_pixel(0, 0).0, [2, 3, 7]);

    // Partly outside: clamped.
    let c = dec(BBox {
        x: -5.0,
        y: 15.0,
        w: 10.0,
        h: 10.0,
    })
    .unwrap()
    .image;
    assert_eq!(c.dimensions(), (5, 5));
    assert_eq!(c.get_pixel(0, 0).0, [0, 15, 7]);

    for bad in [
        BBox {
            x: 30.0,
            y: 3.0,
            w: 5.0,
            h: 5.0,
        },
        BBox {
            x: -10.0,
            y: 3.0,
            w: 10.0,
            h: 5.0,
        },
        BBox {
            x: 3.0,
            y: 3.0,
            w: 0.0,
            h: 5.0,
        },
        BBox {
            x: 3.0,
            y: 3.0,
            w: -2.0,
            h: 5.0,
        },
        BBox {
            x: f32::NAN,
            y: 3.0,
            w: 2.0,
            h: 5.0,
        },
    ] {
        let e = dec(bad).unwrap_err();
        match &e {
            DataError::BboxOutOfBounds {
                path,
                width,
                height,
                ..
            } => {
                assert_eq!(path, &p);
                assert_eq!((*width, *height), (20, 20));
            }
            other => panic!("{bad}: expected BboxOutOfBounds, got {other:?}"),
        }
    }
}

#[test]
fn lion_dataset_decodes() {
    let Some(shared) = common::shared() else {
        return;
    };
    let root = shared.join("datasets/lion");
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "png") {
                files.push(p);
            }
        }
    }
    assert_eq!(files.len(), 740);
    use rayon::prelude::*;
    let errors: Vec<String> = files
        .par_iter()
        .filter_map(|f| match decode_file(f, &opts()) {
            Ok(img) => {
                (img.width() == 0 || img.height() == 0).then(|| format!("{}: empty", f.display()))
            }
            Err(e) => Some(e.to_string()),
        })
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}
