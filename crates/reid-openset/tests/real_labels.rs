//! Episodes on the real AnimalCLEF 2025 database label distribution (many
//! singletons, e.g. 310 of 587 salamanders), from `../shared`; skipped with a
//! message when the shared folder is absent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;
// The shared-data lookup of the reid-data tests, which skips when absent.
#[path = "../../reid-data/tests/common/mod.rs"]
mod data_common;

use std::collections::BTreeMap;
use std::path::Path;

use reid_openset::{Rule, linear_grid, self_calibrate, simulate_episodes};

/// Database identity labels per dataset of the AnimalCLEF 2025 metadata.
fn database_labels(shared: &Path) -> BTreeMap<String, Vec<String>> {
    let path = shared.join("datasets/animalclef2025/metadata.csv");
    let mut rdr = csv::Reader::from_path(&path).unwrap();
    let head = rdr.headers().unwrap().clone();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let (id, split, ds) = (col("identity"), col("split"), col("dataset"));
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        if &rec[split] == "database" {
            out.entry(rec[ds].to_string())
                .or_default()
                .push(rec[id].to_string());
        }
    }
    out
}

#[test]
fn episodes_on_animalclef_label_distribution() {
    let Some(shared) = data_common::shared() else {
        return;
    };
    let by_ds = database_labels(&shared);
    assert_eq!(by_ds.len(), 3, "{:?}", by_ds.keys());
    let params = common::episodes(0.3, 0.5, 5, 0, vec![0.5]);
    for (name, labels) in &by_ds {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for l in labels {
            *count.entry(l).or_default() += 1;
        }
        for ep in simulate_episodes(labels, &params).unwrap() {
            let known: Vec<usize> = ep
                .queries
                .iter()
                .zip(&ep.is_new)
                .filter(|(_, n)| !**n)
                .map(|(&r, _)| r)
                .collect();
            assert!(!known.is_empty(), "{name}");
            assert!(
                known.len() < ep.queries.len(),
                "{name}: no pseudo-new query"
            );
            assert!(
                known.iter().all(|&r| count[labels[r].as_str()] >= 2),
                "{name}"
            );
            assert_eq!(ep.gallery.len() + ep.queries.len(), labels.len());
        }
    }
}

/// Planted embeddings (same identity ≈ 0.6, different ≈ 0.2) on the
/// salamander label sizes: the threshold lands in the gap and the episodes
/// score 1.
#[test]
fn self_calibration_with_many_singletons() {
    let Some(shared) = data_common::shared() else {
        return;
    };
    let by_ds = database_labels(&shared);
    let labels = &by_ds["SalamanderID2025"];
    let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for l in labels {
        *sizes.entry(l).or_default() += 1;
    }
    let sizes: Vec<usize> = sizes.into_values().collect();
    // More than half of the salamanders are singletons.
    assert!(sizes.iter().filter(|&&m| m == 1).count() * 2 > sizes.len());
    let (x, planted_labels) = common::planted(&sizes, 0.2, 0.4, 256, 5);
    let g = common::gallery(&x, &planted_labels);
    let params = common::episodes(0.3, 0.5, 3, 0, linear_grid(-1.0..=1.0, 200));
    let cal = self_calibrate(&g, &Rule::Top1, &params).unwrap();
    assert!((cal.threshold - 0.4).abs() < 0.08, "{}", cal.threshold);
    assert!((cal.score_mean - 1.0).abs() < 1e-12, "{}", cal.score_mean);
}
