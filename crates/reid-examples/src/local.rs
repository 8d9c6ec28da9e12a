//! Local matching options (RootSIFT, and the learned matchers of
//! reid-glue), and the local features of every image.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::ArrayView2;
use reid_backbone::backbone::{Precision, parse_device};
use reid_core::{ParamGuard, Record};
use reid_glue::{
    GlueScorer, GlueStore, LearnedKind, LearnedMatcher, LearnedParams, PairScore, ScoreParams,
    StoreParams,
};
use reid_local::{
    CacheStatus, ExtractParams, FeatureCache, FeatureStore, LocalParams, LocalScorer,
};
use reid_openset::{Aggregate, FusionParams, MemoScorer, PairScorer, Rule, ValidFusionParams};
use reid_pipeline::{Identification, SourceCost, ValidOpenSetParams, best_index, fuse};

use reid_eval::report::Report;

use crate::bar;

/// A local matcher that can join cosine in the fusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LocalKind {
    /// No local matching: cosine alone.
    None,
    /// RootSIFT keypoints, ratio test, RANSAC inliers (no weights).
    Sift,
    /// XFeat keypoints matched by LighterGlue.
    Xfeat,
    /// DISK keypoints matched by LightGlue.
    Disk,
    /// ALIKED-N16 keypoints matched by LightGlue.
    Aliked,
}

impl LocalKind {
    /// The learned matcher, or `None` for SIFT.
    pub fn learned(self) -> Option<LearnedKind> {
        match self {
            LocalKind::None | LocalKind::Sift => None,
            LocalKind::Xfeat => Some(LearnedKind::XFeat),
            LocalKind::Disk => Some(LearnedKind::Disk),
            LocalKind::Aliked => Some(LearnedKind::Aliked),
        }
    }

    /// The name used in reports (`sift`, `xfeat`, ...).
    pub fn name(self) -> &'static str {
        match self {
            LocalKind::None => "none",
            LocalKind::Sift => "sift",
            LocalKind::Xfeat => "xfeat",
            LocalKind::Disk => "disk",
            LocalKind::Aliked => "aliked",
        }
    }
}

/// What the learned matchers' pair score counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GlueScoreArg {
    /// Matches above `--glue-min-confidence` (wildlife-tools' rule).
    Matches,
    /// RANSAC inliers among them.
    Inliers,
}

/// Local matching fused with cosine.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// Local matchers fused with cosine in each query's shortlist,
    /// comma-separated, all in one fusion: `sift` (RootSIFT + RANSAC, no
    /// weights; the default), `xfeat` (XFeat + LighterGlue), `disk` (DISK +
    /// LightGlue), `aliked` (ALIKED + LightGlue), or `none` (cosine alone).
    #[arg(long, value_delimiter = ',', default_value = "sift")]
    pub local: Vec<LocalKind>,
    /// Shortlist sizes B: each query's B nearest database images by cosine
    /// (in its dataset) are re-ranked by the fusion; several
    /// comma-separated, each calibrated on the database's episodes and the
    /// best episode score kept (the smaller size of equals).
    #[arg(long, value_delimiter = ',', default_value = "50,100,200")]
    pub shortlist: Vec<usize>,
    /// Weight of each local matcher against cosine's 1 in the fusion.
    #[arg(long, default_value_t = 1.0)]
    pub local_weight: f32,
    /// Calibrate the fusion on only this many of each dataset's
    /// self-calibration episodes (default: all `--episodes`): the local
    /// matchers score every shortlisted pair of every episode, so this
    /// divides the calibration's cost.
    #[arg(long)]
    pub fusion_episodes: Option<usize>,
    /// How the calibrated sources become one score: `mean` (their weighted
    /// mean), `logistic` (a logistic regression on their logits, fitted on
    /// the database pairs that calibrate them) or `auto` (whichever scores
    /// better on the database's own episodes, per dataset).
    #[arg(long, default_value = "auto")]
    pub fusion_combine: String,
    /// How a query is decided from its fused shortlist: `top1` (the best
    /// photo's fused probability), a rule such as `knn:50:noisyor:3` (each
    /// individual scored by the noisy-or of its 3 best photos' fused
    /// probabilities), `margin:50:noisyor:3:0.5` (the same, less half the
    /// runner-up individual's), or `auto` (`top1`, `knn:B:noisyor:3`, and
    /// the margins of both over the runner-up at weights 0.5 and 1 —
    /// `margin:B:max:1:W`, `margin:B:noisyor:3:W` — whichever scores best on
    /// the database's own episodes, per dataset).
    #[arg(long, default_value = "auto")]
    pub fusion_rule: String,
    /// SIFT: longer image side for keypoint detection (images are downscaled).
    #[arg(long, default_value_t = 512)]
    pub local_max_side: u32,
    /// SIFT: keypoints kept per image (the strongest).
    #[arg(long, default_value_t = 1000)]
    pub local_keypoints: usize,
    /// SIFT: minimum DoG contrast of a keypoint (OpenCV's
    /// `contrastThreshold`), comma-separated. The first serves every
    /// shortlist size; each further one is tried at the size whose episode
    /// score on the database is best, and the best episode score of all is
    /// kept. Default 0.04 (OpenCV's), then 0.02: more keypoints on small,
    /// low-contrast photos (cattle's cow faces of about 100 × 190 pixels:
    /// 140 keypoints a photo at 0.04, 182 at 0.02).
    #[arg(long, value_delimiter = ',', default_values_t = [0.04f32, 0.02])]
    pub local_contrast: Vec<f32>,
    /// Learned matchers: longer image side the extractor sees.
    #[arg(long, default_value_t = 512)]
    pub glue_max_side: u32,
    /// Learned matchers: keypoints kept per image (the highest scores;
    /// wildlife-tools keeps 256).
    #[arg(long, default_value_t = 256)]
    pub glue_keypoints: usize,
    /// Learned matchers: a match counts when its confidence is above this.
    #[arg(long, default_value_t = 0.5)]
    pub glue_min_confidence: f32,
    /// Learned matchers: what the pair score counts.
    #[arg(long, value_enum, default_value = "matches")]
    pub glue_score: GlueScoreArg,
    /// Learned matchers: device (cpu, cuda, cuda:N or auto).
    #[arg(long, default_value = "cpu")]
    pub glue_device: String,
    /// Learned matchers: precision of LightGlue's linear layers, f32 or bf16
    /// (CUDA, or a CPU with AVX-512 BF16: DISK and ALIKED keep their matches
    /// at about 1.5x the speed; LighterGlue loses up to a tenth of them).
    #[arg(long, default_value = "f32")]
    pub glue_precision: String,
    /// Feature cache folder (default: `local-features` in the animal-reid
    /// cache, `$ANIMAL_REID_CACHE` or `~/.cache/animal-reid`).
    #[arg(long)]
    pub local_cache: Option<PathBuf>,
}

/// How one matcher scores pairs.
enum Matcher {
    Sift(FeatureStore),
    Learned {
        matcher: Box<LearnedMatcher>,
        features: Vec<reid_local::Features>,
        score: reid_glue::ValidScoreParams,
    },
}

/// The local features of every record for one matcher, with how they were
/// obtained.
pub struct SourceFeatures {
    /// Which matcher.
    pub kind: LocalKind,
    /// Seconds taken.
    pub seconds: f64,
    /// How many came from the cache.
    pub cached: usize,
    matcher: Matcher,
}

impl SourceFeatures {
    /// One feature set per record.
    pub fn features(&self) -> &[reid_local::Features] {
        match &self.matcher {
            Matcher::Sift(store) => store.features(),
            Matcher::Learned { features, .. } => features,
        }
    }

    /// One line: how many images, how long, how many from the cache
    /// folder `cache`, mean keypoints per image.
    pub fn summary(&self, cache: &Path) -> String {
        format!(
            "{} features of {} images in {:.1} s ({} from the cache {}), {:.0} keypoints per image",
            self.kind.name(),
            self.features().len(),
            self.seconds,
            self.cached,
            cache.display(),
            self.per_image()
        )
    }

    /// Mean keypoints per image.
    pub fn per_image(&self) -> f64 {
        let f = self.features();
        let kp: usize = f.iter().map(|f| f.len()).sum();
        kp as f64 / f.len().max(1) as f64
    }

    /// The pair scorer over these features (records against records).
    pub fn scorer(&self) -> Box<dyn PairScorer + '_> {
        match &self.matcher {
            Matcher::Sift(store) => Box::new(
                LocalScorer::new(store.params())
                    .named(self.kind.name())
                    .queries(store.features())
                    .gallery(store.features()),
            ),
            Matcher::Learned {
                matcher,
                features,
                score,
            } => Box::new(
                GlueScorer::new(matcher.as_ref(), features, features, score.clone())
                    .named(self.kind.name()),
            ),
        }
    }
}

/// Local features of every record for every asked matcher.
pub struct Keypoints {
    /// One entry per `--local` matcher, in order.
    pub sources: Vec<SourceFeatures>,
    /// The cache folder.
    pub cache: PathBuf,
}

impl Keypoints {
    /// Prints each source's summary and records its extraction time in
    /// `report` (`{prefix}local features (sift)`) when given.
    pub fn announce(&self, prefix: &str, report: Option<&mut Report>) {
        let mut report = report;
        for s in &self.sources {
            println!("{}", s.summary(&self.cache));
            if let Some(r) = report.as_deref_mut() {
                r.timing(
                    format!("{prefix}local features ({})", s.kind.name()),
                    s.seconds,
                );
            }
        }
    }

    /// The pair scorers, in the order of `--local`, each remembering the
    /// scores it gave: fusions through the same scorers (several shortlist
    /// sizes, a source alone and then with others) score a shared pair
    /// once.
    pub fn scorers(&self) -> Vec<MemoScorer<Box<dyn PairScorer + '_>>> {
        self.sources
            .iter()
            .map(|s| MemoScorer::new(s.scorer()))
            .collect()
    }
}

/// The scorers of [`Keypoints::scorers`] as the fusion takes them.
pub fn scorer_refs<S: PairScorer>(scorers: &[MemoScorer<S>]) -> Vec<&dyn PairScorer> {
    scorers.iter().map(|s| s as &dyn PairScorer).collect()
}

/// One line per scorer: the distinct pairs it scored and those answered
/// again from memory.
pub fn memo_summary<S: PairScorer>(scorers: &[MemoScorer<S>]) -> String {
    scorers
        .iter()
        .map(|s| {
            format!(
                "  {}: {} distinct pairs scored, {} more answered from memory",
                s.name(),
                s.computed(),
                s.reused()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One indented line: what a source's pairs cost in the calibration and
/// for the `queries` queries.
pub fn cost_summary(c: &SourceCost, queries: usize) -> String {
    format!(
        "  {}: {} database pairs in {:.1} s (calibration), {} query pairs in {:.1} s = {:.1} ms per query",
        c.name,
        c.database_pairs,
        c.database_seconds,
        c.query_pairs,
        c.query_seconds,
        1000.0 * c.query_seconds / queries.max(1) as f64
    )
}

fn cached(status: &[CacheStatus]) -> usize {
    status
        .iter()
        .filter(|s| matches!(s, CacheStatus::Hit))
        .count()
}

impl LocalArgs {
    /// The local matchers asked for (none for `--local none`).
    pub fn kinds(&self) -> Vec<LocalKind> {
        self.local
            .iter()
            .copied()
            .filter(|&k| k != LocalKind::None)
            .collect()
    }

    /// Whether any local matcher was asked for.
    pub fn enabled(&self) -> bool {
        !self.kinds().is_empty()
    }

    /// The fusion of each asked shortlist size, checked (cosine weight 1,
    /// each local matcher the local weight, isotonic calibration); none
    /// with `--local none` (which cannot be combined with a matcher).
    pub fn fusions(&self) -> anyhow::Result<Vec<ValidFusionParams>> {
        self.fusions_for(self.kinds().len())
    }

    /// [`LocalArgs::fusions`] for `sources` local matchers beside cosine
    /// (say one of the asked matchers alone), each with the local weight.
    pub fn fusions_for(&self, sources: usize) -> anyhow::Result<Vec<ValidFusionParams>> {
        if self.local.contains(&LocalKind::None) && self.local.len() > 1 {
            anyhow::bail!(
                "--local: `none` cannot be combined with a matcher, got {}",
                self.local
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        if !self.enabled() {
            return Ok(Vec::new());
        }
        if self.local_contrast.is_empty() {
            anyhow::bail!("--local-contrast: give at least one threshold");
        }
        if let Some(bad) = self
            .local_contrast
            .iter()
            .find(|c| !(c.is_finite() && **c >= 0.0))
        {
            anyhow::bail!("--local-contrast: must be finite and >= 0, got {bad}");
        }
        if !(self.local_weight.is_finite() && self.local_weight >= 0.0) {
            anyhow::bail!(
                "--local-weight: must be finite and >= 0, got {}",
                self.local_weight
            );
        }
        let combine: reid_openset::Combine = self
            .fusion_combine
            .parse()
            .map_err(|e| anyhow::anyhow!("--fusion-combine: {e}"))?;
        let mut weights = vec![1.0];
        weights.extend(std::iter::repeat_n(self.local_weight, sources));
        self.shortlist
            .iter()
            .map(|&b| {
                Ok(FusionParams::default()
                    .shortlist(b)
                    .weights(weights.clone())
                    .calibration_episodes(self.fusion_episodes)
                    .combine(combine)
                    .rules(self.fusion_rules(b)?)
                    .check()?)
            })
            .collect()
    }

    /// The decision rules `--fusion-rule` asks the fusion to try at
    /// shortlist size `b`.
    fn fusion_rules(&self, b: usize) -> anyhow::Result<Vec<Rule>> {
        if self.fusion_rule == "auto" {
            let mut rules = vec![
                Rule::Top1,
                Rule::Knn {
                    k: b,
                    per_identity: 3,
                    aggregate: Aggregate::NoisyOr,
                },
            ];
            for weight in [0.5, 1.0] {
                rules.push(Rule::Margin {
                    k: b,
                    per_identity: 1,
                    aggregate: Aggregate::Max,
                    weight,
                });
                rules.push(Rule::Margin {
                    k: b,
                    per_identity: 3,
                    aggregate: Aggregate::NoisyOr,
                    weight,
                });
            }
            return Ok(rules);
        }
        let rule: Rule = self
            .fusion_rule
            .parse()
            .map_err(|e| anyhow::anyhow!("--fusion-rule: {e}"))?;
        Ok(vec![rule])
    }

    /// `None` when `fusions` is empty (no `--local`: the answer is `cosine`
    /// itself), else the fusion of cosine with every `--local` matcher under
    /// each of `fusions` (from [`LocalArgs::fusions`]) and, at the best of
    /// them, with SIFT at each further `--local-contrast`, keeping the
    /// one whose episode score on the database is highest (the smaller
    /// shortlist, the first contrast, of equals). Prints what each cost and scored, and records
    /// the stages' times in `report` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn refine(
        &self,
        fusions: &[ValidFusionParams],
        cosine: &Identification,
        records: &[Record],
        embeddings: ArrayView2<'_, f32>,
        params: &ValidOpenSetParams,
        quiet: bool,
        mut report: Option<&mut Report>,
    ) -> anyhow::Result<Option<Identification>> {
        if fusions.is_empty() {
            return Ok(None);
        }
        let kp = self.keypoints(records, quiet)?;
        kp.announce("", report.as_deref_mut());
        let scorers = kp.scorers();
        let refs = scorer_refs(&scorers);
        let mut all = Vec::with_capacity(fusions.len());
        for fusion in fusions {
            let t = Instant::now();
            let fused = fuse(cosine, records, embeddings, params, &refs, fusion)?;
            let fr = fused
                .fusion
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("the fused identification has no fusion report"))?;
            println!(
                "fused with cosine at shortlist B = {} in {:.1} s: episode score {:.3} on the database",
                fusion.shortlist(),
                t.elapsed().as_secs_f64(),
                fr.episode_score()
            );
            println!("  sources combined by: {}", fr.combine_summary());
            for c in &fr.sources {
                println!("{}", cost_summary(c, fused.queries.len()));
            }
            if let Some(r) = report.as_deref_mut() {
                let name = format!("fusion B = {}", fusion.shortlist());
                crate::record_fusion(r, &name, &fused.seconds);
            }
            all.push(fused);
        }
        if fusions.len() > 1 {
            println!(
                "local pairs over all shortlist sizes:\n{}",
                memo_summary(&scorers)
            );
        }
        let mut labelled: Vec<(String, Identification)> = fusions
            .iter()
            .zip(all)
            .map(|(f, i)| (format!("shortlist B = {}", f.shortlist()), i))
            .collect();
        if let Some(at) = self.contrast_stage_at(fusions, &labelled) {
            for c in self.further_contrasts() {
                let t = Instant::now();
                let (kp, fused) =
                    self.fuse_at_contrast(c, at, cosine, records, embeddings, params, quiet)?;
                kp.announce(&format!("SIFT contrast {c}: "), report.as_deref_mut());
                let label = format!("shortlist B = {}, SIFT contrast {c}", at.shortlist());
                println!(
                    "fused with cosine at {label} in {:.1} s: episode score {:.3} on the database",
                    t.elapsed().as_secs_f64(),
                    episode_score(&fused)
                );
                if let Some(fr) = &fused.fusion {
                    println!("  sources combined by: {}", fr.combine_summary());
                }
                if let Some(r) = report.as_deref_mut() {
                    let name = format!("fusion B = {}, SIFT contrast {c}", at.shortlist());
                    crate::record_fusion(r, &name, &fused.seconds);
                }
                labelled.push((label, fused));
            }
        }
        Ok(keep_best_fusion(labelled))
    }

    /// The SIFT contrast thresholds tried after the first
    /// (`--local-contrast`); none when SIFT is not among the matchers.
    pub fn further_contrasts(&self) -> Vec<f32> {
        if self.kinds().contains(&LocalKind::Sift) {
            self.local_contrast.iter().skip(1).copied().collect()
        } else {
            Vec::new()
        }
    }

    /// The fusion settings the further contrasts are tried at: those of the
    /// best episode score among `fused` (one per `fusions`, in order; the
    /// earlier of equals); `None` when there is no further contrast.
    pub fn contrast_stage_at<'f>(
        &self,
        fusions: &'f [ValidFusionParams],
        fused: &[(String, Identification)],
    ) -> Option<&'f ValidFusionParams> {
        if self.further_contrasts().is_empty() {
            return None;
        }
        let scores: Vec<f64> = fused.iter().map(|(_, i)| episode_score(i)).collect();
        fusions.get(best_index(&scores)?)
    }

    /// The fusion `fusion` of cosine with every `--local` matcher, SIFT's
    /// keypoints detected at contrast threshold `contrast`; with the
    /// keypoints (for their summary, which it does not print).
    #[allow(clippy::too_many_arguments)]
    pub fn fuse_at_contrast(
        &self,
        contrast: f32,
        fusion: &ValidFusionParams,
        cosine: &Identification,
        records: &[Record],
        embeddings: ArrayView2<'_, f32>,
        params: &ValidOpenSetParams,
        quiet: bool,
    ) -> anyhow::Result<(Keypoints, Identification)> {
        let kp = self.keypoints_at(records, quiet, contrast)?;
        let fused = {
            let scorers = kp.scorers();
            let refs = scorer_refs(&scorers);
            fuse(cosine, records, embeddings, params, &refs, fusion)?
        };
        Ok((kp, fused))
    }

    /// The feature cache folder.
    pub fn cache_dir(&self) -> PathBuf {
        self.local_cache
            .clone()
            .unwrap_or_else(|| reid_backbone::weights::cache_dir().join("local-features"))
    }

    /// Extracts (or reads back from the cache) the local features of every
    /// record's image for each asked matcher, with progress bars hidden
    /// when `quiet`; SIFT at the first `--local-contrast`.
    pub fn keypoints(&self, records: &[Record], quiet: bool) -> anyhow::Result<Keypoints> {
        let contrast = self.local_contrast.first().copied().unwrap_or(0.04);
        self.keypoints_at(records, quiet, contrast)
    }

    /// [`LocalArgs::keypoints`] with SIFT at contrast threshold `contrast`.
    pub fn keypoints_at(
        &self,
        records: &[Record],
        quiet: bool,
        contrast: f32,
    ) -> anyhow::Result<Keypoints> {
        let dir = self.cache_dir();
        let cache = FeatureCache::new(&dir)?;
        let paths: Vec<&Path> = records.iter().map(|r| r.path.as_path()).collect();
        let mut sources = Vec::new();
        for kind in self.kinds() {
            let t = Instant::now();
            let pb = bar(paths.len(), &format!("{} keypoints", kind.name()), quiet);
            let source = match kind.learned() {
                None => {
                    let params = LocalParams::default()
                        .extract(
                            ExtractParams::default()
                                .max_side(self.local_max_side)
                                .max_keypoints(self.local_keypoints)
                                .contrast_threshold(contrast),
                        )
                        .check()?;
                    let store =
                        FeatureStore::extract_with(&paths, &params, Some(&cache), |_, _| {
                            pb.inc(1)
                        })?;
                    SourceFeatures {
                        kind,
                        seconds: 0.0,
                        cached: cached(store.cache_status()),
                        matcher: Matcher::Sift(store),
                    }
                }
                Some(learned) => {
                    let params = LearnedParams::default()
                        .max_keypoints(self.glue_keypoints)
                        .precision(Precision::parse(&self.glue_precision)?)
                        .check()?;
                    let matcher =
                        LearnedMatcher::load(learned, &params, parse_device(&self.glue_device)?)?;
                    let store_params = StoreParams::default()
                        .max_side(self.glue_max_side)
                        .check()?;
                    let store = GlueStore::extract(
                        &paths,
                        matcher.extractor(),
                        &store_params,
                        Some(&cache),
                        |_, _| pb.inc(1),
                    )?;
                    let score = ScoreParams::default()
                        .min_confidence(self.glue_min_confidence)
                        .score(match self.glue_score {
                            GlueScoreArg::Matches => PairScore::Matches,
                            GlueScoreArg::Inliers => PairScore::Inliers,
                        })
                        .check()?;
                    SourceFeatures {
                        kind,
                        seconds: 0.0,
                        cached: cached(store.cache_status()),
                        matcher: Matcher::Learned {
                            matcher: Box::new(matcher),
                            features: store.features().to_vec(),
                            score,
                        },
                    }
                }
            };
            pb.finish_and_clear();
            sources.push(SourceFeatures {
                seconds: t.elapsed().as_secs_f64(),
                ..source
            });
        }
        Ok(Keypoints {
            sources,
            cache: dir,
        })
    }
}

/// A fused identification's episode score on the database (`-inf` for
/// one without a fusion report).
fn episode_score(i: &Identification) -> f64 {
    i.fusion
        .as_ref()
        .map_or(f64::NEG_INFINITY, |r| r.episode_score())
}

/// Of fusions (shortlist sizes, SIFT contrasts), each with a label, the one
/// whose episode score on the database is highest (the earlier of equals);
/// says which when there was a choice.
pub fn keep_best_fusion(mut fused: Vec<(String, Identification)>) -> Option<Identification> {
    let scores: Vec<f64> = fused.iter().map(|(_, i)| episode_score(i)).collect();
    let best = best_index(&scores)?;
    let (label, kept) = fused.swap_remove(best);
    if scores.len() > 1 {
        println!(
            "kept {label} (the best episode score on the database, {:.3})",
            scores[best]
        );
    }
    Some(kept)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser;

    use super::{LocalArgs, LocalKind};

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        local: LocalArgs,
    }

    fn parse(args: &[&str]) -> LocalArgs {
        Args::parse_from(std::iter::once("prog").chain(args.iter().copied())).local
    }

    #[test]
    fn sift_at_three_shortlists_by_default_and_none_turns_it_off() {
        let a = parse(&[]);
        assert_eq!(a.kinds(), vec![LocalKind::Sift]);
        let sizes: Vec<usize> = a.fusions().unwrap().iter().map(|f| f.shortlist()).collect();
        assert_eq!(sizes, [50, 100, 200]);
        let off = parse(&["--local", "none"]);
        assert!(!off.enabled());
        assert!(off.fusions().unwrap().is_empty());
        let two = parse(&["--local", "sift,xfeat", "--shortlist", "10,20"]);
        assert_eq!(two.kinds(), vec![LocalKind::Sift, LocalKind::Xfeat]);
        assert_eq!(two.fusions().unwrap().len(), 2);
    }

    #[test]
    fn a_second_sift_contrast_by_default_and_only_with_sift() {
        let a = parse(&[]);
        assert_eq!(a.local_contrast, [0.04, 0.02]);
        assert_eq!(a.further_contrasts(), [0.02]);
        assert!(parse(&["--local", "xfeat"]).further_contrasts().is_empty());
        let one = parse(&["--local-contrast", "0.03"]);
        assert!(one.further_contrasts().is_empty());
        assert_eq!(
            parse(&["--local-contrast", "0.04,0.02,0.01"]).further_contrasts(),
            [0.02, 0.01]
        );
        for bad in ["--local-contrast=-1", "--local-contrast=NaN"] {
            let e = parse(&[bad]).fusions().unwrap_err();
            assert!(e.to_string().starts_with("--local-contrast: "), "{e}");
        }
    }

    #[test]
    fn none_with_a_matcher_is_an_error() {
        let e = parse(&["--local", "none,sift"]).fusions().unwrap_err();
        assert!(e.to_string().contains("`none` cannot be combined"), "{e}");
    }

    #[test]
    fn best_index_keeps_the_earliest_of_equals() {
        assert_eq!(super::best_index(&[0.7, 0.9, 0.9, 0.8]), Some(1));
        assert_eq!(super::best_index(&[0.5]), Some(0));
        assert_eq!(super::best_index(&[]), None);
    }

    /// Bad numbers are refused naming the flag the user typed, before work.
    #[test]
    fn bad_numbers_name_their_flag() {
        for w in [
            "--local-weight=NaN",
            "--local-weight=-1",
            "--local-weight=inf",
        ] {
            let e = parse(&[w]).fusions().unwrap_err();
            assert!(e.to_string().starts_with("--local-weight: "), "{e}");
        }
        let e = parse(&["--shortlist", "0"]).fusions().unwrap_err();
        assert!(e.to_string().contains("shortlist"), "{e}");
    }
}
