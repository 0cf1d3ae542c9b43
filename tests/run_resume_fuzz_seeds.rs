//! Writes the seed corpora of the `run_resume` and `run_kfold` cargo-fuzz targets in `fuzz/`
//! (ignored by default): `cargo test --test run_resume_fuzz_seeds -- --ignored`. Each seed is
//! the target's mode byte (for `run_kfold` also its fold-and-call byte) followed by one file
//! of the tiny runs in `support/run_resume_fixture.rs` (made here as the targets make them),
//! an edit list for `run_resume`'s weight modes, or the pick of a file to remove.

use std::fs;
use std::path::{Path, PathBuf};

#[path = "support/run_resume_fixture.rs"]
mod fixture;

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_seeds(dir: &Path, seeds: &[Vec<u8>]) {
    for (n, seed) in seeds.iter().enumerate() {
        fs::write(dir.join(format!("seed{n}")), seed).unwrap();
    }
}

#[test]
#[ignore = "trains two tiny runs and writes fuzz/corpus; run by hand before fuzzing"]
fn write_run_resume_seeds() {
    let tmp =
        std::env::temp_dir().join(format!("xray-seg-run-resume-seeds-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);

    // run_resume: the files as they are (its resume then trains epoch 1), no edits, a
    // truncation to half, and every removal.
    let run_dir = tmp.join("resumable");
    fixture::make_resumable(&run_dir);
    let file = |name: &str| fs::read(run_dir.join(name)).unwrap();
    let half = |name: &str| (file(name).len() as u32 / 2).to_le_bytes();
    let mut seeds: Vec<Vec<u8>> = vec![
        [&[0u8][..], &file("last/trainer_state.json")].concat(),
        [&[1u8][..], &file("log.jsonl")].concat(),
        vec![2, 0],
        [&[2u8, 1][..], &half("last/optimizer.safetensors")].concat(),
        vec![3, 0],
        [&[3u8, 1][..], &half("last/model.safetensors")].concat(),
        [&[4u8][..], &file("last/config.json")].concat(),
        [&[5u8][..], &file("best/config.json")].concat(),
        [&[6u8][..], &file(xray_seg::train::RUN_OPTIONS_FILE)].concat(),
    ];
    seeds.extend((0..10).map(|pick| vec![7, pick]));
    write_seeds(&corpus("run_resume"), &seeds);
    let (outcomes, _) = xray_seg::train::run(&fixture::resume_job(run_dir.clone())).unwrap();
    assert_eq!(outcomes[0].summary.epochs_run, 2);
    assert_eq!(outcomes[0].summary.epochs.len(), 1);

    // run_kfold: each file of fold 0 and 1 under the three calls (the second byte: bit 0 the
    // fold, the rest the call), and every removal.
    let run_dir = tmp.join("kfold");
    fixture::make_kfold(&run_dir);
    let file = |name: &str| fs::read(run_dir.join(name)).unwrap();
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for select in 0..6u8 {
        let fold = format!("fold-{}", select & 1);
        for (mode, name) in [
            "kfold.json".to_string(),
            xray_seg::train::RUN_OPTIONS_FILE.to_string(),
            format!("{fold}/last/trainer_state.json"),
            format!("{fold}/log.jsonl"),
            format!("{fold}/best/config.json"),
        ]
        .iter()
        .enumerate()
        {
            seeds.push([&[mode as u8, select][..], &file(name)].concat());
        }
    }
    seeds.extend((0..10).map(|pick| vec![5, pick % 6, pick]));
    write_seeds(&corpus("run_kfold"), &seeds);
    for epochs in [1, 2] {
        let job = fixture::kfold_job(run_dir.clone(), epochs, true);
        let (outcomes, summary) = xray_seg::train::run(&job).unwrap();
        assert_eq!(summary.map(|s| s.folds), Some(2));
        assert!(outcomes.iter().all(|o| o.summary.epochs_run == epochs));
    }
    let e = xray_seg::train::run(&fixture::kfold_job(run_dir.clone(), 1, false)).unwrap_err();
    assert!(e.to_string().contains("pass --resume"), "{e}");
    fs::remove_dir_all(&tmp).unwrap();
}
