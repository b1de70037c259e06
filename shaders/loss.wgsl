// Classifier heads, forward and backward in one pass per row: fused softmax + cross-entropy, and the
// distillation head (the loss slot with a teacher).
// Legend: B = batch rows (padded), V = valid rows this step (rows >= V are padding), C = classes.
// CPU twins: reference::ops::{softmax_xent,distill_loss}_reference.

@group(0) @binding(0) var<uniform> p: HeadParams;
@group(0) @binding(1) var<uniform> step: StepParams;
@group(0) @binding(2) var<storage, read> logits: array<f32>; // [B, C]
@group(0) @binding(3) var<storage, read> labels: array<u32>; // [B]
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>; // [B, C]
@group(0) @binding(5) var<storage, read_write> row_loss: array<f32>; // [B]

// Rows past the valid ones get zero loss and gradient; true for them.
fn padding_row(b: u32) -> bool {
    if (b < step.valid) {
        return false;
    }
    for (var c = 0u; c < p.classes; c = c + 1u) {
        dlogits[b * p.classes + c] = 0.0;
    }
    row_loss[b] = 0.0;
    return true;
}

// softmax_xent: loss_b = -log softmax(logits_b)[label_b];  dlogits_b = (softmax(logits_b) - onehot(label_b)) / V.
// The gradient is of the mean loss over the V valid rows; padding rows get zero loss and gradient.
@compute @workgroup_size(64, 1, 1)
fn softmax_xent(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= p.rows) {
        return;
    }
    if (padding_row(b)) {
        return;
    }
    let base = b * p.classes;
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

// distill_loss: the student's loss against a frozen teacher's logits t and the labels, weighed by
// `w` (nn::loss::DistillParams), temperature T:
//   loss_b = kl·T²·KL(softmax(t_b/T) ‖ softmax(z_b/T)) + ce·CE(y_b, z_b) + mse·(1/C)·Σ_c (z_bc − t_bc)²
//   dz_b   = (kl·T·(softmax(z_b/T) − softmax(t_b/T)) + ce·(softmax(z_b) − onehot(y_b)) + mse·(2/C)·(z_b − t_b)) / V
struct DistillParams {
    temperature: f32,
    kl: f32,
    ce: f32,
    mse: f32,
}

@group(0) @binding(6) var<storage, read> teacher: array<f32>; // [B, C]
@group(0) @binding(7) var<uniform> w: DistillParams;

@compute @workgroup_size(64, 1, 1)
fn distill_loss(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= p.rows || padding_row(b)) {
        return;
    }
    let base = b * p.classes;
    let t = w.temperature;
    var mz = logits[base];
    var mt = teacher[base];
    for (var c = 1u; c < p.classes; c = c + 1u) {
        mz = max(mz, logits[base + c]);
        mt = max(mt, teacher[base + c]);
    }
    var sz = 0.0;  // Σ exp(z − max z)
    var szt = 0.0; // Σ exp((z − max z)/T)
    var stt = 0.0; // Σ exp((t − max t)/T)
    for (var c = 0u; c < p.classes; c = c + 1u) {
        sz = sz + exp(logits[base + c] - mz);
        szt = szt + exp((logits[base + c] - mz) / t);
        stt = stt + exp((teacher[base + c] - mt) / t);
    }
    let lz = log(sz);
    let lzt = log(szt);
    let ltt = log(stt);
    let label = labels[b];
    let scale = 1.0 / f32(step.valid);
    var kl = 0.0;
    var sq = 0.0;
    for (var c = 0u; c < p.classes; c = c + 1u) {
        let z = logits[base + c];
        let tc = teacher[base + c];
        let log_pt = (tc - mt) / t - ltt;
        let log_qt = (z - mz) / t - lzt;
        let pt = exp(log_pt);
        if (pt > 0.0) {
            kl = kl + pt * (log_pt - log_qt);
        }
        sq = sq + (z - tc) * (z - tc);
        let onehot = select(0.0, 1.0, c == label);
        let d = w.kl * t * (exp(log_qt) - pt) + w.ce * (exp(z - mz - lz) - onehot) + w.mse * 2.0 / f32(p.classes) * (z - tc);
        dlogits[base + c] = d * scale;
    }
    row_loss[b] = w.kl * t * t * kl + w.ce * (lz + mz - logits[base + label]) + w.mse * sq / f32(p.classes);
}
