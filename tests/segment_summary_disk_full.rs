//! `segment`'s summary (`segment.jsonl`) carries the lines of earlier runs into the same
//! folder; a rewrite that fails part way (a full disk) must leave the earlier summary whole.
//!
//! The failed write is a real one: the process's file-size limit (`RLIMIT_FSIZE`) makes a
//! write past it fail with `EFBIG` after a short write, as a full disk fails one with
//! `ENOSPC`. The limit holds for the whole process, so this test crate has a single test.
#![cfg(target_os = "linux")]

use serde_json::json;
use xray_seg::segment::{write_summary, SUMMARY_FILE};

#[path = "../crates/xnet-model/tests/file_size_limit/mod.rs"]
mod file_size_limit;

use file_size_limit::limit_file_size;

#[test]
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
