//! JPEG radiographs (exports from a viewer or PACS): read by content, 8-bit grey (colour
//! with `allow_rgb`), mirrored with `invert`, checked like the other formats, and refused
//! as label masks because the compression is lossy.

use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder};
use xray_data::io::{decode_image, detect_format, load_image, load_mask, ImageFormat, LoadOptions};
use xray_data::DataError;

/// A fresh temporary folder for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xray-data-jpeg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A smooth 8-bit ramp (JPEG keeps it to a few grey levels).
fn ramp(w: u32, h: u32) -> Vec<u8> {
    (0..h)
        .flat_map(|y| (0..w).map(move |x| (40 + (x * 150 / w) + (y * 50 / h)) as u8))
        .collect()
}

fn write_jpeg(path: &Path, pixels: &[u8], w: u32, h: u32, colour: ExtendedColorType) {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 95)
        .write_image(pixels, w, h, colour)
        .unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The largest difference between a loaded image and the 8-bit values compressed.
fn largest_error(img: &xray_data::Radiograph, compressed: &[u8]) -> f32 {
    img.as_raw()
        .iter()
        .zip(compressed)
        .map(|(&v, &o)| (v - f32::from(o)).abs())
        .fold(0f32, f32::max)
}

#[test]
fn a_grey_jpeg_loads_close_to_what_was_compressed_and_mirrors_with_invert() {
    let dir = temp_dir("grey");
    let (w, h) = (64, 48);
    let original = ramp(w, h);
    // Named .png on purpose: the format is found by content.
    let path = dir.join("export.png");
    write_jpeg(&path, &original, w, h, ExtendedColorType::L8);
    assert_eq!(
        detect_format(&path, &std::fs::read(&path).unwrap()).unwrap(),
        ImageFormat::Jpeg
    );
    let img = load_image(&path, &LoadOptions::default()).unwrap();
    assert_eq!(img.dimensions(), (w, h));
    let worst = largest_error(&img, &original);
    assert!(
        worst <= 3.0,
        "largest error {worst} grey levels at quality 95"
    );
    let inverted = load_image(
        &path,
        &LoadOptions {
            invert: true,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    for (a, b) in img.as_raw().iter().zip(inverted.as_raw()) {
        assert_eq!(*a + *b, 255.0);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_colour_jpeg_needs_allow_rgb() {
    let dir = temp_dir("colour");
    let (w, h) = (32, 32);
    // A grey picture saved as colour, as some exports are: luma gives the grey back.
    let grey = ramp(w, h);
    let rgb: Vec<u8> = grey.iter().flat_map(|&g| [g, g, g]).collect();
    let path = dir.join("colour.jpg");
    write_jpeg(&path, &rgb, w, h, ExtendedColorType::Rgb8);
    let err = load_image(&path, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::ColorImage { .. }), "{err}");
    let img = load_image(
        &path,
        &LoadOptions {
            allow_rgb: true,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let worst = largest_error(&img, &grey);
    assert!(worst <= 4.0, "largest error {worst} grey levels");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_damaged_large_or_multi_frame_request_is_a_clear_error() {
    let dir = temp_dir("errors");
    let (w, h) = (100, 100);
    let path = dir.join("x.jpg");
    write_jpeg(&path, &ramp(w, h), w, h, ExtendedColorType::L8);
    let bytes = std::fs::read(&path).unwrap();
    // Cut anywhere (the decoder itself would fill a cut in the entropy-coded data with grey
    // and report nothing): a decoding error naming the file, never an image.
    for keep in 3..bytes.len() - 1 {
        match decode_image(&path, &bytes[..keep], &LoadOptions::default()) {
            Err(DataError::Decode {
                format, path: p, ..
            }) => {
                assert_eq!(format, "JPEG");
                assert_eq!(p, path);
            }
            other => panic!(
                "{keep} bytes: expected a JPEG decoding error, got {:?}",
                other.map(|i| i.dimensions())
            ),
        }
    }
    // Bytes after the end-of-image marker are not the image's: left alone, as decoders do.
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"\xFF\x00 appended by a transfer tool");
    assert!(decode_image(&path, &trailing, &LoadOptions::default()).is_ok());
    let small = LoadOptions {
        max_pixels: 5000,
        ..LoadOptions::default()
    };
    let err = load_image(&path, &small).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::TooLarge {
                width: 100,
                height: 100,
                max_pixels: 5000,
                ..
            }
        ),
        "{err}"
    );
    let frame = LoadOptions {
        frame: 1,
        ..LoadOptions::default()
    };
    let err = load_image(&path, &frame).unwrap_err();
    assert!(matches!(err, DataError::FrameOutOfRange { .. }), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_jpeg_label_mask_is_refused_as_lossy() {
    let dir = temp_dir("mask");
    let labels: Vec<u8> = (0..64 * 64).map(|i| ((i / 64) % 3) as u8).collect();
    let path = dir.join("mask.png");
    write_jpeg(&path, &labels, 64, 64, ExtendedColorType::L8);
    let err = load_mask(&path).unwrap_err();
    assert!(matches!(err, DataError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("lossy"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_dataset_folder_takes_jpeg_images_beside_png_masks() {
    use xray_data::dataset::{Dataset, DatasetOptions};
    let dir = temp_dir("dataset");
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    let (w, h) = (32, 24);
    write_jpeg(
        &dir.join("images/knee.jpg"),
        &ramp(w, h),
        w,
        h,
        ExtendedColorType::L8,
    );
    let mask = xray_data::Mask::from_raw(w, h, vec![1; (w * h) as usize]).unwrap();
    xray_data::io::save_mask(&dir.join("masks/knee.png"), &mask).unwrap();
    let ds = Dataset::open(&dir, &DatasetOptions::default()).unwrap();
    assert_eq!(ds.len(), 1);
    let (image, loaded) = ds.load(0).unwrap();
    assert_eq!(image.dimensions(), (w, h));
    assert_eq!(loaded, Some(mask));
    std::fs::remove_dir_all(&dir).ok();
}
