// Convolution, two ways, forward and backward side by side:
//  * im2col + matmul (shaders/matmul.wgsl): materialises the patch matrix, then one GEMM;
//  * direct: each invocation loops over its window, no patch matrix (less memory traffic).
// Which is faster depends on the adapter; gpu::net picks per adapter (see ConvMethod).
// NHWC. Legend: B batch, H/W input side, C input channels, OH/OW output side, K window, S stride,
// P zero padding; the im2col matrix is [B·OH·OW, K·K·C], column (kh·K + kw)·C + ci.
//   forward:  cols = im2col(X);  Y [B·OH·OW, Cout] = cols·W [K·K·C, Cout]
//   backward: dW = colsᵀ·dY;  dcols = dY·Wᵀ;  dX = col2im(dcols)
// CPU twins: reference::ops::{im2col,col2im}_reference.

@group(0) @binding(0) var<uniform> p: SpatialParams;

// im2col: cols[row, col] = X[b, oy·S + kh − P, ox·S + kw − P, ci], 0 in the padding.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    let pw = p.k * p.k * p.c;
    if (i >= p.batch * p.oh * p.ow * pw) {
        return;
    }
    let row = i / pw;
    let col = i % pw;
    let ci = col % p.c;
    let kw = (col / p.c) % p.k;
    let kh = col / (p.c * p.k);
    let ox = row % p.ow;
    let oy = (row / p.ow) % p.oh;
    let b = row / (p.ow * p.oh);
    let y = i32(oy * p.stride + kh) - i32(p.pad);
    let xx = i32(ox * p.stride + kw) - i32(p.pad);
    var v = 0.0;
    if (y >= 0 && y < i32(p.h) && xx >= 0 && xx < i32(p.w)) {
        v = x[((b * p.h + u32(y)) * p.w + u32(xx)) * p.c + ci];
    }
    cols[i] = v;
}

// col2im: dX[b, y, x, ci] (+)= Σ over the windows (kh, kw) that copied this pixel of dcols.
// One invocation per input element gathers its terms: no atomics, deterministic.
@group(0) @binding(1) var<storage, read> dcols: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.batch * p.h * p.w * p.c) {
        return;
    }
    let ci = i % p.c;
    let xx = (i / p.c) % p.w;
    let y = (i / (p.c * p.w)) % p.h;
    let b = i / (p.c * p.w * p.h);
    let pw = p.k * p.k * p.c;
    var s = 0.0;
    for (var kh = 0u; kh < p.k; kh = kh + 1u) {
        let oy = covering(y, kh, p.oh, p.stride, p.pad);
        if (oy < 0) {
            continue;
        }
        for (var kw = 0u; kw < p.k; kw = kw + 1u) {
            let ox = covering(xx, kw, p.ow, p.stride, p.pad);
            if (ox < 0) {
                continue;
            }
            s = s + dcols[((b * p.oh + u32(oy)) * p.ow + u32(ox)) * pw + (kh * p.k + kw) * p.c + ci];
        }
    }
    if (p.accumulate != 0u) {
        s = s + dx[i];
    }
    dx[i] = s;
}

// ---- Direct convolution. W is [K·K·C, Cout] (row (kh·K + kw)·C + ci), Y and dY [B·OH·OW, Cout].
// CPU twins: reference::ops::conv_direct_{forward,dx,dw}_reference.

// Output row `row`'s input pixel under window offset (kh, kw): flat index of channel 0, or -1.
fn window_pixel(row: u32, kh: u32, kw: u32) -> i32 {
    let ox = row % p.ow;
    let oy = (row / p.ow) % p.oh;
    let b = row / (p.ow * p.oh);
    let y = i32(oy * p.stride + kh) - i32(p.pad);
    let xx = i32(ox * p.stride + kw) - i32(p.pad);
    if (y < 0 || y >= i32(p.h) || xx < 0 || xx >= i32(p.w)) {
        return -1;
    }
    return i32(((b * p.h + u32(y)) * p.w + u32(xx)) * p.c);
}

// conv_direct_forward: Y[row, co] = bias[co] + Σ_{kh,kw,ci} X[pixel(row,kh,kw) + ci]·W[(kh·K+kw)·C + ci, co].
// One invocation per (row, 4 consecutive output channels).
@group(0) @binding(1) var<storage, read> fx: array<f32>;
@group(0) @binding(2) var<storage, read> fw: array<f32>;
@group(0) @binding(3) var<storage, read> fbias: array<f32>;
@group(0) @binding(4) var<storage, read_write> fy: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn conv_direct_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 64u);
    let groups = (p.outputs + 3u) / 4u;
    if (i >= p.batch * p.oh * p.ow * groups) {
        return;
    }
    let row = i / groups;
    let co = (i % groups) * 4u;
    let last = p.outputs - 1u;
    let cols = min(vec4<u32>(co, co + 1u, co + 2u, co + 3u), vec4<u32>(last)); // clamped lanes are not stored
    var acc = vec4<f32>(fbias[cols.x], fbias[cols.y], fbias[cols.z], fbias[cols.w]);
    for (var kh = 0u; kh < p.k; kh = kh + 1u) {
        for (var kw = 0u; kw < p.k; kw = kw + 1u) {
            let px = window_pixel(row, kh, kw);
            if (px < 0) {
                continue;
            }
            let wrow = (kh * p.k + kw) * p.c;
            for (var ci = 0u; ci < p.c; ci = ci + 1u) {
                let xv = fx[u32(px) + ci];
                let r = (wrow + ci) * p.outputs;
                acc = acc + xv * vec4<f32>(fw[r + cols.x], fw[r + cols.y], fw[r + cols.z], fw[r + cols.w]);
            }
        }
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        if (co + j < p.outputs) {
            fy[row * p.outputs + co + j] = acc[j];
        }
    }
}

// conv_direct_dw: dW[r, co] = Σ_rows X[pixel(row, kh, kw) + ci]·dY[row, co], r = (kh·K + kw)·C + ci.
// One invocation per weight: a long reduction over B·OH·OW rows, no patch matrix.
@group(0) @binding(1) var<storage, read> wx: array<f32>;
@group(0) @binding(2) var<storage, read> wdy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn conv_direct_dw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 64u);
    let pw = p.k * p.k * p.c;
    if (i >= pw * p.outputs) {
        return;
    }
    let co = i % p.outputs;
    let r = i / p.outputs;
    let ci = r % p.c;
    let kw = (r / p.c) % p.k;
    let kh = r / (p.c * p.k);
    var s = 0.0;
    let rows = p.batch * p.oh * p.ow;
    for (var row = 0u; row < rows; row = row + 1u) {
        let px = window_pixel(row, kh, kw);
        if (px >= 0) {
            s = s + wx[u32(px) + ci] * wdy[row * p.outputs + co];
        }
    }
    dw[i] = s;
}

// conv_direct_dx: dX[b, y, x, ci] (+)= Σ_{kh,kw: window covers it} Σ_co dY[row, co]·W[(kh·K+kw)·C + ci, co].
@group(0) @binding(1) var<storage, read> xdy: array<f32>;
@group(0) @binding(2) var<storage, read> xw: array<f32>;
@group(0) @binding(3) var<storage, read_write> xdx: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn conv_direct_dx(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 64u);
    if (i >= p.batch * p.h * p.w * p.c) {
        return;
    }
    let ci = i % p.c;
    let xx = (i / p.c) % p.w;
    let y = (i / (p.c * p.w)) % p.h;
    let b = i / (p.c * p.w * p.h);
    var s = 0.0;
    for (var kh = 0u; kh < p.k; kh = kh + 1u) {
        let oy = covering(y, kh, p.oh, p.stride, p.pad);
        if (oy < 0) {
            continue;
        }
        for (var kw = 0u; kw < p.k; kw = kw + 1u) {
            let ox = covering(xx, kw, p.ow, p.stride, p.pad);
            if (ox < 0) {
                continue;
            }
            let row = (b * p.oh + u32(oy)) * p.ow + u32(ox);
            let wr = ((kh * p.k + kw) * p.c + ci) * p.outputs;
            for (var co = 0u; co < p.outputs; co = co + 1u) {
                s = s + xdy[row * p.outputs + co] * xw[wr + co];
            }
        }
    }
    if (p.accumulate != 0u) {
        s = s + xdx[i];
    }
    xdx[i] = s;
}
