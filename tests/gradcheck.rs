//! Finite-difference checks of every backward in the CPU reference (which the GPU kernels are then
//! held to). Each check perturbs inputs of a scalar loss and compares (L(x+h) - L(x-h)) / 2h with
//! the analytic gradient, accumulating the loss in f64 to keep the numerical side honest.

use ndarray::{Array1, Array2};
use squeeze::nn::{Net, NetParams, Op, Shape};
use squeeze::reference::net::{logits_array, net_forward, net_loss_and_grads};
use squeeze::reference::ops::*;
use squeeze::rng::Rng;

fn rand2(rng: &mut Rng, r: usize, c: usize) -> Array2<f32> {
    Array2::from_shape_fn((r, c), |_| rng.uniform(-1.0, 1.0))
}

fn weighted_sum(y: &Array2<f32>, r: &Array2<f32>) -> f64 {
    y.iter().zip(r.iter()).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Central difference of `loss` w.r.t. element i of x.
fn numeric(x: &mut [f32], i: usize, h: f32, loss: &mut dyn FnMut(&[f32]) -> f64) -> f64 {
    let orig = x[i];
    x[i] = orig + h;
    let up = loss(x);
    x[i] = orig - h;
    let down = loss(x);
    x[i] = orig;
    (up - down) / (2.0 * h as f64)
}

fn assert_grad(what: &str, analytic: f32, numeric: f64, tol: f64) {
    let err = (analytic as f64 - numeric).abs();
    assert!(err <= tol * (1.0 + numeric.abs()), "{what}: analytic {analytic} vs numeric {numeric} (|diff| {err:e})");
}

#[test]
fn matmul_backward_products_match_finite_differences() {
    // L = sum(R ⊙ (A·B)); dA = R·Bᵀ, dB = Aᵀ·R: the two products the backward pass uses.
    let mut rng = Rng::new(11, 0);
    let (m, k, n) = (5, 7, 3);
    let (a, b, r) = (rand2(&mut rng, m, k), rand2(&mut rng, k, n), rand2(&mut rng, m, n));
    let da = matmul_reference(r.view(), b.view(), false, true);
    let db = matmul_reference(a.view(), r.view(), true, false);
    let mut av = a.as_slice().unwrap().to_vec();
    for i in 0..av.len() {
        let num = numeric(&mut av, i, 1e-2, &mut |x| {
            let a = Array2::from_shape_vec((m, k), x.to_vec()).unwrap();
            weighted_sum(&matmul_reference(a.view(), b.view(), false, false), &r)
        });
        assert_grad(&format!("dA[{i}]"), da.as_slice().unwrap()[i], num, 1e-3);
    }
    let mut bv = b.as_slice().unwrap().to_vec();
    for i in 0..bv.len() {
        let num = numeric(&mut bv, i, 1e-2, &mut |x| {
            let b = Array2::from_shape_vec((k, n), x.to_vec()).unwrap();
            weighted_sum(&matmul_reference(a.view(), b.view(), false, false), &r)
        });
        assert_grad(&format!("dB[{i}]"), db.as_slice().unwrap()[i], num, 1e-3);
    }
}

#[test]
fn bias_and_relu_backward_match_finite_differences() {
    let mut rng = Rng::new(12, 0);
    let (rows, cols) = (6, 4);
    let (y, r) = (rand2(&mut rng, rows, cols), rand2(&mut rng, rows, cols));
    // L = sum(R ⊙ relu(Y + b)); dL/db = colsum(relu_backward(R)).
    let bias = Array1::from_shape_fn(cols, |_| rng.uniform(-0.5, 0.5));
    let mut out = y.clone();
    bias_add_reference(&mut out, &bias);
    relu_forward_reference(&mut out);
    let mut g = r.clone();
    relu_backward_reference(&mut g, &out);
    let db = bias_grad_reference(&g);
    let mut bv = bias.to_vec();
    for i in 0..cols {
        let num = numeric(&mut bv, i, 1e-3, &mut |x| {
            let mut o = y.clone();
            bias_add_reference(&mut o, &Array1::from_vec(x.to_vec()));
            relu_forward_reference(&mut o);
            weighted_sum(&o, &r)
        });
        assert_grad(&format!("dbias[{i}]"), db[i], num, 1e-2);
    }
    // And w.r.t. Y itself, away from the kink at 0.
    let mut yv = y.as_slice().unwrap().to_vec();
    for i in 0..yv.len() {
        let pre = yv[i] + bias[i % cols];
        if pre.abs() < 1e-2 {
            continue;
        }
        let num = numeric(&mut yv, i, 1e-3, &mut |x| {
            let mut o = Array2::from_shape_vec((rows, cols), x.to_vec()).unwrap();
            bias_add_reference(&mut o, &bias);
            relu_forward_reference(&mut o);
            weighted_sum(&o, &r)
        });
        assert_grad(&format!("dY[{i}]"), g.as_slice().unwrap()[i], num, 1e-2);
    }
}

#[test]
fn softmax_xent_backward_matches_finite_differences() {
    let mut rng = Rng::new(13, 0);
    let (rows, classes, valid) = (7, 10, 5);
    let logits = Array2::from_shape_fn((rows, classes), |_| rng.uniform(-3.0, 3.0));
    let labels: Vec<u32> = (0..rows).map(|_| rng.below(classes as u32)).collect();
    let (d, _) = softmax_xent_reference(&logits, &labels, valid);
    let mut lv = logits.as_slice().unwrap().to_vec();
    for i in 0..lv.len() {
        let num = numeric(&mut lv, i, 1e-2, &mut |x| {
            let l = Array2::from_shape_vec((rows, classes), x.to_vec()).unwrap();
            let (_, loss) = softmax_xent_reference(&l, &labels, valid);
            loss.iter().map(|&v| v as f64).sum::<f64>() / valid as f64
        });
        assert_grad(&format!("dlogits[{i}]"), d.as_slice().unwrap()[i], num, 2e-3);
    }
    // Padding rows carry no gradient.
    assert!(d.slice(ndarray::s![valid.., ..]).iter().all(|&v| v == 0.0));
}

/// Every trainable tensor's gradient of a whole net (training mode: batch norm with batch
/// statistics) against central differences of the mean loss, on every 3rd element.
fn check_net(net: &Net, seed: u64, rows: usize, valid: usize) {
    let mut rng = Rng::new(seed, 0);
    let params = NetParams::init(net, seed);
    let x: Vec<f32> = (0..rows * net.input().size()).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let labels: Vec<u32> = (0..rows).map(|_| rng.below(net.classes as u32)).collect();
    let (_, grads, _) = net_loss_and_grads(net, &mut params.clone(), x.clone(), &labels, rows, valid);
    let loss_of = |p: &NetParams| {
        let tape = net_forward(net, &mut p.clone(), x.clone(), rows, valid, true);
        let (_, loss) = softmax_xent_reference(&logits_array(tape.logits(), rows, net.classes), &labels, valid);
        loss.iter().map(|&v| v as f64).sum::<f64>() / valid as f64
    };
    let mut checked = 0;
    for (j, info) in net.tensors().iter().enumerate() {
        if !info.trainable {
            if info.role != squeeze::nn::Role::Bias {
                assert!(grads.tensors[j].iter().all(|&g| g == 0.0), "running statistics get no gradient");
            }
            continue;
        }
        for i in (0..info.len()).step_by(3) {
            let h = 1e-3f32;
            let shifted = |delta: f32| {
                let mut p = params.clone();
                p.tensors[j][i] += delta;
                loss_of(&p)
            };
            let num = (shifted(h) - shifted(-h)) / (2.0 * h as f64);
            assert_grad(&format!("{} tensor {j} ({:?} of node {}) [{i}]", net.arch, info.role, info.node), grads.tensors[j][i], num, 2e-2);
            checked += 1;
        }
    }
    assert!(checked > 40, "{}: only {checked} checks", net.arch);
}

#[test]
fn whole_mlp_gradients_match_finite_differences() {
    check_net(&Net::mlp(Shape::new(3, 3, 1), &[8, 6], 4), 3, 5, 5);
}

#[test]
fn convnet_gradients_match_finite_differences() {
    // Stride 2 with padding, an overlapping max-pool, an average pool, dense after conv, and
    // padding rows (valid 4 of 5) that must not leak into any gradient.
    let mut net = Net::new("odd", Shape::new(7, 6, 1), 4);
    net.then(Op::Conv { outputs: 3, k: 3, stride: 2, pad: 1 }, false); // 4x3x3
    net.then(Op::MaxPool { k: 2, stride: 1 }, false); // 3x2x3
    net.then(Op::Conv { outputs: 4, k: 2, stride: 1, pad: 1 }, true); // 4x3x4
    net.then(Op::AvgPool { k: 2, stride: 2 }, false); // 2x1x4
    net.then(Op::Dense { outputs: 5 }, true);
    net.then(Op::Dense { outputs: 4 }, false);
    check_net(&net, 5, 5, 4);
}

#[test]
fn batchnorm_residual_gradients_match_finite_differences() {
    // Batch norm (batch statistics over the valid rows only), identity and projection shortcuts,
    // global average pooling.
    check_net(&Net::resnet_mini(Shape::new(6, 6, 1), &[2, 3], 4), 7, 6, 5);
    check_net(&Net::vgg_mini(Shape::new(4, 4, 1), &[2, 3], 4), 8, 6, 6);
}
