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
