//! Local keypoint fusion options, and the keypoints of every image.

use std::path::{Path, PathBuf};
use std::time::Instant;

use reid_core::{ParamGuard, Record};
use reid_local::{CacheStatus, ExtractParams, FeatureCache, FeatureStore, LocalParams};
use reid_openset::{FusionParams, ValidFusionParams};

use crate::bar;

/// Local keypoint fusion (RootSIFT, ratio test, RANSAC inliers).
#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// Also fuse local keypoint matching into each query's cosine shortlist
    /// of this many database images of its dataset; several sizes
    /// comma-separated (e.g. `10,50`), each scored.
    #[arg(long, value_delimiter = ',')]
    pub local: Vec<usize>,
    /// Weight of the local score against cosine's 1 in the fusion.
    #[arg(long, default_value_t = 1.0)]
    pub local_weight: f32,
    /// Longer image side for keypoint detection (images are downscaled).
    #[arg(long, default_value_t = 512)]
    pub local_max_side: u32,
    /// Keypoints kept per image (the strongest).
    #[arg(long, default_value_t = 1000)]
    pub local_keypoints: usize,
    /// Feature cache folder (default: `local-features` in the animal-reid
    /// cache, `$ANIMAL_REID_CACHE` or `~/.cache/animal-reid`).
    #[arg(long)]
    pub local_cache: Option<PathBuf>,
}

/// The local features of every record, with how they were obtained.
pub struct Keypoints {
    /// One feature set per record.
    pub store: FeatureStore,
    /// Seconds taken.
    pub seconds: f64,
    /// How many came from the cache.
    pub cached: usize,
    /// The cache folder.
    pub cache: PathBuf,
}

impl Keypoints {
    /// Mean keypoints per image.
    pub fn per_image(&self) -> f64 {
        let kp: usize = self.store.features().iter().map(|f| f.len()).sum();
        kp as f64 / self.store.len().max(1) as f64
    }
}

impl LocalArgs {
    /// Whether any shortlist size was asked for.
    pub fn enabled(&self) -> bool {
        !self.local.is_empty()
    }

    /// The fusion of each asked shortlist size, checked (cosine weight 1,
    /// the local weight, isotonic calibration).
    pub fn fusions(&self) -> anyhow::Result<Vec<ValidFusionParams>> {
        self.local
            .iter()
            .map(|&b| {
                Ok(FusionParams::default()
                    .shortlist(b)
                    .weights(vec![1.0, self.local_weight])
                    .check()?)
            })
            .collect()
    }

    /// The feature cache folder.
    pub fn cache_dir(&self) -> PathBuf {
        self.local_cache
            .clone()
            .unwrap_or_else(|| reid_backbone::weights::cache_dir().join("local-features"))
    }

    /// Extracts (or reads back from the cache) the local features of every
    /// record's image, with a progress bar hidden when `quiet`.
    pub fn keypoints(&self, records: &[Record], quiet: bool) -> anyhow::Result<Keypoints> {
        let params = LocalParams::default()
            .extract(
                ExtractParams::default()
                    .max_side(self.local_max_side)
                    .max_keypoints(self.local_keypoints),
            )
            .check()?;
        let dir = self.cache_dir();
        let cache = FeatureCache::new(&dir)?;
        let paths: Vec<&Path> = records.iter().map(|r| r.path.as_path()).collect();
        let t = Instant::now();
        let pb = bar(paths.len(), "keypoints", quiet);
        let store = FeatureStore::extract_with(&paths, &params, Some(&cache), |_, _| pb.inc(1))?;
        pb.finish_and_clear();
        let cached = store
            .cache_status()
            .iter()
            .filter(|s| matches!(s, CacheStatus::Hit))
            .count();
        Ok(Keypoints {
            store,
            seconds: t.elapsed().as_secs_f64(),
            cached,
            cache: dir,
        })
    }
}
