//! `ClassMetric::FBeta(β)` takes any finite β ≥ 0 and refuses the rest where it is built
//! from a config (deserialisation) or checked ([`ClassMetric::validate`]); `score()` cannot
//! return an error, so a β that `validate` refuses scores NaN there, never a plausible
//! number (a negative β used to score as F|β|, and a β whose square overflows, such as
//! `1e308`, which JSON carries, gave NaN for every class).

use xray_metrics::{Average, ClassMetric, ConfusionMatrix, MetricsError, ZeroDivision};

/// Two classes: class 0 has TP 2, FP 1, FN 2; class 1 has TP 3, FP 2, FN 1.
fn matrix() -> ConfusionMatrix {
    let truth = [0, 0, 0, 0, 1, 1, 1, 1];
    let pred = [0, 0, 1, 1, 1, 1, 1, 0];
    ConfusionMatrix::from_labels(&truth, &pred, 2).unwrap()
}

fn per_class(m: ClassMetric) -> Vec<f64> {
    matrix().per_class(m, ZeroDivision::Zero)
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-15, "{a:?} vs {b:?}");
    }
}

#[test]
fn f_beta_matches_its_definition_and_its_limits() {
    // (1 + β²) TP / ((1 + β²) TP + β² FN + FP) with β = 2, worked out by hand.
    close(
        &per_class(ClassMetric::FBeta(2.0)),
        &[10.0 / (10.0 + 8.0 + 1.0), 15.0 / (15.0 + 4.0 + 2.0)],
    );
    close(
        &per_class(ClassMetric::FBeta(1.0)),
        &per_class(ClassMetric::F1),
    );
    // β = 0 is precision (as scikit-learn); a huge β is recall, not NaN.
    close(
        &per_class(ClassMetric::FBeta(0.0)),
        &per_class(ClassMetric::Precision),
    );
    for beta in [1e10, 1e200, 1e308, f64::MAX] {
        close(
            &per_class(ClassMetric::FBeta(beta)),
            &per_class(ClassMetric::Recall),
        );
        let micro = matrix()
            .score(ClassMetric::FBeta(beta), Average::Micro, ZeroDivision::Zero)
            .value()
            .unwrap();
        assert!((micro - 5.0 / 8.0).abs() <= 1e-15, "β = {beta}: {micro}");
    }
}

#[test]
fn validate_refuses_nan_negative_and_infinite_beta() {
    for beta in [
        f64::NAN,
        -2.0,
        -f64::MIN_POSITIVE,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ] {
        let e = ClassMetric::FBeta(beta).validate().unwrap_err();
        assert!(matches!(e, MetricsError::InvalidConfig(_)), "{e:?}");
        let message = e.to_string();
        assert!(
            message.contains("f_beta") && message.contains("finite and ≥ 0"),
            "{beta}: {message}"
        );
    }
    for beta in [0.0, -0.0, 0.5, 2.0, 1e308] {
        ClassMetric::FBeta(beta).validate().unwrap();
    }
    for m in [
        ClassMetric::Precision,
        ClassMetric::Recall,
        ClassMetric::Specificity,
        ClassMetric::F1,
        ClassMetric::Iou,
        ClassMetric::Dice,
    ] {
        m.validate().unwrap();
    }
}

#[test]
fn an_invalid_beta_scores_nan_not_another_f_score() {
    let cm = matrix();
    for beta in [-2.0, f64::NAN, f64::INFINITY] {
        let m = ClassMetric::FBeta(beta);
        assert!(
            cm.per_class(m, ZeroDivision::Zero)
                .iter()
                .all(|v| v.is_nan()),
            "β = {beta}"
        );
        for avg in [Average::Micro, Average::Macro, Average::Weighted] {
            let v = cm.score(m, avg, ZeroDivision::One).value().unwrap();
            assert!(v.is_nan(), "β = {beta}, {avg:?}: {v}");
        }
    }
}

#[test]
fn deserialising_refuses_an_invalid_beta() {
    let ok: ClassMetric = serde_json::from_str(r#"{"f_beta": 2.0}"#).unwrap();
    assert_eq!(ok, ClassMetric::FBeta(2.0));
    let ok: ClassMetric = serde_json::from_str(r#""f1""#).unwrap();
    assert_eq!(ok, ClassMetric::F1);
    for json in [r#"{"f_beta": -2.0}"#, r#"{"f_beta": -1e308}"#] {
        let e = serde_json::from_str::<ClassMetric>(json).unwrap_err();
        let message = e.to_string();
        assert!(
            message.contains("f_beta") && message.contains("finite and ≥ 0"),
            "{json}: {message}"
        );
    }
    // Round trip of a valid metric.
    let text = serde_json::to_string(&ClassMetric::FBeta(0.5)).unwrap();
    assert_eq!(text, r#"{"f_beta":0.5}"#);
    assert_eq!(
        serde_json::from_str::<ClassMetric>(&text).unwrap(),
        ClassMetric::FBeta(0.5)
    );
}
