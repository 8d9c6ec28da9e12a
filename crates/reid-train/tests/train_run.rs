//! A short seeded fine-tuning run on the synthetic set: the loss falls,
//! nearest-neighbour accuracy on held-out images rises; the checkpoint loads
//! back through the backbone registry with the same embeddings; a run killed
//! after some epochs resumes at the next one; typed errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reid_backbone::backbone::{Backbone, BackboneBuilder};
use reid_data::{Record, SplitRole, SyntheticParams};
use reid_train::loss::{ArcFaceParams, TripletParams};
use reid_train::train::files;
use reid_train::{Freeze, LossParams, ParamGuard, Progress, TrainError, TrainParams, Trainer};
use tch::{Kind, Tensor};

const SIZE: i64 = 96;

fn backbone() -> Backbone {
    BackboneBuilder::new("efficientnet_lite0")
        .img_size(SIZE)
        .build()
        .unwrap()
}

fn config(dir: &std::path::Path) -> TrainParams {
    TrainParams::default()
        .epochs(10)
        .p(4)
        .k(4)
        .lr_head(1e-2)
        .lr_backbone(5e-4)
        .warmup_epochs(1.0)
        .loss(LossParams::ArcFace(
            ArcFaceParams::default().margin(0.3).scale(16.0),
        ))
        .seed(7)
        .checkpoint_dir(dir.to_path_buf())
}

#[test]
fn seeded_run_learns_checkpoints_and_resumes() {
    tch::set_num_threads(2);
    tch::manual_seed(7);
    let tmp = tempfile::tempdir().unwrap();
    let ds = SyntheticParams::default()
        .n_individuals(16)
        .images_per_individual(6)
        .width(128)
        .height(128)
        .query_fraction(0.34)
        .seed(11)
        .check()
        .unwrap()
        .generate(&tmp.path().join("data"))
        .unwrap();
    let by = |role: SplitRole| -> Vec<Record> {
        ds.records
            .iter()
            .filter(|r| r.split.as_ref() == Some(&role))
            .cloned()
            .collect()
    };
    let (train, queries) = (by(SplitRole::Database), by(SplitRole::Query));
    assert!(
        train.len() >= 40 && queries.len() >= 20,
        "{} {}",
        train.len(),
        queries.len()
    );
    let ck = tmp.path().join("ck");

    // First run: "killed" after 3 of 6 epochs.
    let bb = backbone();
    let cfg = config(&ck).max_epochs_this_run(4);
    let mut t = Trainer::new(&bb, &train, cfg.check().unwrap()).unwrap();
    let before = t.evaluate(&bb, &train, &queries).unwrap();
    let mut steps = 0;
    let r1 = t
        .fit(&bb, &train, Some(&queries), &mut |p| {
            if matches!(p, Progress::Step { .. }) {
                steps += 1;
            }
        })
        .unwrap();
    assert_eq!((r1.started_at, r1.epochs_run), (0, 4));
    assert!(steps >= 6, "{steps} steps");
    let st = reid_train::train::read_state(&ck).unwrap().unwrap();
    assert_eq!(st.epochs_done, 4);
    for f in [
        files::BACKBONE,
        files::HEAD,
        files::STATE,
        files::LOG,
        files::BEST,
    ] {
        assert!(ck.join(f).exists(), "{f}");
    }

    // Resume in a fresh process-like setting: fresh backbone and trainer.
    let bb2 = backbone();
    let mut t2 = Trainer::new(&bb2, &train, config(&ck).check().unwrap()).unwrap();
    let mut epochs_seen = Vec::new();
    let r2 = t2
        .fit(&bb2, &train, Some(&queries), &mut |p| {
            if let Progress::Epoch(e) = p {
                epochs_seen.push(e.epoch);
            }
        })
        .unwrap();
    assert_eq!(r2.started_at, 4);
    assert_eq!(epochs_seen, (4..10).collect::<Vec<_>>());
    let log = &r2.state.log;
    assert_eq!(
        log.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    // Finished: a further call trains nothing.
    let r3 = t2.fit(&bb2, &train, None, &mut |_| {}).unwrap();
    assert_eq!(r3.epochs_run, 0);

    // The loss falls and nearest-neighbour accuracy rises.
    let first = log[0].loss;
    let last = log[9].loss;
    let after = t2.evaluate(&bb2, &train, &queries).unwrap();
    eprintln!(
        "loss {first:.3} -> {last:.3}; top1 {:.3} -> {:.3}; score {:.3} -> {:.3}",
        before.top1, after.top1, before.score, after.score
    );
    assert!(last < 0.8 * first, "loss {first} -> {last}");
    // 26 held-out queries, so one query is 0.038 of top-1: the rise is
    // asserted strictly, and the self-calibrated open-set score (which also
    // counts every new-individual query) must gain 0.05. Measured: top-1
    // 0.192 -> 0.231 and score 0.160 -> 0.253 on one machine, top-1 0.19 ->
    // 0.35 on another (CPU kernels differ, so the trajectories do).
    assert!(
        after.top1 > before.top1,
        "top1 {} -> {}",
        before.top1,
        after.top1
    );
    assert!(
        after.score >= before.score + 0.05,
        "score {} -> {}",
        before.score,
        after.score
    );
    assert!(log[9].val.is_some());

    // The checkpoint loads back through the registry with the same embeddings.
    let loaded = BackboneBuilder::new("efficientnet_lite0")
        .img_size(SIZE)
        .weights_file(ck.join(files::BACKBONE))
        .build()
        .unwrap();
    tch::manual_seed(1);
    let x = Tensor::randn([3, 3, SIZE, SIZE], (Kind::Float, tch::Device::Cpu));
    let a = bb2.embed_tensor(&x).unwrap();
    let b = loaded.embed_tensor(&x).unwrap();
    let d = (&a - &b).abs().max().double_value(&[]);
    assert!(d < 1e-5, "embeddings differ by {d}");
    // ...and differ from the ImageNet weights (training changed them).
    let c = backbone().embed_tensor(&x).unwrap();
    assert!((&a - &c).abs().max().double_value(&[]) > 1e-3);

    // A checkpoint of another seed is refused on resume.
    let bad = config(&ck).seed(8);
    let mut t4 = Trainer::new(&bb2, &train, bad.check().unwrap()).unwrap();
    let e = t4.fit(&bb2, &train, None, &mut |_| {});
    assert!(matches!(e, Err(TrainError::Checkpoint { .. })), "{e:?}");
}

#[test]
fn typed_errors() {
    let bb = backbone();
    let mut r = Record::new("0", "x.jpg");
    r.identity = Some("a".into());
    let mut r2 = Record::new("1", "y.jpg");
    r2.identity = Some("b".into());
    let recs = vec![r.clone(), r2];
    // Autocast is refused on the CPU.
    let cfg = TrainParams::default().autocast(true).check().unwrap();
    let e = Trainer::new(&bb, &recs, cfg);
    assert!(matches!(e, Err(TrainError::Unsupported { .. })), "{e:?}");
    // Bad settings, checked up front; the error names the setting and value.
    let d = TrainParams::default;
    for (cfg, name, value) in [
        (d().epochs(0), "epochs", "0"),
        (d().p(0), "p", "0"),
        (d().lr_head(f64::NAN), "lr_head", "NaN"),
        (d().clip_norm(0.0), "clip_norm", "0"),
        (d().patience(0), "patience", "0"),
        (d().eval_batch(0), "eval_batch", "0"),
        (
            d().loss(LossParams::ArcFace(ArcFaceParams::default().scale(-1.0))),
            "scale",
            "-1",
        ),
        (
            d().loss(LossParams::Triplet(TripletParams::default().margin(3.0))),
            "margin",
            "3",
        ),
    ] {
        assert!(cfg.check_ref().is_err(), "{name}");
        let e = cfg.check().unwrap_err();
        assert!(
            matches!(e, TrainError::InvalidParam { .. } | TrainError::Data(_)),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(text.contains(&format!("`{name}`")), "{text}");
        assert!(text.contains(value), "{text}");
    }
    // One identity is not enough; unlabelled records are refused.
    let cfg = || {
        TrainParams::default()
            .freeze(Freeze::Backbone)
            .check()
            .unwrap()
    };
    assert!(Trainer::new(&bb, &[r.clone()], cfg()).is_err());
    // ...but the same name in two datasets is two identities (classes).
    let (mut ra, mut rb) = (r.clone(), r.clone());
    ra.dataset = Some("turtles".into());
    rb.dataset = Some("lynx".into());
    rb.image_id = "2".into();
    let t = Trainer::new(&bb, &[ra, rb], cfg()).unwrap();
    let classes: Vec<String> = t.classes().iter().map(|k| k.to_string()).collect();
    assert_eq!(classes, ["lynx/a", "turtles/a"]);
    let mut u = r.clone();
    u.identity = None;
    assert!(matches!(
        Trainer::new(&bb, &[r, u], cfg()),
        Err(TrainError::InvalidParam { .. })
    ));
    // lr schedule: warm-up then cosine to zero.
    use reid_train::train::lr_factor;
    assert!((lr_factor(0, 4, 20) - 0.25).abs() < 1e-12);
    assert!((lr_factor(3, 4, 20) - 1.0).abs() < 1e-12);
    assert!((lr_factor(4, 4, 20) - 1.0).abs() < 1e-12);
    assert!((lr_factor(12, 4, 20) - 0.5).abs() < 1e-12);
    assert!(lr_factor(19, 4, 20) < 0.01);
}

/// Fine-tuning the last block alone with batch norm frozen (as
/// `reid-examples`' `--tune` does): its weights move; every other variable,
/// and every batch-norm running statistic, stays exactly as it was. With
/// batch norm in training mode the frozen blocks' statistics move.
#[test]
fn last_block_alone_with_frozen_batch_norm() {
    tch::set_num_threads(2);
    let tmp = tempfile::tempdir().unwrap();
    let ds = SyntheticParams::default()
        .n_individuals(6)
        .images_per_individual(4)
        .width(96)
        .height(96)
        .seed(3)
        .check()
        .unwrap()
        .generate(&tmp.path().join("data"))
        .unwrap();
    let snapshot = |bb: &Backbone| -> std::collections::BTreeMap<String, Tensor> {
        bb.var_store()
            .variables()
            .into_iter()
            .map(|(k, v)| (k, v.detach().copy()))
            .collect()
    };
    let run = |frozen_bn: bool| {
        let bb = backbone();
        let before = snapshot(&bb);
        let trained = "_blocks.15.";
        let frozen: Vec<String> = before
            .keys()
            .filter(|k| !k.starts_with(trained))
            .cloned()
            .collect();
        let params = TrainParams::default()
            .epochs(1)
            .p(3)
            .k(4)
            .batches_per_epoch(2)
            .lr_backbone(1e-2)
            .lr_head(1e-2)
            .crop_scale((0.7, 1.0))
            .flip(0.0)
            .frozen_batch_norm(frozen_bn)
            .freeze(Freeze::Prefixes(frozen))
            .resume(false)
            .check()
            .unwrap();
        let mut t = Trainer::new(&bb, &ds.records, params).unwrap();
        t.fit(&bb, &ds.records, None, &mut |_| {}).unwrap();
        let after = snapshot(&bb);
        let moved = |k: &str| (&before[k] - &after[k]).abs().max().double_value(&[]) > 0.0;
        (
            before.keys().cloned().collect::<Vec<_>>(),
            moved_names(&before, &after),
            moved("_blocks.15._project_conv.weight"),
        )
    };
    fn moved_names(
        a: &std::collections::BTreeMap<String, Tensor>,
        b: &std::collections::BTreeMap<String, Tensor>,
    ) -> Vec<String> {
        a.iter()
            .filter(|(k, v)| (*v - &b[k.as_str()]).abs().max().double_value(&[]) > 0.0)
            .map(|(k, _)| k.clone())
            .collect()
    }
    let (names, moved, project) = run(true);
    assert!(
        names.iter().any(|k| k == "_blocks.15._project_conv.weight"),
        "{names:?}"
    );
    assert!(project, "the trained block did not move");
    for k in &moved {
        assert!(
            k.starts_with("_blocks.15.") && !k.contains("running_") && !k.contains("num_batches"),
            "{k} moved"
        );
    }
    let (_, moved, _) = run(false);
    assert!(
        moved
            .iter()
            .any(|k| k.starts_with("_blocks.3.") && k.contains("running_mean")),
        "batch norm in training mode left the frozen blocks' statistics: {moved:?}"
    );
}
