//! Outputs written again into a folder that holds earlier ones: a write that fails part way
//! (a full disk) must leave the earlier file whole. `segment`'s summary (`segment.jsonl`),
//! which carries the lines of earlier runs, `evaluate`'s report, and the files the library
//! crates' savers write (plots, a report's JSON and Markdown, masks, 16-bit PNGs, TIFFs,
//! DICOM files, overlays).
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
    library_files_that_cannot_be_rewritten_keep_the_earlier_ones_whole();
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

/// The names in `dir` that look like a temporary file of an atomic write.
fn temporaries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// Each of the library crates' savers, given a limit that cuts its rewrite short: before,
/// each wrote in place, and the failed rewrite left a cut file where the earlier one was.
fn library_files_that_cannot_be_rewritten_keep_the_earlier_ones_whole() {
    use xray_data::io::{save_dicom, save_mask, save_png16, save_tiff_f32, DicomWriteOptions};
    let dir = std::env::temp_dir().join(format!("xray-seg-library-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let item =
        xray_data::synth::generate_item(&xray_data::synth::PhantomConfig::with_size(64), 3, 0)
            .expect("phantom");
    let mut ev = xray_metrics::Evaluator::new(xray_metrics::EvalConfig::new([
        "open beam",
        "soft tissue",
        "bone",
    ]))
    .expect("evaluator");
    let labels = [0u8, 1, 2, 2];
    let probs = [
        0.8f32, 0.1, 0.1, 0.2, 0.1, 0.7, 0.1, 0.1, 0.1, 0.2, 0.8, 0.7,
    ];
    ev.add_image(&labels, &probs, 2, 2).expect("image");
    let report = ev.finish().expect("report");
    let overlay = xray_postproc::overlay(
        &xray_postproc::Plane::from_image(&item.image).expect("plane"),
        &item.mask,
        None,
        &xray_postproc::OverlayConfig::default(),
    )
    .expect("overlay");

    // Every saver once, with room.
    type Save<'a> = Box<dyn Fn() -> Result<(), String> + 'a>;
    let savers: Vec<(&str, Save)> = vec![
        (
            "report.json",
            Box::new(|| {
                report
                    .save_json(dir.join("report.json"))
                    .map_err(|e| e.to_string())
            }),
        ),
        (
            "report.md",
            Box::new(|| {
                report
                    .save_markdown(dir.join("report.md"))
                    .map_err(|e| e.to_string())
            }),
        ),
        (
            "roc.png",
            Box::new(|| {
                xray_metrics::plot_roc(&report, dir.join("roc"))
                    .map(drop)
                    .map_err(|e| e.to_string())
            }),
        ),
        (
            "mask.png",
            Box::new(|| save_mask(&dir.join("mask.png"), &item.mask).map_err(|e| e.to_string())),
        ),
        (
            "image.png",
            Box::new(|| save_png16(&dir.join("image.png"), &item.image).map_err(|e| e.to_string())),
        ),
        (
            "image.tif",
            Box::new(|| {
                save_tiff_f32(&dir.join("image.tif"), &item.image).map_err(|e| e.to_string())
            }),
        ),
        (
            "image.dcm",
            Box::new(|| {
                save_dicom(
                    &dir.join("image.dcm"),
                    &item.image,
                    &DicomWriteOptions::default(),
                )
                .map_err(|e| e.to_string())
            }),
        ),
        (
            "overlay.png",
            Box::new(|| {
                xray_postproc::save_png(dir.join("overlay.png"), &overlay)
                    .map_err(|e| e.to_string())
            }),
        ),
    ];
    for (file, save) in &savers {
        save().unwrap_or_else(|e| panic!("{file} with room: {e}"));
    }
    let earlier: Vec<Vec<u8>> = savers
        .iter()
        .map(|(file, _)| std::fs::read(dir.join(file)).expect("earlier file"))
        .collect();
    // Each rewrite gets room for half its file: it fails part way, as on a full disk.
    for ((file, save), before) in savers.iter().zip(&earlier) {
        limit_file_size(Some(before.len() as u64 / 2));
        let result = save();
        limit_file_size(None);
        let e = result.expect_err(&format!("{file}: a write past the limit fails"));
        assert!(e.contains(file), "the error names {file}: {e}");
        assert_eq!(
            &std::fs::read(dir.join(file)).expect("file"),
            before,
            "{file} was cut"
        );
        assert!(
            temporaries(&dir).is_empty(),
            "{file}: {:?}",
            temporaries(&dir)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
