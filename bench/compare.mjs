// The performance benchmark: in ONE headless-Chromium session, Squeeze (the page on its CPU
// backend, on WebGPU, and on its automatic choice) and TensorFlow.js 4.22 (webgpu, webgl, wasm)
// train LeNet-300-100 and LeNet-5 on real MNIST at batch 64 and 256 with the same SGD (momentum
// 0.9), each warm-up timed apart from the steady rate; then the native CLI on each native backend.
// Adds: time to 98% test accuracy on LeNet-300-100 (the page's choice), inference latency f32 /
// int8 / structurally pruned, the wasm builds' sizes raw and gzipped, and the time until the page
// is interactive. Prints a table with ratios and writes JSON to bench/results/. Not a test:
// scripts/test runs it with --tiny (small sizes, nothing asserted about speed) so it cannot rot.
// Usage: node bench/compare.mjs [--tiny] [--out FILE] [--gpu]
// Needs: scripts/build-wasm, `npx vite build` in www/, `npm install` in bench/ (scripts/setup does all).
import { readFileSync, writeFileSync, readdirSync, statSync, mkdirSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import os from 'node:os';
import { openSite, root } from './site.mjs';

const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const tiny = args.includes('--tiny');
const date = new Date().toISOString().slice(0, 10);
const out = opt('--out') ?? path.join(root, 'bench/results', `${date}-compare${tiny ? '-tiny' : ''}.json`);
const MODELS = { 'lenet-300-100': { arch: 'mlp', hidden: [300, 100], lr: 0.05 }, lenet5: { arch: 'lenet5', lr: 0.01 } };
const BATCHES = tiny ? [64] : [64, 256];
// Training samples per timed run (per model), and the seconds TF.js may take before it stops.
const SAMPLES = tiny ? { 'lenet-300-100': 512, lenet5: 128 } : { 'lenet-300-100': 20000, lenet5: 2048 };
const TF_BUDGET_S = tiny ? 3 : 15;
const log = (...a) => console.error(...a);

const { url, browser, close } = await openSite({ gpu: args.includes('--gpu') });
const results = { date, machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? '?'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`, chromium: browser.version(), tiny, train: [], native: [], extra: {} };
try {
  // --- Squeeze in the page -------------------------------------------------------------------
  const cell = (page, sel) => page.textContent(sel);
  async function openSqueeze(query) {
    const page = await browser.newPage();
    const t0 = Date.now();
    await page.goto(`${url}${query}`);
    await page.waitForFunction(() => !document.getElementById('train').disabled, null, { timeout: 120_000 });
    const interactiveMs = await page.evaluate(() => performance.now());
    return { page, interactiveMs, wallMs: Date.now() - t0 };
  }
  async function settled(page) {
    await page.waitForFunction(() => !['measuring'].includes(document.getElementById('adapter').dataset.chosen), null, { timeout: 180_000 });
  }
  // One run from the form: returns the epoch rows' samples/s and wall seconds from the click.
  async function squeezeRun(page, model, batch, train, { epochs = 1, test = 500 } = {}) {
    const m = MODELS[model];
    await page.selectOption('#dataset', 'mnist');
    await page.selectOption('#arch', m.arch);
    if (m.hidden) await page.fill('#hidden', m.hidden.join(', '));
    const fields = { '#limit-train': train, '#limit-test': test, '#epochs': epochs, '#batch': batch, '#lr': m.lr, '#momentum': 0.9, '#weight-decay': 0 };
    for (const [sel, v] of Object.entries(fields)) await page.fill(sel, String(v));
    await page.selectOption('#optimizer', 'sgd');
    await page.selectOption('#schedule', 'constant');
    await settled(page);
    const t0 = Date.now();
    await page.click('#train');
    await page.waitForFunction(() => document.getElementById('status').dataset.done === 'true' || document.getElementById('error').textContent, null, { timeout: 900_000 });
    const err = await cell(page, '#error');
    if (err) throw new Error(`Squeeze ${model} batch ${batch}: ${err}`);
    const rows = await page.$$eval('#epochs-table tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    const backend = await page.getAttribute('#runs-table tbody tr:last-child', 'data-backend');
    return { rows, wallS: (Date.now() - t0) / 1000, backend };
  }
  const pages = {};
  // 'squeeze cpu': the page's CPU backend as it loads (the threaded build where the page is
  // cross-origin isolated, as vite preview's is); 'squeeze cpu 1 thread': the single-thread build.
  for (const [name, query] of [['squeeze cpu 1 thread', '?backend=cpu&threads=0'], ['squeeze cpu', '?backend=cpu'], ['squeeze webgpu', '?backend=webgpu'], ['squeeze auto', '']]) {
    const { page, interactiveMs } = await openSqueeze(query);
    pages[name] = page;
    if (name === 'squeeze auto') results.extra.interactive_ms = interactiveMs;
    // The data is fetched and parsed by a first small run (not timed).
    await squeezeRun(page, 'lenet-300-100', 64, 256);
    for (const model of Object.keys(MODELS)) {
      for (const batch of BATCHES) {
        const warm = await squeezeRun(page, model, batch, 2 * batch);
        const run = await squeezeRun(page, model, batch, SAMPLES[model]);
        const samplesPerS = Number(run.rows[0][6]);
        const choice = name === 'squeeze auto' ? await cell(page, '#adapter') : undefined;
        const threads = Number(await page.getAttribute('#adapter', 'data-threads'));
        results.train.push({ engine: name, model, batch, samples_per_s: samplesPerS, warmup_s: warm.wallS, backend: run.backend, threads, choice });
        log(`${name} ${model} batch ${batch}: ${samplesPerS} samples/s (warm-up run ${warm.wallS.toFixed(1)} s) on ${run.backend}`);
      }
    }
  }

  // Time to 98% on LeNet-300-100 (the shipped recipe's lr and cosine schedule, the page's choice).
  if (!tiny) {
    const page = pages['squeeze auto'];
    const r = JSON.parse(readFileSync(path.join(root, 'recipes/lenet-300-100.json'), 'utf8'));
    await page.fill('#lr', String(r.train.lr));
    await page.selectOption('#schedule', r.train.schedule);
    const run = await (async () => {
      await page.selectOption('#arch', 'mlp');
      await page.fill('#hidden', '300, 100');
      for (const [sel, v] of Object.entries({ '#limit-train': 60000, '#limit-test': 10000, '#epochs': r.train.epochs, '#batch': r.train.batch, '#momentum': r.train.momentum, '#weight-decay': 0 })) await page.fill(sel, String(v));
      await page.selectOption('#schedule', r.train.schedule);
      await settled(page);
      const t0 = Date.now();
      await page.click('#train');
      let reached = null;
      for (;;) {
        const rows = await page.$$eval('#epochs-table tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
        const hit = rows.findIndex((row) => parseFloat(row[5]) >= 98);
        if (hit >= 0 && reached === null) reached = { epoch: hit + 1, wall_s: (Date.now() - t0) / 1000 };
        if (await page.evaluate(() => document.getElementById('status').dataset.done === 'true')) return { rows, reached };
        if (await cell(page, '#error')) throw new Error(await cell(page, '#error'));
        await new Promise((ok) => setTimeout(ok, 250));
      }
    })();
    results.extra.time_to_98 = run.reached ?? { epoch: null, note: `not reached in ${r.train.epochs} epochs` };
    log(`time to 98% (LeNet-300-100, page's choice): ${JSON.stringify(results.extra.time_to_98)}`);
  }

  // Inference latency: f32, after structured pruning, and int8 (the quantize stage's own timing).
  {
    const page = pages['squeeze auto'];
    const recipe = {
      dataset: 'mnist', seed: 1, model: { arch: 'mlp', hidden: [300, 100] },
      train: { epochs: 1, batch: 64, optimizer: 'sgd', lr: 0.05, momentum: 0.9 },
      limit: { train: tiny ? 1024 : 10000, test: tiny ? 512 : 10000 },
      stages: [
        { prune: { granularity: 'neuron', criterion: 'l2', sparsity: 0.5, mode: 'hard', finetune: { epochs: 1, batch: 64, optimizer: 'sgd', lr: 0.01, momentum: 0.9 } } },
        { quantize: { weights: { scheme: 'symmetric', bits: 8, per_channel: true }, activations: { bits: 8, calibration: 'minmax', samples: 1000 } } },
      ],
    };
    await page.goto(`${url}?r=${encodeURIComponent(JSON.stringify(recipe))}`);
    await page.waitForFunction(() => !document.getElementById('train').disabled, null, { timeout: 120_000 });
    await settled(page);
    await page.click('#train');
    await page.waitForFunction(() => document.getElementById('status').dataset.done === 'true' || document.getElementById('error').textContent, null, { timeout: 900_000 });
    const err = await cell(page, '#error');
    if (err) throw new Error(`inference recipe: ${err}`);
    const report = await page.evaluate(() => window.squeezeLastReport);
    const [trained, pruned, quant] = report.stages;
    const q = quant.quantization ?? {};
    results.extra.inference_us_per_image = { backend: report.backend, f32: trained.inference_us_per_image, neurons_pruned_50pct: pruned.inference_us_per_image, int8: q.integer?.int8_us ?? null, f32_beside_int8: q.integer?.f32_us ?? null, int8_kernel: q.integer?.kernel ?? null, note: q.integer_note ?? null };
    log(`inference µs/image: ${JSON.stringify(results.extra.inference_us_per_image)}`);
  }
  for (const p of Object.values(pages)) await p.close();

  // --- TensorFlow.js in the same browser ------------------------------------------------------
  const tfdir = path.join(root, 'bench/node_modules/@tensorflow');
  const tfFiles = {
    'tf.min.js': 'tfjs/dist/tf.min.js',
    'tf-backend-webgpu.min.js': 'tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js',
    'tf-backend-wasm.min.js': 'tfjs-backend-wasm/dist/tf-backend-wasm.min.js',
  };
  for (const f of readdirSync(path.join(tfdir, 'tfjs-backend-wasm/dist')).filter((f) => f.endsWith('.wasm'))) tfFiles[f] = `tfjs-backend-wasm/dist/${f}`;
  const page = await browser.newPage();
  // The bench page and TF.js's files, served at the site's origin (a secure context, for WebGPU).
  await page.route(`${url}tfjs/**`, (route) => {
    const name = new URL(route.request().url()).pathname.split('/').pop();
    if (name === 'bench.html') return route.fulfill({ contentType: 'text/html', body: `<!doctype html><title>tfjs</title>${['tf.min.js', 'tf-backend-webgpu.min.js', 'tf-backend-wasm.min.js'].map((s) => `<script src="${s}"></script>`).join('')}` });
    const file = tfFiles[name];
    if (!file) return route.fulfill({ status: 404 });
    return route.fulfill({ contentType: name.endsWith('.wasm') ? 'application/wasm' : 'text/javascript', body: readFileSync(path.join(tfdir, file)) });
  });
  await page.goto(`${url}tfjs/bench.html`);
  await page.waitForFunction(() => window.tf && tf.getBackend, null, { timeout: 60_000 });
  results.tfjs_version = await page.evaluate(() => tf.version.tfjs);
  const maxSamples = Math.max(...Object.values(SAMPLES));
  await page.evaluate(async ({ n, base }) => {
    const bytes = async (f) => new Uint8Array(await (await fetch(`${base}data/mnist/${f}`)).arrayBuffer());
    const [img, lab] = [await bytes('train-images-idx3-ubyte'), await bytes('train-labels-idx1-ubyte')];
    const pix = img.subarray(16, 16 + n * 784);
    let s = 0, q = 0;
    for (const v of pix) { s += v / 255; q += (v / 255) ** 2; }
    const mean = s / pix.length, std = Math.sqrt(q / pix.length - mean * mean);
    window.benchX = Float32Array.from(pix, (v) => (v / 255 - mean) / std);
    window.benchY = lab.subarray(8, 8 + n);
  }, { n: maxSamples, base: url });
  for (const backend of ['webgpu', 'webgl', 'wasm']) {
    for (const model of Object.keys(MODELS)) {
      for (const batch of BATCHES) {
        const r = await page.evaluate(async ({ backend, model, batch, n, lr, budget }) => {
          if (tf.getBackend() !== backend) {
            if (backend === 'wasm') tf.wasm.setWasmPaths(new URL('./', location.href).href);
            if (!(await tf.setBackend(backend))) return { error: `backend ${backend} did not start` };
            await tf.ready();
          }
          const m = tf.sequential();
          if (model === 'lenet5') {
            m.add(tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 20, kernelSize: 5 }));
            m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
            m.add(tf.layers.conv2d({ filters: 50, kernelSize: 5 }));
            m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
            m.add(tf.layers.flatten());
            m.add(tf.layers.dense({ units: 500, activation: 'relu' }));
          } else {
            m.add(tf.layers.dense({ inputShape: [784], units: 300, activation: 'relu' }));
            m.add(tf.layers.dense({ units: 100, activation: 'relu' }));
          }
          m.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
          m.compile({ optimizer: tf.train.momentum(lr, 0.9), loss: 'categoricalCrossentropy' });
          const shape = model === 'lenet5' ? [n, 28, 28, 1] : [n, 784];
          const x = tf.tensor(window.benchX.subarray(0, n * 784), shape);
          const y = tf.oneHot(tf.tensor1d(Array.from(window.benchY.subarray(0, n)), 'int32'), 10);
          // Warm-up: two batches (shader compilation, first allocations).
          let t0 = performance.now();
          await m.fit(x.slice(0, 2 * batch), y.slice(0, 2 * batch), { batchSize: batch, epochs: 1, shuffle: false, verbose: 0 });
          const warmup = (performance.now() - t0) / 1000;
          // Steady rate: one epoch over n samples, stopped once the budget is spent.
          let seen = 0;
          t0 = performance.now();
          await m.fit(x, y, { batchSize: batch, epochs: 1, shuffle: true, verbose: 0, callbacks: { onBatchEnd: async () => { seen += batch; if ((performance.now() - t0) / 1000 > budget) m.stopTraining = true; } } });
          const seconds = (performance.now() - t0) / 1000;
          tf.dispose([x, y]);
          m.dispose();
          return { samples_per_s: Math.min(seen, n) / seconds, warmup_s: warmup, samples: Math.min(seen, n) };
        }, { backend, model, batch, n: SAMPLES[model], lr: MODELS[model].lr, budget: TF_BUDGET_S }).catch((e) => ({ error: `cannot train: ${String(e).split('\n')[0].replace(/^.*Error: /, '').slice(0, 160)}` }));
        results.train.push({ engine: `tfjs ${backend}`, model, batch, ...r });
        log(`tfjs ${backend} ${model} batch ${batch}: ${r.error ?? `${r.samples_per_s.toFixed(0)} samples/s (warm-up ${r.warmup_s.toFixed(1)} s)`}`);
      }
    }
  }
  await page.close();
} finally {
  await close();
}

// --- The native CLI on each native backend ---------------------------------------------------
const profile = tiny ? 'debug' : 'release';
execFileSync('cargo', ['build', '-q', '--bin', 'squeeze', ...(tiny ? [] : ['--release'])], { cwd: root, stdio: 'inherit' });
const bin = path.join(root, 'target', profile, 'squeeze');
// The CPU backend natively on every core (its default) and on one (`--threads 1`).
const nativeRuns = [['cpu', ['--backend', 'cpu']], ['cpu 1 thread', ['--backend', 'cpu', '--threads', '1']], ['gpu', ['--backend', 'gpu']]];
for (const [backend, args] of nativeRuns) {
  for (const model of Object.keys(MODELS)) {
    for (const batch of BATCHES) {
      const m = MODELS[model];
      const recipe = { dataset: 'mnist', seed: 1, model: { arch: m.arch, ...(m.hidden ? { hidden: m.hidden } : {}) }, train: { epochs: 1, batch, optimizer: 'sgd', lr: m.lr, momentum: 0.9 }, limit: { train: SAMPLES[model], test: 500 } };
      const file = path.join(os.tmpdir(), `squeeze-bench-${process.pid}.json`);
      writeFileSync(file, JSON.stringify(recipe));
      try {
        const text = execFileSync(bin, ['run', file, ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { XDG_RUNTIME_DIR: '/tmp', ...process.env } });
        const rep = text.match(/^train\s+\d+\s+\S+\s+\S+\s+\S+\s+(\d+)/m);
        const adapter = text.match(/seed \d+ \| (.*)$/m)?.[1];
        results.native.push({ engine: `native ${backend}`, model, batch, samples_per_s: rep ? Number(rep[1]) : null, adapter, build: profile });
        log(`native ${backend} ${model} batch ${batch}: ${rep?.[1]} samples/s (${adapter}, ${profile})`);
      } catch (e) {
        results.native.push({ engine: `native ${backend}`, model, batch, error: String(e.stderr ?? e).slice(0, 300) });
        log(`native ${backend} ${model} batch ${batch}: failed`);
      }
    }
  }
}

// --- Sizes ------------------------------------------------------------------------------------
results.extra.wasm = ['pkg', 'pkg-relaxed', 'pkg-threads'].map((d) => {
  const f = path.join(root, 'www', d, 'squeeze_bg.wasm');
  const bytes = readFileSync(f);
  return { build: d, raw_bytes: statSync(f).size, gzip_bytes: gzipSync(bytes, { level: 9 }).length };
});

// --- The table --------------------------------------------------------------------------------
const best = (model, batch) => Math.max(...results.train.filter((r) => r.engine.startsWith('tfjs') && r.model === model && r.batch === batch && r.samples_per_s).map((r) => r.samples_per_s));
// The same code natively on as many threads (one thread against `--threads 1`).
const nativeCpu = (model, batch, threads) => results.native.find((r) => r.engine === (threads === 1 ? 'native cpu 1 thread' : 'native cpu') && r.model === model && r.batch === batch)?.samples_per_s;
const nativeThreads = results.native.find((r) => r.engine === 'native cpu')?.adapter?.match(/(\d+) thread/)?.[1];
const lines = [`Training samples/s, ${results.machine}, Chromium ${results.chromium}, TF.js ${results.tfjs_version}${tiny ? ' (tiny setting: not figures)' : ''}`, '', '| engine | model | batch | samples/s | ×TF.js best | warm-up s | note |', '|---|---|---|---|---|---|---|'];
for (const r of [...results.train, ...results.native]) {
  const b = best(r.model, r.batch);
  const ratio = r.samples_per_s && Number.isFinite(b) ? (r.samples_per_s / b).toFixed(2) : '–';
  const note = r.error ?? (r.engine.startsWith('squeeze cpu') && nativeCpu(r.model, r.batch, r.threads) ? `${r.threads} thread(s), ${(100 * r.samples_per_s / nativeCpu(r.model, r.batch, r.threads)).toFixed(0)}% of native CPU (${r.threads === 1 ? 1 : nativeThreads} thread(s))` : r.engine === 'squeeze auto' ? `ran on ${r.backend}${r.backend === 'cpu' ? ` (${r.threads} thread(s))` : ''}` : r.adapter ?? '');
  lines.push(`| ${r.engine} | ${r.model} | ${r.batch} | ${r.samples_per_s ? Math.round(r.samples_per_s).toLocaleString('en') : '–'} | ${ratio} | ${r.warmup_s !== undefined ? r.warmup_s.toFixed(1) : '–'} | ${note} |`);
}
lines.push('', `Page interactive after ${results.extra.interactive_ms?.toFixed(0)} ms; wasm ${results.extra.wasm.map((w) => `${w.build} ${w.raw_bytes.toLocaleString('en')} B (${w.gzip_bytes.toLocaleString('en')} gzipped)`).join(', ')}.`);
if (results.extra.time_to_98) lines.push(`Time to 98% test accuracy, LeNet-300-100 (page's choice): ${JSON.stringify(results.extra.time_to_98)}.`);
lines.push(`Inference µs/image (LeNet-300-100, page's choice): ${JSON.stringify(results.extra.inference_us_per_image)}.`);
console.log(lines.join('\n'));
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(results, null, 1));
console.error(`wrote ${out}`);
