//! Writes the seed corpora of the `run_record` and `run_weights` cargo-fuzz targets in
//! `fuzz/` (ignored by default): `cargo test --test run_record_fuzz_seeds -- --ignored`. Each
//! seed is the target's mode byte followed by one file of the tiny run in
//! `support/run_record_fixture.rs` (trained here as the targets train it), or for
//! `run_weights`' edit modes a list of edits to one.

use std::fs;
use std::path::PathBuf;

#[path = "support/run_record_fixture.rs"]
mod fixture;

#[test]
#[ignore = "trains a tiny run and writes fuzz/corpus; run by hand before fuzzing"]
fn write_run_record_seeds() {
    let corpus = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/corpus/run_record"
    ));
    fs::create_dir_all(&corpus).unwrap();
    let tmp =
        std::env::temp_dir().join(format!("xray-seg-run-record-seeds-{}", std::process::id()));
    let run_dir = tmp.join("run");
    fixture::make_fixture(&run_dir);
    // As the run is, its resume passes every check of the folder and stops at its epochs.
    let e = xray_seg::train::run(&fixture::resume_job(run_dir.clone())).unwrap_err();
    assert!(
        e.to_string().contains("has trained 2 epochs already"),
        "{e}"
    );
    for (mode, name) in fixture::RECORDS.iter().enumerate() {
        let mut seed = vec![mode as u8];
        seed.extend(fs::read(run_dir.join(name)).unwrap());
        fs::write(corpus.join(format!("seed{mode}")), seed).unwrap();
    }
    write_run_weights_seeds(&run_dir);
    fs::remove_dir_all(&tmp).unwrap();
}

/// `run_weights`: 0 and 1 the real `last/optimizer.safetensors` and `last/model.safetensors`;
/// 2 and 3 edits of them (none, which the resume accepts, and a truncation to half); 4
/// `best/config.json`.
fn write_run_weights_seeds(run_dir: &std::path::Path) {
    let corpus = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/corpus/run_weights"
    ));
    fs::create_dir_all(&corpus).unwrap();
    let optimizer = fs::read(run_dir.join("last/optimizer.safetensors")).unwrap();
    let model = fs::read(run_dir.join("last/model.safetensors")).unwrap();
    let half = |len: usize| (len as u32 / 2).to_le_bytes();
    let mut seeds: Vec<Vec<u8>> = vec![
        [&[0u8][..], &optimizer].concat(),
        [&[1u8][..], &model].concat(),
        vec![2, 0],
        [&[2u8, 1][..], &half(optimizer.len())].concat(),
        vec![3, 0],
        [&[3u8, 1][..], &half(model.len())].concat(),
    ];
    let mut best = vec![4u8];
    best.extend(fs::read(run_dir.join("best/config.json")).unwrap());
    seeds.push(best);
    for (n, seed) in seeds.iter().enumerate() {
        fs::write(corpus.join(format!("seed{n}")), seed).unwrap();
    }
}
