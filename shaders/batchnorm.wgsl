// Batch norm over an NHWC activation seen as X [R, C] (R = B·H·W rows), forward and backward side
// by side. Only the first V·H·W rows are real samples (V from the step uniform); statistics and
// gradients ignore the padding rows.
//   train:  mean, var over the valid rows (biased var); running = (1 − m)·running + m·batch
//           (variance unbiased); y = gamma·(x − mean)/sqrt(var + eps) + beta
//   eval:   the same y with the running statistics
//   backward: dbeta = Σ dy;  dgamma = Σ dy·x̂;  dx = gamma/(N·σ)·(N·dy − dbeta − x̂·dgamma), 0 past N
// The reductions run one 64-wide workgroup per channel (a tree in workgroup memory).
// CPU twins: reference::ops::{bn_stats,bn_forward,bn_backward}_reference.

struct BnParams {
    rows: u32,            // R
    c: u32,               // C
    per_sample: u32,      // H·W rows per sample
    use_batch_stats: u32, // bn_forward: 1 in training (stats), 0 in inference (running)
    momentum: f32,
    eps: f32,
    accumulate: u32,      // bn_backward_input: 1 adds into dX
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: BnParams;
@group(0) @binding(1) var<uniform> step: StepParams;

var<workgroup> part: array<f32, 64>;
var<workgroup> part2: array<f32, 64>;

// Tree-sums part (and part2) across the workgroup; the totals end in element 0.
fn reduce(lid: u32) {
    for (var s = 32u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if (lid < s) {
            part[lid] = part[lid] + part[lid + s];
            part2[lid] = part2[lid] + part2[lid + s];
        }
    }
    workgroupBarrier();
}

fn valid_rows() -> u32 {
    return min(step.valid * p.per_sample, p.rows);
}

// bn_stats: stats[ch] = mean, stats[C + ch] = biased variance; running statistics updated.
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn bn_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let ch = wg.x;
    let lid = lid3.x;
    let n = valid_rows();
    var s = 0.0;
    for (var r = lid; r < n; r = r + 64u) {
        s = s + x[r * p.c + ch];
    }
    part[lid] = s;
    part2[lid] = 0.0;
    reduce(lid);
    let mean = part[0] / f32(n);
    workgroupBarrier();
    var q = 0.0;
    for (var r = lid; r < n; r = r + 64u) {
        let d = x[r * p.c + ch] - mean;
        q = q + d * d;
    }
    part[lid] = q;
    reduce(lid);
    if (lid == 0u) {
        let v = part[0] / f32(n);
        stats[ch] = mean;
        stats[p.c + ch] = v;
        let unbiased = select(v, v * f32(n) / f32(n - 1u), n > 1u);
        running_mean[ch] = (1.0 - p.momentum) * running_mean[ch] + p.momentum * mean;
        running_var[ch] = (1.0 - p.momentum) * running_var[ch] + p.momentum * unbiased;
    }
}

// bn_forward: y = gamma·(x − mean)/sqrt(var + eps) + beta over all R rows.
@group(0) @binding(3) var<storage, read> stats_in: array<f32>;
@group(0) @binding(4) var<storage, read> run_mean: array<f32>;
@group(0) @binding(5) var<storage, read> run_var: array<f32>;
@group(0) @binding(6) var<storage, read> gamma: array<f32>;
@group(0) @binding(7) var<storage, read> beta: array<f32>;
@group(0) @binding(8) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn bn_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.rows * p.c) {
        return;
    }
    let ch = i % p.c;
    var mean = run_mean[ch];
    var v = run_var[ch];
    if (p.use_batch_stats != 0u) {
        mean = stats_in[ch];
        v = stats_in[p.c + ch];
    }
    y[i] = gamma[ch] * (x[i] - mean) / sqrt(v + p.eps) + beta[ch];
}

// bn_backward_sums: dgamma[ch] = Σ dy·x̂, dbeta[ch] = Σ dy over the valid rows.
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbeta: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn bn_backward_sums(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let ch = wg.x;
    let lid = lid3.x;
    let n = valid_rows();
    let mean = stats_in[ch];
    let inv = 1.0 / sqrt(stats_in[p.c + ch] + p.eps);
    var sb = 0.0;
    var sg = 0.0;
    for (var r = lid; r < n; r = r + 64u) {
        let i = r * p.c + ch;
        sb = sb + dy[i];
        sg = sg + dy[i] * (x[i] - mean) * inv;
    }
    part[lid] = sg;
    part2[lid] = sb;
    reduce(lid);
    if (lid == 0u) {
        dgamma[ch] = part[0];
        dbeta[ch] = part2[0];
    }
}

// bn_backward_input: dX (+)= gamma/(N·σ)·(N·dy − dbeta − x̂·dgamma) on valid rows, 0 on padding.
@group(0) @binding(5) var<storage, read> dgamma_in: array<f32>;
@group(0) @binding(6) var<storage, read> dbeta_in: array<f32>;
@group(0) @binding(7) var<storage, read> gamma_in: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn bn_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.rows * p.c) {
        return;
    }
    let ch = i % p.c;
    let n = valid_rows();
    var v = 0.0;
    if (i / p.c < n) {
        let inv = 1.0 / sqrt(stats_in[p.c + ch] + p.eps);
        let xhat = (x[i] - stats_in[ch]) * inv;
        let nf = f32(n);
        v = gamma_in[ch] * inv / nf * (nf * dy[i] - dbeta_in[ch] - xhat * dgamma_in[ch]);
    }
    if (p.accumulate != 0u) {
        v = v + dx[i];
    }
    dx[i] = v;
}
