//! Seeded database/query splits of a [`Dataset`]'s labelled records.
//!
//! Four kinds (see [`SplitKind`]):
//! - **closed-set**: every query identity also has images in the database;
//! - **open-set**: a fraction of identities appear only as queries (new
//!   individuals), plus a fraction of the images of the others;
//! - **disjoint-set**: identities are partitioned between database and query;
//! - **time-aware**: earlier dates go to the database, later ones to query.
//!
//! Parameters are validated once: build [`SplitParams`], call
//! [`SplitParams::check`] to get a [`CheckedSplit`], then
//! [`CheckedSplit::split`]. The result is a new [`Dataset`] (same root) with
//! the labelled records of the input, in input order, each carrying
//! `split = Database` or `Query` (or the roles set with
//! [`SplitParams::with_roles`], e.g. `train`/`valid`). Unlabelled records are
//! left out. The result can be saved with
//! [`crate::loaders::write_metadata_csv`].
//!
//! Determinism: given the same dataset (same identities and record order) and
//! the same seed, the split is the same; identities are visited in sorted
//! order and all random choices come from one `ChaCha8Rng` seeded with
//! `seed`.
//!
//! ```
//! use reid_data::{Dataset, Record, SplitRole};
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
//! let split = SplitParams::closed_set(0.25, 7).check()?.split(&ds)?;
//! assert_eq!(split.by_split(&SplitRole::Query).len(), 5);
//! # Ok::<(), reid_data::DataError>(())
//! ```

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::record::{Date, SplitRole};

/// The kind of split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitKind {
    /// Every query identity is in the database. For each identity a share of
    /// its images (see [`SplitParams::query_fraction`]) goes to query, but
    /// at least one image stays in the database; identities with a single
    /// image go to the database only.
    ClosedSet,
    /// `round(new_identity_fraction × identities)` identities, drawn at
    /// random, go entirely to query (new individuals); the rest are split as
    /// in [`SplitKind::ClosedSet`] with `query_fraction`.
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

/// Unchecked split parameters; see [`SplitParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct SplitParams {
    /// Which split.
    pub kind: SplitKind,
    /// Seed of the random choices.
    pub seed: u64,
    /// Share of images that go to query, in `[0, 1]`: per identity for
    /// closed-/open-set (the total over the split identities is
    /// `round(query_fraction × images)`, capped so that every identity keeps
    /// one database image; per identity it is within one image of
    /// `query_fraction × images`), or of dated records for a time-aware split
    /// without a cutoff.
    pub query_fraction: f64,
    /// Share of identities that are query-only, in `[0, 1]` (open-set and
    /// disjoint-set).
    pub new_identity_fraction: f64,
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
    fn base(kind: SplitKind, seed: u64) -> Self {
        SplitParams {
            kind,
            seed,
            query_fraction: 0.0,
            new_identity_fraction: 0.0,
            cutoff: None,
            undated: Undated::Error,
            database_role: SplitRole::Database,
            query_role: SplitRole::Query,
        }
    }

    /// Closed-set split with `query_fraction` of the images as queries.
    pub fn closed_set(query_fraction: f64, seed: u64) -> Self {
        SplitParams {
            query_fraction,
            ..Self::base(SplitKind::ClosedSet, seed)
        }
    }

    /// Open-set split: `new_identity_fraction` of the identities are
    /// query-only, and `query_fraction` of the other identities' images are
    /// queries.
    pub fn open_set(new_identity_fraction: f64, query_fraction: f64, seed: u64) -> Self {
        SplitParams {
            query_fraction,
            new_identity_fraction,
            ..Self::base(SplitKind::OpenSet, seed)
        }
    }

    /// Disjoint-set split: `query_identity_fraction` of the identities go to
    /// query, the rest to the database.
    pub fn disjoint_set(query_identity_fraction: f64, seed: u64) -> Self {
        SplitParams {
            new_identity_fraction: query_identity_fraction,
            ..Self::base(SplitKind::DisjointSet, seed)
        }
    }

    /// Time-aware split with about `query_fraction` of the dated records
    /// (the latest ones) as queries.
    pub fn time_aware(query_fraction: f64) -> Self {
        SplitParams {
            query_fraction,
            ..Self::base(SplitKind::TimeAware, 0)
        }
    }

    /// Time-aware split at a fixed cutoff date.
    pub fn time_cutoff(cutoff: Date) -> Self {
        SplitParams {
            cutoff: Some(cutoff),
            ..Self::base(SplitKind::TimeAware, 0)
        }
    }

    /// Sets the rule for undated records (time-aware splits).
    pub fn with_undated(mut self, undated: Undated) -> Self {
        self.undated = undated;
        self
    }

    /// Sets the roles written to the records, e.g.
    /// `SplitRole::parse("train")`, `SplitRole::parse("valid")`.
    pub fn with_roles(mut self, database: SplitRole, query: SplitRole) -> Self {
        self.database_role = database;
        self.query_role = query;
        self
    }

    /// Validates the parameters: fractions finite and in `[0, 1]`, a valid
    /// cutoff date, distinct roles.
    pub fn check(&self) -> Result<CheckedSplit> {
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
        Ok(CheckedSplit {
            params: self.clone(),
        })
    }

    /// Checks the parameters and splits `ds` (shorthand for
    /// `self.check()?.split(ds)`).
    pub fn split(&self, ds: &Dataset) -> Result<Dataset> {
        self.check()?.split(ds)
    }
}

/// Validated split parameters; built by [`SplitParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedSplit {
    params: SplitParams,
}

impl CheckedSplit {
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
            SplitKind::ClosedSet => allocate(&all, p.query_fraction, &mut rng, &mut is_query),
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
                let qf = match p.kind {
                    SplitKind::OpenSet => p.query_fraction,
                    _ => 0.0,
                };
                allocate(&known, qf, &mut rng, &mut is_query);
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

/// Closed-set allocation over `groups`: each group keeps at least one
/// database image; the total number of queries is `round(qf × images)`
/// (capped by the room left), distributed by largest remainder of
/// `qf × n_i` with random tie-breaking; the query images of each group are a
/// random subset.
fn allocate(groups: &[&Vec<usize>], qf: f64, rng: &mut ChaCha8Rng, is_query: &mut [Option<bool>]) {
    let total: usize = groups.iter().map(|g| g.len()).sum();
    let cap: Vec<usize> = groups.iter().map(|g| g.len().saturating_sub(1)).collect();
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
    for (g, idx) in groups.iter().enumerate() {
        let mut shuffled: Vec<usize> = idx.to_vec();
        shuffled.shuffle(rng);
        for (k, &i) in shuffled.iter().enumerate() {
            is_query[i] = Some(k < quota[g]);
        }
    }
}
