//! Inputs at the edges: reports that do not describe one set of classes (an edited
//! `report.json`), NaN fields on a JSON round trip, logits whose curvature underflows in
//! temperature scaling, training logs spanning the whole f64 range.

use xray_metrics::*;

/// A small, consistent three-class report with boundary quality and AUC curves.
fn report() -> Report {
    let mut cfg = EvalConfig::new(["open beam", "soft tissue", "bone"]);
    cfg.boundary = true;
    let mut ev = Evaluator::new(cfg).unwrap();
    let labels = [0u8, 0, 1, 1, 2, 2];
    let mut probs = vec![0f32; 18];
    for (i, &l) in labels.iter().enumerate() {
        for k in 0..3 {
            probs[k * 6 + i] = if k == usize::from(l) { 0.8 } else { 0.1 };
        }
    }
    // One soft-tissue pixel called bone, so every score is not 1.
    probs[6 + 3] = 0.1;
    probs[12 + 3] = 0.8;
    ev.add_image(&labels, &probs, 3, 2).unwrap();
    ev.finish().unwrap()
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("xray-metrics-edge-{tag}-{}", std::process::id()))
}

#[test]
fn nan_fields_survive_a_json_round_trip() {
    let mut r = report();
    r.ece = f64::NAN;
    r.rmsce = f64::NAN;
    r.mce = f64::NAN;
    r.classwise_ece[1] = f64::NAN;
    r.classwise_ece_mean = f64::NAN;
    r.reliability.bins[0].confidence = f64::NAN;
    r.auc.curves[0][0].tpr = f64::NAN;
    r.auc.error_bound = f64::NAN;
    r.temperature = Some(TemperatureFit {
        temperature: f64::NAN,
        nll_before: f64::NAN,
        nll_after: f64::NAN,
        ece_before: f64::NAN,
        ece_after: f64::NAN,
        iterations: 3,
        pixels: 6,
    });
    let json = r.to_json().unwrap();
    assert!(json.contains(r#""ece": null"#), "{json}");
    let back = Report::from_json(&json).unwrap();
    assert!(back.ece.is_nan() && back.rmsce.is_nan() && back.mce.is_nan());
    assert!(back.classwise_ece[1].is_nan() && back.classwise_ece_mean.is_nan());
    assert!(back.reliability.bins[0].confidence.is_nan());
    assert!(back.auc.curves[0][0].tpr.is_nan() && back.auc.error_bound.is_nan());
    let t = back.temperature.unwrap();
    assert!(t.temperature.is_nan() && t.nll_after.is_nan() && t.ece_after.is_nan());
    assert_eq!(t.iterations, 3);
    // And through the files the jobs write.
    let dir = temp_dir("nan");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("report.json");
    r.save_json(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(Report::from_json(&text).unwrap().ece.is_nan());
    std::fs::remove_dir_all(&dir).unwrap();
}
