//! The public API agrees with itself across the four crates where a crate embedding them
//! would rely on it (the embedding walkthrough of 2026-12-02 found names and values that
//! differed from crate to crate).

/// The ignore label is one value under one name in every crate: `IGNORE_LABEL` (xray-metrics
/// and xray-postproc called it `IGNORE`, kept as deprecated aliases of the same value).
#[test]
fn every_crate_has_the_same_ignore_label() {
    let labels = [
        ("xray_data", xray_data::IGNORE_LABEL),
        ("xnet_model", xnet_model::IGNORE_LABEL),
        ("xray_metrics", xray_metrics::IGNORE_LABEL),
        ("xray_postproc", xray_postproc::IGNORE_LABEL),
    ];
    for (krate, label) in labels {
        assert_eq!(label, 255, "{krate}::IGNORE_LABEL");
    }
    #[allow(deprecated)]
    let old = [xray_metrics::IGNORE, xray_postproc::IGNORE];
    assert_eq!(old, [255, 255], "the deprecated IGNORE aliases");
}

/// A buffer is a probability map for xray-postproc (`ProbMap::new`) exactly when xnet-model's
/// temperature scaling (`apply_temperature`) takes it, at the lower bound: zero (and -0.0) is a
/// probability, no negative value is. `ProbMap` took values down to -1e-4 until 2026-12-02,
/// which `apply_temperature` (and xray-metrics) refused.
#[test]
fn prob_map_and_apply_temperature_agree_on_negative_values() {
    let smallest_negative = -f32::from_bits(1); // -1.4e-45, a subnormal
    let just_below_old_bound = -1e-4 - f32::EPSILON * 1e-4;
    let accepted = [0.0, -0.0, f32::from_bits(1), 1e-7];
    let refused = [
        smallest_negative,
        -1e-7,
        -1e-5,
        -1e-4,
        just_below_old_bound,
        -0.5,
    ];
    for (v, want) in accepted
        .map(|v| (v, true))
        .into_iter()
        .chain(refused.map(|v| (v, false)))
    {
        let data = [v, 1.0 - v.max(0.0)]; // 2 classes, 1 x 1 pixel
        let map = xray_postproc::ProbMap::new(&data, 2, 1, 1);
        assert_eq!(map.is_ok(), want, "ProbMap::new with {v:e}: {map:?}");
        for t in [1.0, 2.0] {
            let mut scaled = data;
            let r = xnet_model::infer::apply_temperature(&mut scaled, 2, t);
            assert_eq!(
                r.is_ok(),
                want,
                "apply_temperature at T {t} with {v:e}: {r:?}"
            );
        }
    }
}
