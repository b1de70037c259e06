// matmul: C[M,N] = op(A)[M,K] · op(B)[K,N], where op is an optional transpose expressed by strides.
// Forward (Y = X·W) and both backward products (dX = dY·Wᵀ, dW = Xᵀ·dY) are this one kernel.
// Register-blocked: each invocation computes 4x4 elements of C straight from global memory (no
// workgroup tiles), the fast shape on software adapters (SwiftShader, lavapipe); see ENVIRONMENT.md.
// Split-K: when C is small and K long (a conv weight gradient sums over B·OH·OW positions), one
// 32x32 tile would be one workgroup walking all of K; workgroup z then takes K rows
// [z·k_chunk, (z+1)·k_chunk) and writes its partial C to slice z of a scratch buffer, and
// split_sum adds the slices in order (no float atomics, deterministic). Without a split, z folds
// row tiles past the 65,535 workgroups a dimension may have.
// matmul_tiled (below) is the same product through workgroup memory.
// CPU twins: reference::ops::matmul_reference (of both), reference::ops::split_sum_reference.

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    // Element (i, kk) of op(A) lives at a[i * a_row + kk * a_col]; (kk, j) of op(B) at b[kk * b_row + j * b_col].
    a_row: u32,
    a_col: u32,
    b_row: u32,
    b_col: u32,
    // 1: C += op(A)·op(B); 0: C = op(A)·op(B).
    accumulate: u32,
    // K rows per workgroup along z; workgroup z writes c[z·M·N ..]. k_chunk >= k: no split.
    k_chunk: u32,
}

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    // The workgroup owns a 32x32 tile of C; invocation (x, y) owns rows y, y+8, y+16, y+24 and
    // columns x, x+8, x+16, x+24 of it. Neighbouring invocations thus read neighbouring elements
    // of B, which software adapters turn into contiguous SIMD loads across lanes.
    // Without a K split (k_chunk >= k), row tiles past 65,535 fold into z: tile wg.y + 65535·wg.z.
    let split = p.k_chunk < p.k;
    let kz = select(0u, wg.z, split);
    let row0 = (wg.y + select(65535u * wg.z, 0u, split)) * 32u + lid.y;
    let col0 = wg.x * 32u + lid.x;
    // Clamp edge rows/columns so every load is in bounds; clamped lanes are never stored.
    let rows = min(vec4<u32>(row0, row0 + 8u, row0 + 16u, row0 + 24u), vec4<u32>(p.m - 1u));
    let cols = min(vec4<u32>(col0, col0 + 8u, col0 + 16u, col0 + 24u), vec4<u32>(p.n - 1u));
    let ra = rows * p.a_row;
    let cb = cols * p.b_col;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let k_end = min(p.k, (kz + 1u) * p.k_chunk);
    for (var kk = kz * p.k_chunk; kk < k_end; kk = kk + 1u) {
        let ka = kk * p.a_col;
        let kb = kk * p.b_row;
        let av = vec4<f32>(a[ra.x + ka], a[ra.y + ka], a[ra.z + ka], a[ra.w + ka]);
        let bv = vec4<f32>(b[kb + cb.x], b[kb + cb.y], b[kb + cb.z], b[kb + cb.w]);
        acc0 = acc0 + av.x * bv;
        acc1 = acc1 + av.y * bv;
        acc2 = acc2 + av.z * bv;
        acc3 = acc3 + av.w * bv;
    }
    store_tile(kz, row0, col0, array<vec4<f32>, 4>(acc0, acc1, acc2, acc3));
}

// Writes invocation's 4x4 block (rows row0 + 8i, columns col0 + 8j) to slice kz of C, adding
// what C holds when accumulating; rows and columns past the edge are not stored.
fn store_tile(kz: u32, row0: u32, col0: u32, blocks: array<vec4<f32>, 4>) {
    var accs = blocks;
    for (var i = 0u; i < 4u; i = i + 1u) {
        let r = row0 + 8u * i;
        if (r < p.m) {
            for (var j = 0u; j < 4u; j = j + 1u) {
                let col = col0 + 8u * j;
                if (col < p.n) {
                    let idx = kz * p.m * p.n + r * p.n + col;
                    var v = accs[i][j];
                    if (p.accumulate != 0u) {
                        v = v + c[idx];
                    }
                    c[idx] = v;
                }
            }
        }
    }
}

// matmul_tiled: the same product, grid and split-K/fold rules, with K staged through workgroup
// memory: per 16-deep slice of K the 64 invocations load a 32x16 tile of op(A) and a 16x32 tile
// of op(B) together (8 elements each, zero past the edges), then each reads its 4 rows and 4
// columns from the tiles. Fewer global loads (each element once per workgroup instead of 8
// times), the fast shape on real GPUs; GpuContext picks between the two by timing them.
var<workgroup> tile_a: array<f32, 512>; // [32 rows][16 k]
var<workgroup> tile_b: array<f32, 512>; // [16 k][32 columns]

@compute @workgroup_size(8, 8, 1)
fn matmul_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let split = p.k_chunk < p.k;
    let kz = select(0u, wg.z, split);
    let tile_row = (wg.y + select(65535u * wg.z, 0u, split)) * 32u;
    let tile_col = wg.x * 32u;
    let t = lid.y * 8u + lid.x;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let k_begin = kz * p.k_chunk;
    let k_end = min(p.k, k_begin + p.k_chunk);
    for (var k0 = k_begin; k0 < k_end; k0 = k0 + 16u) {
        for (var i = 0u; i < 8u; i = i + 1u) {
            let e = t + 64u * i;
            let ar = tile_row + e / 16u;
            let ak = k0 + e % 16u;
            var va = 0.0;
            if (ar < p.m && ak < k_end) {
                va = a[ar * p.a_row + ak * p.a_col];
            }
            tile_a[e] = va;
            let bk = k0 + e / 32u;
            let bc = tile_col + e % 32u;
            var vb = 0.0;
            if (bk < k_end && bc < p.n) {
                vb = b[bk * p.b_row + bc * p.b_col];
            }
            tile_b[e] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk = kk + 1u) {
            let av = vec4<f32>(tile_a[lid.y * 16u + kk], tile_a[(lid.y + 8u) * 16u + kk], tile_a[(lid.y + 16u) * 16u + kk], tile_a[(lid.y + 24u) * 16u + kk]);
            let bv = vec4<f32>(tile_b[kk * 32u + lid.x], tile_b[kk * 32u + lid.x + 8u], tile_b[kk * 32u + lid.x + 16u], tile_b[kk * 32u + lid.x + 24u]);
            acc0 = acc0 + av.x * bv;
            acc1 = acc1 + av.y * bv;
            acc2 = acc2 + av.z * bv;
            acc3 = acc3 + av.w * bv;
        }
        workgroupBarrier();
    }
    store_tile(kz, tile_row + lid.y, tile_col + lid.x, array<vec4<f32>, 4>(acc0, acc1, acc2, acc3));
}

// split_sum: total[i] (+)= Σ_z partial[z·len + i], z = 0..splits, in order.
struct SplitParams {
    len: u32,
    splits: u32,
    accumulate: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> sp: SplitParams;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> total: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn split_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= sp.len) {
        return;
    }
    var s = 0.0;
    for (var z = 0u; z < sp.splits; z = z + 1u) {
        s = s + partial[z * sp.len + i];
    }
    if (sp.accumulate != 0u) {
        s = s + total[i];
    }
    total[i] = s;
}
