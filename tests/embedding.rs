//! What a crate embedding `xnet-model` does with a `train` checkpoint, following the steps
//! xnet-model's crate documentation gives (section "Checkpoints of the `train` job and the
//! shipped weights"), must give the probabilities of `xray_seg::predict::Predictor`: if the
//! preprocessing the jobs apply changes, those docs (and this test) must change with it.

use candle_core::Device;
use xnet_model::checkpoint;
use xnet_model::infer::{self, FlipAverage, InferenceOptions};
use xray_data::normalize::{normalize, Method, NormalizeConfig};
use xray_data::resize::{resize, Filter};
use xray_data::Radiograph;
use xray_seg::predict::Predictor;

/// The documented steps, with only xnet-model and xray-data.
fn documented_steps(checkpoint_dir: &std::path::Path, image: &Radiograph) -> Vec<f32> {
    let mut loaded = checkpoint::load(checkpoint_dir, &Device::Cpu).unwrap();
    loaded.model.fold_batch_norm().unwrap();
    let meta = &loaded.metadata;
    let pre = &meta["preprocess"];
    let (w, h) = (
        pre["width"].as_u64().unwrap() as u32,
        pre["height"].as_u64().unwrap() as u32,
    );
    let method = match pre["percentile"].as_array() {
        Some(p) => Method::Percentile {
            low: p[0].as_f64().unwrap() as f32,
            high: p[1].as_f64().unwrap() as f32,
        },
        None => Method::MinMax,
    };
    let log = pre["log"].as_bool().unwrap();
    let flip_average: FlipAverage = match meta.get("flip_average") {
        Some(v) => serde_json::from_value(v.clone()).unwrap(),
        None => FlipAverage::Off,
    };
    let temperature = meta
        .get("temperature")
        .and_then(|t| t.as_f64())
        .unwrap_or(1.0);

    let small = resize(image, w, h, Filter::Area).unwrap();
    let plane = normalize(&small, &NormalizeConfig { method, log }).unwrap();
    // The whole network input in one tile, as the Predictor runs it: a checkpoint trained at
    // a size above the default tile (512) would otherwise be tiled.
    let opts = InferenceOptions {
        flip_average,
        tile_size: w.max(h) as usize,
        overlap: 0,
        ..Default::default()
    };
    let probs = infer::predict_proba(
        loaded.model.as_ref(),
        plane.as_raw(),
        h as usize,
        w as usize,
        &opts,
    )
    .unwrap();
    let c = loaded.model.num_classes();
    let n = (w * h) as usize;
    let mut out = Vec::new();
    for k in 0..c {
        let p = Radiograph::from_raw(w, h, probs[k * n..(k + 1) * n].to_vec()).unwrap();
        let back = resize(&p, image.width(), image.height(), Filter::Bilinear).unwrap();
        out.extend_from_slice(back.as_raw());
    }
    let m = (image.width() * image.height()) as usize;
    for i in 0..m {
        let sum: f32 = (0..c).map(|k| out[k * m + i]).sum();
        (0..c).for_each(|k| out[k * m + i] /= sum);
    }
    infer::apply_temperature(&mut out, c, temperature).unwrap();
    out
}

#[test]
fn documented_embedding_steps_give_the_predictors_probabilities() {
    let dir = xray_seg::shipped_weights_dir();
    // A 16-bit-like radiograph: open beam on the left, a "limb" with a denser core.
    let image = Radiograph::from_fn(150, 97, |x, y| {
        let r = ((x as f32 - 90.0).powi(2) / 900.0 + (y as f32 - 48.0).powi(2) / 1600.0).sqrt();
        let v = if r < 0.5 {
            9000.0
        } else if r < 1.0 {
            25000.0
        } else {
            60000.0
        };
        image::Luma([v + ((x * 31 + y * 17) % 97) as f32 * 10.0])
    });
    let want = Predictor::load(&dir, &Device::Cpu)
        .unwrap()
        .predict(&image)
        .unwrap();
    let got = documented_steps(&dir, &image);
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5,
            "value {i}: documented steps {a}, Predictor {b}"
        );
    }
}
