//! The `animalclef` example on an AnimalCLEF-style folder holding two
//! datasets of the same species whose identities are disjoint but whose
//! photos are the same (site B's catalogue is a copy of site A's under other
//! names): every query's nearest photos include site A's copy of itself, so
//! matching across datasets would answer with site A's cows for site B's
//! queries, which the submission checker refuses. Matched within its own
//! dataset, each query gets an identity of its own site (or
//! `new_individual`), and the example writes a valid submission, with
//! cosine alone and with RootSIFT fused in.
#![cfg(feature = "torch")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use animal_reid::core::ParamGuard;
use animal_reid::data::Dataset;
use animal_reid::data::loaders::write_metadata_csv;
use animal_reid::data::synthetic::SyntheticParams;
use animal_reid::eval::submission::{SubmissionReference, read_submission};

/// The example binary `cargo test` built beside this test.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join(name))
        .unwrap()
}

#[test]
fn two_sites_of_one_species_give_a_valid_submission() {
    let bin = example("animalclef");
    assert!(bin.is_file(), "{} not built", bin.display());
    animal_reid::backbone::weights::Pretrained::from_name("mobilenet_v2")
        .and_then(|p| p.verify())
        .expect("the MobileNetV2 weights (scripts/setup.sh fetches them)");
    let dir = tempfile::tempdir().unwrap();
    let mut records = Vec::new();
    for site in ["SiteA", "SiteB"] {
        let ds = SyntheticParams::default()
            .n_individuals(8)
            .images_per_individual(4)
            .new_identity_fraction(0.25)
            .width(96)
            .height(96)
            .species(["cow"])
            .dataset_name(site)
            .seed(7)
            .check()
            .unwrap()
            .generate(&dir.path().join(site))
            .unwrap();
        for mut r in ds.records {
            // Same photos, other names: identities disjoint between sites.
            r.image_id = format!("{site}-{}", r.image_id);
            r.identity = r.identity.map(|i| format!("{site}-{i}"));
            records.push(r);
        }
    }
    let metadata = dir.path().join("metadata.csv");
    write_metadata_csv(&metadata, &Dataset::new(dir.path(), records)).unwrap();
    let reference = SubmissionReference::from_metadata(&metadata).unwrap();
    // With RootSIFT fused in, identical photos match perfectly by
    // keypoints, so the fusion must keep to the query's site too.
    let cache = dir.path().join("local-features");
    let cache = cache.to_str().unwrap();
    let local = [
        "--local",
        "sift",
        "--shortlist",
        "5",
        "--local-cache",
        cache,
    ];
    let animalclef = |out: &std::path::Path, extra: &[&str]| {
        Command::new(&bin)
            .args(["--root"])
            .arg(dir.path())
            .args(["--out"])
            .arg(out)
            .args(["--backbone", "mobilenet_v2", "--quiet", "--episodes", "5"])
            .args(extra)
            .output()
            .unwrap()
    };
    // Cosine alone (no projection, no local matching), then the default
    // pipeline (a projection chosen on the database's episodes, RootSIFT).
    let cosine = ["--adapt", "none", "--local", "none"];
    for extra in [&cosine[..], &local[..]] {
        let out = dir.path().join("submission.csv");
        let run = animalclef(&out, extra);
        assert!(
            run.status.success(),
            "animalclef {extra:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        let rows = read_submission(&out).unwrap();
        reference.validate(&rows).unwrap();
        assert_eq!(rows.len(), reference.num_queries());
        // Each answer names a cow of the query's own site, or a new one; the
        // identical photos of the other site never win.
        let mut known = 0;
        for r in &rows {
            let site = reference.dataset_of(&r.image_id).unwrap();
            if let Some(id) = r.decision.identity() {
                assert!(
                    id.starts_with(&format!("{site}-")),
                    "{extra:?}: {} -> {id}",
                    r.image_id
                );
                known += 1;
            }
        }
        assert!(known > 0, "{extra:?}: no query was recognised: {rows:?}");
        // Where the time went, stage by stage: the fusion's own stages only
        // when it ran.
        let text = String::from_utf8_lossy(&run.stdout);
        let table = text
            .split("where the time went:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{extra:?}: no timing table:\n{text}"));
        for stage in [
            "embed (decode + network)",
            "  network",
            "cosine: database",
            "  threshold self-calibration",
            "cosine: queries",
            "  search",
            "total",
        ] {
            assert!(
                table.lines().any(|l| l.starts_with(stage)),
                "{extra:?}: no {stage:?} in\n{table}"
            );
        }
        let fused = [
            "local features (sift)",
            "fusion B = 5: database",
            "  local matching",
        ];
        for stage in fused {
            assert_eq!(
                table.lines().any(|l| l.starts_with(stage)),
                extra == &local[..],
                "{extra:?}: {stage:?} in\n{table}"
            );
        }
        // The report beside the submission: each site's query scores against
        // its threshold and its calibration curve (no truth: nothing else),
        // embedded in one offline HTML file.
        let report = dir.path().join("animalclef-report");
        let html = std::fs::read_to_string(report.join("report.html")).unwrap();
        for (i, site) in ["SiteA", "SiteB"].iter().enumerate() {
            for kind in ["scores", "calibration"] {
                let svg = report.join(format!("figures/{kind}-{:02}-{site}.svg", i + 1));
                assert!(svg.is_file(), "{extra:?}: {} missing", svg.display());
            }
            assert!(html.contains(&format!("<figcaption>{site}: ")), "{extra:?}");
            assert!(
                !report
                    .join(format!("figures/cmc-{:02}-{site}.svg", i + 1))
                    .exists()
            );
        }
        assert!(!html.contains("http://") && !html.contains("https://"));
        std::fs::remove_dir_all(&report).unwrap();
        std::fs::remove_file(&out).unwrap();
    }
    // Several shortlist sizes, then a second SIFT contrast threshold (the
    // default `--local-contrast 0.04,0.02`) at the better of them: each
    // calibrated on the database's episodes, the best episode score kept
    // and said.
    let out = dir.path().join("two-sizes.csv");
    let two = [
        "--local",
        "sift",
        "--shortlist",
        "5,10",
        "--local-cache",
        cache,
    ];
    let run = animalclef(&out, &two);
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let fused: Vec<(String, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("fused with cosine at "))
        .map(|l| {
            let label = l.split(" in ").next().unwrap().to_string();
            let score = l
                .rsplit("episode score ")
                .next()
                .and_then(|t| t.split_whitespace().next())
                .unwrap()
                .parse()
                .unwrap();
            (label, score)
        })
        .collect();
    assert_eq!(fused.len(), 3, "{text}");
    let better = if fused[1].1 > fused[0].1 { 10 } else { 5 };
    assert_eq!(fused[0].0, "shortlist B = 5");
    assert_eq!(fused[1].0, "shortlist B = 10");
    assert_eq!(
        fused[2].0,
        format!("shortlist B = {better}, SIFT contrast 0.02")
    );
    let mut kept = 0;
    for (i, f) in fused.iter().enumerate() {
        if f.1 > fused[kept].1 {
            kept = i;
        }
    }
    assert!(
        text.contains(&format!("kept {} (", fused[kept].0)),
        "{text}"
    );
    // One contrast: the sizes alone.
    let one = [
        "--local",
        "sift",
        "--shortlist",
        "5,10",
        "--local-contrast",
        "0.04",
        "--local-cache",
        cache,
    ];
    let run = animalclef(&out, &one);
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("fused with cosine at "))
            .count(),
        2,
        "{text}"
    );
    let bad = animalclef(&out, &["--local-contrast=-1"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--local-contrast: must be finite and >= 0"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(out.exists());
}
