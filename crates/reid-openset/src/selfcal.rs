//! Self-calibrated thresholds from the database alone.
//!
//! In AnimalCLEF there are no labelled queries to tune a threshold on. This
//! module simulates open-set *episodes* inside the database:
//!
//! 1. identities are shuffled (seeded); a fraction `new_fraction` of them
//!    (at least one, and never all) become *pseudo-new*: all their images
//!    are queries and none stays in the gallery. One identity with two or
//!    more images is always kept known, so every episode has known queries;
//! 2. of every other identity with `m >= 2` images, `round(query_fraction *
//!    m)` images (clamped to `1..=m-1`, so one always stays in the gallery)
//!    become *pseudo-queries*; identities with one image (singletons) stay
//!    whole in the gallery: a singleton is therefore either pseudo-new or
//!    gallery, never a known query;
//! 3. the pseudo-queries are searched against the remaining gallery and
//!    decided by the [`Rule`] at every threshold of the grid, and each
//!    threshold is scored by `sqrt(BAKS * BAUS)` (see [`crate::score`]).
//!
//! This is repeated for `episodes` episodes (episode `e` draws from the
//! ChaCha8 stream `e` of `seed`). The chosen threshold maximises the mean
//! score over episodes; when several grid values tie for the best mean, the
//! middle one of them is taken (with a clean gap between same- and
//! different-identity similarities this is the middle of the gap). The
//! spread is reported per episode (each episode's own best threshold and
//! the score of the chosen one).

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::decision::{Gallery, Rule};
use crate::{OpensetError, Result};

/// Validated parameters of the episode simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct SelfCalibrationParams {
    new_fraction: f64,
    query_fraction: f64,
    episodes: usize,
    seed: u64,
    grid: Vec<f32>,
}

impl SelfCalibrationParams {
    /// Checks: `new_fraction` and `query_fraction` in `(0, 1)`, `episodes >=
    /// 1`, a non-empty grid of finite thresholds (sorted and deduplicated
    /// here).
    pub fn new(
        new_fraction: f64,
        query_fraction: f64,
        episodes: usize,
        seed: u64,
        grid: Vec<f32>,
    ) -> Result<Self> {
        for (name, v) in [
            ("new_fraction", new_fraction),
            ("query_fraction", query_fraction),
        ] {
            if !(v > 0.0 && v < 1.0) {
                return Err(OpensetError::InvalidParam {
                    name,
                    reason: format!("must be in (0, 1), got {v}"),
                });
            }
        }
        if episodes == 0 {
            return Err(OpensetError::InvalidParam {
                name: "episodes",
                reason: "must be at least 1".into(),
            });
        }
        if grid.is_empty() {
            return Err(OpensetError::InvalidParam {
                name: "grid",
                reason: "needs at least one threshold".into(),
            });
        }
        if let Some(bad) = grid.iter().find(|v| !v.is_finite()) {
            return Err(OpensetError::InvalidParam {
                name: "grid",
                reason: format!("thresholds must be finite, got {bad}"),
            });
        }
        let mut grid = grid;
        grid.sort_by(f32::total_cmp);
        grid.dedup();
        Ok(Self {
            new_fraction,
            query_fraction,
            episodes,
            seed,
            grid,
        })
    }

    /// `steps + 1` evenly spaced thresholds from `lo` to `hi` inclusive.
    pub fn linear_grid(lo: f32, hi: f32, steps: usize) -> Vec<f32> {
        let steps = steps.max(1);
        (0..=steps)
            .map(|i| lo + (hi - lo) * i as f32 / steps as f32)
            .collect()
    }

    /// Fraction of identities held out as pseudo-new.
    pub fn new_fraction(&self) -> f64 {
        self.new_fraction
    }
    /// Fraction of a known identity's images used as pseudo-queries.
    pub fn query_fraction(&self) -> f64 {
        self.query_fraction
    }
    /// Number of episodes.
    pub fn episodes(&self) -> usize {
        self.episodes
    }
    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// The thresholds tried, ascending.
    pub fn grid(&self) -> &[f32] {
        &self.grid
    }
}

impl Default for SelfCalibrationParams {
    /// `new_fraction` 0.3, `query_fraction` 0.5, 10 episodes, seed 0, grid
    /// -1.0 to 1.0 in steps of 0.01.
    fn default() -> Self {
        Self {
            new_fraction: 0.3,
            query_fraction: 0.5,
            episodes: 10,
            seed: 0,
            grid: Self::linear_grid(-1.0, 1.0, 200),
        }
    }
}

/// One simulated open-set episode: rows of the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    /// Rows kept as the gallery, ascending.
    pub gallery: Vec<usize>,
    /// Rows used as queries, ascending.
    pub queries: Vec<usize>,
    /// For each query, whether its identity is pseudo-new (absent from the
    /// gallery).
    pub is_new: Vec<bool>,
}

/// Draws the episodes of `params` over database rows labelled `labels`.
///
/// Errors when fewer than two identities exist or no identity has two
/// images (then no known query can be formed).
pub fn simulate_episodes<S: AsRef<str>>(
    labels: &[S],
    params: &SelfCalibrationParams,
) -> Result<Vec<Episode>> {
    let mut by_id: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, l) in labels.iter().enumerate() {
        by_id.entry(l.as_ref()).or_default().push(i);
    }
    let ids: Vec<&Vec<usize>> = by_id.values().collect();
    if ids.len() < 2 {
        return Err(OpensetError::Episodes(format!(
            "needs at least 2 identities, found {}",
            ids.len()
        )));
    }
    if !ids.iter().any(|rows| rows.len() >= 2) {
        return Err(OpensetError::Episodes(
            "no identity has two images, so no known pseudo-query can be formed".into(),
        ));
    }
    let n_ids = ids.len();
    let n_new = ((params.new_fraction * n_ids as f64).round() as usize).clamp(1, n_ids - 1);
    let mut out = Vec::with_capacity(params.episodes);
    for e in 0..params.episodes {
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        rng.set_stream(e as u64);
        let mut order: Vec<usize> = (0..n_ids).collect();
        order.shuffle(&mut rng);
        // The first identity (in shuffled order) with two images stays known.
        let reserved = order
            .iter()
            .copied()
            .find(|&i| ids.get(i).is_some_and(|r| r.len() >= 2));
        let new_ids: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| Some(i) != reserved)
            .take(n_new)
            .collect();
        let mut gallery = Vec::new();
        let mut queries: Vec<(usize, bool)> = Vec::new();
        for (i, rows) in ids.iter().enumerate() {
            if new_ids.contains(&i) {
                queries.extend(rows.iter().map(|&r| (r, true)));
            } else if rows.len() >= 2 {
                let m = rows.len();
                let nq = ((params.query_fraction * m as f64).round() as usize).clamp(1, m - 1);
                let mut shuffled = (*rows).clone();
                shuffled.shuffle(&mut rng);
                let (q, g) = shuffled.split_at(nq);
                queries.extend(q.iter().map(|&r| (r, false)));
                gallery.extend_from_slice(g);
            } else {
                gallery.extend_from_slice(rows);
            }
        }
        gallery.sort_unstable();
        queries.sort_unstable();
        out.push(Episode {
            gallery,
            queries: queries.iter().map(|&(r, _)| r).collect(),
            is_new: queries.iter().map(|&(_, n)| n).collect(),
        });
    }
    Ok(out)
}

/// A query of an episode, reduced to what threshold scoring needs.
#[derive(Debug, Clone)]
pub(crate) struct EpisodeQuery {
    /// Index of the true identity (shared numbering within the database).
    pub identity: usize,
    /// Pseudo-new?
    pub is_new: bool,
    /// The rule's candidate is the true identity.
    pub correct: bool,
    /// The rule's score.
    pub score: f32,
}

/// Runs `rule` on one episode.
pub(crate) fn run_episode(
    gallery: &Gallery,
    identity_of: &[usize],
    rule: &Rule,
    episode: &Episode,
) -> Result<Vec<EpisodeQuery>> {
    let emb = gallery.embeddings();
    let g_rows = emb.select(ndarray::Axis(0), &episode.gallery);
    let q_rows = emb.select(ndarray::Axis(0), &episode.queries);
    let g_labels: Vec<String> = episode
        .gallery
        .iter()
        .filter_map(|&r| gallery.labels().get(r).cloned())
        .collect();
    let topk = reid_index::exact_topk(q_rows.view(), g_rows.view(), rule.neighbours())?;
    let mut out = Vec::with_capacity(episode.queries.len());
    for (row, (idx, sc)) in topk
        .indices
        .outer_iter()
        .zip(topk.scores.outer_iter())
        .enumerate()
    {
        let q = episode.queries.get(row).copied().unwrap_or_default();
        let truth = gallery.labels().get(q).map(String::as_str);
        let (correct, score) = match rule.candidate(&idx.to_vec(), &sc.to_vec(), &g_labels)? {
            Some((g, s)) => (g_labels.get(g).map(String::as_str) == truth, s),
            None => (false, f32::NEG_INFINITY),
        };
        out.push(EpisodeQuery {
            identity: identity_of.get(q).copied().unwrap_or_default(),
            is_new: episode.is_new.get(row).copied().unwrap_or_default(),
            correct,
            score,
        });
    }
    Ok(out)
}

/// Numbers the identities of `labels` (for fast per-identity counting).
pub(crate) fn identity_numbers(labels: &[String]) -> Vec<usize> {
    let mut map: BTreeMap<&str, usize> = BTreeMap::new();
    labels
        .iter()
        .map(|l| {
            let next = map.len();
            *map.entry(l.as_str()).or_insert(next)
        })
        .collect()
}

/// BAKS and BAUS of an episode at threshold `t` (known iff `score >= t`).
pub(crate) fn episode_score(queries: &[EpisodeQuery], t: f32) -> (Option<f64>, Option<f64>) {
    let mut known: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    let mut new: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for q in queries {
        let accept = q.score >= t;
        if q.is_new {
            let e = new.entry(q.identity).or_default();
            e.1 += 1;
            if !accept {
                e.0 += 1;
            }
        } else {
            let e = known.entry(q.identity).or_default();
            e.1 += 1;
            if accept && q.correct {
                e.0 += 1;
            }
        }
    }
    let avg = |m: &BTreeMap<usize, (usize, usize)>| {
        (!m.is_empty())
            .then(|| m.values().map(|&(h, n)| h as f64 / n as f64).sum::<f64>() / m.len() as f64)
    };
    (avg(&known), avg(&new))
}

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

/// Picks the threshold of `rule` that maximises the mean `sqrt(BAKS *
/// BAUS)` over database episodes (see the module docs).
pub fn self_calibrate(
    gallery: &Gallery,
    rule: &Rule,
    params: &SelfCalibrationParams,
) -> Result<SelfCalibration> {
    rule.validate()?;
    let episodes = simulate_episodes(gallery.labels(), params)?;
    let identity_of = identity_numbers(gallery.labels());
    let runs = episodes
        .iter()
        .map(|ep| run_episode(gallery, &identity_of, rule, ep))
        .collect::<Result<Vec<_>>>()?;
    Ok(summarise_episodes(runs, params.grid()))
}

/// The threshold of `grid` that maximises the mean `sqrt(BAKS * BAUS)` over
/// the episodes whose pseudo-queries are `runs` (one list per episode).
pub(crate) fn summarise_episodes(runs: Vec<Vec<EpisodeQuery>>, grid: &[f32]) -> SelfCalibration {
    let table: Vec<Vec<f64>> = runs
        .iter()
        .map(|qs| {
            grid.iter()
                .map(|&t| {
                    let (k, u) = episode_score(qs, t);
                    (k.unwrap_or(0.0) * u.unwrap_or(0.0)).sqrt()
                })
                .collect()
        })
        .collect();
    let curve: Vec<CurvePoint> = grid
        .iter()
        .enumerate()
        .map(|(ti, &threshold)| {
            let (mean, std) = mean_std(
                table
                    .iter()
                    .map(move |row| row.get(ti).copied().unwrap_or(0.0)),
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
    let outcomes: Vec<EpisodeOutcome> = runs
        .iter()
        .zip(&table)
        .map(|(qs, row)| {
            let (best_threshold, best_score) = middle_of_best(grid, row);
            let (baks, baus) = episode_score(qs, threshold);
            EpisodeOutcome {
                best_threshold,
                best_score,
                score: row.get(chosen).copied().unwrap_or_default(),
                baks,
                baus,
                known_queries: qs.iter().filter(|q| !q.is_new).count(),
                new_queries: qs.iter().filter(|q| q.is_new).count(),
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

/// Result of [`self_calibrate_groups`].
#[derive(Debug, Clone, PartialEq)]
pub struct GroupCalibration {
    /// Per-group thresholds; the default is calibrated on all rows together.
    pub thresholds: crate::decision::Thresholds,
    /// The default's calibration (all rows).
    pub all: SelfCalibration,
    /// Each calibrated group's report.
    pub per_group: BTreeMap<String, SelfCalibration>,
    /// Groups that could not form episodes (they use the default), with the
    /// reason.
    pub skipped: BTreeMap<String, String>,
}

/// Self-calibrates one threshold per group (species or dataset) of the
/// database rows (`groups[i]` for row `i`), each from episodes drawn inside
/// that group only, plus a default from all rows. A group that cannot form
/// episodes (one identity, or only singletons) is listed in
/// [`GroupCalibration::skipped`] and falls back to the default.
pub fn self_calibrate_groups<S: AsRef<str>>(
    gallery: &Gallery,
    groups: &[S],
    rule: &Rule,
    params: &SelfCalibrationParams,
) -> Result<GroupCalibration> {
    crate::check::same_len("gallery groups", gallery.len(), groups.len())?;
    let all = self_calibrate(gallery, rule, params)?;
    let mut thresholds = crate::decision::Thresholds::new(all.threshold)?;
    let mut rows: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, g) in groups.iter().enumerate() {
        rows.entry(g.as_ref()).or_default().push(i);
    }
    let mut per_group = BTreeMap::new();
    let mut skipped = BTreeMap::new();
    for (name, idx) in rows {
        let sub = Gallery::new(
            gallery.embeddings().select(ndarray::Axis(0), &idx),
            idx.iter()
                .filter_map(|&i| gallery.labels().get(i).cloned())
                .collect(),
        )?;
        match self_calibrate(&sub, rule, params) {
            Ok(cal) => {
                thresholds = thresholds.with_group(name, cal.threshold)?;
                per_group.insert(name.to_owned(), cal);
            }
            Err(OpensetError::Episodes(reason)) => {
                skipped.insert(name.to_owned(), reason);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(GroupCalibration {
        thresholds,
        all,
        per_group,
        skipped,
    })
}
