//! DICOM loading: the NEMA WG-04 CR samples and synthetic files covering every branch.

mod common;
mod transcode;
use common::Scratch;
use transcode::transcode;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use std::path::PathBuf;
use xray_data::io::{
    decode_dicom, encode_dicom, load_dicom, load_image, load_image_with_body_part,
    load_image_with_info, save_dicom, DicomWriteOptions, IntensityRelationship, LoadOptions,
    Photometric, SpacingCalibration, SpacingSource,
};
use xray_data::{DataError, Radiograph};

fn nema_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/nema-cr"
    ));
    if dir.join("RG2_UNC").exists() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: NEMA CR samples not found at {} (see docs/data-format.md)",
            dir.display()
        );
        None
    }
}

/// Mean of a rectangle `[x0, x1) × [y0, y1)`.
fn mean(img: &Radiograph, x0: u32, x1: u32, y0: u32, y1: u32) -> f64 {
    let mut s = 0.0;
    for y in y0..y1 {
        for x in x0..x1 {
            s += f64::from(img.get_pixel(x, y).0[0]);
        }
    }
    s / f64::from((x1 - x0) * (y1 - y0))
}

#[test]
fn nema_rg2_transfer_syntaxes_are_pixel_identical() {
    let Some(dir) = nema_dir() else { return };
    let opts = LoadOptions::default();
    let unc = load_dicom(&dir.join("RG2_UNC"), &opts).unwrap();
    assert_eq!((unc.columns, unc.rows), (1760, 2140));
    assert_eq!(unc.photometric, Photometric::Monochrome2);
    assert!(unc.inverted);
    assert_eq!(unc.bits_stored, 10);
    assert_eq!(unc.pixel_spacing_mm, Some([0.2, 0.2]));
    let spacing = unc.pixel_spacing.unwrap();
    assert_eq!(spacing.source(), SpacingSource::PixelSpacing);
    for name in ["RG2_RLE", "RG2_J2KR"] {
        let other = load_dicom(&dir.join(name), &opts).unwrap();
        assert_eq!(other.image.dimensions(), unc.image.dimensions(), "{name}");
        let diff = unc
            .image
            .as_raw()
            .iter()
            .zip(other.image.as_raw())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(diff, 0, "{name} differs from RG2_UNC in {diff} pixels");
        assert_ne!(other.transfer_syntax, unc.transfer_syntax);
    }
    // load_image dispatches files without extension by the DICM magic, even though these
    // dual-personality files also start with a TIFF header in their preamble.
    let via_image = load_image(&dir.join("RG2_UNC"), &opts).unwrap();
    assert_eq!(via_image.dimensions(), unc.image.dimensions());
    let diff = via_image
        .as_raw()
        .iter()
        .zip(unc.image.as_raw())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        diff, 0,
        "load_image differs from load_dicom in {diff} pixels"
    );
}

#[test]
fn nema_rg2_open_beam_is_brighter_than_collimator() {
    let Some(dir) = nema_dir() else { return };
    let d = load_dicom(&dir.join("RG2_UNC"), &LoadOptions::default()).unwrap();
    let img = &d.image;
    // Stored values 0..893 over 10 bits, mirrored: v' = 1023 - v.
    let (lo, hi) = img
        .as_raw()
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(lo >= 1023.0 - 893.0 && hi <= 1023.0, "range {lo}..{hi}");
    // Collimator bands down the left and right edges (stored ~890 → ~133 after loading).
    let left = mean(img, 0, 20, 900, 1200);
    let right = mean(img, 1740, 1760, 900, 1200);
    // Open beam: the brightest 1% of the image (stored ~130 → ~893) must be far above them.
    let mut sorted = img.as_raw().clone();
    sorted.sort_by(f32::total_cmp);
    let p99 = f64::from(sorted[sorted.len() * 99 / 100]);
    eprintln!("RG2: collimator left {left:.0}, right {right:.0}, 99th percentile {p99:.0}");
    assert!(
        left < 300.0 && right < 300.0,
        "collimator bands {left}, {right}"
    );
    assert!(p99 > 800.0, "open beam {p99}");
    assert!(p99 > left + 400.0 && p99 > right + 400.0);
}

#[test]
fn nema_rg1_monochrome1_keeps_values() {
    let Some(dir) = nema_dir() else { return };
    let path = dir.join("RG1_UNCR.dcm");
    let d = load_dicom(&path, &LoadOptions::default()).unwrap();
    assert_eq!(d.photometric, Photometric::Monochrome1);
    assert!(!d.inverted);
    assert_eq!(d.bits_stored, 15);
    assert_eq!((d.columns, d.rows), (1841, 1955));
    // Its PixelSpacing is "0.000\\0.000", and it has no ImagerPixelSpacing: no spacing.
    assert_eq!((d.pixel_spacing, d.pixel_spacing_mm), (None, None));
    // ... and says why, so that a caller can tell the user.
    assert_eq!(
        d.refused_spacing
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["PixelSpacing `0.000\\0.000` (0 mm is no distance)"]
    );
    let (lo, hi) = d
        .image
        .as_raw()
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    // MONOCHROME1 is already film-like: display-white (collimator, bone) = small values.
    assert_eq!((lo, hi), (874.0, 26479.0));
    // Collimation at the top: darker (fewer X-rays) than the lung field in the middle.
    let top = mean(&d.image, 600, 1200, 0, 40);
    let lungs = mean(&d.image, 300, 700, 700, 1100);
    eprintln!("RG1: top band {top:.0}, lung field {lungs:.0}");
    assert!(top < lungs, "top {top} vs lungs {lungs}");
}

#[test]
fn nema_body_parts_are_read_with_the_image() {
    let Some(dir) = nema_dir() else { return };
    let opts = LoadOptions::default();
    for (file, part) in [
        ("RG1_UNCR.dcm", "CHEST"),
        ("RG2_UNC", "HIP"),
        ("RG2_J2KR", "HIP"),
    ] {
        let (image, body_part) = load_image_with_body_part(&dir.join(file), &opts).unwrap();
        assert_eq!(body_part.as_deref(), Some(part), "{file}");
        assert_eq!(image, load_image(&dir.join(file), &opts).unwrap(), "{file}");
    }
    // A PNG has no body part.
    let dir = tempdir("body-part");
    let png = dir.join("plain.png");
    let img = Radiograph::from_raw(3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    xray_data::io::save_png16(&png, &img).unwrap();
    assert_eq!(load_image_with_body_part(&png, &opts).unwrap(), (img, None));
    std::fs::remove_dir_all(png.parent().unwrap()).ok();
}

#[test]
fn nema_rejects_oversized_and_bad_frame() {
    let Some(dir) = nema_dir() else { return };
    let path = dir.join("RG2_UNC");
    let small = LoadOptions {
        max_pixels: 1000,
        ..LoadOptions::default()
    };
    match load_dicom(&path, &small) {
        Err(DataError::TooLarge {
            path: p,
            width,
            height,
            ..
        }) => {
            assert_eq!((width, height), (1760, 2140));
            assert_eq!(p, path);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let frame1 = LoadOptions {
        frame: 1,
        ..LoadOptions::default()
    };
    assert!(matches!(
        load_dicom(&path, &frame1),
        Err(DataError::FrameOutOfRange {
            frame: 1,
            frames: 1,
            ..
        })
    ));
}

/// Builds a DICOM file with full control over the attributes that matter.
struct Raw {
    rows: u16,
    cols: u16,
    frames: Option<&'static str>,
    bits_allocated: u16,
    bits_stored: u16,
    high_bit: u16,
    signed: bool,
    photometric: &'static str,
    slope: Option<&'static str>,
    intercept: Option<&'static str>,
    inverse_lut: bool,
    intensity_sign: Option<i16>,
    samples_per_pixel: u16,
    pixel_spacing: Option<&'static str>,
    imager_pixel_spacing: Option<&'static str>,
    pixels: Vec<u8>,
}

impl Raw {
    fn new(rows: u16, cols: u16, pixels_u16: &[u16]) -> Self {
        Raw {
            rows,
            cols,
            frames: None,
            bits_allocated: 16,
            bits_stored: 16,
            high_bit: 15,
            signed: false,
            photometric: "MONOCHROME1",
            slope: None,
            intercept: None,
            inverse_lut: false,
            intensity_sign: None,
            samples_per_pixel: 1,
            pixel_spacing: None,
            imager_pixel_spacing: None,
            pixels: pixels_u16.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut obj = InMemDicomObject::from_element_iter([
            DataElement::new(
                tags::SOP_CLASS_UID,
                VR::UI,
                uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE,
            ),
            DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "2.25.7"),
            DataElement::new(
                tags::SAMPLES_PER_PIXEL,
                VR::US,
                PrimitiveValue::from(self.samples_per_pixel),
            ),
            DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, self.photometric),
            DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(self.rows)),
            DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(self.cols)),
            DataElement::new(
                tags::BITS_ALLOCATED,
                VR::US,
                PrimitiveValue::from(self.bits_allocated),
            ),
            DataElement::new(
                tags::BITS_STORED,
                VR::US,
                PrimitiveValue::from(self.bits_stored),
            ),
            DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(self.high_bit)),
            DataElement::new(
                tags::PIXEL_REPRESENTATION,
                VR::US,
                PrimitiveValue::from(u16::from(self.signed)),
            ),
        ]);
        if let Some(f) = self.frames {
            obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, f));
        }
        if let Some(s) = self.slope {
            obj.put(DataElement::new(tags::RESCALE_SLOPE, VR::DS, s));
        }
        if let Some(i) = self.intercept {
            obj.put(DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, i));
        }
        if self.inverse_lut {
            obj.put(DataElement::new(
                tags::PRESENTATION_LUT_SHAPE,
                VR::CS,
                "INVERSE",
            ));
        }
        if let Some(s) = self.pixel_spacing {
            obj.put(DataElement::new(tags::PIXEL_SPACING, VR::DS, s));
        }
        if let Some(s) = self.imager_pixel_spacing {
            obj.put(DataElement::new(tags::IMAGER_PIXEL_SPACING, VR::DS, s));
        }
        if let Some(sign) = self.intensity_sign {
            obj.put(DataElement::new(
                tags::PIXEL_INTENSITY_RELATIONSHIP_SIGN,
                VR::SS,
                PrimitiveValue::from(sign),
            ));
        }
        let vr = if self.bits_allocated == 8 {
            VR::OB
        } else {
            VR::OW
        };
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            vr,
            PrimitiveValue::U8(self.pixels.clone().into()),
        ));
        explicit_le_file(obj)
    }
}

/// `obj` as a whole DICOM file (preamble, meta group), explicit VR little endian.
fn explicit_le_file(obj: InMemDicomObject) -> Vec<u8> {
    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .unwrap();
    let mut out = Vec::new();
    file.write_all(&mut out).unwrap();
    out
}

fn load(raw: &Raw) -> Result<xray_data::io::DicomImage, DataError> {
    decode_dicom(&raw.bytes(), &LoadOptions::default())
}

#[test]
fn monochrome2_is_mirrored_within_bits_stored() {
    let mut raw = Raw::new(1, 3, &[0, 100, 1023]);
    raw.bits_stored = 10;
    raw.high_bit = 9;
    raw.photometric = "MONOCHROME2";
    assert_eq!(
        load(&raw).unwrap().image.as_raw(),
        &vec![1023.0, 923.0, 0.0]
    );
    raw.photometric = "MONOCHROME1";
    assert_eq!(
        load(&raw).unwrap().image.as_raw(),
        &vec![0.0, 100.0, 1023.0]
    );
    // An INVERSE presentation LUT flips the meaning back.
    raw.inverse_lut = true;
    assert_eq!(
        load(&raw).unwrap().image.as_raw(),
        &vec![1023.0, 923.0, 0.0]
    );
}

#[test]
fn the_intensity_sign_decides_the_mirroring_where_given() {
    let stored = [0u16, 100, 1023];
    let kept = vec![0.0, 100.0, 1023.0];
    let mirrored = vec![1023.0, 923.0, 0.0];
    for (photometric, inverse_lut) in [
        ("MONOCHROME1", false),
        ("MONOCHROME2", false),
        ("MONOCHROME1", true),
        ("MONOCHROME2", true),
    ] {
        let mut raw = Raw::new(1, 3, &stored);
        raw.bits_stored = 10;
        raw.high_bit = 9;
        raw.photometric = photometric;
        raw.inverse_lut = inverse_lut;
        // +1: larger stored values are more X-rays, as the convention wants; −1: fewer.
        for (sign, want, inverted) in [(1, &kept, false), (-1, &mirrored, true)] {
            raw.intensity_sign = Some(sign);
            let d = load(&raw).unwrap();
            assert_eq!(d.image.as_raw(), want, "{photometric} {inverse_lut} {sign}");
            assert_eq!((d.inverted, d.intensity_sign), (inverted, Some(sign as i8)));
        }
        // Any other value says nothing: display polarity decides, as without the tag.
        raw.intensity_sign = Some(0);
        let d = load(&raw).unwrap();
        let by_display = (photometric == "MONOCHROME2") != inverse_lut;
        assert_eq!((d.inverted, d.intensity_sign), (by_display, None));
    }
}

#[test]
fn rescale_slope_and_intercept_are_applied() {
    let mut raw = Raw::new(1, 2, &[10, 20]);
    raw.slope = Some("0.5");
    raw.intercept = Some("-3");
    let d = load(&raw).unwrap();
    assert_eq!(d.image.as_raw(), &vec![2.0, 7.0]);
    assert_eq!((d.rescale_slope, d.rescale_intercept), (0.5, -3.0));
}

#[test]
fn high_bits_outside_bits_stored_are_ignored_and_high_bit_shifts() {
    // 12 bits stored at bits 0..11; garbage in the top nibble must be masked off.
    let mut raw = Raw::new(1, 2, &[0xF000 | 4095, 0xA000 | 7]);
    raw.bits_stored = 12;
    raw.high_bit = 11;
    assert_eq!(load(&raw).unwrap().image.as_raw(), &vec![4095.0, 7.0]);
    // 12 bits stored at bits 4..15.
    let mut raw = Raw::new(1, 2, &[4095 << 4, 7 << 4 | 0xF]);
    raw.bits_stored = 12;
    raw.high_bit = 15;
    assert_eq!(load(&raw).unwrap().image.as_raw(), &vec![4095.0, 7.0]);
}

#[test]
fn signed_samples_are_sign_extended() {
    let mut raw = Raw::new(1, 3, &[0x0FFF, 0x0800, 0x0001]);
    raw.bits_stored = 12;
    raw.high_bit = 11;
    raw.signed = true;
    assert_eq!(
        load(&raw).unwrap().image.as_raw(),
        &vec![-1.0, -2048.0, 1.0]
    );
    // Mirrored within -2048..=2047: v' = -1 - v.
    raw.photometric = "MONOCHROME2";
    assert_eq!(load(&raw).unwrap().image.as_raw(), &vec![0.0, 2047.0, -2.0]);
}

#[test]
fn eight_bit_samples() {
    let mut raw = Raw::new(2, 2, &[]);
    raw.bits_allocated = 8;
    raw.bits_stored = 8;
    raw.high_bit = 7;
    raw.pixels = vec![0, 1, 254, 255];
    assert_eq!(
        load(&raw).unwrap().image.as_raw(),
        &vec![0.0, 1.0, 254.0, 255.0]
    );
}

#[test]
fn multi_frame_selects_the_frame() {
    let mut raw = Raw::new(1, 2, &[1, 2, 3, 4, 5, 6]);
    raw.frames = Some("3");
    for frame in 0..3u32 {
        let opts = LoadOptions {
            frame,
            ..LoadOptions::default()
        };
        let d = decode_dicom(&raw.bytes(), &opts).unwrap();
        assert_eq!(d.frames, 3);
        let f = frame as f32;
        assert_eq!(d.image.as_raw(), &vec![2.0 * f + 1.0, 2.0 * f + 2.0]);
    }
    let opts = LoadOptions {
        frame: 3,
        ..LoadOptions::default()
    };
    assert!(matches!(
        decode_dicom(&raw.bytes(), &opts),
        Err(DataError::FrameOutOfRange {
            frame: 3,
            frames: 3,
            ..
        })
    ));
}

#[test]
fn unsupported_layouts_are_typed_errors() {
    let mut raw = Raw::new(1, 1, &[1]);
    raw.photometric = "RGB";
    assert!(matches!(
        load(&raw),
        Err(DataError::Unsupported {
            what: "photometric interpretation",
            ..
        })
    ));
    let mut raw = Raw::new(1, 1, &[1]);
    raw.bits_stored = 6;
    raw.high_bit = 5;
    assert!(matches!(
        load(&raw),
        Err(DataError::Unsupported {
            what: "bits stored",
            ..
        })
    ));
    let mut raw = Raw::new(1, 1, &[1, 1]);
    raw.bits_allocated = 32;
    assert!(matches!(
        load(&raw),
        Err(DataError::Unsupported {
            what: "bits allocated",
            ..
        })
    ));
    let mut raw = Raw::new(1, 1, &[1, 1, 1]);
    raw.samples_per_pixel = 3;
    assert!(matches!(
        load(&raw),
        Err(DataError::Unsupported {
            what: "samples per pixel",
            ..
        })
    ));
}

#[test]
fn zero_size_truncated_and_corrupt_files_are_errors() {
    let raw = Raw::new(0, 4, &[]);
    assert!(matches!(load(&raw), Err(DataError::EmptyImage { .. })));
    // Pixel data shorter than rows × cols.
    let raw = Raw::new(4, 4, &[1, 2, 3]);
    assert!(
        matches!(
            load(&raw),
            Err(DataError::Decode {
                format: "DICOM",
                ..
            })
        ),
        "{:?}",
        load(&raw)
    );
    // Truncated file.
    let good = Raw::new(8, 8, &[7; 64]).bytes();
    for cut in [0, 10, 131, 200, good.len() - 50] {
        let r = decode_dicom(&good[..cut], &LoadOptions::default());
        assert!(
            matches!(r, Err(DataError::Decode { .. })),
            "cut at {cut}: {r:?}"
        );
    }
    // Garbage after the magic.
    let mut bad = good.clone();
    for b in bad[132..200].iter_mut() {
        *b = 0xFF;
    }
    assert!(decode_dicom(&bad, &LoadOptions::default()).is_err());
}

#[test]
fn errors_name_the_file() {
    let dir = tempdir("names");
    let path = dir.join("broken.dcm");
    std::fs::write(&path, b"not a dicom file at all").unwrap();
    let err = load_image(&path, &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("broken.dcm"), "{err}");
    let err = load_dicom(&dir.join("missing.dcm"), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("missing.dcm"), "{err}");
}

#[test]
fn writer_round_trips_both_photometrics() {
    let dir = tempdir("writer");
    let img = Radiograph::from_fn(5, 3, |x, y| image::Luma([(x * 700 + y * 11) as f32]));
    for photometric in [Photometric::Monochrome1, Photometric::Monochrome2] {
        let opts = DicomWriteOptions {
            photometric,
            bits_stored: 12,
            pixel_spacing_mm: Some([0.15, 0.2]),
            intensity_relationship: None,
        };
        let d = decode_dicom(&encode_dicom(&img, &opts).unwrap(), &LoadOptions::default()).unwrap();
        assert_eq!(d.image, img, "{photometric:?}");
        assert_eq!(d.photometric, photometric);
        assert_eq!(d.pixel_spacing_mm, Some([0.15, 0.2]));
        assert_eq!(d.intensity_relationship, None);
        for rel in [
            IntensityRelationship::Linear,
            IntensityRelationship::Log,
            IntensityRelationship::Display,
        ] {
            let opts = DicomWriteOptions {
                intensity_relationship: Some(rel),
                ..opts.clone()
            };
            let bytes = encode_dicom(&img, &opts).unwrap();
            let d = decode_dicom(&bytes, &LoadOptions::default()).unwrap();
            assert_eq!(d.image, img, "{photometric:?} {rel:?}");
            assert_eq!(d.intensity_relationship, Some(rel));
            // The same through the format-independent loader.
            let path = dir.join(format!("{photometric:?}-{rel:?}.dcm"));
            std::fs::write(&path, &bytes).unwrap();
            let (back, info) = load_image_with_info(&path, &LoadOptions::default()).unwrap();
            assert_eq!(back, img);
            assert_eq!(info.intensity_relationship, Some(rel));
        }
    }
    let too_big = Radiograph::from_pixel(1, 1, image::Luma([4096.0]));
    let opts = DicomWriteOptions {
        bits_stored: 12,
        ..DicomWriteOptions::default()
    };
    assert!(matches!(
        encode_dicom(&too_big, &opts),
        Err(DataError::ValueOutOfRange { .. })
    ));
}

/// A pixel spacing that is not finite and positive is refused by the writer (it wrote an
/// invalid `DS` value, and the file read back without a spacing); no file is written.
#[test]
fn writer_refuses_a_spacing_that_is_not_finite_and_positive() {
    let dir = tempdir("spacing");
    let img = Radiograph::from_pixel(2, 2, image::Luma([7.0]));
    for bad in [
        [f64::NAN, 0.2],
        [0.2, f64::INFINITY],
        [f64::NEG_INFINITY, 0.2],
        [-0.1, 0.2],
        [0.2, 0.0],
        [-0.0, 0.2],
        // A unit error (micrometres taken for mm): the reader would drop it.
        [0.2, 10.5],
        [139.0, 139.0],
        [0.2, 1000.0],
    ] {
        let opts = DicomWriteOptions {
            pixel_spacing_mm: Some(bad),
            ..DicomWriteOptions::default()
        };
        let err = encode_dicom(&img, &opts).unwrap_err();
        assert!(
            matches!(&err, DataError::InvalidParameter(m) if m.contains("pixel_spacing_mm")),
            "{bad:?}: {err}"
        );
        let path = dir.join("bad.dcm");
        assert!(save_dicom(&path, &img, &opts).is_err(), "{bad:?}");
        assert!(!path.exists(), "{bad:?}");
    }
    // A small positive spacing still round-trips, and so does the largest accepted.
    let opts = DicomWriteOptions {
        pixel_spacing_mm: Some([10.0, 0.5]),
        ..DicomWriteOptions::default()
    };
    let d = decode_dicom(&encode_dicom(&img, &opts).unwrap(), &LoadOptions::default()).unwrap();
    assert_eq!(d.pixel_spacing_mm, Some([10.0, 0.5]));
    let opts = DicomWriteOptions {
        pixel_spacing_mm: Some([1e-3, 0.5]),
        ..DicomWriteOptions::default()
    };
    let d = decode_dicom(&encode_dicom(&img, &opts).unwrap(), &LoadOptions::default()).unwrap();
    assert_eq!(d.pixel_spacing_mm, Some([1e-3, 0.5]));
}

#[test]
fn extensionless_file_with_magic_and_dcm_without_preamble() {
    let dir = tempdir("magic");
    let img = Radiograph::from_fn(3, 2, |x, y| image::Luma([(x + 10 * y) as f32]));
    let bytes = encode_dicom(&img, &DicomWriteOptions::default()).unwrap();
    let p = dir.join("IMG0001");
    std::fs::write(&p, &bytes).unwrap();
    assert_eq!(load_image(&p, &LoadOptions::default()).unwrap(), img);
    // Without the 128-byte preamble only the extension identifies it.
    let p = dir.join("nopreamble.dcm");
    std::fs::write(&p, &bytes[128..]).unwrap();
    assert_eq!(load_image(&p, &LoadOptions::default()).unwrap(), img);
    let p = dir.join("nopreamble.bin");
    std::fs::write(&p, &bytes[128..]).unwrap();
    assert!(matches!(
        load_image(&p, &LoadOptions::default()),
        Err(DataError::UnknownFormat { .. })
    ));
}

fn tempdir(tag: &str) -> Scratch {
    Scratch::new(&format!("xray-io-dicom-{tag}"))
}

#[test]
fn jpeg_ls_lossless_round_trips_exactly() {
    let img = Radiograph::from_fn(37, 23, |x, y| {
        image::Luma([((x * 131 + y * 977) % 4096) as f32])
    });
    for photometric in [Photometric::Monochrome1, Photometric::Monochrome2] {
        let opts = DicomWriteOptions {
            photometric,
            bits_stored: 12,
            ..DicomWriteOptions::default()
        };
        let plain = encode_dicom(&img, &opts).unwrap();
        // dicom-rs has no RLE encoder; RLE decoding is covered by RG2_RLE.
        let uid = uids::JPEGLS_LOSSLESS;
        let d = decode_dicom(&transcode(&plain, uid), &LoadOptions::default()).unwrap();
        assert_eq!(d.transfer_syntax, uid);
        assert!(
            d.image.as_raw() == img.as_raw(),
            "{photometric:?} not lossless"
        );
    }
}

#[test]
fn nema_rg2_jpeg_ls_lossless_is_pixel_identical() {
    let Some(dir) = nema_dir() else { return };
    let bytes = std::fs::read(dir.join("RG2_UNC")).unwrap();
    let unc = decode_dicom(&bytes, &LoadOptions::default()).unwrap();
    let jls = decode_dicom(
        &transcode(&bytes, uids::JPEGLS_LOSSLESS),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(jls.transfer_syntax, uids::JPEGLS_LOSSLESS);
    assert!(
        jls.image.as_raw() == unc.image.as_raw(),
        "JPEG-LS decode differs"
    );
}

#[test]
fn a_header_that_does_not_describe_the_pixel_data_is_an_error() {
    let pixels: Vec<u16> = (0..24).collect();
    // As written: 4 × 6, 16 bits.
    assert!(load(&Raw::new(4, 6, &pixels)).is_ok());
    // Rows understated: the decoder would read the first row and say nothing.
    let e = load(&Raw::new(1, 6, &pixels)).unwrap_err().to_string();
    assert!(
        e.contains("48 bytes") && e.contains("1 × 6 × 2 × 1 = 12"),
        "{e}"
    );
    // BitsAllocated 8 over 16-bit data.
    let mut raw = Raw::new(4, 6, &pixels);
    (raw.bits_allocated, raw.bits_stored, raw.high_bit) = (8, 8, 7);
    let e = load(&raw).unwrap_err().to_string();
    assert!(e.contains("does not describe"), "{e}");
    // Short data: the message suggests truncation.
    let e = load(&Raw::new(8, 6, &pixels)).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
    // NumberOfFrames counts: two frames of 2 × 6.
    let mut raw = Raw::new(2, 6, &pixels);
    raw.frames = Some("2");
    assert!(load(&raw).is_ok());
}

#[test]
fn a_truncated_file_is_called_truncated() {
    let pixels: Vec<u16> = (0..24).collect();
    let bytes = Raw::new(4, 6, &pixels).bytes();
    for cut in [bytes.len() - 10, bytes.len() / 2] {
        let e = decode_dicom(&bytes[..cut], &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "cut at {cut}: {e}");
    }
}

/// `raw`'s file with `depth` nested sequences (Referenced Image Sequence, one item each)
/// before the pixel data.
fn with_nested_sequences(raw: &Raw, depth: usize) -> Vec<u8> {
    use dicom_core::value::DataSetSequence;
    let file = dicom_object::from_reader(std::io::Cursor::new(raw.bytes())).unwrap();
    let mut obj = file.into_inner();
    let mut inner = InMemDicomObject::from_element_iter([DataElement::new(
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        "2.25.8",
    )]);
    for _ in 0..depth {
        inner = InMemDicomObject::from_element_iter([DataElement::new(
            tags::REFERENCED_IMAGE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![inner]),
        )]);
    }
    for e in inner {
        obj.put(e);
    }
    explicit_le_file(obj)
}

#[test]
fn declared_lengths_beyond_the_file_are_refused_before_parsing() {
    // The pixel data's header claims 2 GiB in a file of a few hundred bytes: the parser
    // would allocate that before finding the file short (2.1 GB of memory, a second).
    let raw = Raw::new(4, 6, &(0..24).collect::<Vec<u16>>());
    let mut bytes = raw.bytes();
    let at = bytes
        .windows(6)
        .position(|w| w == [0xE0, 0x7F, 0x10, 0x00, b'O', b'W'])
        .unwrap();
    bytes[at + 8..at + 12].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
    let e = decode_dicom(&bytes, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("element (7FE0,0010) at byte {at} of the file"))
            && e.contains("2147483632 bytes, but only 48 follow")
            && e.contains("truncated or corrupt"),
        "{e}"
    );
}

#[test]
fn nested_sequences_decode_up_to_a_depth_and_are_refused_beyond() {
    let raw = Raw::new(4, 6, &(0..24).collect::<Vec<u16>>());
    let plain = load(&raw).unwrap();
    let ok = decode_dicom(&with_nested_sequences(&raw, 40), &LoadOptions::default()).unwrap();
    assert_eq!(ok.image.as_raw(), plain.image.as_raw());
    // Past 64 levels the parser's recursion would, some thousands deep, overflow the stack
    // and abort the process; such files are refused.
    let e = decode_dicom(&with_nested_sequences(&raw, 65), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("nested more than 64 deep"), "{e}");
}

#[test]
fn a_codestream_declaring_another_size_is_refused_before_decoding() {
    // JPEG-LS: the frame header (SOF55) of a 37 × 23 image set to 60000 × 60000, which its
    // decoder would have allocated for.
    let img = Radiograph::from_fn(37, 23, |x, y| image::Luma([(x * 7 + y) as f32]));
    let plain = encode_dicom(&img, &DicomWriteOptions::default()).unwrap();
    let mut ls = transcode(&plain, uids::JPEGLS_LOSSLESS);
    assert!(decode_dicom(&ls, &LoadOptions::default()).is_ok());
    let sof = ls.windows(2).position(|w| w == [0xFF, 0xF7]).unwrap();
    assert_eq!(ls[sof + 5..sof + 9], [0, 23, 0, 37]);
    // Three components in a one-sample image: each would cost the decoder a plane.
    let mut three = ls.clone();
    three[sof + 9] = 3;
    let e = decode_dicom(&three, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("has 3 components by its own header"), "{e}");
    ls[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    let e = decode_dicom(&ls, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("fragment 0 of the pixel data is a 60000x60000 image by its own header")
            && e.contains("Columns x Rows say 37x23"),
        "{e}"
    );
}

#[test]
fn nema_rg2_jpeg_2000_with_a_forged_size_is_refused_at_once() {
    // The SIZ marker's image size (two 4-byte fields) set to 60000 × 60000 (with the tile
    // size too, the decoder took 14 GB and 106 s before panicking).
    let Some(dir) = nema_dir() else { return };
    let mut bytes = std::fs::read(dir.join("RG2_J2KR")).unwrap();
    let siz = bytes
        .windows(4)
        .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])
        .unwrap();
    for at in [siz + 8, siz + 12] {
        bytes[at..at + 4].copy_from_slice(&60000u32.to_be_bytes());
    }
    let e = decode_dicom(&bytes, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("60000x60000") && e.contains("1760x2140"), "{e}");
}

#[test]
fn a_deflated_file_decodes_like_the_plain_one() {
    // The structure check inflates deflated data sets itself; a valid one must pass it.
    let raw = Raw::new(4, 6, &(0..24).map(|v| v * 100).collect::<Vec<u16>>());
    let plain = load(&raw).unwrap();
    let deflated = transcode(&raw.bytes(), uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN);
    let d = decode_dicom(&deflated, &LoadOptions::default()).unwrap();
    assert_eq!(d.transfer_syntax, uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(d.image.as_raw(), plain.image.as_raw());
}

/// A file cut inside an element header parses up to the cut; the attribute it then lacks is
/// reported with where the file ends (it said only "required attribute PixelData is
/// missing"). A file cut inside a value was already reported as truncated.
#[test]
fn a_file_cut_inside_a_header_says_it_looks_truncated() {
    let img = Radiograph::from_fn(4, 3, |x, y| image::Luma([(x * 100 + y) as f32]));
    let opts = DicomWriteOptions {
        photometric: Photometric::Monochrome1,
        bits_stored: 12,
        pixel_spacing_mm: None,
        intensity_relationship: None,
    };
    let bytes = encode_dicom(&img, &opts).unwrap();
    let pixel_data = bytes
        .windows(4)
        .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00])
        .expect("the PixelData tag");
    // Cut in its tag, the parser stops without a word at the cut; further in, it fails on
    // the header itself, and says the file ends early.
    for cut in [pixel_data + 5, pixel_data + 7] {
        let e = decode_dicom(&bytes[..cut], &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
    }
    for cut in [pixel_data + 1, pixel_data + 2, pixel_data + 3] {
        let e = decode_dicom(&bytes[..cut], &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("PixelData is missing")
                && e.contains(&format!(
                    "ends inside an element header at byte {pixel_data} of {cut}"
                ))
                && e.contains("looks truncated"),
            "cut at {cut}: {e}"
        );
    }
    // Whole, it decodes; cut at an element boundary, the missing attribute is all there is
    // to say (nothing shows the file was longer).
    assert!(decode_dicom(&bytes, &LoadOptions::default()).is_ok());
    let e = decode_dicom(&bytes[..pixel_data], &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("PixelData is missing") && !e.contains("truncated"),
        "{e}"
    );
}

/// Bits set above `BitsStored` (overlay planes of old files, or a `BitsStored` that is
/// wrong) are masked off, as the standard says, and counted so that a reader can warn: the
/// file used to load as if they were not there, without a word.
#[test]
fn bits_outside_bits_stored_are_masked_and_counted() {
    let dir = tempdir("stray-bits");
    let img = Radiograph::from_fn(4, 2, |x, y| image::Luma([(x * 900 + y * 7) as f32]));
    let opts = DicomWriteOptions {
        bits_stored: 12,
        ..DicomWriteOptions::default()
    };
    let clean = encode_dicom(&img, &opts).unwrap();
    let d = decode_dicom(&clean, &LoadOptions::default()).unwrap();
    assert_eq!(d.pixels_beyond_bits_stored, 0);
    // Pixel data is the last element: 8 little-endian 16-bit words. Set bits 12–15 of
    // words 1 and 6 (their high bytes).
    let mut stray = clean.clone();
    let start = stray.len() - 16;
    stray[start + 3] |= 0xA0;
    stray[start + 2 * 6 + 1] |= 0x10;
    let d = decode_dicom(&stray, &LoadOptions::default()).unwrap();
    assert_eq!(d.image, img, "the stray bits are not part of the values");
    assert_eq!(d.pixels_beyond_bits_stored, 2);
    let path = dir.join("stray.dcm");
    std::fs::write(&path, &stray).unwrap();
    let (back, info) = load_image_with_info(&path, &LoadOptions::default()).unwrap();
    assert_eq!(back, img);
    assert_eq!(info.pixels_beyond_bits_stored, 2);
    // PNG and TIFF files carry no such bits.
    let png = dir.join("clean.png");
    xray_data::io::save_png16(&png, &img).unwrap();
    let (_, info) = load_image_with_info(&png, &LoadOptions::default()).unwrap();
    assert_eq!(info.pixels_beyond_bits_stored, 0);
}

/// Native little-endian pixel data is read in place (no decoder copy); the decoder still
/// reads every other layout. Both must give the same pixels and the same count of words
/// with stray bits, frame by frame, for 8- and 16-bit words, signed values, a shifted
/// HighBit and a rescale.
#[test]
fn native_pixel_data_read_in_place_matches_the_decoder() {
    // 16 bits allocated, 12 stored at bits 2-13, signed, three frames of 2 x 3; some words
    // carry bits outside the stored ones (one a sign extension, which does not count).
    let mut words: Vec<u16> = (0..18u16).map(|i| ((i * 977) % 4096) << 2).collect();
    words[4] |= 1; // a bit below the stored ones
    words[7] = 0xFFFC; // -1, its sign repeated above HighBit: not stray
    words[9] = 0x4000 | 4; // +1 with a bit above HighBit
    let strays = [1, 1, 0];
    let mut wide = Raw::new(2, 3, &words);
    wide.frames = Some("3");
    wide.bits_stored = 12;
    wide.high_bit = 13;
    wide.signed = true;
    wide.slope = Some("0.5");
    wide.intercept = Some("-3");
    // 8 bits allocated and stored, two frames of 3 x 2, MONOCHROME2 (mirrored on loading).
    let mut narrow = Raw::new(3, 2, &[]);
    narrow.frames = Some("2");
    narrow.bits_allocated = 8;
    narrow.bits_stored = 8;
    narrow.high_bit = 7;
    narrow.photometric = "MONOCHROME2";
    narrow.pixels = (0..12u8).map(|i| i.wrapping_mul(23)).collect();
    for (name, raw, frames) in [("16-bit", &wide, 3u32), ("8-bit", &narrow, 2)] {
        let plain = raw.bytes();
        for frame in 0..frames {
            let opts = LoadOptions {
                frame,
                ..LoadOptions::default()
            };
            let reference = decode_dicom(&plain, &opts).unwrap();
            let expected_strays = if raw.bits_allocated == 16 {
                strays[frame as usize]
            } else {
                0
            };
            assert_eq!(
                reference.pixels_beyond_bits_stored, expected_strays,
                "{name}, frame {frame}"
            );
            for uid in [
                uids::IMPLICIT_VR_LITTLE_ENDIAN,
                uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
                // Explicit VR big endian: retired, but still in old archives; read by the
                // decoder.
                "1.2.840.10008.1.2.2",
            ] {
                let other = decode_dicom(&transcode(&plain, uid), &opts).unwrap();
                assert_eq!(other.transfer_syntax, uid);
                assert_eq!(other.image, reference.image, "{name}, frame {frame}, {uid}");
                assert_eq!(
                    other.pixels_beyond_bits_stored, reference.pixels_beyond_bits_stored,
                    "{name}, frame {frame}, {uid}"
                );
            }
        }
    }
}

/// `PixelSpacing` is read before `ImagerPixelSpacing`, an invalid value of either counts as
/// absent (the other may still hold one), and the attribute read is reported with the
/// values, in `DicomImage` and in `ImageInfo`.
#[test]
fn pixel_spacing_says_which_attribute_it_came_from() {
    let ours = |pixel: Option<&'static str>, imager: Option<&'static str>| {
        let raw = Raw {
            pixel_spacing: pixel,
            imager_pixel_spacing: imager,
            ..Raw::new(2, 2, &[1, 2, 3, 4])
        };
        let d = load(&raw).unwrap();
        let pair = d.pixel_spacing.map(|s| [s.row_mm(), s.column_mm()]);
        assert_eq!(d.pixel_spacing_mm, pair, "{pixel:?} {imager:?}");
        d.pixel_spacing
            .map(|s| (s.row_mm(), s.column_mm(), s.source()))
    };
    use SpacingSource::{ImagerPixelSpacing, PixelSpacing};
    assert_eq!(ours(None, None), None);
    assert_eq!(
        ours(Some("0.15\\0.1"), Some("0.2\\0.2")),
        Some((0.15, 0.1, PixelSpacing))
    );
    assert_eq!(
        ours(None, Some("0.143\\0.139")),
        Some((0.143, 0.139, ImagerPixelSpacing))
    );
    // "139\139": a detector's 139 µm pitch written in micrometres.
    for bad in ["0\\0", "-0.1\\0.1", "0.1", "5000\\5000", "139\\139", "abc"] {
        assert_eq!(
            ours(Some(bad), Some("0.2\\0.25")),
            Some((0.2, 0.25, ImagerPixelSpacing)),
            "{bad}"
        );
        assert_eq!(ours(None, Some(bad)), None, "{bad}");
    }
    // Through the format-blind loader: a DICOM file's spacing, none for a PNG.
    let dir = tempdir("spacing-info");
    let raw = Raw {
        imager_pixel_spacing: Some("0.2\\0.1"),
        ..Raw::new(2, 2, &[1, 2, 3, 4])
    };
    let dcm = dir.join("a.dcm");
    std::fs::write(&dcm, raw.bytes()).unwrap();
    let (_, info) = load_image_with_info(&dcm, &LoadOptions::default()).unwrap();
    let spacing = info.pixel_spacing.unwrap();
    assert_eq!(
        (spacing.row_mm(), spacing.column_mm(), spacing.source()),
        (0.2, 0.1, ImagerPixelSpacing)
    );
    let png = dir.join("a.png");
    xray_data::io::save_png16(&png, &Radiograph::from_pixel(2, 2, image::Luma([3.0]))).unwrap();
    let (_, info) = load_image_with_info(&png, &LoadOptions::default()).unwrap();
    assert_eq!(info.pixel_spacing, None);
}

/// `PixelSpacing` and `ImagerPixelSpacing` as devices write their DS values: padded with
/// spaces, in exponent notation, with a trailing backslash (an empty third value, which
/// was refused: no spacing at all). One value, an empty middle value, a comma for the
/// decimal point and RG1's `0.000\\0.000` stay no spacing.
#[test]
fn spacing_values_are_read_as_devices_write_them() {
    let read = |v: &'static str| {
        let raw = Raw {
            imager_pixel_spacing: Some(v),
            ..Raw::new(2, 2, &[1, 2, 3, 4])
        };
        load(&raw)
            .unwrap()
            .pixel_spacing
            .map(|s| (s.row_mm(), s.column_mm()))
    };
    for v in [
        "0.139\\0.139",
        "0.139 \\0.139",
        " 0.139\\ 0.139 ",
        "1.39E-1\\1.39e-01",
        "0.139\\0.139\\",
        "0.139 \\0.139 \\ ",
        "0.139\\0.139\\\\",
    ] {
        assert_eq!(read(v), Some((0.139, 0.139)), "{v:?}");
    }
    for v in [
        "0.139",
        "0.139\\",
        "0.139\\\\0.139",
        "\\0.139\\0.139",
        "0,139\\0,139",
        "0.000\\0.000",
        "0.000\\0.000 ",
        "",
    ] {
        assert_eq!(read(v), None, "{v:?}");
    }
}

/// A spacing attribute that is present but holds no distance is kept with the reason
/// (`DicomImage::refused_spacing`, `ImageInfo::refused_spacing`), in the order the
/// attributes were read, so that a caller can say why an image has no spacing, or why
/// `ImagerPixelSpacing` was read. Absent and usable attributes add nothing.
#[test]
fn an_unusable_spacing_is_kept_with_the_reason() {
    let refused = |pixel: Option<&'static str>, imager: Option<&'static str>| {
        let raw = Raw {
            pixel_spacing: pixel,
            imager_pixel_spacing: imager,
            ..Raw::new(2, 2, &[1, 2, 3, 4])
        };
        let d = load(&raw).unwrap();
        let spacing = d.pixel_spacing.map(|s| (s.row_mm(), s.source()));
        let why: Vec<String> = d.refused_spacing.iter().map(ToString::to_string).collect();
        (spacing, why)
    };
    use SpacingSource::{ImagerPixelSpacing, PixelSpacing};
    assert_eq!(refused(None, None), (None, vec![]));
    assert_eq!(
        refused(Some("0.1\\0.1"), None),
        (Some((0.1, PixelSpacing)), vec![])
    );
    // The usable PixelSpacing is read first; a bad ImagerPixelSpacing is not looked at.
    assert_eq!(
        refused(Some("0.1\\0.1"), Some("0\\0")).1,
        Vec::<String>::new()
    );
    let (spacing, why) = refused(Some("0.000\\0.000"), Some("0.139\\0.139"));
    assert_eq!(spacing, Some((0.139, ImagerPixelSpacing)));
    assert_eq!(why, ["PixelSpacing `0.000\\0.000` (0 mm is no distance)"]);
    let (spacing, why) = refused(Some("0.2"), Some("139\\139"));
    assert_eq!(spacing, None);
    assert_eq!(why.len(), 2, "{why:?}");
    assert_eq!(
        why[0],
        "PixelSpacing `0.2` (one number, where a row and a column spacing are two)"
    );
    assert!(
        why[1].starts_with("ImagerPixelSpacing `139\\139` ("),
        "{why:?}"
    );
    assert!(why[1].contains("micrometres"), "{why:?}");
    let (_, why) = refused(Some("0,2\\0,2"), None);
    assert_eq!(why, ["PixelSpacing `0,2\\0,2` (not a number)"]);
    let (_, why) = refused(Some("0.2\\-0.2"), None);
    assert_eq!(why, ["PixelSpacing `0.2\\-0.2` (-0.2 mm is no distance)"]);
    // A functional group's refused spacing too, before the ImagerPixelSpacing read after it.
    let raw = Raw {
        imager_pixel_spacing: Some("0.25\\0.25"),
        frames: Some("2"),
        ..Raw::new(1, 2, &[1, 2, 3, 4])
    };
    let zero = pixel_measures(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, &["0\\0"]);
    let d = decode_dicom(&with_elements(&raw, vec![zero]), &LoadOptions::default()).unwrap();
    assert_eq!(
        d.pixel_spacing.map(|s| s.source()),
        Some(ImagerPixelSpacing)
    );
    assert_eq!(
        d.refused_spacing
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["PixelSpacing `0\\0` (0 mm is no distance)"]
    );
    // Through the format-blind loader, and none for a PNG.
    let dir = tempdir("refused-spacing-info");
    let dcm = dir.join("a.dcm");
    let raw = Raw {
        pixel_spacing: Some("0\\0"),
        ..Raw::new(2, 2, &[1, 2, 3, 4])
    };
    std::fs::write(&dcm, raw.bytes()).unwrap();
    let (_, info) = load_image_with_info(&dcm, &LoadOptions::default()).unwrap();
    assert_eq!((info.pixel_spacing, info.refused_spacing.len()), (None, 1));
    let png = dir.join("a.png");
    xray_data::io::save_png16(&png, &Radiograph::from_pixel(2, 2, image::Luma([3.0]))).unwrap();
    let (_, info) = load_image_with_info(&png, &LoadOptions::default()).unwrap();
    assert!(info.refused_spacing.is_empty());
}

/// `raw`'s file with `elements` added to its top-level data set.
fn with_elements(raw: &Raw, elements: Vec<dicom_object::mem::InMemElement>) -> Vec<u8> {
    let file = dicom_object::from_reader(std::io::Cursor::new(raw.bytes())).unwrap();
    let mut obj = file.into_inner();
    for e in elements {
        obj.put(e);
    }
    explicit_le_file(obj)
}

/// A functional group sequence (`SharedFunctionalGroupsSequence` or
/// `PerFrameFunctionalGroupsSequence`) of one item per spacing, each holding a
/// `PixelMeasuresSequence` with that `PixelSpacing`.
fn pixel_measures(tag: dicom_core::Tag, spacings: &[&str]) -> dicom_object::mem::InMemElement {
    use dicom_core::value::DataSetSequence;
    let items = spacings
        .iter()
        .map(|s| {
            let measures = InMemDicomObject::from_element_iter([DataElement::new(
                tags::PIXEL_SPACING,
                VR::DS,
                *s,
            )]);
            InMemDicomObject::from_element_iter([DataElement::new(
                tags::PIXEL_MEASURES_SEQUENCE,
                VR::SQ,
                DataSetSequence::from(vec![measures]),
            )])
        })
        .collect::<Vec<_>>();
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// Multi-frame ("enhanced") files keep their spacing in a functional group: the shared
/// one, or each frame's own. The decoder reads their pixels, so the spacing is read there
/// too, for the frame decoded; a top-level `PixelSpacing` still comes first, and
/// `ImagerPixelSpacing` only after the functional groups.
#[test]
fn a_multi_frame_file_s_spacing_is_read_from_its_functional_groups() {
    let mut raw = Raw::new(1, 2, &[1, 2, 3, 4]);
    raw.frames = Some("2");
    let read = |raw: &Raw, elements: Vec<dicom_object::mem::InMemElement>, frame: u32| {
        let opts = LoadOptions {
            frame,
            ..LoadOptions::default()
        };
        let d = decode_dicom(&with_elements(raw, elements), &opts).unwrap();
        assert_eq!(
            d.image.as_raw(),
            &vec![2.0 * frame as f32 + 1.0, 2.0 * frame as f32 + 2.0]
        );
        d.pixel_spacing
            .map(|s| (s.row_mm(), s.column_mm(), s.source()))
    };
    use SpacingSource::{ImagerPixelSpacing, PixelSpacing};
    let shared = || pixel_measures(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, &["0.15\\0.1"]);
    let per_frame = || {
        pixel_measures(
            tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
            &["0.3\\0.3", "0.4\\0.4"],
        )
    };
    for frame in 0..2 {
        assert_eq!(
            read(&raw, vec![shared()], frame),
            Some((0.15, 0.1, PixelSpacing))
        );
    }
    assert_eq!(
        read(&raw, vec![per_frame()], 0),
        Some((0.3, 0.3, PixelSpacing))
    );
    assert_eq!(
        read(&raw, vec![per_frame()], 1),
        Some((0.4, 0.4, PixelSpacing))
    );
    // A top-level PixelSpacing first; the functional groups before ImagerPixelSpacing.
    let top = Raw {
        pixel_spacing: Some("0.2\\0.2"),
        frames: Some("2"),
        ..Raw::new(1, 2, &[1, 2, 3, 4])
    };
    assert_eq!(
        read(&top, vec![shared()], 0),
        Some((0.2, 0.2, PixelSpacing))
    );
    let imager = Raw {
        imager_pixel_spacing: Some("0.25\\0.25"),
        frames: Some("2"),
        ..Raw::new(1, 2, &[1, 2, 3, 4])
    };
    assert_eq!(
        read(&imager, vec![shared()], 1),
        Some((0.15, 0.1, PixelSpacing))
    );
    assert_eq!(
        read(&imager, vec![], 1),
        Some((0.25, 0.25, ImagerPixelSpacing))
    );
    // An invalid functional-group spacing is none, like a top-level one.
    let zero = pixel_measures(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, &["0\\0"]);
    assert_eq!(read(&raw, vec![zero], 0), None);
    // A per-frame sequence with fewer items than frames: none for the frame it lacks.
    let short = pixel_measures(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, &["0.3\\0.3"]);
    assert_eq!(read(&raw, vec![short], 1), None);
}

/// A DX file that calibrated its `PixelSpacing` to the patient (`PixelSpacingCalibrationType`
/// GEOMETRY: `ImagerPixelSpacing` over `EstimatedRadiographicMagnificationFactor`) keeps
/// all three apart: the spacing read is the calibrated one, and the detector's pitch, the
/// calibration and the factor come with it, so a length can be told at the detector or in
/// the patient. Invalid factors (below 1, above 10, not a number, two numbers) are none.
#[test]
fn a_calibrated_spacing_comes_with_the_detector_s_pitch_and_the_magnification() {
    let read = |pixel: Option<&'static str>, elements: Vec<dicom_object::mem::InMemElement>| {
        let raw = Raw {
            pixel_spacing: pixel,
            imager_pixel_spacing: Some("0.139\\0.139"),
            ..Raw::new(2, 2, &[1, 2, 3, 4])
        };
        decode_dicom(&with_elements(&raw, elements), &LoadOptions::default()).unwrap()
    };
    let calibration = |v: &str| DataElement::new(tags::PIXEL_SPACING_CALIBRATION_TYPE, VR::CS, v);
    let factor =
        |v: &str| DataElement::new(tags::ESTIMATED_RADIOGRAPHIC_MAGNIFICATION_FACTOR, VR::DS, v);
    let d = read(
        Some("0.125\\0.125"),
        vec![calibration("GEOMETRY"), factor("1.112")],
    );
    let pair =
        |s: Option<xray_data::io::PixelSpacing>| s.map(|s| (s.row_mm(), s.column_mm(), s.source()));
    use SpacingSource::{ImagerPixelSpacing, PixelSpacing};
    assert_eq!(pair(d.pixel_spacing), Some((0.125, 0.125, PixelSpacing)));
    assert_eq!(
        pair(d.imager_pixel_spacing),
        Some((0.139, 0.139, ImagerPixelSpacing))
    );
    assert_eq!(d.spacing_calibration, Some(SpacingCalibration::Geometry));
    assert_eq!(d.magnification_factor, Some(1.112));
    // GEOMETRY: the detector's pitch over the factor is the calibrated spacing.
    assert!((0.139 / 1.112 - 0.125f64).abs() < 1e-3);
    let d = read(Some("0.1\\0.1"), vec![calibration("FIDUCIAL ")]);
    assert_eq!(d.spacing_calibration, Some(SpacingCalibration::Fiducial));
    assert_eq!(d.magnification_factor, None);
    // Only ImagerPixelSpacing: the same pitch both ways, at the detector, no calibration.
    let d = read(None, vec![factor("1.2")]);
    assert_eq!(
        pair(d.pixel_spacing),
        Some((0.139, 0.139, ImagerPixelSpacing))
    );
    assert_eq!(d.imager_pixel_spacing, d.pixel_spacing);
    assert_eq!(
        (d.spacing_calibration, d.magnification_factor),
        (None, Some(1.2))
    );
    for bad in ["0.9", "0", "-1.1", "10.5", "abc", "1.1\\1.2", ""] {
        assert_eq!(
            read(None, vec![factor(bad)]).magnification_factor,
            None,
            "{bad:?}"
        );
    }
    assert_eq!(
        read(None, vec![calibration("OTHER")]).spacing_calibration,
        None
    );
    // A file without them: none of the three (RG2 is such a CR file).
    let plain = load(&Raw::new(2, 2, &[1, 2, 3, 4])).unwrap();
    assert_eq!(
        (
            plain.imager_pixel_spacing,
            plain.spacing_calibration,
            plain.magnification_factor
        ),
        (None, None, None)
    );
}

/// The writer's `ImagerPixelSpacing` is a valid DS value whatever spacing it is given: each
/// number at most 16 characters. A computed spacing (a 430 mm plate over 3008 pixels) was
/// written as `0.14295212765957446`, 19 characters, which strict readers refuse.
#[test]
fn the_writer_s_spacing_fits_a_decimal_string() {
    let img = Radiograph::from_pixel(2, 2, image::Luma([7.0]));
    for spacing in [[430.0 / 3008.0, 0.1 + 0.2], [0.2, 0.15], [1e-7 / 3.0, 10.0]] {
        let opts = DicomWriteOptions {
            pixel_spacing_mm: Some(spacing),
            ..DicomWriteOptions::default()
        };
        let bytes = encode_dicom(&img, &opts).unwrap();
        let file = dicom_object::from_reader(std::io::Cursor::new(&bytes)).unwrap();
        let written = file
            .element(tags::IMAGER_PIXEL_SPACING)
            .unwrap()
            .to_multi_str()
            .unwrap()
            .to_vec();
        assert_eq!(written.len(), 2, "{written:?}");
        for v in &written {
            assert!(v.trim().len() <= 16, "{spacing:?}: {v:?}");
        }
        let d = decode_dicom(&bytes, &LoadOptions::default()).unwrap();
        let [r, c] = d.pixel_spacing_mm.unwrap();
        assert!(
            (r - spacing[0]).abs() <= spacing[0] * 1e-9,
            "{r} {spacing:?}"
        );
        assert!(
            (c - spacing[1]).abs() <= spacing[1] * 1e-9,
            "{c} {spacing:?}"
        );
    }
}
