//! CPU twins of every WGSL kernel, same names with `_reference`: the oracle the GPU is tested
//! against and the arithmetic of the CPU fallback backend. Plain Rust and ndarray, no tricks.
//! Legend: B = batch rows, V = valid rows (rows >= V are padding), I/O = layer in/out, C = classes.

use crate::nn::OptimParams;
use ndarray::{Array1, Array2, ArrayView2, Axis};

/// matmul: C[M,N] = op(A)·op(B), op = transpose when the flag is set.   (shaders/matmul.wgsl)
pub fn matmul_reference(a: ArrayView2<f32>, b: ArrayView2<f32>, trans_a: bool, trans_b: bool) -> Array2<f32> {
    let a = if trans_a { a.reversed_axes() } else { a };
    let b = if trans_b { b.reversed_axes() } else { b };
    a.dot(&b).as_standard_layout().into_owned()
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
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// sgd: v = mu v + (g + wd w + l1 sign(w));  w -= lr v.   (shaders/optim.wgsl)
pub fn sgd_reference(w: &mut [f32], g: &[f32], m: &mut [f32], p: &OptimParams) {
    for i in 0..w.len() {
        let grad = g[i] + p.weight_decay * w[i] + p.l1 * sign(w[i]);
        m[i] = p.momentum * m[i] + grad;
        w[i] -= p.lr * m[i];
    }
}

/// adam: m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²;  w -= lr_t m / (sqrt(v) + eps_t).
pub fn adam_reference(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], p: &OptimParams) {
    for i in 0..w.len() {
        let grad = g[i] + p.weight_decay * w[i] + p.l1 * sign(w[i]);
        m[i] = p.momentum * m[i] + (1.0 - p.momentum) * grad;
        v[i] = p.beta2 * v[i] + (1.0 - p.beta2) * grad * grad;
        w[i] -= p.lr * m[i] / (v[i].sqrt() + p.eps);
    }
}

/// gather_batch: x [B, P] normalised pixels of samples order[offset..offset+V], zero rows after V;
/// y [B] labels, 0 for padding.   (shaders/data.wgsl)
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
) -> (Array2<f32>, Vec<u32>) {
    let mut x = Array2::zeros((rows, pixels));
    let mut y = vec![0u32; rows];
    for b in 0..valid {
        let s = order[offset + b] as usize;
        for i in 0..pixels {
            x[[b, i]] = images[s * pixels + i] as f32 * scale + shift;
        }
        y[b] = labels[s] as u32;
    }
    (x, y)
}

/// mask_apply: w *= mask.   (shaders/mask.wgsl)
pub fn mask_apply_reference(w: &mut [f32], mask: &[f32]) {
    for (v, m) in w.iter_mut().zip(mask) {
        *v *= m;
    }
}

/// taylor_accumulate: score += |w * g|.   (shaders/mask.wgsl)
pub fn taylor_accumulate_reference(score: &mut [f32], w: &[f32], g: &[f32]) {
    for ((s, w), g) in score.iter_mut().zip(w).zip(g) {
        *s += (w * g).abs();
    }
}
