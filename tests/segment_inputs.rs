//! `segment::expand_inputs`: folders stand for their radiographs (by content or image
//! extension), other files are listed as skipped, and inputs whose outputs would share names
//! are refused before anything is written; a `--category` the post-processing config does not
//! know is refused.

use std::path::{Path, PathBuf};

use xray_seg::segment::{check_outputs_spare_inputs, check_unique_stems, expand_inputs};
use xray_seg::Error;

/// A fresh, empty folder for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xray-seg-inputs-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write test file");
}

/// 128 bytes of preamble, then `DICM`, as a DICOM Part 10 file starts.
fn dicom_head() -> Vec<u8> {
    let mut bytes = vec![0u8; 128];
    bytes.extend_from_slice(b"DICM");
    bytes.extend_from_slice(&[0u8; 16]);
    bytes
}

#[test]
fn a_folder_gives_its_radiographs_sorted_and_lists_the_rest() {
    let dir = scratch("folder");
    write(&dir.join("b.png"), b"\x89PNG\r\n\x1a\n....");
    write(&dir.join("a_tiff"), b"II*\0........");
    write(&dir.join("RG2_UNC"), &dicom_head());
    write(&dir.join("export_jpg"), b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00");
    // Named as images, corrupt or empty: kept, so that reading them reports the problem.
    write(&dir.join("corrupt.tif"), b"not a tiff");
    write(&dir.join("empty.DCM"), b"");
    write(&dir.join("cut.JPEG"), b"");
    write(&dir.join("README.md"), b"# notes");
    write(&dir.join("SHA256SUMS"), b"0123  RG2_UNC\n");
    std::fs::create_dir_all(dir.join("sub")).expect("sub-folder");
    write(&dir.join("sub").join("deeper.png"), b"\x89PNG\r\n\x1a\n");
    // What an earlier run with this folder as --out wrote beside its inputs.
    for out in [
        "b.labels.png",
        "b.field.png",
        "b.overlay.png",
        "b.uncertainty.png",
        "b.prob-0.png",
        "b.prob-12.png",
    ] {
        write(&dir.join(out), b"\x89PNG\r\n\x1a\n");
    }
    // Names that only look alike are radiographs.
    write(&dir.join("c.prob-x.png"), b"\x89PNG\r\n\x1a\n");
    write(&dir.join(".labels.png"), b"\x89PNG\r\n\x1a\n");

    let inputs = expand_inputs(std::slice::from_ref(&dir)).expect("folder expands");
    let names = |paths: &[PathBuf]| -> Vec<String> {
        paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(&inputs.files),
        [
            ".labels.png",
            "RG2_UNC",
            "a_tiff",
            "b.png",
            "c.prob-x.png",
            "corrupt.tif",
            "cut.JPEG",
            "empty.DCM",
            "export_jpg"
        ]
    );
    assert_eq!(names(&inputs.skipped), ["README.md", "SHA256SUMS", "sub"]);
    assert_eq!(
        names(&inputs.previous_outputs),
        [
            "b.field.png",
            "b.labels.png",
            "b.overlay.png",
            "b.prob-0.png",
            "b.prob-12.png",
            "b.uncertainty.png"
        ]
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn named_files_are_kept_in_the_order_given() {
    let dir = scratch("files");
    // Named files are kept as given, whatever their content: their errors come on reading.
    let z = dir.join("z.txt");
    let a = dir.join("a.png");
    write(&z, b"text");
    write(&a, b"\x89PNG\r\n\x1a\n");
    let inputs = expand_inputs(&[z.clone(), a.clone()]).expect("files are kept");
    assert_eq!(inputs.files, vec![z, a]);
    assert!(inputs.skipped.is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_inputs_empty_folders_and_no_inputs_are_errors() {
    let dir = scratch("errors");
    let missing = dir.join("absent.png");
    match expand_inputs(std::slice::from_ref(&missing)) {
        Err(Error::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected an I/O error naming the file, got {other:?}"),
    }
    write(&dir.join("README.md"), b"# notes");
    let err = expand_inputs(std::slice::from_ref(&dir)).expect_err("no radiograph in it");
    assert!(
        err.to_string().contains("no PNG, TIFF, JPEG or DICOM file"),
        "{err}"
    );
    assert!(matches!(expand_inputs(&[]), Err(Error::Invalid(_))));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn inputs_whose_outputs_would_collide_are_refused() {
    let dir = scratch("stems");
    let other = dir.join("other");
    std::fs::create_dir_all(&other).expect("second folder");
    write(&dir.join("hip.png"), b"\x89PNG\r\n\x1a\n");
    write(&other.join("hip.dcm"), &dicom_head());
    let err = expand_inputs(&[dir.join("hip.png"), other.clone()]).expect_err("same stem");
    let text = err.to_string();
    assert!(
        text.contains("hip.png") && text.contains("hip.dcm"),
        "{text}"
    );
    // The same file twice collides with itself too.
    let twice = [dir.join("hip.png"), dir.join("hip.png")];
    assert!(check_unique_stems(&twice).is_err());
    assert!(check_unique_stems(&[dir.join("hip.png"), other.join("knee.dcm")]).is_ok());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn inputs_that_the_outputs_would_overwrite_are_refused() {
    let dir = scratch("spare");
    let (a, a_labels) = (dir.join("a.png"), dir.join("a.labels.png"));
    write(&a, b"\x89PNG\r\n\x1a\n");
    // A radiograph that happens to be named like a's label map, named explicitly: segmenting
    // both into their own folder once replaced it with a's labels, then segmented those.
    write(&a_labels, b"\x89PNG\r\n\x1a\n");
    let both = [a.clone(), a_labels.clone()];
    let err = check_outputs_spare_inputs(&both, &dir).expect_err("a.labels.png is overwritten");
    assert!(
        matches!(err, Error::Invalid(_)) && err.to_string().contains("a.labels.png"),
        "{err}"
    );
    // The same folder named another way (relative, with `..`) is still the same folder.
    let roundabout = dir.join("sub").join("..");
    std::fs::create_dir_all(dir.join("sub")).expect("sub-folder");
    assert!(check_outputs_spare_inputs(&both, &roundabout).is_err());
    // A field report and the summary are outputs too.
    let json = dir.join("a.field.json");
    write(&json, b"\x89PNG\r\n\x1a\n");
    assert!(check_outputs_spare_inputs(&[a.clone(), json], &dir).is_err());
    let summary = dir.join("segment.jsonl");
    write(&summary, b"\x89PNG\r\n\x1a\n");
    assert!(check_outputs_spare_inputs(std::slice::from_ref(&summary), &dir).is_err());
    // Another folder, one not made yet, or no input of that stem: nothing is overwritten.
    assert!(check_outputs_spare_inputs(&both, &dir.join("sub")).is_ok());
    assert!(check_outputs_spare_inputs(&both, &dir.join("absent")).is_ok());
    assert!(check_outputs_spare_inputs(std::slice::from_ref(&a_labels), &dir).is_ok());
    // A symbolic link named as an input, leading to a file the outputs replace.
    #[cfg(unix)]
    {
        let elsewhere = scratch("spare-link");
        let link = elsewhere.join("b.png");
        std::os::unix::fs::symlink(&a_labels, &link).expect("link");
        assert!(check_outputs_spare_inputs(&[a.clone(), link], &dir).is_err());
        std::fs::remove_dir_all(&elsewhere).ok();
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_output_folder_that_is_a_file_is_refused_once_up_front() {
    let dir = scratch("out-file");
    let a = dir.join("a.png");
    write(&a, b"\x89PNG\r\n\x1a\n");
    // `segment --out notes.txt` (or `evaluate --out notes.txt`): each input's outputs, then
    // the summary, failed with "notes.txt: File exists (os error 17)" after the model had
    // loaded. The check made before loading it now says what is wrong.
    let file = dir.join("notes.txt");
    write(&file, b"notes");
    let err = check_outputs_spare_inputs(std::slice::from_ref(&a), &file)
        .expect_err("a file is no output folder");
    assert!(
        matches!(err, Error::Invalid(_))
            && err
                .to_string()
                .contains(&format!("--out {} is a file, not a folder", file.display())),
        "{err}"
    );
    assert_eq!(
        xray_seg::check_out_dir(&file).unwrap_err().to_string(),
        err.to_string()
    );
    // A folder to be made under a file names the file.
    let err = xray_seg::check_out_dir(&file.join("sub/out"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{} is a file, not a folder", file.display())),
        "{err}"
    );
    // Folders that exist or can be made are fine.
    assert!(xray_seg::check_out_dir(&dir).is_ok());
    assert!(xray_seg::check_out_dir(&dir.join("new/out")).is_ok());
    assert!(xray_seg::check_out_dir(Path::new("relative-out-not-made")).is_ok());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn zero_jobs_is_refused_not_taken_as_one() {
    use candle_core::Device;
    use xray_seg::segment::worker_count;
    // `segment --jobs 0` segmented one file at a time without a word.
    let err = worker_count(Some(0), &Device::Cpu, 5).expect_err("0 workers");
    assert!(
        matches!(err, Error::Invalid(_)) && err.to_string().contains("--jobs must be at least 1"),
        "{err}"
    );
    assert_eq!(worker_count(Some(2), &Device::Cpu, 5).unwrap(), 2);
    // Never more workers than files, and at least one.
    assert_eq!(worker_count(Some(8), &Device::Cpu, 3).unwrap(), 3);
    assert_eq!(worker_count(Some(8), &Device::Cpu, 0).unwrap(), 1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(
        worker_count(None, &Device::Cpu, 1000).unwrap(),
        cores.min(1000)
    );
}

#[test]
fn a_category_the_postproc_config_does_not_know_is_refused() {
    use xray_postproc::{Pipeline, PipelineConfig};
    use xray_seg::segment::check_category;
    // `segment --postproc chest.json --category chets` applied the default thresholds to
    // every input without a word.
    let pipeline =
        Pipeline::from_json(r#"{"thresholds": {"per_category": {"chest": 0.9, "hand": 0.95}}}"#)
            .expect("valid config");
    // Keys match whatever their case (DICOM writes `CHEST`), and blanks around are ignored.
    for known in ["chest", "hand", "Chest", "chest ", "HAND"] {
        assert!(check_category(&pipeline, known).is_ok(), "{known}");
    }
    for typo in ["chets", "ches", ""] {
        let err = check_category(&pipeline, typo).expect_err("an unknown category");
        let text = err.to_string();
        assert!(matches!(err, Error::Invalid(_)), "{text}");
        assert!(
            text.contains(&format!("--category {typo:?} is not a category"))
                && text.ends_with(r#"its categories: "chest", "hand""#),
            "{typo:?}: {text}"
        );
    }
    // Without per-category thresholds (no --postproc), any --category would change nothing.
    let plain = Pipeline::new(PipelineConfig::default()).unwrap();
    let text = check_category(&plain, "chest").unwrap_err().to_string();
    assert!(
        text.contains(r#"--category "chest" would change nothing"#)
            && text.contains("no per-category thresholds"),
        "{text}"
    );
}

/// A stem names the outputs `out_dir/<stem>.*`: one with a separator or `..` wrote them
/// outside `out_dir`, an empty one as hidden files.
#[test]
fn an_output_stem_must_be_one_plain_name() {
    let tmp = std::env::temp_dir().join(format!("xray-seg-stem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let out = tmp.join("out");
    let predictor = xray_seg::predict::Predictor::load(
        &xray_seg::shipped_weights_dir(),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let image = xray_data::Radiograph::from_fn(16, 16, |x, y| image::Luma([(x * 16 + y) as f32]));
    let opts = xray_seg::segment::SegmentOptions::default();
    for stem in ["../escaped", "", "..", "a/b"] {
        let err = xray_seg::segment::segment_image(&predictor, &image, stem, "mem", &out, &opts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("output stem"), "{stem:?}: {err}");
    }
    assert!(!tmp.join("escaped.labels.png").exists());
    assert!(!out.exists(), "nothing is written for a refused stem");
    let _ = std::fs::remove_dir_all(&tmp);
}
