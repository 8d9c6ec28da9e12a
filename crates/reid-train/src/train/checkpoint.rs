//! The checkpoint folder: its files ([`files`]), the state saved with each
//! checkpoint ([`TrainState`]), saving and loading weights as safetensors,
//! and the atomic write of a whole checkpoint.

use std::collections::BTreeMap;
use std::path::Path;

use reid_backbone::backbone::Backbone;
use reid_core::fs::{AtomicWrite, TempFile};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor, nn};

use super::trainer::{EpochLog, Trainer};
use crate::error::{Result, TrainError};

/// The state saved with each checkpoint (`state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs finished.
    pub epochs_done: usize,
    /// The run's seed.
    pub seed: u64,
    /// The loss name.
    pub loss: String,
    /// Best validation score so far, and its epoch.
    pub best: Option<(f64, usize)>,
    /// Epochs since the best.
    pub bad_epochs: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// The log so far.
    pub log: Vec<EpochLog>,
}

/// File names inside the checkpoint folder.
pub mod files {
    /// Backbone weights after the last finished epoch (original key names).
    pub const BACKBONE: &str = "backbone.safetensors";
    /// Backbone weights of the best validation epoch.
    pub const BEST: &str = "best.safetensors";
    /// Projection head and loss weights.
    pub const HEAD: &str = "head.safetensors";
    /// [`super::TrainState`] as JSON.
    pub const STATE: &str = "state.json";
    /// The per-epoch log (the `log` of the state) as JSON.
    pub const LOG: &str = "log.json";
}

pub(super) fn io_err(path: &Path, e: std::io::Error) -> TrainError {
    TrainError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Writes every variable of `vs` (sorted by name, contiguous, f32 on the
/// CPU) as safetensors to a temporary file beside `path`; committing it
/// renames it over `path`.
fn write_var_store_tmp(vs: &nn::VarStore, path: &Path) -> Result<TempFile> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let vars: Vec<(String, Tensor)> = tch::no_grad(|| {
        vars.into_iter()
            .map(|(k, t)| (k, t.to_device(Device::Cpu).contiguous()))
            .collect()
    });
    let tmp = AtomicWrite::new().create_dirs(true).temp_file(path)?;
    Tensor::write_safetensors(&vars, tmp.path()).map_err(|e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(tmp)
}

/// Saves `vs` as safetensors with its variable names (for a backbone, the
/// original key names: `BackboneBuilder::weights_file` loads it back),
/// atomically (temporary file, then rename).
pub fn save_var_store(vs: &nn::VarStore, path: &Path) -> Result<()> {
    Ok(write_var_store_tmp(vs, path)?.commit()?)
}

/// Copies the tensors of a safetensors file into the variables of `vs` of
/// the same names; every variable must be present with its shape.
pub fn load_var_store(vs: &nn::VarStore, path: &Path) -> Result<()> {
    let bad = |reason: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|e| bad(e.to_string()))?
        .into_iter()
        .collect();
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            let t = tensors
                .get(&name)
                .ok_or_else(|| bad(format!("has no `{name}`")))?;
            if t.size() != var.size() {
                return Err(bad(format!(
                    "`{name}` is {:?}, the model wants {:?}",
                    t.size(),
                    var.size()
                )));
            }
            var.copy_(&t.to_device(var.device()).to_kind(var.kind()));
        }
        Ok(())
    })
}

/// `value` as pretty JSON in a temporary file beside `path`, to commit.
fn write_json_tmp<T: Serialize>(value: &T, path: &Path) -> Result<TempFile> {
    let text = serde_json::to_string_pretty(value).map_err(|e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let tmp = AtomicWrite::new().create_dirs(true).temp_file(path)?;
    std::fs::write(tmp.path(), text).map_err(|e| io_err(path, e))?;
    Ok(tmp)
}

/// Reads `state.json` of a checkpoint folder, `None` when there is none.
pub fn read_state(dir: &Path) -> Result<Option<TrainState>> {
    let path = dir.join(files::STATE);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| TrainError::Checkpoint {
            path,
            reason: e.to_string(),
        })
}

impl Trainer {
    /// Writes the checkpoint: all files to temporaries first, then renamed,
    /// `state.json` last, so a kill leaves the previous epoch's state (or
    /// weights one epoch ahead of it, which a resume re-trains from).
    pub(super) fn checkpoint(
        &self,
        backbone: &Backbone,
        dir: &Path,
        state: &TrainState,
        best: bool,
    ) -> Result<()> {
        let bb = dir.join(files::BACKBONE);
        let hd = dir.join(files::HEAD);
        let st = dir.join(files::STATE);
        let lg = dir.join(files::LOG);
        let t_bb = write_var_store_tmp(backbone.var_store(), &bb)?;
        let t_hd = write_var_store_tmp(&self.head_vs, &hd)?;
        let t_lg = write_json_tmp(&state.log, &lg)?;
        let t_st = write_json_tmp(state, &st)?;
        if best {
            let best_path = dir.join(files::BEST);
            let t_best = AtomicWrite::new().temp_file(&best_path)?;
            std::fs::copy(t_bb.path(), t_best.path()).map_err(|e| io_err(&best_path, e))?;
            t_best.commit()?;
        }
        t_bb.commit()?;
        t_hd.commit()?;
        t_lg.commit()?;
        Ok(t_st.commit()?)
    }
}
