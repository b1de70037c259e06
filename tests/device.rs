//! A run destroys the GPU buffers it made when it ends (GpuContext::begin_run/end_run). GPU
//! errors never panic and a lost device ends the run with a message (GpuContext::check): an
//! error no scope caught (a buffer over the device's limit) becomes an `Error` at the next
//! read-back and is then forgotten; one raised mid-run stops that run, and the next run on the
//! same device works; a device destroyed mid-run stops it with "the GPU device was lost", refuses
//! further runs before any event, and a new context runs. Natively and in the browser.

mod common;
use common::{run_error, synthetic_sized};
use squeeze::data::Splits;
use squeeze::experiment::{run, Backend, Control, RunOptions};
use squeeze::gpu::GpuContext;
use squeeze::recipe::Recipe;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// A buffer one word over the device's largest: a validation error outside any scope.
fn bad_buffer(ctx: &GpuContext) -> wgpu::Buffer {
    let size = ctx.device.limits().max_buffer_size.saturating_add(4).min(1 << 52);
    ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("over the limit"), size, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false })
}

async fn faults_case(_shared: GpuContext) {
    // Its own device: this test destroys it.
    let ctx = GpuContext::new().await.unwrap();
    let mut rng = squeeze::rng::Rng::new(5, 77);
    let data = Splits::new("synthetic", synthetic_sized(&mut rng, 256, 8, 8), synthetic_sized(&mut rng, 64, 8, 8)).unwrap();
    let recipe = Recipe::from_json(r#"{"dataset": "mnist", "model": {"arch": "mlp", "hidden": [16]}, "train": {"epochs": 2, "batch": 16, "lr": 0.05}}"#).unwrap();
    let opts = RunOptions { progress_every: 4, ..Default::default() };
    let gpu = Backend::Gpu(ctx.clone());

    // A run's buffers are destroyed when it ends (in the browser a dropped buffer waits for the
    // garbage collector): what a run tracks is freed, what was made outside it survives it.
    let outside = ctx.storage(&[3.0f32, 4.0], "made outside any run");
    ctx.begin_run();
    let inside = ctx.storage(&[5.0f32; 3], "made inside");
    let _u = ctx.uniform(&[1u32; 4], "uniform inside");
    assert_eq!(ctx.end_run(), 2);
    let mut freed = false;
    for _ in 0..20 {
        if ctx.read::<f32>(&inside).await.is_err() {
            freed = true;
            break;
        }
    }
    assert!(freed, "a destroyed buffer reads back as an error");
    assert!(run(&recipe, &data, &gpu, &opts, &mut |_| Control::Continue).await.is_ok());
    assert_eq!(ctx.end_run(), 0, "the run released what it made");
    assert_eq!(ctx.read::<f32>(&outside).await.unwrap(), [3.0, 4.0]);

    // An uncaptured error: an Error at the next read-back (the browser reports it from its event
    // loop, so allow a few), never a panic; reported once, then forgotten.
    let _bad = bad_buffer(&ctx);
    let good = ctx.storage(&[1.0f32, 2.0], "good");
    let mut reported = None;
    for _ in 0..20 {
        if let Err(e) = ctx.read::<f32>(&good).await {
            reported = Some(e.to_string());
            break;
        }
    }
    let reported = reported.expect("the error reached a read-back");
    assert!(reported.contains("the GPU reported an error"), "{reported}");
    assert!(ctx.check().is_ok() && ctx.read::<f32>(&good).await.unwrap() == [1.0, 2.0], "forgotten once reported");

    // Raised mid-run (from the progress callback): that run stops with it...
    let (e, events) = run_error(&recipe, &data, &gpu, &opts, || drop(bad_buffer(&ctx))).await;
    assert!(events > 0 && e.contains("the GPU reported an error"), "{e}");
    // ...and the next run on the same device finishes.
    let ok = run(&recipe, &data, &gpu, &opts, &mut |_| Control::Continue).await.unwrap();
    assert!(ok.report.stages[0].test_accuracy.is_finite());

    // The device destroyed mid-run: the run stops saying so.
    let (e, events) = run_error(&recipe, &data, &gpu, &opts, || ctx.device.destroy()).await;
    assert!(events > 0 && e.contains("the GPU device was lost"), "{e}");
    assert!(ctx.is_lost());
    // A lost device refuses the next run before any event; a new context runs.
    let (e, events) = run_error(&recipe, &data, &gpu, &opts, || ()).await;
    assert!(e.contains("the GPU device was lost") && events == 0, "{e} after {events} events");
    let fresh = Backend::Gpu(GpuContext::new().await.unwrap());
    assert!(run(&recipe, &data, &fresh, &opts, &mut |_| Control::Continue).await.is_ok());
}
gpu_test!(gpu_errors_and_device_loss_end_the_run_with_a_message, faults_case);
