//! # reid-index
//!
//! The gallery index of open-set re-identification: L2-normalised embeddings
//! (`ndarray::Array2<f32>`, one row per gallery image) with their record ids,
//! searched by cosine similarity for the top-k matches of each query.
//!
//! **Status:** only the error type exists so far. Exact blocked top-k search,
//! HNSW search, filters, incremental enrolment and persistence are tracked in
//! the project's gallery-index issue; nothing here claims to search yet.
//!
//! ```
//! use reid_index::IndexError;
//!
//! let e = IndexError::Shape { expected: "[n, 512]".into(), got: "[n, 256]".into() };
//! assert_eq!(e.to_string(), "shape mismatch: expected [n, 512], got [n, 256]");
//! ```

pub mod error;
pub mod exact;

pub use error::{IndexError, Result};
pub use exact::{TopK, exact_topk};
