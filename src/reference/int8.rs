//! CPU twins of shaders/int8.wgsl (same names with `_reference`), on the GPU's packed layout, and
//! the CPU backend's integer executor (`int8_forward`), which keeps int8 unpacked for speed and
//! computes the same integers. The arithmetic is compress::int8's; every function here is exact.

use super::ops::Geometry;
use crate::compress::int8::{requantize_store, IntLayer, IntModel, IntStep};

/// Packs int8 values four to a u32, little-endian (element 4i + j in byte j of word i).
pub fn pack_i8(v: &[i8]) -> Vec<u32> {
    v.chunks(4).map(|c| c.iter().enumerate().fold(0u32, |w, (j, &b)| w | ((b as u8 as u32) << (8 * j)))).collect()
}

/// dot4I8Packed: the dot product of two words' four signed bytes.
pub fn dot4_i8(a: u32, b: u32) -> i32 {
    (0..4).map(|j| ((a >> (8 * j)) as u8 as i8 as i32) * ((b >> (8 * j)) as u8 as i8 as i32)).sum()
}

impl IntLayer {
    /// The im2col geometry of `batch` samples.
    pub fn geometry(&self, batch: usize) -> Geometry {
        Geometry::new(batch, self.input.h, self.input.w, self.input.c, self.k, self.stride, self.pad)
    }
}

/// int8_input: the images' pixels p (u8) as int8 values p − 128, one i32 per element.
pub fn int8_input_reference(pixels: &[u8]) -> Vec<i32> {
    pixels.iter().map(|&p| p as i32 - 128).collect()
}

/// int8_im2col: x [B, H, W, C] (int8 values as i32) → packed cols [B·OH·OW, kp/4] u32, column
/// (kh·k + kw)·C + ci; `pad_value` where the window hangs over the edge, 0 in the columns past K.
pub fn int8_im2col_reference(x: &[i32], g: &Geometry, pad_value: i32, kp: usize) -> Vec<u32> {
    let mut cols = vec![0i8; g.positions() * kp];
    for row in cols.chunks_exact_mut(kp) {
        row[..g.patch()].fill(pad_value as i8);
    }
    g.taps(|row, px, tap| {
        for ci in 0..g.c {
            cols[row * kp + tap + ci] = x[px + ci] as i8;
        }
    });
    pack_i8(&cols)
}

/// int8_gemm: out [M, outputs] from packed cols [M, kp/4] and packed weights [outputs, kp/4]:
/// the classifier's totals, else the requantized int8 values (compress::int8).
pub fn int8_gemm_reference(cols: &[u32], weights: &[u32], m: usize, l: &IntLayer) -> Vec<i32> {
    let k4 = l.kp / 4;
    let mut out = vec![0; m * l.outputs];
    for r in 0..m {
        for c in 0..l.outputs {
            let total = (0..k4).map(|i| dot4_i8(cols[r * k4 + i], weights[c * k4 + i])).sum::<i32>() + l.bias[c];
            out[r * l.outputs + c] = if l.last { total } else { requantize_store(total, l, c) };
        }
    }
    out
}

/// int8_maxpool: y [B, OH, OW, C] = the window maxima of x [B, H, W, C].
pub fn int8_maxpool_reference(x: &[i32], g: &Geometry) -> Vec<i32> {
    let mut y = vec![i32::MIN; g.positions() * g.c];
    g.taps(|row, px, _| {
        for ci in 0..g.c {
            y[row * g.c + ci] = y[row * g.c + ci].max(x[px + ci]);
        }
    });
    y
}

/// The classifier's totals [n, classes] of `n` images (u8 pixels), through the twins above.
pub fn int8_forward_reference(model: &IntModel, pixels: &[u8], n: usize) -> Vec<i32> {
    let mut x = int8_input_reference(pixels);
    for s in &model.steps {
        x = match s {
            IntStep::Layer(l) => {
                let g = l.geometry(n);
                let cols = int8_im2col_reference(&x, &g, l.pad_value, l.kp);
                int8_gemm_reference(&cols, &pack_i8(&l.weights), g.positions(), l)
            }
            IntStep::MaxPool { input, k, stride } => int8_maxpool_reference(&x, &Geometry::new(n, input.h, input.w, input.c, *k, *stride, 0)),
        };
    }
    x
}

/// The CPU backend's integer inference: the same integers as `int8_forward_reference`, int8
/// unpacked and the product blocked four rows by four outputs so the compiler vectorizes it.
pub fn int8_forward(model: &IntModel, pixels: &[u8], n: usize) -> Vec<i32> {
    let mut x: Vec<i8> = pixels.iter().map(|&p| (p as i32 - 128) as i8).collect();
    let mut totals = vec![];
    for s in &model.steps {
        match s {
            IntStep::Layer(l) => {
                let g = l.geometry(n);
                let cols = im2col_i8(&x, &g, l.pad_value as i8, l.kp);
                let m = g.positions();
                let acc = gemm_i8(&cols, &l.weights, m, l.outputs, l.kp);
                if l.last {
                    totals = acc.iter().enumerate().map(|(i, &t)| t + l.bias[i % l.outputs]).collect();
                } else {
                    x = acc.iter().enumerate().map(|(i, &t)| requantize_store(t + l.bias[i % l.outputs], l, i % l.outputs) as i8).collect();
                }
            }
            IntStep::MaxPool { input, k, stride } => {
                let g = Geometry::new(n, input.h, input.w, input.c, *k, *stride, 0);
                let mut y = vec![i8::MIN; g.positions() * g.c];
                g.taps(|row, px, _| y[row * g.c..][..g.c].iter_mut().zip(&x[px..px + g.c]).for_each(|(o, &v)| *o = (*o).max(v)));
                x = y;
            }
        }
    }
    totals
}

fn im2col_i8(x: &[i8], g: &Geometry, pad_value: i8, kp: usize) -> Vec<i8> {
    let mut cols = vec![0i8; g.positions() * kp];
    if g.pad > 0 {
        cols.chunks_exact_mut(kp).for_each(|row| row[..g.patch()].fill(pad_value));
    }
    g.taps(|row, px, tap| cols[row * kp + tap..][..g.c].copy_from_slice(&x[px..px + g.c]));
    cols
}

/// acc [m, n] = a [m, kp] · bᵀ (b [n, kp]), i32 accumulation: one contiguous dot product per
/// entry, which the compiler vectorizes (i16 multiply-add).
fn gemm_i8(a: &[i8], b: &[i8], m: usize, n: usize, kp: usize) -> Vec<i32> {
    let mut out = vec![0i32; m * n];
    for (row, o) in a.chunks_exact(kp).zip(out.chunks_exact_mut(n)) {
        for (w, v) in b.chunks_exact(kp).zip(o.iter_mut()) {
            *v = row.iter().zip(w).map(|(&p, &q)| p as i16 as i32 * q as i16 as i32).sum::<i32>();
        }
    }
    out
}
