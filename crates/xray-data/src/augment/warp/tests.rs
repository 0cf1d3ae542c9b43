use super::*;

#[test]
fn cubic_weights_sum_to_one_and_interpolate() {
    for t in [0.0f32, 0.25, 0.5, 0.9] {
        let w = cubic_weights(t);
        assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
    assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
}

fn plane(w: u32, h: u32) -> (Radiograph, Mask) {
    let img = Radiograph::from_fn(w, h, |x, y| {
        image::Luma([((x * 7919 + y * 104_729) % 1013) as f32 * 0.37 + 1.0])
    });
    let mask = Mask::from_fn(w, h, |x, y| {
        image::Luma([[0u8, 1, 2, 255][((x * 13 + y * 29) % 4) as usize]])
    });
    (img, mask)
}

/// Source coordinates of output pixel `(x, y)` for a family of maps: a rotation that
/// leaves the source, a jitter, far/non-finite values, integer and boundary values.
fn map(kind: usize, w: usize, h: usize, x: usize, y: usize) -> (f32, f32) {
    let (xf, yf) = (x as f32, y as f32);
    let (wf, hf) = (w as f32, h as f32);
    let hash = ((x * 2_654_435_761 + y * 40_503 + kind * 977) % 10_007) as f32 / 10_007.0;
    match kind {
        0 => {
            let (c, s) = (0.91f32, 0.41f32);
            let (u, v) = (xf - wf / 2.0, yf - hf / 2.0);
            (
                1.3 * (c * u + s * v) + wf / 2.0,
                1.3 * (-s * u + c * v) + hf / 2.0,
            )
        }
        1 => (xf + 6.0 * hash - 3.0, yf + 5.0 * (1.0 - hash) - 2.5),
        2 => match (x + 3 * y) % 9 {
            0 => (f32::NAN, yf),
            1 => (xf, f32::INFINITY),
            2 => (xf * 50.0 - 1000.0, yf),
            3 => (-wf - 0.5, 2.0 * hf),
            4 => (2.0 * wf - 2.0, hf - 1.0),
            5 => (1.0 - wf, -(hf - 1.0)),
            6 => (wf - 1.0 - 1e-4, hf - 1.5),
            7 => (2.0 * wf - 2.0 - 1e-3, 0.5),
            _ => (xf - 0.5, yf + 0.5),
        },
        3 => (xf - 2.0, yf + 1.0),
        _ => (wf - 1.0 - xf * 0.999, (yf * 1.7) % hf),
    }
}

/// Leaves planes of `len` elements holding garbage (NaN, label 77) as this thread's
/// spares, so that a resampler that skipped an output pixel would show it.
fn poison_spares(len: usize) {
    keep_spare(&SPARE_F32, vec![f32::NAN; len]);
    keep_spare(&SPARE_U8, vec![77u8; len]);
}

/// The planes a transform replaces are reused for the next output of that size on the
/// same thread, and only then.
#[test]
fn replaced_planes_are_reused_for_the_next_output() {
    let (img, mask) = plane(9, 5);
    let (mut a, mut m) = (img.clone(), mask.clone());
    let (old_img, old_mask) = (a.as_raw().as_ptr(), m.as_raw().as_ptr());
    let (ni, nm) = remap(
        &a,
        Some(&m),
        Interpolation::Bilinear,
        Border::Reflect,
        64,
        |y, x0, xs, ys| {
            for (x, (sx, sy)) in (x0..).zip(xs.iter_mut().zip(ys.iter_mut())) {
                (*sx, *sy) = (x as f32 + 0.25, y as f32);
            }
        },
    );
    replace_planes(&mut a, Some(&mut m), ni, nm);
    assert_eq!(
        spare_or_zeroed(&SPARE_F32, 44),
        vec![0.0f32; 44],
        "other sizes start zeroed"
    );
    let f = spare_or_zeroed(&SPARE_F32, 45);
    let u = spare_or_zeroed(&SPARE_U8, 45);
    assert_eq!((f.as_ptr(), u.as_ptr()), (old_img, old_mask));
    assert_eq!(
        (&f[..], &u[..]),
        (img.as_raw().as_slice(), mask.as_raw().as_slice())
    );
    // Taken once: the next request of that size gets a new zeroed plane.
    assert!(spare_or_zeroed(&SPARE_F32, 45).iter().all(|&v| v == 0.0));
}

/// The tiled (scalar and AVX2) resampler reproduces the row-wise scalar reference bit
/// for bit, for every map family, size, border, interpolation and tiling.
#[test]
fn tiled_and_vector_paths_match_the_reference_exactly() {
    let borders = [
        Border::Reflect,
        Border::Constant {
            value: -3.0,
            mask_value: 7,
        },
    ];
    let interps = [
        Interpolation::Bilinear,
        Interpolation::Nearest,
        Interpolation::Bicubic,
    ];
    let kernels = match best_kernel() {
        Kernel::Scalar => vec![Kernel::Scalar],
        Kernel::Avx2 => vec![Kernel::Scalar, Kernel::Avx2],
        Kernel::Avx512 => vec![Kernel::Scalar, Kernel::Avx2, Kernel::Avx512],
    };
    for (w, h) in [(1u32, 1u32), (1, 7), (2, 2), (9, 5), (37, 23), (70, 41)] {
        let (img, mask) = plane(w, h);
        let (wu, hu) = (w as usize, h as usize);
        for kind in 0..5 {
            for border in borders {
                for interp in interps {
                    for with_mask in [true, false] {
                        let m = with_mask.then_some(&mask);
                        let (ri, rm) = remap_reference(&img, m, interp, border, |y, xs, ys| {
                            for (x, (sx, sy)) in xs.iter_mut().zip(ys.iter_mut()).enumerate() {
                                (*sx, *sy) = map(kind, wu, hu, x, y);
                            }
                        });
                        for &kernel in &kernels {
                            for tile in [1usize, 5, 64, usize::MAX] {
                                poison_spares(wu * hu);
                                let (fi, fm) = remap_with(
                                    &img,
                                    m,
                                    interp,
                                    border,
                                    tile,
                                    kernel,
                                    |y, x0, xs, ys| {
                                        for (x, (sx, sy)) in
                                            (x0..).zip(xs.iter_mut().zip(ys.iter_mut()))
                                        {
                                            (*sx, *sy) = map(kind, wu, hu, x, y);
                                        }
                                    },
                                );
                                let what = format!(
                                    "{w}x{h} kind {kind} {border:?} {interp:?} mask {with_mask} {kernel:?} tile {tile}"
                                );
                                for (k, (a, b)) in ri.as_raw().iter().zip(fi.as_raw()).enumerate() {
                                    assert_eq!(
                                        a.to_bits(),
                                        b.to_bits(),
                                        "{what}: pixel {k}: {a} vs {b}"
                                    );
                                }
                                assert_eq!(
                                    rm.as_ref().map(|m| m.as_raw()),
                                    fm.as_ref().map(|m| m.as_raw()),
                                    "{what}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Affine maps like XNet's augmentation (±15° rotation, ±2° shear, ±1 % translation)
/// and wider ones (rotation to ±40°, scale 0.8 to 1.25), computed as the affine
/// transform computes them (row origin in f64, then one f32 multiply-add per pixel):
/// every kernel this CPU has reproduces the reference bit for bit on them, image and
/// mask, both borders. These maps take the AVX-512 kernel's paired-row path with one to
/// four row pairs, its 32-column path and its reflected path.
#[test]
fn affine_maps_match_the_reference_exactly() {
    let kernels = match best_kernel() {
        Kernel::Scalar => vec![Kernel::Scalar],
        Kernel::Avx2 => vec![Kernel::Scalar, Kernel::Avx2],
        Kernel::Avx512 => vec![Kernel::Scalar, Kernel::Avx2, Kernel::Avx512],
    };
    let borders = [
        Border::Reflect,
        Border::Constant {
            value: 0.25,
            mask_value: 9,
        },
    ];
    // (rotation °, shear °, scale, translation as a fraction of the size)
    let maps = [
        (14.7f64, 1.9f64, 1.0f64, [0.01f64, -0.008f64]),
        (-15.0, -2.0, 1.0, [-0.01, 0.01]),
        (3.3, 0.4, 1.0, [0.004, 0.002]),
        (-0.6, 1.1, 1.0, [-0.0071, 0.0093]),
        (8.1, -1.3, 1.0, [0.0, 0.0]),
        (-11.2, 0.0, 1.0, [0.0097, -0.0031]),
        (37.0, 5.0, 1.25, [0.03, -0.02]),
        (-40.0, -3.0, 0.8, [-0.05, 0.04]),
    ];
    for (w, h) in [(300u32, 200u32), (97, 131)] {
        let (img, mask) = plane(w, h);
        let (wf, hf) = (w as f64, h as f64);
        let (cx, cy) = ((wf - 1.0) / 2.0, (hf - 1.0) / 2.0);
        for (rot, shear, scale, t) in maps {
            let (sn, cs) = rot.to_radians().sin_cos();
            let sh = shear.to_radians().tan();
            let (a11, a12) = (scale * cs, scale * (cs * sh + sn));
            let (a21, a22) = (-scale * sn, scale * (-sn * sh + cs));
            let det = a11 * a22 - a12 * a21;
            let (i11, i12, i21, i22) = (a22 / det, -a12 / det, -a21 / det, a11 / det);
            let (tx, ty) = (t[0] * wf, t[1] * hf);
            let coords = |y: usize, x0: usize, xs: &mut [f32], ys: &mut [f32]| {
                let dy = y as f64 - cy - ty;
                let ox = -cx - tx;
                let bx = (i11 * ox + i12 * dy + cx) as f32;
                let by = (i21 * ox + i22 * dy + cy) as f32;
                let (ax, ay) = (i11 as f32, i21 as f32);
                for (x, (sx, sy)) in (x0 as i32..).zip(xs.iter_mut().zip(ys.iter_mut())) {
                    *sx = bx + ax * x as f32;
                    *sy = by + ay * x as f32;
                }
            };
            for border in borders {
                let (ri, rm) = remap_reference(
                    &img,
                    Some(&mask),
                    Interpolation::Bilinear,
                    border,
                    |y, xs, ys| coords(y, 0, xs, ys),
                );
                for &kernel in &kernels {
                    for tile in [AFFINE_TILE_COLS, 64] {
                        poison_spares((w * h) as usize);
                        let (fi, fm) = remap_with(
                            &img,
                            Some(&mask),
                            Interpolation::Bilinear,
                            border,
                            tile,
                            kernel,
                            coords,
                        );
                        let what = format!(
                            "{w}x{h} rotate {rot} shear {shear} scale {scale} {border:?} {kernel:?} tile {tile}"
                        );
                        for (k, (a, b)) in ri.as_raw().iter().zip(fi.as_raw()).enumerate() {
                            assert_eq!(a.to_bits(), b.to_bits(), "{what}: pixel {k}: {a} vs {b}");
                        }
                        assert_eq!(
                            rm.as_ref().map(|m| m.as_raw()),
                            fm.as_ref().map(|m| m.as_raw()),
                            "{what}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn floor_fast_is_floor() {
    for v in [
        0.0f32,
        -0.0,
        0.5,
        -0.5,
        1.0,
        -1.0,
        2.999_999_8,
        -2.999_999_8,
        8_388_607.5,
        -8_388_607.5,
        1e9,
        -1e9,
        1e30,
        -7.0,
    ] {
        assert_eq!(floor_fast(v), v.floor(), "{v}");
    }
}

#[test]
fn bilinear_half_pixel_is_mean() {
    let img = Radiograph::from_raw(2, 2, vec![0.0, 2.0, 4.0, 6.0]).unwrap();
    let (o, _) = remap(
        &img,
        None,
        Interpolation::Bilinear,
        Border::Reflect,
        usize::MAX,
        |_, _, xs, ys| {
            xs.fill(0.5);
            ys.fill(0.5);
        },
    );
    assert!(o.as_raw().iter().all(|&v| (v - 3.0).abs() < 1e-6));
}
