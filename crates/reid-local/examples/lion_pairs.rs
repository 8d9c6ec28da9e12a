//! Local matching on the lion set: extraction time, pair-scoring time, and
//! the inlier counts of same-individual vs different-individual pairs.
//!
//! `cargo run --release -p reid-local --example lion_pairs [-- <shared dir> [<max images>]]`

#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use reid_local::ParamGuard;
use reid_local::{FeatureStore, LocalParams, ModelKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let shared = args
        .next()
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("ANIMAL_REID_SHARED").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let max: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(120);
    let root = shared.join("datasets/lion");
    let csv = std::fs::read_to_string(root.join("lion.csv"))?;
    let mut paths = Vec::new();
    let mut ids = Vec::new();
    for line in csv.lines().skip(1).take(max) {
        let cols: Vec<&str> = line.split(',').collect();
        if cols.len() >= 3 {
            ids.push(cols[1].to_string());
            paths.push(root.join(cols[2]));
        }
    }
    for model in [ModelKind::Affine, ModelKind::Homography] {
        let mut lp = LocalParams::default();
        lp.ransac.model = model;
        let params = lp.check()?;
        let t = Instant::now();
        let store = FeatureStore::extract(&paths, &params, None)?;
        let dt = t.elapsed().as_secs_f64();
        let kps: usize = store.features().iter().map(|f| f.len()).sum();
        println!(
            "{model:?}: extracted {} images in {:.1} ms ({:.2} ms/image, {:.0} keypoints/image)",
            paths.len(),
            dt * 1e3,
            dt * 1e3 / paths.len() as f64,
            kps as f64 / paths.len() as f64
        );
        let mut pairs = Vec::new();
        for i in 0..paths.len() {
            for j in i + 1..paths.len() {
                pairs.push((i, j));
            }
        }
        let t = Instant::now();
        let res = store.score_pairs(&pairs)?;
        let dt = t.elapsed().as_secs_f64();
        println!(
            "  scored {} pairs in {:.1} ms ({:.3} ms/pair, {} threads)",
            pairs.len(),
            dt * 1e3,
            dt * 1e3 / pairs.len() as f64,
            rayon::current_num_threads()
        );
        let (mut same, mut diff) = (Vec::new(), Vec::new());
        for (&(i, j), r) in pairs.iter().zip(&res) {
            if ids[i] == ids[j] {
                same.push(r.inliers);
            } else {
                diff.push(r.inliers);
            }
        }
        let stats = |v: &mut Vec<usize>| {
            v.sort_unstable();
            let q = |f: f64| {
                v.get(((v.len() as f64 - 1.0) * f) as usize)
                    .copied()
                    .unwrap_or(0)
            };
            format!(
                "n={} median={} p90={} p99={} max={}",
                v.len(),
                q(0.5),
                q(0.9),
                q(0.99),
                q(1.0)
            )
        };
        println!("  same individual: {}", stats(&mut same));
        println!("  different:       {}", stats(&mut diff));
        // Retrieval: for each image, is the best other image the same individual?
        let n = paths.len();
        let mut best = vec![(0usize, usize::MAX); n];
        for (&(i, j), r) in pairs.iter().zip(&res) {
            for (a, b) in [(i, j), (j, i)] {
                if r.inliers > best[a].0 || best[a].1 == usize::MAX {
                    best[a] = (r.inliers, b);
                }
            }
        }
        let has_mate: Vec<bool> = (0..n)
            .map(|i| (0..n).any(|j| j != i && ids[j] == ids[i]))
            .collect();
        let (mut ok, mut tot) = (0, 0);
        for i in 0..n {
            if has_mate[i] {
                tot += 1;
                if ids[best[i].1] == ids[i] {
                    ok += 1;
                }
            }
        }
        println!("  top-1 by inliers: {ok}/{tot}");
    }
    Ok(())
}
