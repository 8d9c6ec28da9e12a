//! Seeded database/query splits of a [`Dataset`]'s labelled records.
//!
//! Four kinds (see [`SplitKind`]):
//! - **closed-set**: every query identity also has images in the database;
//! - **open-set**: a fraction of identities appear only as queries (new
//!   individuals), plus some images of each of the others;
//! - **disjoint-set**: identities are partitioned between database and query;
//! - **time-aware**: earlier dates go to the database, later ones to query.
//!
//! Parameters are validated once: build [`SplitParams`] (one setter per
//! setting), call [`ParamGuard::check`] to get a [`ValidSplitParams`], then
//! [`ValidSplitParams::split`]. The result is a new [`Dataset`] (same root)
//! with the labelled records of the input, in input order, each carrying
//! `split = Database` or `Query` (or the roles set with
//! [`SplitParams::database_role`] and [`SplitParams::query_role`], e.g.
//! `train`/`valid`). Unlabelled records are left out. The result can be
//! saved with [`crate::loaders::write_metadata_csv`].
//!
//! How many images of an identity that stays in the database become queries
//! (closed- and open-set) is either a share of its images
//! ([`SplitParams::query_fraction`]) or a fixed count
//! ([`SplitParams::query_per_identity`]); in both cases each such identity
//! keeps at least [`SplitParams::min_database_per_identity`] images in the
//! database, and an identity with no more images than that stays whole in
//! the database.
//!
//! **Identities are keyed by `(dataset, identity)`** (see
//! [`Dataset::identity_indices`]): records from two datasets that happen to
//! use the same identity name (AnimalCLEF's turtles and lynxes both number
//! their individuals) are two identities, split independently.
//!
//! Determinism: given the same dataset (same identities and record order) and
//! the same seed, the split is the same; identities are visited in sorted
//! `(dataset, identity)` order and all random choices come from one
//! `ChaCha8Rng` seeded with `seed`.
//!
//! ```
//! use reid_data::{Dataset, ParamGuard, Record, SplitRole};
//! use reid_data::split::SplitParams;
//!
//! let records = (0..20)
//!     .map(|i| {
//!         let mut r = Record::new(i.to_string(), format!("{i}.jpg"));
//!         r.identity = Some(format!("id{}", i % 5));
//!         r
//!     })
//!     .collect();
//! let ds = Dataset::new("", records);
//! let split = SplitParams::closed_set()
//!     .query_fraction(0.25)
//!     .seed(7)
//!     .check()?
//!     .split(&ds)?;
//! assert_eq!(split.by_split(&SplitRole::Query).len(), 5);
//! // One query image per identity, whatever its size:
//! let split = SplitParams::closed_set().query_per_identity(1).check()?.split(&ds)?;
//! assert_eq!(split.by_split(&SplitRole::Query).len(), 5);
//! # Ok::<(), reid_data::DataError>(())
//! ```

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use reid_core::ParamGuard;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::record::{Date, SplitRole};

/// The kind of split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitKind {
    /// Every query identity is in the database. Each identity gives some of
    /// its images to query ([`SplitParams::query_fraction`] or
    /// [`SplitParams::query_per_identity`]) but keeps at least
    /// [`SplitParams::min_database_per_identity`] (default 1) in the
    /// database; identities with no more images than that go to the
    /// database only.
    ClosedSet,
    /// `round(new_identity_fraction × identities)` identities, drawn at
    /// random, go entirely to query (new individuals), whatever their size;
    /// the rest are split as in [`SplitKind::ClosedSet`].
    OpenSet,
    /// `round(new_identity_fraction × identities)` identities, drawn at
    /// random, go to query, all others to the database: no identity is in
    /// both.
    DisjointSet,
    /// Records dated before a cutoff go to the database, the others (date ≥
    /// cutoff) to query. The cutoff is [`SplitParams::cutoff`] or, if unset,
    /// the date that puts about `query_fraction` of the dated records in
    /// query (records sharing the cutoff date all go to query, so the
    /// fraction is approximate when dates repeat). The seed is not used.
    /// Records without a date follow [`SplitParams::undated`].
    TimeAware,
}

/// What a time-aware split does with labelled records that have no date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Undated {
    /// Fail with [`DataError::InvalidParam`] naming the first undated record.
    #[default]
    Error,
    /// Put them in the database.
    Database,
    /// Leave them out of the result.
    Drop,
}

/// Split parameters, unchecked: a builder (a constructor per kind, one
/// setter per setting); [`ParamGuard::check`] gives the
/// [`ValidSplitParams`] that splits.
///
/// ```
/// use reid_data::ParamGuard;
/// use reid_data::split::SplitParams;
///
/// // Some identities held out entirely, one image of each other identity
/// // with at least 3 images as query, as roles `train` / `valid`:
/// let p = SplitParams::open_set()
///     .new_identity_fraction(0.1)
///     .query_per_identity(1)
///     .min_database_per_identity(2)
///     .database_role(reid_data::SplitRole::parse("train"))
///     .query_role(reid_data::SplitRole::parse("valid"))
///     .seed(3)
///     .check()?;
/// assert_eq!(p.params().query_per_identity, Some(1));
/// assert!(SplitParams::closed_set().query_fraction(1.5).check().is_err());
/// # Ok::<(), reid_data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SplitParams {
    /// Which split.
    pub kind: SplitKind,
    /// Seed of the random choices (default 0).
    pub seed: u64,
    /// Share of images that go to query, in `[0, 1]` (default 0.2): per
    /// identity for closed-/open-set (the total over the split identities is
    /// `round(query_fraction × images)`, capped so that every identity keeps
    /// [`SplitParams::min_database_per_identity`] database images; per
    /// identity it is within one image of `query_fraction × images`), or of
    /// dated records for a time-aware split without a cutoff. Not used when
    /// [`SplitParams::query_per_identity`] is set.
    pub query_fraction: f64,
    /// Share of identities that are query-only, in `[0, 1]` (open-set and
    /// disjoint-set; default 0.2).
    pub new_identity_fraction: f64,
    /// Closed-/open-set: exactly this many query images of each identity
    /// that stays in the database, at most all but
    /// [`SplitParams::min_database_per_identity`] (default `None`: use
    /// [`SplitParams::query_fraction`]). Any count is valid, 0 included.
    pub query_per_identity: Option<usize>,
    /// Closed-/open-set: images of each identity that stays in the database
    /// kept in the database, at least 1 (default 1). An identity with this
    /// many images or fewer gives no query.
    pub min_database_per_identity: usize,
    /// Time-aware: explicit cutoff date (database < cutoff ≤ query).
    pub cutoff: Option<Date>,
    /// Time-aware: rule for records without a date.
    pub undated: Undated,
    /// Role given to database records (default [`SplitRole::Database`]).
    pub database_role: SplitRole,
    /// Role given to query records (default [`SplitRole::Query`]).
    pub query_role: SplitRole,
}

impl SplitParams {
    /// A split of `kind` with the defaults: seed 0, `query_fraction` 0.2,
    /// `new_identity_fraction` 0.2, one database image kept per identity,
    /// roles `database` / `query`.
    pub fn new(kind: SplitKind) -> Self {
        SplitParams {
            kind,
            seed: 0,
            query_fraction: 0.2,
            new_identity_fraction: 0.2,
            query_per_identity: None,
            min_database_per_identity: 1,
            cutoff: None,
            undated: Undated::Error,
            database_role: SplitRole::Database,
            query_role: SplitRole::Query,
        }
    }

    /// A closed-set split (see [`SplitKind::ClosedSet`]).
    pub fn closed_set() -> Self {
        Self::new(SplitKind::ClosedSet)
    }

    /// An open-set split (see [`SplitKind::OpenSet`]).
    pub fn open_set() -> Self {
        Self::new(SplitKind::OpenSet)
    }

    /// A disjoint-set split (see [`SplitKind::DisjointSet`]);
    /// [`SplitParams::new_identity_fraction`] is the share of identities
    /// that go to query.
    pub fn disjoint_set() -> Self {
        Self::new(SplitKind::DisjointSet)
    }

    /// A time-aware split (see [`SplitKind::TimeAware`]): about
    /// [`SplitParams::query_fraction`] of the dated records (the latest
    /// ones) are queries, unless a [`SplitParams::cutoff`] is set.
    pub fn time_aware() -> Self {
        Self::new(SplitKind::TimeAware)
    }

    reid_core::setters! {
        /// Sets [`SplitParams::seed`].
        seed: u64,

        /// Sets [`SplitParams::query_fraction`].
        query_fraction: f64,

        /// Sets [`SplitParams::new_identity_fraction`].
        new_identity_fraction: f64,

        /// Sets [`SplitParams::min_database_per_identity`].
        min_database_per_identity: usize,

        /// Sets the rule for undated records (time-aware splits).
        undated: Undated,

        /// Sets the role written to database records, e.g.
        /// `SplitRole::parse("train")`.
        database_role: SplitRole,

        /// Sets the role written to query records, e.g.
        /// `SplitRole::parse("valid")`.
        query_role: SplitRole,
    }

    /// Sets [`SplitParams::query_per_identity`] (`None`: by fraction).
    #[must_use]
    pub fn query_per_identity(mut self, n: impl Into<Option<usize>>) -> Self {
        self.query_per_identity = n.into();
        self
    }

    /// Sets [`SplitParams::cutoff`] (time-aware splits).
    #[must_use]
    pub fn cutoff(mut self, cutoff: impl Into<Option<Date>>) -> Self {
        self.cutoff = cutoff.into();
        self
    }

    /// Checks the parameters and splits `ds` (shorthand for
    /// `self.clone().check()?.split(ds)`).
    pub fn split(&self, ds: &Dataset) -> Result<Dataset> {
        self.clone().check()?.split(ds)
    }
}

impl ParamGuard for SplitParams {
    type Checked = ValidSplitParams;
    type Error = DataError;

    /// Fractions finite and in `[0, 1]`, `min_database_per_identity ≥ 1`,
    /// the per-identity settings only on closed-/open-set splits, a valid
    /// cutoff date, distinct roles.
    fn check_ref(&self) -> Result<()> {
        let frac = |name: &'static str, v: f64| {
            if v.is_finite() && (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(DataError::param(
                    name,
                    format!("{v} is not a fraction in [0, 1]"),
                ))
            }
        };
        frac("query_fraction", self.query_fraction)?;
        frac("new_identity_fraction", self.new_identity_fraction)?;
        if self.min_database_per_identity == 0 {
            return Err(DataError::param(
                "min_database_per_identity",
                "0; an identity that stays in the database keeps at least 1 image there",
            ));
        }
        let per_identity = matches!(self.kind, SplitKind::ClosedSet | SplitKind::OpenSet);
        if !per_identity {
            if let Some(n) = self.query_per_identity {
                return Err(DataError::param(
                    "query_per_identity",
                    format!(
                        "{n}; applies to closed-set and open-set splits only, not {:?}",
                        self.kind
                    ),
                ));
            }
            if self.min_database_per_identity != 1 {
                return Err(DataError::param(
                    "min_database_per_identity",
                    format!(
                        "{}; applies to closed-set and open-set splits only, not {:?}",
                        self.min_database_per_identity, self.kind
                    ),
                ));
            }
        }
        if let Some(d) = self.cutoff {
            crate::loaders::parse_date(&d.to_string())
                .map_err(|e| DataError::param("cutoff", e))?;
        }
        if self.database_role == self.query_role {
            return Err(DataError::param(
                "query_role",
                format!("database and query roles are both `{}`", self.query_role),
            ));
        }
        Ok(())
    }

    fn check(self) -> Result<ValidSplitParams> {
        self.check_ref()?;
        Ok(ValidSplitParams { params: self })
    }
}

/// Validated split parameters; made by [`ParamGuard::check`] on
/// [`SplitParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSplitParams {
    params: SplitParams,
}

impl ValidSplitParams {
    /// The parameters.
    pub fn params(&self) -> &SplitParams {
        &self.params
    }

    /// Splits the labelled records of `ds`. Fails with [`DataError::Empty`]
    /// when no record has an identity (or, time-aware, none is usable).
    pub fn split(&self, ds: &Dataset) -> Result<Dataset> {
        let p = &self.params;
        let groups = ds.identity_indices();
        if groups.is_empty() {
            return Err(DataError::Empty {
                what: format!(
                    "set of labelled records of the dataset at `{}` (splits need identities)",
                    ds.root.display()
                ),
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        // None: left out; Some(true): query; Some(false): database.
        let mut is_query: Vec<Option<bool>> = vec![None; ds.records.len()];
        let all: Vec<&Vec<usize>> = groups.values().collect();
        match p.kind {
            SplitKind::ClosedSet => self.allocate(&all, &mut rng, &mut is_query),
            SplitKind::OpenSet | SplitKind::DisjointSet => {
                let mut order: Vec<usize> = (0..all.len()).collect();
                order.shuffle(&mut rng);
                let n_new = round_count(p.new_identity_fraction, all.len());
                let mut known: Vec<&Vec<usize>> = Vec::new();
                let mut new = vec![false; all.len()];
                for &g in &order[..n_new] {
                    new[g] = true;
                }
                for (g, idx) in all.iter().enumerate() {
                    if new[g] {
                        idx.iter().for_each(|&i| is_query[i] = Some(true));
                    } else {
                        known.push(idx);
                    }
                }
                match p.kind {
                    SplitKind::OpenSet => self.allocate(&known, &mut rng, &mut is_query),
                    _ => known
                        .iter()
                        .flat_map(|g| g.iter())
                        .for_each(|&i| is_query[i] = Some(false)),
                }
            }
            SplitKind::TimeAware => self.time_aware(ds, &mut is_query)?,
        }
        let records = ds
            .records
            .iter()
            .zip(&is_query)
            .filter_map(|(r, q)| {
                q.map(|q| {
                    let mut r = r.clone();
                    r.split = Some(if q {
                        p.query_role.clone()
                    } else {
                        p.database_role.clone()
                    });
                    r
                })
            })
            .collect::<Vec<_>>();
        if records.is_empty() {
            return Err(DataError::Empty {
                what: "time-aware split (no dated labelled records)".into(),
            });
        }
        Ok(Dataset::new(ds.root.clone(), records))
    }

    /// Closed-set allocation over `groups` (known identities): a fixed
    /// count per identity or a share of the images.
    fn allocate(
        &self,
        groups: &[&Vec<usize>],
        rng: &mut ChaCha8Rng,
        is_query: &mut [Option<bool>],
    ) {
        let p = &self.params;
        let keep = p.min_database_per_identity;
        let quota: Vec<usize> = match p.query_per_identity {
            Some(n) => groups
                .iter()
                .map(|g| n.min(g.len().saturating_sub(keep)))
                .collect(),
            None => fraction_quota(groups, p.query_fraction, keep, rng),
        };
        for (g, idx) in groups.iter().enumerate() {
            let mut shuffled: Vec<usize> = idx.to_vec();
            shuffled.shuffle(rng);
            for (k, &i) in shuffled.iter().enumerate() {
                is_query[i] = Some(k < quota[g]);
            }
        }
    }

    fn time_aware(&self, ds: &Dataset, is_query: &mut [Option<bool>]) -> Result<()> {
        let p = &self.params;
        let mut dated: Vec<(Date, usize)> = Vec::new();
        for (i, r) in ds.records.iter().enumerate() {
            if r.identity.is_none() {
                continue;
            }
            match (r.date, p.undated) {
                (Some(d), _) => dated.push((d, i)),
                (None, Undated::Error) => {
                    return Err(DataError::param(
                        "undated",
                        format!(
                            "record `{}` has no date; a time-aware split needs a date on every \
                             labelled record (or set `undated` to Database or Drop)",
                            r.image_id
                        ),
                    ));
                }
                (None, Undated::Database) => is_query[i] = Some(false),
                (None, Undated::Drop) => {}
            }
        }
        dated.sort();
        let cutoff = match p.cutoff {
            Some(c) => Some(c),
            None => {
                let n_db = round_count(1.0 - p.query_fraction, dated.len());
                dated.get(n_db).map(|(d, _)| *d)
            }
        };
        for (d, i) in dated {
            is_query[i] = Some(cutoff.is_some_and(|c| d >= c));
        }
        Ok(())
    }
}

/// `round(f × n)` clamped to `0..=n`.
fn round_count(f: f64, n: usize) -> usize {
    ((f * n as f64).round().max(0.0) as usize).min(n)
}

/// Query counts per group for a share `qf` of the images: each group keeps
/// at least `keep` database images; the total number of queries is
/// `round(qf × images)` (capped by the room left), distributed by largest
/// remainder of `qf × n_i` with random tie-breaking.
fn fraction_quota(
    groups: &[&Vec<usize>],
    qf: f64,
    keep: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    let total: usize = groups.iter().map(|g| g.len()).sum();
    let cap: Vec<usize> = groups
        .iter()
        .map(|g| g.len().saturating_sub(keep))
        .collect();
    let ideal: Vec<f64> = groups.iter().map(|g| qf * g.len() as f64).collect();
    let mut quota: Vec<usize> = ideal
        .iter()
        .zip(&cap)
        .map(|(&x, &c)| (x.floor() as usize).min(c))
        .collect();
    let target = round_count(qf, total).min(cap.iter().sum());
    let mut remaining = target.saturating_sub(quota.iter().sum());
    // Random order first, then a stable sort by remainder: ties stay random.
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.shuffle(rng);
    order.sort_by(|&a, &b| {
        let ra = ideal[a] - ideal[a].floor();
        let rb = ideal[b] - ideal[b].floor();
        rb.total_cmp(&ra)
    });
    while remaining > 0 {
        let mut gave = false;
        for &g in &order {
            if remaining == 0 {
                break;
            }
            if quota[g] < cap[g] {
                quota[g] += 1;
                remaining -= 1;
                gave = true;
            }
        }
        if !gave {
            break;
        }
    }
    quota
}
