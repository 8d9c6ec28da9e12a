//! Photos in (folders, CSVs), content hashes, and embeddings computed only
//! where the catalogue lacks them.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use reid_backbone::backbone::Backbone;
use reid_backbone::pipeline::embedding_config;
use reid_catalogue::catalogue::{Catalogue, EnrolPhoto, Model, content_hash};
use reid_catalogue::storage::{PhotoFetcher, is_url};
use reid_core::{Record, SplitRole};
use reid_data::Dataset;
use reid_data::loaders::{load_animalclef, load_folders};
use reid_examples::{BackboneArgs, bar, load_options};
use sha2::{Digest, Sha256};

use crate::PhotoSource;

/// The model a backbone and its options make: the id hashes everything the
/// embedding depends on (weights by content), so a changed weights file is
/// a new model.
pub fn model_of(args: &BackboneArgs, bb: &Backbone) -> Result<Model> {
    let params = args.extract_params(None)?;
    let config = embedding_config(bb, &params);
    let info = bb.info();
    let h = hex::encode(&Sha256::digest(config.as_bytes())[..8]);
    let weights = info.weights_id.get(..12).unwrap_or(&info.weights_id);
    Ok(Model {
        id: format!("{}-{h}", info.name),
        description: format!(
            "{} @{} px, weights {weights}, pooling {}{}",
            info.name,
            info.input_size,
            info.pooling,
            if args.flip { ", flip" } else { "" }
        ),
        dim: info.dim as usize,
    })
}

/// The records of a photo source, with each one's dataset filled
/// (`--dataset`, else the CSV's column; one of them is required).
pub fn load(src: &PhotoSource, need_identity: bool) -> Result<Dataset> {
    let opts = load_options(src.skip_bad);
    let (mut ds, report) = match (&src.folder, &src.csv) {
        (Some(f), None) => {
            load_folders(f, &opts).with_context(|| format!("--folder {}", f.display()))?
        }
        (None, Some(c)) => {
            load_animalclef(c, &opts).with_context(|| format!("--csv {}", c.display()))?
        }
        _ => bail!("give the photos with --folder DIR or --csv FILE"),
    };
    for s in &report.skipped {
        eprintln!("skipped {}: {}", s.location, s.error);
    }
    if let Some(split) = &src.split {
        let role = SplitRole::parse(split);
        ds.records.retain(|r| r.split.as_ref() == Some(&role));
    }
    for r in &mut ds.records {
        if r.dataset.as_deref().is_none_or(str::is_empty) {
            r.dataset = src.dataset.clone();
        }
        if r.dataset.is_none() {
            bail!(
                "photo {} has no dataset: give --dataset NAME (the site or population it belongs to)",
                r.image_id
            );
        }
        if need_identity && r.identity.as_deref().is_none_or(str::is_empty) {
            bail!(
                "photo {} ({}) has no individual: enrol takes a folder with one sub-folder per \
                 individual, or a CSV whose identity column is filled",
                r.image_id,
                r.path.display()
            );
        }
    }
    fetch_remote(&mut ds.records, src.skip_bad)?;
    if ds.records.is_empty() {
        bail!("no photos to work on");
    }
    Ok(ds)
}

/// The attribute holding a record's location as the catalogue registers
/// it, where that is not its (local) path: the URL of a downloaded photo.
pub const LOCATION: &str = "location";

/// Downloads the photos given by http(s) URL into the cache: each record's
/// path becomes the local copy, its URL kept under [`LOCATION`].
/// Unreachable photos stop the command, or are left out (reported) with
/// `skip_bad`.
fn fetch_remote(records: &mut Vec<Record>, skip_bad: bool) -> Result<()> {
    let remote = records.iter().filter(|r| is_url(&r.path)).count();
    if remote == 0 {
        return Ok(());
    }
    let fetcher = crate::fetcher()?;
    let pb = bar(remote, "downloading photos", false);
    let fetched: Vec<Option<reid_catalogue::Result<std::path::PathBuf>>> = records
        .par_iter()
        .map(|r| {
            is_url(&r.path).then(|| {
                let got = fetcher.local(&r.path);
                pb.inc(1);
                got
            })
        })
        .collect();
    pb.finish_and_clear();
    let mut kept = Vec::with_capacity(records.len());
    for (mut r, f) in std::mem::take(records).into_iter().zip(fetched) {
        match f {
            None => kept.push(r),
            Some(Ok(local)) => {
                r.attributes
                    .insert(LOCATION.into(), r.path.display().to_string());
                r.path = local;
                kept.push(r);
            }
            Some(Err(e)) if skip_bad => eprintln!("skipped {}: {e}", r.image_id),
            Some(Err(e)) => {
                return Err(anyhow::Error::from(e)
                    .context(format!("photo {}: cannot download it", r.image_id)));
            }
        }
    }
    *records = kept;
    Ok(())
}

/// Where the catalogue records `r`'s photo: its URL when it was downloaded,
/// else its canonical path.
pub fn location_of(r: &Record) -> std::path::PathBuf {
    match r.attributes.get(LOCATION) {
        Some(url) => url.into(),
        None => std::fs::canonicalize(&r.path).unwrap_or_else(|_| r.path.clone()),
    }
}

/// `records` with every path turned into a file this machine reads (the
/// cached download of a URL, a mapped path), in parallel.
pub fn localize(fetcher: &PhotoFetcher, records: &[Record]) -> Result<Vec<Record>> {
    records
        .par_iter()
        .map(|r| {
            let mut r = r.clone();
            r.path = fetcher
                .local(&r.path)
                .with_context(|| format!("photo {}", r.image_id))?;
            Ok(r)
        })
        .collect()
}

/// The photos of `records` (content `hashes`) as the catalogue registers
/// them: canonical paths, the dataset, the identity as the individual's
/// name (empty: unassigned).
pub fn catalogue_photos(records: &[Record], hashes: &[String]) -> Vec<EnrolPhoto> {
    records
        .iter()
        .zip(hashes)
        .map(|(r, h)| EnrolPhoto {
            path: location_of(r),
            content_hash: h.clone(),
            dataset: r.dataset.clone().unwrap_or_default(),
            species: r.species.clone(),
            individual: r.identity.clone().unwrap_or_default(),
        })
        .collect()
}

/// The content hash of every record's file, in parallel.
pub fn hashes(records: &[Record]) -> Result<Vec<String>> {
    records
        .par_iter()
        .map(|r| content_hash(&r.path).map_err(anyhow::Error::from))
        .collect()
}

/// Embeddings of `model` for `records` (content `hashes`): those the
/// catalogue holds are read back, the others computed with `bb` (and
/// stored in the catalogue when `store`). Rows are L2-normalised.
#[allow(clippy::too_many_arguments)]
pub fn embeddings(
    cat: &mut Catalogue,
    model: &Model,
    args: &BackboneArgs,
    bb: &Backbone,
    records: &[Record],
    hashes: &[String],
    cache: Option<&Path>,
    quiet: bool,
    store: bool,
) -> Result<Vec<Vec<f32>>> {
    let mut have: HashMap<String, Vec<f32>> = cat.embeddings_for(model, hashes)?;
    let mut todo: Vec<Record> = Vec::new();
    let mut todo_hash: Vec<String> = Vec::new();
    for (r, h) in records.iter().zip(hashes) {
        if !have.contains_key(h) && !todo_hash.contains(h) {
            todo.push(r.clone());
            todo_hash.push(h.clone());
        }
    }
    if !todo.is_empty() {
        let (emb, secs, _) = args.embed_with(bb, &todo, cache, quiet)?;
        if !quiet {
            eprintln!(
                "embedded {} photos with {} in {secs:.1} s",
                todo.len(),
                model.id
            );
        }
        let rows: Vec<(String, Vec<f32>)> = todo_hash
            .iter()
            .zip(emb.matrix.rows())
            .map(|(h, row)| (h.clone(), row.to_vec()))
            .collect();
        if store {
            cat.put_embeddings(model, &rows)?;
        }
        have.extend(rows);
    }
    hashes
        .iter()
        .map(|h| {
            have.get(h)
                .cloned()
                .with_context(|| format!("no embedding for content {h}"))
        })
        .collect()
}

/// Embeds every catalogue photo that has no embedding of `model` (a new
/// catalogue model, or photos enrolled under another one), from its stored
/// file, which must still hold the same bytes.
pub fn catch_up(
    cat: &mut Catalogue,
    model: &Model,
    args: &BackboneArgs,
    bb: &Backbone,
    cache: Option<&Path>,
    quiet: bool,
) -> Result<usize> {
    let missing = cat.photos_without_embedding(&model.id)?;
    if missing.is_empty() {
        return Ok(0);
    }
    let fetcher = crate::fetcher()?;
    let pb = bar(missing.len(), "checking photo files", quiet);
    let checked: Vec<Result<std::path::PathBuf>> = missing
        .par_iter()
        .map(|p| {
            let (local, h) = fetcher.local_with_hash(&p.path, &p.content_hash).with_context(|| {
                format!(
                    "photo {} of the catalogue must be embedded with {} but its file cannot be read",
                    p.id, model.id
                )
            })?;
            pb.inc(1);
            if h != p.content_hash {
                bail!(
                    "photo {} ({}) changed on disk since it was enrolled (sha256 {} now {}): \
                     restore it, or remove it from the catalogue",
                    p.id,
                    p.path.display(),
                    p.content_hash,
                    h
                );
            }
            Ok(local)
        })
        .collect();
    pb.finish_and_clear();
    let local = checked.into_iter().collect::<Result<Vec<_>>>()?;
    let records: Vec<Record> = missing
        .iter()
        .zip(local)
        .map(|(p, local)| Record::new(format!("photo-{}", p.id), local))
        .collect();
    let hashes: Vec<String> = missing.iter().map(|p| p.content_hash.clone()).collect();
    embeddings(cat, model, args, bb, &records, &hashes, cache, quiet, true)?;
    Ok(missing.len())
}
