//! The trainer's checkpoint folder: resuming from `last/`, replacing `best/` and `last/` as a
//! whole, and the log (see the [module docs](super) for the layout).

use std::io::Write;
use std::path::Path;

use serde::Deserialize;

use crate::checkpoint;
use crate::optim::LrScheduler;
use crate::{ModelError, Result};

use super::{EpochRecord, TrainState, Trainer};

const BEST_DIR: &str = "best";
pub(super) const LAST_DIR: &str = "last";
pub(super) const LOG_FILE: &str = "log.jsonl";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub(super) const STATE_FILE: &str = "trainer_state.json";
pub(super) const TRAIN_CONFIG_FILE: &str = "train_config.json";

impl Trainer<'_> {
    /// Continues from `checkpoint_dir/last` when it exists: weights, optimiser state, epoch
    /// counter, best loss and scheduler. Returns the epoch training will continue at, or
    /// `None` when there was nothing to resume. The stored model configuration must equal
    /// the model's. When this trainer's schedule or learning rate differ from the run's
    /// (e.g. more epochs for a cosine schedule), they apply from the resumed epoch
    /// ([`LrScheduler::resumed_at`]); otherwise the stored scheduler continues exactly.
    ///
    /// A save a crash interrupted is finished or undone first. The swap's other folders
    /// (`last.previous/`, say) are removed once `last/` has loaded (and `best/` holds its
    /// config's weights): after a refusal they stay, as they may hold the only whole save.
    /// So do the temporary files (`.<name>.tmp-<pid>`) that a process stopped inside an
    /// atomic write left in `checkpoint_dir`: a resume that loaded `last/` removes them
    /// ([`checkpoint::remove_stale_temporaries`]).
    ///
    /// # Errors
    /// A checkpoint directory that exists but is not a folder ([`ModelError::Io`] naming it);
    /// unreadable or inconsistent files in `last/`, a model configuration other than the
    /// model's, an optimiser state that lacks what this trainer's optimiser keeps (another
    /// kind of optimiser, or momentum where the run had none) or holds tensors of variables
    /// this model does not have ([`Optimizer::load_state`](crate::optim::Optimizer::load_state)), or
    /// a stored learning rate that is negative, NaN or beyond the `f32` range (one edited
    /// into `trainer_state.json`), or a stored best epoch that is not before the next epoch
    /// or is recorded without its loss (or the loss without it), naming the file.
    ///
    /// # Examples
    /// A run of one epoch, continued to two by another trainer (as a new process would):
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{ModuleT, VarBuilder, VarMap};
    /// use xnet_model::models::{ModelConfig, XNetConfig};
    /// use xnet_model::train::{InMemoryBatches, TrainBatch, TrainConfig, Trainer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("xnet-doc-resume-{}", std::process::id()));
    /// let dev = Device::Cpu;
    /// let cfg = ModelConfig::XNet(XNetConfig { base_width: 2, ..Default::default() });
    /// let batch = TrainBatch::new(vec![0.5; 16 * 16], vec![1; 16 * 16], 1, 16, 16)?;
    /// let mut data = InMemoryBatches::new(vec![batch]);
    /// let config = |epochs| TrainConfig { epochs, progress: false, ..Default::default() };
    /// let x = Tensor::rand(0f32, 1f32, (1, 1, 16, 16), &dev)?;
    ///
    /// let varmap = VarMap::new();
    /// let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    /// let mut first =
    ///     Trainer::new(model.as_ref(), &varmap, config(1), &dev)?.with_checkpoint_dir(&dir);
    /// assert_eq!(first.resume()?, None); // nothing to resume yet
    /// first.fit(&mut data, None)?;
    /// let trained = model.forward_t(&x, false)?.flatten_all()?.to_vec1::<f32>()?;
    ///
    /// // A freshly built network: resume loads the weights of `dir/last`.
    /// let varmap = VarMap::new();
    /// let model = cfg.build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    /// let mut second =
    ///     Trainer::new(model.as_ref(), &varmap, config(2), &dev)?.with_checkpoint_dir(&dir);
    /// assert_eq!(second.resume()?, Some(1));
    /// assert_eq!(model.forward_t(&x, false)?.flatten_all()?.to_vec1::<f32>()?, trained);
    /// let summary = second.fit(&mut data, None)?;
    /// assert_eq!((summary.epochs.len(), summary.epochs[0].epoch, summary.epochs_run), (1, 1, 2));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn resume(&mut self) -> Result<Option<usize>> {
        let Some(dir) = &self.checkpoint_dir else {
            return Ok(None);
        };
        super::check_checkpoint_dir(dir)?;
        let (last, best) = (dir.join(LAST_DIR), dir.join(BEST_DIR));
        // A save the previous process did not finish: put the last whole one in place. The
        // other folders of the swap go only once what is in place is known whole (`last/`
        // loaded, `best/` its config's weights): a copy of the run can hold a save marked
        // complete but damaged, and the one it was to replace would be the only whole one.
        checkpoint::restore_replaced_dir(&last)?;
        checkpoint::restore_replaced_dir(&best)?;
        if !best.exists() || checkpoint::holds_its_weights(&best) {
            checkpoint::remove_replaced_leftovers(&best);
        }
        let state_path = last.join(STATE_FILE);
        if !state_path.exists() {
            if !last.exists() {
                // Nothing was put in place: what is left is a save never marked complete.
                checkpoint::remove_replaced_leftovers(&last);
            }
            return Ok(None);
        }
        let stored = checkpoint::read_config(&last)?;
        let ours = self.model.config();
        if stored.model != ours {
            return Err(ModelError::InvalidConfig(format!(
                "{}: the checkpoint was written for model {:?} but the trainer's model is {:?}",
                last.display(),
                stored.model,
                ours
            )));
        }
        let text = std::fs::read_to_string(&state_path).map_err(|source| ModelError::Io {
            path: state_path.clone(),
            source,
        })?;
        let state: TrainState = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: state_path.clone(),
            source,
        })?;
        check_best_record(&state, &state_path)?;
        // A stored scheduler that continues the run brings its rate: one edited into the file
        // (`1e308`, which f64 holds, would run as infinity in the f32 update) is refused like
        // a configured one, before anything is loaded. One that does not is rebuilt from the
        // config below, so its contents do not matter.
        if state
            .scheduler
            .follows(&self.config.schedule, self.config.optimizer.learning_rate())
        {
            state.scheduler.validate().map_err(|e| match e {
                ModelError::InvalidConfig(m) => {
                    ModelError::InvalidConfig(format!("{}: {m}", state_path.display()))
                }
                other => other,
            })?;
        }
        // `last/` is replaced as a whole, but runs written before that renamed its four
        // files into place one by one (weights, config, optimizer, state), and an interrupted
        // save left them from two epochs. The weights must be the config's, and the config
        // (written second) of the state's epoch (written last).
        let weights = last.join(checkpoint::WEIGHTS_FILE);
        let saved_epoch = stored.metadata.get("next_epoch").and_then(|v| v.as_u64());
        if saved_epoch.is_some_and(|e| e != state.next_epoch as u64) {
            return Err(ModelError::InvalidConfig(format!(
                "{}: an interrupted save left it inconsistent (its weights and config were saved \
                 before epoch {}, its trainer state before epoch {}); the run's best/ checkpoint \
                 is not affected",
                last.display(),
                saved_epoch.unwrap_or_default(),
                state.next_epoch
            )));
        }
        checkpoint::load_weights_into(self.varmap, &weights, &self.device)?;
        self.optimizer
            .load_state(&last.join(OPTIMIZER_FILE), &self.device)?;
        checkpoint::remove_replaced_leftovers(&last);
        // A process stopped inside an atomic write (the log's trim, `train_config.json`) left
        // its temporary file, which nothing else removes; the run is this process's now.
        checkpoint::remove_stale_temporaries(dir);
        let mut state = state;
        // The stored scheduler continues the run exactly; a configuration with another
        // schedule or rate (more epochs for a cosine, a new learning rate) takes effect from
        // the epoch the run resumes at, instead of being ignored.
        let base_lr = self.config.optimizer.learning_rate();
        if !state.scheduler.follows(&self.config.schedule, base_lr) {
            state.scheduler =
                LrScheduler::resumed_at(self.config.schedule.clone(), base_lr, state.next_epoch)?;
        }
        self.optimizer
            .set_learning_rate(state.scheduler.learning_rate());
        self.state = state;
        let log = trim_log(&dir.join(LOG_FILE), self.state.next_epoch)?;
        self.catch_up_best(dir, &log)?;
        Ok(Some(self.state.next_epoch))
    }

    /// A process stopped after `last/` was replaced by an improving epoch and before
    /// `best/` was leaves `best/` behind the trainer state (or absent after the first
    /// epoch). `last/` holds that epoch's weights, loaded by now, so `best/` is written from
    /// them, with the epoch's validation figures from the (trimmed) `log`.
    pub(super) fn catch_up_best(&self, dir: &Path, log: &str) -> Result<()> {
        let (Some(epoch), Some(monitored)) = (self.state.best_epoch, self.state.best_loss) else {
            return Ok(());
        };
        if epoch + 1 != self.state.next_epoch {
            return Ok(());
        }
        // Epoch and loss together: a `best/` left by another run in the folder may carry the
        // same epoch number.
        let saved = checkpoint::read_config(&dir.join(BEST_DIR)).ok().map(|c| {
            let field = |k: &str| c.metadata.get(k).cloned();
            (field("epoch"), field("monitored_loss"))
        });
        if saved == Some((Some(epoch.into()), Some(monitored.into()))) {
            return Ok(());
        }
        let (val_loss, val_accuracy) =
            log_record(log, epoch).map_or((None, None), |r| (r.val_loss, r.val_accuracy));
        self.save_best(dir, best_metadata(epoch, monitored, val_loss, val_accuracy))
    }

    /// Replaces `best/` as a whole with the current weights.
    pub(super) fn save_best(&self, dir: &Path, meta: serde_json::Value) -> Result<()> {
        let meta = self.checkpoint_meta(meta);
        checkpoint::replace_dir(&dir.join(BEST_DIR), |staging| {
            checkpoint::save_model_variables(staging, self.varmap, &self.model.config(), meta)
        })
    }

    /// Replaces `last/` as a whole (see [`checkpoint::replace_dir`]): a crash leaves either
    /// the previous epoch's four files or this one's, never a mix.
    pub(super) fn save_last(&self, dir: &Path) -> Result<()> {
        let meta = self.checkpoint_meta(serde_json::json!({ "next_epoch": self.state.next_epoch }));
        checkpoint::replace_dir(&dir.join(LAST_DIR), |staging| {
            checkpoint::save_model_variables(staging, self.varmap, &self.model.config(), meta)?;
            self.optimizer.save_state(&staging.join(OPTIMIZER_FILE))?;
            checkpoint::write_json_atomic(&staging.join(STATE_FILE), &self.state)
        })
    }
}

/// The state's best epoch and its loss are recorded together (both absent before the first
/// epoch), and the epoch is one the run has trained, before its next one. A state edited or
/// damaged otherwise would be trained on, and the run would record a best epoch that
/// `best/` does not hold (or none while its model is `best/`'s).
fn check_best_record(state: &TrainState, path: &Path) -> Result<()> {
    let problem = match (state.best_epoch, state.best_loss) {
        (Some(epoch), Some(_)) if epoch >= state.next_epoch => format!(
            "best_epoch {epoch} is not an epoch the run has trained (its next_epoch is {})",
            state.next_epoch
        ),
        (Some(_), None) | (None, Some(_)) => {
            "best_epoch and best_loss are recorded together (both null before the first epoch), \
             but one of them is null"
                .to_string()
        }
        _ => return Ok(()),
    };
    Err(ModelError::InvalidConfig(format!(
        "{}: {problem}; the file was edited or damaged",
        path.display()
    )))
}

/// Keeps only the log records of epochs before `next_epoch`: those after it belong to epochs
/// a resumed run trains again (their record was written, the checkpoint was not), and a last
/// line cut short by a crash (no newline after it) is dropped too. Any other line that is not
/// an epoch record is an error and the log is left as it is: a crash only ever cuts the last
/// line, so such a line was edited or damaged, and rewriting the log would delete it. The
/// log is rewritten atomically, and only if needed. Returns the kept records' text (empty
/// without a log).
fn trim_log(path: &Path, next_epoch: usize) -> Result<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(source) => {
            return Err(ModelError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    #[derive(Deserialize)]
    struct Epoch {
        epoch: usize,
    }
    let torn_tail = !text.is_empty() && !text.ends_with('\n');
    let count = text.lines().count();
    let mut kept: Vec<&str> = Vec::with_capacity(count);
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue; // a blank line holds no record (the rewrite drops it)
        }
        match serde_json::from_str::<Epoch>(line) {
            Ok(r) if r.epoch < next_epoch => kept.push(line),
            Ok(_) => {}
            Err(_) if torn_tail && n + 1 == count => {}
            Err(e) => {
                return Err(ModelError::InvalidConfig(format!(
                    "{}: line {} is not an epoch record ({e}); a crash only cuts the last \
                     line short, so the log was edited or damaged: mend or delete that line \
                     and resume again (the log is left as it is)",
                    path.display(),
                    n + 1
                )))
            }
        }
    }
    if kept.len() == text.lines().count() && (text.is_empty() || text.ends_with('\n')) {
        return Ok(text);
    }
    let mut trimmed = kept.join("\n");
    if !trimmed.is_empty() {
        trimmed.push('\n');
    }
    checkpoint::write_bytes_atomic(path, trimmed.as_bytes())?;
    Ok(trimmed)
}

/// What `best/`'s config records of the epoch it holds.
pub(super) fn best_metadata(
    epoch: usize,
    monitored: f64,
    val_loss: Option<f64>,
    val_accuracy: Option<f64>,
) -> serde_json::Value {
    serde_json::json!({
        "epoch": epoch, "monitored_loss": monitored,
        "val_loss": val_loss, "val_accuracy": val_accuracy,
    })
}

/// The record of `epoch` in the log's text, if it has one.
fn log_record(log: &str, epoch: usize) -> Option<EpochRecord> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<EpochRecord>(line).ok())
        .find(|r| r.epoch == epoch)
}

pub(super) fn append_log(path: &Path, record: &EpochRecord) -> Result<()> {
    let line = serde_json::to_string(record).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    writeln!(f, "{line}").map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // On the disk before `last/` says the epoch is done (`last/` is flushed too).
    f.sync_data().map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}
