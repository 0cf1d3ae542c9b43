//! Dataset folder parsing (file-name matching and categories.csv) on arbitrary input:
//! never panics; an accepted dataset has unique sorted stems, masks for all or none, and a
//! category for every sample exactly when a CSV was given.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use xray_data::dataset::{parse_categories, Dataset, DatasetOptions};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Sections separated by NUL: image names, mask names (optional), categories.csv (optional).
    let mut parts = text.split('\0');
    let images: Vec<String> = parts
        .next()
        .unwrap_or("")
        .lines()
        .map(String::from)
        .collect();
    let masks: Option<Vec<String>> = parts.next().map(|s| s.lines().map(String::from).collect());
    let csv = parts.next();
    let _ = parse_categories(&text, Path::new("categories.csv"));
    let Ok(ds) = Dataset::from_listing(
        Path::new("root"),
        &images,
        masks.as_deref(),
        csv,
        &DatasetOptions::default(),
    ) else {
        return;
    };
    assert!(!ds.is_empty());
    for w in ds.samples.windows(2) {
        assert!(w[0].stem < w[1].stem, "stems not unique and sorted");
    }
    assert!(ds
        .samples
        .iter()
        .all(|s| s.mask.is_some() == masks.is_some()));
    assert!(ds
        .samples
        .iter()
        .all(|s| s.category.is_some() == csv.is_some()));
});
