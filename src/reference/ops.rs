//! CPU twins of every WGSL kernel, same names with `_reference`: the oracle the GPU is tested
//! against and the arithmetic of the CPU fallback backend. Plain Rust and ndarray, no tricks.
//! Legend: B = batch rows, V = valid rows (rows >= V are padding), I/O = layer in/out, C = classes.

use crate::compress::quant::QuantFn;
use crate::nn::OptimParams;
use ndarray::{Array1, Array2, ArrayView2, Axis};

/// matmul: C[M,N] = op(A)·op(B), op = transpose when the flag is set.   (shaders/matmul.wgsl)
pub fn matmul_reference(a: ArrayView2<f32>, b: ArrayView2<f32>, trans_a: bool, trans_b: bool) -> Array2<f32> {
    let a = if trans_a { a.reversed_axes() } else { a };
    let b = if trans_b { b.reversed_axes() } else { b };
    let c = a.dot(&b);
    if c.is_standard_layout() {
        c
    } else {
        c.as_standard_layout().into_owned()
    }
}

/// `matmul_reference` on flat row-major slices (A [M, K], or [K, M] when `ta`; B [K, N], or [N, K]
/// when `tb`) with C cut into `parts` bands, of rows when C has at least as many rows as columns,
/// else of columns, each computed in place on the pool (the native CPU backend's wider products).
/// Every element is summed as in one pass (matrixmultiply blocks K alone), so bit-identical.
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::too_many_arguments)]
pub fn matmul_parts(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, ta: bool, tb: bool, parts: usize) -> Vec<f32> {
    use ndarray::{linalg::general_mat_mul, ArrayViewMut2};
    let a = if ta { ArrayView2::from_shape((k, m), a).map(|v| v.reversed_axes()) } else { ArrayView2::from_shape((m, k), a) };
    let b = if tb { ArrayView2::from_shape((n, k), b).map(|v| v.reversed_axes()) } else { ArrayView2::from_shape((k, n), b) };
    let (a, b) = (a.expect("A sized"), b.expect("B sized"));
    let mut c = vec![0.0f32; m * n];
    let mut cv = ArrayViewMut2::from_shape((m, n), &mut c[..]).expect("C sized");
    let (axis, len) = if m >= n { (Axis(0), m) } else { (Axis(1), n) };
    if parts < 2 || len < 2 || k == 0 {
        general_mat_mul(1.0, &a, &b, 0.0, &mut cv);
        return c;
    }
    let per = len.div_ceil(parts);
    let c_bands = cv.axis_chunks_iter_mut(axis, per);
    if axis == Axis(0) {
        let bands: Vec<_> = c_bands.zip(a.axis_chunks_iter(axis, per)).collect();
        super::pool::each(bands, |(mut c, a)| general_mat_mul(1.0, &a, &b, 0.0, &mut c));
    } else {
        let bands: Vec<_> = c_bands.zip(b.axis_chunks_iter(axis, per)).collect();
        super::pool::each(bands, |(mut c, b)| general_mat_mul(1.0, &a, &b, 0.0, &mut c));
    }
    c
}

/// split_sum: total[i] (+)= Σ_z partial[z·len + i], z in order.   (shaders/matmul.wgsl)
pub fn split_sum_reference(partial: &[f32], splits: usize, total: &mut [f32], accumulate: bool) {
    let len = total.len();
    for (i, t) in total.iter_mut().enumerate() {
        let s: f32 = (0..splits).map(|z| partial[z * len + i]).sum();
        *t = if accumulate { s + *t } else { s };
    }
}

/// bias_add: Y[b, o] += bias[o].   (shaders/dense.wgsl)
pub fn bias_add_reference(y: &mut Array2<f32>, bias: &Array1<f32>) {
    *y += bias;
}

/// bias_grad: dbias[o] = sum_b dY[b, o].
pub fn bias_grad_reference(dy: &Array2<f32>) -> Array1<f32> {
    dy.sum_axis(Axis(0))
}

/// relu_forward: Y = max(Y, 0) in place.
pub fn relu_forward_reference(y: &mut Array2<f32>) {
    y.mapv_inplace(|v| v.max(0.0));
}

/// relu_backward: dX = dY * (Y > 0) in place on dY, Y being the ReLU output.
pub fn relu_backward_reference(grad: &mut Array2<f32>, relu_out: &Array2<f32>) {
    ndarray::Zip::from(grad).and(relu_out).for_each(|g, &y| {
        if y <= 0.0 {
            *g = 0.0
        }
    });
}

/// softmax_xent: (dlogits [B, C], row_loss [B]) of the mean cross-entropy over the first V rows.
///   loss_b = -log softmax(logits_b)[label_b];  dlogits_b = (softmax(logits_b) - onehot) / V.
/// (shaders/loss.wgsl)
pub fn softmax_xent_reference(logits: &Array2<f32>, labels: &[u32], valid: usize) -> (Array2<f32>, Vec<f32>) {
    let (rows, classes) = logits.dim();
    let mut d = Array2::zeros((rows, classes));
    let mut loss = vec![0.0; rows];
    for b in 0..valid.min(rows) {
        let row = logits.row(b);
        let mx = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let log_sum = row.iter().map(|&v| (v - mx).exp()).sum::<f32>().ln();
        let label = labels[b] as usize;
        for c in 0..classes {
            let p = (row[c] - mx - log_sum).exp();
            d[[b, c]] = (p - if c == label { 1.0 } else { 0.0 }) / valid as f32;
        }
        loss[b] = log_sum + mx - row[label];
    }
    (d, loss)
}

/// distill_loss: the student's loss against the teacher's logits and the labels, weighed by `p`
/// (nn::loss::DistillParams), and its gradient (of the mean over the V valid rows).   (shaders/loss.wgsl)
pub fn distill_loss_reference(logits: &Array2<f32>, teacher: &Array2<f32>, labels: &[u32], valid: usize, p: &crate::nn::DistillParams) -> (Array2<f32>, Vec<f32>) {
    let (rows, classes) = logits.dim();
    let mut d = Array2::zeros((rows, classes));
    let mut loss = vec![0.0; rows];
    let t = p.temperature;
    let log_softmax = |row: ndarray::ArrayView1<f32>, t: f32| -> Vec<f32> {
        let mx = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let ls = row.iter().map(|&v| ((v - mx) / t).exp()).sum::<f32>().ln();
        row.iter().map(|&v| (v - mx) / t - ls).collect()
    };
    for b in 0..valid.min(rows) {
        let (z, tz) = (logits.row(b), teacher.row(b));
        let (lq1, lqt, lpt) = (log_softmax(z, 1.0), log_softmax(z, t), log_softmax(tz, t));
        let label = labels[b] as usize;
        let (mut kl, mut sq) = (0.0, 0.0);
        for c in 0..classes {
            let pt = lpt[c].exp();
            if pt > 0.0 {
                kl += pt * (lpt[c] - lqt[c]);
            }
            sq += (z[c] - tz[c]) * (z[c] - tz[c]);
            let onehot = if c == label { 1.0 } else { 0.0 };
            d[[b, c]] = (p.kl * t * (lqt[c].exp() - pt) + p.ce * (lq1[c].exp() - onehot) + p.mse * 2.0 / classes as f32 * (z[c] - tz[c])) / valid as f32;
        }
        loss[b] = p.kl * t * t * kl - p.ce * lq1[label] + p.mse * sq / classes as f32;
    }
    (d, loss)
}

/// argmax_correct: 1 where the first maximum of row b is label_b, for the first V rows. (shaders/metrics.wgsl)
pub fn argmax_correct_reference(logits: &Array2<f32>, labels: &[u32], valid: usize) -> Vec<u32> {
    let rows = logits.nrows();
    (0..rows)
        .map(|b| {
            if b >= valid {
                return 0;
            }
            let row = logits.row(b);
            let mut best = 0;
            for c in 1..row.len() {
                if row[c] > row[best] {
                    best = c;
                }
            }
            (best as u32 == labels[b]) as u32
        })
        .collect()
}

/// metrics_accumulate: acc += [sum loss, sum correct, V] over the first V rows. (shaders/accumulate.wgsl)
pub fn metrics_accumulate_reference(acc: &mut [f32; 4], row_loss: &[f32], correct: &[u32], valid: usize) {
    acc[0] += row_loss[..valid].iter().sum::<f32>();
    acc[1] += correct[..valid].iter().sum::<u32>() as f32;
    acc[2] += valid as f32;
}

/// WGSL's sign(): -1, 0 or 1 (0 at 0, unlike f32::signum).
fn sign(x: f32) -> f32 {
    ((x > 0.0) as i32 - (x < 0.0) as i32) as f32
}

/// sgd: v = mu v + (g + wd w + l1 sign(w));  w -= lr v.   (shaders/optim.wgsl)
/// Written over zipped slices (no bounds checks), so the compiler vectorises it.
pub fn sgd_reference(w: &mut [f32], g: &[f32], m: &mut [f32], p: &OptimParams) {
    debug_assert!(g.len() == w.len() && m.len() == w.len());
    for ((w, g), m) in w.iter_mut().zip(&g[..]).zip(&mut m[..]) {
        let grad = g + p.weight_decay * *w + p.l1 * sign(*w);
        *m = p.momentum * *m + grad;
        *w -= p.lr * *m;
    }
}

/// adam: m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²;  w -= lr_t m / (sqrt(v) + eps_t).
pub fn adam_reference(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], p: &OptimParams) {
    debug_assert!(g.len() == w.len() && m.len() == w.len() && v.len() == w.len());
    for (((w, g), m), v) in w.iter_mut().zip(&g[..]).zip(&mut m[..]).zip(&mut v[..]) {
        let grad = g + p.weight_decay * *w + p.l1 * sign(*w);
        *m = p.momentum * *m + (1.0 - p.momentum) * grad;
        *v = p.beta2 * *v + (1.0 - p.beta2) * grad * grad;
        *w -= p.lr * *m / (v.sqrt() + p.eps);
    }
}

/// gather_rows: the rows order[offset..offset + valid] of `table` [N, cols] as a batch of
/// `rows` rows (padding rows 0).   (shaders/data.wgsl)
pub fn gather_rows_reference(table: &[f32], cols: usize, order: &[u32], offset: usize, valid: usize, rows: usize) -> Vec<f32> {
    let mut out = vec![0.0; rows * cols];
    for (b, &s) in order[offset..offset + valid].iter().enumerate() {
        out[b * cols..(b + 1) * cols].copy_from_slice(&table[s as usize * cols..(s as usize + 1) * cols]);
    }
    out
}

/// gather_batch: x [B, P] normalised pixels of samples order[offset..offset+V], zero rows after V;
/// y [B] labels, 0 for padding. `shape` = (H, W) of [H, W, C] images; `jitter` moves each image by
/// data::jitter_shift.   (shaders/data.wgsl)
#[allow(clippy::too_many_arguments)]
pub fn gather_batch_reference(
    images: &[u8],
    labels: &[u8],
    pixels: usize,
    order: &[u32],
    offset: usize,
    valid: usize,
    rows: usize,
    scale: f32,
    shift: f32,
    shape: (usize, usize),
    jitter: usize,
) -> (Array2<f32>, Vec<u32>) {
    let mut x = Array2::zeros((rows, pixels));
    let mut y = vec![0u32; rows];
    let channels = pixels / (shape.0 * shape.1);
    for b in 0..valid {
        let s = order[offset + b] as usize;
        let d = crate::data::jitter_shift(s as u32, (offset + b) as u32, jitter as u32);
        for i in 0..pixels {
            x[[b, i]] = crate::data::shifted_pixel(&images[s * pixels..(s + 1) * pixels], shape.0, shape.1, channels, i, d) as f32 * scale + shift;
        }
        y[b] = labels[s] as u32;
    }
    (x, y)
}

/// attention_transfer: per valid row, v = q/‖q‖ of q[p] = Σ_c a[p, c]² for the student [B, P, Cs]
/// and teacher [B, P, Ct] outputs; returns (grad [B, P, Cs] of the mean over V rows of
/// (β/2)·‖v_S − v_T‖², that loss per row [B]). Padding rows: zero.   (shaders/attention.wgsl)
#[allow(clippy::too_many_arguments)]
pub fn attention_transfer_reference(student: &[f32], teacher: &[f32], rows: usize, valid: usize, positions: usize, cs: usize, ct: usize, beta: f32) -> (Vec<f32>, Vec<f32>) {
    let mut grad = vec![0.0f32; rows * positions * cs];
    let mut loss = vec![0.0f32; rows];
    let map = |a: &[f32], c: usize, b: usize| -> Vec<f32> { (0..positions).map(|q| a[(b * positions + q) * c..(b * positions + q + 1) * c].iter().map(|v| v * v).sum()).collect() };
    for b in 0..valid {
        let (qs, qt) = (map(student, cs, b), map(teacher, ct, b));
        let norm = |q: &[f32]| q.iter().map(|v| v * v).sum::<f32>().sqrt();
        let unit = |q: &[f32], n: f32| -> Vec<f32> { q.iter().map(|v| if n > 0.0 { v / n } else { 0.0 }).collect() };
        let (ns, nt) = (norm(&qs), norm(&qt));
        let (vs, vt) = (unit(&qs, ns), unit(&qt, nt));
        let g: Vec<f32> = vs.iter().zip(&vt).map(|(s, t)| beta * (s - t)).collect();
        loss[b] = 0.5 * beta * vs.iter().zip(&vt).map(|(s, t)| (s - t) * (s - t)).sum::<f32>();
        if ns == 0.0 {
            continue;
        }
        let vg: f32 = vs.iter().zip(&g).map(|(a, b)| a * b).sum();
        for q in 0..positions {
            let dq = (g[q] - vs[q] * vg) / ns / valid as f32;
            for c in 0..cs {
                let i = (b * positions + q) * cs + c;
                grad[i] = 2.0 * student[i] * dq;
            }
        }
    }
    (grad, loss)
}

/// hint_loss: per valid row, w·Σ (Y − T)² / (P·Ct) of the projected student output Y and the
/// teacher's T [B, P, Ct]; returns (dY of the mean over V rows, that loss per row). Padding rows:
/// zero.   (shaders/attention.wgsl)
pub fn hint_loss_reference(y: &[f32], t: &[f32], rows: usize, valid: usize, per_row: usize, weight: f32) -> (Vec<f32>, Vec<f32>) {
    let mut grad = vec![0.0f32; rows * per_row];
    let mut loss = vec![0.0f32; rows];
    let scale = 2.0 * weight / per_row as f32 / valid.max(1) as f32;
    for b in 0..valid {
        let r = b * per_row..(b + 1) * per_row;
        loss[b] = weight * y[r.clone()].iter().zip(&t[r.clone()]).map(|(a, c)| (a - c) * (a - c)).sum::<f32>() / per_row as f32;
        for i in r {
            grad[i] = (y[i] - t[i]) * scale;
        }
    }
    (grad, loss)
}

/// mask_apply: w *= mask.   (shaders/mask.wgsl)
pub fn mask_apply_reference(w: &mut [f32], mask: &[f32]) {
    for (v, m) in w.iter_mut().zip(mask) {
        *v *= m;
    }
}

/// shared_update: each cluster's centroid moves by the summed (or, with `mean`, the mean) update
/// of its members, and every member takes it; weights in no cluster (the last group) become 0.
/// Adds in the kernel's order (64 strided lanes, then a tree).   (shaders/mask.wgsl)
pub fn shared_update_reference(w: &mut [f32], centroids: &mut [f32], offsets: &[u32], members: &[u32], mean: bool) {
    let groups = centroids.len();
    for k in 0..=groups {
        let ms = &members[offsets[k] as usize..offsets[k + 1] as usize];
        if k == groups {
            ms.iter().for_each(|&m| w[m as usize] = 0.0);
            continue;
        }
        let c = centroids[k];
        let mut lanes = [0.0f32; 64];
        for (i, &m) in ms.iter().enumerate() {
            lanes[i % 64] += w[m as usize] - c;
        }
        let mut half = 32;
        while half > 0 {
            for l in 0..half {
                lanes[l] += lanes[l + half];
            }
            half >>= 1;
        }
        let moved = if mean { lanes[0] / (ms.len() as f32).max(1.0) } else { lanes[0] };
        let nc = c + moved;
        ms.iter().for_each(|&m| w[m as usize] = nc);
        centroids[k] = nc;
    }
}

/// taylor_accumulate: score += |w * g|.   (shaders/mask.wgsl)
pub fn taylor_accumulate_reference(score: &mut [f32], w: &[f32], g: &[f32]) {
    for ((s, w), g) in score.iter_mut().zip(w).zip(g) {
        *s += (w * g).abs();
    }
}

/// fake_quant: fq(w) for a tensor of `cols` columns.   (shaders/quant.wgsl)
pub fn fake_quant_reference(q: &QuantFn, w: &[f32], cols: usize) -> Vec<f32> {
    q.fake(w, cols)
}

/// fake_quant_act: y = fq(y) in place; returns 1.0 where y was inside the range, else 0.0.   (shaders/quant.wgsl)
pub fn fake_quant_act_reference(q: &QuantFn, y: &mut [f32], cols: usize) -> Vec<f32> {
    let keep = q.inside_mask(y, cols);
    let f = q.fake(y, cols);
    y.copy_from_slice(&f);
    keep
}

/// ste_clip: grad = 0 where the master weight is outside the quantizer's range.   (shaders/quant.wgsl)
pub fn ste_clip_reference(q: &QuantFn, w: &[f32], grad: &mut [f32], cols: usize) {
    mask_apply_reference(grad, &q.inside_mask(w, cols));
}

/// fake_quant_act_raw: y = fq(y) in place; returns y as it was (what LSQ differentiates at).   (shaders/quant.wgsl)
pub fn fake_quant_act_raw_reference(q: &QuantFn, y: &mut [f32], cols: usize) -> Vec<f32> {
    let raw = y.to_vec();
    let f = q.fake(y, cols);
    y.copy_from_slice(&f);
    raw
}

/// LSQ's range for affine channel `c`: qmin ≤ u = x·inv_step + zero ≤ qmax (the paper's clip,
/// not the rounding range of `QuantFn::inside`).
fn lsq_inside(q: &QuantFn, x: f32, c: usize) -> bool {
    let QuantFn::Affine { qmin, qmax, channels } = q else { return true };
    let u = x * channels[c][0] + channels[c][2];
    u >= *qmin as f32 && u <= *qmax as f32
}

/// ∂fq(x)/∂step for affine channel `c` (LSQ): q − u inside its range, q − zero outside, 0 at 0.
fn step_slope(q: &QuantFn, x: f32, c: usize) -> f32 {
    let QuantFn::Affine { qmin, qmax, channels } = q else { return 0.0 };
    if x == 0.0 {
        return 0.0;
    }
    let [inv, _, zero] = channels[c];
    let u = x * inv + zero;
    let code = (u + 0.5).floor().clamp(*qmin as f32, *qmax as f32);
    if lsq_inside(q, x, c) {
        code - u
    } else {
        code - zero
    }
}

/// lsq_backward: the step gradient of each channel, scale·Σ d·∂fq(x)/∂step, as a table
/// ([0, g_c, 0] per channel); then d = 0 where x was outside LSQ's range.   (shaders/quant.wgsl)
pub fn lsq_backward_reference(q: &QuantFn, x: &[f32], d: &mut [f32], cols: usize, scale: f32) -> Vec<f32> {
    let channels = q.table().len() / 3;
    let mut sums = vec![0.0f64; channels];
    for (i, (&x, d)) in x.iter().zip(d.iter_mut()).enumerate() {
        let c = q.channel(i, cols);
        sums[c] += (*d * step_slope(q, x, c)) as f64;
        if !lsq_inside(q, x, c) {
            *d = 0.0;
        }
    }
    sums.iter().flat_map(|&s| [0.0, scale * s as f32, 0.0]).collect()
}

/// act_range: a dynamic quantizer's table for the batch `y` (its valid rows): the affine fit of
/// its min-max (`QuantFn::resolve`).   (shaders/quant.wgsl)
pub fn act_range_reference(q: &QuantFn, y: &[f32]) -> Vec<f32> {
    q.resolve(y).table()
}

/// lsq_sync: inv_step = 1/step per channel of an affine table, the step kept positive.   (shaders/quant.wgsl)
pub fn lsq_sync_reference(table: &mut [f32]) {
    for c in table.chunks_exact_mut(3) {
        c[1] = c[1].max(1e-8);
        c[0] = 1.0 / c[1];
    }
}

// ---- Convolutional pieces (NHWC). Legend: B batch, H/W input side, C channels, OH/OW output
// side, K window, S stride, P zero padding. ----

/// The geometry of a conv or pool layer: input [B, H, W, C] -> output [B, OH, OW, ·].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub oh: usize,
    pub ow: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Geometry {
    /// Output side follows from the rest: (H + 2P − K) / S + 1.
    pub fn new(batch: usize, h: usize, w: usize, c: usize, k: usize, stride: usize, pad: usize) -> Geometry {
        let out = |s: usize| (s + 2 * pad - k) / stride + 1;
        Geometry { batch, h, w, c, oh: out(h), ow: out(w), k, stride, pad }
    }
    /// Columns of the im2col matrix: K·K·C.
    pub fn patch(&self) -> usize {
        self.k * self.k * self.c
    }
    /// Rows of the im2col matrix (output positions): B·OH·OW.
    pub fn positions(&self) -> usize {
        self.batch * self.oh * self.ow
    }
    /// Input pixel (row, col) under window offset (kh, kw) of output (oy, ox); None in the padding.
    pub fn source(&self, oy: usize, ox: usize, kh: usize, kw: usize) -> Option<(usize, usize)> {
        let y = (oy * self.stride + kh).checked_sub(self.pad)?;
        let x = (ox * self.stride + kw).checked_sub(self.pad)?;
        (y < self.h && x < self.w).then_some((y, x))
    }

    /// Calls `f(row, pixel, tap)` for every window tap that lands inside the image: `row` is the
    /// output position (b·OH + oy)·OW + ox, `pixel` the flat index of the input pixel's channel 0,
    /// `tap` the first patch column of that tap, (kh·K + kw)·C. Every CPU conv and pool twin walks
    /// its windows through this one loop.
    pub fn taps(&self, mut f: impl FnMut(usize, usize, usize)) {
        self.spans(|row, px, tap, n| (0..n).for_each(|i| f(row, px + i * self.c, tap + i * self.c)));
    }

    /// [`Self::taps`] a window row at a time: `f(row, pixel, tap, n)` for the `n` consecutive taps
    /// (kw) of one window row (kh) that land inside the image, whose `n·C` input values and `n·C`
    /// patch columns are both contiguous (from `pixel` and `tap`). Copies and sums then run over
    /// K·C values at once instead of C (a first layer's C is 1). Same order as `taps`.
    pub fn spans(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
        for b in 0..self.batch {
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let row = (b * self.oh + oy) * self.ow + ox;
                    // Window columns kw with 0 <= ox·S + kw − P < W.
                    let left = ox * self.stride;
                    let kw0 = self.pad.saturating_sub(left);
                    let kw1 = (self.w + self.pad).saturating_sub(left).min(self.k);
                    if kw0 >= kw1 {
                        continue;
                    }
                    let x = left + kw0 - self.pad;
                    for kh in 0..self.k {
                        let Some(y) = (oy * self.stride + kh).checked_sub(self.pad).filter(|&y| y < self.h) else { continue };
                        f(row, ((b * self.h + y) * self.w + x) * self.c, (kh * self.k + kw0) * self.c, kw1 - kw0);
                    }
                }
            }
        }
    }
}

/// im2col: cols [B·OH·OW, K·K·C], column (kh·K + kw)·C + ci; zeros where the window hangs over the
/// padding. Conv forward is then cols·W [K·K·C, Cout].   (shaders/conv.wgsl)
pub fn im2col_reference(x: &[f32], g: &Geometry) -> Vec<f32> {
    im2col_parts(x, g, super::pool::threads_for_elements(g.positions() * g.patch()))
}

/// `im2col_reference` with the batch cut into `parts` runs of images (`by_images`).
pub fn im2col_parts(x: &[f32], g: &Geometry, parts: usize) -> Vec<f32> {
    let mut cols = vec![0.0; g.positions() * g.patch()];
    by_images(g, parts, (x, g.h * g.w * g.c), (&mut cols, g.oh * g.ow * g.patch()), |g, x, cols| {
        g.spans(|row, px, tap, n| {
            let dst = row * g.patch() + tap;
            cols[dst..dst + n * g.c].copy_from_slice(&x[px..px + n * g.c]);
        })
    });
    cols
}

/// col2im: dX [B, H, W, C] (+)= the sum of every dcols entry back onto the pixel it was copied
/// from (the adjoint of im2col). Scatters; the GPU kernel gathers, so they check each other.
pub fn col2im_reference(dcols: &[f32], g: &Geometry, dx: &mut [f32], accumulate: bool) {
    col2im_parts(dcols, g, dx, accumulate, super::pool::threads_for_elements(g.positions() * g.patch()));
}

/// `col2im_reference` with the batch cut into `parts` runs of images (`by_images`).
pub fn col2im_parts(dcols: &[f32], g: &Geometry, dx: &mut [f32], accumulate: bool, parts: usize) {
    if !accumulate {
        dx.fill(0.0);
    }
    by_images(g, parts, (dcols, g.oh * g.ow * g.patch()), (dx, g.h * g.w * g.c), |g, dcols, dx| {
        g.spans(|row, px, tap, n| {
            let src = row * g.patch() + tap;
            dx[px..px + n * g.c].iter_mut().zip(&dcols[src..src + n * g.c]).for_each(|(d, v)| *d += v);
        })
    });
}

/// `f(geometry of the run, its input, its output)` for the batch cut into at most `parts` runs of
/// consecutive images, each run's slices of `input` and `output` (`per` values an image), on
/// rayon's pool in the threaded build. Images do not mix in a conv or pool, so each value is
/// computed as in one pass (bit-identical), and the runs' outputs are disjoint.
fn by_images(g: &Geometry, parts: usize, (input, per_in): (&[f32], usize), (output, per_out): (&mut [f32], usize), f: impl Fn(&Geometry, &[f32], &mut [f32]) + Sync + Send) {
    let per = g.batch.div_ceil(parts.clamp(1, g.batch.max(1))).max(1);
    let runs: Vec<_> = input.chunks(per * per_in).zip(output.chunks_mut(per * per_out)).collect();
    super::pool::each(runs, |(x, y)| f(&Geometry { batch: y.len() / per_out.max(1), ..*g }, x, y));
}

/// conv_direct_forward: Y [B·OH·OW, Cout] = bias + the convolution computed window by window
/// (no patch matrix; the same numbers as im2col·W).   (shaders/conv.wgsl)
pub fn conv_direct_forward_reference(x: &[f32], w: &[f32], bias: &[f32], g: &Geometry) -> Vec<f32> {
    let cout = bias.len();
    let mut y: Vec<f32> = (0..g.positions()).flat_map(|_| bias.iter().copied()).collect();
    g.taps(|row, px, tap| {
        let out = &mut y[row * cout..][..cout];
        for ci in 0..g.c {
            let xv = x[px + ci];
            out.iter_mut().zip(&w[(tap + ci) * cout..][..cout]).for_each(|(o, wv)| *o += xv * wv);
        }
    });
    y
}

/// conv_direct_dw: dW [K·K·C, Cout] = Σ over output positions of input pixel × dY.
pub fn conv_direct_dw_reference(x: &[f32], dy: &[f32], g: &Geometry, cout: usize) -> Vec<f32> {
    let mut dw = vec![0.0; g.patch() * cout];
    g.taps(|row, px, tap| {
        let d = &dy[row * cout..][..cout];
        for ci in 0..g.c {
            let xv = x[px + ci];
            dw[(tap + ci) * cout..][..cout].iter_mut().zip(d).for_each(|(o, dv)| *o += xv * dv);
        }
    });
    dw
}

/// conv_direct_dx: dX (+)= Σ over the windows covering each pixel of dY·Wᵀ.
pub fn conv_direct_dx_reference(dy: &[f32], w: &[f32], g: &Geometry, cout: usize, dx: &mut [f32], accumulate: bool) {
    if !accumulate {
        dx.fill(0.0);
    }
    g.taps(|row, px, tap| {
        let d = &dy[row * cout..][..cout];
        for ci in 0..g.c {
            dx[px + ci] += w[(tap + ci) * cout..][..cout].iter().zip(d).map(|(a, b)| a * b).sum::<f32>();
        }
    });
}

/// maxpool_forward: y [B, OH, OW, C] = window maxima (no padding); argmax holds the flat input
/// index of the first maximum.   (shaders/pool.wgsl)
pub fn maxpool_forward_reference(x: &[f32], g: &Geometry) -> (Vec<f32>, Vec<u32>) {
    let n = g.positions() * g.c;
    let (mut y, mut arg) = (vec![f32::NEG_INFINITY; n], vec![0u32; n]);
    // Taps come in window order, so a strict `>` keeps the first maximum.
    g.spans(|row, px, _, n| {
        let (y, arg) = (&mut y[row * g.c..][..g.c], &mut arg[row * g.c..][..g.c]);
        for (t, xs) in x[px..px + n * g.c].chunks_exact(g.c).enumerate() {
            for (ci, &v) in xs.iter().enumerate() {
                if v > y[ci] {
                    y[ci] = v;
                    arg[ci] = (px + t * g.c + ci) as u32;
                }
            }
        }
    });
    (y, arg)
}

/// maxpool_backward: dX (+)= dY routed to each window's argmax.
pub fn maxpool_backward_reference(dy: &[f32], argmax: &[u32], dx: &mut [f32], accumulate: bool) {
    if !accumulate {
        dx.fill(0.0);
    }
    for (d, &a) in dy.iter().zip(argmax) {
        dx[a as usize] += d;
    }
}

/// avgpool_forward: y [B, OH, OW, C] = window means (no padding).
pub fn avgpool_forward_reference(x: &[f32], g: &Geometry) -> Vec<f32> {
    let mut y = vec![0.0; g.positions() * g.c];
    let scale = 1.0 / (g.k * g.k) as f32;
    g.taps(|row, px, _| {
        for ci in 0..g.c {
            y[row * g.c + ci] += x[px + ci] * scale;
        }
    });
    y
}

/// avgpool_backward: dX (+)= dY / K² spread over each window.
pub fn avgpool_backward_reference(dy: &[f32], g: &Geometry, dx: &mut [f32], accumulate: bool) {
    if !accumulate {
        dx.fill(0.0);
    }
    let scale = 1.0 / (g.k * g.k) as f32;
    g.taps(|row, px, _| {
        for ci in 0..g.c {
            dx[px + ci] += dy[row * g.c + ci] * scale;
        }
    });
}

// ---- Batch norm over X [R, C] (R = B·H·W rows; the first V rows are real samples). ----

/// bn_stats: per-channel mean and biased variance over the first `valid` rows, and the running
/// statistics moved toward them: r = (1 − m)·r + m·batch (variance unbiased).   (shaders/batchnorm.wgsl)
pub fn bn_stats_reference(x: &[f32], c: usize, valid: usize, running_mean: &mut [f32], running_var: &mut [f32], momentum: f32) -> (Vec<f32>, Vec<f32>) {
    let rows = &x[..valid * c];
    let mut mean = vec![0.0f32; c];
    for row in rows.chunks_exact(c) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= valid as f32);
    let mut var = vec![0.0f32; c];
    for row in rows.chunks_exact(c) {
        var.iter_mut().zip(row).zip(&mean).for_each(|((q, v), m)| *q += (v - m) * (v - m));
    }
    var.iter_mut().for_each(|q| *q /= valid as f32);
    for ch in 0..c {
        let unbiased = if valid > 1 { var[ch] * valid as f32 / (valid - 1) as f32 } else { var[ch] };
        running_mean[ch] = (1.0 - momentum) * running_mean[ch] + momentum * mean[ch];
        running_var[ch] = (1.0 - momentum) * running_var[ch] + momentum * unbiased;
    }
    (mean, var)
}

/// bn_forward: y = gamma·(x − mean)/sqrt(var + eps) + beta, every row.
pub fn bn_forward_reference(x: &[f32], c: usize, mean: &[f32], var: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let inv: Vec<f32> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let mut y = vec![0.0; x.len()];
    for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        for ch in 0..c {
            yr[ch] = gamma[ch] * (xr[ch] - mean[ch]) * inv[ch] + beta[ch];
        }
    }
    y
}

/// bn_backward with batch statistics: (dgamma, dbeta) and dX (+)= over the first `valid` rows
///   dbeta = Σ dy;  dgamma = Σ dy·x̂;  dx = gamma/(V·σ)·(V·dy − dbeta − x̂·dgamma);  dx = 0 past V.
#[allow(clippy::too_many_arguments)]
pub fn bn_backward_reference(dy: &[f32], x: &[f32], c: usize, valid: usize, mean: &[f32], var: &[f32], gamma: &[f32], eps: f32, dx: &mut [f32], accumulate: bool) -> (Vec<f32>, Vec<f32>) {
    let (mut dgamma, mut dbeta) = (vec![0.0f32; c], vec![0.0f32; c]);
    let inv: Vec<f32> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    for (dr, xr) in dy[..valid * c].chunks_exact(c).zip(x.chunks_exact(c)) {
        for ch in 0..c {
            dbeta[ch] += dr[ch];
            dgamma[ch] += dr[ch] * (xr[ch] - mean[ch]) * inv[ch];
        }
    }
    let n = valid as f32;
    for (r, ((dxr, dr), xr)) in dx.chunks_exact_mut(c).zip(dy.chunks_exact(c)).zip(x.chunks_exact(c)).enumerate() {
        for ch in 0..c {
            let v = if r < valid {
                let xhat = (xr[ch] - mean[ch]) * inv[ch];
                gamma[ch] * inv[ch] / n * (n * dr[ch] - dbeta[ch] - xhat * dgamma[ch])
            } else {
                0.0
            };
            dxr[ch] = if accumulate { dxr[ch] + v } else { v };
        }
    }
    (dgamma, dbeta)
}

/// add_forward: y = a + b (a residual connection).   (shaders/add.wgsl)
pub fn add_forward_reference(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// add_into: dst = src, or dst += src when accumulating (a gradient reaching a node twice).
pub fn add_into_reference(dst: &mut [f32], src: &[f32], accumulate: bool) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = if accumulate { *d + s } else { *s };
    }
}

#[cfg(test)]
mod tests {
    use super::Geometry;

    /// `taps` (built on `spans`) visits exactly the window taps that `source` puts inside the
    /// image, in window order, on geometries with stride, padding wider than a window's overhang,
    /// and windows as wide as the image; and each span's values are contiguous in the input.
    #[test]
    fn taps_and_spans_visit_exactly_the_in_bounds_taps_in_order() {
        for &(h, w, c, k, stride, pad) in &[(7, 5, 3, 3, 1, 1), (6, 9, 1, 5, 2, 2), (5, 5, 2, 5, 1, 0), (4, 3, 2, 3, 2, 2), (9, 7, 4, 2, 2, 0), (3, 3, 1, 3, 1, 2)] {
            let g = Geometry::new(2, h, w, c, k, stride, pad);
            let mut naive = vec![];
            for b in 0..g.batch {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        for kh in 0..k {
                            for kw in 0..k {
                                if let Some((y, x)) = g.source(oy, ox, kh, kw) {
                                    naive.push(((b * g.oh + oy) * g.ow + ox, ((b * h + y) * w + x) * c, (kh * k + kw) * c));
                                }
                            }
                        }
                    }
                }
            }
            let mut got = vec![];
            g.taps(|row, px, tap| got.push((row, px, tap)));
            assert_eq!(got, naive, "{g:?}");
            let mut spans = 0;
            g.spans(|_, px, tap, n| {
                assert!(n >= 1 && (tap / c) % k + n <= k, "{g:?}: a span runs past its window row");
                assert!(px + n * c <= g.batch * h * w * c, "{g:?}: a span runs past the input");
                spans += 1;
            });
            // One span per window row that has a tap inside: no row split, none empty.
            let mut rows: Vec<(usize, usize)> = naive.iter().map(|&(row, _, tap)| (row, tap / c / k)).collect();
            rows.dedup();
            assert_eq!(spans, rows.len(), "{g:?}");
        }
    }
}
