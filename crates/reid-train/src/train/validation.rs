//! Open-set validation: the self-calibrated score of labelled queries
//! against a labelled gallery ([`openset_validation`]), and
//! [`Trainer::evaluate`], which embeds both with the trainer's model and
//! scores them. The fit loop scores its validation queries with
//! [`openset_validation`] after each epoch.

use ndarray::{Array2, Axis, concatenate};
use reid_backbone::backbone::Backbone;
use reid_data::preprocess::PreprocessParams;
use reid_data::{ParamGuard, Record, SplitRole};
use reid_pipeline::{OpenSetParams, identify};
use serde::{Deserialize, Serialize};

use super::trainer::{ImageCache, Trainer};
use crate::error::{Result, TrainError};

/// The open-set score of one validation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValScore {
    /// Balanced accuracy on known identities (`None` without known queries).
    pub baks: Option<f64>,
    /// Balanced accuracy on new identities (`None` without new queries).
    pub baus: Option<f64>,
    /// `sqrt(baks * baus)` (AnimalCLEF's score); with no new queries, BAKS.
    pub score: f64,
    /// Closed-set top-1 accuracy of the known queries.
    pub top1: f64,
    /// The self-calibrated default threshold (the one threshold with a
    /// single dataset).
    pub threshold: f32,
}

/// Self-calibrated open-set score of labelled queries against a labelled
/// gallery, through the open-set pipeline ([`reid_pipeline::identify()`]):
/// each query is matched only within its own dataset (else species), the
/// threshold of each dataset comes from that dataset's gallery alone, the
/// decision is top-1 cosine. `gallery` row `i` embeds `gallery_records[i]`,
/// likewise for the queries; rows L2-normalised. With several datasets,
/// `baks` and `baus` are their means and `score` is AnimalCLEF's mean of the
/// per-dataset scores.
pub fn openset_validation(
    gallery: &Array2<f32>,
    gallery_records: &[Record],
    queries: &Array2<f32>,
    query_records: &[Record],
) -> Result<ValScore> {
    let role = |rs: &[Record], split: SplitRole, what: &'static str| -> Result<Vec<Record>> {
        rs.iter()
            .map(|r| {
                if r.identity.is_none() {
                    return Err(TrainError::param(
                        what,
                        format!("record {} has no identity", r.image_id),
                    ));
                }
                Ok(r.clone().with_split(split.clone()))
            })
            .collect()
    };
    let mut records = role(gallery_records, SplitRole::Database, "gallery")?;
    records.extend(role(query_records, SplitRole::Query, "queries")?);
    let embeddings =
        concatenate(Axis(0), &[gallery.view(), queries.view()]).map_err(|e| TrainError::Shape {
            what: "validation embeddings".into(),
            expected: format!(
                "gallery and queries of one width, {} columns",
                gallery.ncols()
            ),
            got: format!("{e} ({} columns for the queries)", queries.ncols()),
        })?;
    let params = OpenSetParams::default().check()?;
    let ident = identify(&records, embeddings.view(), &params)?;
    let s = ident.score(&records)?.ok_or_else(|| {
        TrainError::param("queries", "a validation query has no identity".to_string())
    })?;
    let mean = |v: Vec<Option<f64>>| {
        let some: Vec<f64> = v.into_iter().flatten().collect();
        (!some.is_empty()).then(|| some.iter().sum::<f64>() / some.len() as f64)
    };
    let per = s.animalclef.per_dataset.values();
    Ok(ValScore {
        baks: mean(per.clone().map(|v| v.baks).collect()),
        baus: mean(per.map(|v| v.baus).collect()),
        score: s.animalclef.score,
        top1: s.closed_top1.unwrap_or(0.0),
        threshold: ident.thresholds.default_threshold(),
    })
}

impl Trainer {
    /// The self-calibrated open-set score of `queries` (labelled) against
    /// `gallery` (labelled) with this trainer's embedding (eval mode).
    pub fn evaluate(
        &self,
        backbone: &Backbone,
        gallery: &[Record],
        queries: &[Record],
    ) -> Result<ValScore> {
        let s = u32::try_from(self.size).unwrap_or(224);
        let big = (f64::from(s) * 8.0 / 7.0).round() as u32;
        let cache_pre = PreprocessParams::timm_eval(big, 1.0).check()?;
        let eval_pre = backbone.preprocess_params().check()?;
        let gc = ImageCache::load(gallery, &cache_pre)?;
        let qc = ImageCache::load(queries, &cache_pre)?;
        let ge = self.embed_images(backbone, &eval_pre, &gc.images.iter().collect::<Vec<_>>())?;
        let qe = self.embed_images(backbone, &eval_pre, &qc.images.iter().collect::<Vec<_>>())?;
        openset_validation(&ge, gallery, &qe, queries)
    }
}
