//! Golden tests against scikit-learn, torchmetrics and scipy. The expected numbers were
//! computed by `tests/golden/make_golden.py` (see its header) and committed in golden.json.

use serde_json::Value;
use xray_metrics::*;

fn golden() -> Value {
    serde_json::from_str(include_str!("golden/golden.json")).unwrap()
}

fn u8s(v: &Value) -> Vec<u8> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u8)
        .collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!(
        (a - b).abs() <= tol,
        "{what}: got {a}, expected {b} (tol {tol})"
    );
}

#[test]
fn torch_linspace_boundaries_are_bit_exact() {
    let g = golden();
    for (nb, vals) in g["boundaries"].as_object().unwrap() {
        let ours = torch_bin_boundaries(nb.parse().unwrap()).unwrap();
        assert_eq!(ours, f32s(vals), "n_bins = {nb}");
    }
}

#[test]
fn classification_scores_match_sklearn() {
    let g = golden();
    for case in g["classification"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let c = case["num_classes"].as_u64().unwrap() as usize;
        let labels = u8s(&case["labels"]);
        let pred = u8s(&case["pred"]);
        let e = &case["expected"];
        let cm = ConfusionMatrix::from_labels(&labels, &pred, c).unwrap();
        let cm_par = ConfusionMatrix::from_labels_par(&labels, &pred, c).unwrap();
        assert_eq!(cm, cm_par);
        let rows: Vec<Vec<u64>> = serde_json::from_value(e["confusion"].clone()).unwrap();
        assert_eq!(cm.rows(), rows, "{name} confusion");
        close(
            cm.accuracy().unwrap(),
            e["accuracy"].as_f64().unwrap(),
            1e-12,
            name,
        );
        close(
            cm.balanced_accuracy().unwrap(),
            e["balanced_accuracy"].as_f64().unwrap(),
            1e-12,
            name,
        );
        let metrics = [
            ("precision", ClassMetric::Precision),
            ("recall", ClassMetric::Recall),
            ("f1", ClassMetric::F1),
            ("f2", ClassMetric::FBeta(2.0)),
            ("jaccard", ClassMetric::Iou),
        ];
        for (zd_name, zd) in [("zd0", ZeroDivision::Zero), ("zd1", ZeroDivision::One)] {
            for (mname, m) in metrics {
                for (aname, avg) in [
                    ("micro", Average::Micro),
                    ("macro", Average::Macro),
                    ("weighted", Average::Weighted),
                ] {
                    let key = format!("{mname}_{aname}_{zd_name}");
                    close(
                        cm.score(m, avg, zd).value().unwrap(),
                        e[&key].as_f64().unwrap(),
                        1e-12,
                        &format!("{name} {key}"),
                    );
                }
                let key = format!("{mname}_none_{zd_name}");
                let ours = cm.score(m, Average::None, zd);
                for (a, b) in ours.per_class().unwrap().iter().zip(f64s(&e[&key])) {
                    close(*a, b, 1e-12, &format!("{name} {key}"));
                }
            }
        }
        let spec = cm.per_class(ClassMetric::Specificity, ZeroDivision::Zero);
        for (a, b) in spec.iter().zip(f64s(&e["specificity_per_class"])) {
            close(*a, b, 1e-12, &format!("{name} specificity"));
        }
    }
}

#[test]
fn auc_matches_sklearn_including_ties() {
    let g = golden();
    for case in g["classification"].as_array().unwrap() {
        let e = &case["expected"];
        if e.get("auc_macro").is_none() {
            continue;
        }
        let name = case["name"].as_str().unwrap();
        let c = case["num_classes"].as_u64().unwrap() as usize;
        let labels = u8s(&case["labels"]);
        let probs = f32s(&case["probs_class_major"]);
        let r = roc_ovr(&labels, &probs, c, MicroAuc::Compute).unwrap();
        for (k, want) in f64s(&e["auc_per_class"]).into_iter().enumerate() {
            close(
                r.per_class[k].auc.unwrap(),
                want,
                1e-12,
                &format!("{name} auc {k}"),
            );
        }
        close(
            r.average(Average::Macro).unwrap(),
            e["auc_macro"].as_f64().unwrap(),
            1e-12,
            name,
        );
        close(
            r.average(Average::Weighted).unwrap(),
            e["auc_weighted"].as_f64().unwrap(),
            1e-12,
            name,
        );
        close(
            r.average(Average::Micro).unwrap(),
            e["auc_micro"].as_f64().unwrap(),
            1e-12,
            name,
        );
        assert_eq!(
            roc_auc_ovr(&labels, &probs, c, Average::Weighted).unwrap(),
            r.average(Average::Weighted).unwrap()
        );
        // The binned estimate lies within its own error bound of the exact value.
        let mut b = BinnedAuc::new(c, 64).unwrap();
        b.add(&labels, &probs).unwrap();
        let br = b.finish();
        for (k, cr) in br.per_class.iter().enumerate() {
            let exact = r.per_class[k].auc.unwrap();
            assert!(
                (cr.auc.unwrap() - exact).abs() <= cr.error_bound + 1e-12,
                "{name} class {k}: binned {} exact {exact} bound {}",
                cr.auc.unwrap(),
                cr.error_bound
            );
        }
    }
}

#[test]
fn calibration_matches_torchmetrics() {
    let g = golden();
    for case in g["classification"].as_array().unwrap() {
        let e = &case["expected"];
        if e.get("ce_l1_15").is_none() {
            continue;
        }
        let name = case["name"].as_str().unwrap();
        assert!(e["torch_argmax_matches_numpy"].as_bool().unwrap());
        let c = case["num_classes"].as_u64().unwrap() as usize;
        let labels = u8s(&case["labels"]);
        let probs = f32s(&case["probs_class_major"]);
        for nb in [10usize, 15] {
            for (norm_name, norm) in [
                ("l1", CalibrationNorm::L1),
                ("l2", CalibrationNorm::L2),
                ("max", CalibrationNorm::Max),
            ] {
                let key = format!("ce_{norm_name}_{nb}");
                // torchmetrics accumulates in float32: agreement to ~1e-6.
                close(
                    calibration_error(&labels, &probs, c, nb, norm).unwrap(),
                    e[&key].as_f64().unwrap(),
                    2e-6,
                    &format!("{name} {key}"),
                );
            }
            let cw = classwise_reliability(&labels, &probs, c, nb).unwrap();
            for (k, want) in f64s(&e[&format!("classwise_ece_{nb}")])
                .into_iter()
                .enumerate()
            {
                close(cw[k].ece(), want, 1e-9, &format!("{name} classwise {k}"));
            }
            // Equal mass through the evaluator.
            let mut cfg = EvalConfig::new((0..c).map(|k| format!("c{k}")));
            cfg.n_bins = nb;
            cfg.boundary = false;
            let mut ev = Evaluator::new(cfg).unwrap();
            ev.add_image(&labels, &probs, labels.len(), 1).unwrap();
            let rep = ev.finish().unwrap();
            let em = rep.equal_mass.unwrap();
            close(
                em.ece,
                e[&format!("equal_mass_ece_{nb}")].as_f64().unwrap(),
                1e-9,
                name,
            );
            close(
                em.mce,
                e[&format!("equal_mass_mce_{nb}")].as_f64().unwrap(),
                1e-9,
                name,
            );
            close(
                rep.confidence.unwrap(),
                e["confidence"].as_f64().unwrap(),
                1e-9,
                name,
            );
            if nb == 15 {
                close(rep.ece, e["ce_l1_15"].as_f64().unwrap(), 2e-6, name);
                close(rep.mce, e["ce_max_15"].as_f64().unwrap(), 2e-6, name);
                close(
                    rep.auc.weighted.unwrap(),
                    e["auc_weighted"].as_f64().unwrap(),
                    1e-12,
                    name,
                );
                close(
                    rep.f1.weighted,
                    e["f1_weighted_zd0"].as_f64().unwrap(),
                    1e-12,
                    name,
                );
            }
        }
    }
}

#[test]
fn temperature_matches_scipy() {
    let g = golden();
    let t = &g["temperature"];
    let c = t["num_classes"].as_u64().unwrap() as usize;
    let labels = u8s(&t["labels"]);
    let logits = f32s(&t["logits_class_major"]);
    let e = &t["expected"];
    let fit = fit_temperature(
        &[LogitImage {
            logits: &logits,
            labels: &labels,
        }],
        c,
        &TemperatureConfig::default(),
    )
    .unwrap();
    close(
        fit.temperature,
        e["temperature"].as_f64().unwrap(),
        1e-6,
        "T",
    );
    close(
        fit.nll_before,
        e["nll_before"].as_f64().unwrap(),
        1e-9,
        "nll before",
    );
    close(
        fit.nll_after,
        e["nll_after"].as_f64().unwrap(),
        1e-9,
        "nll after",
    );
    close(
        fit.ece_before,
        e["ece_before_15"].as_f64().unwrap(),
        2e-6,
        "ece before",
    );
    close(
        fit.ece_after,
        e["ece_after_15"].as_f64().unwrap(),
        2e-6,
        "ece after",
    );
    assert!(fit.ece_after < fit.ece_before);
}

#[test]
fn surface_distances_match_scipy() {
    let g = golden();
    let b = &g["boundary"];
    let (w, h) = (
        b["width"].as_u64().unwrap() as usize,
        b["height"].as_u64().unwrap() as usize,
    );
    let d = surface_distances(&u8s(&b["truth"]), &u8s(&b["pred"]), w, h, 3, 1.0).unwrap();
    for (k, want) in b["expected"].as_array().unwrap().iter().enumerate() {
        let got = d[k].unwrap();
        close(got.hd95, want["hd95"].as_f64().unwrap(), 1e-9, "hd95");
        close(got.assd, want["assd"].as_f64().unwrap(), 1e-9, "assd");
        close(
            got.hausdorff,
            want["hausdorff"].as_f64().unwrap(),
            1e-9,
            "hausdorff",
        );
    }
}
