//! DICOM-to-plane conversion on arbitrary bytes: never panics; a decoded plane has the
//! announced size and only finite values, its spacings and magnification factor are in
//! their checked ranges, and its refused spacings are a file's attributes, each with a
//! reason. The same bytes also go through format detection.
#![no_main]
use libfuzzer_sys::fuzz_target;
use xray_data::io::{decode_dicom, decode_image, LoadOptions};

fuzz_target!(|data: &[u8]| {
    let opts = LoadOptions {
        max_pixels: 1 << 20,
        frame: u32::from(data.first().copied().unwrap_or(0) % 3),
        ..LoadOptions::default()
    };
    if let Ok(d) = decode_dicom(data, &opts) {
        assert_eq!(d.image.dimensions(), (d.columns, d.rows));
        assert!(d.image.as_raw().iter().all(|v| v.is_finite()));
        assert!(d.frame < d.frames);
        // A spacing is a checked one, whichever attribute or functional group it came from,
        // and the plain pair says the same.
        for s in [d.pixel_spacing, d.imager_pixel_spacing]
            .into_iter()
            .flatten()
        {
            for v in [s.row_mm(), s.column_mm()] {
                assert!(v.is_finite() && v > 0.0 && v <= 10.0, "{s:?}");
            }
        }
        assert_eq!(
            d.pixel_spacing_mm,
            d.pixel_spacing.map(|s| [s.row_mm(), s.column_mm()])
        );
        // A refused spacing is a file's attribute, read at most once from each of the four
        // places (top level, the frame's and the shared functional group, the imager's),
        // with a reason.
        assert!(d.refused_spacing.len() <= 4, "{:?}", d.refused_spacing);
        for r in &d.refused_spacing {
            assert_ne!(r.attribute, xray_data::io::SpacingSource::Stated, "{r:?}");
            assert!(!r.reason.is_empty(), "{r:?}");
        }
        if let Some(m) = d.magnification_factor {
            assert!((1.0..=10.0).contains(&m), "{m}");
        }
    }
    if let Ok(img) = decode_image(std::path::Path::new("fuzz.dcm"), data, &opts) {
        assert!(u64::from(img.width()) * u64::from(img.height()) <= opts.max_pixels);
        assert!(img.as_raw().iter().all(|v| v.is_finite()));
    }
});
