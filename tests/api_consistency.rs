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

/// Parameter names that carry a width or a height.
const WIDTH_NAMES: [&str; 4] = ["w", "width", "out_w", "from_w"];
const HEIGHT_NAMES: [&str; 4] = ["h", "height", "out_h", "from_h"];

/// `(file:line, function)` of every `pub fn` under `dir` that takes both a width and a height
/// but whose docs have no `# Shapes` section.
fn sized_functions_without_shapes(dir: &std::path::Path, missing: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sized_functions_without_shapes(&path, missing);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(rest) = line.trim_start().strip_prefix("pub fn ") else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // The signature up to its body (or `;`).
            let mut signature = String::new();
            for l in &lines[i..] {
                signature.push_str(l);
                signature.push(' ');
                if l.contains('{') || l.trim_end().ends_with(';') {
                    break;
                }
            }
            let idents: Vec<&str> = signature
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .collect();
            let takes = |names: &[&str]| idents.iter().any(|t| names.contains(t));
            if !(takes(&WIDTH_NAMES) && takes(&HEIGHT_NAMES)) {
                continue;
            }
            let has_shapes = lines[..i]
                .iter()
                .rev()
                .map(|l| l.trim())
                .skip_while(|l| l.starts_with("#["))
                .take_while(|l| l.starts_with("///"))
                .any(|l| l == "/// # Shapes");
            if !has_shapes {
                missing.push(format!("{}:{} {name}", path.display(), i + 1));
            }
        }
    }
}

/// Height and width come in two orders in the workspace (tensor-like: height, width, as
/// candle; image-like: width, height, as `image`), both as plain integers, so a swapped pair
/// compiles. Every public function that takes both must say its order under `# Shapes`
/// (the embedding walkthrough found `predict_proba(h, w)` beside `Plane::new(w, h)` with
/// nothing saying which is which).
#[test]
fn every_public_function_taking_a_width_and_a_height_documents_their_order() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    for dir in [
        "src",
        "crates/xray-data/src",
        "crates/xnet-model/src",
        "crates/xray-metrics/src",
        "crates/xray-postproc/src",
    ] {
        sized_functions_without_shapes(&root.join(dir), &mut missing);
    }
    assert!(
        missing.is_empty(),
        "public functions taking a width and a height without a `# Shapes` section saying \
         their order (see docs/architecture.md, Sizes):\n{}",
        missing.join("\n")
    );
}

/// A crate embedding the library shares a loaded model, a post-processing pipeline and an
/// evaluator between threads (a scanner's acquisition and review threads, a server's request
/// handlers): they and every crate's error type are `Send + Sync`, checked at compile time so
/// that a field added later cannot take it away unnoticed (an `Rc` or a `RefCell` would).
#[test]
fn the_shared_types_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<xray_seg::predict::Predictor>();
    send_sync::<xray_seg::segment::SegmentOptions>();
    send_sync::<xray_seg::segment::Segmented>();
    send_sync::<xnet_model::checkpoint::LoadedModel>();
    send_sync::<Box<dyn xnet_model::Segmenter>>();
    send_sync::<xray_postproc::Pipeline>();
    send_sync::<xray_postproc::ProbMap>();
    send_sync::<xray_postproc::collimator::Collimator>();
    send_sync::<xray_metrics::Evaluator>();
    send_sync::<xray_metrics::Report>();
    send_sync::<xray_data::augment::Pipeline>();
    send_sync::<xray_data::io::DicomImage>();
    // Errors too, so that `?` into `Box<dyn Error + Send + Sync>` (anyhow, a thread's
    // result) works for each crate's.
    send_sync::<xray_seg::Error>();
    send_sync::<xnet_model::ModelError>();
    send_sync::<xray_data::DataError>();
    send_sync::<xray_metrics::MetricsError>();
    send_sync::<xray_postproc::PostprocError>();
}

/// One `Predictor` serves several threads at once (`predict` takes `&self`), each getting the
/// probabilities it gets alone: the inference's working buffers are per call, not shared.
#[test]
fn one_predictor_serves_several_threads_with_the_same_results() {
    use xray_data::synth::{generate_item, PhantomConfig};
    let predictor = xray_seg::predict::Predictor::load(
        &xray_seg::shipped_weights_dir(),
        &candle_core::Device::Cpu,
    )
    .expect("the shipped weights");
    let images: Vec<_> = (0..4)
        .map(|i| {
            generate_item(&PhantomConfig::with_size(48), 11, i)
                .unwrap()
                .image
        })
        .collect();
    let alone: Vec<Vec<f32>> = images
        .iter()
        .map(|img| predictor.predict(img).unwrap())
        .collect();
    let together: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = images
            .iter()
            .map(|img| s.spawn(|| predictor.predict(img).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(alone, together);
}
