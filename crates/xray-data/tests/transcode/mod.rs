//! Re-encoding DICOM files with dicom-rs' own encoders, for the tests that need compressed
//! or deflated files.

/// Re-encodes `bytes` (a DICOM file with its preamble) with the transfer syntax `uid`.
pub fn transcode(bytes: &[u8], uid: &str) -> Vec<u8> {
    use dicom_pixeldata::Transcode;
    use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
    let mut obj = dicom_object::OpenFileOptions::new()
        .from_reader(&bytes[128..])
        .unwrap();
    obj.transcode(TransferSyntaxRegistry.get(uid).unwrap())
        .unwrap();
    let mut out = Vec::new();
    obj.write_all(&mut out).unwrap();
    out
}
