//! The score of an identification against the truth, as AnimalCLEF 2025
//! computes it, with each query's known / new status judged within its own
//! scope.

use reid_core::Record;
use reid_eval::submission::{SubmissionRow, submission_rows};
use reid_openset::score::{AnimalClefScore, adjusted_rand_index, animalclef_score};
use serde::Serialize;

use crate::Result;
use crate::identify::Identification;

/// Figures of an identification against the truth.
#[derive(Debug, Clone, Serialize)]
pub struct IdentificationScore {
    /// Queries of known individuals (in their scope's database).
    pub known_queries: usize,
    /// Queries of new individuals.
    pub new_queries: usize,
    /// BAKS, BAUS and score per dataset (scope), and their mean.
    #[serde(serialize_with = "ser_animalclef")]
    pub animalclef: AnimalClefScore,
    /// Closed-set top-1 accuracy of the known queries (threshold ignored).
    pub closed_top1: Option<f64>,
    /// Adjusted Rand index of the new-individual ids against the truth,
    /// over the queries of new individuals (`None` with fewer than 2).
    pub new_id_ari: Option<f64>,
}

fn ser_animalclef<S: serde::Serializer>(
    s: &AnimalClefScore,
    ser: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = ser.serialize_map(Some(2))?;
    let per: std::collections::BTreeMap<&str, serde_json::Value> = s
        .per_dataset
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                serde_json::json!({"baks": v.baks, "baus": v.baus, "score": v.geometric_mean()}),
            )
        })
        .collect();
    m.serialize_entry("per_dataset", &per)?;
    m.serialize_entry("score", &s.score)?;
    m.end()
}

impl Identification {
    /// The true identity of each query, `None` when any query has none (an
    /// unlabelled test set, as AnimalCLEF's).
    pub fn truth(&self, records: &[Record]) -> Option<Vec<String>> {
        self.queries
            .iter()
            .map(|&i| records.get(i).and_then(|r| r.identity.clone()))
            .collect()
    }

    /// Whether each query's true identity is new: absent from the database
    /// of its own scope (an identity of another dataset with the same name
    /// does not make it known).
    pub fn new_flags<S: AsRef<str>>(&self, records: &[Record], truth: &[S]) -> Vec<bool> {
        self.split().new_flags(records, truth)
    }

    /// The AnimalCLEF submission rows (`image_id`, the identity or
    /// `new_individual`), one per query in query order.
    pub fn submission_rows(&self, records: &[Record]) -> Result<Vec<SubmissionRow>> {
        let ids: Vec<&str> = self
            .queries
            .iter()
            .map(|&i| records.get(i).map_or("", |r| r.image_id.as_str()))
            .collect();
        Ok(submission_rows(&ids, &self.decisions())?)
    }

    /// Scores the identification against the queries' true identities;
    /// `None` when any query has no identity.
    pub fn score(&self, records: &[Record]) -> Result<Option<IdentificationScore>> {
        let Some(truth) = self.truth(records) else {
            return Ok(None);
        };
        let is_new = self.new_flags(records, &truth);
        let animalclef = animalclef_score(&truth, &self.decisions(), &is_new, &self.scope_names())?;
        let new_queries = is_new.iter().filter(|n| **n).count();
        let known_queries = truth.len() - new_queries;
        let closed_top1 = (known_queries > 0).then(|| {
            let right = self
                .predictions
                .iter()
                .zip(&truth)
                .zip(&is_new)
                .filter(|((p, t), n)| !**n && p.candidate == **t)
                .count();
            right as f64 / known_queries as f64
        });
        let new_rows: Vec<usize> = (0..truth.len()).filter(|&i| is_new[i]).collect();
        let new_id_ari = if new_rows.len() >= 2 {
            let a: Vec<&str> = new_rows.iter().map(|&i| truth[i].as_str()).collect();
            let b: Vec<&str> = new_rows
                .iter()
                .map(|&i| self.final_ids[i].as_str())
                .collect();
            Some(adjusted_rand_index(&a, &b)?)
        } else {
            None
        };
        Ok(Some(IdentificationScore {
            known_queries,
            new_queries,
            animalclef,
            closed_top1,
            new_id_ari,
        }))
    }
}

impl std::fmt::Display for IdentificationScore {
    /// One line per dataset (BAKS, BAUS, score), then the mean score with
    /// the closed-set top-1 and the new-id ARI.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.3}"));
        for (d, s) in &self.animalclef.per_dataset {
            writeln!(
                f,
                "  {d}: BAKS {}  BAUS {}  score {:.3}",
                v(s.baks),
                v(s.baus),
                s.geometric_mean()
            )?;
        }
        write!(
            f,
            "AnimalCLEF score {:.3} ({} known, {} new queries); closed-set top-1 {}; new-id ARI {}",
            self.animalclef.score,
            self.known_queries,
            self.new_queries,
            v(self.closed_top1),
            v(self.new_id_ari)
        )
    }
}
