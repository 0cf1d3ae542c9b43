//! A DICOM decoder that panics on a corrupt file gives a decoding error and nothing on
//! stderr, on any thread, while panics elsewhere in the program are still reported.
//!
//! The check needs the real stderr of a process, so the test runs this test binary again
//! (`child`, skipped unless the environment asks for it) and reads what it printed.

use dicom_core::value::PixelFragmentSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use rayon::prelude::*;
use xray_data::io::{decode_dicom, LoadOptions};
use xray_data::DataError;

const CHILD_ENV: &str = "XRAY_DATA_QUIET_PANIC_CHILD";
const LOUD: &str = "a deliberate panic outside the decoder";

/// A 4×4 16-bit RLE Lossless file whose two segments decode to one byte each instead of 16:
/// dicom-rs 0.10's RLE decoder indexes past the decoded segment and panics.
fn corrupt_rle() -> Vec<u8> {
    let mut fragment = vec![0u8; 64];
    fragment[..4].copy_from_slice(&2u32.to_le_bytes());
    fragment[4..8].copy_from_slice(&64u32.to_le_bytes());
    fragment[8..12].copy_from_slice(&66u32.to_le_bytes());
    // Two PackBits literal runs of one byte.
    fragment.extend_from_slice(&[0, 5, 0, 7]);
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

#[test]
fn decoder_panics_are_errors_and_silent_while_other_panics_are_reported() {
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args(["child", "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run the child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run:\n{stdout}"
    );
    // The unrelated panic, on another thread at the same time, still reaches the hook.
    assert!(
        stderr.contains(LOUD),
        "the other panic was silenced:\n{stderr}"
    );
    // Nothing of the decoder's panics: neither its message nor a backtrace through it.
    for leak in ["rle_lossless", "index out of bounds", "dicom_"] {
        assert!(
            !stderr.contains(leak),
            "the decoder's panic reached stderr ({leak}):\n{stderr}"
        );
    }
}

#[test]
fn child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let bytes = corrupt_rle();
    let loud = std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        panic!("{LOUD}");
    });
    let errors: Vec<String> = (0..64)
        .into_par_iter()
        .map(|_| match decode_dicom(&bytes, &LoadOptions::default()) {
            Err(e @ DataError::Decode { .. }) => e.to_string(),
            other => panic!("expected a decoding error, got {other:?}"),
        })
        .collect();
    assert!(loud.join().is_err());
    assert!(
        errors.iter().all(|e| e.contains("decoder panicked")),
        "{}",
        errors[0]
    );
}
