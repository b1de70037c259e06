// metrics_accumulate: acc += [sum_b row_loss[b], sum_b correct[b], V] over the V valid rows.
// One workgroup reduces the batch in shared memory, so there is no float atomic and the order of
// additions is fixed (deterministic). acc is [loss_sum, correct, seen, unused].
// CPU twin: reference::ops::metrics_accumulate_reference.

@group(0) @binding(0) var<uniform> step: StepParams;
@group(0) @binding(1) var<storage, read> row_loss: array<f32>; // [B]
@group(0) @binding(2) var<storage, read> correct: array<u32>;  // [B]
@group(0) @binding(3) var<storage, read_write> acc: array<f32>; // [4]

const WG: u32 = 64u;
var<workgroup> loss_part: array<f32, 64>;
var<workgroup> correct_part: array<u32, 64>;

@compute @workgroup_size(64, 1, 1)
fn metrics_accumulate(@builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    var l = 0.0;
    var c = 0u;
    for (var b = t; b < step.valid; b = b + WG) {
        l = l + row_loss[b];
        c = c + correct[b];
    }
    loss_part[t] = l;
    correct_part[t] = c;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (t < s) {
            loss_part[t] = loss_part[t] + loss_part[t + s];
            correct_part[t] = correct_part[t] + correct_part[t + s];
        }
        workgroupBarrier();
    }
    if (t == 0u) {
        acc[0] = acc[0] + loss_part[0];
        acc[1] = acc[1] + f32(correct_part[0]);
        acc[2] = acc[2] + f32(step.valid);
    }
}
