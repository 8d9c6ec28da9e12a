//! The dataset on disk: records with their open-set split and dates,
//! JPEG images and `metadata.csv`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::codecs::jpeg::JpegEncoder;
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use reid_core::ParamGuard;

use super::{STREAM_DATE, STREAM_SPLIT, SyntheticParams, ValidSyntheticParams};
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::record::{Date, Record, SplitRole};

/// The name of the metadata file [`generate`] writes into the output folder.
pub const METADATA_FILE: &str = "metadata.csv";

impl ValidSyntheticParams {
    /// Indices of the individuals that appear only as queries (sorted).
    pub fn new_individuals(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.p.n_individuals).collect();
        order.shuffle(&mut self.rng(STREAM_SPLIT));
        let mut new: Vec<usize> = order[..self.n_new].to_vec();
        new.sort_unstable();
        new
    }

    /// The records [`generate`] writes, without rendering anything. Paths
    /// are `root/images/<identity>/<n>.jpg`; record order is individual by
    /// individual, photo by photo; `image_id` is the running index.
    pub fn records(&self, root: &Path) -> Vec<Record> {
        let m = self.p.images_per_individual;
        let new: BTreeSet<usize> = self.new_individuals().into_iter().collect();
        let width = digits(m.saturating_sub(1));
        let mut out = Vec::with_capacity(self.p.n_individuals * m);
        for i in 0..self.p.n_individuals {
            let identity = self.identity_name(i);
            let queries: BTreeSet<usize> = if new.contains(&i) {
                (0..m).collect()
            } else {
                let mut photos: Vec<usize> = (0..m).collect();
                photos.shuffle(&mut self.rng(STREAM_SPLIT | (1 + i as u64)));
                photos[..self.known_queries].iter().copied().collect()
            };
            let dates = self
                .p
                .dates
                .then(|| photo_dates(&mut self.rng(STREAM_DATE | i as u64), m));
            for n in 0..m {
                let mut r = Record::new(
                    (i * m + n).to_string(),
                    root.join(relative_image_path(&identity, n, width)),
                );
                r.identity = Some(identity.clone());
                r.species = Some(self.species_of(i).to_string());
                r.split = Some(if queries.contains(&n) {
                    SplitRole::Query
                } else {
                    SplitRole::Database
                });
                r.dataset = Some(self.p.dataset_name.clone());
                r.date = dates.as_ref().and_then(|d| d.get(n).copied());
                r.orientation = Some(
                    self.photo_setup(i, n)
                        .map(|s| s.orientation().to_string())
                        .unwrap_or_default(),
                );
                out.push(r);
            }
        }
        out
    }

    /// Writes the dataset into `out_dir`; see [`generate`].
    pub fn generate(&self, out_dir: &Path) -> Result<Dataset> {
        self.generate_with_progress(out_dir, |_, _| {})
    }

    /// Like [`ValidSyntheticParams::generate`], calling `progress(done,
    /// total)` after each image is written (from worker threads, in no
    /// particular order).
    pub fn generate_with_progress<F>(&self, out_dir: &Path, progress: F) -> Result<Dataset>
    where
        F: Fn(usize, usize) + Sync,
    {
        let records = self.records(out_dir);
        let m = self.p.images_per_individual;
        let total = records.len();
        let done = AtomicUsize::new(0);
        for i in 0..self.p.n_individuals {
            let dir = out_dir.join("images").join(self.identity_name(i));
            std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        }
        let quality = self.p.jpeg_quality;
        (0..self.p.n_individuals)
            .into_par_iter()
            .try_for_each(|i| -> Result<()> {
                let ind = self.individual(i)?;
                (0..m).into_par_iter().try_for_each(|n| -> Result<()> {
                    let setup = self.photo_setup(i, n)?;
                    let img = self.render(&ind, &setup);
                    let path: &PathBuf = &records[i * m + n].path;
                    let mut bytes = Vec::with_capacity(img.as_raw().len() / 4);
                    JpegEncoder::new_with_quality(&mut bytes, quality)
                        .encode_image(&img)
                        .map_err(|e| DataError::io(path, std::io::Error::other(e)))?;
                    write_image(path, &bytes)?;
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    progress(d, total);
                    Ok(())
                })
            })?;
        let ds = Dataset::new(out_dir, records);
        crate::loaders::write_metadata_csv(&out_dir.join(METADATA_FILE), &ds)?;
        Ok(ds)
    }
}

/// Writes an image file so that no reader ever sees it half-written
/// (`reid_core::fs`), but without syncing each image to disk (a thousand
/// `fsync`s dominate the run time); `metadata.csv`, written last, is synced.
/// A file that already holds exactly `bytes` is left alone, so a re-run
/// rewrites nothing.
fn write_image(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    reid_core::fs::AtomicWrite::new()
        .durable(false)
        .bytes(path, bytes)?;
    Ok(())
}

/// Writes the synthetic dataset described by `params` into `out_dir`:
/// `images/<identity>/<n>.jpg` (JPEG) and `metadata.csv` with the AnimalCLEF
/// columns `image_id,identity,path,date,orientation,species,split,dataset`
/// (paths relative to `out_dir`). Every file is written through a temporary
/// file and a rename, so an interrupted run never leaves a half-written image
/// or CSV; the CSV is written last (and flushed to disk), and re-running into
/// the same folder gives the same bytes (unchanged images are not rewritten).
/// Files of an earlier run with other parameters are not deleted.
///
/// The split is open-set: [`SyntheticParams::new_identity_fraction`] of the
/// individuals are query-only (new individuals), and
/// [`SyntheticParams::query_fraction`] of each remaining individual's photos
/// are queries; queries keep their true identity.
///
/// ```
/// use reid_data::synthetic::{SyntheticParams, generate};
///
/// let dir = tempfile::tempdir().unwrap();
/// let params = SyntheticParams::default()
///     .n_individuals(4)
///     .images_per_individual(3)
///     .width(48)
///     .height(48);
/// let ds = generate(&params, dir.path())?;
/// assert_eq!(ds.records.len(), 12);
/// assert!(dir.path().join("metadata.csv").is_file());
/// # Ok::<(), reid_data::DataError>(())
/// ```
pub fn generate(params: &SyntheticParams, out_dir: &Path) -> Result<Dataset> {
    params.clone().check()?.generate(out_dir)
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

fn relative_image_path(identity: &str, n: usize, width: usize) -> PathBuf {
    PathBuf::from("images")
        .join(identity)
        .join(format!("{n:0width$}.jpg"))
}

/// `m` increasing dates in 2024 and 2025, gaps of 1..=20 days.
fn photo_dates(rng: &mut ChaCha8Rng, m: usize) -> Vec<Date> {
    let mut day: u32 = rng.gen_range(0..240);
    let mut out = Vec::with_capacity(m);
    for _ in 0..m {
        out.push(day_to_date(day));
        day = (day + rng.gen_range(1..=20)) % (366 + 365);
    }
    out
}

fn day_to_date(mut day: u32) -> Date {
    let mut year = 2024;
    loop {
        let leap = year % 4 == 0;
        let len = if leap { 366 } else { 365 };
        if day < len {
            let months = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            let mut month = 1u8;
            for ml in months {
                if day < ml {
                    break;
                }
                day -= ml;
                month += 1;
            }
            return Date {
                year,
                month,
                day: day as u8 + 1,
            };
        }
        day -= len;
        year += 1;
    }
}
