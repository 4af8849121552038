//! The checkpoint folder of a run: written whole next to its place (`<out>.partial`), then
//! swapped in by two renames, so a crash leaves the previous checkpoint or the new one.

use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use rlrt_runtime::recording::Dataset;

use super::{EvalRecord, HeldOut, TrainingError};
use crate::iql::Learner;

/// Where a run saves, and what each save writes beside the learner's records.
pub(super) struct Folder<'a> {
    out: &'a Path,
    partial: PathBuf,
    old: PathBuf,
    dataset: &'a Dataset,
    split: &'a HeldOut,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainingError + '_ {
    move |source| TrainingError::Io {
        path: path.to_owned(),
        source,
    }
}

fn json(path: &Path) -> impl FnOnce(serde_json::Error) -> TrainingError + '_ {
    move |source| TrainingError::Json {
        path: path.to_owned(),
        source,
    }
}

/// `path` with `.suffix` after its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}

impl<'a> Folder<'a> {
    pub(super) fn new(out: &'a Path, dataset: &'a Dataset, split: &'a HeldOut) -> Self {
        Self {
            out,
            partial: sibling(out, "partial"),
            old: sibling(out, "old"),
            dataset,
            split,
        }
    }

    pub(super) fn holds_checkpoint(&self) -> bool {
        self.out.join("checkpoint.json").exists()
    }

    /// Loads the checkpoint into `learner` (weights, optimizer, step, sampler) and returns
    /// it with its evaluation log and the wall time it had run; a missing checkpoint starts
    /// fresh.
    pub(super) fn resume<B: AutodiffBackend>(
        &self,
        learner: Learner<B>,
    ) -> Result<(Learner<B>, Vec<EvalRecord>, f64), TrainingError> {
        // A crash between the two renames of a save leaves only `<out>.old`.
        if !self.out.exists() && self.old.exists() {
            std::fs::rename(&self.old, self.out).map_err(io(self.out))?;
        }
        if !self.holds_checkpoint() {
            tracing::warn!(
                "--resume: no checkpoint in {}; starting fresh",
                self.out.display()
            );
            return Ok((learner, Vec::new(), 0.0));
        }
        let learner = learner.resume(self.out)?;
        let log: Vec<EvalRecord> = std::fs::read_to_string(self.out.join("train_log.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        let elapsed = log.last().map_or(0.0, |r| r.seconds);
        tracing::info!(step = learner.step(), "resumed from {}", self.out.display());
        Ok((learner, log, elapsed))
    }

    /// Writes the checkpoint folder and swaps it in.
    pub(super) fn save<B: AutodiffBackend>(
        &self,
        learner: &Learner<B>,
        log: &[EvalRecord],
    ) -> Result<(), TrainingError> {
        let partial = &self.partial;
        let _ = std::fs::remove_dir_all(partial);
        learner.save(partial)?;
        let write = |name: &str, bytes: &[u8]| {
            let path = partial.join(name);
            std::fs::write(&path, bytes).map_err(io(&path))
        };
        write("config.toml", self.dataset.config_text.as_bytes())?;
        write("config_source", self.dataset.info.config_source.as_bytes())?;
        let log_json = serde_json::to_string_pretty(log).map_err(json(partial))?;
        write("train_log.json", log_json.as_bytes())?;
        let split_json = serde_json::to_string_pretty(self.split).map_err(json(partial))?;
        write("held_out.json", split_json.as_bytes())?;
        let _ = std::fs::remove_dir_all(&self.old);
        if self.out.exists() {
            std::fs::rename(self.out, &self.old).map_err(io(self.out))?;
        }
        std::fs::rename(partial, self.out).map_err(io(self.out))?;
        let _ = std::fs::remove_dir_all(&self.old);
        Ok(())
    }
}

/// The held-out record (`held_out.json`) of a checkpoint folder.
pub fn read_held_out(dir: &Path) -> Result<HeldOut, TrainingError> {
    let path = dir.join("held_out.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(json(&path))
}
