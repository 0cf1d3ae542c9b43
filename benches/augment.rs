//! Augmentation throughput on a 512×512 f32 image + u8 mask, one thread, side by side with
//! the albumentations peer (`../shared/peers/aug_peer.py`: ElasticTransform α = 34, σ = 4
//! and XNet's Affine ±15°/±2°/±1 %, bilinear image, nearest mask, reflect-101 border).
//! The sample image is the peer's `make_sample` pattern (`xray_data::augment::peer_sample`).
//!
//! `cargo bench --bench augment` (one thread per pipeline, plus a rayon batch of 16).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::SeedableRng;
use xray_data::augment::{peer_sample, Affine, Elastic, NoiseDistribution, Pipeline, Transform};

fn pipeline(steps: Vec<Box<dyn Transform>>) -> Pipeline {
    let mut p = Pipeline::new();
    for s in steps {
        p.push(s, 1.0).unwrap();
    }
    p
}

fn bench_augment(c: &mut Criterion) {
    let (img, mask) = peer_sample(512);
    let elastic = Elastic::default();
    let elastic_exact = Elastic {
        exact: true,
        ..Elastic::default()
    };
    let affine = Affine::default();
    let cases: Vec<(&str, Pipeline)> = vec![
        ("elastic", pipeline(vec![Box::new(elastic)])),
        ("elastic_exact", pipeline(vec![Box::new(elastic_exact)])),
        ("affine", pipeline(vec![Box::new(affine)])),
        (
            "elastic+affine",
            pipeline(vec![Box::new(elastic), Box::new(affine)]),
        ),
        (
            "elastic_exact+affine",
            pipeline(vec![Box::new(elastic_exact), Box::new(affine)]),
        ),
        // The peer draws Gaussian noise (albumentations 2); our default is uniform (Simard).
        (
            "elastic_gaussian",
            pipeline(vec![Box::new(Elastic {
                noise: NoiseDistribution::Gaussian,
                ..Elastic::default()
            })]),
        ),
        // Translation only: the same kernel with sequential source access.
        (
            "affine_translate",
            pipeline(vec![Box::new(Affine {
                rotate_deg: [0.0, 0.0],
                shear_deg: [0.0, 0.0],
                ..affine
            })]),
        ),
    ];
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("augment_512");
    g.throughput(Throughput::Elements(1));
    g.sample_size(30);
    for (name, p) in &cases {
        let mut rng = StdRng::seed_from_u64(1);
        g.bench_function(*name, |b| {
            b.iter(|| {
                one.install(|| {
                    let (mut i, mut m) = (img.clone(), mask.clone());
                    p.apply(&mut i, &mut m, &mut rng).unwrap();
                    (i, m)
                })
            })
        });
    }
    g.finish();

    // Batch path: 16 images through elastic+affine on the global rayon pool.
    let (_, p) = &cases[3];
    let mut g = c.benchmark_group("augment_512_batch16");
    g.throughput(Throughput::Elements(16));
    g.sample_size(10);
    let mut seed = 0u64;
    g.bench_function("elastic+affine_rayon", |b| {
        b.iter(|| {
            let mut batch: Vec<_> = (0..16).map(|_| (img.clone(), mask.clone())).collect();
            seed += 1;
            p.apply_batch(&mut batch, seed).unwrap();
            batch
        })
    });
    g.finish();
}

criterion_group!(benches, bench_augment);
criterion_main!(benches);
