//! The binary files of a run folder's `last/`, and `best/config.json`, through the public
//! resume check `xray_seg::train::run` with `resume` set, in the tiny real run of
//! `run_record` (`tests/support/run_record_fixture.rs`: two epochs, trained once per process
//! into `$TMPDIR/xray-fuzz-run-weights-<pid>/run`, restored before every input). The first
//! byte mod 5 picks what the rest does:
//!
//! - 0: replaces `last/optimizer.safetensors` (what `Optimizer::load_state` reads);
//! - 1: replaces `last/model.safetensors` (`checkpoint::load_weights_into`, with the
//!   `weights_digest` of `last/config.json`);
//! - 2: edits the real `last/optimizer.safetensors`, and 3 the real `last/model.safetensors`
//!   with the `weights_digest` taken out of `last/config.json` (a run saved before digests),
//!   so that edits reach the tensors' names, shapes, dtypes and values: the rest is an
//!   optional truncation (a flag byte, odd = truncate, then a little-endian `u32` length mod
//!   the file's length + 1) followed by patches of five bytes, a little-endian `u32` offset
//!   (mod the length) and the byte written there;
//! - 4: replaces `best/config.json`, which the resume reads because the fixture's best epoch
//!   is its last (`catch_up_best` rewrites `best/` when it does not record that epoch).
//!
//! `RUN_WEIGHTS_MODE=<0..=4>` in the environment runs every input in that mode instead.
//!
//! The resume asks for one epoch, so a folder that passes every check stops with "has
//! trained 2 epochs already" before training anything.
//!
//! Asserts: no panic; never `Ok`; the file as it was stops the resume (an empty edit list);
//! a refusal names the file; nothing in the run folder (outside `data/`) changes but `best/`
//! in mode 4; a stop (modes 0–3) means the file keeps what the loaders promise: the model
//! file the digest's bytes (mode 1), or the run's tensor names and shapes with finite values
//! and non-negative batch-norm running variances (mode 3); the optimiser state a whole,
//! non-negative step for every variable and state tensors of the variable's shape with
//! finite values, the squared averages non-negative (modes 0, 2); in mode 4 a stop always,
//! leaving a `best/config.json` of the run's best epoch and loss and the same weights.
#![no_main]
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use libfuzzer_sys::fuzz_target;
use xnet_model::checkpoint;
use xnet_model::train::TrainState;
use xray_seg::train::run;

mod byte_edits;
#[path = "../../tests/support/run_record_fixture.rs"]
mod fixture;
mod run_folder;

use byte_edits::edited;
use run_folder::{fresh_run, restore, snapshot, stopped_at, without_digest};

struct Fixture {
    run_dir: PathBuf,
    /// Every file of the run outside `data/`: path relative to the run, contents.
    files: BTreeMap<PathBuf, Vec<u8>>,
    /// `last/config.json` without its `weights_digest` (mode 3).
    config_without_digest: Vec<u8>,
    /// The shape of every tensor of `last/model.safetensors`.
    shapes: BTreeMap<String, Vec<usize>>,
    /// The variables of `last/optimizer.safetensors` (those with a step count), shapes.
    optimized: BTreeMap<String, Vec<usize>>,
    /// The state's best loss (mode 4).
    best_loss: f64,
}

const OPTIMIZER: &str = "last/optimizer.safetensors";
const MODEL: &str = "last/model.safetensors";
const LAST_CONFIG: &str = "last/config.json";
const BEST_CONFIG: &str = "best/config.json";
const BEST_MODEL: &str = "best/model.safetensors";

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (run_dir, _, files) = fresh_run("run-weights", fixture::make_fixture);
        let config_without_digest = without_digest(&files[Path::new(LAST_CONFIG)]);
        let shapes = candle_core::safetensors::load_buffer(&files[Path::new(MODEL)], &Device::Cpu)
            .unwrap()
            .into_iter()
            .map(|(k, t)| (k, t.dims().to_vec()))
            .collect();
        let shapes: BTreeMap<String, Vec<usize>> = shapes;
        let optimized =
            candle_core::safetensors::load_buffer(&files[Path::new(OPTIMIZER)], &Device::Cpu)
                .unwrap()
                .into_keys()
                .filter_map(|k| k.strip_suffix("/step").map(str::to_string))
                .map(|var| {
                    let dims = shapes[&var].clone();
                    (var, dims)
                })
                .collect();
        let state: TrainState =
            serde_json::from_slice(&files[Path::new("last/trainer_state.json")]).unwrap();
        assert_eq!((state.next_epoch, state.best_epoch), (2, Some(1)));
        Fixture {
            run_dir,
            files,
            config_without_digest,
            shapes,
            optimized,
            best_loss: state.best_loss.unwrap(),
        }
    })
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// What `checkpoint::load_weights_into` promises of a weights file it accepts.
fn check_weights(f: &Fixture, bytes: &[u8]) {
    let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
        .expect("accepted weights that do not load");
    let shapes: BTreeMap<String, Vec<usize>> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    assert_eq!(
        shapes, f.shapes,
        "accepted weights of other names or shapes"
    );
    for (name, t) in &tensors {
        for v in values(t) {
            assert!(v.is_finite(), "accepted weights: {name} holds {v}");
            if name.ends_with("running_var") {
                assert!(v >= 0.0, "accepted weights: {name} holds {v}");
            }
        }
    }
}

/// What `Optimizer::load_state` promises of a state file it accepts.
fn check_optimizer_state(f: &Fixture, bytes: &[u8]) {
    let tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .expect("accepted an optimiser state that does not load");
    for (var, dims) in &f.optimized {
        let step = tensors
            .get(&format!("{var}/step"))
            .unwrap_or_else(|| panic!("accepted a state without {var}/step"));
        assert_eq!(step.rank(), 0, "{var}/step");
        let step = values(step)[0];
        assert!(
            step.is_finite() && step >= 0.0 && step.fract() == 0.0,
            "accepted {var}/step = {step}"
        );
        // The fixture trains with Adam: it reads its two moments, and only those (another
        // optimiser's state in the file is not read), and a variable that has taken a step
        // holds both.
        for key in ["exp_avg", "exp_avg_sq"] {
            let Some(t) = tensors.get(&format!("{var}/{key}")) else {
                assert!(
                    step == 0.0,
                    "accepted a state without {var}/{key} after {step} step(s)"
                );
                continue;
            };
            assert_eq!(t.dims(), dims.as_slice(), "{var}/{key}");
            for v in values(t) {
                assert!(v.is_finite(), "accepted {var}/{key} holding {v}");
                if key == "exp_avg_sq" {
                    assert!(v >= 0.0, "accepted {var}/{key} holding {v}");
                }
            }
        }
    }
}

/// `RUN_WEIGHTS_MODE=<0..=4>` runs every input in that mode (its first byte still read), to
/// fuzz one mode at a time.
fn forced_mode() -> Option<u8> {
    static MODE: OnceLock<Option<u8>> = OnceLock::new();
    *MODE.get_or_init(|| {
        let mode = std::env::var("RUN_WEIGHTS_MODE").ok()?;
        let mode: u8 = mode.parse().expect("RUN_WEIGHTS_MODE is one of 0..=4");
        assert!(mode < 5, "RUN_WEIGHTS_MODE is one of 0..=4");
        Some(mode)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mode = forced_mode().unwrap_or(mode % 5);
    let f = fixture();
    let (file, bytes) = match mode {
        0 => (OPTIMIZER, rest.to_vec()),
        1 => (MODEL, rest.to_vec()),
        2 => (OPTIMIZER, edited(&f.files[Path::new(OPTIMIZER)], rest)),
        3 => (MODEL, edited(&f.files[Path::new(MODEL)], rest)),
        _ => (BEST_CONFIG, rest.to_vec()),
    };
    let mut changed = BTreeMap::new();
    changed.insert(PathBuf::from(file), bytes.clone());
    if mode == 3 {
        changed.insert(PathBuf::from(LAST_CONFIG), f.config_without_digest.clone());
    }
    restore(&f.run_dir, &f.files, &changed);
    let job = fixture::resume_job(f.run_dir.clone());

    let e = match run(&job) {
        Ok(_) => panic!("the resume trained a run that has trained more epochs than it asks"),
        Err(e) => e.to_string(),
    };
    let stopped = stopped_at(&e);
    let mut after = BTreeMap::new();
    snapshot(&f.run_dir, Path::new(""), &mut after);
    let mut expected = f.files.clone();
    expected.extend(changed);
    if mode == 4 {
        for name in [BEST_CONFIG, BEST_MODEL] {
            let kept = after.remove(Path::new(name)).is_some();
            assert!(kept, "{name} is gone after a resume: {e}");
            expected.remove(Path::new(name));
        }
    }
    let differing: Vec<_> = expected
        .keys()
        .chain(after.keys())
        .filter(|k| expected.get(*k) != after.get(*k))
        .collect();
    assert!(
        differing.is_empty(),
        "the resume changed {differing:?}: {e}"
    );

    if bytes == f.files[Path::new(file)] {
        assert_eq!(stopped, Some(2), "the run's own {file} was refused: {e}");
    }
    match (mode, stopped) {
        (4, _) => {
            assert_eq!(stopped, Some(2), "{e}");
            let best = checkpoint::read_config(&f.run_dir.join(BEST_CONFIG))
                .unwrap_or_else(|err| panic!("best/ left unreadable: {err}"));
            let field = |k: &str| best.metadata.get(k).cloned();
            assert_eq!(
                (field("epoch"), field("monitored_loss")),
                (Some(1.into()), Some(f.best_loss.into())),
                "best/ does not hold the best epoch"
            );
            assert_eq!(
                fs::read(f.run_dir.join(BEST_MODEL)).unwrap(),
                f.files[Path::new(BEST_MODEL)],
                "best/ holds other weights"
            );
        }
        (_, None) => {
            let name = Path::new(file).file_name().unwrap().to_str().unwrap();
            assert!(e.contains(name), "a refusal that does not name {name}: {e}");
        }
        (_, Some(n)) => {
            assert_eq!(n, 2, "{e}");
            match mode {
                0 | 2 => check_optimizer_state(f, &bytes),
                1 => assert_eq!(bytes, f.files[Path::new(MODEL)], "accepted other weights"),
                _ => check_weights(f, &bytes),
            }
        }
    }
});
