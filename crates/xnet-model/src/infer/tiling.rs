//! One pass of the network over a plane as it is: whole (padded or resized to a size the
//! network accepts) or tile by tile with blended overlaps (see the [module docs](super)).

use candle_core::{Device, Tensor};

use super::{InferenceOptions, SmallInput};
use crate::{ModelError, Result, Segmenter};

/// [`predict_proba_batch`](super::predict_proba_batch) without flip averaging, on checked input.
pub(super) fn predict_as_is(
    model: &dyn Segmenter,
    images: &[f32],
    n: usize,
    height: usize,
    width: usize,
    opts: &InferenceOptions,
) -> Result<Vec<f32>> {
    let plane = height * width;
    let c = model.num_classes();
    let mut out = Vec::with_capacity(n * c * plane);
    if height <= opts.tile_size && width <= opts.tile_size {
        // Saturating: a `batch_size` beyond the number of images means one chunk.
        for chunk in images.chunks(opts.batch_size.saturating_mul(plane)) {
            let k = chunk.len() / plane;
            out.extend(whole(model, chunk, k, height, width, opts)?);
        }
    } else {
        for img in images.chunks(plane) {
            out.extend(tiled(model, img, height, width, opts)?);
        }
    }
    Ok(out)
}

/// Runs `[k, 1, h, w]` through the model and returns `k × C × h × w` softmax probabilities.
fn forward_probs(
    model: &dyn Segmenter,
    planes: Vec<f32>,
    k: usize,
    h: usize,
    w: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    let x = Tensor::from_vec(planes, (k, 1, h, w), device)?;
    let logits = model.forward_t(&x, false)?;
    let c = model.num_classes();
    if logits.dims() != [k, c, h, w] {
        return Err(ModelError::InvalidInput(format!(
            "the model returned logits of shape {:?} for input [{k}, 1, {h}, {w}]; expected \
             [{k}, {c}, {h}, {w}]",
            logits.dims()
        )));
    }
    let probs = candle_nn::ops::softmax(&logits, 1)?;
    Ok(probs.flatten_all()?.to_vec1::<f32>()?)
}

/// Whole-image path for `k` planes that fit in a tile.
fn whole(
    model: &dyn Segmenter,
    planes: &[f32],
    k: usize,
    h: usize,
    w: usize,
    opts: &InferenceOptions,
) -> Result<Vec<f32>> {
    let c = model.num_classes();
    let m = model.size_multiple().max(1);
    let plane = h * w;
    match opts.small_input {
        SmallInput::Pad => {
            let (ph, pw) = (h.div_ceil(m) * m, w.div_ceil(m) * m);
            let mut input = Vec::with_capacity(k * ph * pw);
            for img in planes.chunks(plane) {
                input.extend(extract_clamped(img, h, w, 0, 0, ph, pw));
            }
            let probs = forward_probs(model, input, k, ph, pw, &opts.device)?;
            let mut out = Vec::with_capacity(k * c * plane);
            for pc in probs.chunks(ph * pw) {
                for y in 0..h {
                    out.extend_from_slice(&pc[y * pw..y * pw + w]);
                }
            }
            Ok(out)
        }
        SmallInput::Resize {
            height: rh,
            width: rw,
        } => {
            let mut input = Vec::with_capacity(k * rh * rw);
            for img in planes.chunks(plane) {
                input.extend(resize_bilinear(img, h, w, rh, rw));
            }
            let probs = forward_probs(model, input, k, rh, rw, &opts.device)?;
            let mut out = Vec::with_capacity(k * c * plane);
            for pc in probs.chunks(rh * rw) {
                out.extend(resize_bilinear(pc, rh, rw, h, w));
            }
            Ok(out)
        }
    }
}

/// The `th × tw` window at `(y0, x0)`, indices clamped into the image (edge replication).
fn extract_clamped(
    img: &[f32],
    h: usize,
    w: usize,
    y0: usize,
    x0: usize,
    th: usize,
    tw: usize,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(th * tw);
    for dy in 0..th {
        let y = (y0 + dy).min(h - 1);
        let row = &img[y * w..(y + 1) * w];
        for dx in 0..tw {
            out.push(row[(x0 + dx).min(w - 1)]);
        }
    }
    out
}

/// Tile origins along one axis of `size` pixels with tiles of `extent` and `overlap`.
pub(super) fn tile_origins(size: usize, extent: usize, overlap: usize) -> Vec<usize> {
    if size <= extent {
        return vec![0];
    }
    let stride = extent - overlap;
    let mut origins: Vec<usize> = (0..)
        .map(|i| i * stride)
        .take_while(|&o| o + extent < size)
        .collect();
    origins.push(size - extent);
    origins
}

/// Blending weights along one axis of a tile of `extent` starting at `origin` on an axis of
/// `size` (see the module docs).
pub(super) fn axis_window(origin: usize, extent: usize, size: usize, overlap: usize) -> Vec<f32> {
    let discard = overlap / 4;
    let ramp = (overlap / 2).max(1);
    let lead_shared = origin > 0;
    let trail_shared = origin + extent < size;
    let side = |d: usize, shared: bool| -> f32 {
        if !shared || overlap == 0 {
            1.0
        } else if d < discard {
            0.0
        } else if d < discard + ramp {
            let t = (d - discard) as f32 + 0.5;
            let s = (std::f32::consts::FRAC_PI_2 * t / ramp as f32).sin();
            s * s
        } else {
            1.0
        }
    };
    (0..extent)
        .map(|i| side(i, lead_shared) * side(extent - 1 - i, trail_shared))
        .collect()
}

/// Tiled path for one plane larger than a tile.
fn tiled(
    model: &dyn Segmenter,
    img: &[f32],
    h: usize,
    w: usize,
    opts: &InferenceOptions,
) -> Result<Vec<f32>> {
    let c = model.num_classes();
    let m = model.size_multiple().max(1);
    // An axis shorter than a tile is covered by one tile padded to the size multiple.
    let th = opts.tile_size.min(h.div_ceil(m) * m);
    let tw = opts.tile_size.min(w.div_ceil(m) * m);
    let ys = tile_origins(h, th, opts.overlap);
    let xs = tile_origins(w, tw, opts.overlap);
    let tiles: Vec<(usize, usize)> = ys
        .iter()
        .flat_map(|&y| xs.iter().map(move |&x| (y, x)))
        .collect();

    let plane = h * w;
    let mut acc = vec![0f32; c * plane];
    let mut wsum = vec![0f32; plane];
    for group in tiles.chunks(opts.batch_size) {
        let mut input = Vec::with_capacity(group.len() * th * tw);
        for &(y0, x0) in group {
            input.extend(extract_clamped(img, h, w, y0, x0, th, tw));
        }
        let probs = forward_probs(model, input, group.len(), th, tw, &opts.device)?;
        for (t, &(y0, x0)) in group.iter().enumerate() {
            let wy = axis_window(y0, th, h, opts.overlap);
            let wx = axis_window(x0, tw, w, opts.overlap);
            let tile = &probs[t * c * th * tw..(t + 1) * c * th * tw];
            for dy in 0..th.min(h - y0) {
                let y = y0 + dy;
                for dx in 0..tw.min(w - x0) {
                    let x = x0 + dx;
                    let wt = wy[dy] * wx[dx];
                    if wt == 0.0 {
                        continue;
                    }
                    wsum[y * w + x] += wt;
                    for k in 0..c {
                        acc[k * plane + y * w + x] += wt * tile[k * th * tw + dy * tw + dx];
                    }
                }
            }
        }
    }
    for k in 0..c {
        for (a, &s) in acc[k * plane..(k + 1) * plane].iter_mut().zip(&wsum) {
            // Every pixel is covered with positive weight by construction (see axis_window).
            *a /= s;
        }
    }
    Ok(acc)
}

/// Bilinear resize of one plane, half-pixel centres (PyTorch `align_corners=False`, no
/// antialiasing).
pub(super) fn resize_bilinear(src: &[f32], h: usize, w: usize, nh: usize, nw: usize) -> Vec<f32> {
    let coords = |n_out: usize, n_in: usize| -> Vec<(usize, usize, f32)> {
        let scale = n_in as f32 / n_out as f32;
        (0..n_out)
            .map(|o| {
                let s = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (s.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, s - i0 as f32)
            })
            .collect()
    };
    let cy = coords(nh, h);
    let cx = coords(nw, w);
    let mut out = Vec::with_capacity(nh * nw);
    for &(y0, y1, fy) in &cy {
        for &(x0, x1, fx) in &cx {
            let top = src[y0 * w + x0] * (1.0 - fx) + src[y0 * w + x1] * fx;
            let bot = src[y1 * w + x0] * (1.0 - fx) + src[y1 * w + x1] * fx;
            out.push(top * (1.0 - fy) + bot * fy);
        }
    }
    out
}
