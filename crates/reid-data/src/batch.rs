//! A prefetching batch iterator: a background thread prepares the next
//! batches while the caller runs the model on the current one.
//!
//! ```no_run
//! use reid_data::batch::{BatchIter, PrefetchParams};
//! use reid_data::{ParamGuard, Record, preprocess::PreprocessParams};
//! # fn main() -> reid_data::Result<()> {
//! let records = vec![Record::new("a", "a.jpg"), Record::new("b", "b.jpg")];
//! let pre = PreprocessParams::new(224).check()?;
//! let opts = PrefetchParams::default().batch_size(64).check()?;
//! for batch in BatchIter::new(records, pre, opts) {
//!     let batch = batch?; // [B, 3, 224, 224]
//!     # let _ = batch;
//! }
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

#[cfg(doc)]
use reid_core::ParamGuard;

use crate::error::{DataError, Result};
use crate::preprocess::{Batch, Preprocess};
use crate::record::Record;

/// Batch size and prefetch depth, unchecked: a builder with [`Default`]
/// (batches of 32, two prefetched) and one setter per setting;
/// [`ParamGuard::check`] gives the [`ValidPrefetchParams`] that
/// [`BatchIter::new`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefetchParams {
    /// Images per batch (at least 1).
    pub batch_size: usize,
    /// How many finished batches may wait in the queue (at least 1). The
    /// worker may be preparing one more while the queue is full.
    pub depth: usize,
}

impl Default for PrefetchParams {
    fn default() -> Self {
        PrefetchParams {
            batch_size: 32,
            depth: 2,
        }
    }
}

impl PrefetchParams {
    reid_core::setters! {
        /// Sets [`PrefetchParams::batch_size`].
        batch_size: usize,
        /// Sets [`PrefetchParams::depth`].
        depth: usize,
    }
}

// Both at least 1.
reid_core::param_guard!(PrefetchParams => ValidPrefetchParams, DataError, |p| {
    if p.batch_size == 0 {
        return Err(DataError::param("batch_size", "0; must be at least 1"));
    }
    if p.depth == 0 {
        return Err(DataError::param("depth", "0; must be at least 1"));
    }
    Ok(())
});

/// Checked [`PrefetchParams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidPrefetchParams(PrefetchParams);

impl ValidPrefetchParams {
    reid_core::getters! {
        /// The batch size.
        batch_size: usize,
        /// The prefetch depth.
        depth: usize,
    }
}

/// Yields `Result<Batch>` in record order; batch `i` holds records
/// `i * batch_size ..`, the last one may be shorter. A batch with a bad file
/// is yielded as an error naming that file and iteration continues with the
/// next batch. Dropping the iterator stops the worker and waits for it to
/// finish the batch it is on.
#[derive(Debug)]
pub struct BatchIter {
    rx: Option<Receiver<Result<Batch>>>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
    remaining: usize,
}

impl BatchIter {
    /// Starts the background worker. Decoding inside a batch runs on the
    /// global rayon pool.
    pub fn new(records: Vec<Record>, pre: Preprocess, opts: ValidPrefetchParams) -> Self {
        let remaining = records.len().div_ceil(opts.batch_size());
        let (tx, rx) = sync_channel::<Result<Batch>>(opts.depth());
        let stop = Arc::new(AtomicBool::new(false));
        let stop_w = Arc::clone(&stop);
        let bs = opts.batch_size();
        let worker = std::thread::Builder::new()
            .name("reid-data-prefetch".into())
            .spawn(move || {
                for chunk in records.chunks(bs) {
                    if stop_w.load(Ordering::Relaxed) {
                        break;
                    }
                    let b = pre.batch(chunk);
                    if tx.send(b).is_err() {
                        break;
                    }
                }
            });
        match worker {
            Ok(handle) => BatchIter {
                rx: Some(rx),
                stop,
                worker: Some(handle),
                remaining,
            },
            Err(e) => {
                // No thread: report the failure once as the first item.
                let (tx2, rx2) = sync_channel(1);
                let _ = tx2.send(Err(DataError::io("<prefetch thread>", e)));
                BatchIter {
                    rx: Some(rx2),
                    stop,
                    worker: None,
                    remaining: 1,
                }
            }
        }
    }

    /// Batches not yet yielded.
    pub fn remaining(&self) -> usize {
        self.remaining
    }
}

impl Iterator for BatchIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let item = self.rx.as_ref()?.recv().ok();
        match item {
            Some(b) => {
                self.remaining -= 1;
                Some(b)
            }
            None => {
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl Drop for BatchIter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver makes a blocked `send` fail, so the worker exits.
        self.rx.take();
        if let Some(h) = self.worker.take() {
            let _ = h.join();
        }
    }
}
