//! # reid-openset
//!
//! The open-set decision of re-identification: given a query's similarities
//! to the gallery, answer "individual X" or "new individual". Thresholds,
//! self-calibration from the database alone, score calibration, fusion of
//! similarity sources and clustering of new individuals belong here.
//!
//! **Status:** only the error type exists so far; the decision rules are
//! tracked in the project's open-set issue and nothing here decides yet.
//!
//! ```
//! use reid_openset::OpensetError;
//!
//! let e = OpensetError::InvalidParam { name: "threshold", reason: "NaN".into() };
//! assert!(e.to_string().contains("threshold"));
//! ```

pub mod error;

pub use error::{OpensetError, Result};
