//! The self-calibration options.

use std::path::Path;
use std::time::Instant;

use crate::backbone::{BackboneArgs, Embedded};
use reid_backbone::pipeline::{Embeddings, concat_embeddings};
use reid_backbone::tiny::{TinyParams, tiny_embeddings};
use reid_core::{ParamGuard, Record};
use reid_data::DecodeOptions;
use reid_openset::{
    AdaptParams, Adaptation, Encounters, KReciprocalParams, OpensetError, SelfCalibrationParams,
};
use reid_pipeline::{
    DEFAULT_DBA, DEFAULT_QE, FeatureChoice, FeatureSet, ValidOpenSetParams, choose_features,
    default_adapt_candidates, default_rerank_candidates, neighbourhood_candidates,
};

/// The self-calibration options of the examples that decide known / new.
#[derive(Debug, Clone, clap::Args)]
pub struct EpisodeArgs {
    /// Self-calibration episodes (per dataset).
    #[arg(long, default_value_t = 20)]
    pub episodes: usize,
    /// Fraction of database identities held out as pseudo-new per episode.
    #[arg(long, default_value_t = 0.3)]
    pub new_fraction: f64,
    /// Fraction of the remaining images used as pseudo-queries per episode.
    #[arg(long, default_value_t = 0.3)]
    pub query_fraction: f64,
    /// Seed of the episodes.
    #[arg(long, default_value_t = 2025)]
    pub seed: u64,
    /// What groups database photos into encounters, so that episodes hold
    /// out whole encounters as known pseudo-queries, as real queries from
    /// encounters the database lacks would be: `none` (single photos, the
    /// default), `auto` (a `video` or `encounter` column when every
    /// database photo has one, else single photos), `date`, or a column
    /// name. Their episode scores then estimate such queries' score.
    #[arg(long, default_value = "none", value_parser = encounters_arg)]
    pub encounters: String,
}

/// `--encounters`: a name [`Encounters`] parses, or `none`.
fn encounters_arg(s: &str) -> Result<String, String> {
    s.parse::<Encounters>()
        .map(|_| s.trim().to_string())
        .map_err(|e| e.to_string())
}

impl EpisodeArgs {
    /// The episode parameters, over the thresholds -0.2..=1.0 in 240 steps
    /// (the grid every example searches); checked by the pipeline.
    pub fn params(&self) -> SelfCalibrationParams {
        SelfCalibrationParams::default()
            .new_fraction(self.new_fraction)
            .query_fraction(self.query_fraction)
            .episodes(self.episodes)
            .seed(self.seed)
            .grid_steps(-0.2..=1.0, 240)
            .encounters(self.encounters())
    }

    /// `--encounters`: `None` for `none`.
    pub fn encounters(&self) -> Option<Encounters> {
        match self.encounters.trim() {
            "none" => None,
            s => s.parse().ok(),
        }
    }

    /// One line on what the episodes hold out for `records`' database.
    pub fn encounters_summary(&self, records: &[Record]) -> String {
        let db: Vec<Record> = records
            .iter()
            .filter(|r| r.split == Some(reid_core::SplitRole::Database))
            .cloned()
            .collect();
        match self.encounters().and_then(|e| e.resolve(&db)) {
            Some(e) => format!("episodes hold out whole encounters (by `{e}`)"),
            None => "episodes hold out single photos".to_string(),
        }
    }
}

/// What is searched: the embeddings, with or without tiny-image
/// descriptors appended (`--tiny`), and their projection fitted on each
/// dataset's database (`--adapt`, `--shrinkage`, `--adapt-dim`, `--dba`,
/// `--qe`).
#[derive(Debug, Clone, clap::Args)]
pub struct AdaptArgs {
    /// Tiny-image descriptors (16 × 16 grey thumbnails,
    /// `reid_backbone::tiny`) appended to the backbone's embedding: `auto`
    /// (with and without, whichever scores best on the database's own
    /// episodes, with its best projection), `on` or `off`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "on", "off"])]
    pub tiny: String,
    /// Grid descriptors (the backbone's feature map at its last stride-16
    /// block, averaged over a 4 × 4 grid: `--pooling grid:4@TAP`) searched
    /// instead of the backbone's global embedding: `auto` (both tried, each
    /// with and without the thumbnails of `--tiny`, whichever scores best on
    /// the database's own episodes), `on` or `off`. Backbones without such
    /// a block (transformers, ensembles) keep their embedding.
    #[arg(long, default_value = "auto", value_parser = ["auto", "on", "off"])]
    pub grid: String,
    /// Fine-tune the last blocks up to the grid's tap on the database
    /// (`reid_examples::tune`: a share of it held out, by encounter, so
    /// the episodes still score photos the network never saw) and offer
    /// its grid descriptors as one more set: `off` (the default), `auto`
    /// (when the database has a `video` or `encounter` column and half its
    /// identities appear in two or more) or `on`. With it, every set is
    /// scored on the same held-out episodes. Not the default: on cattle
    /// those episodes hold 4 pseudo-new identities each and their
    /// thresholds spread ±0.045 (±0.028 on the whole database), and the
    /// closed-set training draws new animals toward learned ones (README,
    /// "Fine-tuning on the database").
    #[arg(long, default_value = "off", value_parser = ["auto", "on", "off"])]
    pub tune: String,
    /// Projection of the embeddings fitted on each dataset's database (and
    /// refitted on every self-calibration episode's pseudo-gallery): `auto`
    /// (the best of none, `whiten` and `lda` at shrinkage 0.1, 0.5, 0.9 by
    /// the database's own episode score, then `--dba` / `--qe` tried on
    /// it), `none`, `center`, `pca` (PCA whitening), `whiten`
    /// (within-identity whitening) or `lda`.
    #[arg(long, default_value = "auto")]
    pub adapt: String,
    /// Shrinkage of the projection's scatter matrices, in [0, 1] (not with
    /// `auto`, which tries several).
    #[arg(long, default_value_t = 0.5)]
    pub shrinkage: f64,
    /// Dimensions the projection keeps (default: all it gives).
    #[arg(long)]
    pub adapt_dim: Option<usize>,
    /// After the projection, merge each database photo with its K nearest
    /// photos of the same individual (database-side augmentation; 0: none).
    /// Default: with `--adapt auto`, chosen on the database's episodes
    /// among 0, 5 and 20 (on the chosen projection); otherwise 0.
    #[arg(long)]
    pub dba: Option<usize>,
    /// After the projection, merge each query with its K nearest database
    /// photos (α-query expansion; 0: none). Default: with `--adapt auto`,
    /// chosen on the database's episodes among 0 and 2 (on the chosen
    /// projection); otherwise 0.
    #[arg(long)]
    pub qe: Option<usize>,
    /// Exponent α of the neighbour weights max(cos, 0)^α of `--dba` and
    /// `--qe`.
    #[arg(long, default_value_t = 1.0)]
    pub expand_alpha: f32,
    /// After the other steps, k-reciprocal re-ranking of every search
    /// against the database's own neighbourhoods: `auto` (with `--adapt
    /// auto`, chosen on the database's episodes among none, k1 20 / k2 6
    /// and k1 10 / k2 3 at λ 0.3, on the chosen projection; otherwise
    /// none), `off`, or `K1,K2,LAMBDA` (say `20,6,0.3`: with `--adapt auto`
    /// the only one tried, otherwise always applied).
    #[arg(long, default_value = "auto")]
    pub rerank: String,
}

impl AdaptArgs {
    /// `--adapt auto`: the projection is chosen from the database's episodes.
    pub fn auto(&self) -> bool {
        self.adapt == "auto"
    }

    /// The projection asked for (`None` for `--adapt none`, and for `auto`
    /// until [`AdaptArgs::resolve`] chooses it), checked.
    pub fn params(&self) -> Result<Option<AdaptParams>, OpensetError> {
        // With `auto` the candidates are valid; `--shrinkage` and
        // `--adapt-dim` are still checked, on LDA.
        let method = match self.adapt.as_str() {
            "none" => return Ok(None),
            "auto" => Adaptation::Lda,
            name => name.parse::<Adaptation>()?,
        };
        let p = self.neighbourhood(
            AdaptParams::new(method)
                .shrinkage(self.shrinkage)
                .dim(self.adapt_dim),
        )?;
        p.check_ref()?;
        Ok((!self.auto()).then_some(p))
    }

    /// `p` with `--dba`, `--qe` (0 where not given), `--expand-alpha` and
    /// a `--rerank K1,K2,LAMBDA` (none for `auto` and `off`).
    fn neighbourhood(&self, p: AdaptParams) -> Result<AdaptParams, OpensetError> {
        Ok(p.dba(self.dba.unwrap_or(0))
            .qe(self.qe.unwrap_or(0))
            .alpha(self.expand_alpha)
            .rerank(self.rerank_given()?))
    }

    /// The re-ranking `--rerank K1,K2,LAMBDA` gives (checked); `None` for
    /// `auto` and `off`.
    fn rerank_given(&self) -> Result<Option<KReciprocalParams>, OpensetError> {
        if ["auto", "off"].contains(&self.rerank.as_str()) {
            return Ok(None);
        }
        let bad = |why: String| OpensetError::InvalidParam {
            name: "--rerank",
            reason: format!("`{}`: {why}; use auto, off or K1,K2,LAMBDA", self.rerank),
        };
        let parts: Vec<&str> = self.rerank.split(',').map(str::trim).collect();
        let [k1, k2, lambda] = parts[..] else {
            return Err(bad(format!("{} values", parts.len())));
        };
        let p = KReciprocalParams::default()
            .k1(k1.parse().map_err(|e| bad(format!("k1 {k1}: {e}")))?)
            .k2(k2.parse().map_err(|e| bad(format!("k2 {k2}: {e}")))?)
            .lambda(
                lambda
                    .parse()
                    .map_err(|e| bad(format!("lambda {lambda}: {e}")))?,
            );
        p.check_ref()?;
        Ok(Some(p))
    }

    /// The re-rankings `--adapt auto` tries last, on the chosen settings:
    /// [`default_rerank_candidates`] for `--rerank auto`, the one given, or
    /// none for `off`.
    fn rerank_candidates(&self) -> Result<Vec<KReciprocalParams>, OpensetError> {
        Ok(match (self.rerank.as_str(), self.rerank_given()?) {
            ("off", _) => Vec::new(),
            (_, Some(p)) => vec![p],
            _ => default_rerank_candidates(),
        })
    }

    /// The neighbourhood steps `--adapt auto` tries after choosing the
    /// projection: [`DEFAULT_DBA`] × [`DEFAULT_QE`], with `--dba` / `--qe`
    /// fixed where given, at `--expand-alpha`.
    fn neighbourhood_candidates(&self, p: AdaptParams) -> Vec<AdaptParams> {
        let dbas = self.dba.map_or(DEFAULT_DBA.to_vec(), |k| vec![k]);
        let qes = self.qe.map_or(DEFAULT_QE.to_vec(), |k| vec![k]);
        neighbourhood_candidates(p, &dbas, &qes, self.expand_alpha)
    }
}

/// What [`AdaptArgs::resolve`] settled: the rows to search, what they are,
/// the open-set parameters with the chosen projection, and the trials that
/// chose them (none when nothing was chosen).
pub struct Resolved {
    /// One L2-normalised row per record: the backbone's embedding or its
    /// grid descriptor, alone or with the tiny-image descriptor appended
    /// ([`reid_backbone::pipeline::concat_embeddings`]).
    pub embeddings: Embeddings,
    /// `mobilenet_v2`, `mobilenet_v2+tiny16`,
    /// `mobilenet_v2:grid4@features.13`, …
    pub features: String,
    /// The parameters with the chosen projection.
    pub params: ValidOpenSetParams,
    /// Every trial (`--tiny auto` or `--adapt auto`), else `None`.
    pub choice: Option<FeatureChoice>,
}

impl AdaptArgs {
    /// [`AdaptArgs::resolve`] on the embeddings `--grid` asks to try
    /// ([`feature_bases`]): `run`'s own and/or the grid descriptors of its
    /// backbone (computed with `model`'s options, cached in `cache`), and
    /// with `--tune` those of its fine-tuned blocks
    /// ([`crate::tune::tuned_base`]; the episodes then score held-out
    /// photos only). `run`'s embeddings move into the result, uncopied.
    pub fn resolve_run(
        &self,
        model: &BackboneArgs,
        run: Embedded,
        records: &[Record],
        cache: Option<&Path>,
        quiet: bool,
        params: ValidOpenSetParams,
    ) -> anyhow::Result<Resolved> {
        let tuned =
            crate::tune::tuned_base(&self.tune, &self.grid, model, &run, records, cache, quiet)?;
        let mut bases = feature_bases(&self.grid, model, run, records, cache, quiet)?;
        let params = match tuned {
            Some(t) => t.offer(&mut bases, &params)?,
            None => params,
        };
        self.resolve(records, bases, params)
    }

    /// Settles what is searched and how it is projected: `bases` (named
    /// embeddings, [`feature_bases`]), each alone (`--tiny off`), with
    /// the tiny-image descriptors of `records` appended (`on`; computed once,
    /// in parallel, no cache: a thumbnail costs a decode) or both (`auto`).
    /// With `--adapt auto` the projection is chosen among
    /// [`default_adapt_candidates`] (with `--adapt-dim`), then the
    /// neighbourhood steps on it; otherwise the one asked for is kept, and
    /// with several sets only the features are chosen. Prints the choice
    /// and each trial's episode score.
    pub fn resolve(
        &self,
        records: &[Record],
        bases: Vec<(String, Embeddings)>,
        params: ValidOpenSetParams,
    ) -> anyhow::Result<Resolved> {
        let mut sets = feature_sets(&self.tiny, records, bases)?;
        let (params, choice) = self.choose(records, &feature_views(&sets), params)?;
        let (features, embeddings) = sets.swap_remove(choice.as_ref().map_or(0, |c| c.chosen));
        Ok(Resolved {
            embeddings,
            features,
            params,
            choice,
        })
    }

    /// The choice [`AdaptArgs::resolve`] makes among `sets` (the first when
    /// there is nothing to choose: one set and no `--adapt auto`), and
    /// `params` with the chosen projection.
    pub fn choose(
        &self,
        records: &[Record],
        sets: &[FeatureSet<'_>],
        params: ValidOpenSetParams,
    ) -> anyhow::Result<(ValidOpenSetParams, Option<FeatureChoice>)> {
        if !self.auto() && sets.len() == 1 {
            return Ok((params, None));
        }
        let t = Instant::now();
        let candidates: Vec<Option<AdaptParams>> = if self.auto() {
            default_adapt_candidates()
                .into_iter()
                .map(|c| c.map(|c| c.dim(self.adapt_dim)))
                .collect()
        } else {
            vec![params.adapt().map(|a| a.into_params())]
        };
        let rerank = if self.auto() {
            self.rerank_candidates()?
        } else {
            Vec::new()
        };
        let choice = choose_features(
            records,
            sets,
            &params,
            &candidates,
            |p| {
                if self.auto() {
                    self.neighbourhood_candidates(p)
                } else {
                    Vec::new()
                }
            },
            &rerank,
        )?;
        println!("{}", choice_summary(&choice, t.elapsed().as_secs_f64()));
        let params = choice.adapt_choice().params(&params)?;
        Ok((params, Some(choice)))
    }
}

/// The embeddings `--grid` (`grid`: `auto`, `on` or `off`) asks to try,
/// each with its name: `off`, `run`'s own; `on`, the grid descriptors of its
/// backbone ([`BackboneArgs::grid_embeddings`], computed with `model`'s
/// options and `cache`); `auto`, both. A backbone without a stride-16 block
/// (or an ensemble) gives its own alone, except with `on`: an error. `run`'s
/// embeddings move into the result.
pub fn feature_bases(
    grid: &str,
    model: &BackboneArgs,
    run: Embedded,
    records: &[Record],
    cache: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<Vec<(String, Embeddings)>> {
    if !["auto", "on", "off"].contains(&grid) {
        anyhow::bail!("--grid {grid}: use auto, on or off");
    }
    let name = run.name();
    let found = match (grid, run.backbones.as_slice()) {
        ("off", _) => None,
        (_, [one]) => model.grid_embeddings(one, records, cache, quiet)?,
        _ => None,
    };
    match (grid, found) {
        ("on", Some(g)) => Ok(vec![g]),
        ("on", None) => anyhow::bail!(
            "--grid on: {name} has no block at stride 16 to pool (the CNNs have; \
             transformers, TorchScript models and ensembles have none)"
        ),
        ("auto", Some(g)) => Ok(vec![(name, run.embeddings), g]),
        _ => Ok(vec![(name, run.embeddings)]),
    }
}

/// The sets of embeddings `--tiny` asks to try for each of `bases` (named
/// embeddings of `records`), simplest first: `off`, each base; `on`, it
/// with the tiny-image descriptors of `records` appended (`name+tiny16`);
/// `auto`, both, base by base. The descriptors are computed once, in
/// parallel, without a cache (a thumbnail costs a decode), and the time
/// printed.
pub fn feature_sets(
    tiny: &str,
    records: &[Record],
    bases: Vec<(String, Embeddings)>,
) -> anyhow::Result<Vec<(String, Embeddings)>> {
    if !["auto", "on", "off"].contains(&tiny) {
        anyhow::bail!("--tiny {tiny}: use auto, on or off");
    }
    let thumbs = if tiny == "off" {
        None
    } else {
        let t = Instant::now();
        let tp = TinyParams::default().check()?;
        let thumbs = tiny_embeddings(records, &tp, &DecodeOptions::default())?;
        println!(
            "tiny-image descriptors ({0} × {0}) of {1} images in {2:.1} s",
            tp.side(),
            records.len(),
            t.elapsed().as_secs_f64()
        );
        Some((tp.name(), thumbs))
    };
    let mut sets: Vec<(String, Embeddings)> = Vec::new();
    for (name, embeddings) in bases {
        if let Some((tiny_name, thumbs)) = &thumbs {
            let both = concat_embeddings(&[embeddings.clone(), thumbs.clone()])?;
            if tiny == "auto" {
                sets.push((name.clone(), embeddings));
            }
            sets.push((format!("{name}+{tiny_name}"), both));
        } else {
            sets.push((name, embeddings));
        }
    }
    Ok(sets)
}

/// Views of `sets` (as [`feature_sets`] gives them) for
/// [`reid_pipeline::choose_features`].
pub fn feature_views(sets: &[(String, Embeddings)]) -> Vec<FeatureSet<'_>> {
    sets.iter()
        .map(|(n, e)| FeatureSet {
            name: n.clone(),
            embeddings: e.matrix.view(),
        })
        .collect()
}

/// Two lines on the choice: the features and projection chosen and how
/// long it took, then each trial's mean episode score on the database.
pub fn choice_summary(choice: &FeatureChoice, seconds: f64) -> String {
    let trials: Vec<String> = choice
        .trials()
        .iter()
        .map(|(n, s)| format!("{n} {s:.3}"))
        .collect();
    let projection = choice
        .adapt_choice()
        .best()
        .map_or_else(|| "none".into(), |t| t.name());
    format!(
        "features and projection chosen on the database's episodes: {}, {projection} ({} candidates in {seconds:.1} s)\n  episode score: {}",
        choice.name(),
        trials.len(),
        trials.join(", ")
    )
}

/// One line on the projection: its settings, and per dataset the rows and
/// identities it was fitted on, its dimension and fit time.
pub fn adapt_summary(a: &reid_pipeline::Adapted) -> String {
    let groups: Vec<String> = a
        .groups
        .iter()
        .map(|(name, g)| {
            format!(
                "{name}: {} rows, {} identities -> {} dims in {:.2} s",
                g.rows, g.identities, g.dim, g.seconds
            )
        })
        .collect();
    format!(
        "projection {} fitted per dataset ({})",
        a.params,
        groups.join("; ")
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser;

    use reid_core::ParamGuard;

    use super::AdaptArgs;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        adapt: AdaptArgs,
    }

    fn parse(args: &[&str]) -> AdaptArgs {
        Args::parse_from(std::iter::once("prog").chain(args.iter().copied())).adapt
    }

    #[test]
    fn auto_by_default_and_checked_flags() {
        let a = parse(&[]);
        assert!(a.auto());
        assert_eq!(a.params().unwrap(), None);
        assert_eq!(parse(&["--adapt", "none"]).params().unwrap(), None);
        let lda = parse(&["--adapt", "lda", "--shrinkage", "0.2"])
            .params()
            .unwrap();
        assert_eq!(
            lda.unwrap().check().unwrap().to_string(),
            "lda(shrinkage 0.2)"
        );
        let e = parse(&["--adapt", "auto", "--shrinkage", "2"])
            .params()
            .unwrap_err();
        assert!(e.to_string().contains("shrinkage"), "{e}");
        let e = parse(&["--adapt", "whitening"]).params().unwrap_err();
        assert!(e.to_string().contains("whitening"), "{e}");
        let p = parse(&["--adapt", "whiten", "--shrinkage", "0.1", "--dba", "3"])
            .params()
            .unwrap();
        assert_eq!(
            p.unwrap().check().unwrap().to_string(),
            "whiten(shrinkage 0.1) + dba 3 (alpha 1)"
        );
        let e = parse(&["--adapt", "lda", "--expand-alpha=-1"])
            .params()
            .unwrap_err();
        assert!(e.to_string().contains("alpha"), "{e}");
    }

    /// `--tiny`: `auto` by default, checked by the parser; the sets it asks
    /// for, the backbone's alone first.
    #[test]
    fn tiny_flag_and_feature_sets() {
        use reid_backbone::pipeline::Embeddings;
        use reid_core::Record;
        assert_eq!(parse(&[]).tiny, "auto");
        assert_eq!(parse(&["--tiny", "off"]).tiny, "off");
        let bad = Args::try_parse_from(["prog", "--tiny", "yes"]);
        assert!(bad.is_err());

        let dir = tempfile::tempdir().unwrap();
        let mut records = Vec::new();
        for (i, light_left) in [true, false].into_iter().enumerate() {
            let path = dir.path().join(format!("{i}.png"));
            image::RgbImage::from_fn(32, 32, |x, _| {
                image::Rgb([if (x < 16) == light_left { 220 } else { 30 }; 3])
            })
            .save(&path)
            .unwrap();
            records.push(Record::new(i.to_string(), path));
        }
        let emb = Embeddings {
            ids: vec!["0".into(), "1".into()],
            matrix: ndarray::array![[1.0f32, 0.0], [1.0, 0.0]],
        };
        let base = |e: &Embeddings| vec![("net".to_owned(), e.clone())];
        let sets = super::feature_sets("auto", &records, base(&emb)).unwrap();
        let names: Vec<&str> = sets.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["net", "net+tiny16"]);
        assert_eq!(sets[0].1, emb);
        let both = &sets[1].1.matrix;
        assert_eq!(both.ncols(), 2 + 256);
        // The backbone's cosine is 1, the thumbnails' -1: the mean is 0.
        let cos = both.row(0).dot(&both.row(1));
        assert!(cos.abs() < 1e-5, "{cos}");
        assert!((both.row(0).dot(&both.row(0)) - 1.0).abs() < 1e-5);
        let off = super::feature_sets("off", &records, base(&emb)).unwrap();
        assert_eq!(off.len(), 1);
        let on = super::feature_sets("on", &records, base(&emb)).unwrap();
        assert_eq!(on[0].0, "net+tiny16");
        // Several bases: each alone, then with the thumbnails, base by base.
        let grid = Embeddings {
            ids: emb.ids.clone(),
            matrix: ndarray::array![[0.0f32, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let two = vec![("net".to_owned(), emb.clone()), ("grid".to_owned(), grid)];
        let sets = super::feature_sets("auto", &records, two).unwrap();
        let names: Vec<&str> = sets.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["net", "net+tiny16", "grid", "grid+tiny16"]);
        assert_eq!(sets[3].1.matrix.ncols(), 3 + 256);
        // Orthogonal grid rows, opposite thumbnails: the mean cosine is -1/2.
        let g = &sets[3].1.matrix;
        assert!((g.row(0).dot(&g.row(1)) + 0.5).abs() < 1e-5);
        let missing = [Record::new("x", dir.path().join("gone.jpg"))];
        let one = Embeddings {
            ids: vec!["x".into()],
            matrix: ndarray::array![[1.0f32, 0.0]],
        };
        let e = super::feature_sets("on", &missing, base(&one)).unwrap_err();
        assert!(format!("{e:#}").contains("gone.jpg"), "{e:#}");
    }

    /// `--grid`: `auto` by default; with MobileNetV2 (real weights) the
    /// grid descriptors of its `features.13` are 96 · 16 wide and named so,
    /// `auto` keeps the backbone's own first, `off` only it; an ensemble
    /// has no grid, which `on` says.
    #[test]
    fn grid_flag_and_bases() {
        use crate::backbone::{BackboneArgs, Embedded};
        use reid_backbone::pipeline::Embeddings;
        use reid_core::Record;
        assert_eq!(parse(&[]).grid, "auto");
        assert_eq!(parse(&[]).tune, "off");
        assert!(Args::try_parse_from(["prog", "--tune", "maybe"]).is_err());
        assert!(Args::try_parse_from(["prog", "--grid", "maybe"]).is_err());

        let dir = tempfile::tempdir().unwrap();
        let records: Vec<Record> = (0..2)
            .map(|i| {
                let path = dir.path().join(format!("{i}.png"));
                image::RgbImage::from_fn(40, 30, |x, y| {
                    image::Rgb([(x * 6 + i * 50) as u8, (y * 8) as u8, 90])
                })
                .save(&path)
                .unwrap();
                Record::new(i.to_string(), path)
            })
            .collect();
        #[derive(clap::Parser)]
        struct M {
            #[command(flatten)]
            model: BackboneArgs,
        }
        let model = M::try_parse_from(["prog", "--backbone", "mobilenet_v2"])
            .unwrap()
            .model;
        let own = Embeddings {
            ids: vec!["0".into(), "1".into()],
            matrix: ndarray::array![[1.0f32, 0.0], [0.0, 1.0]],
        };
        let run = |copies: usize| Embedded {
            backbones: (0..copies)
                .flat_map(|_| model.build_all().unwrap())
                .collect(),
            embeddings: own.clone(),
            seconds: 0.0,
            last: None,
        };
        let bases =
            |g: &str, run: Embedded| super::feature_bases(g, &model, run, &records, None, true);
        let both = bases("auto", run(1)).unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(both[0], ("mobilenet_v2".to_owned(), own.clone()));
        assert_eq!(both[1].0, "mobilenet_v2:grid4@features.13");
        assert_eq!(both[1].1.matrix.dim(), (2, 96 * 16));
        assert_eq!(both[1].1.ids, own.ids);
        assert_eq!(bases("off", run(1)).unwrap().len(), 1);
        let e = bases("maybe", run(1)).unwrap_err().to_string();
        assert!(e.contains("--grid maybe"), "{e}");
        // An ensemble of two.
        let e = bases("on", run(2)).unwrap_err().to_string();
        assert!(e.contains("--grid on") && e.contains("stride 16"), "{e}");
        assert_eq!(bases("auto", run(2)).unwrap().len(), 1);
    }

    #[test]
    fn auto_tries_the_neighbourhood_steps_not_given() {
        let base = reid_openset::AdaptParams::new(reid_openset::Adaptation::Whiten);
        let names = |a: &AdaptArgs| -> Vec<String> {
            a.neighbourhood_candidates(base)
                .into_iter()
                .map(|c| c.check().unwrap().to_string())
                .collect()
        };
        assert_eq!(names(&parse(&[])).len(), 6);
        assert_eq!(
            names(&parse(&["--dba", "4", "--qe", "0"])),
            ["whiten(shrinkage 0.5) + dba 4 (alpha 1)"]
        );
    }

    #[test]
    fn rerank_is_tried_given_or_off() {
        let given = |a: &AdaptArgs| -> Vec<(usize, usize, f32)> {
            a.rerank_candidates()
                .unwrap()
                .into_iter()
                .map(|p| {
                    let p = p.check().unwrap();
                    (p.k1(), p.k2(), p.lambda())
                })
                .collect()
        };
        assert_eq!(given(&parse(&[])), [(20, 6, 0.3), (10, 3, 0.3)]);
        assert!(given(&parse(&["--rerank", "off"])).is_empty());
        assert_eq!(given(&parse(&["--rerank", "8,2,0.5"])), [(8, 2, 0.5)]);
        // A fixed projection carries a given re-ranking, not `auto`'s.
        let fixed = parse(&["--adapt", "whiten", "--rerank", "8, 2, 0.5"]);
        let p = fixed.params().unwrap().unwrap().check().unwrap();
        assert_eq!(p.rerank().map(|r| r.k1()), Some(8));
        let p = parse(&["--adapt", "whiten"]).params().unwrap().unwrap();
        assert_eq!(p.check().unwrap().rerank(), None);
        for (bad, what) in [
            ("8,2", "2 values"),
            ("x,2,0.3", "k1 x"),
            ("8,2,2", "lambda"),
        ] {
            let e = parse(&["--rerank", bad]).params().unwrap_err().to_string();
            assert!(e.contains(what), "{bad}: {e}");
        }
    }

    /// `--encounters`: `none` (photos) by default, `auto` (the `video`
    /// column where every database photo has one), checked up front.
    #[test]
    fn encounters_flag() {
        use super::EpisodeArgs;
        use reid_core::{Record, SplitRole};
        use reid_openset::Encounters;
        #[derive(Parser)]
        struct E {
            #[command(flatten)]
            episodes: EpisodeArgs,
        }
        let parse =
            |a: &[&str]| E::try_parse_from(std::iter::once("prog").chain(a.iter().copied()));
        let auto = parse(&["--encounters", "auto"]).unwrap().episodes;
        assert_eq!(auto.encounters(), Some(Encounters::Auto));
        assert_eq!(
            auto.params().check().unwrap().encounters(),
            Some(&Encounters::Auto)
        );
        let none = parse(&[]).unwrap().episodes;
        assert_eq!(none.encounters(), None);
        assert_eq!(none.params().check().unwrap().encounters(), None);
        let col = parse(&["--encounters", "visit"]).unwrap().episodes;
        assert_eq!(col.encounters(), Some(Encounters::Column("visit".into())));
        assert!(parse(&["--encounters", " "]).is_err());
        // What the run says it holds out: only database photos count.
        let rec = |split, video: Option<&str>| {
            let mut r = Record::new("x", "x.jpg").with_split(split);
            if let Some(v) = video {
                r.attributes.insert("video".into(), v.into());
            }
            r
        };
        let records = [
            rec(SplitRole::Database, Some("a")),
            rec(SplitRole::Query, None),
        ];
        assert!(auto.encounters_summary(&records).contains("by `video`"));
        assert!(none.encounters_summary(&records).contains("single photos"));
        let no_video = [rec(SplitRole::Database, None)];
        assert!(auto.encounters_summary(&no_video).contains("single photos"));
    }
}
