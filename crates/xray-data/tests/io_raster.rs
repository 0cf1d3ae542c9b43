//! PNG/TIFF radiographs and label masks: round trips, conversions and every error path.

mod common;
use common::Scratch;

use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage, Rgba};
use std::path::PathBuf;
use xray_data::io::{
    decode_color_mask, encode_color_mask, load_color_mask, load_image, load_mask,
    load_mask_with_classes, save_mask, save_png16, save_tiff_f32, LoadOptions,
};
use xray_data::{DataError, Mask, Radiograph};

fn tempdir(tag: &str) -> Scratch {
    Scratch::new(&format!("xray-io-raster-{tag}"))
}

fn ramp(w: u32, h: u32, step: f32) -> Radiograph {
    Radiograph::from_fn(w, h, |x, y| Luma([(x + w * y) as f32 * step]))
}

fn write_tiff<C>(path: &std::path::Path, w: u32, h: u32, data: &[C::Inner])
where
    C: tiff::encoder::colortype::ColorType,
    [C::Inner]: tiff::encoder::TiffValue,
{
    let f = std::fs::File::create(path).unwrap();
    tiff::encoder::TiffEncoder::new(f)
        .unwrap()
        .write_image::<C>(w, h, data)
        .unwrap();
}

#[test]
fn png16_round_trip_is_lossless_and_rounds() {
    let dir = tempdir("png16");
    let p = dir.join("a.png");
    let img = ramp(7, 5, 1871.0); // up to 34 * 1871 = 63614
    save_png16(&p, &img).unwrap();
    assert_eq!(load_image(&p, &LoadOptions::default()).unwrap(), img);
    // Rounding to nearest, halves away from zero; -0.4 and 65535.4 still fit.
    let odd = Radiograph::from_raw(4, 1, vec![-0.4, 1.5, 2.49, 65535.4]).unwrap();
    save_png16(&p, &odd).unwrap();
    let back = load_image(&p, &LoadOptions::default()).unwrap();
    assert_eq!(back.as_raw(), &vec![0.0, 2.0, 2.0, 65535.0]);
}

#[test]
fn png16_rejects_unrepresentable_values() {
    let dir = tempdir("png16-bad");
    let p = dir.join("bad.png");
    for (v, nonfinite) in [
        (-0.6, false),
        (65535.6, false),
        (f32::NAN, true),
        (f32::INFINITY, true),
    ] {
        let mut img = ramp(3, 2, 1.0);
        img.put_pixel(2, 1, Luma([v]));
        match save_png16(&p, &img) {
            Err(DataError::ValueOutOfRange { x: 2, y: 1, .. }) if !nonfinite => {}
            Err(DataError::NonFinite { x: 2, y: 1, .. }) if nonfinite => {}
            other => panic!("value {v}: {other:?}"),
        }
    }
    // The refused value reads as a number, not as 39 digits.
    let mut img = ramp(3, 2, 1.0);
    img.put_pixel(2, 1, Luma([f32::MAX]));
    let err = save_png16(&p, &img).unwrap_err().to_string();
    assert!(
        err.ends_with("pixel value 3.4028235e38 at (x=2, y=1) outside 0..=65535"),
        "{err}"
    );
    let empty = Radiograph::new(0, 3);
    assert!(matches!(
        save_png16(&p, &empty),
        Err(DataError::EmptyImage { .. })
    ));
}

#[test]
fn png8_and_rgb_handling() {
    let dir = tempdir("png8");
    let p = dir.join("g8.png");
    let g = GrayImage::from_fn(4, 2, |x, y| Luma([(x * 60 + y) as u8]));
    g.save(&p).unwrap();
    let img = load_image(&p, &LoadOptions::default()).unwrap();
    assert_eq!(img.get_pixel(3, 1).0[0], 181.0);
    // Inversion for display-polarity files: 255 - v.
    let inv = LoadOptions {
        invert: true,
        ..LoadOptions::default()
    };
    assert_eq!(load_image(&p, &inv).unwrap().get_pixel(3, 1).0[0], 74.0);

    let p = dir.join("rgb.png");
    RgbImage::from_pixel(2, 2, Rgb([100, 200, 50]))
        .save(&p)
        .unwrap();
    match load_image(&p, &LoadOptions::default()) {
        Err(e @ DataError::ColorImage { .. }) => assert!(e.to_string().contains("rgb.png")),
        other => panic!("{other:?}"),
    }
    let allow = LoadOptions {
        allow_rgb: true,
        ..LoadOptions::default()
    };
    let luma = load_image(&p, &allow).unwrap().get_pixel(0, 0).0[0];
    let expected = 0.2126 * 100.0 + 0.7152 * 200.0 + 0.0722 * 50.0;
    assert!((luma - expected).abs() < 1e-3, "{luma} vs {expected}");

    let p = dir.join("rgba16.png");
    ImageBuffer::<Rgba<u16>, Vec<u16>>::from_pixel(1, 1, Rgba([1000, 1000, 1000, 65535]))
        .save(&p)
        .unwrap();
    assert!(matches!(
        load_image(&p, &LoadOptions::default()),
        Err(DataError::ColorImage { .. })
    ));
    assert!((load_image(&p, &allow).unwrap().get_pixel(0, 0).0[0] - 1000.0).abs() < 0.01);
}

#[test]
fn tiff_f32_u16_u8_round_trips() {
    let dir = tempdir("tiff");
    let p = dir.join("f.tif");
    let img = Radiograph::from_raw(3, 2, vec![-1.5, 0.0, 1e-7, 3.25, 1e6, 42.0]).unwrap();
    save_tiff_f32(&p, &img).unwrap();
    assert_eq!(load_image(&p, &LoadOptions::default()).unwrap(), img);

    let p = dir.join("u16.tiff");
    write_tiff::<tiff::encoder::colortype::Gray16>(&p, 2, 2, &[0, 1, 40000, 65535]);
    let img = load_image(&p, &LoadOptions::default()).unwrap();
    assert_eq!(img.as_raw(), &vec![0.0, 1.0, 40000.0, 65535.0]);
    let inv = LoadOptions {
        invert: true,
        ..LoadOptions::default()
    };
    assert_eq!(
        load_image(&p, &inv).unwrap().as_raw(),
        &vec![65535.0, 65534.0, 25535.0, 0.0]
    );

    let p = dir.join("u8.tif");
    write_tiff::<tiff::encoder::colortype::Gray8>(&p, 2, 1, &[3, 250]);
    assert_eq!(
        load_image(&p, &LoadOptions::default()).unwrap().as_raw(),
        &vec![3.0, 250.0]
    );

    let p = dir.join("rgb.tif");
    write_tiff::<tiff::encoder::colortype::RGB8>(&p, 1, 1, &[10, 20, 30]);
    assert!(matches!(
        load_image(&p, &LoadOptions::default()),
        Err(DataError::ColorImage { .. })
    ));
}

/// Signed TIFF samples are mirrored within their own range (`lo + hi - v` = `-1 - v`), as
/// the DICOM loader mirrors signed data; `max - v` took i16 [-32768, -1, 32767] to
/// [65535, 32768, 0], outside the type.
#[test]
fn tiff_signed_inversion_stays_within_the_type() {
    let dir = tempdir("tiff-signed");
    let inv = LoadOptions {
        invert: true,
        ..LoadOptions::default()
    };
    let p = dir.join("i16.tif");
    write_tiff::<tiff::encoder::colortype::GrayI16>(&p, 4, 1, &[-32768, -1, 0, 32767]);
    assert_eq!(
        load_image(&p, &LoadOptions::default()).unwrap().as_raw(),
        &vec![-32768.0, -1.0, 0.0, 32767.0]
    );
    assert_eq!(
        load_image(&p, &inv).unwrap().as_raw(),
        &vec![32767.0, 0.0, -1.0, -32768.0]
    );
    let p = dir.join("i8.tif");
    write_tiff::<tiff::encoder::colortype::GrayI8>(&p, 3, 1, &[-128, 5, 127]);
    assert_eq!(
        load_image(&p, &inv).unwrap().as_raw(),
        &vec![127.0, -6.0, -128.0]
    );
}

#[test]
fn tiff_nan_and_float_inversion_are_errors() {
    let dir = tempdir("tiff-nan");
    let p = dir.join("nan.tif");
    write_tiff::<tiff::encoder::colortype::Gray32Float>(&p, 2, 2, &[0.0, 1.0, f32::NAN, 2.0]);
    match load_image(&p, &LoadOptions::default()) {
        Err(DataError::NonFinite {
            x: 0, y: 1, path, ..
        }) => assert_eq!(path, p),
        other => panic!("{other:?}"),
    }
    let p = dir.join("f.tif");
    save_tiff_f32(&p, &ramp(2, 2, 1.0)).unwrap();
    let inv = LoadOptions {
        invert: true,
        ..LoadOptions::default()
    };
    assert!(matches!(
        load_image(&p, &inv),
        Err(DataError::Unsupported { .. })
    ));
    let bad = Radiograph::from_raw(1, 1, vec![f32::INFINITY]).unwrap();
    assert!(matches!(
        save_tiff_f32(&p, &bad),
        Err(DataError::NonFinite { .. })
    ));
}

#[test]
fn limits_frames_truncation_and_garbage() {
    let dir = tempdir("limits");
    let p = dir.join("big.png");
    save_png16(&p, &ramp(40, 30, 1.0)).unwrap();
    let small = LoadOptions {
        max_pixels: 1199,
        ..LoadOptions::default()
    };
    assert!(matches!(
        load_image(&p, &small),
        Err(DataError::TooLarge {
            width: 40,
            height: 30,
            max_pixels: 1199,
            ..
        })
    ));
    let f1 = LoadOptions {
        frame: 1,
        ..LoadOptions::default()
    };
    assert!(matches!(
        load_image(&p, &f1),
        Err(DataError::FrameOutOfRange { .. })
    ));

    let bytes = std::fs::read(&p).unwrap();
    for cut in [0, 8, 20, 40, bytes.len() / 2, bytes.len() - 12] {
        let t = dir.join(format!("cut{cut}.png"));
        std::fs::write(&t, &bytes[..cut]).unwrap();
        let r = load_image(&t, &LoadOptions::default());
        assert!(
            matches!(r, Err(DataError::Decode { .. })),
            "cut {cut}: {r:?}"
        );
        assert!(r
            .unwrap_err()
            .to_string()
            .contains(&format!("cut{cut}.png")));
    }
    let t = dir.join("junk.png");
    std::fs::write(&t, b"hello, this is not an image").unwrap();
    assert!(matches!(
        load_image(&t, &LoadOptions::default()),
        Err(DataError::UnknownFormat { .. })
    ));

    let t = dir.join("zero.tif");
    write_tiff::<tiff::encoder::colortype::Gray16>(&t, 1, 1, &[5]);
    let tb = std::fs::read(&t).unwrap();
    std::fs::write(&t, &tb[..tb.len() / 2]).unwrap();
    assert!(load_image(&t, &LoadOptions::default()).is_err());
}

#[test]
fn index_masks_round_trip_and_validate() {
    let dir = tempdir("mask");
    let p = dir.join("m.png");
    let m = Mask::from_raw(4, 1, vec![0, 1, 2, 255]).unwrap();
    save_mask(&p, &m).unwrap();
    assert_eq!(load_mask(&p).unwrap(), m);
    let bad = Mask::from_raw(3, 2, vec![0, 1, 2, 0, 3, 1]).unwrap();
    save_mask(&p, &bad).unwrap();
    match load_mask(&p) {
        Err(
            e @ DataError::UnknownLabel {
                x: 1,
                y: 1,
                value: 3,
                num_classes: 3,
                ..
            },
        ) => {
            assert!(e.to_string().contains("m.png"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(load_mask_with_classes(&p, 4).unwrap(), bad);
    // A 16-bit or colour PNG is not an index mask.
    save_png16(&p, &ramp(2, 2, 1.0)).unwrap();
    assert!(matches!(load_mask(&p), Err(DataError::Unsupported { .. })));
}

#[test]
fn color_masks_follow_xnet_bgr_rules() {
    // RGB order here; XNet's BGR [255,255,0] is RGB (0,255,255), BGR [0,0,255] is RGB (255,0,0).
    let cases: &[([u8; 3], u8)] = &[
        ([0, 255, 255], 1),
        ([100, 155, 155], 1), // every channel exactly at the tolerance
        ([101, 255, 255], 0), // one channel just outside
        ([0, 154, 255], 0),
        ([255, 0, 0], 2),
        ([155, 100, 100], 2),
        ([154, 0, 0], 0),
        ([0, 0, 255], 0),   // BGR-blue read as RGB would be wrong: it is not bone
        ([255, 255, 0], 0), // nor is RGB yellow soft tissue
        ([255, 255, 255], 0),
        ([0, 0, 0], 0),
    ];
    let mut rgb = RgbImage::new(cases.len() as u32, 1);
    for (i, (c, _)) in cases.iter().enumerate() {
        rgb.put_pixel(i as u32, 0, Rgb(*c));
    }
    let mask = decode_color_mask(&rgb);
    let want: Vec<u8> = cases.iter().map(|&(_, l)| l).collect();
    assert_eq!(mask.as_raw(), &want);

    let m = Mask::from_raw(3, 1, vec![0, 1, 2]).unwrap();
    let enc = encode_color_mask(&m).unwrap();
    assert_eq!(enc.get_pixel(1, 0), &Rgb([0, 255, 255]));
    assert_eq!(enc.get_pixel(2, 0), &Rgb([255, 0, 0]));
    assert_eq!(decode_color_mask(&enc), m);
    let dir = tempdir("color");
    let p = dir.join("c.png");
    enc.save(&p).unwrap();
    assert_eq!(load_color_mask(&p).unwrap(), m);
    let ign = Mask::from_raw(1, 1, vec![255]).unwrap();
    assert!(matches!(
        encode_color_mask(&ign),
        Err(DataError::UnknownLabel { value: 255, .. })
    ));
}

#[cfg(unix)]
#[test]
fn a_dangling_symbolic_link_is_named_as_such() {
    let dir = std::env::temp_dir().join(format!("xray-io-link-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("scan.png");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(dir.join("gone.png"), &link).unwrap();
    let e = xray_data::io::load_image(&link, &xray_data::io::LoadOptions::default()).unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with(&link.display().to_string()), "{text}");
    assert!(
        text.contains("broken symbolic link") && text.contains("gone.png"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_multi_page_tiff_gives_the_page_asked_for() {
    use tiff::encoder::colortype::Gray16;
    let dir = tempdir("pages");
    let p = dir.join("pages.tif");
    let pages: [(u32, u32, u16); 3] = [(4, 3, 100), (5, 2, 200), (2, 2, 300)];
    let f = std::fs::File::create(&p).unwrap();
    let mut enc = tiff::encoder::TiffEncoder::new(f).unwrap();
    for (w, h, v) in pages {
        let data: Vec<u16> = (0..w * h).map(|i| v + i as u16).collect();
        enc.write_image::<Gray16>(w, h, &data).unwrap();
    }
    drop(enc);
    for (frame, (w, h, v)) in pages.iter().enumerate() {
        let opts = LoadOptions {
            frame: frame as u32,
            ..LoadOptions::default()
        };
        let img = load_image(&p, &opts).unwrap();
        assert_eq!(img.dimensions(), (*w, *h), "page {frame}");
        assert_eq!(img.as_raw()[0], f32::from(*v), "page {frame}");
    }
    let past = LoadOptions {
        frame: 3,
        ..LoadOptions::default()
    };
    assert!(matches!(
        load_image(&p, &past),
        Err(DataError::FrameOutOfRange {
            frame: 3,
            frames: 3,
            ..
        })
    ));
    std::fs::remove_dir_all(&dir).ok();
}

/// A 16-bit grayscale PNG whose `tRNS` chunk marks the grey value `key` transparent.
fn write_png_with_trns(path: &std::path::Path, w: u32, h: u32, values: &[u16], key: u16) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Sixteen);
    enc.set_trns(key.to_be_bytes().to_vec());
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    enc.write_header()
        .unwrap()
        .write_image_data(&bytes)
        .unwrap();
}

#[test]
fn grey_with_an_alpha_channel_that_hides_nothing_loads_as_grey() {
    let dir = tempdir("alpha");
    // A tRNS chunk (one grey value transparent, as some exporters mark the collimator's
    // zero): decoded as grey + alpha, and its grey samples are the image.
    let p = dir.join("trns.png");
    let values = [0u16, 1200, 40000, 0, 65535, 7];
    write_png_with_trns(&p, 3, 2, &values, 0);
    let img = load_image(&p, &LoadOptions::default()).unwrap();
    let expected: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    assert_eq!(img.as_raw(), &expected);

    // All opaque: the alpha channel says nothing.
    let p = dir.join("opaque-la.png");
    ImageBuffer::<image::LumaA<u8>, Vec<u8>>::from_fn(2, 1, |x, _| {
        image::LumaA([x as u8 * 9, 255])
    })
    .save(&p)
    .unwrap();
    assert_eq!(
        load_image(&p, &LoadOptions::default()).unwrap().as_raw(),
        &vec![0.0, 9.0]
    );

    // Partly transparent pixels, or transparent ones of different values: the grey alone
    // is not what the file shows, so conversion must be asked for.
    for (name, pixels) in [
        ("partial-la.png", [[10u8, 255], [20, 128]]),
        ("two-keys-la.png", [[10u8, 0], [20, 0]]),
    ] {
        let p = dir.join(name);
        ImageBuffer::<image::LumaA<u8>, Vec<u8>>::from_fn(2, 1, |x, _| {
            image::LumaA(pixels[x as usize])
        })
        .save(&p)
        .unwrap();
        match load_image(&p, &LoadOptions::default()) {
            Err(e @ DataError::ColorImage { .. }) => assert!(e.to_string().contains(name)),
            other => panic!("{name}: {other:?}"),
        }
        let allow = LoadOptions {
            allow_rgb: true,
            ..LoadOptions::default()
        };
        assert_eq!(load_image(&p, &allow).unwrap().as_raw(), &vec![10.0, 20.0]);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[cfg(unix)]
#[test]
fn a_device_a_folder_or_an_idle_pipe_is_an_error_not_a_hang_and_a_fed_pipe_is_read() {
    use xray_data::io::{load_dicom, load_mask};
    let dir = tempdir("special");
    // /dev/zero would be read without end, a folder is not an image.
    for (path, what) in [
        (PathBuf::from("/dev/zero"), "a device"),
        (dir.clone(), "a folder"),
    ] {
        let image = load_image(&path, &LoadOptions::default()).unwrap_err();
        let dicom = load_dicom(&path, &LoadOptions::default()).unwrap_err();
        let mask = load_mask(&path).unwrap_err();
        for e in [image.to_string(), dicom.to_string(), mask.to_string()] {
            assert!(
                e.contains(what) && e.contains(&*path.to_string_lossy()),
                "{e}"
            );
        }
    }
    let fifo = dir.join("scanner.png");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        eprintln!("mkfifo is not available: the named-pipe cases are not checked");
        std::fs::remove_dir_all(&dir).ok();
        return;
    }
    // Nothing writes to it: reading used to wait for a writer for ever.
    let e = load_image(&fifo, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("named pipe") && e.contains("scanner.png"), "{e}");
    // Settings files a user names go through the same checks: an idle pipe given as an
    // augmentation config is an error at once; a data set's categories.csv must be a file.
    let e = xray_data::augment::PipelineConfig::from_file(&fifo)
        .unwrap_err()
        .to_string();
    assert!(e.contains("named pipe") && e.contains("scanner.png"), "{e}");
    let set = dir.join("set");
    std::fs::create_dir_all(set.join("images")).unwrap();
    save_png16(&set.join("images/a.png"), &ramp(4, 4, 10.0)).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(set.join("categories.csv"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(made);
    let e = xray_data::dataset::Dataset::open(&set, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not a file") && e.contains("categories.csv"),
        "{e}"
    );
    for (path, what) in [
        (PathBuf::from("/dev/zero"), "a device"),
        (dir.clone(), "a folder"),
    ] {
        let e = xray_data::io::read_text_file(&path)
            .unwrap_err()
            .to_string();
        assert!(e.contains(what) && e.contains("settings"), "{e}");
    }
    // Something writes an image into it (`cat scan.png | segment /dev/stdin`): it is read.
    let png = dir.join("ramp.png");
    let img = ramp(5, 3, 100.0);
    save_png16(&png, &img).unwrap();
    let bytes = std::fs::read(&png).unwrap();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            // Opening for writing waits for a reader; the image goes in two parts, slowly. A
            // reader that gave up before the first part (it found the pipe empty) makes the
            // writes fail: then it starts again for the reader's next try.
            for _ in 0..200 {
                let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) else {
                    continue;
                };
                let (a, b) = bytes.split_at(bytes.len() / 2);
                let first = f.write_all(a);
                std::thread::sleep(std::time::Duration::from_millis(50));
                if first.is_ok() && f.write_all(b).is_ok() {
                    return true;
                }
            }
            false
        })
    };
    // The writer may open the pipe after the reader: retry while the pipe reads empty.
    let mut loaded = None;
    for _ in 0..200 {
        match load_image(&fifo, &LoadOptions::default()) {
            Ok(read) => {
                loaded = Some(read);
                break;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    assert_eq!(loaded.expect("the fed pipe was read"), img);
    assert!(writer.join().unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

/// A grayscale PNG of bit depth `depth` (1, 2 or 4) holding `values` (each < 2^depth), rows
/// packed most significant bits first as the PNG standard has them.
fn write_low_bit_png(path: &std::path::Path, w: u32, h: u32, depth: u8, values: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(match depth {
        1 => png::BitDepth::One,
        2 => png::BitDepth::Two,
        4 => png::BitDepth::Four,
        _ => unreachable!(),
    });
    let per_byte = 8 / depth as usize;
    let mut bytes = Vec::new();
    for row in values.chunks(w as usize) {
        for group in row.chunks(per_byte) {
            let mut b = 0u8;
            for (i, &v) in group.iter().enumerate() {
                b |= v << (8 - depth as usize * (i + 1));
            }
            bytes.push(b);
        }
    }
    enc.write_header()
        .unwrap()
        .write_image_data(&bytes)
        .unwrap();
}

#[test]
fn low_bit_grey_pngs_load_scaled_to_eight_bits_and_are_refused_as_masks() {
    let dir = tempdir("low-bit");
    let p = dir.join("low.png");
    // A 1-, 2- or 4-bit grey value v loads as v · 255 / (2^depth − 1), the 8-bit grey of
    // the same brightness: 1 bit gives 0 and 255.
    for (depth, values, expected) in [
        (
            1u8,
            vec![0u8, 1, 1, 0, 1],
            vec![0.0f32, 255.0, 255.0, 0.0, 255.0],
        ),
        (2, vec![0, 1, 2, 3, 0], vec![0.0, 85.0, 170.0, 255.0, 0.0]),
        (
            4,
            vec![0, 1, 7, 15, 8],
            vec![0.0, 17.0, 119.0, 255.0, 136.0],
        ),
    ] {
        write_low_bit_png(&p, 5, 1, depth, &values);
        let img = load_image(&p, &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{depth}-bit PNG refused: {e}"));
        assert_eq!((img.width(), img.height()), (5, 1));
        assert_eq!(img.as_raw(), &expected, "{depth}-bit PNG");
        // As a mask, the expansion would turn label 1 into 255 (ignore) or 85: refused.
        match load_mask(&p) {
            Err(e @ DataError::Unsupported { .. }) => {
                assert!(e.to_string().contains(&format!("{depth}-bit")), "{e}")
            }
            other => panic!("{depth}-bit mask: {other:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A little-endian TIFF of 1 × 1 8-bit pages; `page_extra` adds IFD entries to each page.
fn tiff_pages(page_extra: &[&[(u16, u16, u32, u32)]]) -> Vec<u8> {
    let mut out = b"II*\0".to_vec();
    out.extend(8u32.to_le_bytes());
    for (i, extra) in page_extra.iter().enumerate() {
        let entries = 8 + extra.len();
        let ifd_len = 2 + 12 * entries + 4;
        let pixel = out.len() + ifd_len;
        let next = if i + 1 < page_extra.len() {
            (pixel + 2) as u32 // after this page's pixel byte and a pad byte
        } else {
            0
        };
        let mut tags: Vec<(u16, u16, u32, u32)> = vec![
            (256, 3, 1, 1),
            (257, 3, 1, 1),
            (258, 3, 1, 8),
            (259, 3, 1, 1),
            (262, 3, 1, 1),
            (273, 4, 1, pixel as u32),
            (278, 3, 1, 1),
            (279, 4, 1, 1),
        ];
        tags.extend_from_slice(extra);
        tags.sort_by_key(|t| t.0);
        out.extend((entries as u16).to_le_bytes());
        for (tag, typ, count, value) in tags {
            out.extend(tag.to_le_bytes());
            out.extend(typ.to_le_bytes());
            out.extend(count.to_le_bytes());
            out.extend(value.to_le_bytes());
        }
        out.extend(next.to_le_bytes());
        out.extend([200, 0]);
    }
    out
}

#[test]
fn a_tiff_page_with_an_empty_sample_format_is_an_error_not_a_panic() {
    // Found by fuzzing: tiff 0.10 indexed the first SampleFormat of a page whose tag has
    // none, and panicked while moving to that page; tiff 0.11 reports it.
    let bytes = tiff_pages(&[&[], &[(339, 3, 0, 0)]]);
    let path = std::path::Path::new("two-pages.tif");
    let first = xray_data::io::decode_image(path, &bytes, &LoadOptions::default()).unwrap();
    assert_eq!(first.get_pixel(0, 0)[0], 200.0);
    let second = LoadOptions {
        frame: 1,
        ..LoadOptions::default()
    };
    let e = xray_data::io::decode_image(path, &bytes, &second).unwrap_err();
    assert!(
        matches!(e, DataError::Decode { format: "TIFF", .. }),
        "{e:?}"
    );
}

/// A palette (indexed-colour) PNG, as PASCAL VOC and labelme save label masks, was refused
/// as a mask with "found Rgb8" (what the decoder expands it to), which describes no file the
/// user has and hides why: its indices are not read as labels. The error now says what the
/// file is and what to save instead.
#[test]
fn a_palette_png_mask_is_refused_as_what_it_is() {
    let dir = tempdir("palette-mask");
    let p = dir.join("labels.png");
    let file = std::fs::File::create(&p).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), 3, 1);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette(vec![0u8, 0, 0, 0, 255, 0, 255, 0, 0]);
    enc.write_header()
        .unwrap()
        .write_image_data(&[0, 1, 2])
        .unwrap();
    match load_mask(&p) {
        Err(e @ DataError::Unsupported { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("labels.png") && text.contains("palette"),
                "{text}"
            );
            assert!(
                !text.contains("Rgb8") && text.contains("grayscale"),
                "{text}"
            );
        }
        other => panic!("palette mask: {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
