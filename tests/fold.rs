//! Batch-norm folding (NetParams::fold_batch_norm): the folded net, with no batch-norm nodes left,
//! gives the same inference outputs as the original with its running statistics, for vgg-mini
//! and resnet-mini (where the projection shortcut's norm folds too), on the CPU reference and
//! on the GPU.

mod common;
use common::{assert_close, fresh_rng, random_vec, trained_like};
use squeeze::nn::{Net, Op, Shape};
use squeeze::reference::net::net_forward;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

async fn fold_case(ctx: squeeze::gpu::GpuContext) {
    let (mut rng, seed) = fresh_rng("fold");
    let input = Shape::new(12, 10, 1);
    for net in [Net::vgg_mini(input, &[4, 6], 10), Net::resnet_mini(input, &[3, 5, 7], 10)] {
        let mut params = trained_like(&net, &mut rng, seed);
        let (folded_net, folded) = params.fold_batch_norm(&net);
        assert!(folded_net.nodes.iter().all(|n| n.op != Op::BatchNorm), "{}: a batch norm was left", net.arch);
        assert!(folded_net.parameter_count() < net.parameter_count());
        assert_eq!(folded.tensors.len(), folded_net.tensors().len());
        let rows = 7;
        let x = random_vec(&mut rng, rows * input.size(), -1.0, 1.0);
        let want = net_forward(&net, &mut params, x.clone(), rows, rows, false).acts.pop().unwrap();
        let got = net_forward(&folded_net, &mut folded.clone(), x.clone(), rows, rows, false).acts.pop().unwrap();
        assert_close(&format!("{} folded vs unfolded (CPU)", net.arch), &got, &want, 1e-4, 1e-4, seed);

        // The same folded model evaluated by the GPU backend.
        let images: Vec<u8> = (0..rows * input.size()).map(|_| rng.below(256) as u8).collect();
        let ds = squeeze::data::Dataset { images, labels: vec![0; rows], n: rows, rows: input.h, cols: input.w };
        let data = squeeze::data::Splits::new("fold", ds.clone(), ds.clone()).unwrap();
        let norm = data.train.normalization();
        let (xs, _) = ds.gather(&(0..rows as u32).collect::<Vec<_>>(), 0, rows, norm);
        let want = net_forward(&net, &mut params, xs, rows, rows, false).acts.pop().unwrap();
        let opt = squeeze::nn::OptimizerConfig { kind: squeeze::nn::OptimizerKind::Sgd, lr: 0.0, momentum: 0.0, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, l1: 0.0 };
        let mut gpu = squeeze::gpu::GpuTrainer::new(&ctx, &folded_net, &folded, opt, &data, norm, 4);
        gpu.evaluate().await.unwrap();
        let got = gpu.last_eval_logits().await.unwrap();
        assert_close(&format!("{} folded on the GPU vs unfolded (CPU)", net.arch), &got[..want.len()], &want, 1e-3, 1e-3, seed);
    }
}
gpu_test!(folded_batch_norm_gives_the_same_outputs, fold_case);
