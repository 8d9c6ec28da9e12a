//! # reid-catalogue
//!
//! A catalogue of known individuals kept between runs, for the job a field
//! team repeats: enrol labelled photos; when a batch of new photos comes
//! in, identify each against the catalogue; have a person confirm or
//! reject; apply the decisions, with who, when and why journalled and an
//! undo. No libtorch here: embeddings come from the caller (the
//! `animal-reid` program embeds with the workspace's backbones).
//!
//! - [`store`]: storage behind one trait, two engines: SQLite (one file,
//!   WAL, the embedded default) and PostgreSQL (a server a team shares);
//!   every command is one transaction, retried on contention.
//! - [`catalogue::Catalogue`]: individuals (ids `ind-000001`, never reused),
//!   photos keyed by dataset and content hash, embeddings keyed by content
//!   hash and model (a changed model or weights file is a new model: never
//!   mixed), the journal, [`catalogue::Catalogue::check`].
//! - [`gallery`]: the search index of one model as a cache of the database
//!   (rebuilt when the catalogue's generation moved on, checksummed), and
//!   the bridge from [`reid_pipeline::identify`] to review items.
//! - [`queue`]: embeddings to compute as a work queue in the same
//!   database, claimed with leases by any number of workers on any number of
//!   machines (`animal-reid worker`).
//! - [`decisions`]: the decisions CSV a person edits; [`review`]: the
//!   self-contained HTML review page.
//! - [`storage`]: where photos' bytes live: paths on shared storage (with a
//!   per-machine prefix map) or http(s) URLs, downloaded into a cache.
//! - [`testing`]: a throwaway PostgreSQL server and a static HTTP server for
//!   tests.
//!
//! ```
//! use reid_catalogue::catalogue::{Catalogue, ChangeContext, EnrolPhoto, Model};
//!
//! let dir = tempfile::tempdir()?;
//! let location = dir.path().join("cows.db");
//! let ctx = ChangeContext::new("maria").reason("first herd");
//! let mut cat = Catalogue::init(location.to_str().unwrap(), &ctx)?;
//! let model = Model { id: "demo-model".into(), description: "2-d demo".into(), dim: 2 };
//! cat.use_model(&model, &ctx)?;
//! let photo = |n: u8, who: &str| EnrolPhoto {
//!     path: format!("{n}.jpg").into(),
//!     content_hash: format!("{n:064x}"),
//!     dataset: "farm-a".into(),
//!     species: Some("cow".into()),
//!     individual: who.into(),
//! };
//! let report = cat.enrol(
//!     &[photo(1, "Bella"), photo(2, "Bella"), photo(3, "Daisy")],
//!     &model,
//!     &[Some(vec![1.0, 0.0]), Some(vec![0.8, 0.6]), Some(vec![0.0, 1.0])],
//!     &ctx,
//! )?;
//! assert_eq!((report.photos_added, report.individuals_created), (3, 2));
//! let (_, gallery) = cat.gallery(&model)?;
//! assert_eq!(gallery.len(), 3);
//! assert_eq!(gallery[2].0.name.as_deref(), Some("Daisy"));
//! // Undo the enrolment: the catalogue is empty again, and still sound.
//! cat.undo(None, &ctx)?;
//! assert!(cat.gallery(&model)?.1.is_empty());
//! assert!(cat.check()?.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod catalogue;
pub mod decisions;
pub mod error;
pub mod gallery;
pub mod queue;
pub mod review;
pub mod schema;
pub mod storage;
pub mod store;
pub mod testing;

pub use error::{CatalogueError, Result};
