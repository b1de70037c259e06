// taylor_accumulate: score[i] += |w[i] * g[i]|, the first-order Taylor estimate of the loss change
// from removing w[i] (Molchanov et al. 2017), summed over the batches of a scoring pass.
// CPU twin: reference::ops::taylor_accumulate_reference.

struct MaskParams {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: MaskParams;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> score: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn taylor_accumulate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u; // 2D grid past 65535 groups
    if (i >= p.n) {
        return;
    }
    score[i] = score[i] + abs(w[i] * g[i]);
}
