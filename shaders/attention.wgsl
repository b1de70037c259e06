// Losses on intermediate node outputs (the loss slot's feature terms), one workgroup per row.
//
// attention_transfer (Zagoruyko & Komodakis 2017), forward and backward in one pass per row: the
// spatial attention map of a [B, P, C] node output (P = H·W positions) is q[p] = Σ_c a[p, c]²,
// L2-normalised, v = q / ‖q‖ (0 where q is all zero). Per valid row b, student S, teacher T:
//   loss_b  = (β/2)·‖v_S − v_T‖²                 added to row_loss[b] (the head wrote it first)
//   g       = β·(v_S − v_T)
//   dS[p,c] = 2·S[p,c]·(g_p − v_S,p·(v_S·g)) / ‖q_S‖ / V    written to grad [B, P, Cs]
// (the backward pass adds grad into the student node's output gradient). Rows >= V: zero
// gradient, no loss. One workgroup of 64 per row; three sums reduced in workgroup memory.
// Legend: B rows, V valid rows, P positions, Cs / Ct student / teacher channels.
// CPU twin: reference::ops::attention_transfer_reference.
//
// hint_loss (FitNets, Romero et al. 2015): Y = the student output through a learned projection
// [B, P, Ct] (a matmul before this), T the teacher's [B, P, Ct], weight w = `beta`:
//   loss_b = w·Σ (Y − T)² / (P·Ct)      added to row_loss[b]
//   dY     = 2·w·(Y − T) / (P·Ct) / V   written to `grad` (same bindings; cs = ct = Ct)
// CPU twin: reference::ops::hint_loss_reference.

struct AttentionParams {
    rows: u32,      // B
    positions: u32, // P
    cs: u32,
    ct: u32,
    beta: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: AttentionParams;
@group(0) @binding(1) var<uniform> step: StepParams;
@group(0) @binding(2) var<storage, read> student: array<f32>;      // [B, P, Cs]
@group(0) @binding(3) var<storage, read> teacher: array<f32>;      // [B, P, Ct]
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;   // [B, P, Cs]
@group(0) @binding(5) var<storage, read_write> row_loss: array<f32>; // [B]

var<workgroup> sums: array<vec3<f32>, 64>;

fn map_at(b: u32, q: u32) -> vec2<f32> {
    var s = 0.0;
    for (var c = 0u; c < p.cs; c = c + 1u) {
        let v = student[(b * p.positions + q) * p.cs + c];
        s = s + v * v;
    }
    var t = 0.0;
    for (var c = 0u; c < p.ct; c = c + 1u) {
        let v = teacher[(b * p.positions + q) * p.ct + c];
        t = t + v * v;
    }
    return vec2<f32>(s, t);
}

@compute @workgroup_size(64, 1, 1)
fn attention_transfer(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wid.x;
    if (b >= p.rows) {
        return;
    }
    if (b >= step.valid) {
        for (var i = lid; i < p.positions * p.cs; i = i + 64u) {
            grad[b * p.positions * p.cs + i] = 0.0;
        }
        return;
    }
    // Σ q_S², Σ q_T², Σ q_S·q_T over the positions.
    var acc = vec3<f32>(0.0);
    for (var q = lid; q < p.positions; q = q + 64u) {
        let m = map_at(b, q);
        acc = acc + vec3<f32>(m.x * m.x, m.y * m.y, m.x * m.y);
    }
    sums[lid] = acc;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            sums[lid] = sums[lid] + sums[lid + s];
        }
        workgroupBarrier();
    }
    let total = sums[0];
    let ns = sqrt(total.x);
    let nt = sqrt(total.y);
    let has_s = select(0.0, 1.0, ns > 0.0);
    let has_t = select(0.0, 1.0, nt > 0.0);
    let inv_s = select(0.0, 1.0 / ns, ns > 0.0);
    let inv_t = select(0.0, 1.0 / nt, nt > 0.0);
    let cosine = total.z * inv_s * inv_t;
    let vg = p.beta * (has_s - cosine); // v_S·g
    let scale = 2.0 * inv_s / f32(step.valid);
    for (var q = lid; q < p.positions; q = q + 64u) {
        let m = map_at(b, q);
        let vs = m.x * inv_s;
        let g = p.beta * (vs - m.y * inv_t);
        let dq = (g - vs * vg) * scale;
        for (var c = 0u; c < p.cs; c = c + 1u) {
            let i = (b * p.positions + q) * p.cs + c;
            grad[i] = student[i] * dq;
        }
    }
    if (lid == 0u) {
        row_loss[b] = row_loss[b] + 0.5 * p.beta * (has_s + has_t - 2.0 * cosine);
    }
}

@compute @workgroup_size(64, 1, 1)
fn hint_loss(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wid.x;
    if (b >= p.rows) {
        return;
    }
    let n = p.positions * p.ct;
    let pad = b >= step.valid;
    let scale = 2.0 * p.beta / f32(n) / f32(max(step.valid, 1u));
    var acc = 0.0;
    for (var i = lid; i < n; i = i + 64u) {
        let d = student[b * n + i] - teacher[b * n + i];
        grad[b * n + i] = select(d * scale, 0.0, pad);
        acc = acc + d * d;
    }
    sums[lid] = vec3<f32>(acc, 0.0, 0.0);
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            sums[lid] = sums[lid] + sums[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u && !pad) {
        row_loss[b] = row_loss[b] + p.beta * sums[0].x / f32(n);
    }
}
