//! GPU device acquisition (WebGPU in the browser, Vulkan natively), buffer helpers and read-back.
//! A `GpuContext` is cheap to clone (wgpu handles are reference-counted) and holds the pipeline
//! cache, so every launcher and test takes one and nothing builds a pipeline twice.

use super::kernels::{Int8Kernels, Kernels, MatmulParams};
use crate::error::{Error, Result};
use bytemuck::Pod;
use wgpu::util::DeviceExt;

/// What the adapter says about itself, for the UI and the README's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    /// True for CPU-emulated adapters (SwiftShader, lavapipe/llvmpipe).
    pub software: bool,
    /// The matmul kernels timed here and the one used, e.g. "registers 9.1 GFLOP/s, tiled 12.4
    /// GFLOP/s: tiled" (empty until `calibrate_matmul`).
    pub matmul: String,
    /// Split-K timed against one pass over K and the one used, e.g. "split in 18 3.2 GFLOP/s,
    /// unsplit 0.4 GFLOP/s: split" (empty until `calibrate_matmul`).
    pub split_k: String,
}

/// Which WGSL kernel computes matrix products (shaders/matmul.wgsl): `Registers` reads its
/// operands straight from memory into 4x4 register blocks (fastest on software adapters),
/// `Tiled` stages them through workgroup memory (fewer global loads, for real GPUs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatmulKernel {
    Registers,
    Tiled,
}

impl MatmulKernel {
    pub fn name(self) -> &'static str {
        match self {
            MatmulKernel::Registers => "registers",
            MatmulKernel::Tiled => "tiled",
        }
    }
}

#[derive(Clone)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub kernels: Kernels,
    /// How convolutions run here: chosen per adapter from measurements, or set by the caller.
    pub conv: super::net::ConvMethod,
    /// Which kernel computes matrix products: the faster here (`calibrate_matmul`), or the caller's.
    pub matmul: MatmulKernel,
    /// Whether long-K products with few output tiles split K over workgroup layers
    /// (`MatmulParams::split_k`): where it measured faster here (`calibrate_matmul`).
    pub split_k: bool,
    /// The WGSL language extensions this adapter's shader compiler has.
    pub wgsl: wgpu::WgslLanguageFeatures,
    /// The integer inference kernels, compiled on first use (`int8_kernels`).
    int8: std::sync::Arc<std::sync::OnceLock<Int8Kernels>>,
    /// What went wrong on the device outside an error scope (`check`).
    faults: Faults,
}

thread_local! {
    /// The buffers made on this thread since `begin_run`, for `end_run` to destroy (`None`: no
    /// run is tracking). Per thread, so that runs on other threads sharing a context (parallel
    /// tests) keep theirs.
    static RUN_BUFFERS: std::cell::RefCell<Option<Vec<wgpu::Buffer>>> = const { std::cell::RefCell::new(None) };
}

/// Device errors nobody scoped, and the device's loss, recorded by the handlers `from_device`
/// installs (wgpu's default handler panics natively; in the browser the error would only be a
/// console line while every later command buffer is silently invalid). The next read-back or
/// `check` turns them into an `Error`.
#[derive(Clone, Default)]
struct Faults(std::sync::Arc<std::sync::Mutex<FaultState>>);

#[derive(Default)]
struct FaultState {
    /// The first uncaptured error since the last `check`.
    error: Option<String>,
    /// Why the device was lost; it stays lost.
    lost: Option<String>,
}

impl Faults {
    fn state(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl GpuContext {
    /// Acquires an adapter and device: the browser's WebGPU on wasm, Vulkan (or another primary
    /// backend) natively. No adapter is an `Error::NoAdapter` the caller can fall back from.
    pub async fn new() -> Result<GpuContext> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = if cfg!(target_arch = "wasm32") { wgpu::Backends::BROWSER_WEBGPU } else { wgpu::Backends::PRIMARY };
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::NoAdapter(format!("{e} (in a browser: is WebGPU enabled? natively: is a Vulkan driver such as mesa-vulkan-drivers installed?)")))?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("squeeze"),
                required_features: wgpu::Features::empty(),
                // Ask for what the adapter offers: datasets live on the GPU as one storage buffer.
                required_limits: limits,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("request_device failed: {e}")))?;
        let name_lc = info.name.to_lowercase();
        let adapter = AdapterSummary {
            software: info.device_type == wgpu::DeviceType::Cpu
                || name_lc.contains("swiftshader")
                || name_lc.contains("llvmpipe"),
            name: if info.name.is_empty() { "(unnamed adapter)".into() } else { info.name.clone() },
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
            matmul: String::new(),
            split_k: String::new(),
        };
        let mut ctx = Self::from_device(device, queue, adapter, instance.wgsl_language_features()).await?;
        ctx.calibrate_matmul().await?;
        Ok(ctx)
    }

    /// Times both matmul kernels on this device (`time_matmuls`) and uses the faster from now on;
    /// then, with it, split-K against one pass over K (`time_split_k`), and splits only if that
    /// was faster. Both comparisons' figures go into `adapter.matmul` and `adapter.split_k`.
    pub async fn calibrate_matmul(&mut self) -> Result<()> {
        let speeds = self.time_matmuls().await?;
        let (best, _) = *speeds.iter().max_by(|a, b| a.1.total_cmp(&b.1)).expect("two kernels");
        self.matmul = best;
        let figures: Vec<String> = speeds.iter().map(|(k, g)| format!("{} {g:.1} GFLOP/s", k.name())).collect();
        self.adapter.matmul = format!("{}: {}", figures.join(", "), best.name());
        let (layers, split, unsplit) = self.time_split_k().await?;
        self.split_k = split > unsplit;
        self.adapter.split_k = format!("split in {layers} {split:.1} GFLOP/s, unsplit {unsplit:.1} GFLOP/s: {}", if self.split_k { "split" } else { "unsplit" });
        Ok(())
    }

    /// How many K splits this context gives product `p`: `p.split_k()` where splitting measured
    /// faster here, else 1.
    pub fn split_k(&self, p: &MatmulParams) -> u32 {
        if self.split_k {
            p.split_k()
        } else {
            1
        }
    }

    /// Wraps an existing device (tests and embedders inject their own), compiling every pipeline.
    pub async fn from_device(device: wgpu::Device, queue: wgpu::Queue, adapter: AdapterSummary, wgsl: wgpu::WgslLanguageFeatures) -> Result<GpuContext> {
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let kernels = Kernels::new(&device);
        if let Some(e) = scope.pop().await {
            return Err(Error::Gpu(format!("shader compilation failed: {e}")));
        }
        let conv = super::net::ConvMethod::for_adapter(&adapter);
        let faults = Faults::default();
        let f = faults.clone();
        device.on_uncaptured_error(std::sync::Arc::new(move |e: wgpu::Error| {
            let mut s = f.state();
            if s.error.is_none() {
                s.error = Some(e.to_string());
            }
        }));
        let f = faults.clone();
        device.set_device_lost_callback(move |reason, message| {
            let why = match reason {
                wgpu::DeviceLostReason::Destroyed => "destroyed".to_string(),
                _ => if message.is_empty() { "reason unknown".to_string() } else { message },
            };
            f.state().lost = Some(why);
        });
        Ok(GpuContext { device, queue, adapter, kernels, conv, matmul: MatmulKernel::Registers, split_k: true, wgsl, int8: Default::default(), faults })
    }

    /// Turns what went wrong on the device since the last call into an `Error`: its loss (for
    /// good: `is_lost`), else the first error no scope caught (then forgotten, so the next run
    /// starts clean).
    pub fn check(&self) -> Result<()> {
        let mut s = self.faults.state();
        if let Some(why) = &s.lost {
            return Err(Error::Gpu(format!("the GPU device was lost ({why}); this run is stopped and keeps nothing. The next run starts on a new device, or on the CPU backend if none can be had")));
        }
        match s.error.take() {
            Some(e) => Err(Error::Gpu(format!("the GPU reported an error, so this run is stopped and keeps nothing: {e}"))),
            None => Ok(()),
        }
    }

    /// From here until `end_run`, every buffer a context makes on this thread is kept for
    /// `end_run` to destroy.
    pub fn begin_run(&self) {
        RUN_BUFFERS.with(|r| *r.borrow_mut() = Some(Vec::new()));
    }

    /// Destroys the buffers made since `begin_run` and returns how many. In the browser a
    /// dropped wgpu buffer is only freed when the JS garbage collector finds it, which GPU memory
    /// does not prompt; a run's buffers are all garbage once it ends (its models are on the host).
    pub fn end_run(&self) -> usize {
        let made = RUN_BUFFERS.with(|r| r.borrow_mut().take()).unwrap_or_default();
        made.iter().for_each(|b| b.destroy());
        made.len()
    }

    fn track(&self, buffer: wgpu::Buffer) -> wgpu::Buffer {
        RUN_BUFFERS.with(|r| {
            if let Some(made) = r.borrow_mut().as_mut() {
                made.push(buffer.clone());
            }
        });
        buffer
    }

    /// Whether the device has been lost (destroyed, a driver reset, the browser reclaiming it).
    pub fn is_lost(&self) -> bool {
        self.faults.state().lost.is_some()
    }

    /// The integer inference kernels, compiled the first time they are asked for.
    pub async fn int8_kernels(&self) -> Result<Int8Kernels> {
        if let Some(k) = self.int8.get() {
            return Ok(k.clone());
        }
        let k = Int8Kernels::new(&self.device, self.wgsl.clone()).await?;
        Ok(self.int8.get_or_init(|| k).clone())
    }

    /// A uniform buffer holding `value` (UNIFORM to bind it, COPY_DST so steps can rewrite it).
    pub fn uniform<T: Pod>(&self, value: &T, label: &str) -> wgpu::Buffer {
        self.track(self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::bytes_of(value),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        }))
    }

    /// A storage buffer initialised from `data` (COPY_SRC for read-back, COPY_DST for uploads).
    pub fn storage<T: Pod>(&self, data: &[T], label: &str) -> wgpu::Buffer {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        if bytes.is_empty() {
            return self.storage_zeroed(4, label);
        }
        self.track(self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytes,
            usage: storage_usage(),
        }))
    }

    /// A zero-filled storage buffer of `bytes` (rounded up to 4).
    pub fn storage_zeroed(&self, bytes: u64, label: &str) -> wgpu::Buffer {
        self.track(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4).div_ceil(4) * 4,
            usage: storage_usage(),
            mapped_at_creation: false,
        }))
    }

    /// u8 data packed four to a u32 word, little-endian, zero-padded (shaders/data.wgsl's layout).
    pub fn storage_u8(&self, data: &[u8], label: &str) -> wgpu::Buffer {
        let mut words = vec![0u32; data.len().div_ceil(4).max(1)];
        bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..data.len()].copy_from_slice(data);
        self.storage(&words, label)
    }

    /// Copies `buf` back to the host. The only way numbers leave the GPU; call it rarely.
    /// On the web the map callback fires from the browser's event loop, so this must be awaited
    /// there (blocking would deadlock); natively we poll the device until it fires.
    pub async fn read<T: Pod>(&self, buf: &wgpu::Buffer) -> Result<Vec<T>> {
        let size = buf.size();
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, 0, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        self.map_read(&staging).await
    }

    /// Maps a MAP_READ buffer whose copy has been submitted and returns its contents.
    pub async fn map_read<T: Pod>(&self, staging: &wgpu::Buffer) -> Result<Vec<T>> {
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        if let Err(e) = self.device.poll(wgpu::PollType::wait_indefinitely()) {
            self.check()?;
            return Err(Error::Gpu(format!("device poll failed: {e}")));
        }
        let mapped = rx.await.map_err(|_| Error::Gpu("read-back was dropped".into()));
        // A lost device or an earlier error explains a failed map better than the map does.
        self.check()?;
        mapped?.map_err(|e| Error::Gpu(format!("buffer map failed: {e}")))?;
        let out = {
            let view = staging.slice(..).get_mapped_range().map_err(|e| Error::Gpu(format!("buffer map failed: {e}")))?;
            bytemuck::cast_slice::<u8, T>(&view).to_vec()
        };
        staging.unmap();
        // Read-back buffers are one-shot: freed now, not when a garbage collector gets to them.
        staging.destroy();
        Ok(out)
    }
}

fn storage_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}
