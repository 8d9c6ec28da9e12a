//! Tests of the synthetic dataset generator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use image::RgbImage;
use reid_data::ParamGuard;
use reid_data::synthetic::{PhotoSetup, SyntheticParams, generate};
use reid_data::{DataError, LoadOptions, SplitRole, loaders};

fn small() -> SyntheticParams {
    SyntheticParams::default()
        .n_individuals(6)
        .images_per_individual(3)
        .width(64)
        .height(48)
        .seed(11)
}

/// Every file under `dir`, relative path -> bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let s: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    s as f64 / a.as_raw().len() as f64
}

#[test]
fn same_seed_gives_identical_bytes_and_other_seed_differs() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    generate(&small(), a.path()).unwrap();
    generate(&small(), b.path()).unwrap();
    generate(&small().seed(12), c.path()).unwrap();
    let (ta, tb, tc) = (tree(a.path()), tree(b.path()), tree(c.path()));
    // 6 x 3 images plus metadata.csv.
    assert_eq!(ta.len(), 19);
    assert_eq!(ta, tb);
    assert_eq!(ta.keys().collect::<Vec<_>>(), tc.keys().collect::<Vec<_>>());
    for (k, v) in &ta {
        if k.extension().is_some_and(|e| e == "jpg") {
            assert_ne!(v, &tc[k], "{} is the same under another seed", k.display());
        }
    }
}

#[test]
fn rerun_into_same_folder_is_idempotent_and_leaves_no_temp_files() {
    let d = tempfile::tempdir().unwrap();
    let ds1 = generate(&small(), d.path()).unwrap();
    let t1 = tree(d.path());
    let ds2 = generate(&small(), d.path()).unwrap();
    assert_eq!(ds1, ds2);
    assert_eq!(t1, tree(d.path()));
    assert!(
        t1.keys().all(|k| !k.to_string_lossy().contains(".tmp-")),
        "temporary files left behind"
    );
}

#[test]
fn counts_and_open_set_split_follow_the_params() {
    let p = SyntheticParams::default()
        .n_individuals(20)
        .images_per_individual(5)
        .width(32)
        .height(32)
        .new_identity_fraction(0.25)
        .query_fraction(0.4)
        .species(["synthetic_cat", "synthetic_dog"]);
    let set = p.clone().check().unwrap();
    assert_eq!(set.n_new_individuals(), 5);
    assert_eq!(set.queries_per_known_individual(), 2);
    let recs = set.records(Path::new("/data/syn"));
    assert_eq!(recs.len(), 100);

    let ids: BTreeSet<&str> = recs.iter().filter_map(|r| r.identity.as_deref()).collect();
    assert_eq!(ids.len(), 20);
    let image_ids: BTreeSet<&str> = recs.iter().map(|r| r.image_id.as_str()).collect();
    assert_eq!(image_ids.len(), 100);

    let mut db: BTreeMap<&str, usize> = BTreeMap::new();
    let mut q: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &recs {
        let id = r.identity.as_deref().unwrap();
        match r.split.as_ref().unwrap() {
            SplitRole::Database => *db.entry(id).or_default() += 1,
            SplitRole::Query => *q.entry(id).or_default() += 1,
            other => panic!("unexpected split {other}"),
        }
        assert_eq!(r.dataset.as_deref(), Some("Synthetic2025"));
        assert!(r.date.is_some());
        let o = r.orientation.as_deref().unwrap();
        assert!(o == "left" || o == "right", "{o}");
        let species = r.species.as_deref().unwrap();
        assert!(id.starts_with(species), "{id} / {species}");
        let rel = r.path.strip_prefix("/data/syn").unwrap();
        assert_eq!(rel.parent().unwrap(), Path::new("images").join(id));
    }
    // 15 known individuals: 3 database + 2 query photos each.
    assert_eq!(db.len(), 15);
    assert!(db.values().all(|&n| n == 3));
    let new: Vec<&str> = q.keys().filter(|k| !db.contains_key(*k)).copied().collect();
    assert_eq!(new.len(), 5);
    for id in &new {
        assert_eq!(
            q[id], 5,
            "new individual {id} has all its photos as queries"
        );
    }
    assert_eq!(q.values().sum::<usize>(), 15 * 2 + 5 * 5);
    // Species alternate.
    let cats = recs
        .iter()
        .filter(|r| r.species.as_deref() == Some("synthetic_cat"))
        .count();
    assert_eq!(cats, 50);
    // The new individuals are the ones the API reports.
    let reported: BTreeSet<String> = set
        .new_individuals()
        .into_iter()
        .map(|i| set.identity_name(i))
        .collect();
    assert_eq!(reported, new.iter().map(|s| s.to_string()).collect());

    // Dates increase per individual.
    for i in 0..20 {
        let d: Vec<_> = recs[i * 5..i * 5 + 5]
            .iter()
            .map(|r| r.date.unwrap())
            .collect();
        assert!(d.windows(2).all(|w| w[0] < w[1]), "{d:?}");
    }
}

#[test]
fn query_fraction_keeps_one_database_photo_and_zero_fractions_give_closed_set() {
    let set = SyntheticParams::default()
        .n_individuals(4)
        .images_per_individual(3)
        .query_fraction(1.0)
        .new_identity_fraction(0.0)
        .check()
        .unwrap();
    assert_eq!(set.queries_per_known_individual(), 2);
    assert_eq!(set.n_new_individuals(), 0);
    let set = SyntheticParams::default()
        .n_individuals(4)
        .images_per_individual(3)
        .query_fraction(0.0)
        .new_identity_fraction(0.0)
        .dates(false)
        .check()
        .unwrap();
    let recs = set.records(Path::new("x"));
    assert!(
        recs.iter()
            .all(|r| r.split == Some(SplitRole::Database) && r.date.is_none())
    );
}

#[test]
fn images_decode_to_the_configured_size_and_match_the_renderer() {
    let d = tempfile::tempdir().unwrap();
    let p = small().width(96).height(64);
    let ds = generate(&p, d.path()).unwrap();
    let set = p.clone().check().unwrap();
    for (k, r) in ds.records.iter().enumerate() {
        let img = image::open(&r.path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (96, 64), "{}", r.path.display());
        let (i, n) = (k / 3, k % 3);
        let rendered = set.render_photo(i, n).unwrap();
        let diff = mean_abs_diff(&img, &rendered);
        assert!(diff < 6.0, "JPEG of {i}/{n} differs by {diff}");
    }
}

#[test]
fn csv_loads_back_with_the_same_records() {
    let d = tempfile::tempdir().unwrap();
    let ds = generate(&small(), d.path()).unwrap();
    let csv = d.path().join("metadata.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header.starts_with("image_id,identity,path,date,orientation,species,split,dataset"),
        "{header}"
    );
    assert!(
        text.lines().nth(1).unwrap().contains(",images/"),
        "paths are relative"
    );
    let (back, report) = loaders::load_animalclef(&csv, &LoadOptions::default()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(back.records, ds.records);
    assert_eq!(back.root, ds.root);
}

#[test]
fn invalid_params_are_rejected_up_front() {
    let bad = |p: SyntheticParams, name: &str| match p.clone().check() {
        Err(DataError::InvalidParam { name: got, .. }) => assert_eq!(got, name),
        other => panic!("expected InvalidParam({name}), got {other:?}"),
    };
    let ok = SyntheticParams::default();
    assert!(ok.clone().check().is_ok());
    bad(ok.clone().n_individuals(0), "n_individuals");
    bad(ok.clone().images_per_individual(0), "images_per_individual");
    bad(ok.clone().width(0).height(64), "width");
    bad(ok.clone().width(64).height(8), "height");
    bad(ok.clone().width(64).height(100_000), "height");
    bad(ok.clone().species(Vec::<String>::new()), "species");
    bad(ok.clone().species(["a/b"]), "species");
    bad(ok.clone().species([""]), "species");
    bad(
        ok.clone().new_identity_fraction(1.0),
        "new_identity_fraction",
    );
    bad(
        ok.clone().new_identity_fraction(-0.1),
        "new_identity_fraction",
    );
    bad(
        ok.clone().new_identity_fraction(f64::NAN),
        "new_identity_fraction",
    );
    // 0.5 of one individual rounds to one: nobody left in the database.
    bad(
        ok.clone().n_individuals(1).new_identity_fraction(0.5),
        "new_identity_fraction",
    );
    bad(ok.clone().query_fraction(1.5), "query_fraction");
    bad(ok.clone().nuisance(2.0), "nuisance");
    bad(ok.clone().jpeg_quality(0), "jpeg_quality");
    bad(ok.clone().jpeg_quality(101), "jpeg_quality");
    bad(ok.clone().dataset_name(" "), "dataset_name");
    // generate checks too, before touching the folder.
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("never");
    assert!(generate(&ok.clone().n_individuals(0), &out).is_err());
    assert!(!out.exists());
    // Out-of-range indices are errors, not panics.
    let set = small().check().unwrap();
    assert!(set.render_photo(6, 0).is_err());
    assert!(set.render_photo(0, 3).is_err());
    assert!(set.individual(99).is_err());
}

/// Luminance of `img` at the pixel under body point `(u, v)`, unless it is
/// outside the image or occluded.
fn lum_at(img: &RgbImage, s: &PhotoSetup, u: f32, v: f32) -> Option<f64> {
    let (x, y) = s.body_to_image(u, v);
    if x < 0.0 || y < 0.0 || x >= img.width() as f32 || y >= img.height() as f32 {
        return None;
    }
    if s.is_occluded(x, y) {
        return None;
    }
    let p = img.get_pixel(x as u32, y as u32).0;
    Some(0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt().max(1e-9)
}

/// Correlation of the torso's luminance, read at the same body points, in
/// two photos (each with its own pose, light, blur, occluders).
fn torso_correlation(a: (&RgbImage, &PhotoSetup), b: (&RgbImage, &PhotoSetup)) -> f64 {
    let (mut xa, mut xb) = (Vec::new(), Vec::new());
    for iu in -17..=17 {
        for iv in -6..=6 {
            let (u, v) = (iu as f32 * 0.05, iv as f32 * 0.05);
            if (u / 0.9).powi(2) + (v / 0.34).powi(2) > 1.0 {
                continue;
            }
            if let (Some(la), Some(lb)) = (lum_at(a.0, a.1, u, v), lum_at(b.0, b.1, u, v)) {
                xa.push(la);
                xb.push(lb);
            }
        }
    }
    assert!(xa.len() > 60, "too few common torso points: {}", xa.len());
    pearson(&xa, &xb)
}

#[test]
fn the_coat_identifies_the_individual_across_photos() {
    // The pattern is painted in body coordinates: read back at the same body
    // points, two photos of one individual correlate strongly (despite pose,
    // light, blur, background and occlusion), two individuals do not.
    let n = 10;
    let set = SyntheticParams::default()
        .n_individuals(n)
        .images_per_individual(2)
        .width(128)
        .height(128)
        .seed(5)
        .check()
        .unwrap();
    let photos: Vec<Vec<(RgbImage, PhotoSetup)>> = (0..n)
        .map(|i| {
            let ind = set.individual(i).unwrap();
            (0..2)
                .map(|k| {
                    let s = set.photo_setup(i, k).unwrap();
                    (set.render(&ind, &s), s)
                })
                .collect()
        })
        .collect();
    let view = |i: usize, k: usize| (&photos[i][k].0, &photos[i][k].1);
    let mut same = Vec::new();
    let mut diff = Vec::new();
    for i in 0..n {
        same.push(torso_correlation(view(i, 0), view(i, 1)));
        for j in 0..n {
            if j != i {
                diff.push(torso_correlation(view(i, 0), view(j, 1)));
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "same: mean {:.3} min {:.3}; different: mean {:.3} max {:.3}",
        mean(&same),
        same.iter().cloned().fold(f64::MAX, f64::min),
        mean(&diff),
        diff.iter().cloned().fold(f64::MIN, f64::max)
    );
    assert!(mean(&same) > 0.6, "same {same:?}");
    assert!(mean(&diff).abs() < 0.15, "diff {diff:?}");
    // Each individual's second photo is closest to its own first photo.
    for i in 0..n {
        let best = (0..n)
            .max_by(|&a, &b| {
                let ca = torso_correlation(view(i, 0), view(a, 1));
                let cb = torso_correlation(view(i, 0), view(b, 1));
                ca.total_cmp(&cb)
            })
            .unwrap();
        assert_eq!(best, i, "individual {i} matched {best}");
    }
}

#[test]
fn photos_differ_visibly_and_canonical_views_differ_between_individuals() {
    let set = SyntheticParams::default()
        .n_individuals(5)
        .images_per_individual(3)
        .width(96)
        .height(96)
        .check()
        .unwrap();
    // Photos of one individual differ in pose, light, background...
    for i in 0..5 {
        let a = set.render_photo(i, 0).unwrap();
        let b = set.render_photo(i, 1).unwrap();
        let d = mean_abs_diff(&a, &b);
        assert!(d > 10.0, "photos of {i} differ by only {d}");
    }
    // ...and in the canonical view (same pose, plain background) only the
    // coat and silhouette tell individuals apart: the animal covers a good
    // part of the frame and coats differ.
    let canon: Vec<RgbImage> = (0..5).map(|i| set.render_canonical(i).unwrap()).collect();
    for i in 0..5 {
        assert_eq!(canon[i], set.render_canonical(i).unwrap());
        let grey = canon[i].pixels().filter(|p| p.0 == [128, 128, 128]).count();
        let frac = 1.0 - grey as f64 / (96.0 * 96.0);
        assert!(frac > 0.1 && frac < 0.6, "animal covers {frac}");
        for j in 0..i {
            // Mean difference over the pixels where either shows the animal.
            let (mut sum, mut cnt) = (0u64, 0u64);
            for (p, q) in canon[i].pixels().zip(canon[j].pixels()) {
                if p.0 != [128, 128, 128] || q.0 != [128, 128, 128] {
                    sum +=
                        p.0.iter()
                            .zip(q.0)
                            .map(|(x, y)| u64::from(x.abs_diff(y)))
                            .sum::<u64>();
                    cnt += 3;
                }
            }
            let d = sum as f64 / cnt as f64;
            assert!(d > 20.0, "canonical {i} and {j} differ by only {d}");
        }
    }
    // With nuisance 0 the pose and light are canonical: only the background
    // changes, so the animal's pixels are the same in every photo.
    let calm = SyntheticParams::default()
        .n_individuals(2)
        .images_per_individual(2)
        .width(96)
        .height(96)
        .nuisance(0.0)
        .check()
        .unwrap();
    let s0 = calm.photo_setup(1, 0).unwrap();
    let s1 = calm.photo_setup(1, 1).unwrap();
    assert_eq!((s0.angle, s0.flip, s0.scale), (0.0, false, s1.scale));
    assert!(s0.occluders.is_empty() && s0.blur_radius == 0);
    let a = calm.render_photo(1, 0).unwrap();
    let b = calm.render_photo(1, 1).unwrap();
    let torso = s0.body_to_image(0.0, 0.0);
    assert_eq!(
        a.get_pixel(torso.0 as u32, torso.1 as u32),
        b.get_pixel(torso.0 as u32, torso.1 as u32)
    );
}

#[test]
fn body_and_image_coordinates_round_trip() {
    let set = small().check().unwrap();
    for i in 0..6 {
        for n in 0..3 {
            let s = set.photo_setup(i, n).unwrap();
            for (u, v) in [(0.0, 0.0), (0.7, -0.2), (-1.3, 0.5), (1.2, -0.4)] {
                let (x, y) = s.body_to_image(u, v);
                let (u2, v2) = s.image_to_body(x, y);
                assert!((u - u2).abs() < 1e-3 && (v - v2).abs() < 1e-3);
            }
        }
    }
}

#[test]
fn progress_reports_every_image() {
    let d = tempfile::tempdir().unwrap();
    let count = std::sync::atomic::AtomicUsize::new(0);
    let max = std::sync::atomic::AtomicUsize::new(0);
    let set = small().check().unwrap();
    set.generate_with_progress(d.path(), |done, total| {
        assert_eq!(total, 18);
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        max.fetch_max(done, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(count.into_inner(), 18);
    assert_eq!(max.into_inner(), 18);
}

/// Generation time of the default set (100 individuals x 10 photos at
/// 256x256). Run with
/// `cargo test --release -p reid-data --test synthetic -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_100_by_10() {
    let d = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let ds = generate(&SyntheticParams::default(), d.path()).unwrap();
    let dt = t.elapsed();
    assert_eq!(ds.records.len(), 1000);
    println!(
        "generated 100 x 10 at 256x256 in {:.2} s ({} rayon threads)",
        dt.as_secs_f64(),
        rayon::current_num_threads()
    );
    let set = SyntheticParams::default().check().unwrap();
    let t = std::time::Instant::now();
    for i in 0..10 {
        let ind = set.individual(i).unwrap();
        for n in 0..10 {
            let s = set.photo_setup(i, n).unwrap();
            std::hint::black_box(set.render(&ind, &s));
        }
    }
    println!(
        "render only, 100 photos single-threaded: {:.2} s",
        t.elapsed().as_secs_f64()
    );
}

/// Writes a contact sheet (rows: individuals; first column: canonical view,
/// then the photos) to `$SYNTH_CONTACT_SHEET`.
#[test]
#[ignore]
fn contact_sheet() {
    let Ok(out) = std::env::var("SYNTH_CONTACT_SHEET") else {
        return;
    };
    let (rows, cols, side): (u32, u32, u32) = std::env::var("SYNTH_SHEET_DIMS")
        .ok()
        .and_then(|d| {
            let v: Vec<u32> = d.split(',').filter_map(|x| x.parse().ok()).collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        })
        .unwrap_or((8, 6, 128));
    let set = SyntheticParams::default()
        .n_individuals(rows as usize)
        .images_per_individual(cols as usize - 1)
        .width(side)
        .height(side)
        .check()
        .unwrap();
    let mut sheet = RgbImage::new(cols * side, rows * side);
    for r in 0..rows {
        let canon = set.render_canonical(r as usize).unwrap();
        println!(
            "row {r}: {}",
            set.individual(r as usize).unwrap().family.as_str()
        );
        image::imageops::replace(&mut sheet, &canon, 0, (r * side) as i64);
        for c in 1..cols {
            let img = set.render_photo(r as usize, c as usize - 1).unwrap();
            image::imageops::replace(&mut sheet, &img, (c * side) as i64, (r * side) as i64);
        }
    }
    sheet.save(out).unwrap();
}
