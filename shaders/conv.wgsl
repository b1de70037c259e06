// Convolution as im2col + matmul (shaders/matmul.wgsl), forward and backward side by side.
// NHWC. Legend: B batch, H/W input side, C input channels, OH/OW output side, K window, S stride,
// P zero padding; the im2col matrix is [B·OH·OW, K·K·C], column (kh·K + kw)·C + ci.
//   forward:  cols = im2col(X);  Y [B·OH·OW, Cout] = cols·W [K·K·C, Cout]
//   backward: dW = colsᵀ·dY;  dcols = dY·Wᵀ;  dX = col2im(dcols)
// CPU twins: reference::ops::{im2col,col2im}_reference.

struct SpatialParams {
    batch: u32,
    h: u32,
    w: u32,
    c: u32,
    oh: u32,
    ow: u32,
    k: u32,
    stride: u32,
    pad: u32,
    accumulate: u32, // col2im: 1 adds into dX (a node read twice), 0 overwrites
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: SpatialParams;

// im2col: cols[row, col] = X[b, oy·S + kh − P, ox·S + kw − P, ci], 0 in the padding.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u; // 2D grid past 65535 groups
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
    let i = gid.x + gid.y * nwg.x * 256u;
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
        let ty = i32(y + p.pad) - i32(kh);
        if (ty < 0 || u32(ty) % p.stride != 0u || u32(ty) / p.stride >= p.oh) {
            continue;
        }
        let oy = u32(ty) / p.stride;
        for (var kw = 0u; kw < p.k; kw = kw + 1u) {
            let tx = i32(xx + p.pad) - i32(kw);
            if (tx < 0 || u32(tx) % p.stride != 0u || u32(tx) / p.stride >= p.ow) {
                continue;
            }
            let ox = u32(tx) / p.stride;
            s = s + dcols[((b * p.oh + oy) * p.ow + ox) * pw + (kh * p.k + kw) * p.c + ci];
        }
    }
    if (p.accumulate != 0u) {
        s = s + dx[i];
    }
    dx[i] = s;
}
