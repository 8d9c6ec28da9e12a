//! The embeddings as the pipeline searches them: projected, dataset by
//! dataset, by a [`reid_openset::Projection`] fitted on that dataset's
//! database alone.

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis, s};
use reid_core::Record;
use reid_openset::{Projection, ValidAdaptParams};
use serde::Serialize;

use crate::Result;
use crate::split::OpenSetSplit;

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
        let proj = Projection::fit(x.view(), &labels, params)?;
        parts.push((rows.clone(), proj.transform(x.view())?));
        if let Some(qs) = q_by_group.get(name) {
            let q_rows: Vec<usize> = qs.iter().map(|&qi| split.queries[qi]).collect();
            let yq = proj.transform(embeddings.select(Axis(0), &q_rows).view())?;
            parts.push((q_rows, yq));
        }
        let mut identities = labels.clone();
        identities.sort_unstable();
        identities.dedup();
        report.insert(
            (*name).to_owned(),
            AdaptedGroup {
                rows: rows.len(),
                identities: identities.len(),
                dim: proj.output_dim(),
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
