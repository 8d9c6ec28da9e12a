//! disk (work in progress on a branch; see the crate doc).
