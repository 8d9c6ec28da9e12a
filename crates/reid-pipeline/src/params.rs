//! The settings of the open-set pipeline.

use reid_core::ParamGuard;
use reid_openset::{
    AdaptParams, ClusterParams, Linkage, Rule, SelfCalibrationParams, Thresholds, ValidAdaptParams,
    ValidSelfCalibrationParams,
};

use crate::{PipelineError, Result};

/// Settings of [`crate::identify`]; [`ParamGuard::check`] gives the
/// [`ValidOpenSetParams`] it takes.
///
/// ```
/// use reid_pipeline::{OpenSetParams, ParamGuard, Rule};
/// let p = OpenSetParams::default().rule("knn:5".parse::<Rule>()?).shortlist(10).check()?;
/// assert_eq!(p.shortlist(), 10);
/// assert!(OpenSetParams::default().fixed_threshold(Some(f32::NAN)).check().is_err());
/// assert!(OpenSetParams::default().fixed_threshold(Some(-5.0)).check().is_err());
/// # Ok::<(), reid_pipeline::PipelineError>(())
/// ```
#[derive(Debug, Clone)]
pub struct OpenSetParams {
    rule: Rule,
    shortlist: usize,
    fixed: Option<f32>,
    episodes: SelfCalibrationParams,
    per_dataset: bool,
    linkage: Linkage,
    cluster_threshold: Option<f32>,
    adapt: Option<AdaptParams>,
}

/// Checked [`OpenSetParams`].
#[derive(Debug, Clone)]
pub struct ValidOpenSetParams {
    pub(crate) rule: Rule,
    pub(crate) shortlist: usize,
    pub(crate) fixed: Option<Thresholds>,
    pub(crate) episodes: ValidSelfCalibrationParams,
    pub(crate) per_dataset: bool,
    pub(crate) linkage: Linkage,
    pub(crate) cluster_threshold: Option<f32>,
}

impl Default for OpenSetParams {
    /// Top-1, shortlist 5, self-calibrated with the default episodes, one
    /// threshold per dataset, average linkage at each dataset's `1 -
    /// threshold`.
    fn default() -> Self {
        Self {
            rule: Rule::Top1,
            shortlist: 5,
            fixed: None,
            episodes: SelfCalibrationParams::default(),
            per_dataset: true,
            linkage: Linkage::Average,
            cluster_threshold: None,
            adapt: None,
        }
    }
}

impl OpenSetParams {
    reid_core::setters! {
        /// Decision rule (default top-1).
        rule: Rule,
        /// Matches kept per query, for match sheets and ranking (default 5;
        /// at least 1).
        shortlist: usize,
        /// The self-calibration episodes (and the thresholds they try).
        episodes: SelfCalibrationParams,
        /// One threshold per dataset (default), or one for all datasets,
        /// chosen on the same within-dataset episodes.
        per_dataset: bool,
        /// Linkage of the new-individual clustering (default average).
        linkage: Linkage,
        /// Cosine distance below which two new queries are the same animal;
        /// default `1 - threshold` of their dataset: as close as a known
        /// match. (With a k-reciprocal re-ranking,
        /// [`reid_openset::AdaptParams::rerank`], the threshold is on the
        /// re-ranked score, which needs the database's neighbourhoods and
        /// so does not exist between two new queries: the default then
        /// reads it as a cosine all the same; set a distance here to group
        /// new animals by a cosine of your choosing.)
        cluster_threshold: Option<f32>,
        /// A projection of the embeddings fitted on each dataset's database
        /// (and refitted on each self-calibration episode's pseudo-gallery);
        /// default none (cosine of the embeddings as given).
        adapt: Option<AdaptParams>,
    }

    /// Use this threshold for every dataset instead of self-calibrating
    /// (default: self-calibrate).
    #[must_use]
    pub fn fixed_threshold(mut self, t: Option<f32>) -> Self {
        self.fixed = t;
        self
    }
}

impl ParamGuard for OpenSetParams {
    type Checked = ValidOpenSetParams;
    type Error = PipelineError;

    fn check_ref(&self) -> Result<()> {
        self.clone().check().map(|_| ())
    }

    fn check(self) -> Result<ValidOpenSetParams> {
        // A rule is checked by the decision parameters it makes.
        reid_openset::DecisionParams::new(Thresholds::new(0.0)?)
            .rule(self.rule)
            .check()?;
        if self.shortlist == 0 {
            return Err(PipelineError::InvalidParam {
                name: "shortlist",
                reason: "must be at least 1".into(),
            });
        }
        if let Some(t) = self.fixed.filter(|t| !(-1.0..=1.0).contains(t)) {
            return Err(PipelineError::InvalidParam {
                name: "threshold",
                reason: format!("a fixed threshold is a cosine similarity in [-1, 1], got {t}"),
            });
        }
        let fixed = self.fixed.map(Thresholds::new).transpose()?;
        if let Some(d) = self.cluster_threshold {
            ClusterParams::new(d).linkage(self.linkage).check()?;
        }
        Ok(ValidOpenSetParams {
            rule: self.rule,
            shortlist: self.shortlist,
            fixed,
            episodes: self
                .episodes
                .adapt(self.adapt.map(ParamGuard::check).transpose()?)
                .check()?,
            per_dataset: self.per_dataset,
            linkage: self.linkage,
            cluster_threshold: self.cluster_threshold,
        })
    }
}

impl ValidOpenSetParams {
    /// The decision rule.
    pub fn rule(&self) -> Rule {
        self.rule
    }
    /// Matches kept per query.
    pub fn shortlist(&self) -> usize {
        self.shortlist
    }
    /// The fixed thresholds, when not self-calibrating.
    pub fn fixed_thresholds(&self) -> Option<&Thresholds> {
        self.fixed.as_ref()
    }
    /// The self-calibration episodes.
    pub fn episodes(&self) -> &ValidSelfCalibrationParams {
        &self.episodes
    }
    /// One threshold per dataset?
    pub fn per_dataset(&self) -> bool {
        self.per_dataset
    }
    /// The projection fitted on the database, if any (the episodes refit it).
    pub fn adapt(&self) -> Option<&ValidAdaptParams> {
        self.episodes.adapt()
    }
    /// The same settings with another projection (`None`: none).
    pub fn with_adapt(&self, adapt: Option<ValidAdaptParams>) -> Result<Self> {
        Ok(Self {
            episodes: self.episodes.clone().into_params().adapt(adapt).check()?,
            ..self.clone()
        })
    }
    /// The same settings with episodes that draw their pseudo-queries among
    /// `held_out` only ([`reid_openset::SelfCalibrationParams::held_out`]):
    /// for embeddings fitted on the other database photos. Photos are
    /// held out in whole encounters, so the episodes keep them whole: by
    /// the encounters already set, else by `encounters`.
    pub fn with_held_out(
        &self,
        held_out: Option<reid_openset::HeldOut>,
        encounters: Option<reid_openset::Encounters>,
    ) -> Result<Self> {
        let p = self.episodes.clone().into_params();
        let encounters = self.episodes.encounters().cloned().or(encounters);
        Ok(Self {
            episodes: p.held_out(held_out).encounters(encounters).check()?,
            ..self.clone()
        })
    }
}
