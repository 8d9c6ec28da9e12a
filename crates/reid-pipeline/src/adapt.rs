//! The embeddings as the pipeline searches them: projected, dataset by
//! dataset, by a [`reid_openset::Projection`] fitted on that dataset's
//! database alone; and [`choose_adaptation`], which picks the projection
//! from the database's own self-calibration episodes.

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis, s};
use reid_core::{ParamGuard, Record};
use reid_openset::adapt::adapt_split;
use reid_openset::{
    AdaptParams, Adaptation, KReciprocalParams, ValidAdaptParams, self_calibrate_groups,
};
use serde::Serialize;

use crate::identify::check_rows;
use crate::params::ValidOpenSetParams;
use crate::split::OpenSetSplit;
use crate::{PipelineError, Result};

/// One dataset's projection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdaptedGroup {
    /// Database rows it was fitted on.
    pub rows: usize,
    /// Identities among them.
    pub identities: usize,
    /// Output dimension.
    pub dim: usize,
    /// Seconds to fit it.
    pub seconds: f64,
}

/// The projected embeddings of an identification and how they were made.
#[derive(Debug, Clone)]
pub struct Adapted {
    /// The projection settings.
    pub params: ValidAdaptParams,
    /// Every record's projected embedding (rows aligned with the records;
    /// L2-normalised; zero for a record outside the split or a query whose
    /// scope has no database). Datasets with fewer output dimensions are
    /// padded with zeros, which no cosine between records of one dataset
    /// sees.
    pub embeddings: Array2<f32>,
    /// Each dataset's projection, by scope name.
    pub groups: BTreeMap<String, AdaptedGroup>,
    /// Seconds to fit and apply every projection.
    pub seconds: f64,
}

/// Fits one projection per dataset (scope name of the database records) on
/// that dataset's database rows and labels, and applies it to those rows
/// and to the queries of the same scope.
pub(crate) fn adapt_embeddings(
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    split: &OpenSetSplit,
    params: &ValidAdaptParams,
) -> Result<Adapted> {
    let start = Instant::now();
    let groups = split.database_groups(records);
    let mut db_by_group: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (pos, g) in groups.iter().enumerate() {
        db_by_group.entry(g).or_default().push(pos);
    }
    let mut q_by_group: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (qi, scope) in split.scopes.iter().enumerate() {
        q_by_group.entry(scope.name()).or_default().push(qi);
    }
    let mut parts: Vec<(Vec<usize>, Array2<f32>)> = Vec::new();
    let mut report = BTreeMap::new();
    for (name, positions) in &db_by_group {
        let t = Instant::now();
        let rows: Vec<usize> = positions.iter().map(|&p| split.database[p]).collect();
        let labels: Vec<&str> = positions
            .iter()
            .map(|&p| split.database_labels[p].as_str())
            .collect();
        let x = embeddings.select(Axis(0), &rows);
        let q_rows: Vec<usize> = q_by_group
            .get(name)
            .map(|qs| qs.iter().map(|&qi| split.queries[qi]).collect())
            .unwrap_or_default();
        let xq = embeddings.select(Axis(0), &q_rows);
        let (yg, yq) = adapt_split(x.view(), &labels, xq.view(), params)?;
        let dim = yg.ncols();
        parts.push((rows.clone(), yg));
        parts.push((q_rows, yq));
        let mut identities = labels.clone();
        identities.sort_unstable();
        identities.dedup();
        report.insert(
            (*name).to_owned(),
            AdaptedGroup {
                rows: rows.len(),
                identities: identities.len(),
                dim,
                seconds: t.elapsed().as_secs_f64(),
            },
        );
    }
    let width = parts.iter().map(|(_, y)| y.ncols()).max().unwrap_or(1);
    let mut out = Array2::<f32>::zeros((records.len(), width));
    for (rows, y) in parts {
        for (&r, row) in rows.iter().zip(y.outer_iter()) {
            out.slice_mut(s![r, ..row.len()]).assign(&row);
        }
    }
    Ok(Adapted {
        params: *params,
        embeddings: out,
        groups: report,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The index of the highest of `scores`, the earliest of equals (`None`
/// when empty): how every choice on the database's episodes picks.
///
/// ```
/// assert_eq!(reid_pipeline::best_index(&[0.7, 0.9, 0.9, 0.8]), Some(1));
/// assert_eq!(reid_pipeline::best_index(&[]), None);
/// ```
pub fn best_index(scores: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &v) in scores.iter().enumerate() {
        if best.is_none_or(|b| v > scores[b]) {
            best = Some(i);
        }
    }
    best
}

/// One candidate projection's self-calibration on the database.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptTrial {
    /// The candidate (`None`: the embeddings as given).
    pub adapt: Option<ValidAdaptParams>,
    /// Its mean episode score: each dataset's mean at that dataset's own
    /// best threshold, averaged over the datasets that calibrate (with one
    /// threshold for all datasets, the pooled episodes' mean at the pooled
    /// threshold).
    pub score: f64,
    /// Each calibrated dataset's mean episode score at its own threshold.
    pub per_dataset: BTreeMap<String, f64>,
    /// Seconds its self-calibration took (every episode refits it).
    pub seconds: f64,
}

impl AdaptTrial {
    /// `none`, `center`, `lda(shrinkage 0.5)`, ...
    pub fn name(&self) -> String {
        self.adapt
            .as_ref()
            .map_or_else(|| "none".to_owned(), ToString::to_string)
    }
}

/// The outcome of [`choose_adaptation`]: every candidate's episode score
/// and the one chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptChoice {
    /// One trial per candidate, in the order given.
    pub trials: Vec<AdaptTrial>,
    /// Index of the chosen trial: the highest score, the earliest of equals.
    pub chosen: usize,
}

impl AdaptChoice {
    /// The chosen projection (`None`: the embeddings as given).
    pub fn adapt(&self) -> Option<ValidAdaptParams> {
        self.trials.get(self.chosen).and_then(|t| t.adapt)
    }

    /// The chosen trial.
    pub fn best(&self) -> Option<&AdaptTrial> {
        self.trials.get(self.chosen)
    }

    /// `params` with the chosen projection.
    pub fn params(&self, params: &ValidOpenSetParams) -> Result<ValidOpenSetParams> {
        params.with_adapt(self.adapt())
    }
}

/// The candidates `--adapt auto` tries, simplest first (so that a tie keeps
/// the simpler): the embeddings as given, then within-identity whitening
/// and LDA at shrinkage 0.1, 0.5 and 0.9.
pub fn default_adapt_candidates() -> Vec<Option<AdaptParams>> {
    let mut out = vec![None];
    for method in [Adaptation::Whiten, Adaptation::Lda] {
        for s in [0.1, 0.5, 0.9] {
            out.push(Some(AdaptParams::new(method).shrinkage(s)));
        }
    }
    out
}

/// Chooses among `candidates` the projection whose self-calibration scores
/// best on the database's own open-set episodes: the episodes of `params`
/// (the same seeded episodes for every candidate, each refitting the
/// candidate on its pseudo-gallery alone) on the database rows of
/// `records`, within each dataset, exactly as [`crate::identify`]
/// calibrates. The queries are never read: their rows of `embeddings` do
/// not change the outcome. The projection `params` carries is ignored.
///
/// Errors: no candidate, a candidate's settings invalid, or what
/// self-calibration refuses (no dataset large enough for episodes).
pub fn choose_adaptation(
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    params: &ValidOpenSetParams,
    candidates: &[Option<AdaptParams>],
) -> Result<AdaptChoice> {
    check_rows(records, embeddings)?;
    if candidates.is_empty() {
        return Err(PipelineError::InvalidParam {
            name: "candidates",
            reason: "at least one projection (or none) to try".into(),
        });
    }
    let split = OpenSetSplit::new(records)?;
    let database = split.database_gallery(records, embeddings)?;
    let groups = split.database_groups(records);
    let mut trials = Vec::with_capacity(candidates.len());
    for c in candidates {
        let t = Instant::now();
        let adapt = c.map(ParamGuard::check).transpose()?;
        let episodes = params.episodes.clone().into_params().adapt(adapt).check()?;
        let cal = self_calibrate_groups(&database, &groups, &params.rule, &episodes)?;
        let per_dataset: BTreeMap<String, f64> = cal
            .per_group
            .iter()
            .map(|(g, s)| (g.clone(), s.score_mean))
            .collect();
        let score = if params.per_dataset && !per_dataset.is_empty() {
            per_dataset.values().sum::<f64>() / per_dataset.len() as f64
        } else {
            cal.all.score_mean
        };
        trials.push(AdaptTrial {
            adapt,
            score,
            per_dataset,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    let scores: Vec<f64> = trials.iter().map(|t| t.score).collect();
    let chosen = best_index(&scores).unwrap_or(0);
    Ok(AdaptChoice { trials, chosen })
}

/// Same-identity neighbours of database-side augmentation `--adapt auto`
/// tries (0: none).
pub const DEFAULT_DBA: [usize; 3] = [0, 5, 20];
/// Database rows of α-query expansion `--adapt auto` tries (0: none).
pub const DEFAULT_QE: [usize; 2] = [0, 2];

/// The neighbourhood steps ([`reid_openset::expand`]) to try on a chosen
/// projection `p`: every `dba` of `dbas` with every `qe` of `qes`, weights
/// at exponent `alpha`, in that order, without repeats.
pub fn neighbourhood_candidates(
    p: AdaptParams,
    dbas: &[usize],
    qes: &[usize],
    alpha: f32,
) -> Vec<AdaptParams> {
    let mut out: Vec<AdaptParams> = Vec::new();
    for &dba in dbas {
        for &qe in qes {
            let c = p.dba(dba).qe(qe).alpha(alpha);
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
}

/// [`neighbourhood_candidates`] over [`DEFAULT_DBA`] and [`DEFAULT_QE`],
/// α = 1 (the projected cosines these steps follow are low: at α = 3 the
/// neighbours' weights all but vanish).
pub fn default_neighbourhood_candidates(p: AdaptParams) -> Vec<AdaptParams> {
    neighbourhood_candidates(p, &DEFAULT_DBA, &DEFAULT_QE, 1.0)
}

/// The k-reciprocal re-rankings `--adapt auto` tries on the chosen
/// projection and neighbourhood steps: the paper's settings (`k1 = 20`,
/// `k2 = 6`, `λ = 0.3`, for galleries with many photos per identity) and
/// half the neighbourhood (`k1 = 10`, `k2 = 3`) for databases with fewer.
pub fn default_rerank_candidates() -> Vec<KReciprocalParams> {
    vec![
        KReciprocalParams::default(),
        KReciprocalParams::default().k1(10).k2(3),
    ]
}

/// [`choose_adaptation`] in three stages: the projection among
/// `candidates`; then, when one was chosen, the neighbourhood steps
/// `steps(chosen)` on it; then each re-ranking of `rerank` on the best so
/// far (the chosen settings themselves are not scored twice). One list of
/// trials, the projections' first; the best of all is chosen, the earliest
/// of equals. Every score comes from the database's episodes alone.
pub fn choose_adaptation_staged(
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    params: &ValidOpenSetParams,
    candidates: &[Option<AdaptParams>],
    steps: impl Fn(AdaptParams) -> Vec<AdaptParams>,
    rerank: &[KReciprocalParams],
) -> Result<AdaptChoice> {
    let choice = choose_adaptation(records, embeddings, params, candidates)?;
    add_later_stages(choice, records, embeddings, params, steps, rerank)
}

/// The second and third stages of [`choose_adaptation_staged`] on
/// `choice`: the neighbourhood steps `steps(chosen)`, then each of `rerank`
/// on the best so far.
fn add_later_stages(
    choice: AdaptChoice,
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    params: &ValidOpenSetParams,
    steps: impl Fn(AdaptParams) -> Vec<AdaptParams>,
    rerank: &[KReciprocalParams],
) -> Result<AdaptChoice> {
    let choice = add_neighbourhood_steps(choice, records, embeddings, params, steps)?;
    add_neighbourhood_steps(choice, records, embeddings, params, |p| {
        rerank.iter().map(|&r| p.rerank(Some(r))).collect()
    })
}

/// A later stage of [`choose_adaptation_staged`]: `steps(chosen)` tried
/// on the settings `choice` chose, appended to its trials, the best of all
/// kept.
fn add_neighbourhood_steps(
    mut choice: AdaptChoice,
    records: &[Record],
    embeddings: ArrayView2<'_, f32>,
    params: &ValidOpenSetParams,
    steps: impl Fn(AdaptParams) -> Vec<AdaptParams>,
) -> Result<AdaptChoice> {
    let Some(chosen) = choice.adapt().map(ValidAdaptParams::into_params) else {
        return Ok(choice);
    };
    let second: Vec<Option<AdaptParams>> = steps(chosen)
        .into_iter()
        .filter(|c| *c != chosen)
        .map(Some)
        .collect();
    if second.is_empty() {
        return Ok(choice);
    }
    let more = choose_adaptation(records, embeddings, params, &second)?;
    let offset = choice.trials.len();
    let better = more.best().map(|b| b.score) > choice.best().map(|b| b.score);
    choice.trials.extend(more.trials);
    if better {
        choice.chosen = offset + more.chosen;
    }
    Ok(choice)
}

/// One set of embeddings the pipeline may search: a name (`mobilenet_v2`,
/// `mobilenet_v2+tiny16`) and one row per record.
#[derive(Debug, Clone)]
pub struct FeatureSet<'a> {
    /// What the rows are.
    pub name: String,
    /// One row per record.
    pub embeddings: ArrayView2<'a, f32>,
}

/// The outcome of [`choose_features`]: for each feature set, its choice of
/// projection; and which set won.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureChoice {
    /// The feature sets' names, in the order given.
    pub names: Vec<String>,
    /// Each set's projection choice (the winner's with its neighbourhood
    /// steps).
    pub choices: Vec<AdaptChoice>,
    /// Index of the chosen set: the best episode score of any of its
    /// trials, the earliest set of equals.
    pub chosen: usize,
}

impl FeatureChoice {
    /// The chosen set's name.
    pub fn name(&self) -> &str {
        &self.names[self.chosen]
    }

    /// The chosen set's projection choice.
    pub fn adapt_choice(&self) -> &AdaptChoice {
        &self.choices[self.chosen]
    }

    /// Every trial, named `set: projection`, with its episode score, set by
    /// set.
    pub fn trials(&self) -> Vec<(String, f64)> {
        self.names
            .iter()
            .zip(&self.choices)
            .flat_map(|(n, c)| {
                c.trials
                    .iter()
                    .map(move |t| (format!("{n}: {}", t.name()), t.score))
            })
            .collect()
    }
}

/// Chooses which embeddings to search and how to project them, from the
/// database's own episodes: [`choose_adaptation`] over `candidates` on each
/// set of `sets` (the same seeded episodes for all), the set whose best
/// trial scores highest wins (the earliest of equals, so list the simplest
/// first), then the neighbourhood steps `steps(chosen)` and the
/// re-rankings `rerank` are tried on the winner's projection as in
/// [`choose_adaptation_staged`]. The queries are never read.
///
/// Errors: no set, or what [`choose_adaptation`] refuses for any set.
pub fn choose_features(
    records: &[Record],
    sets: &[FeatureSet<'_>],
    params: &ValidOpenSetParams,
    candidates: &[Option<AdaptParams>],
    steps: impl Fn(AdaptParams) -> Vec<AdaptParams>,
    rerank: &[KReciprocalParams],
) -> Result<FeatureChoice> {
    if sets.is_empty() {
        return Err(PipelineError::InvalidParam {
            name: "sets",
            reason: "at least one set of embeddings to try".into(),
        });
    }
    let mut choices = Vec::with_capacity(sets.len());
    for set in sets {
        choices.push(choose_adaptation(
            records,
            set.embeddings,
            params,
            candidates,
        )?);
    }
    let bests: Vec<f64> = choices
        .iter()
        .map(|c| c.best().map_or(f64::NEG_INFINITY, |t| t.score))
        .collect();
    let chosen = best_index(&bests).unwrap_or(0);
    let winner = choices[chosen].clone();
    choices[chosen] = add_later_stages(
        winner,
        records,
        sets[chosen].embeddings,
        params,
        steps,
        rerank,
    )?;
    Ok(FeatureChoice {
        names: sets.iter().map(|s| s.name.clone()).collect(),
        choices,
        chosen,
    })
}
