//! Writes the seed corpus of the `run_record` cargo-fuzz target in `fuzz/` (ignored by
//! default): `cargo test --test run_record_fuzz_seeds -- --ignored`. Each seed is the
//! target's mode byte followed by one record of the tiny run in `support/run_record_fixture.rs`
//! (trained here as the target trains it).

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
    fs::remove_dir_all(&tmp).unwrap();
}
