// Classifier head: fused softmax + cross-entropy (forward and backward in one pass), argmax-accuracy
// counting, and the on-GPU accumulation of loss and accuracy (read back only when asked for).
// Legend: B = batch rows (padded), V = valid rows this step (rows >= V are padding), C = classes.
// CPU twins: reference::ops::{softmax_xent,argmax_correct,metrics_accumulate}_reference.

@group(0) @binding(0) var<uniform> p: HeadParams;
@group(0) @binding(1) var<uniform> step: StepParams;
@group(0) @binding(2) var<storage, read> logits: array<f32>; // [B, C]
@group(0) @binding(3) var<storage, read> labels: array<u32>; // [B]
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>; // [B, C]
@group(0) @binding(5) var<storage, read_write> row_loss: array<f32>; // [B]

// softmax_xent: loss_b = -log softmax(logits_b)[label_b];  dlogits_b = (softmax(logits_b) - onehot(label_b)) / V.
// The gradient is of the mean loss over the V valid rows; padding rows get zero loss and gradient.
@compute @workgroup_size(64, 1, 1)
fn softmax_xent(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= p.rows) {
        return;
    }
    let base = b * p.classes;
    if (b >= step.valid) {
        for (var c = 0u; c < p.classes; c = c + 1u) {
            dlogits[base + c] = 0.0;
        }
        row_loss[b] = 0.0;
        return;
    }
    var mx = logits[base];
    for (var c = 1u; c < p.classes; c = c + 1u) {
        mx = max(mx, logits[base + c]);
    }
    var sum = 0.0;
    for (var c = 0u; c < p.classes; c = c + 1u) {
        sum = sum + exp(logits[base + c] - mx);
    }
    let log_sum = log(sum);
    let label = labels[b];
    let scale = 1.0 / f32(step.valid);
    for (var c = 0u; c < p.classes; c = c + 1u) {
        let prob = exp(logits[base + c] - mx - log_sum);
        let onehot = select(0.0, 1.0, c == label);
        dlogits[base + c] = (prob - onehot) * scale;
    }
    row_loss[b] = log_sum + mx - logits[base + label];
}
