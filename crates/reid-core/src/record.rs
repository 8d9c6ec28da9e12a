//! The record: one photo and what is known about it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// An axis-aligned bounding box in pixels: top-left corner plus size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    /// Left edge, pixels from the image's left side.
    pub x: f32,
    /// Top edge, pixels from the image's top.
    pub y: f32,
    /// Width in pixels (> 0).
    pub w: f32,
    /// Height in pixels (> 0).
    pub h: f32,
}

impl fmt::Display for BBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{},{}", self.x, self.y, self.w, self.h)
    }
}

/// The role of a record in an open-set evaluation.
///
/// AnimalCLEF calls the gallery `database` and the probes `query`; training
/// folds may use `train`, `valid`, `test`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SplitRole {
    /// Gallery images with known identities.
    Database,
    /// Probe images to be identified (or declared new).
    Query,
    /// Any other split name, kept verbatim (`train`, `test`, ...).
    Other(String),
}

impl SplitRole {
    /// Parses a split name; `database`/`gallery` and `query`/`probe` are
    /// recognised case-insensitively, anything else is kept as [`SplitRole::Other`].
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "database" | "gallery" => SplitRole::Database,
            "query" | "probe" => SplitRole::Query,
            _ => SplitRole::Other(s.trim().to_string()),
        }
    }

    /// The name written to CSV files.
    pub fn as_str(&self) -> &str {
        match self {
            SplitRole::Database => "database",
            SplitRole::Query => "query",
            SplitRole::Other(s) => s,
        }
    }
}

impl fmt::Display for SplitRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A calendar date (`YYYY-MM-DD`), used by time-aware splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Date {
    /// Year.
    pub year: i32,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of month, 1..=31.
    pub day: u8,
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// One photo and its metadata.
///
/// `identity` is `None` for unlabelled queries (the AnimalCLEF test set).
/// `path` is as resolved by the loader (joined to the dataset root).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Unique id of the image within its collection.
    pub image_id: String,
    /// The individual shown, when known.
    pub identity: Option<String>,
    /// Image file.
    pub path: PathBuf,
    /// Species, e.g. `loggerhead turtle`, `lynx`, `lion`.
    pub species: Option<String>,
    /// Role in the evaluation (database / query / other).
    pub split: Option<SplitRole>,
    /// Source dataset, e.g. `SeaTurtleID2022`.
    pub dataset: Option<String>,
    /// Date the photo was taken.
    pub date: Option<Date>,
    /// Viewpoint, e.g. `left`, `right`, `top`.
    pub orientation: Option<String>,
    /// Region of the animal in the image.
    pub bbox: Option<BBox>,
    /// Any other columns, by name.
    pub attributes: BTreeMap<String, String>,
}

impl Record {
    /// A record with only the required fields set.
    pub fn new(image_id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Record {
            image_id: image_id.into(),
            identity: None,
            path: path.into(),
            species: None,
            split: None,
            dataset: None,
            date: None,
            orientation: None,
            bbox: None,
            attributes: BTreeMap::new(),
        }
    }

    /// Sets the identity.
    #[must_use]
    pub fn with_identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = Some(identity.into());
        self
    }

    /// Sets the split role.
    #[must_use]
    pub fn with_split(mut self, split: SplitRole) -> Self {
        self.split = Some(split);
        self
    }

    /// Sets the dataset.
    #[must_use]
    pub fn with_dataset(mut self, dataset: impl Into<String>) -> Self {
        self.dataset = Some(dataset.into());
        self
    }

    /// Sets the species.
    #[must_use]
    pub fn with_species(mut self, species: impl Into<String>) -> Self {
        self.species = Some(species.into());
        self
    }

    /// Sets the free attribute `key` (an extra column) to `value`.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// The value of a field or attribute by name, as filters test it:
    /// `image_id`, `identity`, `path`, `species`, `split`, `dataset`,
    /// `date`, `orientation` name the fields (`None` when unset); any other
    /// key is looked up among [`Record::attributes`].
    ///
    /// ```
    /// use reid_core::Record;
    /// let r = Record::new("7", "a.jpg").with_dataset("SiteA").with("camera", "3");
    /// assert_eq!(r.field("dataset").as_deref(), Some("SiteA"));
    /// assert_eq!(r.field("camera").as_deref(), Some("3"));
    /// assert_eq!(r.field("species"), None);
    /// ```
    pub fn field(&self, key: &str) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        match key {
            "image_id" => Some(Cow::Borrowed(self.image_id.as_str())),
            "identity" => self.identity.as_deref().map(Cow::Borrowed),
            "path" => Some(self.path.to_string_lossy()),
            "species" => self.species.as_deref().map(Cow::Borrowed),
            "split" => self.split.as_ref().map(|s| Cow::Borrowed(s.as_str())),
            "dataset" => self.dataset.as_deref().map(Cow::Borrowed),
            "date" => self.date.map(|d| Cow::Owned(d.to_string())),
            "orientation" => self.orientation.as_deref().map(Cow::Borrowed),
            other => self
                .attributes
                .get(other)
                .map(|v| Cow::Borrowed(v.as_str())),
        }
    }

    /// The population this record is matched within: its dataset, else its
    /// species, else everything (see [`Scope`]).
    pub fn scope(&self) -> Scope {
        Scope::of(self)
    }
}

/// The population a query is compared with, and the unit thresholds and
/// scores are computed per: each dataset is its own catalogue.
///
/// A record's scope is its dataset when it has one, else its species, else
/// [`Scope::All`]. A database record belongs to a scope when it has that
/// dataset ([`Scope::Dataset`]), that species ([`Scope::Species`]), or
/// always ([`Scope::All`]). A query is searched only among the database
/// records of its scope, so an identity of another dataset is never
/// proposed, even when its photo is the closest.
///
/// ```
/// use reid_core::{Record, Scope};
/// let q = Record::new("q", "q.jpg").with_dataset("SiteB").with_species("cow");
/// let a = Record::new("a", "a.jpg").with_dataset("SiteA").with_species("cow");
/// let b = Record::new("b", "b.jpg").with_dataset("SiteB").with_species("cow");
/// assert_eq!(q.scope(), Scope::Dataset("SiteB".into()));
/// assert!(!q.scope().contains(&a) && q.scope().contains(&b));
/// // Without a dataset, the species is the scope.
/// let q = Record::new("q", "q.jpg").with_species("cow");
/// assert!(q.scope().contains(&a) && q.scope().contains(&b));
/// assert_eq!(q.scope().name(), "cow");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// The records of one dataset.
    Dataset(String),
    /// The records of one species (for records without a dataset).
    Species(String),
    /// Every record (for records with neither).
    All,
}

impl Scope {
    /// The scope of `record`: dataset, else species, else all.
    pub fn of(record: &Record) -> Self {
        match (&record.dataset, &record.species) {
            (Some(d), _) => Scope::Dataset(d.clone()),
            (None, Some(s)) => Scope::Species(s.clone()),
            (None, None) => Scope::All,
        }
    }

    /// Whether `record` belongs to this scope.
    pub fn contains(&self, record: &Record) -> bool {
        match self {
            Scope::Dataset(d) => record.dataset.as_deref() == Some(d.as_str()),
            Scope::Species(s) => record.species.as_deref() == Some(s.as_str()),
            Scope::All => true,
        }
    }

    /// The name shown in reports and used as the key of per-scope
    /// thresholds and scores: the dataset or species name, or `all`.
    pub fn name(&self) -> &str {
        match self {
            Scope::Dataset(n) | Scope::Species(n) => n,
            Scope::All => "all",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
