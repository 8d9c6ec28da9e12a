//! Open-set episodes simulated inside the database: how every choice of
//! this crate is made from the database alone.
//!
//! In AnimalCLEF there are no labelled queries to tune anything on. An
//! *episode* splits the database into a pseudo-gallery and pseudo-queries:
//!
//! 1. identities are shuffled (seeded); a fraction `new_fraction` of them
//!    (at least one, and never all) become *pseudo-new*: all their images
//!    are queries and none stays in the gallery. One identity with two or
//!    more images is always kept known, so every episode has known queries;
//! 2. of every other identity with `m >= 2` images, `round(query_fraction *
//!    m)` images (clamped to `1..=m-1`, so one always stays in the gallery)
//!    become *pseudo-queries*; identities with one image (singletons) stay
//!    whole in the gallery: a singleton is therefore either pseudo-new or
//!    gallery, never a known query.
//!
//! With [`SelfCalibrationParams::encounters`] (photos grouped into
//! encounters: a video, a visit, a day), step 2 holds out whole encounters
//! instead of single photos, as real queries come from encounters the
//! database lacks (a cow filmed in another video, a turtle photographed in
//! another year): of a known identity with two or more encounters, whole
//! encounters in shuffled order become pseudo-queries until
//! `round(query_fraction * m)` photos are reached (at least one encounter,
//! never all); an identity with one encounter stays whole in the gallery,
//! and the identity kept known is one with two or more encounters. A photo
//! without the key is an encounter of its own. When no identity has two
//! encounters the episodes fall back to single photos.
//!
//! With [`SelfCalibrationParams::held_out`] (embeddings made by a network
//! fine-tuned on the other database photos, [`held_out_split`]), only the
//! held-out photos are pseudo-queries and only wholly held-out identities
//! are pseudo-new ([`simulate_held_out_episodes`]): the network has
//! learned every other photo, and would make episodes on them look easier
//! than real queries.
//!
//! Episode `e` draws from the ChaCha8 stream `e` of the seed. The thresholds
//! ([`crate::threshold`]), probability calibrators ([`crate::probability`])
//! and fusions ([`crate::fusion`]) are all fitted on these episodes.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use reid_core::ParamGuard;
use reid_index::Gallery;

use crate::adapt::{ValidAdaptParams, adapt_split};
use crate::decision::Rule;
use crate::{OpensetError, Result, check};

/// What groups a database's photos into encounters (photos taken
/// together, which a real query never shares with the database).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Encounters {
    /// The first of the columns `video` and `encounter` that every photo of
    /// the database (of the group calibrated) has; none if neither.
    Auto,
    /// The `date` column: the photos of one day are one encounter.
    Date,
    /// A metadata column kept in [`reid_core::Record::attributes`] (e.g.
    /// `video`): the photos of one value are one encounter.
    Column(String),
}

impl Encounters {
    /// The columns [`Encounters::Auto`] looks for, in order.
    pub const AUTO_COLUMNS: [&'static str; 2] = ["video", "encounter"];

    /// The encounter of `record`, if it has the key (never for `Auto`:
    /// resolve it first with [`Encounters::resolve`]).
    pub fn key(&self, record: &reid_core::Record) -> Option<String> {
        match self {
            Encounters::Auto => None,
            Encounters::Date => record.date.map(|d| d.to_string()),
            Encounters::Column(c) => record.attributes.get(c).filter(|v| !v.is_empty()).cloned(),
        }
    }

    /// What groups `records` into encounters: `Auto` becomes the first of
    /// [`Encounters::AUTO_COLUMNS`] that every record has (`None` if
    /// neither); the others stay themselves.
    pub fn resolve(&self, records: &[reid_core::Record]) -> Option<Encounters> {
        match self {
            Encounters::Auto => Self::AUTO_COLUMNS
                .iter()
                .map(|c| Encounters::Column((*c).to_string()))
                .find(|e| !records.is_empty() && records.iter().all(|r| e.key(r).is_some())),
            other => Some(other.clone()),
        }
    }

    /// `auto`, `date`, or the column's name.
    pub fn name(&self) -> &str {
        match self {
            Encounters::Auto => "auto",
            Encounters::Date => "date",
            Encounters::Column(c) => c,
        }
    }
}

impl std::str::FromStr for Encounters {
    type Err = OpensetError;

    /// `auto`, `date`, or a column name.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "" => Err(OpensetError::InvalidParam {
                name: "encounters",
                reason: "an empty column name".into(),
            }),
            "auto" => Ok(Encounters::Auto),
            "date" => Ok(Encounters::Date),
            c => Ok(Encounters::Column(c.to_string())),
        }
    }
}

impl std::fmt::Display for Encounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Settings of the episodes and of the thresholds tried on them; checked by
/// [`ParamGuard::check`] into [`ValidSelfCalibrationParams`].
///
/// ```
/// use reid_openset::{ParamGuard, SelfCalibrationParams};
/// let p = SelfCalibrationParams::default()
///     .new_fraction(0.3)
///     .query_fraction(0.3)
///     .episodes(20)
///     .seed(2025)
///     .grid_steps(-0.2..=1.0, 240)
///     .check()?;
/// assert_eq!(p.grid().len(), 241);
/// assert!(SelfCalibrationParams::default().new_fraction(1.0).check().is_err());
/// # Ok::<(), reid_openset::OpensetError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SelfCalibrationParams {
    new_fraction: f64,
    query_fraction: f64,
    episodes: usize,
    seed: u64,
    grid: Vec<f32>,
    adapt: Option<ValidAdaptParams>,
    encounters: Option<Encounters>,
    held_out: Option<HeldOut>,
}

/// Checked [`SelfCalibrationParams`] (grid sorted and deduplicated).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSelfCalibrationParams(SelfCalibrationParams);

impl Default for SelfCalibrationParams {
    /// `new_fraction` 0.3, `query_fraction` 0.5, 10 episodes, seed 0, grid
    /// -1.0 to 1.0 in steps of 0.01.
    fn default() -> Self {
        Self {
            new_fraction: 0.3,
            query_fraction: 0.5,
            episodes: 10,
            seed: 0,
            grid: linear_grid(-1.0..=1.0, 200),
            adapt: None,
            encounters: None,
            held_out: None,
        }
    }
}

impl Default for ValidSelfCalibrationParams {
    fn default() -> Self {
        let mut p = SelfCalibrationParams::default();
        p.grid.dedup();
        Self(p)
    }
}

/// `steps + 1` evenly spaced values from the start of `range` to its end,
/// inclusive (`steps` 0 counts as 1: both ends).
pub fn linear_grid(range: RangeInclusive<f32>, steps: usize) -> Vec<f32> {
    let (lo, hi) = (*range.start(), *range.end());
    let steps = steps.max(1);
    (0..=steps)
        .map(|i| lo + (hi - lo) * i as f32 / steps as f32)
        .collect()
}

impl SelfCalibrationParams {
    reid_core::setters! {
        /// Fraction of identities held out as pseudo-new, in `(0, 1)`.
        new_fraction: f64,

        /// Fraction of a known identity's images used as pseudo-queries, in
        /// `(0, 1)`.
        query_fraction: f64,

        /// Number of episodes (at least 1).
        episodes: usize,

        /// Seed of the episodes.
        seed: u64,

        /// The thresholds tried (finite, at least one; sorted and deduplicated
        /// by the check).
        grid: Vec<f32>,

        /// A projection of the embeddings refitted on every episode's
        /// pseudo-gallery (never on its pseudo-queries) before the episode
        /// is searched ([`episode_view`]); default none.
        adapt: Option<ValidAdaptParams>,

        /// Hold out whole encounters as known pseudo-queries (see the
        /// [module documentation](self)); default none: single photos.
        encounters: Option<Encounters>,

        /// The photos that whatever made the embeddings never saw (a
        /// network fine-tuned on the rest of the database): only they are
        /// pseudo-queries, so that episodes score features on photos they
        /// were not fitted on ([`HeldOut`]); default none: every photo.
        held_out: Option<HeldOut>,
    }
    /// The thresholds tried: `steps + 1` evenly spaced values over `range`.
    #[must_use]
    pub fn grid_steps(self, range: RangeInclusive<f32>, steps: usize) -> Self {
        self.grid(linear_grid(range, steps))
    }
}

impl ParamGuard for SelfCalibrationParams {
    type Checked = ValidSelfCalibrationParams;
    type Error = OpensetError;

    fn check_ref(&self) -> Result<()> {
        for (name, v) in [
            ("new_fraction", self.new_fraction),
            ("query_fraction", self.query_fraction),
        ] {
            if !(v > 0.0 && v < 1.0) {
                return Err(OpensetError::InvalidParam {
                    name,
                    reason: format!("must be in (0, 1), got {v}"),
                });
            }
        }
        if self.episodes == 0 {
            return Err(OpensetError::InvalidParam {
                name: "episodes",
                reason: "must be at least 1".into(),
            });
        }
        if self.grid.is_empty() {
            return Err(OpensetError::InvalidParam {
                name: "grid",
                reason: "needs at least one threshold".into(),
            });
        }
        if let Some(bad) = self.grid.iter().find(|v| !v.is_finite()) {
            return Err(OpensetError::InvalidParam {
                name: "grid",
                reason: format!("thresholds must be finite, got {bad}"),
            });
        }
        Ok(())
    }

    fn check(mut self) -> Result<ValidSelfCalibrationParams> {
        self.check_ref()?;
        self.grid.sort_by(f32::total_cmp);
        self.grid.dedup();
        Ok(ValidSelfCalibrationParams(self))
    }
}

impl ValidSelfCalibrationParams {
    reid_core::getters! {
        /// Fraction of identities held out as pseudo-new.
        new_fraction: f64,
        /// Fraction of a known identity's images used as pseudo-queries.
        query_fraction: f64,
        /// Number of episodes.
        episodes: usize,
        /// The seed.
        seed: u64,
    }
    /// The projection refitted in every episode, if any.
    pub fn adapt(&self) -> Option<&ValidAdaptParams> {
        self.0.adapt.as_ref()
    }
    /// What groups photos into encounters, if anything.
    pub fn encounters(&self) -> Option<&Encounters> {
        self.0.encounters.as_ref()
    }
    /// The photos the embeddings were not fitted on, if set.
    pub fn held_out(&self) -> Option<&HeldOut> {
        self.0.held_out.as_ref()
    }
    /// The thresholds tried, ascending.
    pub fn grid(&self) -> &[f32] {
        &self.0.grid
    }
    /// The same episodes with another grid (checked: finite, non-empty).
    pub fn with_grid(&self, grid: Vec<f32>) -> Result<Self> {
        self.0.clone().grid(grid).check()
    }
    /// Back to the builder, to change a setting.
    pub fn into_params(self) -> SelfCalibrationParams {
        self.0
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

impl Episode {
    /// An episode of these gallery rows and `(row, is_new)` queries, both
    /// in ascending row order.
    fn sorted(mut gallery: Vec<usize>, mut queries: Vec<(usize, bool)>) -> Self {
        gallery.sort_unstable();
        queries.sort_unstable();
        Episode {
            gallery,
            queries: queries.iter().map(|&(r, _)| r).collect(),
            is_new: queries.iter().map(|&(_, n)| n).collect(),
        }
    }
}

/// Episode `e`'s generator (ChaCha8 stream `e` of the seed) and its
/// shuffled order of `n` identities.
fn episode_order(
    params: &ValidSelfCalibrationParams,
    e: usize,
    n: usize,
) -> (ChaCha8Rng, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed());
    rng.set_stream(e as u64);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    (rng, order)
}

/// Draws the episodes of `params` over database rows labelled `labels`.
///
/// Errors when fewer than two identities exist or no identity has two
/// images (then no known query can be formed).
pub fn simulate_episodes<S: AsRef<str>>(
    labels: &[S],
    params: &ValidSelfCalibrationParams,
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
    // Each photo its own encounter: the shared draw takes whole photos.
    let units: Vec<Vec<Vec<usize>>> = ids
        .iter()
        .map(|rows| rows.iter().map(|&r| vec![r]).collect())
        .collect();
    Ok(draw_episodes(&units, params))
}

/// The episodes of `params` over identities made of encounters (`ids[i]`:
/// identity `i`'s encounters, each a list of rows; at least two identities,
/// one of them with two encounters): see the [module documentation](self).
/// With one photo per encounter this is the photo-level draw: shuffling
/// encounters draws the same permutation as shuffling photos, and taking
/// whole encounters up to `round(query_fraction * m)` photos, never the
/// last, takes that many photos clamped to `1..=m-1`.
fn draw_episodes(ids: &[Vec<Vec<usize>>], params: &ValidSelfCalibrationParams) -> Vec<Episode> {
    let n_ids = ids.len();
    let n_new = ((params.new_fraction() * n_ids as f64).round() as usize).clamp(1, n_ids - 1);
    let mut out = Vec::with_capacity(params.episodes());
    for e in 0..params.episodes() {
        let (mut rng, order) = episode_order(params, e, n_ids);
        // The first identity (in shuffled order) with two encounters stays
        // known.
        let reserved = order
            .iter()
            .copied()
            .find(|&i| ids.get(i).is_some_and(|g| g.len() >= 2));
        let new_ids: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| Some(i) != reserved)
            .take(n_new)
            .collect();
        let mut gallery = Vec::new();
        let mut queries: Vec<(usize, bool)> = Vec::new();
        for (i, groups) in ids.iter().enumerate() {
            if new_ids.contains(&i) {
                queries.extend(groups.iter().flatten().map(|&r| (r, true)));
            } else if groups.len() >= 2 {
                let m: usize = groups.iter().map(Vec::len).sum();
                let want = ((params.query_fraction() * m as f64).round() as usize).max(1);
                let mut shuffled: Vec<&Vec<usize>> = groups.iter().collect();
                shuffled.shuffle(&mut rng);
                let mut taken = 0;
                for (k, g) in shuffled.iter().enumerate() {
                    if taken < want && k + 1 < shuffled.len() {
                        queries.extend(g.iter().map(|&r| (r, false)));
                        taken += g.len();
                    } else {
                        gallery.extend_from_slice(g);
                    }
                }
            } else {
                gallery.extend(groups.iter().flatten());
            }
        }
        out.push(Episode::sorted(gallery, queries));
    }
    out
}

/// The episodes of `params` over the rows of `gallery` (labels `labels`,
/// one per row): by encounter when the params name one (each record's
/// key), else by photo; with [`SelfCalibrationParams::held_out`], only the
/// held-out photos are pseudo-queries ([`simulate_held_out_episodes`]).
pub(crate) fn gallery_episodes<S: AsRef<str>>(
    gallery: &Gallery,
    labels: &[S],
    params: &ValidSelfCalibrationParams,
) -> Result<Vec<Episode>> {
    let records = gallery.records();
    let keys: Option<Vec<Option<String>>> = params
        .encounters()
        .and_then(|e| e.resolve(records))
        .map(|e| records.iter().map(|r| e.key(r)).collect());
    match (params.held_out(), keys) {
        (None, None) => simulate_episodes(labels, params),
        (None, Some(keys)) => simulate_episodes_in_encounters(labels, &keys, params),
        (Some(held), keys) => {
            let unseen: Vec<bool> = records.iter().map(|r| held.contains(&r.image_id)).collect();
            let keys = keys.unwrap_or_else(|| vec![None; records.len()]);
            simulate_held_out_episodes(labels, &keys, &unseen, params)
        }
    }
}

/// Photos of a database that whatever made its embeddings never saw, by
/// `image_id`: a network fine-tuned on the other photos
/// ([`held_out_split`] draws them). Set on [`SelfCalibrationParams::held_out`],
/// episodes draw their pseudo-queries among them only.
#[derive(Clone, PartialEq, Eq)]
pub struct HeldOut(std::sync::Arc<std::collections::BTreeSet<String>>);

impl HeldOut {
    /// The photos with these `image_id`s.
    pub fn new<S: Into<String>>(image_ids: impl IntoIterator<Item = S>) -> Self {
        HeldOut(std::sync::Arc::new(
            image_ids.into_iter().map(Into::into).collect(),
        ))
    }
    /// Whether the photo `image_id` is held out.
    pub fn contains(&self, image_id: &str) -> bool {
        self.0.contains(image_id)
    }
    /// How many photos are held out.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for HeldOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeldOut({} photos)", self.0.len())
    }
}

/// Which database rows (labels `labels`, encounter keys `encounters` as in
/// [`simulate_episodes_in_encounters`]) to keep out of fitting, so that
/// [`simulate_held_out_episodes`] can score what was fitted on photos it
/// never saw: one episode of that draw (seed `seed`) with `new_fraction`
/// `identities` and `query_fraction` `photos`: that share of the
/// identities wholly (they stand for new individuals), and of every other
/// identity with two or more encounters, whole encounters until that share
/// of its photos is reached (at least one, never all). `true`: held out.
///
/// ```
/// use reid_openset::held_out_split;
/// let labels = ["a", "a", "a", "b", "b", "c", "c", "d"];
/// let video = ["1", "1", "2", "3", "4", "5", "6", "7"].map(|v| Some(v.to_string()));
/// let held = held_out_split(&labels, &video, 0.25, 0.3, 0)?;
/// // Whole videos: rows 0 and 1 go together.
/// assert_eq!(held[0], held[1]);
/// // Some held out, some kept for fitting.
/// assert!(held.iter().any(|&h| h) && held.iter().any(|&h| !h));
/// # Ok::<(), reid_openset::OpensetError>(())
/// ```
pub fn held_out_split<S: AsRef<str>, T: AsRef<str>>(
    labels: &[S],
    encounters: &[Option<T>],
    identities: f64,
    photos: f64,
    seed: u64,
) -> Result<Vec<bool>> {
    let p = SelfCalibrationParams::default()
        .new_fraction(identities)
        .query_fraction(photos)
        .episodes(1)
        .seed(seed)
        .check()?;
    let mut held = vec![false; labels.len()];
    for ep in simulate_episodes_in_encounters(labels, encounters, &p)? {
        for q in ep.queries {
            held[q] = true;
        }
    }
    Ok(held)
}

/// Episodes whose pseudo-queries are all `unseen` photos (`unseen[i]`: row
/// `i` was held out of whatever made the embeddings), so they score the
/// embeddings as real queries would meet them: a known query is a new
/// encounter of an individual the network learned, a new one an individual
/// it never saw. Rows group into encounters by `encounters` as in
/// [`simulate_episodes_in_encounters`]; an encounter is unseen when all its
/// photos are. Pseudo-new identities are drawn among the identities wholly
/// unseen (`round(new_fraction * n)` of those `n`, at least one): a network
/// trained on an identity would tell it apart better than a new one; the
/// wholly unseen ones not drawn stay whole in the gallery. Of every
/// identity the network learned from, unseen encounters in shuffled order
/// become known pseudo-queries until `round(query_fraction * m)` of its `m`
/// unseen photos are reached (at least one encounter, never all its
/// encounters). Errors when no identity is wholly unseen or no other
/// identity has an unseen encounter beside a seen one.
///
/// ```
/// use reid_openset::{ParamGuard, SelfCalibrationParams, simulate_held_out_episodes};
/// let labels = ["a", "a", "a", "b", "b", "c"];
/// let video = [None::<&str>; 6];
/// // a's row 2 and all of c are unseen.
/// let unseen = [false, false, true, false, false, true];
/// let p = SelfCalibrationParams::default().episodes(3).check()?;
/// for ep in simulate_held_out_episodes(&labels, &video, &unseen, &p)? {
///     assert_eq!(ep.queries, [2, 5]);
///     assert_eq!(ep.is_new, [false, true]);
/// }
/// # Ok::<(), reid_openset::OpensetError>(())
/// ```
pub fn simulate_held_out_episodes<S: AsRef<str>, T: AsRef<str>>(
    labels: &[S],
    encounters: &[Option<T>],
    unseen: &[bool],
    params: &ValidSelfCalibrationParams,
) -> Result<Vec<Episode>> {
    check::same_len("encounters", labels.len(), encounters.len())?;
    check::same_len("unseen", labels.len(), unseen.len())?;
    let ids = group_encounters(labels, encounters);
    let seen_none = |g: &Vec<usize>| g.iter().all(|&r| unseen[r]);
    let pool: Vec<usize> = (0..ids.len())
        .filter(|&i| ids[i].iter().all(seen_none))
        .collect();
    if pool.is_empty() {
        return Err(OpensetError::Episodes(
            "no identity is wholly held out, so no pseudo-new identity can be formed".into(),
        ));
    }
    let can_query = |i: usize| {
        ids[i].len() >= 2 && ids[i].iter().any(seen_none) && !ids[i].iter().all(seen_none)
    };
    if !(0..ids.len()).any(can_query) {
        return Err(OpensetError::Episodes(
            "no identity has a held-out encounter beside one fitted on, so no known \
             pseudo-query can be formed"
                .into(),
        ));
    }
    let n_new = ((params.new_fraction() * pool.len() as f64).round() as usize).clamp(1, pool.len());
    let mut out = Vec::with_capacity(params.episodes());
    for e in 0..params.episodes() {
        let (mut rng, order) = episode_order(params, e, ids.len());
        // The first identity (in shuffled order) that can give a known
        // pseudo-query stays known.
        let reserved = order.iter().copied().find(|&i| can_query(i));
        let new_ids: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| Some(i) != reserved && pool.contains(&i))
            .take(n_new)
            .collect();
        let mut gallery = Vec::new();
        let mut queries: Vec<(usize, bool)> = Vec::new();
        for (i, groups) in ids.iter().enumerate() {
            if new_ids.contains(&i) {
                queries.extend(groups.iter().flatten().map(|&r| (r, true)));
                continue;
            }
            if pool.contains(&i) {
                gallery.extend(groups.iter().flatten());
                continue;
            }
            let m: usize = groups.iter().filter(|g| seen_none(g)).map(Vec::len).sum();
            let want = ((params.query_fraction() * m as f64).round() as usize).max(1);
            let mut shuffled: Vec<&Vec<usize>> = groups.iter().collect();
            shuffled.shuffle(&mut rng);
            let (mut taken, mut taken_groups) = (0, 0);
            for g in shuffled {
                if m > 0 && taken < want && seen_none(g) && taken_groups + 1 < groups.len() {
                    queries.extend(g.iter().map(|&r| (r, false)));
                    taken += g.len();
                    taken_groups += 1;
                } else {
                    gallery.extend_from_slice(g);
                }
            }
        }
        out.push(Episode::sorted(gallery, queries));
    }
    Ok(out)
}

/// Each identity's rows (identities in label order), grouped by encounter
/// in order of first row; a row without a key is an encounter of its own.
fn group_encounters<S: AsRef<str>, T: AsRef<str>>(
    labels: &[S],
    encounters: &[Option<T>],
) -> Vec<Vec<Vec<usize>>> {
    let mut by_id: BTreeMap<&str, Vec<Vec<usize>>> = BTreeMap::new();
    let mut slot: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (i, (l, e)) in labels.iter().zip(encounters).enumerate() {
        let groups = by_id.entry(l.as_ref()).or_default();
        match e {
            Some(e) => {
                let k = *slot.entry((l.as_ref(), e.as_ref())).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[k].push(i);
            }
            None => groups.push(vec![i]),
        }
    }
    by_id.into_values().collect()
}

/// [`simulate_episodes`] holding out whole encounters: `encounters[i]` is
/// row `i`'s encounter (`None`: a photo on its own). Of each known
/// identity with two or more encounters, whole encounters in shuffled
/// order become pseudo-queries until `round(query_fraction * m)` of its `m`
/// photos are reached (at least one encounter, never all); an identity
/// with one encounter stays whole in the gallery. When no identity has two
/// encounters, the photo-level episodes of [`simulate_episodes`].
///
/// ```
/// use reid_openset::{ParamGuard, SelfCalibrationParams, simulate_episodes_in_encounters};
/// // a: two videos (v1: rows 0, 1; v2: row 2); b: one video; c: one photo.
/// let labels = ["a", "a", "a", "b", "b", "c"];
/// let video = ["v1", "v1", "v2", "v3", "v3", "v4"].map(|v| Some(v.to_string()));
/// let p = SelfCalibrationParams::default().new_fraction(0.3).episodes(4).check()?;
/// for ep in simulate_episodes_in_encounters(&labels, &video, &p)? {
///     // Known pseudo-queries are a's, never b's one video: v1 or v2 whole.
///     let known: Vec<usize> = ep.queries.iter().zip(&ep.is_new)
///         .filter(|(_, n)| !**n).map(|(q, _)| *q).collect();
///     assert!(known == [0, 1] || known == [2], "{known:?}");
/// }
/// # Ok::<(), reid_openset::OpensetError>(())
/// ```
pub fn simulate_episodes_in_encounters<S: AsRef<str>, T: AsRef<str>>(
    labels: &[S],
    encounters: &[Option<T>],
    params: &ValidSelfCalibrationParams,
) -> Result<Vec<Episode>> {
    check::same_len("encounters", labels.len(), encounters.len())?;
    let ids = group_encounters(labels, encounters);
    if ids.len() < 2 || !ids.iter().any(|g| g.len() >= 2) {
        return simulate_episodes(labels, params);
    }
    Ok(draw_episodes(&ids, params))
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

/// The gallery's identity labels, one per row; every record must have one.
pub(crate) fn labels(gallery: &Gallery) -> Result<Vec<&str>> {
    check::labels(gallery)
}

/// What `episode` of `gallery` (row labels `labels`) searches: its
/// pseudo-gallery and the embeddings of its pseudo-queries (in the order of
/// [`Episode::queries`]). With `adapt`, both are projected by a
/// [`crate::Projection`] (and the neighbourhood steps of [`crate::expand`])
/// fitted on the pseudo-gallery rows and their labels only:
/// the pseudo-queries never shape the projection they are scored through.
///
/// ```
/// use ndarray::array;
/// use reid_index::Gallery;
/// use reid_openset::{AdaptParams, Adaptation, Episode, ParamGuard, episodes::episode_view};
/// let x = array![[1.0f32, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.7, 0.7]];
/// let labels = ["a", "a", "b", "b", "c"];
/// let g = Gallery::from_labels(x.view(), &labels)?;
/// let ep = Episode { gallery: vec![0, 2, 3], queries: vec![1, 4], is_new: vec![false, true] };
/// let adapt = AdaptParams::new(Adaptation::Center).check()?;
/// let (pseudo, q) = episode_view(&g, &labels, &ep, Some(&adapt))?;
/// assert_eq!((pseudo.len(), q.nrows()), (3, 2));
/// # Ok::<(), reid_openset::OpensetError>(())
/// ```
pub fn episode_view<S: AsRef<str>>(
    gallery: &Gallery,
    labels: &[S],
    episode: &Episode,
    adapt: Option<&ValidAdaptParams>,
) -> Result<(Gallery, ndarray::Array2<f32>)> {
    check::same_len("labels", gallery.len(), labels.len())?;
    let sub = gallery.select_rows(&episode.gallery)?;
    if let Some(&bad) = episode.queries.iter().find(|&&r| r >= gallery.len()) {
        return Err(OpensetError::OutOfRange {
            what: "episode query",
            index: bad,
            len: gallery.len(),
        });
    }
    let q = gallery
        .embeddings()
        .select(ndarray::Axis(0), &episode.queries);
    let Some(adapt) = adapt else {
        return Ok((sub, q));
    };
    let g_labels: Vec<&str> = episode
        .gallery
        .iter()
        .map(|&r| labels[r].as_ref())
        .collect();
    let (g, q) = adapt_split(sub.embeddings(), &g_labels, q.view(), adapt)?;
    let g = Gallery::from_parts(sub.model_id().to_owned(), g.view(), sub.records().to_vec())?;
    Ok((g, q))
}

/// Runs `rule` on one episode of `gallery` (whose row labels are `labels`),
/// through the projection `adapt` refitted on the episode's pseudo-gallery.
pub(crate) fn run_episode(
    gallery: &Gallery,
    labels: &[&str],
    identity_of: &[usize],
    rule: &Rule,
    episode: &Episode,
    adapt: Option<&ValidAdaptParams>,
) -> Result<Vec<EpisodeQuery>> {
    let (sub, q_rows) = episode_view(gallery, labels, episode, adapt)?;
    let g_labels: Vec<&str> = episode
        .gallery
        .iter()
        .filter_map(|&r| labels.get(r).copied())
        .collect();
    let rerank = adapt.and_then(ValidAdaptParams::rerank);
    let topk = crate::rerank::search(&sub, q_rows.view(), rule.neighbours(), rerank.as_ref())?;
    let mut out = Vec::with_capacity(episode.queries.len());
    for (row, (idx, sc)) in topk
        .indices
        .outer_iter()
        .zip(topk.scores.outer_iter())
        .enumerate()
    {
        let q = episode.queries.get(row).copied().unwrap_or_default();
        let truth = labels.get(q).copied();
        let (correct, score) = match rule.candidate(&idx.to_vec(), &sc.to_vec(), &g_labels)? {
            Some((g, s)) => (g_labels.get(g).copied() == truth, s),
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
pub(crate) fn identity_numbers<S: AsRef<str>>(labels: &[S]) -> Vec<usize> {
    let mut map: BTreeMap<&str, usize> = BTreeMap::new();
    labels
        .iter()
        .map(|l| {
            let next = map.len();
            *map.entry(l.as_ref()).or_insert(next)
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
