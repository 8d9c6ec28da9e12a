//! The figures of an identification that the example programs print and
//! report: the open-set score, the closed-set ranking of the known queries,
//! how well the new ids group the new animals, and the silhouette of the
//! database.

use std::collections::BTreeMap;
use std::fmt;

use ndarray::{ArrayView2, Axis};
use reid_core::{ParamGuard, Record};
use reid_eval::metrics::{
    HomogeneityCompleteness, RankingMetrics, RankingParams, SilhouetteMetric,
    homogeneity_completeness_v_measure, normalized_mutual_info, ranking_metrics, silhouette_score,
};
use serde::Serialize;

use crate::Result;
use crate::identify::Identification;
use crate::score::IdentificationScore;

/// How well the new ids group the queries of new animals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Discovery {
    /// Queries of new animals.
    pub queries: usize,
    /// Adjusted Rand index against the true identities.
    pub ari: f64,
    /// Normalised mutual information.
    pub nmi: f64,
    /// Homogeneity, completeness and V-measure.
    #[serde(skip)]
    pub hcv: HomogeneityCompleteness,
}

/// Everything [`evaluate`] measures; `None` where the truth or the data do
/// not allow it.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The open-set score (when the queries carry their truth).
    pub score: Option<IdentificationScore>,
    /// Closed-set ranking of the known queries, each over the database of
    /// its own scope (top-1/5/10 within the scope's size, CMC, mAP).
    pub ranking: Option<RankingMetrics>,
    /// New-individual discovery (with at least two queries of new animals).
    pub discovery: Option<Discovery>,
    /// Silhouette of the database embeddings by identity (cosine).
    pub silhouette: Option<f64>,
    /// One line per self-calibrated dataset: threshold (on the fused
    /// probability after [`crate::fuse`]), episode optima and episode score
    /// with their spread; and the datasets that use the default.
    pub thresholds: Vec<String>,
}

/// Measures `ident` (made from `records` and `embeddings`) against the
/// truth the queries carry, if they do.
pub fn evaluate(
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    ident: &Identification,
) -> Result<Evaluation> {
    ident.check_inputs(records, embeddings)?;
    let embeddings = ident.working(embeddings.view());
    let score = ident.score(records)?;
    let truth = ident.truth(records);
    let mut ranking = None;
    let mut discovery = None;
    if let Some(truth) = &truth {
        let is_new = ident.new_flags(records, truth);
        let known: Vec<usize> = (0..truth.len()).filter(|&i| !is_new[i]).collect();
        if !known.is_empty() {
            // Similarities to the whole database, with the records outside a
            // query's scope masked out.
            let db = embeddings.select(Axis(0), &ident.database);
            let qrows: Vec<usize> = known.iter().map(|&i| ident.queries[i]).collect();
            let q = embeddings.select(Axis(0), &qrows);
            let mut sims = q.dot(&db.t());
            for (row, &qi) in known.iter().enumerate() {
                let scope = &ident.scopes[qi];
                for (col, &d) in ident.database.iter().enumerate() {
                    if !scope.contains(&records[d]) {
                        sims[[row, col]] = f32::NEG_INFINITY;
                    }
                }
            }
            let labels: Vec<&str> = known.iter().map(|&i| truth[i].as_str()).collect();
            let smallest = known
                .iter()
                .map(|&qi| {
                    ident
                        .database
                        .iter()
                        .filter(|&&d| ident.scopes[qi].contains(&records[d]))
                        .count()
                })
                .min()
                .unwrap_or(0)
                .max(1);
            let ks: Vec<usize> = [1usize, 5, 10]
                .into_iter()
                .filter(|&k| k <= smallest)
                .collect();
            let rp = RankingParams::default()
                .ks(&ks)
                .cmc_len(20.min(smallest))
                .check()?;
            ranking = Some(ranking_metrics(
                sims.view(),
                &labels,
                &ident.database_labels,
                &rp,
            )?);
        }
        let new_rows: Vec<usize> = (0..truth.len()).filter(|&i| is_new[i]).collect();
        if new_rows.len() >= 2 {
            let a: Vec<&str> = new_rows.iter().map(|&i| truth[i].as_str()).collect();
            let b: Vec<&str> = new_rows
                .iter()
                .map(|&i| ident.final_ids[i].as_str())
                .collect();
            discovery = Some(Discovery {
                queries: new_rows.len(),
                ari: score
                    .as_ref()
                    .and_then(|s| s.new_id_ari)
                    .unwrap_or(f64::NAN),
                nmi: normalized_mutual_info(&a, &b)?,
                hcv: homogeneity_completeness_v_measure(&a, &b)?,
            });
        }
    }
    let db = embeddings.select(Axis(0), &ident.database);
    let silhouette =
        silhouette_score(db.view(), &ident.database_labels, SilhouetteMetric::Cosine).ok();
    let line = |g: &str, what: &str, c: &reid_openset::SelfCalibration| {
        format!(
            "{g}: threshold {:.3}{what} (episode optima {:.3} ± {:.3}, episode score {:.3} ± {:.3})",
            c.threshold, c.threshold_mean, c.threshold_std, c.score_mean, c.score_std
        )
    };
    let skipped = |g: &str, why: &str, default: f32| {
        format!("{g}: not calibrated on its own ({why}); uses the default {default:.3}")
    };
    let mut thresholds = Vec::new();
    if let Some(f) = &ident.fusion {
        let cal = &f.calibration;
        for (g, c) in &cal.per_group {
            thresholds.push(line(g, " on the fused probability", &c.self_calibration));
        }
        for (g, why) in &cal.skipped {
            thresholds.push(skipped(g, why, cal.all.self_calibration.threshold));
        }
    } else if let Some(cal) = &ident.calibration {
        for (g, c) in &cal.per_group {
            thresholds.push(line(g, "", c));
        }
        for (g, why) in &cal.skipped {
            thresholds.push(skipped(g, why, cal.all.threshold));
        }
    }
    Ok(Evaluation {
        score,
        ranking,
        discovery,
        silhouette,
        thresholds,
    })
}

impl fmt::Display for Evaluation {
    /// What the example programs print: the thresholds, the score, the
    /// ranking, the discovery and the silhouette, one figure group a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.thresholds {
            writeln!(f, "  {t}")?;
        }
        if let Some(s) = &self.score {
            writeln!(f, "{s}")?;
        }
        if let Some(r) = &self.ranking {
            writeln!(
                f,
                "closed set, known queries: {}  mAP {:.3}",
                r.top_k
                    .iter()
                    .map(|(k, a)| format!("top-{k} {a:.3}"))
                    .collect::<Vec<_>>()
                    .join("  "),
                r.mean_ap
            )?;
        }
        if let Some(d) = &self.discovery {
            writeln!(
                f,
                "new individuals ({} queries): ARI {:.3}  NMI {:.3}  V-measure {:.3}",
                d.queries, d.ari, d.nmi, d.hcv.v_measure
            )?;
        }
        if let Some(s) = self.silhouette {
            write!(f, "silhouette of the database by identity (cosine): {s:.3}")?;
        }
        Ok(())
    }
}

/// The headline figures of an identification (of all its datasets, or of
/// one): `None` where the truth does not define them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Headline {
    /// The AnimalCLEF score (`sqrt(BAKS * BAUS)`; over several datasets, the
    /// mean of theirs).
    pub score: Option<f64>,
    /// BAKS (over several datasets, the mean of the defined ones).
    pub baks: Option<f64>,
    /// BAUS (over several datasets, the mean of the defined ones).
    pub baus: Option<f64>,
    /// Closed-set top-1 of the known queries (the identification's own best
    /// match, threshold ignored), over all of them.
    pub top1: Option<f64>,
    /// Mean average precision of the known queries' cosine ranking in the
    /// searched embedding space, over all of them.
    pub map: Option<f64>,
}

/// What `summary.json` holds: the headline figures of one identification,
/// in one flat object a script can read, with the same figures per dataset
/// and the seconds the whole job took.
///
/// ```
/// use reid_pipeline::{Headline, Summary};
/// let h = Headline { score: Some(0.5), baks: Some(0.25), baus: Some(1.0), top1: None, map: None };
/// let s = Summary { all: h, seconds: 1.5, per_dataset: [("lion".to_string(), h)].into() };
/// let v = serde_json::to_value(&s)?;
/// assert_eq!(v["score"], 0.5);
/// assert_eq!(v["per_dataset"]["lion"]["baks"], 0.25);
/// assert!(v["top1"].is_null());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The figures over every dataset.
    #[serde(flatten)]
    pub all: Headline,
    /// Seconds the job took.
    pub seconds: f64,
    /// The figures of each dataset (scope name).
    pub per_dataset: BTreeMap<String, Headline>,
}

impl Evaluation {
    /// The CMC of each dataset (scope name) over its known queries that have
    /// a right database image, from the ranking of every known query (the
    /// same ranks as [`Evaluation::ranking`], whose CMC is their mean
    /// weighted by the queries evaluated); empty without a ranking.
    pub fn cmc_by_dataset(
        &self,
        records: &[Record],
        ident: &Identification,
    ) -> BTreeMap<String, Vec<f64>> {
        let mut out = BTreeMap::new();
        let (Some(r), Some(truth)) = (&self.ranking, ident.truth(records)) else {
            return out;
        };
        let is_new = ident.new_flags(records, &truth);
        let known = (0..truth.len()).filter(|&i| !is_new[i]);
        let mut hits: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (qi, q) in known.zip(&r.per_query) {
            if q.relevant > 0 {
                // A query outside the ranked depth has no first hit.
                hits.entry(ident.scopes[qi].name())
                    .or_default()
                    .push(q.first_hit.unwrap_or(usize::MAX));
            }
        }
        for (g, ranks) in hits {
            let n = ranks.len() as f64;
            let cmc = (1..=r.cmc.len())
                .map(|k| ranks.iter().filter(|&&h| h <= k).count() as f64 / n)
                .collect();
            out.insert(g.to_string(), cmc);
        }
        out
    }

    /// The headline figures of `ident` (which this evaluates, made from
    /// `records`), overall and per dataset, with `seconds`.
    pub fn summary(&self, records: &[Record], ident: &Identification, seconds: f64) -> Summary {
        let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let mut per_dataset: BTreeMap<String, Headline> = BTreeMap::new();
        if let Some(s) = &self.score {
            for (g, d) in &s.animalclef.per_dataset {
                per_dataset.insert(
                    g.clone(),
                    Headline {
                        score: Some(d.geometric_mean()),
                        baks: d.baks,
                        baus: d.baus,
                        top1: None,
                        map: None,
                    },
                );
            }
        }
        // Per dataset, the known queries' top-1 and AP, in the order the
        // ranking evaluated them.
        if let Some(truth) = ident.truth(records) {
            let is_new = ident.new_flags(records, &truth);
            let known: Vec<usize> = (0..truth.len()).filter(|&i| !is_new[i]).collect();
            let mut hits: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            let mut aps: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            for (k, &qi) in known.iter().enumerate() {
                let g = ident.scopes[qi].name();
                let right = ident.predictions[qi].candidate == truth[qi];
                hits.entry(g).or_default().push(f64::from(u8::from(right)));
                if let Some(ap) = self
                    .ranking
                    .as_ref()
                    .and_then(|r| r.per_query.get(k))
                    .and_then(|q| q.average_precision)
                {
                    aps.entry(g).or_default().push(ap);
                }
            }
            for (g, h) in per_dataset.iter_mut() {
                h.top1 = hits.remove(g.as_str()).and_then(mean);
                h.map = aps.remove(g.as_str()).and_then(mean);
            }
        }
        let defined =
            |f: fn(&Headline) -> Option<f64>| mean(per_dataset.values().filter_map(f).collect());
        let all = Headline {
            score: self.score.as_ref().map(|s| s.animalclef.score),
            baks: defined(|h| h.baks),
            baus: defined(|h| h.baus),
            top1: self.score.as_ref().and_then(|s| s.closed_top1),
            map: self.ranking.as_ref().map(|r| r.mean_ap),
        };
        Summary {
            all,
            seconds,
            per_dataset,
        }
    }
}
