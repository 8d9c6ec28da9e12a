//! A second similarity source (local keypoints, another model) fused into
//! each query's cosine shortlist, calibrated from the database alone.

use std::cell::Cell;
use std::time::Instant;

use ndarray::{ArrayView2, Axis};
use reid_core::{ParamGuard, Record};
use reid_openset::{
    DecisionParams, EmbeddingScorer, FusionCalibration, FusionGroupCalibration, FusionSource,
    PairScorer, Thresholds, ValidFusionParams, fuse as fuse_shortlist,
    self_calibrate_fusion_groups,
};

use crate::identify::{
    FUSED_RULE, Identification, check_rows, decide_by_scope, final_ids, search_by_scope,
};
use crate::params::ValidOpenSetParams;
use crate::{PipelineError, Result};

/// What [`fuse`] did.
#[derive(Debug, Clone)]
pub struct FusionReport {
    /// The shortlist `B`.
    pub shortlist: usize,
    /// The calibrations: per dataset, and the default.
    pub calibration: FusionGroupCalibration,
    /// Pairs the second source scored for the calibration (database ×
    /// database, never across datasets).
    pub database_pairs: usize,
    /// Query × database pairs it scored.
    pub query_pairs: usize,
    /// Seconds the second source spent on database pairs.
    pub database_seconds: f64,
    /// Seconds it spent on query pairs.
    pub query_seconds: f64,
}

impl FusionReport {
    /// The calibration the default threshold comes from.
    pub fn all(&self) -> &FusionCalibration {
        &self.calibration.all
    }
}

/// A record-pair scorer seen through row maps: query row `q` is record
/// `queries[q]`, gallery row `g` is record `gallery[g]`; the time spent in
/// the inner scorer and the pairs it scored are counted.
struct Mapped<'a> {
    inner: &'a dyn PairScorer,
    queries: &'a [usize],
    gallery: &'a [usize],
    seconds: Cell<f64>,
    pairs: Cell<usize>,
}

impl<'a> Mapped<'a> {
    fn new(inner: &'a dyn PairScorer, queries: &'a [usize], gallery: &'a [usize]) -> Self {
        Self {
            inner,
            queries,
            gallery,
            seconds: Cell::new(0.0),
            pairs: Cell::new(0),
        }
    }
    fn map(&self, q: usize, g: usize) -> std::result::Result<(usize, usize), String> {
        match (self.queries.get(q), self.gallery.get(g)) {
            (Some(&a), Some(&b)) => Ok((a, b)),
            _ => Err(format!(
                "pair ({q}, {g}) outside [{}, {}]",
                self.queries.len(),
                self.gallery.len()
            )),
        }
    }
}

impl PairScorer for Mapped<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn score(&self, q: usize, g: usize) -> std::result::Result<f32, String> {
        let (a, b) = self.map(q, g)?;
        self.inner.score(a, b)
    }
    fn score_many(
        &self,
        pairs: &[(usize, usize)],
    ) -> std::result::Result<Vec<f32>, (usize, String)> {
        let mapped = pairs
            .iter()
            .enumerate()
            .map(|(i, &(q, g))| self.map(q, g).map_err(|e| (i, e)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let t = Instant::now();
        let out = self.inner.score_many(&mapped);
        self.seconds
            .set(self.seconds.get() + t.elapsed().as_secs_f64());
        self.pairs.set(self.pairs.get() + pairs.len());
        out
    }
}

fn check_sources(fusion: &ValidFusionParams) -> Result<()> {
    if fusion.weights().len() != 2 {
        return Err(PipelineError::InvalidParam {
            name: "weights",
            reason: format!(
                "the pipeline fuses two sources (cosine, then the pair scorer), got {} weights",
                fusion.weights().len()
            ),
        });
    }
    Ok(())
}

/// A second similarity source fused into an identification that
/// [`crate::identify`] made from the same `records`, `embeddings` and
/// `params` (the WildFusion recipe; several fusions, e.g. shortlist sizes,
/// share one cosine pass: `fuse(&identify(..)?, ..)`).
///
/// `local` scores pairs of **records** (indices into `records`; e.g.
/// keypoint inlier counts). For each dataset, the fusion is self-calibrated
/// from its database alone ([`reid_openset::self_calibrate_fusion_groups`]:
/// cosine and `local`, each calibrated to the probability of the same
/// individual, averaged with the weights of `fusion`, a threshold on the
/// fused probability from the open-set episodes of `params`, never crossing
/// datasets); each query's cosine shortlist of `fusion.shortlist()` database
/// images of its own scope is re-ranked by the fused probability, and the
/// top one is accepted when it clears its dataset's threshold. New
/// individuals are grouped as in [`crate::identify`], by cosine at the
/// cosine threshold's distance. `local` only ever sees shortlisted pairs.
pub fn fuse(
    cosine: &Identification,
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    params: &ValidOpenSetParams,
    local: &dyn PairScorer,
    fusion: &ValidFusionParams,
) -> Result<Identification> {
    check_sources(fusion)?;
    check_rows(records, embeddings)?;
    cosine.check_inputs(records, embeddings)?;
    let split = cosine.split();
    let database = split.database_gallery(records, embeddings)?;
    let db_emb = database.embeddings();
    let episodes = params
        .episodes
        .with_grid(reid_openset::linear_grid(0.0..=1.0, 200))?;
    let groups = split.database_groups(records);

    // Calibration on database pairs, within each dataset.
    let db_cosine = EmbeddingScorer::new("cosine", db_emb, db_emb)?;
    let db_local = Mapped::new(local, &split.database, &split.database);
    let calibration = self_calibrate_fusion_groups(
        &database,
        &groups,
        &[&db_cosine, &db_local],
        fusion,
        &episodes,
    )?;
    let thresholds = if params.per_dataset {
        calibration.thresholds.clone()
    } else {
        Thresholds::new(calibration.all.self_calibration.threshold)?
    };

    // Each query's cosine shortlist inside its scope, re-ranked with its
    // dataset's calibrators.
    let q_emb = embeddings.select(Axis(0), &split.queries);
    let parts = search_by_scope(&split, &database, q_emb.view(), fusion.shortlist())?;
    let mut query_pairs = 0;
    let mut query_seconds = 0.0;
    let mut fused_parts = Vec::with_capacity(parts.len());
    for (scope, rows, short) in parts {
        let cal = if params.per_dataset {
            calibration.get(scope.name())
        } else {
            &calibration.all
        };
        let q_part = q_emb.select(Axis(0), &rows);
        let q_recs: Vec<usize> = rows.iter().map(|&i| split.queries[i]).collect();
        let cosine = EmbeddingScorer::new("cosine", q_part.view(), db_emb.view())?;
        let mapped = Mapped::new(local, &q_recs, &split.database);
        let out = if short.indices.ncols() == 0 {
            short
        } else {
            let sources: Vec<FusionSource<'_>> = [&cosine as &dyn PairScorer, &mapped]
                .into_iter()
                .zip(&cal.calibrators)
                .zip(fusion.weights())
                .map(|((scorer, calibrator), &weight)| FusionSource {
                    scorer,
                    calibrator: Some(calibrator),
                    weight,
                })
                .collect();
            fuse_shortlist(&short, &sources)?
        };
        query_pairs += mapped.pairs.get();
        query_seconds += mapped.seconds.get();
        fused_parts.push((scope, rows, out));
    }
    let dp = DecisionParams::new(thresholds.clone())
        .rule(FUSED_RULE)
        .check()?;
    let (predictions, matches) = decide_by_scope(
        &fused_parts,
        split.queries.len(),
        &split.database_labels,
        &dp,
    )?;
    // New individuals cluster by cosine, at the cosine thresholds.
    let final_ids = final_ids(
        &predictions,
        &split.scopes,
        q_emb.view(),
        &cosine.thresholds,
        params,
    )?;
    Ok(Identification {
        predictions,
        matches,
        final_ids,
        thresholds,
        fusion: Some(FusionReport {
            shortlist: fusion.shortlist(),
            calibration,
            database_pairs: db_local.pairs.get(),
            query_pairs,
            database_seconds: db_local.seconds.get(),
            query_seconds,
        }),
        ..cosine.clone()
    })
}
