//! Attribute filters: conjunctions of `key=value` tests on a record's
//! fields and attributes, so a search can be limited to the selected
//! population (a dataset, a species, a location).

use std::fmt;

use reid_core::{Record, Scope};
use std::str::FromStr;

use crate::{IndexError, Result};

/// A conjunction of `key=value` clauses; a record matches when every key
/// has exactly that value ([`Record::field`]: `dataset`, `species`, `split`,
/// `identity`, ... or an attribute). The empty filter matches all.
///
/// ```
/// use reid_index::{Filter, Record};
/// let f: Filter = "species=lion, dataset=LionData".parse().unwrap();
/// let r = Record::new("1", "1.jpg").with_species("lion");
/// assert!(!f.matches(&r)); // no dataset
/// assert!(f.matches(&r.with_dataset("LionData")));
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

    /// Whether `record` satisfies every clause.
    pub fn matches(&self, record: &Record) -> bool {
        self.clauses
            .iter()
            .all(|(k, v)| record.field(k).is_some_and(|x| x == v.as_str()))
    }

    /// The filter that admits exactly the records of `scope`
    /// ([`Scope::contains`]).
    pub fn scope(scope: &Scope) -> Self {
        match scope {
            Scope::Dataset(d) => Self::eq("dataset", d.clone()),
            Scope::Species(s) => Self::eq("species", s.clone()),
            Scope::All => Self::all(),
        }
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
