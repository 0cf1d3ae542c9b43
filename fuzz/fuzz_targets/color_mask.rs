//! Colour label decoding: any RGB image decodes to labels 0..=2 of the same size, and
//! encoding then decoding a valid mask is the identity.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let width = u32::from(data[0] % 64) + 1;
    let pixels = &data[1..];
    let height = (pixels.len() / 3) as u32 / width;
    let n = (width * height * 3) as usize;
    let Some(rgb) = image::RgbImage::from_raw(width, height, pixels[..n].to_vec()) else {
        return;
    };
    let mask = xray_data::io::decode_color_mask(&rgb);
    assert_eq!(mask.dimensions(), rgb.dimensions());
    assert!(mask.as_raw().iter().all(|&v| v <= 2));
    let enc = xray_data::io::encode_color_mask(&mask).expect("labels 0..=2 always encode");
    assert_eq!(xray_data::io::decode_color_mask(&enc), mask);
});
