//! The arrows of the workspace: the crates that need no libtorch do not
//! depend on it (`cargo tree`, normal dependencies, this lock file), so a
//! user who brings embeddings from elsewhere builds no libtorch; and the
//! facade without its default `torch` feature is one of them.
#![allow(clippy::expect_used)]

use std::process::Command;

/// The packages in the normal-dependency tree of `package` (with `extra`
/// cargo arguments), by name.
fn tree(package: &str, extra: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}", "-p", package])
        .args(extra)
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

const TORCH: [&str; 5] = [
    "tch",
    "torch-sys",
    "reid-backbone",
    "reid-train",
    "reid-glue",
];

#[test]
fn libtorch_free_crates_have_no_torch_in_their_tree() {
    for package in [
        "reid-core",
        "reid-data",
        "reid-index",
        "reid-openset",
        "reid-local",
        "reid-eval",
        "reid-pipeline",
        "reid-catalogue",
    ] {
        let deps = tree(package, &[]);
        assert!(deps.iter().any(|d| d == package), "{package}: {deps:?}");
        for t in TORCH {
            assert!(!deps.iter().any(|d| d == t), "{package} depends on {t}");
        }
    }
    let facade = tree("animal-reid", &["--no-default-features"]);
    assert!(facade.iter().any(|d| d == "reid-pipeline"));
    for t in TORCH {
        assert!(
            !facade.iter().any(|d| d == t),
            "the facade without `torch` has {t}"
        );
    }
    // With its default features the facade does link libtorch.
    let full = tree("animal-reid", &[]);
    assert!(full.iter().any(|d| d == "torch-sys"), "{full:?}");
}

#[test]
fn metrics_alone_build_light() {
    let deps = tree("reid-eval", &["--no-default-features"]);
    for heavy in ["plotters", "linfa", "linfa-tsne", "ab_glyph", "dejavu"] {
        assert!(
            !deps.iter().any(|d| d == heavy),
            "reid-eval metrics pull {heavy}"
        );
    }
}
