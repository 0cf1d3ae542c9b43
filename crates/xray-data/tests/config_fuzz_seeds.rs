//! Writes the seed corpora of the `augment_config`, `augment_config_toml` and
//! `phantom_config` cargo-fuzz targets in `fuzz/` (ignored by default):
//! `cargo test -p xray-data --test config_fuzz_seeds -- --ignored`.

use std::fs;
use std::path::PathBuf;
use xray_data::augment::{
    Affine, Border, BrightnessContrast, CollimatorSim, Elastic, Gamma, GaussianBlur, GaussianNoise,
    Pipeline, PipelineConfig, PoissonNoise, RandomCrop, StepConfig, TransformSpec,
};
use xray_data::synth::{OutputScale, PhantomConfig};

fn corpus(target: &str) -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus")).join(target);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand before fuzzing"]
fn write_augment_seeds() {
    let (json_dir, toml_dir) = (corpus("augment_config"), corpus("augment_config_toml"));
    let step = |transform| StepConfig { p: 1.0, transform };
    let every = PipelineConfig {
        steps: vec![
            step(TransformSpec::HorizontalFlip),
            step(TransformSpec::VerticalFlip),
            step(TransformSpec::Affine(Affine {
                border: Border::Constant {
                    value: 0.0,
                    mask_value: 1,
                },
                ..Affine::default()
            })),
            step(TransformSpec::RandomCrop(RandomCrop::default())),
            step(TransformSpec::Elastic(Elastic::default())),
            step(TransformSpec::Elastic(Elastic::xnet_strong())),
            step(TransformSpec::GaussianBlur(GaussianBlur::default())),
            step(TransformSpec::GaussianNoise(GaussianNoise::default())),
            step(TransformSpec::PoissonNoise(PoissonNoise::default())),
            step(TransformSpec::Gamma(Gamma::default())),
            step(TransformSpec::BrightnessContrast(
                BrightnessContrast::default(),
            )),
            step(TransformSpec::Collimator(CollimatorSim::default())),
        ],
    };
    let seeds = [
        PipelineConfig::default(),
        PipelineConfig::xnet(),
        PipelineConfig::xnet_no_crop(),
        PipelineConfig::xnet_strong(),
        every,
    ];
    for (i, cfg) in seeds.iter().enumerate() {
        Pipeline::from_config(cfg).unwrap_or_else(|e| panic!("seed {i}: {e}"));
        let json = serde_json::to_string_pretty(cfg).unwrap();
        assert_eq!(&PipelineConfig::from_json(&json).unwrap(), cfg, "seed {i}");
        fs::write(json_dir.join(format!("seed{i}.json")), json).unwrap();
        let toml = toml::to_string(cfg).unwrap_or_else(|e| panic!("seed {i} as TOML: {e}"));
        assert_eq!(&PipelineConfig::from_toml(&toml).unwrap(), cfg, "seed {i}");
        fs::write(toml_dir.join(format!("seed{i}.toml")), toml).unwrap();
    }
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand before fuzzing"]
fn write_phantom_seeds() {
    let dir = corpus("phantom_config");
    let mut log = PhantomConfig::with_size(24);
    log.output = OutputScale::Log;
    log.collimation_probability = 1.0;
    log.marker_probability = 1.0;
    let mut linear = PhantomConfig::with_size(40);
    linear.height = 16;
    linear.output = OutputScale::Linear;
    let seeds = [
        PhantomConfig::with_size(16),
        PhantomConfig::with_size(32),
        PhantomConfig::with_size(64),
        log,
        linear,
    ];
    for (i, cfg) in seeds.iter().enumerate() {
        cfg.validate().unwrap_or_else(|e| panic!("seed {i}: {e}"));
        let json = serde_json::to_string_pretty(cfg).unwrap();
        fs::write(dir.join(format!("seed{i}.json")), json).unwrap();
    }
}
