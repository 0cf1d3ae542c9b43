//! Outputs written again into a folder that holds earlier ones: a write that fails part way
//! (a full disk) must leave the earlier file whole. `segment`'s summary (`segment.jsonl`),
//! which carries the lines of earlier runs, and `evaluate`'s report.
//!
//! The failed writes are real ones: the process's file-size limit (`RLIMIT_FSIZE`) makes a
//! write past it fail with `EFBIG` after a short write, as a full disk fails one with
//! `ENOSPC`. The limit holds for the whole process, so this test crate has a single test.
#![cfg(target_os = "linux")]

use candle_core::Device;
use serde_json::json;
use xray_data::dataset::{Dataset, DatasetOptions};
use xray_seg::evaluate::{evaluate_samples, write_evaluation};
use xray_seg::predict::Predictor;
use xray_seg::segment::{write_summary, SUMMARY_FILE};

#[path = "../crates/xnet-model/tests/file_size_limit/mod.rs"]
mod file_size_limit;

use file_size_limit::limit_file_size;

#[test]
fn outputs_that_cannot_be_rewritten_keep_the_earlier_ones_whole() {
    a_summary_that_cannot_be_rewritten_keeps_the_earlier_one_whole();
    a_report_that_cannot_be_rewritten_keeps_the_earlier_one_whole();
}

fn a_summary_that_cannot_be_rewritten_keeps_the_earlier_one_whole() {
    let out = std::env::temp_dir().join(format!("xray-seg-summary-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let failed = |input: &str| json!({ "input": input, "error": "cannot decode" });
    let summary = write_summary(&out, &[failed("a.png"), failed("b.png"), failed("c.png")])
        .expect("first summary");
    let earlier = std::fs::read_to_string(&summary).expect("summary");
    // A later run's summary holds the earlier lines plus its own: it outgrows a limit that
    // the earlier summary fits under.
    limit_file_size(Some(earlier.len() as u64 + 10));
    let result = write_summary(&out, &[failed("d.png")]);
    limit_file_size(None);
    let e = result
        .expect_err("the write past the limit fails")
        .to_string();
    assert!(e.contains(SUMMARY_FILE), "the error names the summary: {e}");
    assert_eq!(
        std::fs::read_to_string(&summary).expect("summary"),
        earlier,
        "the earlier summary was cut short"
    );
    let names: Vec<String> = std::fs::read_dir(&out)
        .expect("out")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [SUMMARY_FILE], "a temporary file was left behind");
    // Room again: the rewrite keeps every line.
    write_summary(&out, &[failed("d.png")]).expect("summary with room");
    assert_eq!(
        std::fs::read_to_string(&summary).unwrap().lines().count(),
        4
    );
    std::fs::remove_dir_all(&out).unwrap();
}

fn a_report_that_cannot_be_rewritten_keeps_the_earlier_one_whole() {
    let dir = std::env::temp_dir().join(format!("xray-seg-report-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    xray_data::synth::generate_dataset(&dir.join("data"), 1, 32, 1).expect("data");
    let ds = Dataset::open(&dir.join("data"), &DatasetOptions::default()).expect("dataset");
    let predictor =
        Predictor::load(&xray_seg::shipped_weights_dir(), &Device::Cpu).expect("weights");
    let eval = evaluate_samples(&predictor, &ds, &[0], Some(0.9)).expect("evaluation");
    let out = dir.join("report");
    write_evaluation(&eval, &out).expect("first evaluation");
    let files = [
        "report.json",
        "thresholds.json",
        "categories.json",
        "report.md",
    ];
    let earlier: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(out.join(f)).expect("report file"))
        .collect();
    // Nothing fits: the first file's rewrite fails at once.
    limit_file_size(Some(0));
    let result = write_evaluation(&eval, &out);
    limit_file_size(None);
    let e = result
        .expect_err("a write past the limit fails")
        .to_string();
    assert!(e.contains("report.json"), "the error names the file: {e}");
    for (file, before) in files.iter().zip(&earlier) {
        assert_eq!(
            &std::fs::read_to_string(out.join(file)).expect("report file"),
            before,
            "{file} was cut"
        );
    }
    let temporaries: Vec<String> = std::fs::read_dir(&out)
        .expect("out")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(temporaries.is_empty(), "{temporaries:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
