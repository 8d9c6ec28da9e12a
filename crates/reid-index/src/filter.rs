//! Attribute filters: conjunctions of `key=value` tests on a record's
//! metadata, so a search can be limited to the selected population
//! (a species, a dataset, a location).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::{IndexError, Result};

/// A conjunction of `key=value` clauses; a record matches when its metadata
/// holds every key with exactly that value. The empty filter matches all.
///
/// ```
/// use std::collections::BTreeMap;
/// use reid_index::Filter;
/// let f: Filter = "species=lion, dataset=LionData".parse().unwrap();
/// let mut meta = BTreeMap::new();
/// meta.insert("species".to_string(), "lion".to_string());
/// assert!(!f.matches(&meta)); // no `dataset` key
/// meta.insert("dataset".to_string(), "LionData".to_string());
/// assert!(f.matches(&meta));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    clauses: Vec<(String, String)>,
}

impl Filter {
    /// The filter that matches every record.
    pub fn all() -> Self {
        Self::default()
    }

    /// A one-clause filter `key=value`.
    pub fn eq(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self::all().and(key, value)
    }

    /// Adds the clause `key=value`.
    #[must_use]
    pub fn and(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.clauses.push((key.into(), value.into()));
        self
    }

    /// Parses `key=value` clauses joined by `,` or `&` (spaces around keys and
    /// values are trimmed). Errors on an empty expression, a clause without
    /// `=`, or an empty key.
    pub fn parse(expr: &str) -> Result<Self> {
        let bad = |reason: &str| IndexError::Filter {
            expr: expr.to_string(),
            reason: reason.to_string(),
        };
        if expr.trim().is_empty() {
            return Err(bad(
                "empty expression (use Filter::all() to match every record)",
            ));
        }
        let mut f = Self::all();
        for clause in expr.split([',', '&']) {
            let clause = clause.trim();
            if clause.is_empty() {
                return Err(bad("empty clause"));
            }
            let (k, v) = clause
                .split_once('=')
                .ok_or_else(|| bad(&format!("clause `{clause}` has no `=`")))?;
            let k = k.trim();
            if k.is_empty() {
                return Err(bad(&format!("clause `{clause}` has an empty key")));
            }
            f = f.and(k, v.trim());
        }
        Ok(f)
    }

    /// The clauses, in order.
    pub fn clauses(&self) -> &[(String, String)] {
        &self.clauses
    }

    /// True when this filter has no clause (matches everything).
    pub fn is_all(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Whether `meta` satisfies every clause.
    pub fn matches(&self, meta: &BTreeMap<String, String>) -> bool {
        self.clauses
            .iter()
            .all(|(k, v)| meta.get(k).is_some_and(|x| x == v))
    }
}

impl FromStr for Filter {
    type Err = IndexError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.clauses.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}
