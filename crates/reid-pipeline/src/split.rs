//! The database / query split of a set of records, and each query's scope.

use std::collections::BTreeMap;

use ndarray::{ArrayView2, Axis};
use reid_core::{Record, Scope, SplitRole};
use reid_index::Gallery;

use crate::{PipelineError, Result};

/// Which records are the database and which the queries, and the scope
/// (dataset, else species, else all) of each query.
#[derive(Debug, Clone)]
pub struct OpenSetSplit {
    /// Record indices with split `database`, in record order.
    pub database: Vec<usize>,
    /// Record indices with split `query`, in record order.
    pub queries: Vec<usize>,
    /// Identity of each database record.
    pub database_labels: Vec<String>,
    /// Scope of each query ([`Record::scope`]).
    pub scopes: Vec<Scope>,
}

impl OpenSetSplit {
    /// Splits `records` by their `split` role (`database` / `query`; other
    /// roles are left out). Errors when either side is empty or a database
    /// record has no identity (naming it).
    pub fn new(records: &[Record]) -> Result<Self> {
        let rows = |role: SplitRole| -> Vec<usize> {
            (0..records.len())
                .filter(|&i| records[i].split.as_ref() == Some(&role))
                .collect()
        };
        let (database, queries) = (rows(SplitRole::Database), rows(SplitRole::Query));
        if database.is_empty() {
            return Err(PipelineError::Empty { what: "database" });
        }
        if queries.is_empty() {
            return Err(PipelineError::Empty { what: "query" });
        }
        let database_labels = database
            .iter()
            .map(|&i| {
                records[i]
                    .identity
                    .clone()
                    .ok_or_else(|| PipelineError::Unlabelled {
                        image_id: records[i].image_id.clone(),
                        row: i,
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let scopes = queries.iter().map(|&i| records[i].scope()).collect();
        Ok(Self {
            database,
            queries,
            database_labels,
            scopes,
        })
    }

    /// The database as the one gallery: its embeddings (rows of
    /// `embeddings`, aligned with `records`) and records.
    pub fn database_gallery(
        &self,
        records: &[Record],
        embeddings: ArrayView2<'_, f32>,
    ) -> Result<Gallery> {
        Ok(Gallery::from_parts(
            "",
            embeddings.select(Axis(0), &self.database).view(),
            self.database.iter().map(|&i| records[i].clone()).collect(),
        )?)
    }

    /// The queries by scope: for each scope, the positions (in
    /// [`OpenSetSplit::queries`]) of its queries, scopes in sorted order.
    pub fn queries_by_scope(&self) -> BTreeMap<&Scope, Vec<usize>> {
        let mut m: BTreeMap<&Scope, Vec<usize>> = BTreeMap::new();
        for (qi, s) in self.scopes.iter().enumerate() {
            m.entry(s).or_default().push(qi);
        }
        m
    }

    /// The scope name of each database record (its dataset, else species,
    /// else `all`): the groups that self-calibration draws episodes in.
    pub fn database_groups(&self, records: &[Record]) -> Vec<String> {
        self.database
            .iter()
            .map(|&i| records[i].scope().name().to_owned())
            .collect()
    }

    /// Whether each query's true identity (`truth`) is new: absent from the
    /// database of its own scope.
    pub fn new_flags<S: AsRef<str>>(&self, records: &[Record], truth: &[S]) -> Vec<bool> {
        let mut known: BTreeMap<&Scope, std::collections::BTreeSet<&str>> = BTreeMap::new();
        for s in &self.scopes {
            known.entry(s).or_insert_with(|| {
                self.database
                    .iter()
                    .zip(&self.database_labels)
                    .filter(|(i, _)| s.contains(&records[**i]))
                    .map(|(_, l)| l.as_str())
                    .collect()
            });
        }
        self.scopes
            .iter()
            .zip(truth)
            .map(|(s, t)| !known.get(s).is_some_and(|k| k.contains(t.as_ref())))
            .collect()
    }
}
