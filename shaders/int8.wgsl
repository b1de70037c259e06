// Integer inference (compress::int8 has the arithmetic): int8 values packed four per u32 word,
// products accumulated in i32, requantized per output channel in fixed point (no float anywhere,
// so every adapter computes the same bits as the CPU). NHWC; one i32 per int8 value between steps.
//   int8_input:  x[i] = pixel(first + i) − 128                       images: the u8 dataset, packed
//   int8_im2col: cols [M = B·OH·OW, k4] packed, column (kh·K + kw)·C + ci; pad_value off the edge
//   int8_gemm:   out [M, N] = epilogue(Σ_k4 dot4(cols[r, k], weights[k, c]) + bias[c]), weights k-major
//                epilogue: the classifier keeps the total; else clamp(rq(total) + zero_out, lo, hi)
//   int8_maxpool: y = window maxima of x (SpatialParams)
// `dot4` is appended when the module is built: dot4I8Packed where the WGSL language feature
// packed_4x8_integer_dot_product exists (that module starts with its `requires`), else a manual
// unpack of the four signed bytes. CPU twins: reference::int8::int8_*_reference.

struct GemmParams {
    rows: u32,     // M
    outputs: u32,  // N
    k4: u32,       // packed words per row
    last: u32,     // 1: write totals (the classifier)
    zero_out: i32,
    lo: i32,
    hi: i32,
    out_offset: u32, // where row 0's outputs go in `out`
}

struct Im2colParams {
    s: SpatialParams, // the geometry (accumulate, outputs unused)
    pad_value: i32,
    k4: u32,
    first: u32, // int8_input: the first pixel of the batch in the dataset
    _pad: u32,
}

@group(0) @binding(0) var<uniform> g: GemmParams;
@group(0) @binding(1) var<storage, read> cols: array<u32>;
@group(0) @binding(2) var<storage, read> weights: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<i32>;
@group(0) @binding(4) var<storage, read> mult: array<u32>;
@group(0) @binding(5) var<storage, read> shift: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<i32>;

// rq(t, m, s) = sign(t)·⌊(|t|·m + 2^(s−1)) / 2^s⌋, saturated to 2^30: the 62-bit product in two words.
fn requantize(t: i32, m: u32, s: u32) -> i32 {
    let a = u32(abs(t)); // |i32::MIN| wraps to 2^31 as u32: still right
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let m0 = m & 0xffffu;
    let m1 = m >> 16u;
    let mid = a0 * m1 + a1 * m0; // < 2^32
    var lo = a0 * m0;
    var hi = a1 * m1 + (mid >> 16u);
    let lo2 = lo + (mid << 16u);
    hi = hi + select(0u, 1u, lo2 < lo);
    lo = lo2;
    // + 2^(s−1)
    if (s <= 32u) {
        let r = 1u << (s - 1u);
        let lo3 = lo + r;
        hi = hi + select(0u, 1u, lo3 < lo);
        lo = lo3;
    } else {
        hi = hi + (1u << (s - 33u));
    }
    var q: u32;
    if (s < 32u) {
        q = select((lo >> s) | (hi << (32u - s)), 0x40000000u, (hi >> s) != 0u);
    } else {
        q = hi >> (s - 32u);
    }
    let r = i32(min(q, 0x40000000u));
    return select(r, -r, t < 0);
}

// Each invocation: 4 rows × 4 outputs (rows y + 8i, outputs x + 8j of a 32 × 32 tile), as the f32
// matmul: weights are stored k-major ([k4, N] words), so neighbouring invocations read
// neighbouring words (contiguous SIMD loads on software adapters). Row tiles fold into z past
// 65,535 workgroups.
@compute @workgroup_size(8, 8, 1)
fn int8_gemm(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r0 = (wid.y + wid.z * nwg.y) * 32u + lid.y;
    let c0 = wid.x * 32u + lid.x;
    let ra = min(vec4<u32>(r0, r0 + 8u, r0 + 16u, r0 + 24u), vec4<u32>(g.rows - 1u)) * g.k4;
    let cb = min(vec4<u32>(c0, c0 + 8u, c0 + 16u, c0 + 24u), vec4<u32>(g.outputs - 1u));
    var acc0 = vec4<i32>(0);
    var acc1 = vec4<i32>(0);
    var acc2 = vec4<i32>(0);
    var acc3 = vec4<i32>(0);
    for (var k = 0u; k < g.k4; k++) {
        let a = vec4<u32>(cols[ra.x + k], cols[ra.y + k], cols[ra.z + k], cols[ra.w + k]);
        let kb = k * g.outputs;
        let b = vec4<u32>(weights[kb + cb.x], weights[kb + cb.y], weights[kb + cb.z], weights[kb + cb.w]);
        acc0 += vec4<i32>(dot4(a.x, b.x), dot4(a.x, b.y), dot4(a.x, b.z), dot4(a.x, b.w));
        acc1 += vec4<i32>(dot4(a.y, b.x), dot4(a.y, b.y), dot4(a.y, b.z), dot4(a.y, b.w));
        acc2 += vec4<i32>(dot4(a.z, b.x), dot4(a.z, b.y), dot4(a.z, b.z), dot4(a.z, b.w));
        acc3 += vec4<i32>(dot4(a.w, b.x), dot4(a.w, b.y), dot4(a.w, b.z), dot4(a.w, b.w));
    }
    let accs = array<vec4<i32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let r = r0 + 8u * i;
        for (var j = 0u; j < 4u; j++) {
            let c = c0 + 8u * j;
            if (r < g.rows && c < g.outputs) {
                let total = accs[i][j] + bias[c];
                var v = total;
                if (g.last == 0u) {
                    v = clamp(requantize(total, mult[c], shift[c]) + g.zero_out, g.lo, g.hi);
                }
                out[g.out_offset + r * g.outputs + c] = v;
            }
        }
    }
}

@group(0) @binding(0) var<uniform> ip: Im2colParams;
@group(0) @binding(1) var<storage, read> images: array<u32>; // packed u8 [N · P]
@group(0) @binding(2) var<storage, read_write> xin: array<i32>; // [B · P]

@compute @workgroup_size(256, 1, 1)
fn int8_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= ip.s.batch * ip.s.h * ip.s.w * ip.s.c) {
        return;
    }
    let at = ip.first + i;
    xin[i] = i32((images[at / 4u] >> ((at & 3u) * 8u)) & 0xffu) - 128;
}

@group(0) @binding(1) var<storage, read> x: array<i32>;             // [B, H, W, C]
@group(0) @binding(2) var<storage, read_write> packed: array<u32>;  // [B·OH·OW, k4]

// One invocation per packed word: four consecutive columns of one row.
@compute @workgroup_size(256, 1, 1)
fn int8_im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    let rows = ip.s.batch * ip.s.oh * ip.s.ow;
    if (i >= rows * ip.k4) {
        return;
    }
    let row = i / ip.k4;
    let b = row / (ip.s.oh * ip.s.ow);
    let oy = (row / ip.s.ow) % ip.s.oh;
    let ox = row % ip.s.ow;
    let width = ip.s.k * ip.s.k * ip.s.c;
    var word = 0u;
    for (var j = 0u; j < 4u; j++) {
        let col = (i % ip.k4) * 4u + j;
        var v = 0;
        if (col < width) {
            let ci = col % ip.s.c;
            let tap = col / ip.s.c;
            let y = i32(oy * ip.s.stride + tap / ip.s.k) - i32(ip.s.pad);
            let xx = i32(ox * ip.s.stride + tap % ip.s.k) - i32(ip.s.pad);
            if (y < 0 || xx < 0 || u32(y) >= ip.s.h || u32(xx) >= ip.s.w) {
                v = ip.pad_value;
            } else {
                v = x[((b * ip.s.h + u32(y)) * ip.s.w + u32(xx)) * ip.s.c + ci];
            }
        }
        word = word | ((u32(v) & 0xffu) << (8u * j));
    }
    packed[i] = word;
}

@group(0) @binding(0) var<uniform> sp: SpatialParams;
@group(0) @binding(1) var<storage, read> px: array<i32>;
@group(0) @binding(2) var<storage, read_write> py: array<i32>;

@compute @workgroup_size(256, 1, 1)
fn int8_maxpool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= sp.batch * sp.oh * sp.ow * sp.c) {
        return;
    }
    let ci = i % sp.c;
    let pos = i / sp.c;
    let b = pos / (sp.oh * sp.ow);
    let oy = (pos / sp.ow) % sp.oh;
    let ox = pos % sp.ow;
    var m = -2147483647 - 1;
    for (var kh = 0u; kh < sp.k; kh++) {
        for (var kw = 0u; kw < sp.k; kw++) {
            let y = oy * sp.stride + kh;
            let xx = ox * sp.stride + kw;
            if (y < sp.h && xx < sp.w) {
                m = max(m, px[((b * sp.h + y) * sp.w + xx) * sp.c + ci]);
            }
        }
    }
    py[i] = m;
}
