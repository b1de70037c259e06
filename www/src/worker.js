// The engine's home: a Web Worker that owns the wasm module, the datasets and the GPU device, so
// the page stays responsive while training. Messages in: {type: 'init'|'choose-backend'|'load-custom'|'load-model'|'run'|'pause'|'resume'|'cancel'|'predict'|'pictures'|'export'|'start-from'|'quick-recipe'|'gallery-figures'|'simulate-device-loss'}.
// Messages out: {type: 'ready'|'gpu-ready'|'backend-chosen'|'loaded'|'custom-loaded'|'model-loaded'|'event'|'done'|'predictions'|'pictures'|'model-file'|'start-from'|'quick-recipe'|'gallery-figures'|'error', ...}.

// Three builds of the engine (scripts/build-wasm): www/pkg-relaxed uses relaxed SIMD's fused
// multiply-add in the CPU backend's GEMM (about 1.2x faster training there), www/pkg plain SIMD
// for browsers without relaxed SIMD, and www/pkg-threads relaxed SIMD plus WebAssembly threads:
// the CPU backend's large matrix products cut into bands on a pool of Web Workers that share the
// module's memory (wasm-bindgen-rayon). Threads need SharedArrayBuffer, which a browser gives only
// to a cross-origin-isolated page (the server sends COOP and COEP: vite.config.js); elsewhere, or
// if the pool does not start, the single-thread builds run. The probe is a module whose one
// function is an f32x4.relaxed_madd: a browser that validates it runs the faster builds.
const RELAXED_PROBE = Uint8Array.from('0061736d010000000105016000017b030201000a3d013b00fd0c00000000000000000000000000000000fd0c00000000000000000000000000000000fd0c00000000000000000000000000000000fd85020b'.match(/../g), (h) => parseInt(h, 16));
// Threads by default: the cores the browser reports, at most this many (LeNet-sized products
// gain little from more, and each thread is a worker with its own stack); ?threads= at most 32.
const MAX_THREADS = 8;
const MAX_ASKED = 32;
// A pool whose workers never report ready (a worker script refused by the host, say) is given
// up after this long, and the single-thread build runs instead.
const POOL_TIMEOUT_MS = 8_000;
let Squeeze = null;
// Loads the engine. `simd` 'plain' forces the plain-SIMD build (?simd=plain); `threads` (?threads=N)
// the threads that multiply (the engine's and N - 1 pool workers), 0 or 1 for a single-thread build. Returns {simd: 'relaxed'|'plain', threads, why}.
async function loadEngine(simd, threads) {
  const relaxed = simd !== 'plain' && WebAssembly.validate(RELAXED_PROBE);
  const asked = threads == null || threads === '' ? null : Math.min(MAX_ASKED, Math.max(0, Math.floor(Number(threads)) || 0));
  const want = asked ?? Math.min(navigator.hardwareConcurrency || 1, MAX_THREADS);
  let why = null;
  if (!relaxed) why = 'no relaxed SIMD';
  else if (!self.crossOriginIsolated) why = 'page not cross-origin isolated';
  else if (want < 2) why = asked != null ? `threads=${asked}` : 'one core';
  if (!why) {
    try {
      const mod = await import('../pkg-threads/squeeze.js');
      await mod.default();
      // The pool's workers and the engine's own thread, which does a share of each product.
      let timer;
      const late = new Promise((_, fail) => { timer = setTimeout(() => fail(new Error(`no answer in ${POOL_TIMEOUT_MS / 1000} s`)), POOL_TIMEOUT_MS); });
      await Promise.race([mod.initThreadPool(want - 1), late]).finally(() => clearTimeout(timer));
      Squeeze = mod.Squeeze;
      return { simd: 'relaxed', threads: want, why: null };
    } catch (e) {
      why = `the thread pool did not start: ${e && e.message ? e.message : e}`;
    }
  }
  const mod = relaxed ? await import('../pkg-relaxed/squeeze.js') : await import('../pkg/squeeze.js');
  await mod.default();
  Squeeze = mod.Squeeze;
  return { simd: relaxed ? 'relaxed' : 'plain', threads: 1, why };
}

const FILES = {
  mnist: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'],
  'fashion-mnist': ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'],
};

let engine = null;
// WebGPU's start or the backend measurement in progress (runs wait for it: the engine is busy meanwhile).
let choosing = Promise.resolve();
const messageOf = (e) => String(e && e.message ? e.message : e);
let cancelled = false;
let paused = false;
const loaded = new Set();

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`could not fetch ${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

// The user's own files: four IDX files told apart by name (train/t10k|test, images/labels).
function classify(files) {
  const slot = (f) => `${/t10k|test/i.test(f.name) ? 'test' : /train/i.test(f.name) ? 'train' : '?'} ${/label/i.test(f.name) ? 'labels' : 'images'}`;
  const want = ['train images', 'train labels', 'test images', 'test labels'];
  const bySlot = new Map(files.map((f) => [slot(f), f]));
  if (files.length !== 4 || want.some((w) => !bySlot.has(w))) {
    const seen = files.map((f) => `${f.name} (${slot(f)})`).join(', ') || 'none';
    throw new Error(`Choose exactly four IDX files whose names say train or t10k/test and images or labels, like MNIST's train-images-idx3-ubyte.gz. Got: ${seen}.`);
  }
  return want.map((w) => bySlot.get(w));
}

// Files are size-checked before a byte is read: the engine's memory is one 4 GiB wasm heap, and
// an allocation that fails there ends the page's engine (and all it holds).
const MAX_FILE_BYTES = { idx: 256 << 20, model: 64 << 20 };
function checkSize(file, kind) {
  if (file.size > MAX_FILE_BYTES[kind]) {
    const mb = (b) => `${Math.round(b / (1 << 20)).toLocaleString('en')} MB`;
    throw new Error(`${file.name} is ${mb(file.size)}; the page reads ${kind === 'idx' ? 'IDX' : 'model'} files up to ${mb(MAX_FILE_BYTES[kind])} each (the command-line runner has no such limit). Nothing was loaded.`);
  }
}

async function loadCustom(files) {
  const ordered = classify(files);
  ordered.forEach((f) => checkSize(f, 'idx'));
  const bytes = await Promise.all(ordered.map(async (f) => new Uint8Array(await f.arrayBuffer())));
  // On a bad file the engine throws and keeps whatever it had loaded before.
  const info = engine.loadDataset('custom', ordered.map((f) => f.name), ...bytes);
  loaded.add('custom');
  return info;
}

async function loadNamed(name, dataBase) {
  if (loaded.has(name)) return null;
  if (name === 'custom') throw new Error('Load your IDX files first: choose "Your own IDX files" and pick four files.');
  const files = FILES[name];
  if (!files) throw new Error(`unknown dataset ${name}`);
  const bytes = await Promise.all(files.map((f) => fetchBytes(new URL(`${name}/${f}`, dataBase).href)));
  // A server may send x.gz with Content-Encoding: gzip, and then fetch hands us the inflated bytes:
  // name those by what they are, so the engine's ".gz must be gzip" check stays meaningful.
  const names = files.map((f, i) => (f.endsWith('.gz') && !(bytes[i][0] === 0x1f && bytes[i][1] === 0x8b) ? f.slice(0, -3) : f));
  const info = engine.loadDataset(name, names, ...bytes);
  loaded.add(name);
  return info;
}

// What WebGPU says about the adapter (wgpu's web backend leaves vendor/architecture empty).
async function gpuInfo() {
  try {
    const a = await navigator.gpu?.requestAdapter({ powerPreference: 'high-performance' });
    const i = a?.info;
    return i ? { vendor: i.vendor, architecture: i.architecture, description: i.description, isFallbackAdapter: !!i.isFallbackAdapter } : null;
  } catch {
    return null;
  }
}

self.onmessage = async (msg) => {
  const m = msg.data;
  try {
    if (m.type === 'init') {
      // The page is usable once the engine is (on the CPU); WebGPU's pipelines compile after,
      // and anything sent meanwhile that needs the backend waits for them.
      const build = await loadEngine(m.simd, m.threads);
      const wantGpu = m.preferGpu !== false;
      engine = Squeeze.create(wantGpu ? 'WebGPU is starting' : 'CPU backend requested');
      self.postMessage({ type: 'ready', backend: engine.backendInfo(), gpuPending: wantGpu, simd: build.simd, threads: build.threads, threadsWhy: build.why });
      if (wantGpu) {
        const job = engine.acquireGpu(m.conv ?? undefined);
        choosing = job.catch(() => {});
        const backend = await job;
        self.postMessage({ type: 'gpu-ready', backend, gpuInfo: await gpuInfo() });
      }
    } else if (m.type === 'choose-backend') {
      // Time the form's model on both backends; later runs use the faster.
      const job = choosing.then(() => engine.chooseBackend(m.recipe, m.rows, m.cols, m.budgetS ?? 0.4));
      choosing = job.catch(() => {});
      const choice = await job;
      self.postMessage({ type: 'backend-chosen', choice, backend: engine.backendInfo(), seq: m.seq });
    } else if (m.type === 'load-custom') {
      self.postMessage({ type: 'custom-loaded', info: await loadCustom(m.files) });
    } else if (m.type === 'load-model') {
      // A model file (to look inside, or a teacher); on a bad one the engine throws and keeps what it had.
      checkSize(m.file, 'model');
      const info = engine.loadModel(m.file.name, new Uint8Array(await m.file.arrayBuffer()));
      self.postMessage({ type: 'model-loaded', info, ask: m.ask });
    } else if (m.type === 'cancel') {
      cancelled = true;
    } else if (m.type === 'pause' || m.type === 'resume') {
      paused = m.type === 'pause';
    } else if (m.type === 'run') {
      cancelled = false;
      paused = false;
      await choosing;
      const recipe = engine.validateRecipe(m.recipe);
      const info = await loadNamed(recipe.dataset, m.dataBase);
      if (info) self.postMessage({ type: 'loaded', info });
      const report = await engine.run(recipe, (ev) => {
        if (ev.kind !== 'paused') self.postMessage({ type: 'event', event: ev });
        return cancelled ? false : paused ? 'pause' : true;
      }, m.progressEvery ?? 25);
      self.postMessage({ type: 'done', report, models: engine.models(), backend: engine.backendInfo(), memory: engine.memoryBytes() });
    } else if (m.type === 'simulate-device-loss') {
      engine.simulateDeviceLoss();
    } else if (m.type === 'predict') {
      self.postMessage({ type: 'predictions', predictions: engine.predict(m.pixels, m.rows, m.cols, m.ids), seq: m.seq });
    } else if (m.type === 'start-from') {
      self.postMessage({ type: 'start-from', start: engine.startFrom(m.index), ask: m.ask });
    } else if (m.type === 'quick-recipe') {
      self.postMessage({ type: 'quick-recipe', recipe: engine.quickRecipe(m.recipe, m.train, m.test), ask: m.ask });
    } else if (m.type === 'gallery-figures') {
      self.postMessage({ type: 'gallery-figures', figures: engine.galleryFigures(m.figures, m.report, m.models), ask: m.ask });
    } else if (m.type === 'export') {
      const bytes = m.format === 'onnx' ? engine.exportOnnx(m.index) : engine.exportModel(m.index);
      self.postMessage({ type: 'model-file', index: m.index, format: m.format, bytes }, [bytes.buffer]);
    } else if (m.type === 'pictures') {
      // The confusion matrix needs the run's data to fit the model (new files of another shape
      // may have replaced it): then it is an error in its place, and the rest still shows.
      // A loaded file is judged on the dataset chosen in the form (fetched if need be).
      let confusion;
      try {
        if (m.dataset && m.dataset !== 'custom') {
          const info = await loadNamed(m.dataset, m.dataBase);
          if (info) self.postMessage({ type: 'loaded', info, quiet: true });
        }
        confusion = engine.confusion(m.index, m.images, m.show, m.dataset ?? undefined);
      } catch (e) {
        confusion = { error: messageOf(e) };
      }
      self.postMessage({ type: 'pictures', index: m.index, layer: engine.firstLayer(m.index), weights: engine.layerWeights(m.index), levels: engine.layerLevels(m.index), confusion });
    }
  } catch (e) {
    self.postMessage({ type: 'error', message: messageOf(e), during: m.type, seq: m.seq, ask: m.ask });
  }
};
