//! `summary.json`'s figures worked out by hand on two small datasets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reid_pipeline::{OpenSetParams, ParamGuard, evaluate, identify};

mod common;

use common::two_sets;

#[test]
fn the_summary_figures_are_the_hand_worked_ones() {
    let (records, emb) = two_sets();
    let params = OpenSetParams::default()
        .fixed_threshold(Some(0.5))
        .check()
        .unwrap();
    let ident = identify(&records, emb.view(), &params).unwrap();
    let ev = evaluate(&records, emb.view(), &ident).unwrap();
    let s = ev.summary(&records, &ident, 2.5);
    let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-9;
    // X: BAKS (a 1/1, b 0/1) = 0.5, BAUS 1, score sqrt(0.5); top-1 1/2;
    // AP qa 1, qb (b's photos at ranks 3, 4) (1/3 + 2/4) / 2.
    let x = s.per_dataset["X"];
    assert!(close(x.baks, 0.5) && close(x.baus, 1.0), "{x:?}");
    assert!(close(x.score, 0.5f64.sqrt()), "{x:?}");
    assert!(close(x.top1, 0.5), "{x:?}");
    let ap_qb = (1.0 / 3.0 + 2.0 / 4.0) / 2.0;
    assert!(close(x.map, (1.0 + ap_qb) / 2.0), "{x:?}");
    // Y: BAKS 1, BAUS 0 (the new cow taken for d), score 0; top-1 1; AP 1.
    let y = s.per_dataset["Y"];
    assert!(close(y.baks, 1.0) && close(y.baus, 0.0) && close(y.score, 0.0));
    assert!(close(y.top1, 1.0) && close(y.map, 1.0), "{y:?}");
    // All: the score and BAKS / BAUS are means over the datasets; top-1 and
    // mAP over the three known queries.
    assert!(close(s.all.score, 0.5f64.sqrt() / 2.0), "{:?}", s.all);
    assert!(close(s.all.baks, 0.75) && close(s.all.baus, 0.5));
    assert!(close(s.all.top1, 2.0 / 3.0));
    assert!(close(s.all.map, (1.0 + ap_qb + 1.0) / 3.0));
    // The flat JSON a script reads.
    let v = serde_json::to_value(&s).unwrap();
    for key in ["score", "baks", "baus", "top1", "map", "seconds"] {
        assert!(v[key].is_number(), "{key}: {v}");
        assert!(v["per_dataset"]["X"][key].is_number() || key == "seconds");
    }
    assert_eq!(v["seconds"], 2.5);
}

#[test]
fn without_the_truth_the_figures_are_null() {
    let (mut records, emb) = two_sets();
    records[8].identity = None;
    let params = OpenSetParams::default()
        .fixed_threshold(Some(0.5))
        .check()
        .unwrap();
    let ident = identify(&records, emb.view(), &params).unwrap();
    let ev = evaluate(&records, emb.view(), &ident).unwrap();
    let s = ev.summary(&records, &ident, 1.0);
    assert_eq!(s.all.score, None);
    assert_eq!(s.all.top1, None);
    assert!(s.per_dataset.is_empty());
    let v = serde_json::to_value(&s).unwrap();
    assert!(v["score"].is_null() && v["map"].is_null());
}
