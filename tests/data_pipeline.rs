//! End to end through the data crate, as the examples use it: generate the
//! synthetic set, load it back as AnimalCLEF metadata, re-split it, write and
//! reload the split, sample class-balanced batches and preprocess them into
//! `[B, 3, H, W]` tensors.

use std::collections::BTreeSet;

use animal_reid::data::loaders::{LoadOptions, load_animalclef, write_metadata_csv};
use animal_reid::data::synthetic::SyntheticParams;
use animal_reid::data::{
    BatchIter, ParamGuard, PkParams, PkSampler, PrefetchParams, PreprocessParams, SplitParams,
    SplitRole,
};

#[test]
fn synthetic_set_flows_through_load_split_sample_and_preprocess() {
    let dir = tempfile::tempdir().unwrap();
    let generated = SyntheticParams::default()
        .n_individuals(12)
        .images_per_individual(5)
        .width(96)
        .height(96)
        .seed(11)
        .check()
        .unwrap()
        .generate(dir.path())
        .unwrap();
    assert_eq!(generated.len(), 60);

    // Loaded back through the AnimalCLEF loader, with every file checked.
    let csv = dir.path().join("metadata.csv");
    let (ds, report) =
        load_animalclef(&csv, &LoadOptions::default().with_check_files(true)).unwrap();
    assert!(report.is_clean(), "{:?}", report.skipped);
    assert_eq!(ds.len(), 60);
    assert_eq!(ds.num_individuals(), 12);
    assert_eq!(ds.records, generated.records);

    // An open-set re-split: 3 of 12 identities (25%) only in the query.
    let split = SplitParams::open_set()
        .new_identity_fraction(0.25)
        .query_fraction(0.2)
        .seed(5)
        .split(&ds)
        .unwrap();
    let ids_in = |role: SplitRole| -> BTreeSet<String> {
        split
            .by_split(&role)
            .identities()
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    };
    let (db, q) = (ids_in(SplitRole::Database), ids_in(SplitRole::Query));
    assert_eq!(q.difference(&db).count(), 3, "new individuals");
    assert_eq!(db.union(&q).count(), 12);

    // The split survives a write and a reload.
    let split_csv = dir.path().join("split.csv");
    write_metadata_csv(&split_csv, &split).unwrap();
    let (reloaded, _) = load_animalclef(&split_csv, &LoadOptions::default()).unwrap();
    assert_eq!(reloaded.records, split.records);

    // Class-balanced P×K batches over the database part.
    let database = split.by_split(&SplitRole::Database);
    let mut sampler = PkSampler::new(&database, PkParams::default().p(4).k(2).seed(9)).unwrap();
    let batch = sampler.next().unwrap();
    assert_eq!(batch.len(), 8);
    let identities: BTreeSet<_> = batch
        .iter()
        .map(|&i| database.records[i].identity.clone())
        .collect();
    assert_eq!(identities.len(), 4);

    // Preprocessing every image, prefetched, in input order.
    let pre = PreprocessParams::new(64).check().unwrap();
    let mut seen = Vec::new();
    let prefetch = PrefetchParams::default().batch_size(16).check().unwrap();
    for b in BatchIter::new(ds.records.clone(), pre, prefetch) {
        let b = b.unwrap();
        assert_eq!(&b.images.shape()[1..], &[3, 64, 64]);
        assert!(b.images.iter().all(|v| v.is_finite()));
        seen.extend(b.ids);
    }
    let expected: Vec<_> = ds.records.iter().map(|r| r.image_id.clone()).collect();
    assert_eq!(seen, expected);
}
