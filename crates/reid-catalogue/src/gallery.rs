//! The search side of a catalogue: its gallery of one model as a
//! [`reid_index::Gallery`], cached on disk and rebuilt from the database
//! whenever the catalogue changed; and the bridge from the pipeline's
//! [`Identification`] of new photos to the review items a person decides.
//!
//! The cache file is the index crate's checksummed gallery file
//! (`<dir>/<catalogue uid>/<model hash>.gallery`), its model id
//! `<model>#<generation>`: a file of another generation, a damaged file or
//! one of another catalogue is never used, only rebuilt (atomically).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use reid_core::{Record, SplitRole};
use reid_index::Gallery;
use reid_pipeline::Identification;
use sha2::{Digest, Sha256};

use crate::catalogue::{Catalogue, Model, Photo};
use crate::decisions::{Candidate, ReviewItem, Suggestion};
use crate::error::{CatalogueError, Result};

/// The catalogue's gallery of one model.
#[derive(Debug)]
pub struct CatalogueGallery {
    /// One record per assigned photo: image id `photo-<id>`, identity = the
    /// individual id, dataset, species, path, split `database`; attributes
    /// `name` (the individual's) and `content_hash`.
    pub gallery: Gallery,
    /// The catalogue generation it reflects.
    pub generation: i64,
    /// Whether it came from the cache file.
    pub from_cache: bool,
    /// Why the cache was not used, when it was not (missing, stale, damaged).
    pub rebuilt_because: Option<String>,
}

fn cache_file(dir: &Path, uid: &str, model: &Model) -> PathBuf {
    let h = hex::encode(&Sha256::digest(model.id.as_bytes())[..8]);
    dir.join(uid).join(format!("{h}.gallery"))
}

fn cache_model_id(model: &Model, generation: i64) -> String {
    format!("{}#{generation}", model.id)
}

fn index_err(e: reid_index::IndexError) -> CatalogueError {
    CatalogueError::Invalid(format!("search index: {e}"))
}

/// The record of a catalogue photo in the gallery.
pub fn photo_record(p: &Photo) -> Record {
    let mut r =
        Record::new(format!("photo-{}", p.id), p.path.clone()).with_split(SplitRole::Database);
    r.identity = p.individual.clone();
    r.dataset = Some(p.dataset.clone());
    r.species = p.species.clone();
    if let Some(n) = &p.name {
        r.attributes.insert("name".into(), n.clone());
    }
    r.attributes
        .insert("content_hash".into(), p.content_hash.clone());
    r
}

/// Loads the gallery of `model`: from `cache_dir` when its file is of the
/// catalogue's current generation and passes its checksum, else from the
/// database, then saved there (when `cache_dir` is given).
pub fn load_gallery(
    cat: &mut Catalogue,
    model: &Model,
    cache_dir: Option<&Path>,
) -> Result<CatalogueGallery> {
    let mut because = None;
    if let Some(dir) = cache_dir {
        let generation = cat.generation()?;
        let file = cache_file(dir, &cat.uid()?, model);
        match Gallery::load(&file) {
            Ok(g) if g.model_id() == cache_model_id(model, generation) && g.dim() == model.dim => {
                return Ok(CatalogueGallery {
                    gallery: g,
                    generation,
                    from_cache: true,
                    rebuilt_because: None,
                });
            }
            Ok(g) => {
                because = Some(format!(
                    "cache {} is of {}, the catalogue is at {}",
                    file.display(),
                    g.model_id(),
                    cache_model_id(model, generation)
                ))
            }
            Err(reid_index::IndexError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                because = Some(format!("no cache at {}", file.display()))
            }
            Err(e) => because = Some(format!("cache {} unusable: {e}", file.display())),
        }
    }
    let (generation, rows) = cat.gallery(model)?;
    let mut m = Array2::<f32>::zeros((rows.len(), model.dim));
    let mut records = Vec::with_capacity(rows.len());
    for (i, (p, v)) in rows.iter().enumerate() {
        m.row_mut(i).iter_mut().zip(v).for_each(|(d, s)| *d = *s);
        records.push(photo_record(p));
    }
    let gallery = if rows.is_empty() {
        Gallery::new(cache_model_id(model, generation), model.dim)
    } else {
        Gallery::from_parts(cache_model_id(model, generation), m.view(), records)
    }
    .map_err(index_err)?;
    if let Some(dir) = cache_dir {
        let file = cache_file(dir, &cat.uid()?, model);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| CatalogueError::Io {
                path: parent.to_path_buf(),
                source: e,
            })?;
        }
        gallery.save(&file).map_err(index_err)?;
    }
    Ok(CatalogueGallery {
        gallery,
        generation,
        from_cache: false,
        rebuilt_because: because,
    })
}

/// A new photo to identify.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPhoto {
    /// Its id (file name, or the CSV's image id).
    pub id: String,
    /// Image file.
    pub path: PathBuf,
    /// sha256 hex of its bytes.
    pub content_hash: String,
    /// The catalogue dataset it is searched in.
    pub dataset: String,
    /// Species, if known.
    pub species: Option<String>,
}

/// The records and embeddings the pipeline identifies: the gallery's
/// records (split `database`) then the queries (split `query`), rows in
/// the same order.
pub fn identification_input(
    gallery: &Gallery,
    queries: &[QueryPhoto],
    query_embeddings: &Array2<f32>,
) -> Result<(Vec<Record>, Array2<f32>)> {
    if query_embeddings.nrows() != queries.len() || query_embeddings.ncols() != gallery.dim() {
        return Err(CatalogueError::Invalid(format!(
            "{} queries with embeddings of shape {:?}; the gallery's dimension is {}",
            queries.len(),
            query_embeddings.shape(),
            gallery.dim()
        )));
    }
    let mut records: Vec<Record> = gallery.records().to_vec();
    for q in queries {
        let mut r = Record::new(q.id.clone(), q.path.clone()).with_split(SplitRole::Query);
        r.dataset = Some(q.dataset.clone());
        r.species = q.species.clone();
        records.push(r);
    }
    let g = gallery.embeddings();
    let m = ndarray::concatenate(ndarray::Axis(0), &[g, query_embeddings.view()])
        .map_err(|e| CatalogueError::Invalid(format!("stacking embeddings: {e}")))?;
    Ok((records, m))
}

/// Most candidates listed per photo.
pub const CANDIDATES: usize = 5;

/// The review items of an identification made from
/// [`identification_input`]`(gallery, queries, ..)`: per query, its best
/// candidate individuals (best photo of each, by score), the decision, and
/// the threshold of its dataset.
pub fn review_items(
    ident: &Identification,
    records: &[Record],
    queries: &[QueryPhoto],
) -> Result<Vec<ReviewItem>> {
    if ident.queries.len() != queries.len() {
        return Err(CatalogueError::Invalid(format!(
            "identification of {} queries for {} photos",
            ident.queries.len(),
            queries.len()
        )));
    }
    let mut items = Vec::with_capacity(queries.len());
    for (qi, q) in queries.iter().enumerate() {
        let mut best: BTreeMap<String, (f32, usize)> = BTreeMap::new();
        for m in &ident.matches[qi] {
            let rec = &records[ident.database[m.database]];
            let Some(ind) = rec.identity.clone() else {
                continue;
            };
            let e = best.entry(ind).or_insert((f32::NEG_INFINITY, m.database));
            if m.score > e.0 {
                *e = (m.score, m.database);
            }
        }
        let mut candidates: Vec<Candidate> = best
            .into_iter()
            .map(|(ind, (score, db))| {
                let rec = &records[ident.database[db]];
                Candidate {
                    name: rec
                        .attributes
                        .get("name")
                        .cloned()
                        .unwrap_or_else(|| ind.clone()),
                    individual: ind,
                    score,
                    photo: rec.path.clone(),
                }
            })
            .collect();
        candidates.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.individual.cmp(&b.individual))
        });
        candidates.truncate(CANDIDATES);
        let p = &ident.predictions[qi];
        let (suggestion, suggested) = match p.decision.identity() {
            Some(id) => (Suggestion::Known, id.to_string()),
            None => (Suggestion::New, ident.final_ids[qi].clone()),
        };
        let scope = ident.scopes[qi].name();
        items.push(ReviewItem {
            photo: q.id.clone(),
            path: q.path.clone(),
            content_hash: q.content_hash.clone(),
            dataset: q.dataset.clone(),
            species: q.species.clone(),
            suggestion,
            suggested,
            score: p.similarity,
            threshold: ident.thresholds.get(Some(scope)),
            candidates,
        });
    }
    Ok(items)
}

/// The review items when the catalogue has nothing to match against (no
/// photo of any query's dataset yet): every photo new, each its own group
/// (the person groups them).
pub fn all_new_items(queries: &[QueryPhoto]) -> Vec<ReviewItem> {
    queries
        .iter()
        .enumerate()
        .map(|(i, q)| ReviewItem {
            photo: q.id.clone(),
            path: q.path.clone(),
            content_hash: q.content_hash.clone(),
            dataset: q.dataset.clone(),
            species: q.species.clone(),
            suggestion: Suggestion::New,
            suggested: format!("new_{:04}", i + 1),
            score: f32::NAN,
            threshold: f32::NAN,
            candidates: Vec::new(),
        })
        .collect()
}
