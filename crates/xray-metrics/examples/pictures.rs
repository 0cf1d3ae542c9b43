//! Draws the pictures in docs/ from synthetic segmentations (deterministic, seed 7):
//!
//! ```text
//! cargo run --release -p xray-metrics --example pictures -- docs/images
//! ```
//! Writes `metrics-roc`, `metrics-reliability`, `metrics-confusion`, `metrics-training`
//! (`.png` and `.svg`), plus `metrics-report.json` / `.md` beside them.

use std::f64::consts::PI;

use xray_metrics::{
    fit_temperature, plot_confusion, plot_reliability, plot_roc, plot_training_curves,
    softmax_with_temperature, EvalConfig, Evaluator, LogitImage, TemperatureConfig, TrainingLog,
};

/// SplitMix64 + Box–Muller: enough randomness for pictures, no dependency.
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * PI * v).cos()
    }
}

/// A phantom-like label image: open beam outside a body ellipse, soft tissue inside, two
/// "bones", and a collimated border marked 255.
fn phantom(w: usize, h: usize, rng: &mut Rng) -> Vec<u8> {
    let (cx, cy) = (w as f64 * (0.45 + 0.1 * rng.uniform()), h as f64 * 0.5);
    let (ax, ay) = (w as f64 * 0.3, h as f64 * 0.42);
    let mut l = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = ((x as f64 - cx) / ax, (y as f64 - cy) / ay);
            let i = y * w + x;
            if dx * dx + dy * dy < 1.0 {
                l[i] = 1;
                let bone1 = ((x as f64 - cx + 0.3 * ax).abs() < ax * 0.12) && dy.abs() < 0.8;
                let bone2 = ((x as f64 - cx - 0.25 * ax).abs() < ax * 0.09) && dy.abs() < 0.7;
                if bone1 || bone2 {
                    l[i] = 2;
                }
            }
            if x < 4 || y < 3 || x >= w - 4 || y >= h - 3 {
                l[i] = 255;
            }
        }
    }
    l
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "docs/images".into()),
    );
    std::fs::create_dir_all(&out)?;
    let (w, h, c) = (96usize, 80usize, 3usize);
    let mut rng = Rng(7);
    let mut images = Vec::new();
    for _ in 0..12 {
        let labels = phantom(w, h, &mut rng);
        // Over-confident logits: the true class gets a boost, blurred noise elsewhere.
        let mut logits = vec![0f32; c * w * h];
        for i in 0..w * h {
            let t = if labels[i] == 255 {
                0
            } else {
                labels[i] as usize
            };
            for k in 0..c {
                let boost = if k == t { 2.2 } else { 0.0 };
                logits[k * w * h + i] = (3.0 * (boost + 1.1 * rng.normal())) as f32;
            }
        }
        images.push((labels, logits));
    }
    let fit = fit_temperature(
        &images
            .iter()
            .map(|(l, z)| LogitImage {
                logits: z,
                labels: l,
            })
            .collect::<Vec<_>>(),
        c,
        &TemperatureConfig::default(),
    )?;
    let mut ev = Evaluator::new(EvalConfig::default())?;
    for (labels, logits) in &images {
        let probs = softmax_with_temperature(logits, c, 1.0)?;
        ev.add_image(labels, &probs, w, h)?;
    }
    let mut report = ev.finish()?;
    report.temperature = Some(fit);
    report.save_json(out.join("metrics-report.json"))?;
    report.save_markdown(out.join("metrics-report.md"))?;
    plot_roc(&report, out.join("metrics-roc"))?;
    plot_reliability(&report, out.join("metrics-reliability"))?;
    plot_confusion(&report, out.join("metrics-confusion"))?;
    // A trainer-style log.
    let mut log = String::new();
    for e in 1..=30 {
        let t = e as f64;
        log.push_str(&format!(
            "{{\"epoch\":{e},\"train_loss\":{:.4},\"val_loss\":{:.4},\"val_accuracy\":{:.4},\"val_f1_weighted\":{:.4},\"lr\":0.0001,\"note\":\"text is ignored\"}}\n",
            0.25 + 0.9 * (-t / 6.0).exp() + 0.01 * rng.normal(),
            0.32 + 0.8 * (-t / 7.0).exp() + 0.002 * (t - 18.0).max(0.0) + 0.015 * rng.normal(),
            0.93 - 0.45 * (-t / 6.0).exp() + 0.005 * rng.normal(),
            0.92 - 0.5 * (-t / 6.5).exp() + 0.005 * rng.normal(),
        ));
    }
    std::fs::write(out.join("metrics-training-log.jsonl"), &log)?;
    plot_training_curves(&TrainingLog::parse(&log)?, out.join("metrics-training"))?;
    println!("{}", report.to_markdown());
    Ok(())
}
