// Optimizers, one invocation per parameter element: SGD with momentum, Adam; both with optional L2
// (weight decay) and L1 regularisation added to the gradient.
// The host folds Adam's bias correction into lr_t each step, so the kernel needs no step counter.
// CPU twins: reference::ops::{sgd,adam}_reference.

// A tensor's constants (written when its update is built). Its lr and eps are not read here: the
// step's come from `s`, one uniform every tensor's update shares, written once per step.
struct OptimParams {
    n: u32,            // number of elements
    lr: f32,           // (unused here: s.lr)
    momentum: f32,     // SGD: mu. Adam: beta1
    weight_decay: f32, // L2 coefficient added to the gradient
    beta2: f32,        // Adam only
    eps: f32,          // (unused here: s.eps)
    l1: f32,           // L1 coefficient: adds l1 * sign(w) to the gradient
}

// The step's numbers: SGD's learning rate; Adam's lr * sqrt(1 - beta2^t) / (1 - beta1^t) and
// eps * sqrt(1 - beta2^t) (the bias correction folded in by the host).
struct OptimStep {
    lr: f32,
    eps: f32,
    _pad0: f32,
    _pad1: f32,
}

@group(0) @binding(0) var<uniform> p: OptimParams;
@group(0) @binding(5) var<uniform> s: OptimStep;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>; // SGD: velocity; Adam: first moment
@group(0) @binding(4) var<storage, read_write> v: array<f32>; // Adam: second moment (unused by SGD)

// sgd: v = mu * v + (g + wd * w + l1 * sign(w));  w = w - lr * v
@compute @workgroup_size(256, 1, 1)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.n) {
        return;
    }
    let grad = g[i] + p.weight_decay * w[i] + p.l1 * sign(w[i]);
    let vel = p.momentum * m[i] + grad;
    m[i] = vel;
    w[i] = w[i] - s.lr * vel;
}

// adam: m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  w = w - lr_t * m / (sqrt(v) + eps_t)
@compute @workgroup_size(256, 1, 1)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.n) {
        return;
    }
    let grad = g[i] + p.weight_decay * w[i] + p.l1 * sign(w[i]);
    let m1 = p.momentum * m[i] + (1.0 - p.momentum) * grad;
    let v1 = p.beta2 * v[i] + (1.0 - p.beta2) * grad * grad;
    m[i] = m1;
    v[i] = v1;
    w[i] = w[i] - s.lr * m1 / (sqrt(v1) + s.eps);
}
