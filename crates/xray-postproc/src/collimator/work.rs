//! The working image: the input box-averaged, smoothed and range-normalised once
//! ([`Downsampled`]), then log-compressed with each look's offset ([`LOG_OFFSET`],
//! [`FAINT_LOG_OFFSET`], [`DARKEST_LOG_OFFSET`]) into a [`Work`] with its gradients; and the
//! sampling helpers they share (bilinear, percentile, Gaussian smoothing).

use crate::probs::Plane;

use super::config::CollimatorConfig;
use super::step_look::step_exposure;
use super::Line;

/// The downsampled, normalised working copy: one per look's log offset, sharing the
/// offset-free planes of the [`Downsampled`] it was built from.
pub(super) struct Work<'a> {
    pub(super) w: usize,
    pub(super) h: usize,
    /// Downsampling factor: working pixel (i, j) covers input pixels [i·f, i·f+f).
    pub(super) f: usize,
    /// Log-compressed, normalised values: gradients and contrast.
    pub(super) v: Vec<f32>,
    /// Linearly normalised values: the test that the collimated band holds nothing bright
    /// (log compression would magnify the dim scatter glow that real collimators show).
    pub(super) lin: &'a [f32],
    /// Whether the input's values are log-processed ([`CollimatorConfig::input_scale`]).
    pub(super) log_input: bool,
    /// Linear level (share of the range) up to which the band may be bright without counting
    /// against an edge, besides the usual rise above just outside: the third look's
    /// collimated open beam beside a dark trunk (see [`DARKEST_LOG_OFFSET`]).
    pub(super) band_ceiling: f32,
    pub(super) gx: Vec<f32>,
    pub(super) gy: Vec<f32>,
    /// Log exposure (see [`step_exposure`]): the step look's plane, and the test that a
    /// candidate line steps down along enough of its length ([`stepping_share`]).
    ///
    /// [`stepping_share`]: super::step_look::stepping_share
    pub(super) exposure: &'a [f32],
}

impl Work<'_> {
    /// The line with inward unit normal `n` at working offset `rho`, in input coordinates:
    /// working pixel (i, j) is the mean of input pixels i·f ..= i·f + f − 1, centred at
    /// i·f + (f − 1)/2.
    pub(super) fn input_line(&self, n: (f32, f32), rho: f32) -> Line {
        let f = self.f as f32;
        Line {
            nx: n.0,
            ny: n.1,
            c: f * rho + (f - 1.0) / 2.0 * (n.0 + n.1),
        }
    }

    /// The working offset of `line` (input coordinates): [`Work::input_line`] undone.
    pub(super) fn working_offset(&self, line: &Line) -> f32 {
        let f = self.f as f32;
        (line.c - (f - 1.0) / 2.0 * (line.nx + line.ny)) / f
    }

    #[inline]
    pub(super) fn at(&self, x: f32, y: f32) -> Option<f32> {
        bilinear(&self.v, self.w, self.h, x, y)
    }
}

#[inline]
pub(super) fn bilinear(v: &[f32], w: usize, h: usize, x: f32, y: f32) -> Option<f32> {
    if !(x >= 0.0 && y >= 0.0 && x <= (w - 1) as f32 && y <= (h - 1) as f32) {
        return None;
    }
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let a = v[y0 * w + x0] + fx * (v[y0 * w + x1] - v[y0 * w + x0]);
    let b = v[y1 * w + x0] + fx * (v[y1 * w + x1] - v[y1 * w + x0]);
    Some(a + fy * (b - a))
}

pub(super) fn percentile_sorted(sorted: &[f32], q: f32) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f32 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn gaussian_smooth(v: &mut [f32], w: usize, h: usize, sigma: f32) {
    if sigma <= 0.0 {
        return;
    }
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|x| x / s).collect();
    let mut tmp = vec![0.0f32; v.len()];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let xx = (x as isize + j as isize - r).clamp(0, w as isize - 1) as usize;
                acc += kv * v[y * w + xx];
            }
            tmp[y * w + x] = acc;
        }
    }
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let yy = (y as isize + j as isize - r).clamp(0, h as isize - 1) as usize;
                acc += kv * tmp[yy * w + x];
            }
            v[y * w + x] = acc;
        }
    }
}

/// Offset of the working image's log compression, as a share of the range: large enough to
/// keep the dark collimator's noise from being blown up.
pub(super) const LOG_OFFSET: f32 = 0.1;
/// The offset of the second look at sides left without an edge at the field's rotation. As a
/// first look it found more faint edges but invented more; restricted to the rotation of the
/// edges already found it loses none (synth studies, docs/postprocessing.md).
pub(super) const FAINT_LOG_OFFSET: f32 = 0.01;
/// The offset of the third look, on linear input, at sides still without an edge at the
/// field's rotation: the very dark end, where a blade over a pelvis or hip leaves the field
/// at under 1 % of the range and the band at a third of that.
pub(super) const DARKEST_LOG_OFFSET: f32 = 0.002;

/// The working copy's linear values: box-averaged to `cfg.working_size` and smoothed, with
/// their range (the 0.5–99.5 % spread), and what every look's working image shares: the
/// values normalised to that range and their log exposure.
pub(super) struct Downsampled {
    pub(super) w: usize,
    pub(super) h: usize,
    pub(super) f: usize,
    pub(super) v: Vec<f32>,
    pub(super) lo: f32,
    pub(super) span: f32,
    /// See [`Work::lin`].
    pub(super) lin: Vec<f32>,
    /// See [`Work::log_input`].
    pub(super) log_input: bool,
    /// See [`Work::exposure`].
    pub(super) exposure: Vec<f32>,
}

/// The input box-averaged and smoothed; `None` for an image under 8 working pixels a side or
/// a flat one.
pub(super) fn downsample(
    img: &Plane,
    cfg: &CollimatorConfig,
    log_input: bool,
) -> Option<Downsampled> {
    let (iw, ih) = (img.width(), img.height());
    let f = iw.max(ih).div_ceil(cfg.working_size).max(1);
    let (w, h) = (iw.div_ceil(f), ih.div_ceil(f));
    if w < 8 || h < 8 {
        return None;
    }
    let data = img.data();
    // Box average: each working pixel is the mean of an f × f block (smaller at the far
    // borders). Summed in f64 so that huge finite inputs cannot overflow.
    let mut sum = vec![0.0f64; w * h];
    for (y, row) in data.chunks_exact(iw).enumerate() {
        let acc = &mut sum[(y / f) * w..(y / f + 1) * w];
        for (a, block) in acc.iter_mut().zip(row.chunks(f)) {
            *a += block.iter().map(|&v| v as f64).sum::<f64>();
        }
    }
    let block = |i: usize, n: usize| (n - i * f).min(f) as f64;
    let mut v: Vec<f32> = sum
        .iter()
        .enumerate()
        .map(|(k, s)| (s / (block(k % w, iw) * block(k / w, ih))) as f32)
        .collect();
    // Smooth the linear values first: isolated dark noise must not set the range.
    gaussian_smooth(&mut v, w, h, cfg.smoothing_sigma);
    let mut sorted = v.clone();
    sorted.sort_by(f32::total_cmp);
    let (lo, hi) = (
        percentile_sorted(&sorted, 0.005),
        percentile_sorted(&sorted, 0.995),
    );
    if hi.is_nan() || lo.is_nan() || hi <= lo {
        return None;
    }
    let span = hi - lo;
    let lin: Vec<f32> = v.iter().map(|x| (x - lo) / span).collect();
    let exposure = step_exposure(&lin, log_input);
    Some(Downsampled {
        w,
        h,
        f,
        v,
        lo,
        span,
        lin,
        log_input,
        exposure,
    })
}

/// The working copy: the downsampled values normalised to their range and (with
/// `cfg.log_compress`) log-compressed with an offset of `log_offset` of it, and their
/// gradients.
pub(super) fn build_work<'a>(
    d: &'a Downsampled,
    cfg: &CollimatorConfig,
    log_offset: f32,
) -> Work<'a> {
    let (w, h, f, lo, span) = (d.w, d.h, d.f, d.lo, d.span);
    let mut v = d.v.clone();
    if cfg.log_compress {
        let delta = log_offset * span;
        let (l0, l1) = (delta.ln(), (span + delta).ln());
        for x in v.iter_mut() {
            *x = (((*x - lo).max(0.0) + delta).ln() - l0) / (l1 - l0);
        }
    } else {
        for x in v.iter_mut() {
            *x = (*x - lo) / span;
        }
    }
    let mut gx = vec![0.0f32; w * h];
    let mut gy = vec![0.0f32; w * h];
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let p = |dx: isize, dy: isize| {
                v[(y as isize + dy) as usize * w + (x as isize + dx) as usize]
            };
            gx[y * w + x] =
                (p(1, -1) + 2.0 * p(1, 0) + p(1, 1) - p(-1, -1) - 2.0 * p(-1, 0) - p(-1, 1)) / 8.0;
            gy[y * w + x] =
                (p(-1, 1) + 2.0 * p(0, 1) + p(1, 1) - p(-1, -1) - 2.0 * p(0, -1) - p(1, -1)) / 8.0;
        }
    }
    Work {
        w,
        h,
        f,
        v,
        lin: &d.lin,
        log_input: d.log_input,
        band_ceiling: 0.0,
        gx,
        gy,
        exposure: &d.exposure,
    }
}
