#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Preprocessing: normalisation values, shapes, crop/letterbox geometry,
//! parallel == serial, the prefetching iterator, and augmentations.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use ndarray::{Array3, Axis, s};
use rand::SeedableRng;
use reid_data::ParamGuard;
use reid_data::augment::{
    AugmentContext, ColorJitterParams, Compose, HorizontalFlipParams, RandomResizedCropParams,
    RotationParams, Transform,
};
use reid_data::batch::{BatchIter, PrefetchParams};
use reid_data::preprocess::{
    IMAGENET_MEAN, IMAGENET_STD, Interpolation, PreprocessParams, ResizeMode, preprocess_files,
};
use reid_data::{DataError, Record};

fn approx(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-5
}

fn photo(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = (x * 7 + y * 13 + seed * 31) % 256;
        Rgb([
            v as u8,
            ((x * 255) / w) as u8,
            (((y + seed) * 255) / (h + seed)) as u8,
        ])
    })
}

fn write_jpegs(dir: &Path, n: usize, w: u32, h: u32) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("img_{i}.png")); // JPEG content, .png name
            photo(w + i as u32 * 8, h, i as u32)
                .save_with_format(&p, image::ImageFormat::Jpeg)
                .unwrap();
            Record::new(format!("id{i}"), p)
        })
        .collect()
}

#[test]
fn normalisation_hand_worked() {
    let pre = PreprocessParams::new(6).height(8).check().unwrap();
    let img = RgbImage::from_pixel(20, 10, Rgb([255, 0, 128]));
    let t = pre.tensor(&img).unwrap();
    assert_eq!(t.shape(), &[3, 8, 6]);
    let r = (1.0 - 0.485) / 0.229; // 2.2489083
    let g = (0.0 - 0.456) / 0.224; // -2.0357143
    let b = (128.0 / 255.0 - 0.406) / 0.225; // 0.4264924
    assert!(approx(r, 2.248_908_3) && approx(g, -2.035_714_3) && approx(b, 0.426_492_4));
    for ((c, _, _), v) in t.indexed_iter() {
        let e = [r, g, b][c];
        assert!(approx(*v, e), "channel {c}: {v} vs {e}");
    }
    // Custom statistics.
    let pre = PreprocessParams::new(2)
        .mean([0.5; 3])
        .std([0.5; 3])
        .check()
        .unwrap();
    let t = pre
        .tensor(&RgbImage::from_pixel(2, 2, Rgb([255, 0, 51])))
        .unwrap();
    assert!(approx(t[[0, 1, 1]], 1.0) && approx(t[[1, 0, 0]], -1.0) && approx(t[[2, 0, 1]], -0.6));
    assert_eq!(IMAGENET_MEAN, [0.485, 0.456, 0.406]);
    assert_eq!(IMAGENET_STD, [0.229, 0.224, 0.225]);
}

#[test]
fn invalid_params_rejected() {
    assert!(matches!(
        PreprocessParams::new(5).height(0).check().unwrap_err(),
        DataError::InvalidParam { name: "size", .. }
    ));
    assert!(matches!(
        PreprocessParams::new(224)
            .resize(ResizeMode::ShorterSideCrop { shorter: 200 })
            .check()
            .unwrap_err(),
        DataError::InvalidParam {
            name: "shorter",
            ..
        }
    ));
    assert!(matches!(
        PreprocessParams::new(4)
            .mean([0.0; 3])
            .std([1.0, 0.0, 1.0])
            .check()
            .unwrap_err(),
        DataError::InvalidParam { name: "std", .. }
    ));
    let name = |e: DataError| match e {
        DataError::InvalidParam { name, reason } => format!("{name}: {reason}"),
        other => format!("{other}"),
    };
    let err = |r: Result<(), DataError>| name(r.unwrap_err());
    assert!(err(PrefetchParams::default().batch_size(0).check_ref()).starts_with("batch_size: 0"));
    assert!(err(PrefetchParams::default().depth(0).check_ref()).starts_with("depth: 0"));
    assert!(PrefetchParams::default().batch_size(4).check().is_ok());
    let e = err(RandomResizedCropParams::new(8)
        .scale((0.5, 0.2))
        .check_ref());
    assert!(e.starts_with("scale: range (0.5, 0.2)"), "{e}");
    let e = err(RandomResizedCropParams::new(8).width(0).check_ref());
    assert!(e.starts_with("size: output size 0x8"), "{e}");
    assert!(err(HorizontalFlipParams::default().p(1.5).check_ref()).starts_with("p: 1.5"));
    let e = err(ColorJitterParams::default().hue(0.7).check_ref());
    assert!(e.starts_with("hue: 0.7"), "{e}");
    let e = err(ColorJitterParams::default().contrast(-0.1).check_ref());
    assert!(e.starts_with("contrast: -0.1"), "{e}");
    let e = err(RotationParams::default().degrees((10.0, -10.0)).check_ref());
    assert!(e.starts_with("degrees: range (10, -10)"), "{e}");
}

#[test]
fn centre_crop_position_on_asymmetric_image() {
    // 301x100, red channel = x / 2 (x <= 300), no resize needed (shorter = 100).
    let img = RgbImage::from_fn(301, 100, |x, y| Rgb([(x / 2) as u8, y as u8, 0]));
    let pre = PreprocessParams::new(100)
        .resize(ResizeMode::ShorterSideCrop { shorter: 100 })
        .mean([0.0; 3])
        .std([1.0 / 255.0; 3]) // output = pixel value
        .check()
        .unwrap();
    let out = pre.resize(&img).unwrap();
    assert_eq!(out.dimensions(), (100, 100));
    // left = round_half_even(201 / 2 = 100.5) = 100
    for j in [0u32, 1, 57, 99] {
        assert_eq!(out.get_pixel(j, 5).0, [((100 + j) / 2) as u8, 5, 0]);
    }
    let t = pre.tensor(&img).unwrap();
    assert!((t[[0, 5, 1]] - 50.0).abs() < 1e-3 && (t[[1, 7, 3]] - 7.0).abs() < 1e-3);

    // Tall image with a resize: 60x180 -> 100x300, crop rows 100..200.
    let tall = RgbImage::from_fn(60, 180, |_, y| {
        Rgb([
            if y < 60 { 255 } else { 0 },
            if (60..120).contains(&y) { 255 } else { 0 },
            0,
        ])
    });
    let out = pre.resize(&tall).unwrap();
    assert_eq!(out.dimensions(), (100, 100));
    for y in [2u32, 50, 97] {
        assert_eq!(out.get_pixel(50, y).0, [0, 255, 0], "row {y}");
    }
}

#[test]
fn letterbox_padding() {
    let pre = PreprocessParams::new(100)
        .resize(ResizeMode::Letterbox { pad: [0, 0, 255] })
        .check()
        .unwrap();
    let img = RgbImage::from_pixel(200, 100, Rgb([255, 0, 0]));
    let out = pre.resize(&img).unwrap();
    // 100x50 placed at top = 25.
    assert_eq!(out.get_pixel(50, 24).0, [0, 0, 255]);
    assert_eq!(out.get_pixel(50, 25).0, [255, 0, 0]);
    assert_eq!(out.get_pixel(0, 74).0, [255, 0, 0]);
    assert_eq!(out.get_pixel(99, 75).0, [0, 0, 255]);
    let t = pre.tensor(&img).unwrap();
    let blue = (1.0 - 0.406) / 0.225;
    assert!(approx(t[[2, 10, 10]], blue) && approx(t[[0, 50, 50]], (1.0 - 0.485) / 0.229));
    // Exact mode ignores the aspect ratio.
    let exact = PreprocessParams::new(100).check().unwrap();
    assert_eq!(exact.resize(&img).unwrap().get_pixel(50, 5).0, [255, 0, 0]);
}

#[test]
fn batch_shape_ids_and_parallel_equals_serial() {
    let dir = tempfile::tempdir().unwrap();
    let records = write_jpegs(dir.path(), 6, 400, 300);
    for (mode, interp) in [
        (
            ResizeMode::ShorterSideCrop { shorter: 146 },
            Interpolation::Bicubic,
        ),
        (ResizeMode::Exact, Interpolation::Bilinear),
        (
            ResizeMode::Letterbox {
                pad: [114, 114, 114],
            },
            Interpolation::Bilinear,
        ),
    ] {
        let pre = PreprocessParams::new(128)
            .resize(mode)
            .interpolation(interp)
            .check()
            .unwrap();
        let par = pre.batch(&records).unwrap();
        assert_eq!(par.images.shape(), &[6, 3, 128, 128]);
        assert_eq!(par.ids, vec!["id0", "id1", "id2", "id3", "id4", "id5"]);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let ser = pool.install(|| pre.batch(&records)).unwrap();
        assert_eq!(par, ser, "{mode:?}");
        // Each item equals its own single-image load.
        let one: Array3<f32> = pre.load(&records[3].path, None).unwrap();
        assert_eq!(par.images.index_axis(Axis(0), 3), one);
        // The file-list function agrees.
        let paths: Vec<PathBuf> = records.iter().map(|r| r.path.clone()).collect();
        assert_eq!(preprocess_files(&paths, &pre).unwrap(), par.images);
    }
}

#[test]
fn batch_errors_name_the_file_and_partial_skips() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = write_jpegs(dir.path(), 4, 64, 48);
    let bad = dir.path().join("bad.jpg");
    std::fs::write(&bad, b"not an image").unwrap();
    records.insert(2, Record::new("bad", &bad));
    let pre = PreprocessParams::new(32).check().unwrap();
    let e = pre.batch(&records).unwrap_err();
    assert!(e.to_string().contains("bad.jpg"), "{e}");

    let part = pre.batch_partial(&records);
    assert_eq!(part.batch.ids, vec!["id0", "id1", "id2", "id3"]);
    assert_eq!(part.batch.images.shape(), &[4, 3, 32, 32]);
    assert_eq!(part.failed.len(), 1);
    assert_eq!(part.failed[0].0, 2);
    assert!(matches!(&part.failed[0].1, DataError::UnsupportedFormat { path, .. } if path == &bad));
    let good = pre.batch(&[records[3].clone()]).unwrap();
    assert_eq!(part.batch.images.slice(s![2..3, .., .., ..]), good.images);

    let each = pre.load_each(&records);
    assert_eq!(each.iter().filter(|r| r.is_err()).count(), 1);
    assert!(each[2].is_err());
}

#[test]
fn bbox_records_are_cropped() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("halves.png");
    // Left half red, right half green (lossless PNG).
    RgbImage::from_fn(100, 50, |x, _| {
        if x < 50 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 255, 0])
        }
    })
    .save(&p)
    .unwrap();
    let mut r = Record::new("r", &p);
    r.bbox = Some(reid_data::BBox {
        x: 60.0,
        y: 0.0,
        w: 40.0,
        h: 50.0,
    });
    let pre = PreprocessParams::new(16).check().unwrap();
    let b = pre.batch(&[r]).unwrap();
    let green = (1.0 - 0.456) / 0.224;
    assert!(
        b.images
            .slice(s![0, 1, .., ..])
            .iter()
            .all(|&v| approx(v, green))
    );
}

#[test]
fn prefetch_yields_same_batches_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = write_jpegs(dir.path(), 10, 96, 64);
    let bad = dir.path().join("broken.jpg");
    std::fs::write(&bad, b"").unwrap();
    records[4] = Record::new("broken", &bad);
    let pre = PreprocessParams::new(48)
        .resize(ResizeMode::ShorterSideCrop { shorter: 56 })
        .check()
        .unwrap();
    let it = BatchIter::new(
        records.clone(),
        pre.clone(),
        PrefetchParams::default()
            .batch_size(3)
            .depth(2)
            .check()
            .unwrap(),
    );
    assert_eq!(it.remaining(), 4);
    let got: Vec<_> = it.collect();
    assert_eq!(got.len(), 4);
    for (i, (b, chunk)) in got.iter().zip(records.chunks(3)).enumerate() {
        if i == 1 {
            let e = b.as_ref().unwrap_err();
            assert!(
                matches!(e, DataError::EmptyFile { path } if path == &bad),
                "{e:?}"
            );
        } else {
            let b = b.as_ref().unwrap();
            assert_eq!(b, &pre.batch(chunk).unwrap(), "batch {i}");
        }
    }
    assert_eq!(got[3].as_ref().unwrap().images.shape(), &[1, 3, 48, 48]);
}

#[test]
fn dropping_prefetch_iterator_stops_worker() {
    let dir = tempfile::tempdir().unwrap();
    let records = write_jpegs(dir.path(), 3, 64, 48);
    let many: Vec<Record> = (0..200).map(|i| records[i % 3].clone()).collect();
    let pre = PreprocessParams::new(32).check().unwrap();
    let mut it = BatchIter::new(
        many,
        pre,
        PrefetchParams::default().batch_size(2).check().unwrap(),
    );
    let first = it.next().unwrap().unwrap();
    assert_eq!(first.ids.len(), 2);
    let t = std::time::Instant::now();
    drop(it); // must return promptly rather than computing the 99 remaining batches
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
}

fn asymmetric(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 5) as u8, (y * 3) as u8, ((x + y) % 7) as u8])
    })
}

#[test]
fn augment_deterministic_with_seed_and_sizes() {
    let aug = Compose::new()
        .then(RandomResizedCropParams::new(40).height(30).check().unwrap())
        .then(HorizontalFlipParams::default().check().unwrap())
        .then(
            ColorJitterParams::default()
                .brightness(0.4)
                .contrast(0.4)
                .saturation(0.4)
                .hue(0.1)
                .check()
                .unwrap(),
        )
        .then(
            RotationParams::default()
                .degrees((-15.0, 15.0))
                .check()
                .unwrap(),
        );
    let img = asymmetric(50, 60);
    let ctx = AugmentContext {
        species: Some("lion"),
    };
    let a = aug.apply_seeded(img.clone(), &ctx, 42);
    let b = aug.apply_seeded(img.clone(), &ctx, 42);
    let c = aug.apply_seeded(img.clone(), &ctx, 43);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.dimensions(), (40, 30));
    assert_eq!(c.dimensions(), (40, 30));
    // Through the trait with an explicit generator.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    assert_eq!(aug.apply(img, &ctx, &mut rng), a);
}

#[test]
fn flip_disabled_for_species_never_flips() {
    let img = asymmetric(20, 10);
    let flip = HorizontalFlipParams::default()
        .p(1.0)
        .disable_for_species(["Lynx", "sea turtle"])
        .check()
        .unwrap();
    let flipped = image::imageops::flip_horizontal(&img);
    for seed in 0..20 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let lynx = AugmentContext {
            species: Some(" lynx "),
        };
        assert_eq!(flip.apply(img.clone(), &lynx, &mut rng), img);
        let turtle = AugmentContext {
            species: Some("Sea Turtle"),
        };
        assert_eq!(flip.apply(img.clone(), &turtle, &mut rng), img);
        let lion = AugmentContext {
            species: Some("lion"),
        };
        assert_eq!(flip.apply(img.clone(), &lion, &mut rng), flipped);
        assert_eq!(
            flip.apply(img.clone(), &AugmentContext::default(), &mut rng),
            flipped
        );
    }
    // p = 0 never flips.
    let never = HorizontalFlipParams::default().p(0.0).check().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    assert_eq!(
        never.apply(img.clone(), &AugmentContext::default(), &mut rng),
        img
    );
}

#[test]
fn rotation_and_jitter_values() {
    let img = asymmetric(8, 8);
    let rot = RotationParams::default()
        .degrees((90.0, 90.0))
        .fill([9, 9, 9])
        .check()
        .unwrap();
    // 90 degrees counter-clockwise on a square image is an exact pixel permutation.
    assert_eq!(rot.rotate(&img, 90.0), image::imageops::rotate270(&img));
    assert_eq!(rot.rotate(&img, 0.0), img);
    // Rotating a non-square image by 90 keeps the size and fills uncovered corners.
    let wide = RgbImage::from_pixel(20, 10, Rgb([200, 200, 200]));
    let r = rot.rotate(&wide, 90.0);
    assert_eq!(r.dimensions(), (20, 10));
    assert_eq!(r.get_pixel(0, 5).0, [9, 9, 9]);
    assert_eq!(r.get_pixel(10, 5).0, [200, 200, 200]);

    // Brightness only, on a constant image: stays constant, factor within [0.5, 1.5].
    let flat = RgbImage::from_pixel(6, 6, Rgb([100, 100, 100]));
    let j = ColorJitterParams::default()
        .brightness(0.5)
        .check()
        .unwrap();
    for seed in 0..10 {
        let out =
            Compose::new()
                .then(j)
                .apply_seeded(flat.clone(), &AugmentContext::default(), seed);
        let v = out.get_pixel(0, 0).0[0];
        assert!((50..=150).contains(&v), "{v}");
        assert!(out.pixels().all(|p| p.0 == [v, v, v]));
    }
    // No jitter at all is the identity.
    let none = ColorJitterParams::default().check().unwrap();
    assert_eq!(
        Compose::new()
            .then(none)
            .apply_seeded(img.clone(), &AugmentContext::default(), 3),
        img
    );
}

#[test]
fn random_resized_crop_full_scale_keeps_content() {
    // scale (1, 1) and ratio equal to the image's: the crop is the whole image.
    let img = RgbImage::from_pixel(40, 20, Rgb([30, 60, 90]));
    let rrc = RandomResizedCropParams::new(20)
        .height(10)
        .scale((1.0, 1.0))
        .ratio((2.0, 2.0))
        .check()
        .unwrap();
    let out = Compose::new()
        .then(rrc)
        .apply_seeded(img, &AugmentContext::default(), 5);
    assert_eq!(out.dimensions(), (20, 10));
    assert!(out.pixels().all(|p| p.0 == [30, 60, 90]));
}
