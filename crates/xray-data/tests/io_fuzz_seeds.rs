//! Writes the seed corpora of the cargo-fuzz targets in `fuzz/` (ignored by default):
//! `cargo test -p xray-data --test io_fuzz_seeds -- --ignored`.

mod transcode;
use transcode::transcode;

use std::fs;
use std::path::PathBuf;
use xray_data::io::{encode_color_mask, encode_dicom, DicomWriteOptions, Photometric};
use xray_data::{Mask, Radiograph};

#[test]
#[ignore = "writes fuzz/corpus; run by hand before fuzzing"]
fn write_fuzz_seeds() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus"));
    let dicom = root.join("dicom_plane");
    fs::create_dir_all(&dicom).unwrap();
    let cases = [
        (8, Photometric::Monochrome1),
        (12, Photometric::Monochrome2),
        (16, Photometric::Monochrome1),
    ];
    for (i, (bits, photometric)) in cases.into_iter().enumerate() {
        let max = ((1u32 << bits) - 1) as f32;
        let img = Radiograph::from_fn(5, 3, |x, y| {
            image::Luma([((x * 3 + y) as f32 * 97.0) % max])
        });
        let opts = DicomWriteOptions {
            photometric,
            bits_stored: bits,
            pixel_spacing_mm: Some([0.2, 0.2]),
            intensity_relationship: None,
        };
        let bytes = encode_dicom(&img, &opts).unwrap();
        fs::write(dicom.join(format!("seed{i}.dcm")), &bytes).unwrap();
        fs::write(dicom.join(format!("seed{i}_nopreamble.dcm")), &bytes[128..]).unwrap();
    }
    // Compressed and deflated copies of the 12-bit seed, so that the fuzzer starts inside
    // the codestream-size check and the inflate path too.
    let plain = fs::read(dicom.join("seed1.dcm")).unwrap();
    for (name, uid) in [
        (
            "seed_jpegls.dcm",
            dicom_dictionary_std::uids::JPEGLS_LOSSLESS,
        ),
        (
            "seed_deflated.dcm",
            dicom_dictionary_std::uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
        ),
    ] {
        fs::write(dicom.join(name), transcode(&plain, uid)).unwrap();
    }
    // A two-frame file whose spacing lives in its functional groups (shared and per frame),
    // beside a calibrated PixelSpacing's type and magnification factor and the detector's
    // pitch: the fuzzer starts inside the spacing reader's nested sequences.
    {
        use dicom_core::value::DataSetSequence;
        use dicom_core::{DataElement, VR};
        use dicom_dictionary_std::tags;
        use dicom_object::InMemDicomObject;
        let two_frames = Radiograph::from_fn(5, 6, |x, y| image::Luma([(x * 7 + y) as f32]));
        let bytes = encode_dicom(&two_frames, &DicomWriteOptions::default()).unwrap();
        let mut obj = dicom_object::from_reader(std::io::Cursor::new(&bytes[128..]))
            .unwrap()
            .into_inner();
        obj.put(DataElement::new(
            tags::ROWS,
            VR::US,
            dicom_core::PrimitiveValue::from(3u16),
        ));
        obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, "2"));
        let measures = |spacing: &str| {
            InMemDicomObject::from_element_iter([DataElement::new(
                tags::PIXEL_MEASURES_SEQUENCE,
                VR::SQ,
                DataSetSequence::from(vec![InMemDicomObject::from_element_iter([
                    DataElement::new(tags::PIXEL_SPACING, VR::DS, spacing),
                ])]),
            )])
        };
        obj.put(DataElement::new(
            tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![measures("0.15\\0.1")]),
        ));
        obj.put(DataElement::new(
            tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![measures("0.3\\0.3"), measures("0.4\\0.4 ")]),
        ));
        obj.put(DataElement::new(
            tags::PIXEL_SPACING_CALIBRATION_TYPE,
            VR::CS,
            "GEOMETRY",
        ));
        obj.put(DataElement::new(
            tags::ESTIMATED_RADIOGRAPHIC_MAGNIFICATION_FACTOR,
            VR::DS,
            "1.112",
        ));
        let file = obj
            .with_meta(
                dicom_object::meta::FileMetaTableBuilder::new()
                    .transfer_syntax(dicom_dictionary_std::uids::EXPLICIT_VR_LITTLE_ENDIAN),
            )
            .unwrap();
        let mut out = Vec::new();
        file.write_all(&mut out).unwrap();
        let d = xray_data::io::decode_dicom(&out, &xray_data::io::LoadOptions::default()).unwrap();
        assert_eq!(d.frames, 2);
        assert_eq!(d.pixel_spacing.map(|s| s.row_mm()), Some(0.3));
        fs::write(dicom.join("seed_functional_groups.dcm"), &out).unwrap();
    }
    // The target also sends its bytes through format detection, so PNG, TIFF and JPEG seeds
    // put the raster decoders under the fuzzer too.
    let img = Radiograph::from_fn(5, 3, |x, y| image::Luma([(x * 1000 + y * 7) as f32]));
    xray_data::io::save_png16(&dicom.join("seed_png16.png"), &img).unwrap();
    xray_data::io::save_tiff_f32(&dicom.join("seed_f32.tif"), &img).unwrap();
    // And a JPEG, whose end-of-image walk runs before its decoder.
    let grey = image::GrayImage::from_fn(16, 16, |x, y| image::Luma([(x * 13 + y * 3) as u8]));
    grey.save_with_format(dicom.join("seed_grey.jpg"), image::ImageFormat::Jpeg)
        .unwrap();
    let colour = root.join("color_mask");
    fs::create_dir_all(&colour).unwrap();
    let m = Mask::from_fn(4, 3, |x, y| image::Luma([((x + y) % 3) as u8]));
    let mut seed = vec![3u8]; // width - 1
    seed.extend_from_slice(encode_color_mask(&m).unwrap().as_raw());
    fs::write(colour.join("seed0"), seed).unwrap();
    let listing = root.join("dataset_listing");
    fs::create_dir_all(&listing).unwrap();
    fs::write(
        listing.join("seed0"),
        "a.png\nb.dcm\nc.TIF\n\0a.png\nb.png\nc.png\n\0stem,category\na,hand\nb,foot\nc,hand\n",
    )
    .unwrap();
    fs::write(listing.join("seed1"), "x.tiff\n.hidden.png\nx.png\n").unwrap();
}
