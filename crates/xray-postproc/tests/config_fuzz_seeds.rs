//! Writes the seed corpus of the `pipeline_config` cargo-fuzz target in `fuzz/` (ignored by
//! default): `cargo test -p xray-postproc --test config_fuzz_seeds -- --ignored`.

use std::fs;
use std::path::PathBuf;
use xray_postproc::{Pipeline, PipelineConfig};

#[test]
#[ignore = "writes fuzz/corpus; run by hand before fuzzing"]
fn write_fuzz_seeds() {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/corpus/pipeline_config"
    ));
    fs::create_dir_all(&dir).unwrap();
    let mut seeds = vec![
        "{}".to_string(),
        serde_json::to_string_pretty(&PipelineConfig::default()).unwrap(),
        r#"{"detect_field": false, "thresholds": {"soft_threshold": 0.7, "per_category": {"hand": 0.9}, "min_confidence": [0.3, 0.4, 0.5]}}"#.into(),
        r#"{"cleanup": {"bone_open_radius": 1, "bone_dilate_radius": 2, "min_component_size": [4, 8, 8], "fill_holes": [{"class": 1, "max_area": 0}, {"class": 2, "max_area": 6}], "keep_largest": [1], "connectivity": "four"}}"#.into(),
    ];
    let mut every = PipelineConfig::default();
    every.cleanup.bone_open_radius = 1;
    every.cleanup.bone_dilate_radius = 1;
    every.cleanup.min_component_size = vec![0, 5, 5];
    every.thresholds.per_category.insert("hand".into(), 0.8);
    seeds.push(serde_json::to_string(&every).unwrap());
    for (i, s) in seeds.iter().enumerate() {
        // Every seed is accepted, so that the fuzzer starts past the parser.
        Pipeline::from_json(s).unwrap_or_else(|e| panic!("seed {i}: {e}"));
        fs::write(dir.join(format!("seed{i}.json")), s).unwrap();
    }
}
