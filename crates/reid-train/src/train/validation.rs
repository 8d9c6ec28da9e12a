//! Open-set validation: the self-calibrated score of labelled queries
//! against a labelled gallery ([`openset_validation`]), and
//! [`Trainer::evaluate`], which embeds both with the trainer's model and
//! scores them. The fit loop scores its validation queries with
//! [`openset_validation`] after each epoch.

use ndarray::Array2;
use reid_backbone::backbone::Backbone;
use reid_data::preprocess::PreprocessParams;
use reid_data::{ParamGuard, Record};
use reid_index::Gallery;
use reid_openset::score::{animalclef_score, new_flags};
use reid_openset::{DecisionParams, OpensetError, Rule, SelfCalibrationParams, decide_topk};
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
    /// The self-calibrated threshold.
    pub threshold: f32,
}

/// Self-calibrated open-set score of queries against a gallery: the
/// threshold comes from the gallery alone (`reid_openset::self_calibrate`),
/// the decision is top-1 cosine. Rows L2-normalised.
pub fn openset_validation(
    gallery: &Array2<f32>,
    gallery_labels: &[String],
    queries: &Array2<f32>,
    query_labels: &[String],
) -> Result<ValScore> {
    let records: Vec<Record> = gallery_labels
        .iter()
        .enumerate()
        .map(|(i, l)| Record::new(i.to_string(), i.to_string()).with_identity(l.clone()))
        .collect();
    let g =
        Gallery::from_parts("validation", gallery.view(), records).map_err(OpensetError::from)?;
    let rule = Rule::Top1;
    let groups = vec!["all"; gallery_labels.len()];
    let cal = reid_openset::self_calibrate_groups(
        &g,
        &groups,
        &rule,
        &SelfCalibrationParams::default().check()?,
    )?;
    let threshold = cal.thresholds.get(Some("all"));
    let topk =
        reid_index::exact_topk(queries.view(), g.embeddings(), 1).map_err(OpensetError::from)?;
    let qgroups = vec!["all"; query_labels.len()];
    let dp = DecisionParams::new(cal.thresholds.clone())
        .rule(rule)
        .check()?;
    let preds = decide_topk(&topk, gallery_labels, Some(&qgroups), &dp)?;
    let is_new = new_flags(query_labels, gallery_labels);
    let decisions: Vec<_> = preds.iter().map(|p| p.decision.clone()).collect();
    let s = animalclef_score(query_labels, &decisions, &is_new, &qgroups)?;
    let (baks, baus) = s
        .per_dataset
        .get("all")
        .map(|v| (v.baks, v.baus))
        .unwrap_or((None, None));
    let known: Vec<usize> = (0..query_labels.len()).filter(|&i| !is_new[i]).collect();
    let right = known
        .iter()
        .filter(|&&i| preds[i].candidate == query_labels[i])
        .count();
    let top1 = if known.is_empty() {
        0.0
    } else {
        right as f64 / known.len() as f64
    };
    Ok(ValScore {
        baks,
        baus,
        score: s.score,
        top1,
        threshold,
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
        let labels = |rs: &[Record], what: &'static str| -> Result<Vec<String>> {
            rs.iter()
                .map(|r| {
                    r.identity.clone().ok_or_else(|| {
                        TrainError::param(what, format!("record {} has no identity", r.image_id))
                    })
                })
                .collect()
        };
        let (gl, ql) = (labels(gallery, "gallery")?, labels(queries, "queries")?);
        let gc = ImageCache::load(gallery, &cache_pre)?;
        let qc = ImageCache::load(queries, &cache_pre)?;
        let ge = self.embed_images(backbone, &eval_pre, &gc.images.iter().collect::<Vec<_>>())?;
        let qe = self.embed_images(backbone, &eval_pre, &qc.images.iter().collect::<Vec<_>>())?;
        openset_validation(&ge, &gl, &qe, &ql)
    }
}
