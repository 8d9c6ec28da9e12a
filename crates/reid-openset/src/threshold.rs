//! Self-calibrated thresholds: the threshold of a decision rule chosen
//! from the database alone, on the open-set [`crate::episodes`] simulated
//! inside it.
//!
//! The pseudo-queries of each episode are searched against that episode's
//! gallery and decided by the [`Rule`] at every threshold of the grid; each
//! threshold is scored by `sqrt(BAKS * BAUS)` (see [`crate::score`]). The
//! chosen threshold maximises the mean score over episodes; when several
//! grid values tie for the best mean, the middle one of them is taken (the
//! upper middle for an even count; with a clean gap between same- and
//! different-identity similarities this is the middle of the gap). The spread is reported per episode (each
//! episode's own best threshold and the score of the chosen one).
//!
//! **Groups** (datasets): [`self_calibrate_groups`] draws every episode
//! inside one group, so a pseudo-query is only ever compared with its own
//! group's images, exactly as a real query is. Each group gets its own
//! threshold; the default threshold (for groups that cannot form episodes,
//! or for one threshold shared by all groups) maximises, over episodes, the
//! mean over groups of each group's episode score, as AnimalCLEF averages
//! its score over datasets.

use std::collections::BTreeMap;

use reid_index::Gallery;

use crate::decision::{Rule, Thresholds};
use crate::episodes::{
    EpisodeQuery, ValidSelfCalibrationParams, episode_score, gallery_episodes, identity_numbers,
    labels, run_episode,
};
use crate::{OpensetError, Result};

/// One episode's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeOutcome {
    /// This episode's own best threshold (middle of its tied best values).
    pub best_threshold: f32,
    /// Its score `sqrt(BAKS * BAUS)` at that threshold.
    pub best_score: f64,
    /// Score at the chosen (all-episode) threshold.
    pub score: f64,
    /// BAKS at the chosen threshold.
    pub baks: Option<f64>,
    /// BAUS at the chosen threshold.
    pub baus: Option<f64>,
    /// Number of known pseudo-queries.
    pub known_queries: usize,
    /// Number of pseudo-new queries.
    pub new_queries: usize,
}

/// Mean and standard deviation over episodes at one threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// The threshold.
    pub threshold: f32,
    /// Mean score over episodes.
    pub mean: f64,
    /// Population standard deviation over episodes.
    pub std: f64,
}

/// Result of [`self_calibrate`].
#[derive(Debug, Clone, PartialEq)]
pub struct SelfCalibration {
    /// The chosen threshold.
    pub threshold: f32,
    /// Mean score over episodes at the chosen threshold.
    pub score_mean: f64,
    /// Standard deviation of that score over episodes.
    pub score_std: f64,
    /// Mean of the per-episode best thresholds.
    pub threshold_mean: f64,
    /// Standard deviation of the per-episode best thresholds.
    pub threshold_std: f64,
    /// Per-episode values.
    pub episodes: Vec<EpisodeOutcome>,
    /// Mean and std of the score at every grid threshold.
    pub curve: Vec<CurvePoint>,
}

/// One episode's figures at every threshold of the grid.
#[derive(Debug, Clone)]
pub(crate) struct EpisodeCurve {
    /// `sqrt(BAKS * BAUS)` per threshold (an undefined BAKS or BAUS counts 0).
    score: Vec<f64>,
    /// BAKS per threshold.
    baks: Vec<Option<f64>>,
    /// BAUS per threshold.
    baus: Vec<Option<f64>>,
    /// Known pseudo-queries.
    known: usize,
    /// Pseudo-new queries.
    new: usize,
}

/// The curve of each episode whose pseudo-queries are `runs` (one list per
/// episode).
pub(crate) fn episode_curves(runs: &[Vec<EpisodeQuery>], grid: &[f32]) -> Vec<EpisodeCurve> {
    runs.iter()
        .map(|qs| {
            let (baks, baus): (Vec<_>, Vec<_>) = grid.iter().map(|&t| episode_score(qs, t)).unzip();
            let score = baks
                .iter()
                .zip(&baus)
                .map(|(k, u)| (k.unwrap_or(0.0) * u.unwrap_or(0.0)).sqrt())
                .collect();
            EpisodeCurve {
                score,
                baks,
                baus,
                known: qs.iter().filter(|q| !q.is_new).count(),
                new: qs.iter().filter(|q| q.is_new).count(),
            }
        })
        .collect()
}

/// Episode `e` of the result is the mean over groups of each group's
/// episode `e` (scores, and BAKS/BAUS where defined); counts are summed.
/// Every group has the same number of episodes and grid.
pub(crate) fn pool_curves(groups: &[Vec<EpisodeCurve>]) -> Vec<EpisodeCurve> {
    let n_ep = groups.iter().map(Vec::len).min().unwrap_or(0);
    let n_t = groups
        .first()
        .and_then(|g| g.first())
        .map_or(0, |c| c.score.len());
    let mean_some = |v: Vec<Option<f64>>| {
        let some: Vec<f64> = v.into_iter().flatten().collect();
        (!some.is_empty()).then(|| some.iter().sum::<f64>() / some.len() as f64)
    };
    (0..n_ep)
        .map(|e| {
            let eps: Vec<&EpisodeCurve> = groups.iter().filter_map(|g| g.get(e)).collect();
            let k = eps.len().max(1) as f64;
            EpisodeCurve {
                score: (0..n_t)
                    .map(|t| eps.iter().map(|c| c.score[t]).sum::<f64>() / k)
                    .collect(),
                baks: (0..n_t)
                    .map(|t| mean_some(eps.iter().map(|c| c.baks[t]).collect()))
                    .collect(),
                baus: (0..n_t)
                    .map(|t| mean_some(eps.iter().map(|c| c.baus[t]).collect()))
                    .collect(),
                known: eps.iter().map(|c| c.known).sum(),
                new: eps.iter().map(|c| c.new).sum(),
            }
        })
        .collect()
}

fn mean_std(v: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = v.clone().count().max(1) as f64;
    let mean = v.clone().sum::<f64>() / n;
    let var = v.map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// The middle of the grid values whose value is within 1e-12 of the best.
fn middle_of_best(grid: &[f32], values: &[f64]) -> (f32, f64) {
    let best = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tied: Vec<usize> = (0..values.len())
        .filter(|&i| values.get(i).is_some_and(|&v| v >= best - 1e-12))
        .collect();
    let i = tied.get(tied.len() / 2).copied().unwrap_or_default();
    (grid.get(i).copied().unwrap_or_default(), best)
}

/// The threshold of `grid` that maximises the mean episode score of
/// `curves`, with its report.
pub(crate) fn summarise(curves: &[EpisodeCurve], grid: &[f32]) -> SelfCalibration {
    let curve: Vec<CurvePoint> = grid
        .iter()
        .enumerate()
        .map(|(ti, &threshold)| {
            let (mean, std) = mean_std(
                curves
                    .iter()
                    .map(move |c| c.score.get(ti).copied().unwrap_or(0.0)),
            );
            CurvePoint {
                threshold,
                mean,
                std,
            }
        })
        .collect();
    let means: Vec<f64> = curve.iter().map(|c| c.mean).collect();
    let (threshold, score_mean) = middle_of_best(grid, &means);
    let chosen = grid
        .iter()
        .position(|&t| t == threshold)
        .unwrap_or_default();
    let score_std = curve.get(chosen).map(|c| c.std).unwrap_or_default();
    let outcomes: Vec<EpisodeOutcome> = curves
        .iter()
        .map(|c| {
            let (best_threshold, best_score) = middle_of_best(grid, &c.score);
            EpisodeOutcome {
                best_threshold,
                best_score,
                score: c.score.get(chosen).copied().unwrap_or_default(),
                baks: c.baks.get(chosen).copied().flatten(),
                baus: c.baus.get(chosen).copied().flatten(),
                known_queries: c.known,
                new_queries: c.new,
            }
        })
        .collect();
    let (threshold_mean, threshold_std) =
        mean_std(outcomes.iter().map(|o| f64::from(o.best_threshold)));
    SelfCalibration {
        threshold,
        score_mean,
        score_std,
        threshold_mean,
        threshold_std,
        episodes: outcomes,
        curve,
    }
}

/// The episode curves of `rule` on one group (the whole `gallery`).
fn group_curves(
    gallery: &Gallery,
    rule: &Rule,
    params: &ValidSelfCalibrationParams,
) -> Result<Vec<EpisodeCurve>> {
    rule.validate()?;
    let labels = labels(gallery)?;
    let episodes = gallery_episodes(gallery, &labels, params)?;
    let identity_of = identity_numbers(&labels);
    let runs = episodes
        .iter()
        .map(|ep| run_episode(gallery, &labels, &identity_of, rule, ep, params.adapt()))
        .collect::<Result<Vec<_>>>()?;
    Ok(episode_curves(&runs, params.grid()))
}

/// Picks the threshold of `rule` that maximises the mean `sqrt(BAKS *
/// BAUS)` over database episodes drawn from the whole `gallery` (one group;
/// see the module docs). Every gallery record needs an identity.
pub fn self_calibrate(
    gallery: &Gallery,
    rule: &Rule,
    params: &ValidSelfCalibrationParams,
) -> Result<SelfCalibration> {
    Ok(summarise(
        &group_curves(gallery, rule, params)?,
        params.grid(),
    ))
}

/// Result of [`self_calibrate_groups`].
#[derive(Debug, Clone, PartialEq)]
pub struct GroupCalibration {
    /// Per-group thresholds, and the default ([`GroupCalibration::all`]'s).
    pub thresholds: Thresholds,
    /// The default: the threshold that maximises the mean over episodes of
    /// the mean over calibrated groups of each group's episode score
    /// (episodes never cross groups).
    pub all: SelfCalibration,
    /// Each calibrated group's report.
    pub per_group: BTreeMap<String, SelfCalibration>,
    /// Groups that could not form episodes (they use the default), with the
    /// reason.
    pub skipped: BTreeMap<String, String>,
}

/// Splits the rows of a gallery by group name (`groups[i]` for row `i`).
pub(crate) fn rows_by_group<S: AsRef<str>>(
    gallery: &Gallery,
    groups: &[S],
) -> Result<BTreeMap<String, Vec<usize>>> {
    crate::check::same_len("gallery groups", gallery.len(), groups.len())?;
    let mut rows: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, g) in groups.iter().enumerate() {
        rows.entry(g.as_ref().to_owned()).or_default().push(i);
    }
    Ok(rows)
}

/// The error when no group can form episodes.
pub(crate) fn no_group_calibrates(skipped: &BTreeMap<String, String>) -> OpensetError {
    OpensetError::Episodes(format!(
        "no group can form episodes on its own: {}",
        skipped
            .iter()
            .map(|(g, why)| format!("{g} ({why})"))
            .collect::<Vec<_>>()
            .join("; ")
    ))
}

/// Self-calibrates one threshold per group (species or dataset) of the
/// gallery rows (`groups[i]` for row `i`), each from episodes drawn inside
/// that group only, and a default from all groups together (see the module
/// docs). A group that cannot form episodes (one identity, or only
/// singletons) is listed in [`GroupCalibration::skipped`] and falls back to
/// the default; when no group can, this is an [`OpensetError::Episodes`].
pub fn self_calibrate_groups<S: AsRef<str>>(
    gallery: &Gallery,
    groups: &[S],
    rule: &Rule,
    params: &ValidSelfCalibrationParams,
) -> Result<GroupCalibration> {
    let rows = rows_by_group(gallery, groups)?;
    let mut curves = Vec::new();
    let mut per_group = BTreeMap::new();
    let mut skipped = BTreeMap::new();
    for (name, idx) in rows {
        let sub = gallery.select_rows(&idx)?;
        match group_curves(&sub, rule, params) {
            Ok(c) => {
                per_group.insert(name, summarise(&c, params.grid()));
                curves.push(c);
            }
            Err(OpensetError::Episodes(reason)) => {
                skipped.insert(name, reason);
            }
            Err(e) => return Err(e),
        }
    }
    if curves.is_empty() {
        return Err(no_group_calibrates(&skipped));
    }
    let all = summarise(&pool_curves(&curves), params.grid());
    let mut thresholds = Thresholds::new(all.threshold)?;
    for (g, c) in &per_group {
        thresholds = thresholds.with_group(g, c.threshold)?;
    }
    Ok(GroupCalibration {
        thresholds,
        all,
        per_group,
        skipped,
    })
}
