//! xray-data I/O throughput: decoding 2000×2000 16-bit PNG, TIFF and DICOM, resizing to
//! 200×200, and a batch of 8 at 200×200 from a dataset folder.
//!
//! `cargo bench --bench data_io`. The files are generated into a temporary folder at start
//! (a smooth synthetic radiograph with deterministic noise, so PNG compression is realistic).
//! Figures are recorded in docs/performance.md.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use image::Luma;
use xray_data::dataset::{BatchConfig, Dataset, DatasetOptions, Draw};
use xray_data::io::{
    load_image, save_dicom, save_mask, save_png16, DicomWriteOptions, LoadOptions,
};
use xray_data::normalize::value_range;
use xray_data::resize::{resize, resize_mask, Filter};
use xray_data::{Mask, Radiograph};

const SIZE: u32 = 2000;

/// A smooth "radiograph" (open beam, a soft-tissue disc, a bone bar) plus 12-bit noise.
fn radiograph(seed: u64) -> Radiograph {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Radiograph::from_fn(SIZE, SIZE, |x, y| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let (fx, fy) = (x as f32 / SIZE as f32 - 0.5, y as f32 / SIZE as f32 - 0.5);
        let mut v = 50_000.0;
        if fx * fx + fy * fy < 0.12 {
            v = 20_000.0 + 8_000.0 * fx;
        }
        if fx.abs() < 0.05 {
            v = 6_000.0 + 2_000.0 * fy;
        }
        Luma([v + (s % 4096) as f32])
    })
}

fn mask() -> Mask {
    Mask::from_fn(SIZE, SIZE, |x, _| Luma([(x * 3 / SIZE) as u8]))
}

fn setup() -> (PathBuf, Radiograph) {
    let dir = std::env::temp_dir().join(format!("xray-bench-data-io-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("ds/images")).unwrap();
    std::fs::create_dir_all(dir.join("ds/masks")).unwrap();
    let img = radiograph(1);
    save_png16(&dir.join("a.png"), &img).unwrap();
    let u16img = image::ImageBuffer::<Luma<u16>, Vec<u16>>::from_fn(SIZE, SIZE, |x, y| {
        Luma([img.get_pixel(x, y).0[0] as u16])
    });
    u16img.save(dir.join("a.tif")).unwrap();
    save_dicom(&dir.join("a.dcm"), &img, &DicomWriteOptions::default()).unwrap();
    let m = mask();
    for i in 0..8 {
        save_png16(&dir.join(format!("ds/images/s{i}.png")), &radiograph(i + 2)).unwrap();
        save_mask(&dir.join(format!("ds/masks/s{i}.png")), &m).unwrap();
    }
    (dir, img)
}

fn benches(c: &mut Criterion) {
    let (dir, img) = setup();
    let opts = LoadOptions::default();

    let mut g = c.benchmark_group("decode_2000x2000_u16");
    g.sample_size(10);
    g.throughput(Throughput::Elements(u64::from(SIZE * SIZE)));
    for ext in ["png", "tif", "dcm"] {
        let p = dir.join(format!("a.{ext}"));
        g.bench_function(ext, |b| {
            b.iter(|| black_box(load_image(&p, &opts).unwrap()))
        });
    }
    g.finish();

    // The range scan every min-max normalisation and `segment`'s constant-image check make.
    let mut g = c.benchmark_group("scan_2000x2000");
    g.sample_size(20);
    g.throughput(Throughput::Elements(u64::from(SIZE * SIZE)));
    g.bench_function("value_range", |b| b.iter(|| black_box(value_range(&img))));
    g.finish();

    let mut g = c.benchmark_group("resize_2000_to_200");
    g.sample_size(20);
    g.bench_function("area", |b| {
        b.iter(|| black_box(resize(&img, 200, 200, Filter::Area).unwrap()))
    });
    g.bench_function("bilinear", |b| {
        b.iter(|| black_box(resize(&img, 200, 200, Filter::Bilinear).unwrap()))
    });
    let m = mask();
    g.bench_function("mask_nearest", |b| {
        b.iter(|| black_box(resize_mask(&m, 200, 200).unwrap()))
    });
    g.finish();

    let ds = Arc::new(Dataset::open(&dir.join("ds"), &DatasetOptions::default()).unwrap());
    let cfg = BatchConfig::default(); // 8 at 200×200, area, min-max, prefetch 2
    let mut g = c.benchmark_group("batch_8x200x200_from_2000x2000_png");
    g.sample_size(10);
    g.bench_function("load_resize_normalize", |b| {
        b.iter(|| {
            let mut it = ds
                .batches(
                    Draw::plain(&(0..8).collect::<Vec<_>>()),
                    0,
                    &cfg,
                    |_, i, m, _| Ok((i, m)),
                )
                .unwrap();
            black_box(it.next().unwrap().unwrap())
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(data_io, benches);
criterion_main!(data_io);
