//! Synthetic phantom throughput: one 256×256 image (anatomy, physics, collimation, labels)
//! per iteration, one thread. Goal: ≥ 50 images/s on one core.
//!
//! `cargo bench --bench synth`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::SeedableRng;
use xray_data::synth::{generate, sample_category, BodyPart, PhantomConfig};

fn bench_synth(c: &mut Criterion) {
    let mut g = c.benchmark_group("synth");
    g.throughput(Throughput::Elements(1));
    g.sample_size(30);
    for size in [256u32, 512] {
        let cfg = PhantomConfig::with_size(size);
        let mut rng = StdRng::seed_from_u64(1);
        g.bench_function(format!("phantom_{size}"), |b| {
            b.iter(|| {
                let part = sample_category(&mut rng, &cfg.category_weights).unwrap();
                generate(&cfg, part, &mut rng).unwrap()
            })
        });
    }
    // The heaviest body part (most primitives), for the worst case.
    let cfg = PhantomConfig::with_size(256);
    let mut rng = StdRng::seed_from_u64(2);
    g.bench_function("hand_256", |b| {
        b.iter(|| generate(&cfg, BodyPart::Hand, &mut rng).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_synth);
criterion_main!(benches);
