//! Dataset folder parsing: happy path and every malformed-folder error.

mod common;
use common::Scratch;

use image::Luma;
use std::path::Path;
use xray_data::dataset::{parse_categories, Dataset, DatasetOptions};
use xray_data::io::{save_mask, save_png16, save_tiff_f32};
use xray_data::{DataError, Mask, Radiograph};

fn tempdir(tag: &str) -> Scratch {
    let dir = Scratch::new(&format!("xray-ds-folder-{tag}"));
    std::fs::create_dir_all(dir.join("images")).unwrap();
    dir
}

fn img(w: u32, h: u32) -> Radiograph {
    Radiograph::from_fn(w, h, |x, y| Luma([(x * 10 + y) as f32]))
}

fn mask(w: u32, h: u32) -> Mask {
    Mask::from_fn(w, h, |x, _| Luma([(x % 3) as u8]))
}

fn make(root: &Path, stems: &[&str], masks: bool) {
    if masks {
        std::fs::create_dir_all(root.join("masks")).unwrap();
    }
    for (i, s) in stems.iter().enumerate() {
        if i % 2 == 0 {
            save_png16(&root.join(format!("images/{s}.png")), &img(6, 4)).unwrap();
        } else {
            save_tiff_f32(&root.join(format!("images/{s}.tif")), &img(6, 4)).unwrap();
        }
        if masks {
            save_mask(&root.join(format!("masks/{s}.png")), &mask(6, 4)).unwrap();
        }
    }
}

fn message(e: &DataError) -> String {
    e.to_string()
}

#[test]
fn opens_a_complete_folder() {
    let root = tempdir("ok");
    make(&root, &["b", "a", "c"], true);
    std::fs::write(root.join("images/README.txt"), "ignored").unwrap();
    std::fs::write(
        root.join("categories.csv"),
        "stem,category\na,hand\nb, foot \n\n# note\nc,hand\n",
    )
    .unwrap();
    let ds = Dataset::open(&root, &DatasetOptions::default()).unwrap();
    let stems: Vec<&str> = ds.samples.iter().map(|s| s.stem.as_str()).collect();
    assert_eq!(stems, ["a", "b", "c"]);
    assert!(ds.has_masks());
    assert_eq!(ds.categories(), ["hand", "foot", "hand"]);
    ds.validate().unwrap();
    let (im, m) = ds.load(1).unwrap();
    assert_eq!(im, img(6, 4));
    assert_eq!(m.unwrap(), mask(6, 4));
}

#[test]
fn inference_only_without_masks_and_categories() {
    let root = tempdir("infer");
    make(&root, &["x", "y"], false);
    let ds = Dataset::open(&root, &DatasetOptions::default()).unwrap();
    assert!(!ds.has_masks());
    assert_eq!(ds.categories(), ["", ""]);
    assert!(ds.load(0).unwrap().1.is_none());
}

#[test]
fn structural_errors_name_the_file() {
    // Empty.
    let root = tempdir("empty");
    let e = Dataset::open(&root, &DatasetOptions::default()).unwrap_err();
    assert!(
        matches!(e, DataError::Dataset { .. }) && message(&e).contains("no images"),
        "{e}"
    );
    // Duplicate stem across extensions.
    let root = tempdir("dup");
    make(&root, &["a"], false);
    save_tiff_f32(&root.join("images/a.tiff"), &img(2, 2)).unwrap();
    let e = Dataset::open(&root, &DatasetOptions::default()).unwrap_err();
    assert!(message(&e).contains("duplicate stem \"a\""), "{e}");
    // Missing mask.
    let root = tempdir("missing");
    make(&root, &["a", "b"], true);
    std::fs::remove_file(root.join("masks/b.png")).unwrap();
    let e = Dataset::open(&root, &DatasetOptions::default()).unwrap_err();
    assert!(
        message(&e).contains("b.png") && message(&e).contains("missing mask"),
        "{e}"
    );
    // Mask without image.
    let root = tempdir("orphan");
    make(&root, &["a"], true);
    save_mask(&root.join("masks/z.png"), &mask(6, 4)).unwrap();
    let e = Dataset::open(&root, &DatasetOptions::default()).unwrap_err();
    assert!(message(&e).contains("z.png"), "{e}");
    // Category problems.
    let root = tempdir("cats");
    make(&root, &["a", "b"], false);
    std::fs::write(root.join("categories.csv"), "a,hand\n").unwrap();
    let e = Dataset::open(&root, &DatasetOptions::default()).unwrap_err();
    assert!(
        message(&e).contains("no category") && message(&e).contains("categories.csv"),
        "{e}"
    );
    std::fs::write(root.join("categories.csv"), "a,hand\nb,foot\nq,foot\n").unwrap();
    let e = Dataset::open(&root, &DatasetOptions::default()).unwrap_err();
    assert!(message(&e).contains("\"q\""), "{e}");
}

#[test]
fn pixel_errors_name_the_mask() {
    let root = tempdir("pixels");
    make(&root, &["a", "b"], true);
    save_mask(&root.join("masks/a.png"), &mask(5, 4)).unwrap();
    let ds = Dataset::open(&root, &DatasetOptions::default()).unwrap();
    match ds.validate() {
        Err(DataError::SizeMismatch {
            path,
            expected_width: 6,
            found_width: 5,
            ..
        }) => {
            assert!(path.ends_with("masks/a.png"))
        }
        other => panic!("{other:?}"),
    }
    let mut bad = mask(6, 4);
    bad.put_pixel(2, 3, Luma([7]));
    save_mask(&root.join("masks/a.png"), &bad).unwrap();
    match ds.validate() {
        Err(DataError::UnknownLabel {
            path,
            x: 2,
            y: 3,
            value: 7,
            ..
        }) => {
            assert!(path.ends_with("masks/a.png"))
        }
        other => panic!("{other:?}"),
    }
    let four = DatasetOptions {
        num_classes: 8,
        ..DatasetOptions::default()
    };
    Dataset::open(&root, &four).unwrap().validate().unwrap();
}

#[test]
fn categories_csv_parsing() {
    let p = Path::new("categories.csv");
    let ok = parse_categories("\u{feff}STEM,Category\r\na,1\r\n  b , x y \r\n", p).unwrap();
    assert_eq!(
        ok,
        vec![("a".into(), "1".into()), ("b".into(), "x y".into())]
    );
    for bad in ["a\n", "a,b,c\n", ",x\n", "a,\n", "a,x\na,y\n"] {
        let e = parse_categories(bad, p).unwrap_err();
        assert!(
            message(&e).contains("categories.csv") && message(&e).contains("line"),
            "{bad:?}: {e}"
        );
    }
    // A header is only recognised on the first data line.
    assert!(parse_categories("a,x\nstem,category\n", p).is_ok());
}

#[test]
fn from_listing_needs_no_file_system() {
    let names: Vec<String> = ["p.PNG", "q.dcm", ".hidden.png", "noext", "r.gif", "s.JPEG"]
        .map(String::from)
        .to_vec();
    let ds = Dataset::from_listing(
        Path::new("/nowhere"),
        &names,
        None,
        None,
        &DatasetOptions::default(),
    )
    .unwrap();
    let stems: Vec<&str> = ds.samples.iter().map(|s| s.stem.as_str()).collect();
    assert_eq!(stems, ["p", "q", "s"]);
}

#[test]
fn class_stats_from_folder() {
    let root = tempdir("stats");
    make(&root, &["a", "b"], true);
    let ds = Dataset::open(&root, &DatasetOptions::default()).unwrap();
    let s = ds.class_stats(&[0, 1]).unwrap();
    // mask(6, 4): columns x % 3 → 8 pixels of each class per mask.
    assert_eq!(s.pixels, vec![16, 16, 16]);
    let root = tempdir("stats-none");
    make(&root, &["a"], false);
    let ds = Dataset::open(&root, &DatasetOptions::default()).unwrap();
    assert!(ds.class_stats(&[0]).is_err());
}

#[test]
fn masks_or_categories_of_the_wrong_kind_are_errors_not_absent() {
    let root = tempdir("wrong-kind");
    make(&root, &["x", "y"], false);
    std::fs::create_dir_all(root.join("categories.csv")).unwrap();
    let e = message(&Dataset::open(&root, &DatasetOptions::default()).unwrap_err());
    assert!(
        e.contains("categories.csv") && e.contains("not a file"),
        "{e}"
    );
    std::fs::remove_dir_all(root.join("categories.csv")).unwrap();
    std::fs::write(root.join("masks"), "not a folder").unwrap();
    let e = message(&Dataset::open(&root, &DatasetOptions::default()).unwrap_err());
    assert!(e.contains("masks") && e.contains("not a folder"), "{e}");
    std::fs::remove_dir_all(&root).ok();
}

/// `--data DIR` given a folder of radiographs (as `segment` takes), or a path that is not
/// there, failed with "DIR/images: No such file or directory (os error 2)": true, but neither
/// that the dataset layout wants `images/` (and `masks/`) nor that the radiographs were found
/// one level up. The error now names the folder and says what a dataset folder holds.
#[test]
fn a_folder_without_images_subfolder_says_what_a_dataset_holds() {
    let dir = Scratch::new("xray-ds-folder-flat");
    // Radiographs (and masks, named alike) straight in the folder.
    save_png16(&dir.join("a.png"), &img(6, 4)).unwrap();
    save_png16(&dir.join("b.png"), &img(6, 4)).unwrap();
    std::fs::write(dir.join("notes.txt"), "x").unwrap();
    let e = Dataset::open(&dir, &DatasetOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("images/") && e.contains("masks/"), "{e}");
    assert!(e.contains("2 image files"), "{e}");
    // A folder that does not exist, and a file given for the folder.
    let missing = dir.join("no-such-set");
    let e = Dataset::open(&missing, &DatasetOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no-such-set") && e.contains("does not exist"),
        "{e}"
    );
    let e = Dataset::open(&dir.join("a.png"), &DatasetOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("a.png") && e.contains("not a folder"), "{e}");
    // An empty folder: the layout, without the count.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = Dataset::open(&empty, &DatasetOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("images/") && !e.contains("image files"), "{e}");
}

/// DICOM files from a modality or a PACS export are often named without an extension
/// (`IM000001`) or by their UID (`1.2.840….7`): `Dataset::open` finds them by their content
/// and pairs them with `masks/<file name>.png`, as `segment` reads them; before, they were
/// left out without a word (and their masks refused as "mask without image").
#[test]
fn dicom_files_without_an_image_extension_are_found_by_content() {
    use xray_data::io::{save_dicom, DicomWriteOptions};
    let root = tempdir("dicom-content");
    make(&root, &["a"], true);
    let dicom = Radiograph::from_fn(6, 4, |x, y| Luma([(x * 100 + y) as f32]));
    let names = ["IM000001", "1.2.840.113619.2.7", "c.DICOM"];
    for name in names {
        save_dicom(
            &root.join("images").join(name),
            &dicom,
            &DicomWriteOptions::default(),
        )
        .unwrap();
    }
    for stem in ["IM000001", "1.2.840.113619.2.7", "c"] {
        save_mask(&root.join(format!("masks/{stem}.png")), &mask(6, 4)).unwrap();
    }
    // Extension-less files that are not DICOM stay out, as other extensions do: a short
    // one, a text file, and a file with the magic at the wrong place.
    std::fs::write(root.join("images/README"), "notes").unwrap();
    std::fs::write(root.join("images/empty"), "").unwrap();
    std::fs::write(root.join("images/notes.md"), vec![b'x'; 200]).unwrap();
    let mut shifted = vec![0u8; 140];
    shifted[129..133].copy_from_slice(b"DICM");
    std::fs::write(root.join("images/shifted"), shifted).unwrap();

    let ds = Dataset::open(&root, &DatasetOptions::default()).unwrap();
    let stems: Vec<&str> = ds.samples.iter().map(|s| s.stem.as_str()).collect();
    assert_eq!(stems, ["1.2.840.113619.2.7", "IM000001", "a", "c"]);
    for (sample, file) in
        ds.samples
            .iter()
            .zip(["1.2.840.113619.2.7", "IM000001", "a.png", "c.DICOM"])
    {
        assert_eq!(sample.image, root.join("images").join(file));
        let stem = &sample.stem;
        assert_eq!(
            sample.mask.as_deref(),
            Some(root.join(format!("masks/{stem}.png")).as_path())
        );
    }
    for i in [0, 1, 3] {
        let (image, mask) = ds.load(i).unwrap();
        assert_eq!(image, dicom);
        assert!(mask.is_some());
    }

    // The stem of a DICOM found by content collides with a named image as any stem does.
    save_png16(&root.join("images/IM000001.png"), &img(6, 4)).unwrap();
    let e = Dataset::open(&root, &DatasetOptions::default()).unwrap_err();
    assert!(message(&e).contains("duplicate stem \"IM000001\""), "{e}");
    std::fs::remove_file(root.join("images/IM000001.png")).unwrap();

    // Without its mask the DICOM found by content is refused like any other image.
    std::fs::remove_file(root.join("masks/IM000001.png")).unwrap();
    let e = Dataset::open(&root, &DatasetOptions::default()).unwrap_err();
    assert!(
        message(&e).contains("IM000001.png") && message(&e).contains("missing mask"),
        "{e}"
    );
}
