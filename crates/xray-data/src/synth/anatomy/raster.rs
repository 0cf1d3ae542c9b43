//! Rasterising an [`Anatomy`] under a [`Pose`] into its thickness maps.

use super::{Anatomy, Kind, Layer, Pose, Shape, ThicknessMaps, MIN_TISSUE_LEFT};

/// Wobble of a tissue outline at tube parameter `t`.
#[inline]
fn wobble_at(w: &[f32; 6], t: f32) -> f32 {
    1.0 + w[0] * (std::f32::consts::TAU * t + w[1]).sin()
        + w[2] * (2.0 * std::f32::consts::TAU * t + w[3]).sin()
        + w[4] * (3.0 * std::f32::consts::TAU * t + w[5]).sin()
}

impl Anatomy {
    /// Rasterise into `width × height` maps under `pose`. Values in mm.
    pub(crate) fn rasterise(&self, width: usize, height: usize, pose: &Pose) -> ThicknessMaps {
        let n = width * height;
        let mut tissue = vec![0.0f32; n];
        let mut bone = vec![0.0f32; n];
        // Limbs have no air: its maps are only allocated for the trunk.
        let map_for = |layer: Layer| {
            let used = self
                .prims
                .iter()
                .any(|p| matches!(p.kind, Kind::Soft { layer: l, .. } if l == layer));
            if used {
                vec![0.0f32; n]
            } else {
                Vec::new()
            }
        };
        let mut air = map_for(Layer::Air);
        let mut displaced = map_for(Layer::Displace);
        // One bone's primitives merge by maximum in `gbuf`; finished bones add into `bone`.
        let mut gbuf = vec![0.0f32; n];
        let mut gbox: Option<(usize, usize, usize, usize)> = None;
        let mut current = u32::MAX;
        let flush = |gbuf: &mut [f32],
                     bone: &mut [f32],
                     gbox: &mut Option<(usize, usize, usize, usize)>| {
            if let Some((x0, x1, y0, y1)) = gbox.take() {
                for y in y0..y1 {
                    let r = y * width;
                    for (b, g) in bone[r + x0..r + x1]
                        .iter_mut()
                        .zip(&mut gbuf[r + x0..r + x1])
                    {
                        *b += *g;
                        *g = 0.0;
                    }
                }
            }
        };
        let mm_per_px = 1.0 / pose.scale;
        for prim in &self.prims {
            if matches!(prim.kind, Kind::Bone { .. }) && prim.group != current {
                flush(&mut gbuf, &mut bone, &mut gbox);
                current = prim.group;
            }
            let soft_map: &mut Vec<f32> = match prim.kind {
                Kind::Soft {
                    layer: Layer::Air, ..
                } => &mut air,
                Kind::Soft {
                    layer: Layer::Displace,
                    ..
                } => &mut displaced,
                _ => &mut tissue,
            };
            match prim.shape {
                Shape::Tube {
                    a,
                    b,
                    ra,
                    rb,
                    widen_a,
                    widen_b,
                } => {
                    let (pa, pb) = (pose.map(a), pose.map(b));
                    let (ra, rb) = (ra * pose.scale, rb * pose.scale);
                    let rmax = ra.max(rb) * (1.0 + widen_a.max(widen_b)) * 1.2 + 1.0;
                    let Some((x0, x1, y0, y1)) = bbox(pa, pb, rmax, width, height) else {
                        continue;
                    };
                    if matches!(prim.kind, Kind::Bone { .. }) {
                        gbox = Some(union(gbox, (x0, x1, y0, y1)));
                    }
                    let (dx, dy) = (pb[0] - pa[0], pb[1] - pa[1]);
                    let len = (dx * dx + dy * dy).sqrt().max(1e-3);
                    let (ux, uy) = (dx / len, dy / len);
                    // Bone ends are flattened caps (an articular surface, not a hemisphere):
                    // the axial overshoot counts `cap` times, so the cap reaches r/cap.
                    let cap = match prim.kind {
                        Kind::Bone { .. } => 2.0,
                        Kind::Soft { .. } => 1.0,
                    };
                    for y in y0..y1 {
                        let py = y as f32 + 0.5 - pa[1];
                        let row = y * width;
                        for x in x0..x1 {
                            let px = x as f32 + 0.5 - pa[0];
                            let along = px * ux + py * uy;
                            let perp = px * uy - py * ux;
                            let over = if along < 0.0 {
                                -along
                            } else if along > len {
                                along - len
                            } else {
                                0.0
                            };
                            let t = (along / len).clamp(0.0, 1.0);
                            let d2 = perp * perp + cap * cap * over * over;
                            let base = ra + (rb - ra) * t;
                            match prim.kind {
                                Kind::Bone {
                                    cortex,
                                    medulla,
                                    scale,
                                } => {
                                    let ea = (1.0 - t / 0.2).max(0.0);
                                    let eb = ((t - 0.8) / 0.2).max(0.0);
                                    let r = base * (1.0 + widen_a * ea * ea + widen_b * eb * eb);
                                    let r2 = r * r;
                                    if d2 >= r2 {
                                        continue;
                                    }
                                    let endness = ea.max(eb);
                                    let ri = r * (1.0 - cortex * (1.0 - 0.7 * endness));
                                    let rho = medulla + (0.42 - medulla) * endness;
                                    let outer = 2.0 * (r2 - d2).sqrt();
                                    let inner = 2.0 * (ri * ri - d2).max(0.0).sqrt();
                                    let v = (outer - inner + rho * inner) * scale * mm_per_px;
                                    let g = &mut gbuf[row + x];
                                    *g = g.max(v);
                                }
                                Kind::Soft { depth, wobble, .. } => {
                                    let r = base * wobble_at(&wobble, t);
                                    let r2 = r * r;
                                    if d2 >= r2 {
                                        continue;
                                    }
                                    let th = depth * 2.0 * (r2 - d2).sqrt() * mm_per_px;
                                    let cell = &mut soft_map[row + x];
                                    *cell = cell.max(th);
                                }
                            }
                        }
                    }
                }
                Shape::Blob { c, rx, ry, angle } => {
                    let pc = pose.map(c);
                    let (rx, ry) = (rx * pose.scale, ry * pose.scale);
                    let r = rx.max(ry) * 1.2 + 1.0;
                    let Some((x0, x1, y0, y1)) = bbox(pc, pc, r, width, height) else {
                        continue;
                    };
                    if matches!(prim.kind, Kind::Bone { .. }) {
                        gbox = Some(union(gbox, (x0, x1, y0, y1)));
                    }
                    // Axis directions in the image: the canonical angle plus the pose's.
                    let mut ang = angle;
                    if pose.mirror {
                        ang = -ang;
                    }
                    let (s, co) = (ang + pose.angle).sin_cos();
                    let rz = 0.5 * (rx + ry);
                    for y in y0..y1 {
                        let py = y as f32 + 0.5 - pc[1];
                        let row = y * width;
                        for x in x0..x1 {
                            let px = x as f32 + 0.5 - pc[0];
                            let u = (co * px + s * py) / rx;
                            let v = (-s * px + co * py) / ry;
                            let q = u * u + v * v;
                            match prim.kind {
                                Kind::Bone {
                                    cortex,
                                    medulla,
                                    scale,
                                } => {
                                    if q >= 1.0 {
                                        continue;
                                    }
                                    let k = 1.0 - cortex;
                                    let outer = 2.0 * rz * (1.0 - q).sqrt();
                                    let inner = 2.0 * rz * k * (1.0 - q / (k * k)).max(0.0).sqrt();
                                    let v = (outer - inner + medulla * inner) * scale * mm_per_px;
                                    let g = &mut gbuf[row + x];
                                    *g = g.max(v);
                                }
                                Kind::Soft { depth, wobble, .. } => {
                                    let theta = v.atan2(u) / std::f32::consts::TAU;
                                    let wr = wobble_at(&wobble, theta);
                                    let q = q / (wr * wr);
                                    if q >= 1.0 {
                                        continue;
                                    }
                                    let th = depth * 2.0 * rz * (1.0 - q).sqrt() * mm_per_px;
                                    let cell = &mut soft_map[row + x];
                                    *cell = cell.max(th);
                                }
                            }
                        }
                    }
                }
            }
        }
        flush(&mut gbuf, &mut bone, &mut gbox);
        if !air.is_empty() {
            for (i, t) in tissue.iter_mut().enumerate() {
                let a = air[i] - displaced.get(i).copied().unwrap_or(0.0);
                if a > 0.0 && *t > 0.0 {
                    *t = (*t - a).max(MIN_TISSUE_LEFT * *t);
                }
            }
        }
        // Bone lies inside the limb: where a bone pokes out of a tissue outline, give it a
        // covering of about 2 mm (at least one pixel) all round, so the labels stay nested
        // (bone ⊂ tissue) as in a real limb.
        let r = ((2.0 * pose.scale).round() as usize).max(1);
        let near_bone = dilate_square(&bone, width, height, r);
        for ((t, &b), &near) in tissue.iter_mut().zip(&bone).zip(&near_bone) {
            if b > 0.0 {
                *t = t.max(b + 2.0);
            } else if near {
                *t = t.max(2.0);
            }
        }
        ThicknessMaps { tissue, bone }
    }
}

/// Whether each pixel has a positive value of `v` within the `(2r + 1)²` square around it
/// (clipped to the image): two sliding-window passes, so the cost does not grow with `r`.
pub(super) fn dilate_square(v: &[f32], width: usize, height: usize, r: usize) -> Vec<bool> {
    let span = 2 * r + 1;
    let mut rows = vec![0u32; width * height];
    for (src, dst) in v.chunks_exact(width).zip(rows.chunks_exact_mut(width)) {
        let mut count = 0u32;
        for x in 0..width + r {
            if x < width && src[x] > 0.0 {
                count += 1;
            }
            if x >= span && src[x - span] > 0.0 {
                count -= 1;
            }
            if x >= r {
                dst[x - r] = count;
            }
        }
    }
    let mut out = vec![false; width * height];
    for x in 0..width {
        let mut count = 0u32;
        for y in 0..height + r {
            if y < height && rows[y * width + x] > 0 {
                count += 1;
            }
            if y >= span && rows[(y - span) * width + x] > 0 {
                count -= 1;
            }
            if y >= r {
                out[(y - r) * width + x] = count > 0;
            }
        }
    }
    out
}

fn union(
    a: Option<(usize, usize, usize, usize)>,
    b: (usize, usize, usize, usize),
) -> (usize, usize, usize, usize) {
    match a {
        None => b,
        Some(a) => (a.0.min(b.0), a.1.max(b.1), a.2.min(b.2), a.3.max(b.3)),
    }
}

fn bbox(
    a: [f32; 2],
    b: [f32; 2],
    r: f32,
    w: usize,
    h: usize,
) -> Option<(usize, usize, usize, usize)> {
    let x0 = (a[0].min(b[0]) - r).floor().max(0.0);
    let x1 = (a[0].max(b[0]) + r).ceil().min(w as f32);
    let y0 = (a[1].min(b[1]) - r).floor().max(0.0);
    let y1 = (a[1].max(b[1]) + r).ceil().min(h as f32);
    if x0 >= x1 || y0 >= y1 {
        None
    } else {
        Some((x0 as usize, x1 as usize, y0 as usize, y1 as usize))
    }
}
