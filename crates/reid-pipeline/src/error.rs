//! The one error type of `reid-pipeline`.

/// Errors of the open-set pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// A database record has no identity.
    #[error(
        "database record `{image_id}` (record {row} of those given, counting from 0) has no identity"
    )]
    Unlabelled {
        /// The record's image id.
        image_id: String,
        /// Its position among the records given.
        row: usize,
    },
    /// Embeddings and records do not line up.
    #[error("{records} records but {rows} embedding rows")]
    Rows {
        /// Records given.
        records: usize,
        /// Embedding rows given.
        rows: usize,
    },
    /// No database or no query records.
    #[error("no {what} records (split column `database` / `query`)")]
    Empty {
        /// `database` or `query`.
        what: &'static str,
    },
    /// A parameter is out of range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// From the open-set crate.
    #[error(transparent)]
    Openset(#[from] reid_openset::OpensetError),
    /// From the gallery index.
    #[error(transparent)]
    Index(#[from] reid_index::IndexError),
    /// From the evaluation crate.
    #[error(transparent)]
    Eval(#[from] reid_eval::EvalError),
}

/// Result alias of the pipeline.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
