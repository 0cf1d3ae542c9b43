//! The post-processing pipeline's JSON configuration on arbitrary bytes: parsed, validated
//! (`Pipeline::from_json`) and, when accepted, run on a small fixed radiograph and
//! probability map (3 classes, then 2), with field detection, thresholds and clean-up as the
//! config says. Never panics; an `Ok` output has the map's size and labels that are classes
//! of the map or 255.
#![no_main]
use libfuzzer_sys::fuzz_target;
use xray_postproc::{Pipeline, Plane, ProbMap};

const W: usize = 40;
const H: usize = 32;

/// A radiograph: collimated (dark) left and top bands, open beam, and a "limb" across the
/// middle with a brighter-absorbing "bone" inside it.
fn image() -> Vec<f32> {
    (0..W * H)
        .map(|i| {
            let (x, y) = (i % W, i / W);
            if x < 6 || y < 4 {
                20.0 + (x * 7 % 5) as f32
            } else if (12..20).contains(&y) && (14..22).contains(&x) {
                300.0
            } else if (10..22).contains(&y) {
                600.0
            } else {
                1000.0
            }
        })
        .collect()
}

/// Class-major probabilities that follow the image (open beam, soft tissue, bone), with a
/// little position noise so that thresholds fall on both sides.
fn probs(classes: usize, img: &[f32]) -> Vec<f32> {
    let mut p = vec![0.0f32; classes * W * H];
    for (i, &v) in img.iter().enumerate() {
        let k = if v > 900.0 || v < 100.0 {
            0
        } else if v > 500.0 {
            1
        } else {
            classes - 1
        };
        let wobble = ((i * 37) % 11) as f32 / 40.0;
        let main = 0.95 - wobble;
        for c in 0..classes {
            p[c * W * H + i] = if c == k {
                main
            } else {
                (1.0 - main) / (classes - 1) as f32
            };
        }
    }
    p
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pipe) = Pipeline::from_json(text) else {
        return;
    };
    let img = image();
    let plane = Plane::new(&img, W, H).expect("fixed plane");
    for classes in [3usize, 2] {
        let p = probs(classes, &img);
        let map = ProbMap::new(&p, classes, H, W).expect("fixed map");
        for category in [None, Some("hand")] {
            let Ok(out) = pipe.run(&plane, &map, category) else {
                continue;
            };
            assert_eq!(out.labels.dimensions(), (W as u32, H as u32));
            for &l in out.labels.as_raw() {
                assert!(
                    (l as usize) < classes || l == 255,
                    "label {l} with {classes} classes"
                );
            }
            if let Some(f) = &out.field {
                assert_eq!((f.width as usize, f.height as usize), (W, H));
            }
        }
    }
});
