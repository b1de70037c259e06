//! Structured surgery (nn::surgery, hard neuron/filter pruning): removing units physically gives
//! the same outputs as masking them (their W columns, biases and batch-norm gamma/beta zeroed) in
//! every architecture: an MLP, LeNet-5 (conv → pool → conv → pool → dense), vgg-mini (batch norm)
//! and resnet-mini, where a residual add ties channels across layers. CPU reference, and the
//! shrunk model on the GPU; natively and in the browser.

mod common;
use common::{assert_close, fresh_rng, random_vec, trained_like};
use squeeze::nn::surgery::{channel_group, remove_channels};
use squeeze::nn::{Net, NetParams, Role, Shape};
use squeeze::reference::net::net_forward;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// `params` with the channels of `node`'s group outside `keep` zeroed where they are produced.
fn masked(net: &Net, params: &NetParams, node: usize, keep: &[usize]) -> NetParams {
    let group = channel_group(net, node).unwrap();
    let mut p = params.clone();
    for (t, info) in p.tensors.iter_mut().zip(net.tensors()) {
        if !group.nodes.contains(&info.node) || matches!(info.role, Role::RunningMean | Role::RunningVar) {
            continue;
        }
        for (i, v) in t.iter_mut().enumerate() {
            if !keep.contains(&(i % info.cols)) {
                *v = 0.0;
            }
        }
    }
    p
}

async fn surgery_case(ctx: squeeze::gpu::GpuContext) {
    let (mut rng, seed) = fresh_rng("surgery");
    let small_input = Shape::new(12, 10, 1);
    let nets = [
        Net::mlp(small_input, &[11, 7], 5),
        Net::lenet5(Shape::new(20, 18, 1), 10),
        Net::vgg_mini(small_input, &[4, 6], 10),
        Net::resnet_mini(small_input, &[3, 5, 7], 10),
    ];
    // The residual groups of resnet-mini: the stem and block 1's second conv (identity shortcut),
    // then each later block's second conv and its projection.
    let resnet = &nets[3];
    assert_eq!(channel_group(resnet, 1).unwrap().producers, vec![1, 5]);
    assert_eq!(channel_group(resnet, 1).unwrap().readers, vec![3, 8, 12]);
    assert_eq!(channel_group(resnet, 12).unwrap().producers, vec![10, 12]);
    assert_eq!(channel_group(resnet, 3).unwrap().producers, vec![3]);
    assert!(channel_group(resnet, resnet.last()).is_err(), "the classifier's outputs are the classes");

    for net in &nets {
        let params = trained_like(net, &mut rng, seed);
        let rows = 5;
        let x = random_vec(&mut rng, rows * net.input().size(), -1.0, 1.0);
        let layers: Vec<usize> = net.weight_tensors().iter().map(|&j| net.tensors()[j].node).collect();
        for &node in &layers[..layers.len() - 1] {
            let c = net.nodes[node].shape.c;
            // A random subset of at least one and fewer than all channels.
            let mut keep: Vec<usize> = (0..c).filter(|_| rng.next_f32() < 0.6).collect();
            if keep.is_empty() || keep.len() == c {
                keep = vec![c / 2];
            }
            let (small, shrunk) = remove_channels(net, &params, node, &keep).unwrap();
            let what = format!("{} node {node} keeping {keep:?}", net.arch);
            assert_eq!(small.nodes[node].shape.c, keep.len(), "{what}");
            assert_eq!(shrunk.tensors.iter().map(Vec::len).collect::<Vec<_>>(), small.tensors().iter().map(|t| t.len()).collect::<Vec<_>>(), "{what}: tensor sizes");
            assert!(small.parameter_count() < net.parameter_count(), "{what}");
            let want = net_forward(net, &mut masked(net, &params, node, &keep), x.clone(), rows, rows, false).acts.pop().unwrap();
            let got = net_forward(&small, &mut shrunk.clone(), x.clone(), rows, rows, false).acts.pop().unwrap();
            assert_close(&format!("{what}: shrunk vs masked (CPU)"), &got, &want, 1e-4, 1e-5, seed);
        }
    }

    // Bad requests are errors, not panics: unsorted, out of range, empty.
    let p = NetParams::init(resnet, 1);
    for keep in [&[2usize, 1][..], &[0, 9], &[]] {
        assert!(remove_channels(resnet, &p, 1, keep).is_err(), "keep {keep:?}");
    }

    // resnet-mini with its stem group halved, evaluated by the GPU backend.
    let params = trained_like(resnet, &mut rng, seed);
    let keep = [0usize, 2];
    let (small, shrunk) = remove_channels(resnet, &params, 1, &keep).unwrap();
    let rows = 6;
    let images: Vec<u8> = (0..rows * small_input.size()).map(|_| rng.below(256) as u8).collect();
    let ds = squeeze::data::Dataset { images, labels: vec![0; rows], n: rows, rows: small_input.h, cols: small_input.w };
    let data = squeeze::data::Splits::new("surgery", ds.clone(), ds.clone()).unwrap();
    let norm = data.train.normalization();
    let (xs, _) = ds.gather(&(0..rows as u32).collect::<Vec<_>>(), 0, rows, norm);
    let want = net_forward(resnet, &mut masked(resnet, &params, 1, &keep), xs, rows, rows, false).acts.pop().unwrap();
    let opt = squeeze::nn::OptimizerConfig { kind: squeeze::nn::OptimizerKind::Sgd, lr: 0.0, momentum: 0.0, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, l1: 0.0 };
    let mut gpu = squeeze::gpu::GpuTrainer::new(&ctx, &small, &shrunk, opt, &data, norm, 4);
    gpu.evaluate().await.unwrap();
    let got = gpu.last_eval_logits().await.unwrap();
    assert_close("resnet-mini shrunk on the GPU vs masked (CPU)", &got[..want.len()], &want, 1e-3, 1e-3, seed);
}
gpu_test!(removing_units_equals_masking_them_in_every_architecture, surgery_case);
