//! RLE Lossless DICOM frames whose segments do not decode to one byte plane each are
//! refused with an error naming the segment, before dicom-rs's decoder sees them (it cuts
//! longer segments silently, shifting the image, and panics on shorter ones).

use dicom_core::value::PixelFragmentSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use std::path::PathBuf;
use xray_data::io::{decode_dicom, LoadOptions};
use xray_data::DataError;

/// A 4×4 16-bit RLE Lossless file (MONOCHROME1, so values load as stored) with `segments`
/// as its PackBits segments, high byte first.
fn rle_file(segments: &[&[u8]]) -> Vec<u8> {
    let mut fragment = vec![0u8; 64];
    fragment[..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
    for (k, s) in segments.iter().enumerate() {
        let at = fragment.len() as u32;
        fragment[4 + 4 * k..8 + 4 * k].copy_from_slice(&at.to_le_bytes());
        fragment.extend_from_slice(s);
    }
    if fragment.len() % 2 == 1 {
        fragment.push(0);
    }
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    let mut obj = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE,
        ),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "2.25.8"),
        us(tags::SAMPLES_PER_PIXEL, 1),
        DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME1"),
        us(tags::ROWS, 4),
        us(tags::COLUMNS, 4),
        us(tags::BITS_ALLOCATED, 16),
        us(tags::BITS_STORED, 16),
        us(tags::HIGH_BIT, 15),
        us(tags::PIXEL_REPRESENTATION, 0),
    ]);
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PixelFragmentSequence::new(Vec::<u32>::new(), vec![fragment]),
    ));
    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::RLE_LOSSLESS))
        .expect("file meta");
    let mut out = Vec::new();
    file.write_all(&mut out).expect("encode");
    out
}

fn decode_error(bytes: &[u8]) -> String {
    match decode_dicom(bytes, &LoadOptions::default()) {
        Err(e @ DataError::Decode { .. }) => e.to_string(),
        other => panic!("expected a decoding error, got {other:?}"),
    }
}

#[test]
fn a_well_formed_rle_frame_decodes() {
    // High bytes: 16 × 0x01 (replicate run, header -15); low bytes: 0..16 (literal run).
    let low: Vec<u8> = std::iter::once(15).chain(0..16).collect();
    let img = decode_dicom(&rle_file(&[&[0xF1, 1], &low]), &LoadOptions::default())
        .expect("a valid RLE frame");
    let want: Vec<f32> = (0..16).map(|v| (256 + v) as f32).collect();
    assert_eq!(img.image.as_raw(), &want);
}

#[test]
fn segments_that_decode_short_are_refused_by_name() {
    // Two literal runs of one byte, for 16 pixels (dicom-rs 0.10 panicked on this).
    let e = decode_error(&rle_file(&[&[0, 5], &[0, 7]]));
    assert!(
        e.contains("frame 0") && e.contains("RLE segment 0 decodes to 1 bytes"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn segments_that_decode_long_are_refused_not_cut() {
    // The low-byte segment yields 20 bytes: cut to 16, it would shift the image silently.
    let e = decode_error(&rle_file(&[&[0xF1, 1], &[0xED, 9]]));
    assert!(e.contains("RLE segment 1 decodes to 20 bytes"), "{e}");
}

#[test]
fn a_header_with_the_wrong_segment_count_is_refused() {
    let e = decode_error(&rle_file(&[&[0xF1, 1]]));
    assert!(e.contains("declares 1 segments"), "{e}");
}

/// One run header of the NEMA hip `RG2_RLE` changed (0xFF, one byte repeated twice, to 0x81,
/// repeated 128 times): its high-byte segment then decodes 126 bytes too long. Loaded as
/// it was before the check, the hip's lower half came out shifted and banded, without error.
#[test]
fn nema_rg2_rle_with_a_corrupt_run_header_is_refused() {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/nema-cr/RG2_RLE"
    ));
    let Ok(mut bytes) = std::fs::read(&path) else {
        eprintln!(
            "SKIPPED: NEMA CR sample not found at {} (see docs/data-format.md)",
            path.display()
        );
        return;
    };
    assert!(decode_dicom(&bytes, &LoadOptions::default()).is_ok());
    assert_eq!(bytes[100_271], 0xFF, "not the RG2_RLE this test knows");
    bytes[100_271] = 0x81;
    let e = decode_error(&bytes);
    assert!(
        e.contains("RLE segment 0 decodes to 3766526 bytes where Rows x Columns need 3766400"),
        "{e}"
    );
}
