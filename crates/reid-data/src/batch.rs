//! A prefetching batch iterator: a background thread prepares the next
//! batches while the caller runs the model on the current one.
//!
//! ```no_run
//! use reid_data::{batch::{BatchIter, PrefetchOptions}, preprocess::PreprocessConfig, Record};
//! # fn main() -> reid_data::Result<()> {
//! let records = vec![Record::new("a", "a.jpg"), Record::new("b", "b.jpg")];
//! let pre = PreprocessConfig::new(224, 224).check()?;
//! for batch in BatchIter::new(records, pre, PrefetchOptions::new(64)?) {
//!     let batch = batch?; // [B, 3, 224, 224]
//!     # let _ = batch;
//! }
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use crate::error::{DataError, Result};
use crate::preprocess::{Batch, Preprocess};
use crate::record::Record;

/// Batch size and prefetch depth, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefetchOptions {
    batch_size: usize,
    depth: usize,
}

impl PrefetchOptions {
    /// Batches of `batch_size` (at least 1), prefetch depth 2.
    pub fn new(batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(DataError::param("batch_size", "must be at least 1"));
        }
        Ok(PrefetchOptions {
            batch_size,
            depth: 2,
        })
    }

    /// How many finished batches may wait in the queue (at least 1). The
    /// worker may be preparing one more while the queue is full.
    pub fn with_depth(mut self, depth: usize) -> Result<Self> {
        if depth == 0 {
            return Err(DataError::param("depth", "must be at least 1"));
        }
        self.depth = depth;
        Ok(self)
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The prefetch depth.
    pub fn depth(&self) -> usize {
        self.depth
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
    pub fn new(records: Vec<Record>, pre: Preprocess, opts: PrefetchOptions) -> Self {
        let remaining = records.len().div_ceil(opts.batch_size);
        let (tx, rx) = sync_channel::<Result<Batch>>(opts.depth);
        let stop = Arc::new(AtomicBool::new(false));
        let stop_w = Arc::clone(&stop);
        let bs = opts.batch_size;
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
