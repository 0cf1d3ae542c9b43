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
