//! Two datasets of the same species (two sites' catalogues of cows,
//! identities disjoint) whose photos look alike across sites: a query is
//! matched only within its own dataset, thresholds are self-calibrated
//! inside each dataset, and the AnimalCLEF submission is valid.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ndarray::{Array2, Axis};
use reid_eval::submission::SubmissionReference;
use reid_index::Gallery;
use reid_openset::{Decision, Rule, SelfCalibrationParams, self_calibrate};
use reid_pipeline::{
    FnScorer, FusionParams, OpenSetParams, ParamGuard, Record, Scope, SplitRole, fuse, identify,
};

const DIM: usize = 12;

/// A unit vector: `base` axis tilted by `deg` degrees towards axis `tilt`.
fn unit(base: usize, tilt: usize, deg: f32) -> [f32; DIM] {
    let mut v = [0.0; DIM];
    v[base] = deg.to_radians().cos();
    v[tilt] += deg.to_radians().sin();
    v
}

fn rec(id: &str, who: &str, split: SplitRole, site: Option<&str>) -> Record {
    let mut r = Record::new(id, format!("{id}.jpg"))
        .with_identity(who)
        .with_split(split)
        .with_species("cow");
    r.dataset = site.map(str::to_owned);
    r
}

/// Site A: cows A0..A3 along axes 0..3; site B: cow B0 along axis 0 tilted
/// 25° towards axis 8 (cos 0.906 to A0: the two sites' cows look alike), B1,
/// B2, B3 along axes 4, 5, 6; each cow's photos spread 0°–6° (towards axis
/// 9 in site A, 10 in site B).
/// Queries of site B:
/// - `qb0`: cow B0, but a near-copy of A0's first photo (cos 0.9998 to it,
///   0.909–0.914 to B0's photos): its nearest photo overall is in site A;
/// - `qbn`: a new cow of site B, a near-copy of A1 (cos 0.9998), orthogonal
///   to every B cow;
///
/// Queries of site A: `qa2` (A2) and `qan` (a new cow near axis 7).
fn two_sites() -> (Vec<Record>, Array2<f32>) {
    use SplitRole::{Database as D, Query as Q};
    let mut rows: Vec<(Record, [f32; DIM])> = Vec::new();
    for cow in 0..4 {
        for k in 0..3 {
            let deg = 3.0 * k as f32;
            rows.push((
                rec(&format!("a{cow}_{k}"), &format!("A{cow}"), D, Some("SiteA")),
                unit(cow, 9, deg),
            ));
            let mut b = if cow == 0 {
                unit(0, 8, 25.0)
            } else {
                unit(3 + cow, 8, 0.0)
            };
            b[10] += deg.to_radians().sin();
            rows.push((
                rec(&format!("b{cow}_{k}"), &format!("B{cow}"), D, Some("SiteB")),
                b,
            ));
        }
    }
    rows.push((rec("qb0", "B0", Q, Some("SiteB")), unit(0, 8, 1.0)));
    rows.push((rec("qbn", "Bnew", Q, Some("SiteB")), unit(1, 11, 1.0)));
    rows.push((rec("qa2", "A2", Q, Some("SiteA")), unit(2, 9, 2.0)));
    rows.push((rec("qan", "Anew", Q, Some("SiteA")), unit(7, 9, 1.0)));
    let mut emb = Array2::from_shape_fn((rows.len(), DIM), |(i, j)| rows[i].1[j]);
    for mut r in emb.rows_mut() {
        let n = r.dot(&r).sqrt();
        r /= n;
    }
    (rows.into_iter().map(|(r, _)| r).collect(), emb)
}

fn site_of(records: &[Record], who: &str) -> Option<String> {
    records
        .iter()
        .find(|r| r.identity.as_deref() == Some(who))
        .and_then(|r| r.dataset.clone())
}

#[test]
fn the_global_nearest_neighbour_of_the_other_site_is_never_proposed() {
    let (records, emb) = two_sites();
    // The trap is real: over the whole database, qb0's and qbn's nearest
    // photos belong to site A.
    let db: Vec<usize> = (0..records.len())
        .filter(|&i| records[i].split == Some(SplitRole::Database))
        .collect();
    let q = records.iter().position(|r| r.image_id == "qb0").unwrap();
    let sims = emb.select(Axis(0), &db).dot(&emb.row(q));
    let best = db[sims
        .iter()
        .enumerate()
        .fold(0, |b, (i, &s)| if s > sims[b] { i } else { b })];
    assert_eq!(records[best].dataset.as_deref(), Some("SiteA"));

    let params = OpenSetParams::default()
        .fixed_threshold(Some(0.85))
        .check()
        .unwrap();
    let out = identify(&records, emb.view(), &params).unwrap();
    let by_id = |id: &str| {
        let qi = out
            .queries
            .iter()
            .position(|&i| records[i].image_id == id)
            .unwrap();
        out.predictions[qi].decision.clone()
    };
    assert_eq!(by_id("qb0"), Decision::Known("B0".into()));
    assert_eq!(by_id("qbn"), Decision::New);
    assert_eq!(by_id("qa2"), Decision::Known("A2".into()));
    assert_eq!(by_id("qan"), Decision::New);
    // Every match of every query lies in the query's own dataset.
    for (qi, ms) in out.matches.iter().enumerate() {
        let site = records[out.queries[qi]].dataset.clone();
        assert!(!ms.is_empty());
        for m in ms {
            assert_eq!(records[out.database[m.database]].dataset, site);
        }
    }
    // The score counts each site on its own: all right.
    let s = out.score(&records).unwrap().unwrap();
    assert_eq!(s.animalclef.score, 1.0, "{:?}", s.animalclef);
    assert_eq!((s.known_queries, s.new_queries), (2, 2));
}

#[test]
fn thresholds_are_self_calibrated_inside_each_dataset() {
    let (records, emb) = two_sites();
    let episodes = SelfCalibrationParams::default().episodes(6).seed(3);
    let params = OpenSetParams::default()
        .episodes(episodes.clone())
        .check()
        .unwrap();
    let out = identify(&records, emb.view(), &params).unwrap();
    let cal = out.calibration.as_ref().unwrap();
    assert_eq!(
        cal.per_group.keys().collect::<Vec<_>>(),
        vec!["SiteA", "SiteB"]
    );
    // Each site's threshold is exactly what its own database alone gives:
    // its episodes never saw the other site.
    for site in ["SiteA", "SiteB"] {
        let rows: Vec<usize> = (0..records.len())
            .filter(|&i| {
                records[i].split == Some(SplitRole::Database)
                    && records[i].dataset.as_deref() == Some(site)
            })
            .collect();
        let labels: Vec<&str> = rows
            .iter()
            .map(|&i| records[i].identity.as_deref().unwrap())
            .collect();
        let g = Gallery::from_labels(emb.select(Axis(0), &rows).view(), &labels).unwrap();
        let own = self_calibrate(&g, &Rule::Top1, &episodes.clone().check().unwrap()).unwrap();
        assert_eq!(cal.per_group[site], own, "{site}");
        assert_eq!(out.thresholds.get(Some(site)), own.threshold);
    }
    // Whatever the thresholds, no answer names a cow of the other site.
    for (qi, p) in out.predictions.iter().enumerate() {
        let site = records[out.queries[qi]].dataset.clone();
        assert_eq!(site_of(&records, &p.candidate), site, "query {qi}");
    }
    // One threshold for both sites: chosen on the same per-site episodes.
    let one = OpenSetParams::default()
        .episodes(episodes)
        .per_dataset(false)
        .check()
        .unwrap();
    let out1 = identify(&records, emb.view(), &one).unwrap();
    let t = out1.calibration.as_ref().unwrap().all.threshold;
    assert!(out1.thresholds.groups().is_empty());
    assert_eq!(out1.thresholds.get(Some("SiteA")), t);
}

#[test]
fn the_submission_for_two_sites_is_valid() {
    let (records, emb) = two_sites();
    let params = OpenSetParams::default().check().unwrap();
    let out = identify(&records, emb.view(), &params).unwrap();
    let rows = out.submission_rows(&records).unwrap();
    let reference =
        SubmissionReference::from_dataset(&reid_data::Dataset::new("", records.clone())).unwrap();
    reference.validate(&rows).unwrap();
    assert_eq!(rows.len(), 4);
    // Fused with a second source, still valid and still within each site.
    let sees_all = FnScorer::new("any", |_a: usize, _b: usize| Ok(1.0f32));
    let fusion = FusionParams::default().shortlist(20).check().unwrap();
    let fused = fuse(&out, &records, emb.view(), &params, &[&sees_all], &fusion).unwrap();
    reference
        .validate(&fused.submission_rows(&records).unwrap())
        .unwrap();
    for (qi, ms) in fused.matches.iter().enumerate() {
        let site = records[fused.queries[qi]].dataset.clone();
        assert_eq!(ms.len(), 12, "the shortlist is the query's site: 12 photos");
        assert!(
            ms.iter()
                .all(|m| records[fused.database[m.database]].dataset == site)
        );
    }
    let report = fused.fusion.as_ref().unwrap();
    assert_eq!(report.query_pairs, 4 * 12);
    assert_eq!(
        report.calibration.per_group.keys().collect::<Vec<_>>(),
        vec!["SiteA", "SiteB"]
    );
}

#[test]
fn scopes_fall_back_to_species_then_all() {
    let (mut records, emb) = two_sites();
    // Without a dataset, qb0 is matched within its species: both sites.
    let qb0 = records.iter().position(|r| r.image_id == "qb0").unwrap();
    records[qb0].dataset = None;
    // A query of a site that has no database: nothing to match, so new.
    let qan = records.iter().position(|r| r.image_id == "qan").unwrap();
    records[qan].dataset = Some("SiteC".into());
    let params = OpenSetParams::default()
        .fixed_threshold(Some(0.85))
        .check()
        .unwrap();
    let out = identify(&records, emb.view(), &params).unwrap();
    let qi = out.queries.iter().position(|&i| i == qb0).unwrap();
    assert_eq!(out.scopes[qi], Scope::Species("cow".into()));
    assert_eq!(out.predictions[qi].decision, Decision::Known("A0".into()));
    let qi = out.queries.iter().position(|&i| i == qan).unwrap();
    assert_eq!(out.scopes[qi], Scope::Dataset("SiteC".into()));
    assert!(out.matches[qi].is_empty());
    assert_eq!(out.predictions[qi].decision, Decision::New);
    // Neither dataset nor species: everything.
    records[qb0].species = None;
    let out = identify(&records, emb.view(), &params).unwrap();
    let qi = out.queries.iter().position(|&i| i == qb0).unwrap();
    assert_eq!(out.scopes[qi], Scope::All);
    assert_eq!(out.matches[qi].len(), 5);
}

#[test]
fn an_identity_name_shared_by_two_sites_is_judged_per_site() {
    let (mut records, emb) = two_sites();
    // Site B's new cow carries a name that site A uses: still new in B.
    let qbn = records.iter().position(|r| r.image_id == "qbn").unwrap();
    records[qbn].identity = Some("A3".into());
    let params = OpenSetParams::default()
        .fixed_threshold(Some(0.85))
        .check()
        .unwrap();
    let out = identify(&records, emb.view(), &params).unwrap();
    let truth = out.truth(&records).unwrap();
    let flags = out.new_flags(&records, &truth);
    let qi = out.queries.iter().position(|&i| i == qbn).unwrap();
    assert!(flags[qi], "A3 is not in site B's database");
    assert_eq!(out.score(&records).unwrap().unwrap().animalclef.score, 1.0);
}

/// A projection fitted on the database never sees a query: with the
/// queries' embeddings replaced by others, the projected database, the
/// self-calibrated thresholds and the projection sizes are unchanged; each
/// site has its own projection (its own dimension under LDA).
#[test]
fn the_projection_is_fitted_per_site_on_the_database_alone() {
    use reid_pipeline::{AdaptParams, Adaptation};
    let (records, emb) = two_sites();
    for method in [Adaptation::Whiten, Adaptation::Lda] {
        let params = OpenSetParams::default()
            .episodes(SelfCalibrationParams::default().episodes(4).seed(1))
            .adapt(Some(AdaptParams::new(method).shrinkage(0.4)))
            .check()
            .unwrap();
        let out = identify(&records, emb.view(), &params).unwrap();
        // The fit is timed as the projection's stage, before calibration.
        let t = &out.seconds;
        assert!(t.projection > 0.0, "{t:?}");
        assert!(t.projection + t.calibration <= t.database, "{t:?}");
        let mut other = emb.clone();
        for (k, &q) in out.queries.iter().enumerate() {
            other.row_mut(q).fill(0.0);
            other[[q, (k * 5) % DIM]] = 1.0;
        }
        let out2 = identify(&records, other.view(), &params).unwrap();
        let (a, a2) = (
            out.adapted.as_ref().unwrap(),
            out2.adapted.as_ref().unwrap(),
        );
        let db = a.embeddings.select(Axis(0), &out.database);
        assert_eq!(db, a2.embeddings.select(Axis(0), &out.database), "{method}");
        assert_eq!(out.thresholds, out2.thresholds, "{method}");
        assert_ne!(
            a.embeddings.select(Axis(0), &out.queries),
            a2.embeddings.select(Axis(0), &out.queries)
        );
        assert_eq!(a.groups.keys().collect::<Vec<_>>(), vec!["SiteA", "SiteB"]);
        for g in a.groups.values() {
            assert_eq!((g.rows, g.identities), (12, 4), "{method}");
            let want = if method == Adaptation::Lda { 3 } else { DIM };
            assert_eq!(g.dim, want, "{method}");
        }
        // Projected rows are unit length (or zero).
        for row in a.embeddings.outer_iter() {
            let n = row.dot(&row);
            assert!(n == 0.0 || (n - 1.0).abs() < 1e-5, "{n}");
        }
        // Still never a cow of the other site.
        for (qi, p) in out.predictions.iter().enumerate() {
            let site = records[out.queries[qi]].dataset.clone();
            assert_eq!(site_of(&records, &p.candidate), site, "query {qi}");
        }
    }
}
