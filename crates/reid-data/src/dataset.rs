//! A collection of [`Record`]s with the queries a re-identification pipeline
//! needs: identities and their image counts, records by split, counts per
//! `(dataset, split)` and summary statistics.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::record::{Record, SplitRole};

/// A set of records and the folder their relative paths were resolved against.
///
/// Record order is meaningful (loaders keep file order, splits keep input
/// order), so indices into [`Dataset::records`] are stable handles, e.g. for
/// the [`crate::sampler::PkSampler`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    /// The folder the dataset lives in (the CSV's folder, or the image tree root).
    pub root: PathBuf,
    /// The records, in load order.
    pub records: Vec<Record>,
}

/// An individual within its source dataset: identity names are only unique
/// within a dataset (AnimalCLEF's sea turtles and lynxes both have numbered
/// individuals), so grouping by name alone would merge animals of different
/// datasets. Records without a dataset have `dataset: None`. Ordered by
/// dataset (`None` first), then identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdentityKey {
    /// The record's dataset, if it has one.
    pub dataset: Option<String>,
    /// The identity name.
    pub identity: String,
}

impl fmt::Display for IdentityKey {
    /// `dataset/identity`, or `identity` without a dataset.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.dataset {
            Some(d) => write!(f, "{d}/{}", self.identity),
            None => f.write_str(&self.identity),
        }
    }
}

/// Images-per-identity figures of a [`DatasetStats`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerIdentity {
    /// Fewest images of any identity.
    pub min: usize,
    /// Median number of images per identity (mean of the two middle values
    /// when the number of identities is even).
    pub median: f64,
    /// Most images of any identity.
    pub max: usize,
}

/// Summary statistics of a [`Dataset`]; see [`Dataset::stats`].
///
/// Records lacking a species, dataset or split are counted under the key
/// `"(none)"` in the respective map.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetStats {
    /// Number of records.
    pub images: usize,
    /// Records with a known identity.
    pub labelled_images: usize,
    /// Number of distinct identities.
    pub identities: usize,
    /// Identities with exactly one image.
    pub singletons: usize,
    /// Images per identity; `None` when no record is labelled.
    pub per_identity: Option<PerIdentity>,
    /// Images per species.
    pub per_species: BTreeMap<String, usize>,
    /// Images per source dataset.
    pub per_dataset: BTreeMap<String, usize>,
    /// Images per split name.
    pub per_split: BTreeMap<String, usize>,
}

const NONE_KEY: &str = "(none)";

impl fmt::Display for DatasetStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "images: {} ({} labelled)",
            self.images, self.labelled_images
        )?;
        writeln!(
            f,
            "identities: {} ({} singletons)",
            self.identities, self.singletons
        )?;
        match &self.per_identity {
            Some(p) => writeln!(
                f,
                "images per identity: min {}, median {}, max {}",
                p.min, p.median, p.max
            )?,
            None => writeln!(f, "images per identity: n/a")?,
        }
        for (title, map) in [
            ("species", &self.per_species),
            ("dataset", &self.per_dataset),
            ("split", &self.per_split),
        ] {
            let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            writeln!(f, "per {title}: {}", parts.join(", "))?;
        }
        Ok(())
    }
}

impl Dataset {
    /// A dataset from its root folder and records.
    pub fn new(root: impl Into<PathBuf>, records: Vec<Record>) -> Self {
        Dataset {
            root: root.into(),
            records,
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there are no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The distinct identity names, sorted, with their image counts.
    /// Unlabelled records are not counted. Names are counted across
    /// datasets; [`Dataset::identity_indices`] keeps datasets apart.
    pub fn identities(&self) -> Vec<(String, usize)> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for id in self.records.iter().filter_map(|r| r.identity.as_deref()) {
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// Record indices grouped by identity, keyed by [`IdentityKey`]
    /// `(dataset, identity)` so that two datasets' identities of the same
    /// name stay apart (sorted by key; indices in record order). Unlabelled
    /// records are left out. Splits and the P×K sampler group by this.
    pub fn identity_indices(&self) -> BTreeMap<IdentityKey, Vec<usize>> {
        let mut groups: BTreeMap<IdentityKey, Vec<usize>> = BTreeMap::new();
        for (i, r) in self.records.iter().enumerate() {
            if let Some(id) = &r.identity {
                let key = IdentityKey {
                    dataset: r.dataset.clone(),
                    identity: id.clone(),
                };
                groups.entry(key).or_default().push(i);
            }
        }
        groups
    }

    /// Number of distinct individuals (identities) among labelled records.
    pub fn num_individuals(&self) -> usize {
        self.identities().len()
    }

    /// Number of labelled records.
    pub fn num_labelled(&self) -> usize {
        self.records.iter().filter(|r| r.identity.is_some()).count()
    }

    /// The records whose split is `role`, as a new dataset with the same root.
    pub fn by_split(&self, role: &SplitRole) -> Dataset {
        self.filter(|r| r.split.as_ref() == Some(role))
    }

    /// The records for which `keep` returns true, as a new dataset with the
    /// same root (order preserved).
    pub fn filter<F>(&self, mut keep: F) -> Dataset
    where
        F: FnMut(&Record) -> bool,
    {
        Dataset {
            root: self.root.clone(),
            records: self.records.iter().filter(|r| keep(r)).cloned().collect(),
        }
    }

    /// Number of records per `(dataset, split)` pair. A missing dataset or
    /// split is keyed by the empty string.
    pub fn split_counts(&self) -> BTreeMap<(String, String), usize> {
        let mut out = BTreeMap::new();
        for r in &self.records {
            let key = (
                r.dataset.clone().unwrap_or_default(),
                r.split
                    .as_ref()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            );
            *out.entry(key).or_insert(0) += 1;
        }
        out
    }

    /// Summary statistics (see [`DatasetStats`], which implements `Display`).
    pub fn stats(&self) -> DatasetStats {
        let ids = self.identities();
        let mut counts: Vec<usize> = ids.iter().map(|(_, n)| *n).collect();
        counts.sort_unstable();
        let per_identity = match (counts.first(), counts.last()) {
            (Some(&min), Some(&max)) => {
                let n = counts.len();
                let median = if n % 2 == 1 {
                    counts[n / 2] as f64
                } else {
                    (counts[n / 2 - 1] + counts[n / 2]) as f64 / 2.0
                };
                Some(PerIdentity { min, median, max })
            }
            _ => None,
        };
        let mut per_species = BTreeMap::new();
        let mut per_dataset = BTreeMap::new();
        let mut per_split = BTreeMap::new();
        for r in &self.records {
            let key = |o: Option<&str>| o.unwrap_or(NONE_KEY).to_string();
            *per_species.entry(key(r.species.as_deref())).or_insert(0) += 1;
            *per_dataset.entry(key(r.dataset.as_deref())).or_insert(0) += 1;
            *per_split
                .entry(key(r.split.as_ref().map(|s| s.as_str())))
                .or_insert(0) += 1;
        }
        DatasetStats {
            images: self.records.len(),
            labelled_images: counts.iter().sum(),
            identities: ids.len(),
            singletons: counts.iter().filter(|&&n| n == 1).count(),
            per_identity,
            per_species,
            per_dataset,
            per_split,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, identity: Option<&str>, split: &str) -> Record {
        let mut r = Record::new(id, format!("{id}.jpg"));
        r.identity = identity.map(String::from);
        r.split = Some(SplitRole::parse(split));
        r.dataset = Some("d".into());
        r
    }

    #[test]
    fn queries_and_stats() {
        let ds = Dataset::new(
            "/x",
            vec![
                rec("0", Some("b"), "database"),
                rec("1", Some("a"), "database"),
                rec("2", Some("b"), "query"),
                rec("3", None, "query"),
                rec("4", Some("b"), "database"),
                rec("5", Some("c"), "database"),
            ],
        );
        assert_eq!(
            ds.identities(),
            vec![("a".into(), 1), ("b".into(), 3), ("c".into(), 1)]
        );
        assert_eq!(ds.num_individuals(), 3);
        assert_eq!(ds.by_split(&SplitRole::Query).len(), 2);
        let counts = ds.split_counts();
        assert_eq!(counts[&("d".to_string(), "database".to_string())], 4);
        assert_eq!(counts[&("d".to_string(), "query".to_string())], 2);
        let s = ds.stats();
        assert_eq!(s.images, 6);
        assert_eq!(s.labelled_images, 5);
        assert_eq!(s.singletons, 2);
        assert_eq!(
            s.per_identity,
            Some(PerIdentity {
                min: 1,
                median: 1.0,
                max: 3
            })
        );
        assert_eq!(s.per_species["(none)"], 6);
        let text = s.to_string();
        assert!(text.contains("identities: 3 (2 singletons)"), "{text}");
        assert!(text.contains("per split: database: 4, query: 2"), "{text}");
    }

    #[test]
    fn identity_indices_keep_datasets_apart() {
        let mut a = rec("0", Some("7"), "database");
        a.dataset = Some("turtles".into());
        let mut b = rec("1", Some("7"), "database");
        b.dataset = Some("lynx".into());
        let mut c = rec("2", Some("7"), "database");
        c.dataset = None;
        let mut d = rec("3", Some("7"), "query");
        d.dataset = Some("lynx".into());
        let ds = Dataset::new("", vec![a, b, c, d]);
        let key = |d: Option<&str>| IdentityKey {
            dataset: d.map(String::from),
            identity: "7".into(),
        };
        let groups: Vec<(IdentityKey, Vec<usize>)> = ds.identity_indices().into_iter().collect();
        assert_eq!(
            groups,
            vec![
                (key(None), vec![2]),
                (key(Some("lynx")), vec![1, 3]),
                (key(Some("turtles")), vec![0]),
            ]
        );
        assert_eq!(key(Some("lynx")).to_string(), "lynx/7");
        assert_eq!(key(None).to_string(), "7");
        // Names alone are counted across datasets.
        assert_eq!(ds.identities(), vec![("7".into(), 4)]);
    }
}
