//! # reid-core
//!
//! What every animal-reid crate shares, with no heavy dependency:
//!
//! - [`Record`]: one photo and what is known about it (identity, split,
//!   dataset, species, date, orientation, bounding box, free attributes),
//!   the one record type of the workspace; [`SplitRole`], [`BBox`],
//!   [`Date`].
//! - [`Scope`]: the population a query is matched within (its dataset, else
//!   its species, else everything): each dataset is its own catalogue.
//! - [`ParamGuard`]: the one convention for parameters, checked once, up
//!   front (`FooParams` → `ValidFooParams`).
//! - [`fs`]: the one atomic file writer; [`paths`]: the cache, shared-data
//!   and fixtures folders, by environment variable.
//!
//! ```
//! use reid_core::{Record, Scope, SplitRole};
//!
//! let r = Record::new("img7", "photos/img7.jpg")
//!     .with_identity("lynx_37")
//!     .with_split(SplitRole::parse("database"))
//!     .with_dataset("LynxID2025");
//! assert_eq!(r.scope(), Scope::Dataset("LynxID2025".into()));
//! assert_eq!(r.field("split").as_deref(), Some("database"));
//! ```

pub mod error;
pub mod fs;
pub mod params;
pub mod paths;
pub mod record;

pub use error::{CoreError, Result};
pub use params::ParamGuard;
pub use record::{BBox, Date, Record, Scope, SplitRole};
