//! Batching: shapes, layout, determinism regardless of threads, errors, prefetch.

mod common;
use common::Scratch;

use image::Luma;
use rand::rngs::StdRng;
use rand::RngExt;
use std::sync::Arc;
use xray_data::dataset::{BatchConfig, Dataset, DatasetOptions, Draw, SampleContext};
use xray_data::io::{save_mask, save_png16};
use xray_data::normalize::NormalizeConfig;
use xray_data::{DataError, Mask, Radiograph, Result, IGNORE_LABEL};

fn folder(tag: &str, n: usize, masks: bool) -> Scratch {
    let root = Scratch::new(&format!("xray-ds-batch-{tag}"));
    std::fs::create_dir_all(root.join("images")).unwrap();
    if masks {
        std::fs::create_dir_all(root.join("masks")).unwrap();
    }
    for i in 0..n {
        // Image i is constant 100·(i+1) on the left half and 0 on the right half (8×4).
        let img = Radiograph::from_fn(8, 4, |x, _| {
            Luma([if x < 4 { 100.0 * (i + 1) as f32 } else { 0.0 }])
        });
        save_png16(&root.join(format!("images/s{i:02}.png")), &img).unwrap();
        if masks {
            let m = Mask::from_fn(8, 4, |x, _| Luma([if x < 4 { 1 } else { 2 }]));
            save_mask(&root.join(format!("masks/s{i:02}.png")), &m).unwrap();
        }
    }
    root
}

fn identity(
    _: &SampleContext<'_>,
    i: Radiograph,
    m: Mask,
    _: &mut StdRng,
) -> Result<(Radiograph, Mask)> {
    Ok((i, m))
}

fn cfg(batch_size: usize) -> BatchConfig {
    BatchConfig {
        batch_size,
        width: 4,
        height: 2,
        normalize: None,
        prefetch: 1,
        ..BatchConfig::default()
    }
}

#[test]
fn batches_have_the_documented_layout() {
    let root = folder("layout", 5, true);
    let ds = Arc::new(Dataset::open(&root, &DatasetOptions::default()).unwrap());
    let draws = Draw::plain(&[4, 0, 1, 2, 3]);
    let batches: Vec<_> = ds
        .batches(draws, 0, &cfg(2), identity)
        .unwrap()
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.n).collect::<Vec<_>>(), [2, 2, 1]);
    let b = &batches[0];
    assert_eq!((b.height, b.width), (2, 4));
    assert_eq!(b.images.len(), 2 * 2 * 4);
    assert_eq!(b.labels.len(), 2 * 2 * 4);
    assert_eq!(b.stems, ["s04", "s00"]);
    // 8×4 → 4×2 by area: left half keeps its constant, right half 0; masks nearest.
    assert_eq!(
        &b.images[..8],
        &[500.0, 500.0, 0.0, 0.0, 500.0, 500.0, 0.0, 0.0]
    );
    assert_eq!(
        &b.images[8..],
        &[100.0, 100.0, 0.0, 0.0, 100.0, 100.0, 0.0, 0.0]
    );
    assert_eq!(&b.labels[..8], &[1, 1, 2, 2, 1, 1, 2, 2]);
    // drop_last.
    let c = BatchConfig {
        drop_last: true,
        ..cfg(2)
    };
    assert_eq!(
        ds.batches(Draw::plain(&[0, 1, 2, 3, 4]), 0, &c, identity)
            .unwrap()
            .count(),
        2
    );
    // Normalisation: min-max per image.
    let c = BatchConfig {
        normalize: Some(NormalizeConfig::default()),
        ..cfg(1)
    };
    let b = ds
        .batches(Draw::plain(&[2]), 0, &c, identity)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(&b.images, &[1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
}

#[test]
fn inference_datasets_get_ignore_labels() {
    let root = folder("infer", 2, false);
    let ds = Arc::new(Dataset::open(&root, &DatasetOptions::default()).unwrap());
    let b = ds
        .batches(Draw::plain(&[0, 1]), 0, &cfg(2), identity)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert!(b.labels.iter().all(|&l| l == IGNORE_LABEL));
}

/// A prepare function that adds RNG noise and records which thread ran it.
fn noisy(
    ctx: &SampleContext<'_>,
    mut i: Radiograph,
    m: Mask,
    rng: &mut StdRng,
) -> Result<(Radiograph, Mask)> {
    let bump: f32 = rng.random_range(0.0..1.0);
    i.iter_mut()
        .for_each(|v| *v += bump + ctx.draw.copy as f32 * 1000.0);
    Ok((i, m))
}

#[test]
fn prepare_rng_depends_only_on_seed_epoch_and_draw() {
    let root = folder("det", 6, true);
    let ds = Arc::new(Dataset::open(&root, &DatasetOptions::default()).unwrap());
    let draws = vec![
        Draw { index: 0, copy: 0 },
        Draw { index: 0, copy: 1 },
        Draw { index: 3, copy: 0 },
        Draw { index: 5, copy: 0 },
    ];
    let run = |bs: usize, threads: usize, epoch: u64, seed: u64| -> Vec<Vec<f32>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let c = BatchConfig { seed, ..cfg(bs) };
        let ds = Arc::clone(&ds);
        let draws = draws.clone();
        pool.install(move || {
            ds.batches(draws, epoch, &c, noisy)
                .unwrap()
                .map(|b| b.unwrap())
                .flat_map(|b| b.images.chunks(8).map(<[f32]>::to_vec).collect::<Vec<_>>())
                .collect()
        })
    };
    let a = run(4, 1, 3, 9);
    assert_eq!(
        a,
        run(1, 2, 3, 9),
        "batch size / thread count changed the result"
    );
    assert_eq!(a, run(3, 2, 3, 9));
    assert_ne!(a, run(4, 1, 4, 9), "epoch must change the RNG");
    assert_ne!(a, run(4, 1, 3, 10), "seed must change the RNG");
    // Copies of the same sample get different noise.
    assert_ne!(a[0][0] - 0.0, a[1][0] - 1000.0);
}

#[test]
fn errors_surface_as_items_and_end_the_iterator() {
    let root = folder("err", 3, true);
    std::fs::write(root.join("images/s01.png"), b"\x89PNG\r\n\x1a\ntruncated").unwrap();
    let ds = Arc::new(Dataset::open(&root, &DatasetOptions::default()).unwrap());
    let items: Vec<_> = ds
        .batches(Draw::plain(&[0, 1, 2]), 0, &cfg(1), identity)
        .unwrap()
        .collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    match &items[1] {
        Err(e @ DataError::Decode { .. }) => assert!(e.to_string().contains("s01.png"), "{e}"),
        other => panic!("{other:?}"),
    }
    // A prepare function that changes the size is caught.
    let shrink = |_: &SampleContext<'_>,
                  _: Radiograph,
                  m: Mask,
                  _: &mut StdRng|
     -> Result<(Radiograph, Mask)> { Ok((Radiograph::new(1, 1), m)) };
    let mut it = ds.batches(Draw::plain(&[0]), 0, &cfg(1), shrink).unwrap();
    assert!(matches!(
        it.next(),
        Some(Err(DataError::SizeMismatch { .. }))
    ));
    assert!(it.next().is_none());
    // A panicking prepare function is reported, not propagated.
    let boom = |_: &SampleContext<'_>,
                _: Radiograph,
                _: Mask,
                _: &mut StdRng|
     -> Result<(Radiograph, Mask)> { panic!("boom") };
    let mut it = ds.batches(Draw::plain(&[0]), 0, &cfg(1), boom).unwrap();
    assert!(matches!(
        it.next(),
        Some(Err(DataError::InvalidParameter(_)))
    ));
    // Bad arguments.
    assert!(ds.batches(Draw::plain(&[7]), 0, &cfg(1), identity).is_err());
    assert!(ds.batches(Draw::plain(&[0]), 0, &cfg(0), identity).is_err());
    // An output size above the pixel limit is refused up front (it aborted allocating).
    for (width, height) in [(100_000, 100_000), (u32::MAX, u32::MAX), (10_001, 10_000)] {
        let huge = BatchConfig {
            width,
            height,
            ..cfg(1)
        };
        let err = ds
            .batches(Draw::plain(&[0]), 0, &huge, identity)
            .unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
    }
}

#[test]
fn a_sample_near_f32_max_resizes_to_its_finite_mean() {
    // Finite in the file, so the loader takes it. The area filter's f32 sums overflowed
    // here (ten weights of 0.1f32, a little over 1/10 each): the top row (f32::MAX) shrank
    // to +inf, the bottom one (-f32::MAX) to -inf, and the two averaged to NaN, which
    // `normalize` then refused. `resize` now redoes such an image in f64: the mean is 0.
    let root = std::env::temp_dir().join(format!("xray-ds-batch-nan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("images")).unwrap();
    let img = Radiograph::from_fn(10, 2, |_, y| {
        Luma([if y == 0 { f32::MAX } else { -f32::MAX }])
    });
    let file = root.join("images/huge.tiff");
    xray_data::io::save_tiff_f32(&file, &img).unwrap();
    let ds = Arc::new(Dataset::open(&root, &DatasetOptions::default()).unwrap());
    for normalize in [None, Some(NormalizeConfig::default())] {
        let cfg = BatchConfig {
            width: 1,
            height: 1,
            normalize,
            ..cfg(1)
        };
        let (img, _) = ds
            .prepare_sample(Draw::plain(&[0])[0], 0, &cfg, &identity)
            .unwrap();
        assert_eq!(img.as_raw(), &vec![0.0], "{normalize:?}");
        // Through `batches` too.
        let mut it = ds.batches(Draw::plain(&[0]), 0, &cfg, identity).unwrap();
        assert!(matches!(it.next(), Some(Ok(_))), "{normalize:?}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn dropping_the_iterator_early_stops_the_worker() {
    let root = folder("drop", 4, true);
    let ds = Arc::new(Dataset::open(&root, &DatasetOptions::default()).unwrap());
    let draws = Draw::plain(&[0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
    let mut it = ds
        .batches(
            draws,
            0,
            &BatchConfig {
                prefetch: 0,
                ..cfg(1)
            },
            identity,
        )
        .unwrap();
    assert_eq!(it.remaining(), 12);
    assert!(it.next().unwrap().is_ok());
    drop(it); // must return (joins the worker) rather than hang
}
