//! Splits, k-fold, balancing and class statistics: seeded, disjoint, complete.

use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::{BTreeSet, HashMap};
use xray_data::dataset::{stratified_kfold, xnet_split, BalancedSampler, ClassStats, SplitConfig};
use xray_data::Mask;

fn cats(spec: &[(&str, usize)]) -> Vec<String> {
    // Interleave categories so indices of one category are not contiguous.
    let mut out = Vec::new();
    let max = spec.iter().map(|s| s.1).max().unwrap_or(0);
    for i in 0..max {
        for &(c, n) in spec {
            if i < n {
                out.push(c.to_string());
            }
        }
    }
    out
}

fn assert_partition(parts: &[&[usize]], n: usize) {
    let mut all = BTreeSet::new();
    for p in parts {
        for &i in *p {
            assert!(all.insert(i), "index {i} appears twice");
        }
    }
    assert_eq!(all.len(), n, "not complete");
    assert_eq!(all.iter().next_back().copied(), n.checked_sub(1));
}

#[test]
fn xnet_split_is_disjoint_complete_seeded_and_keeps_categories_in_train() {
    let c = cats(&[
        ("hand", 20),
        ("foot", 7),
        ("knee", 2),
        ("skull", 1),
        ("pelvis", 3),
    ]);
    for seed in 0..20 {
        let s = xnet_split(
            &c,
            &SplitConfig::default(),
            &mut StdRng::seed_from_u64(seed),
        )
        .unwrap();
        assert_partition(&[&s.train, &s.val, &s.test], c.len());
        let train_cats: BTreeSet<&str> = s.train.iter().map(|&i| c[i].as_str()).collect();
        for cat in ["hand", "foot", "knee", "pelvis"] {
            assert!(
                train_cats.contains(cat),
                "seed {seed}: {cat} missing from train"
            );
        }
        let skull = c.iter().position(|x| x == "skull").unwrap();
        assert!(s.test.contains(&skull));
        // hand: 20 → 14/3/3.
        let count = |v: &[usize], cat: &str| v.iter().filter(|&&i| c[i] == cat).count();
        assert_eq!(
            (
                count(&s.train, "hand"),
                count(&s.val, "hand"),
                count(&s.test, "hand")
            ),
            (14, 3, 3)
        );
        let again = xnet_split(
            &c,
            &SplitConfig::default(),
            &mut StdRng::seed_from_u64(seed),
        )
        .unwrap();
        assert_eq!(s, again);
    }
    let a = xnet_split(&c, &SplitConfig::default(), &mut StdRng::seed_from_u64(1)).unwrap();
    let b = xnet_split(&c, &SplitConfig::default(), &mut StdRng::seed_from_u64(2)).unwrap();
    assert_ne!(a, b);
    let cfg = SplitConfig {
        train: 0.5,
        val: 0.25,
        test: 0.25,
    };
    let s = xnet_split(&cats(&[("a", 8)]), &cfg, &mut StdRng::seed_from_u64(0)).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (4, 2, 2));
    for bad in [
        SplitConfig {
            train: 0.7,
            val: 0.2,
            test: 0.2,
        },
        SplitConfig {
            train: 0.0,
            val: 0.5,
            test: 0.5,
        },
        SplitConfig {
            train: 1.2,
            val: -0.1,
            test: -0.1,
        },
    ] {
        assert!(xnet_split(&c, &bad, &mut StdRng::seed_from_u64(0)).is_err());
    }
    assert!(xnet_split(&[], &SplitConfig::default(), &mut StdRng::seed_from_u64(0)).is_err());
}

#[test]
fn refused_fractions_print_as_readable_numbers() {
    // A train fraction of 1e308 was printed as a 309-digit integer.
    let bad = SplitConfig {
        train: 1e308,
        val: -1e-9,
        test: 0.25,
    };
    let err = bad.validate().unwrap_err().to_string();
    assert!(
        err.ends_with("got train=1e308, val=-1e-9, test=0.25"),
        "{err}"
    );
}

#[test]
fn kfold_tests_every_sample_once_and_is_stratified() {
    let c = cats(&[("a", 10), ("b", 5), ("c", 1)]);
    let k = 5;
    let folds = stratified_kfold(&c, k, &mut StdRng::seed_from_u64(3)).unwrap();
    assert_eq!(folds.len(), k);
    let tests: Vec<&[usize]> = folds.iter().map(|f| f.test.as_slice()).collect();
    assert_partition(&tests, c.len());
    for f in &folds {
        assert_partition(&[&f.train, &f.test], c.len());
        // Sizes differ by at most one; each fold has 2 of "a" and 1 of "b".
        assert!((3..=4).contains(&f.test.len()), "{:?}", f.test);
        assert_eq!(f.test.iter().filter(|&&i| c[i] == "a").count(), 2);
        assert_eq!(f.test.iter().filter(|&&i| c[i] == "b").count(), 1);
    }
    assert_eq!(
        folds,
        stratified_kfold(&c, k, &mut StdRng::seed_from_u64(3)).unwrap()
    );
    assert!(stratified_kfold(&c, 1, &mut StdRng::seed_from_u64(0)).is_err());
    assert!(stratified_kfold(&c, 17, &mut StdRng::seed_from_u64(0)).is_err());
}

#[test]
fn balanced_sampler_oversamples_to_the_largest_category() {
    let c = cats(&[("a", 9), ("b", 4), ("c", 1)]);
    let train: Vec<usize> = (0..c.len()).collect();
    let s = BalancedSampler::new(&c, &train).unwrap();
    assert_eq!(s.epoch_len(), 27);
    let epoch = s.epoch(&mut StdRng::seed_from_u64(5));
    assert_eq!(epoch.len(), 27);
    let mut per_cat: HashMap<&str, usize> = HashMap::new();
    let mut per_idx: HashMap<usize, Vec<u32>> = HashMap::new();
    for d in &epoch {
        *per_cat.entry(c[d.index].as_str()).or_default() += 1;
        per_idx.entry(d.index).or_default().push(d.copy);
    }
    assert!(per_cat.values().all(|&n| n == 9), "{per_cat:?}");
    // Every sample drawn; copies numbered 0..k without gaps; counts floor/ceil(9/m).
    for (i, mut copies) in per_idx {
        copies.sort_unstable();
        assert_eq!(copies, (0..copies.len() as u32).collect::<Vec<_>>());
        let m = c.iter().filter(|x| **x == c[i]).count();
        assert!(
            copies.len() == 9 / m || copies.len() == 9_usize.div_ceil(m),
            "{i}: {copies:?}"
        );
    }
    assert_eq!(epoch, s.epoch(&mut StdRng::seed_from_u64(5)));
    assert_ne!(epoch, s.epoch(&mut StdRng::seed_from_u64(6)));
    assert!(BalancedSampler::new(&c, &[]).is_err());
    assert!(BalancedSampler::new(&c, &[99]).is_err());
}

#[test]
fn class_statistics_and_weights() {
    // Mask 1: 6 open beam, 2 soft tissue, 0 bone, 1 ignore. Mask 2: 1 open, 1 soft, 2 bone.
    let m1 = Mask::from_raw(3, 3, vec![0, 0, 0, 0, 0, 0, 1, 1, 255]).unwrap();
    let m2 = Mask::from_raw(2, 2, vec![0, 1, 2, 2]).unwrap();
    let s = ClassStats::from_masks(3, [&m1, &m2]);
    assert_eq!(s.pixels, vec![7, 3, 2]);
    assert_eq!(s.ignored, 1);
    assert_eq!(s.pixels_of_images_with, vec![12, 12, 4]);
    // scikit-learn compute_class_weight("balanced") on the 12 labelled pixels:
    // 12 / (3 * [7, 3, 2]).
    let inv = s.inverse_frequency_weights();
    for (w, want) in inv.iter().zip([12.0 / 21.0, 12.0 / 9.0, 12.0 / 6.0]) {
        assert!((w - want).abs() < 1e-6, "{inv:?}");
    }
    // Median frequency: freq = [7/12, 3/12, 2/4], median 0.5.
    let med = s.median_frequency_weights();
    for (w, want) in med.iter().zip([0.5 / (7.0 / 12.0), 0.5 / 0.25, 1.0]) {
        assert!((w - want).abs() < 1e-6, "{med:?}");
    }
    // An absent class gets weight 0 and does not enter the median.
    let s = ClassStats::from_masks(4, [&m1]);
    assert_eq!(s.inverse_frequency_weights()[2], 0.0);
    assert_eq!(s.median_frequency_weights()[2], 0.0);
    let mut merged = ClassStats::from_masks(3, [&m1]);
    merged.merge(&ClassStats::from_masks(3, [&m2])).unwrap();
    assert_eq!(merged, ClassStats::from_masks(3, [&m1, &m2]));
}

/// Merging statistics of another class count is an error and leaves the target as it was
/// (it used to drop the extra classes and still count the mask).
#[test]
fn merging_class_statistics_of_another_class_count_is_refused() {
    let m = Mask::from_raw(5, 1, vec![0, 1, 2, 3, 4]).unwrap();
    let mut three = ClassStats::from_masks(3, [&m]);
    let before = three.clone();
    let err = three.merge(&ClassStats::from_masks(5, [&m])).unwrap_err();
    assert!(
        err.to_string().contains("5 classes into statistics of 3"),
        "{err}"
    );
    assert_eq!(three, before);
    // Fewer classes, and a struct whose own vectors disagree, likewise.
    assert!(three.merge(&ClassStats::new(2)).is_err());
    let mut odd = ClassStats::new(3);
    odd.pixels_of_images_with.pop();
    assert!(three.merge(&odd).is_err());
    assert!(odd.merge(&ClassStats::new(3)).is_err());
    assert_eq!(three, before);
}
