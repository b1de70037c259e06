// Accuracy counting and metric accumulation on the GPU. Nothing is read back here: the host copies
// the accumulator out only when the UI or the runner asks for a number.
// Legend: B = batch rows (padded), V = valid rows this step, C = classes.
// CPU twins: reference::ops::{argmax_correct,metrics_accumulate}_reference.

@group(0) @binding(0) var<uniform> p: HeadParams;
@group(0) @binding(1) var<uniform> step: StepParams;
@group(0) @binding(2) var<storage, read> logits: array<f32>;  // [B, C]
@group(0) @binding(3) var<storage, read> labels: array<u32>;  // [B]
@group(0) @binding(4) var<storage, read_write> correct: array<u32>; // [B]

// argmax_correct: correct_b = 1 if argmax_c logits[b, c] == label_b (first maximum wins), else 0.
@compute @workgroup_size(64, 1, 1)
fn argmax_correct(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= p.rows) {
        return;
    }
    if (b >= step.valid) {
        correct[b] = 0u;
        return;
    }
    let base = b * p.classes;
    var best = 0u;
    var best_v = logits[base];
    for (var c = 1u; c < p.classes; c = c + 1u) {
        let v = logits[base + c];
        if (v > best_v) {
            best_v = v;
            best = c;
        }
    }
    correct[b] = select(0u, 1u, best == labels[b]);
}
