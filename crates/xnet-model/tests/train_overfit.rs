//! A small XNet overfits two synthetic radiographs to ≥ 99% pixel accuracy (issue 4).

use candle_core::{DType, Device};
use candle_nn::VarMap;
use xnet_model::infer::{argmax_classes, predict_proba_batch, InferenceOptions};
use xnet_model::init::seeded_var_builder;
use xnet_model::models::{BatchNormSettings, ModelConfig, XNetConfig};
use xnet_model::optim::{LrSchedule, OptimizerConfig};
use xnet_model::train::{evaluate, InMemoryBatches, TrainBatch, TrainConfig, Trainer};

const SIZE: usize = 32;

/// Open beam (class 0, brightest), a disc of soft tissue (1) and a bar of bone (2) inside it,
/// with a little deterministic texture.
fn phantom(cx: f32, cy: f32, r: f32, bar_vertical: bool) -> (Vec<f32>, Vec<u8>) {
    let mut img = Vec::with_capacity(SIZE * SIZE);
    let mut lab = Vec::with_capacity(SIZE * SIZE);
    for y in 0..SIZE {
        for x in 0..SIZE {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let in_disc = dx * dx + dy * dy <= r * r;
            let (along, across) = if bar_vertical { (dy, dx) } else { (dx, dy) };
            let in_bar = in_disc && across.abs() <= 2.0 && along.abs() <= r * 0.7;
            let class = if in_bar {
                2
            } else if in_disc {
                1
            } else {
                0
            };
            let texture = (((x * 7 + y * 13) % 11) as f32 - 5.0) * 0.01;
            img.push([0.9f32, 0.45, 0.1][class] + texture);
            lab.push(class as u8);
        }
    }
    (img, lab)
}

#[test]
fn small_xnet_overfits_two_synthetic_images() {
    let dev = Device::Cpu;
    let (a_img, a_lab) = phantom(14.0, 15.0, 10.0, true);
    let (b_img, b_lab) = phantom(18.0, 17.0, 11.0, false);
    let images = [a_img, b_img].concat();
    let labels = [a_lab, b_lab].concat();
    let batch = TrainBatch::new(images.clone(), labels.clone(), 2, SIZE, SIZE).unwrap();

    let cfg = ModelConfig::XNet(XNetConfig {
        base_width: 4,
        // Faster running statistics than Keras' 0.99 so that inference-mode batch-norm catches
        // up within a short run.
        batch_norm: BatchNormSettings {
            momentum: 0.3,
            ..Default::default()
        },
        ..Default::default()
    });
    let varmap = VarMap::new();
    let model = cfg
        .build(seeded_var_builder(&varmap, 7, DType::F32, &dev))
        .unwrap();
    let train_cfg = TrainConfig {
        epochs: 100,
        optimizer: OptimizerConfig::adam(1e-2),
        // Annealing lets the weights, and with them the batch statistics, settle at the end.
        schedule: LrSchedule::Cosine {
            t_max: 100,
            eta_min: 1e-4,
        },
        early_stopping_patience: None,
        progress: false,
        ..Default::default()
    };
    let mut train = InMemoryBatches::new(vec![batch.clone()]);
    let mut trainer = Trainer::new(model.as_ref(), &varmap, train_cfg, &dev).unwrap();
    let summary = trainer.fit(&mut train, None).unwrap();
    let first = summary.epochs.first().unwrap().train_loss;
    let last = summary.epochs.last().unwrap().train_loss;
    assert!(last < 0.2 * first, "training loss {first} → {last}");
    eprintln!("training loss {first} → {last}");

    // Inference mode (running batch-norm statistics), through the trainer's evaluation...
    let eval = evaluate(
        model.as_ref(),
        &mut InMemoryBatches::new(vec![batch]),
        &Default::default(),
        &dev,
    )
    .unwrap();
    eprintln!("inference-mode pixel accuracy {}", eval.accuracy);
    assert!(
        eval.accuracy >= 0.99,
        "pixel accuracy {} (loss {first} → {last})",
        eval.accuracy
    );
    // ...and through the public inference path.
    let probs = predict_proba_batch(
        model.as_ref(),
        &images,
        2,
        SIZE,
        SIZE,
        &InferenceOptions::default(),
    )
    .unwrap();
    let plane = SIZE * SIZE;
    let mut correct = 0;
    for k in 0..2 {
        let pred =
            argmax_classes(&probs[k * 3 * plane..(k + 1) * 3 * plane], 3, SIZE, SIZE).unwrap();
        correct += pred
            .iter()
            .zip(&labels[k * plane..(k + 1) * plane])
            .filter(|(p, l)| p == l)
            .count();
    }
    let acc = correct as f64 / (2 * plane) as f64;
    assert!(acc >= 0.99, "predict_proba accuracy {acc}");
}
