// End-to-end test of the built page in Debian's Chromium (WebGPU on SwiftShader, no GPU needed):
// the engine comes up on WebGPU, pressing Train on a small MNIST subset shows progress and test
// accuracy climbing, and bad settings give an error next to the controls. Screenshots go to
// artifacts/. Expects `vite build` to have run (scripts/test does it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { chromium } from 'playwright-core';

const www = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const artifacts = path.resolve(www, '..', 'artifacts');
mkdirSync(artifacts, { recursive: true });
const PORT = 4300 + Math.floor(Math.random() * 500);
const URL = `http://127.0.0.1:${PORT}/`;

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic',
  '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader',
];

let server;
let browser;

before(async () => {
  // vite's own entry run by this node (not through npx), so killing it stops the server.
  const vite = path.join(www, 'node_modules', 'vite', 'bin', 'vite.js');
  server = spawn(process.execPath, [vite, 'preview', '--host', '127.0.0.1', '--port', String(PORT), '--strictPort'], { cwd: www, stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(URL)).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  server?.kill();
});

// Opens the page; by default on WebGPU (forced: here the CPU backend measures faster, and these
// tests are about the page on WebGPU). The backend-by-measurement test opens it without.
async function openPage(query = '?backend=webgpu') {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => /Content Security Policy/i.test(m.text()) && errors.push(m.text()));
  await page.goto(`${URL}${query}`);
  await page.waitForFunction(() => document.getElementById('adapter').dataset.backend, null, { timeout: 60_000 });
  return { page, errors };
}

// Fills several inputs: {'#id': 'value', ...}.
async function fillAll(page, values) {
  for (const [selector, value] of Object.entries(values)) await page.fill(selector, value);
}

// Waits until the run is done or an error is shown.
const runEnds = (page, timeout) =>
  page.waitForFunction(() => document.getElementById('status').dataset.done === 'true' || document.getElementById('error').textContent, null, { timeout });

// Draws a "1" on the draw-a-digit canvas: a vertical stroke.
async function drawOne(page) {
  await page.locator('#draw').scrollIntoViewIfNeeded();
  const box = await page.locator('#draw').boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.15);
  await page.mouse.down();
  for (let t = 0.15; t <= 0.85; t += 0.05) await page.mouse.move(box.x + box.width * 0.52, box.y + box.height * t);
  await page.mouse.up();
}

// Test accuracy (%) of the first epoch row.
const firstTestAccuracy = async (page) => parseFloat(await page.$eval('#epochs-table tbody tr td:nth-child(6)', (td) => td.textContent));

test('the engine runs on WebGPU in a worker and training shows accuracy climbing', { timeout: 240_000 }, async () => {
  const { page, errors } = await openPage();
  assert.equal(await page.getAttribute('#adapter', 'data-backend'), 'webgpu', await page.textContent('#adapter'));
  assert.match(await page.textContent('#adapter'), /software adapter.*swiftshader/i);
  await fillAll(page, { '#limit-train': '3000', '#limit-test': '1000', '#hidden': '100', '#epochs': '2', '#batch': '32', '#lr': '0.01' });
  await page.click('#train');
  // The page stays responsive while the worker trains: the progress bar moves.
  await page.waitForFunction(() => document.getElementById('progress').value > 0.2, null, { timeout: 120_000 });
  await page.screenshot({ path: path.join(artifacts, 'training.png') });
  await page.waitForFunction(() => document.getElementById('status').dataset.done === 'true', null, { timeout: 180_000 });
  const rows = await page.$$eval('#epochs-table tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.equal(rows.length, 2);
  const testAcc = rows.map((r) => parseFloat(r[5]));
  // Measured about 88-90% (1000 test digits); chance is 10% and a broken gradient stays far below 80%.
  assert.ok(testAcc[1] >= 80, `test accuracy after 2 epochs on 3000 real digits: ${testAcc}`);
  // Climbing: the second epoch's mean training loss well below the first's, its test accuracy higher.
  const trainLoss = rows.map((r) => parseFloat(r[2]));
  assert.ok(trainLoss[1] < 0.8 * trainLoss[0], `training loss should fall: ${trainLoss}`);
  assert.ok(testAcc[1] > testAcc[0], `test accuracy should climb: ${testAcc}`);
  assert.equal(await page.textContent('#error'), '');
  await page.screenshot({ path: path.join(artifacts, 'trained.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('an invalid setting is reported next to the controls and nothing breaks', { timeout: 120_000 }, async () => {
  const { page, errors } = await openPage();
  await page.fill('#lr', '-1');
  await page.click('#train');
  await page.waitForFunction(() => document.getElementById('error').textContent.length > 0, null, { timeout: 30_000 });
  assert.match(await page.textContent('#error'), /train\.lr.*must be > 0/);
  assert.equal(await page.isDisabled('#train'), false, 'the Train button comes back');
  await page.screenshot({ path: path.join(artifacts, 'invalid-setting.png') });
  // A batch this adapter cannot hold is refused by validation, before the data is even loaded,
  // with the largest batch that fits.
  await page.selectOption('#arch', 'vgg-mini');
  await fillAll(page, { '#lr': '0.01', '#batch': '8192' });
  await page.click('#train');
  await page.waitForFunction(() => document.getElementById('error').textContent.length > 0, null, { timeout: 30_000 });
  assert.match(await page.textContent('#error'), /train\.batch`: 8192 needs a \d+ MB buffer.*the largest batch that fits is \d+/);
  assert.doesNotMatch(await page.textContent('#status'), /Loaded|Training/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('Train works before WebGPU has started: the run waits for it and for the timing, then uses the faster', { timeout: 180_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(URL);
  await fillAll(page, { '#limit-train': '256', '#limit-test': '128', '#hidden': '16', '#epochs': '1' });
  // Train is enabled while the GPU's kernels still compile (the banner says so, no backend yet).
  const early = await page.waitForFunction(() => !document.getElementById('train').disabled && { backend: document.getElementById('adapter').dataset.backend ?? null, text: document.getElementById('adapter').textContent }, null, { timeout: 60_000 });
  const state = await early.jsonValue();
  assert.equal(state.backend, null, JSON.stringify(state));
  assert.match(state.text, /Starting WebGPU/);
  await page.click('#train');
  await runEnds(page, 120_000);
  assert.equal(await page.textContent('#error'), '');
  assert.equal(await page.getAttribute('#adapter', 'data-chosen'), 'measured', await page.textContent('#adapter'));
  assert.equal(await page.getAttribute('#runs-table tbody tr:last-child', 'data-backend'), await page.getAttribute('#adapter', 'data-backend'));
  assert.deepEqual(errors, []);
  await page.close();
});

test('the page times both backends on the form\'s model, runs on the faster, and ?backend= forces one', { timeout: 240_000 }, async () => {
  const { page, errors } = await openPage('');
  const measured = async (before = '') => {
    await page.waitForFunction((b) => document.getElementById('adapter').dataset.chosen === 'measured' && document.getElementById('adapter').textContent !== b, before, { timeout: 120_000 });
    const text = await page.textContent('#adapter');
    const m = text.match(/CPU ([\d,]+)\/s, WebGPU ([\d,]+)\/s \(.*\): using the (CPU|GPU)/);
    assert.ok(m, text);
    const [cpu, gpu] = [m[1], m[2]].map((v) => Number(v.replace(/,/g, '')));
    assert.ok(cpu > 0 && gpu > 0, text);
    // The choice is the faster of the two figures it shows.
    assert.equal(m[3], cpu >= gpu ? 'CPU' : 'GPU', text);
    assert.equal(await page.getAttribute('#adapter', 'data-backend'), cpu >= gpu ? 'cpu' : 'webgpu');
    return { text, backend: cpu >= gpu ? 'cpu' : 'webgpu' };
  };
  const mlp = await measured();
  // The page loaded the faster engine build this browser validates (Chromium has relaxed SIMD).
  assert.equal(await page.getAttribute('#adapter', 'data-simd'), 'relaxed');
  // Another model is timed again.
  await page.selectOption('#arch', 'lenet5');
  const conv = await measured(mlp.text);
  assert.notEqual(conv.text, mlp.text);
  // A run uses the chosen backend.
  await fillAll(page, { '#limit-train': '256', '#limit-test': '128', '#epochs': '1' });
  await page.click('#train');
  await runEnds(page, 180_000);
  assert.equal(await page.textContent('#error'), '');
  assert.equal(await page.getAttribute('#runs-table tbody tr:last-child', 'data-backend'), conv.backend);
  assert.deepEqual(errors, []);
  await page.close();
  // Forced: no timing, that backend (and the plain-SIMD build when asked for).
  for (const [query, backend] of [['?backend=webgpu', 'webgpu'], ['?backend=cpu&simd=plain', 'cpu']]) {
    const { page: forced } = await openPage(query);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await forced.getAttribute('#adapter', 'data-backend'), backend);
    assert.notEqual(await forced.getAttribute('#adapter', 'data-chosen'), 'measured');
    if (query.includes('plain')) {
      assert.equal(await forced.getAttribute('#adapter', 'data-simd'), 'plain');
      await fillAll(forced, { '#limit-train': '512', '#limit-test': '256', '#hidden': '16', '#epochs': '1' });
      await forced.click('#train');
      await runEnds(forced, 60_000);
      assert.equal(await forced.textContent('#error'), '');
      assert.ok((await firstTestAccuracy(forced)) > 30);
    }
    await forced.close();
  }
});

test('without WebGPU the page runs on the CPU reference backend and says so', { timeout: 120_000 }, async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${URL}?backend=cpu`);
  await page.waitForFunction(() => document.getElementById('adapter').dataset.backend, null, { timeout: 60_000 });
  assert.equal(await page.getAttribute('#adapter', 'data-backend'), 'cpu');
  assert.match(await page.textContent('#adapter'), /CPU reference backend/);
  await fillAll(page, { '#limit-train': '2000', '#limit-test': '500', '#hidden': '32', '#epochs': '1' });
  await page.click('#train');
  await page.waitForFunction(() => document.getElementById('status').dataset.done === 'true', null, { timeout: 100_000 });
  const acc = await firstTestAccuracy(page);
  assert.ok(acc >= 70, `CPU backend test accuracy after one epoch on 2000 digits: ${acc}`);
  await page.screenshot({ path: path.join(artifacts, 'cpu-fallback.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('in a cross-origin-isolated page the CPU backend multiplies on a pool of threads, with the same numbers as one thread', { timeout: 240_000 }, async () => {
  // Each epoch's losses and accuracies (not its samples/s) of a short run of `arch` on the CPU.
  const run = async (query, arch) => {
    const { page, errors } = await openPage(query);
    await page.selectOption('#arch', arch);
    await fillAll(page, { '#limit-train': '1500', '#limit-test': '300', '#epochs': '2' });
    await page.click('#train');
    await runEnds(page, 150_000);
    assert.equal(await page.textContent('#error'), '');
    const rows = await page.$$eval('#epochs-table tbody tr', (trs) => trs.map((tr) => [...tr.children].slice(0, -1).map((td) => td.textContent).join(' ')));
    const info = { threads: Number(await page.getAttribute('#adapter', 'data-threads')), text: await page.textContent('#adapter'), cores: await page.evaluate(() => navigator.hardwareConcurrency), isolated: await page.evaluate(() => self.crossOriginIsolated) };
    assert.deepEqual(errors, []);
    await page.close();
    return { rows, ...info };
  };
  for (const arch of ['mlp', 'lenet5']) {
    const pool = await run('?backend=cpu', arch);
    // vite preview sends COOP/COEP, so the page is isolated and the threaded build runs with one
    // thread per core (at most 8).
    assert.equal(pool.isolated, true);
    assert.equal(pool.threads, Math.min(pool.cores, 8), pool.text);
    if (pool.threads > 1) assert.match(pool.text, new RegExp(`on ${pool.threads} threads`));
    const one = await run('?backend=cpu&threads=0', arch);
    assert.equal(one.threads, 1);
    assert.doesNotMatch(one.text, /threads/);
    // The products are cut into bands of whole micro-tiles, so every number is the same.
    assert.equal(pool.rows.length, 2, pool.rows.join('\n'));
    assert.deepEqual(pool.rows, one.rows, `${arch}: threaded run differs from one thread`);
  }
  // A host whose policy refuses the pool's workers (the engine's worker script served with
  // worker-src 'none'; the refused workers never answer): the page gives the pool up after its
  // timeout and runs on one thread.
  const page = await browser.newPage();
  const said = [];
  page.on('console', (m) => said.push(m.text()));
  await page.route(/\/assets\/worker-[^/]*\.js$/, async (r) => {
    const response = await r.fetch();
    await r.fulfill({ response, headers: { ...response.headers(), 'content-security-policy': "worker-src 'none'" } });
  });
  await page.goto(`${URL}?backend=cpu`);
  await page.waitForFunction(() => document.getElementById('adapter').dataset.backend, null, { timeout: 60_000 });
  assert.equal(await page.getAttribute('#adapter', 'data-threads'), '1');
  assert.ok(said.some((t) => /one thread: the thread pool did not start/.test(t)), said.join('\n'));
  await fillAll(page, { '#limit-train': '500', '#limit-test': '200', '#epochs': '1' });
  await page.click('#train');
  await runEnds(page, 60_000);
  assert.equal(await page.textContent('#error'), '');
  await page.close();
});

test('Fashion-MNIST (gzipped IDX) loads in the page and trains', { timeout: 120_000 }, async () => {
  const { page, errors } = await openPage();
  await page.selectOption('#dataset', 'fashion-mnist');
  await fillAll(page, { '#limit-train': '2000', '#limit-test': '500', '#hidden': '32', '#epochs': '1' });
  await page.click('#train');
  await runEnds(page, 100_000);
  assert.equal(await page.textContent('#error'), '');
  const acc = await firstTestAccuracy(page);
  assert.ok(acc >= 55, `Fashion-MNIST test accuracy after one epoch on 2000 images: ${acc}`);
  assert.equal(await page.textContent('#error'), '');
  assert.deepEqual(errors, []);
  await page.close();
});

test('a convolutional net (LeNet-5) trains in the page on WebGPU', { timeout: 240_000 }, async () => {
  const { page, errors } = await openPage();
  await page.selectOption('#arch', 'lenet5');
  assert.equal(await page.isVisible('#hidden'), false, 'MLP widths are hidden for a conv net');
  await fillAll(page, { '#limit-train': '640', '#limit-test': '300', '#epochs': '1', '#batch': '32', '#lr': '0.01' });
  await page.click('#train');
  await runEnds(page, 220_000);
  assert.equal(await page.textContent('#error'), '');
  const acc = await firstTestAccuracy(page);
  // 20 steps of LeNet-5 on real digits: well above chance (10%) when every backward works.
  assert.ok(acc >= 40, `LeNet-5 test accuracy after one epoch on 640 images: ${acc}`);
  await page.screenshot({ path: path.join(artifacts, 'lenet5-trained.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('a pruning stage added in the pipeline editor runs and its charts show what it did', { timeout: 240_000 }, async () => {
  const { page, errors } = await openPage();
  await fillAll(page, { '#limit-train': '2000', '#limit-test': '500', '#hidden': '64', '#epochs': '1', '#batch': '32', '#lr': '0.01' });
  await page.selectOption('#add-stage-kind', 'prune');
  await page.click('#add-stage');
  assert.equal(await page.locator('#pipeline fieldset.stage').count(), 1);
  await fillAll(page, { '#stage-0-sparsity': '0.8', '#stage-0-rounds': '2', '#stage-0-ft_epochs': '1' });
  await page.click('#train');
  await runEnds(page, 220_000);
  assert.equal(await page.textContent('#error'), '');
  // The stage's panel: 80% of every layer's weights zero, said in words and drawn (uPlot canvases).
  const facts = await page.textContent('.stage-result[data-stage="1"] .facts');
  assert.match(facts, /^80\.0% of weights are zero/, facts);
  const labels = await page.$$eval('.stage-result[data-stage="1"] .chart', (els) => els.map((e) => e.getAttribute('aria-label')));
  assert.equal(labels.length, 3, labels.join(' | '));
  assert.match(labels[0], /W1 80\.0%, W2 80\.0%/);
  assert.equal(await page.locator('.stage-result[data-stage="1"] canvas').count(), 3);
  // Accuracy after fine-tuning at 80% sparsity stays well above chance (measured ~85%).
  const acc = [...labels[2].matchAll(/([\d.]+)% after fine-tuning/g)].map((m) => parseFloat(m[1]));
  assert.equal(acc.length, 2, labels[2]);
  assert.ok(acc[1] >= 60, `accuracy after pruning to 80% and fine-tuning: ${acc}`);
  // Three epochs in all (training, then one fine-tuning epoch per round) in one table, and the run's row.
  assert.equal(await page.locator('#epochs-table tbody tr').count(), 3);
  const run = await page.$$eval('#runs-table tbody tr td', (tds) => tds.map((td) => td.textContent));
  assert.equal(run[2], 'train → prune');
  assert.equal(run[4], '80.0%');
  // The address bar now holds the recipe that ran.
  const shared = JSON.parse(new globalThis.URL(page.url()).searchParams.get('r'));
  assert.equal(shared.stages[0].prune.sparsity, 0.8);
  await page.screenshot({ path: path.join(artifacts, 'pruned.png'), fullPage: true });
  // Inside the models: the trained and the pruned one; pictures of the pruned first layer show
  // its pruned weights (80% of them), a confusion matrix over 1000 test images, misclassified ones.
  await page.waitForFunction(() => document.getElementById('inspect').dataset.pictures === '2', null, { timeout: 30_000 });
  assert.deepEqual(await page.$$eval('#inspect-model option', (os) => os.map((o) => o.textContent.split(':')[0])), ['trained', '1. prune']);
  const shown = Number(await page.getAttribute('#first-layer', 'data-shown'));
  const prunedPx = Number(await page.getAttribute('#first-layer', 'data-pruned'));
  assert.ok(shown === 64 * 784 && Math.abs(prunedPx / shown - 0.8) < 0.02, `pruned pixels ${prunedPx} of ${shown}`);
  assert.match(await page.textContent('#confusion caption'), /first 1000 test images/);
  // The weight histogram of W1 draws the 20% nonzero weights and counts the pruned 80% aside.
  assert.equal(Number(await page.getAttribute('#histogram', 'data-zeros')), Math.round(784 * 64 * 0.8));
  assert.equal(Number(await page.getAttribute('#histogram', 'data-nonzero')), 784 * 64 - Math.round(784 * 64 * 0.8));
  await page.selectOption('#histogram-layer', '1');
  assert.equal(Number(await page.getAttribute('#histogram', 'data-zeros')), Math.round(640 * 0.8));
  const cells = await page.$$eval('#confusion td', (tds) => tds.map((td) => Number(td.textContent)));
  assert.equal(cells.reduce((a, b) => a + b, 0), 1000);
  assert.ok((await page.locator('#misclassified figure').count()) > 0);
  // Draw a "1": a vertical stroke. Both models predict, side by side, and the pruned model's
  // picture differs from the trained one's (its first layer is 80% zeros).
  await drawOne(page);
  await page.waitForFunction(() => document.querySelectorAll('#predictions .prediction').length === 2, null, { timeout: 30_000 });
  const tops = await page.$$eval('#predictions .prediction', (els) => els.map((e) => e.dataset.top));
  assert.equal(await page.locator('#predictions .prediction').first().locator('.bar-row').count(), 10);
  assert.deepEqual(tops, ['1', '1'], `a vertical stroke is a 1 to both models: ${tops}`);
  await page.locator('#inspect').screenshot({ path: path.join(artifacts, 'inspect.png') });
  // Downloads: the pruned model's file (SQZM, 5-bit relative indices: far smaller than the
  // trained model's), the results as JSON and CSV, a chart as PNG.
  const { readFileSync } = await import('node:fs');
  const save = async (click) => {
    const [d] = await Promise.all([page.waitForEvent('download'), click()]);
    const to = path.join(artifacts, d.suggestedFilename());
    await d.saveAs(to);
    return readFileSync(to);
  };
  const prunedFile = await save(() => page.click('#download-model'));
  assert.equal(prunedFile.subarray(0, 4).toString(), 'SQZM');
  assert.equal(String(prunedFile.length), await page.getAttribute('#model-file-size', 'data-bytes'));
  // The same model as ONNX, run in ONNX Runtime on the first 1000 test images: its top-1 matches
  // the page's confusion matrix of this model on those images (same correct count, within 2).
  const onnxFile = await save(() => page.click('#download-onnx'));
  assert.equal(await page.getAttribute('#model-file-size', 'data-format'), 'onnx');
  assert.equal(String(onnxFile.length), await page.getAttribute('#model-file-size', 'data-bytes'));
  const ort = (await import('../../interop/node_modules/onnxruntime-node/dist/index.js')).default;
  const session = await ort.InferenceSession.create(onnxFile);
  const testImages = readFileSync(path.join(www, 'public/data/mnist/t10k-images-idx3-ubyte')).subarray(16, 16 + 1000 * 784);
  const testLabels = readFileSync(path.join(www, 'public/data/mnist/t10k-labels-idx1-ubyte')).subarray(8, 1008);
  const { logits } = await session.run({ image: new ort.Tensor('float32', Float32Array.from(testImages, (p) => p / 255), [1000, 1, 28, 28]) });
  let correct = 0;
  for (let r = 0; r < 1000; r++) {
    const row = Array.from(logits.data.subarray(r * 10, r * 10 + 10));
    correct += row.indexOf(Math.max(...row)) === testLabels[r];
  }
  const diagonal = cells.filter((_, i) => i % 11 === 0).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(correct - diagonal) <= 2, `ONNX Runtime ${correct} right, the page's confusion matrix ${diagonal}`);
  await page.selectOption('#inspect-model', '1');
  const trainedFile = await save(() => page.click('#download-model'));
  assert.ok(prunedFile.length < trainedFile.length / 3, `pruned ${prunedFile.length} vs trained ${trainedFile.length} bytes`);
  // The size-by-stage chart states those same file sizes.
  const sizes = await page.getAttribute('#size-by-stage', 'aria-label');
  assert.ok(sizes.includes(`trained ${trainedFile.length} bytes`) && sizes.includes(`1. prune ${prunedFile.length} bytes`), sizes);
  const results = JSON.parse((await save(() => page.click('#download-json'))).toString());
  assert.equal(results.report.stages.length, 2);
  assert.equal(results.recipe.stages[0].prune.sparsity, 0.8);
  const csv = (await save(() => page.click('#download-csv'))).toString().trim().split('\n');
  assert.equal(csv.length, 4, csv.join(' | '));
  assert.match(csv[0], /^stage,name,epoch,/);
  const png = await save(() => page.click('button[aria-label^="Download this chart as PNG (accuracy)"]'));
  assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
  assert.deepEqual(errors, []);
  await page.close();
});

test('quantize and sweep stages run from the pipeline editor: waterfall, int8 timing, accuracy versus bits, stored levels, draw-a-digit', { timeout: 240_000 }, async () => {
  const { page, errors } = await openPage();
  await fillAll(page, { '#limit-train': '2000', '#limit-test': '500', '#hidden': '64', '#epochs': '1', '#batch': '32', '#lr': '0.01' });
  for (let i = 0; i < 2; i++) {
    await page.selectOption('#add-stage-kind', 'quantize');
    await page.click('#add-stage');
  }
  // Stage 1: 8-bit PTQ of weights and activations (the defaults). Stage 2: k-means 3-bit with
  // centroid fine-tuning, activations float.
  await page.selectOption('#stage-1-scheme', 'kmeans');
  await fillAll(page, { '#stage-1-bits': '3', '#stage-1-ft_epochs': '1' });
  await page.selectOption('#stage-1-act_bits', 'off');
  await page.selectOption('#stage-1-mode', 'qat');
  await page.selectOption('#stage-1-biases', 'f16');
  // Stage 3: a bit-width sweep (symmetric at 8 and 2 bits) of the model the k-means stage left.
  await page.selectOption('#add-stage-kind', 'sweep');
  await page.click('#add-stage');
  await fillAll(page, { '#stage-2-schemes': 'symmetric', '#stage-2-bits': '8, 2', '#stage-2-budget': '0.02' });
  await page.click('#train');
  await runEnds(page, 220_000);
  assert.equal(await page.textContent('#error'), '');
  const shared = JSON.parse(new globalThis.URL(page.url()).searchParams.get('r'));
  assert.deepEqual(shared.stages.map((s) => Object.keys(s)[0]), ['quantize', 'quantize', 'sweep']);
  assert.deepEqual(shared.stages[2].sweep.bits, [8, 2]);
  // The sweep draws a point per width and names its mixed-precision proposal.
  assert.equal(await page.getAttribute('.sweep', 'data-points'), '2');
  assert.match(await page.textContent('.stage-result[data-stage="3"] .facts'), /Mixed precision within 2\.00 pp: bits/);
  assert.equal(shared.stages[1].quantize.weights.scheme, 'kmeans');
  assert.equal(shared.stages[1].quantize.biases, 'f16');
  // Each stage's waterfall falls from dense f32 to what is stored; 3-bit stores less than 8-bit.
  const falls = await page.$$eval('.waterfall', (els) => els.map((e) => e.dataset.bytes.split(',').map(Number)));
  assert.equal(falls.length, 2);
  for (const f of falls) assert.ok(f[0] > f[2] && f[2] >= f[3], `waterfall ${f}`);
  assert.ok(falls[1][3] < falls[0][3] / 2, `3-bit ${falls[1][3]} vs 8-bit ${falls[0][3]} bytes`);
  assert.match(await page.textContent('.stage-result[data-stage="1"] .facts'), /symmetric 8-bit/);
  // The 8-bit stage runs in integers: f32 and int8 inference timed side by side; k-means says why not.
  const us = await page.$$eval('.int8-time', (els) => els.map((e) => e.dataset.us.split(',').map(Number)));
  assert.equal(us.length, 1);
  assert.ok(us[0].length >= 2 && us[0].every((t) => t > 0), `int8 timings ${us[0]}`);
  assert.match(await page.textContent('.stage-result[data-stage="2"] .int8-note'), /No integer inference/);
  // Accuracy versus bits: one point per stage.
  assert.equal(await page.getAttribute('#bits-chart', 'data-points'), '2');
  assert.match(await page.getAttribute('#bits-chart', 'aria-label'), /kmeans: 3 bits [\d.]+%/);
  // Inside the k-means model: its histogram draws the 8 stored values; draw-a-digit asks all three models.
  await page.waitForFunction(() => document.getElementById('inspect').dataset.pictures, null, { timeout: 30_000 });
  await page.selectOption('#inspect-model', '3');
  await page.waitForFunction(() => document.getElementById('inspect').dataset.pictures === '3', null, { timeout: 30_000 });
  assert.ok(Number(await page.getAttribute('#histogram', 'data-levels')) <= 8 && Number(await page.getAttribute('#histogram', 'data-levels')) >= 2);
  await drawOne(page);
  await page.waitForFunction(() => document.querySelectorAll('#predictions .prediction').length === 3, null, { timeout: 30_000 });
  // The 8-bit model leaves as QDQ ONNX: int8 weights and quantized activations, which ONNX Runtime runs.
  await page.selectOption('#inspect-model', '2');
  const [d] = await Promise.all([page.waitForEvent('download'), page.click('#download-onnx')]);
  assert.match(d.suggestedFilename(), /\.onnx$/);
  const { readFileSync } = await import('node:fs');
  await d.saveAs(path.join(artifacts, d.suggestedFilename()));
  const qdq = readFileSync(path.join(artifacts, d.suggestedFilename()));
  assert.ok(qdq.includes('QuantizeLinear') && qdq.includes('DequantizeLinear'), 'a QDQ graph');
  const ort = (await import('../../interop/node_modules/onnxruntime-node/dist/index.js')).default;
  const { logits } = await (await ort.InferenceSession.create(qdq)).run({ image: new ort.Tensor('float32', new Float32Array(2 * 784).fill(0.5), [2, 1, 28, 28]) });
  assert.deepEqual(logits.dims, [2, 10]);
  assert.ok(logits.data.every(Number.isFinite));
  await page.screenshot({ path: path.join(artifacts, 'quantized.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('a distill stage from the pipeline editor runs and shows the student beside its labels-only twin and the teacher', { timeout: 240_000 }, async () => {
  const { page, errors } = await openPage();
  await fillAll(page, { '#limit-train': '2000', '#limit-test': '500', '#hidden': '64', '#epochs': '1', '#batch': '32', '#lr': '0.05' });
  await page.selectOption('#add-stage-kind', 'distill');
  await page.click('#add-stage');
  await fillAll(page, { '#stage-0-hidden': '16', '#stage-0-temperature': '3', '#stage-0-alpha': '0.7', '#stage-0-epochs': '1', '#stage-0-omit': '3', '#stage-0-bias': '2', '#stage-0-hints': '1:1:0.5' });
  await page.selectOption('#add-stage-kind', 'distill-grid');
  await page.click('#add-stage');
  await fillAll(page, { '#stage-1-hidden': '32', '#stage-1-temperatures': '1, 4', '#stage-1-alphas': '0, 0.9', '#stage-1-epochs': '2' });
  await page.click('#train');
  await runEnds(page, 220_000);
  assert.equal(await page.textContent('#error'), '');
  const shared = JSON.parse(new globalThis.URL(page.url()).searchParams.get('r'));
  assert.deepEqual(shared.stages[0].distill.student, { arch: 'mlp', hidden: [16] });
  assert.equal(shared.stages[0].distill.temperature, 3);
  assert.deepEqual([shared.stages[0].distill.omit, shared.stages[0].distill.bias_correction], [[3], 2]);
  assert.deepEqual(shared.stages[0].distill.hints, [{ student: 1, teacher: 1, weight: 0.5 }]);
  const box = page.locator('.stage-result[data-stage="1"]');
  const [student, baseline, teacher] = await Promise.all(['student', 'baseline', 'teacher'].map((k) => box.getAttribute(`data-${k}`)));
  for (const v of [student, baseline, teacher]) assert.ok(Number(v) > 0.5, `accuracies ${student} ${baseline} ${teacher}`);
  assert.match(await box.locator('.facts').first().textContent(), /Student .*labels alone .*teacher .*agree on.*Hints: student node 1 → teacher node 1/);
  // The omitted class: reported before and after the bias shift (a raised bias only wins 3s).
  const omitted = box.locator('.facts.omitted');
  assert.match(await omitted.textContent(), /Class 3 left out .*never saw one.*after raising their bias by 2/);
  assert.ok(Number(await omitted.getAttribute('data-after')) >= Number(await omitted.getAttribute('data-before')));
  // The temperature plot: the teacher's probabilities of one test image soften as T rises.
  const bars = box.locator('.temperature-bars');
  const probs = async () => (await bars.getAttribute('data-probabilities')).split(',').map(Number);
  const atT = await probs();
  assert.equal(atT.length, 10);
  await box.locator('.temperature input[type=range]').fill('20');
  const hot = await probs();
  assert.ok(Math.max(...hot) < Math.max(...atT), `T = 20 did not soften: ${atT} -> ${hot}`);
  assert.ok(Math.abs(hot.reduce((a, b) => a + b, 0) - 1) < 1e-3);
  assert.equal(await bars.locator('.prediction').count(), 2);
  // The runs table: the student after the teacher, and student / labels-only / teacher accuracies.
  const cells = await page.$$eval('#runs-table tbody tr:last-child td', (tds) => tds.map((t) => t.textContent));
  assert.match(cells[1], /^mlp 64 → mlp 16$/);
  assert.match(cells[2], /^train → distill → distill-grid$/);
  assert.match(cells[8], /^\d+\.\d\d% \/ \d+\.\d\d% \/ \d+\.\d\d%$/);
  await box.screenshot({ path: path.join(artifacts, 'distilled.png') });
  // The T × α grid: a heat map of 2 × 2 students; with α = 0 (labels only) T cannot matter.
  const grid = page.locator('.stage-result[data-stage="2"] table.heatmap');
  const acc = await grid.locator('td').evaluateAll((tds) => tds.map((t) => t.dataset.accuracy));
  assert.equal(acc.length, 4);
  assert.equal(acc[0], acc[1], `alpha 0 row differs across T: ${acc}`);
  assert.ok(acc.every((a) => Number(a) > 0.3), `${acc}`);
  await page.locator('.stage-result[data-stage="2"]').screenshot({ path: path.join(artifacts, 'distill-grid.png') });
  // One click loads Hinton's omitted-3 experiment into the controls.
  await page.click('#preset-omitted-3');
  assert.equal(await page.inputValue('#arch'), 'lenet5');
  assert.equal(await page.inputValue('#limit-test'), '10000');
  assert.deepEqual(await page.$$eval('#pipeline fieldset.stage', (els) => els.map((e) => e.dataset.kind)), ['distill']);
  assert.equal(await page.inputValue('#pipeline fieldset.stage input[data-key=omit]'), '3');
  assert.deepEqual(errors, []);
  await page.close();
});

test('a downloaded .sqz model teaches a student in a later run; a bad file is refused beside its picker; a shared link asks for the file', { timeout: 240_000 }, async () => {
  const { page, errors } = await openPage();
  const { readFileSync, writeFileSync } = await import('node:fs');
  await fillAll(page, { '#limit-train': '2000', '#limit-test': '500', '#hidden': '64', '#epochs': '1', '#batch': '32', '#lr': '0.05' });
  await page.click('#train');
  await runEnds(page, 120_000);
  assert.equal(await page.textContent('#error'), '');
  const teacherAccuracy = await page.$eval('#runs-table tbody tr:last-child td:nth-child(4)', (td) => td.textContent);
  const [d] = await Promise.all([page.waitForEvent('download'), page.click('#download-model')]);
  const teacherFile = path.join(artifacts, d.suggestedFilename());
  await d.saveAs(teacherFile);
  assert.equal(readFileSync(teacherFile).subarray(0, 4).toString(), 'SQZM');
  // A second run on fewer images (another input normalisation) with a smaller model, distilled
  // from the file. A file that is not a model is refused next to its picker first.
  await fillAll(page, { '#limit-train': '1500', '#hidden': '8' });
  await page.selectOption('#add-stage-kind', 'distill');
  await page.click('#add-stage');
  await fillAll(page, { '#stage-0-hidden': '16', '#stage-0-epochs': '1', '#stage-0-temperature': '3' });
  const bad = path.join(artifacts, 'not-a-model.sqz');
  writeFileSync(bad, 'hello, I am not a model');
  await page.setInputFiles('#stage-0-teacherFile', bad);
  await page.waitForSelector('#stage-0-teacherFile-status.error', { timeout: 30_000 });
  assert.match(await page.textContent('#stage-0-teacherFile-status'), /not-a-model\.sqz: .*SQZM/);
  assert.equal(await page.inputValue('#stage-0-teacher'), 'so-far');
  await page.setInputFiles('#stage-0-teacherFile', teacherFile);
  await page.waitForSelector('#stage-0-teacherFile-status[data-loaded=true]', { timeout: 30_000 });
  assert.match(await page.textContent('#stage-0-teacherFile-status'), /mlp, 50,890 parameters, 28×28 images, 10 classes/);
  assert.equal(await page.inputValue('#stage-0-teacher'), 'file');
  await page.click('#train');
  await runEnds(page, 180_000);
  assert.equal(await page.textContent('#error'), '');
  const box = page.locator('.stage-result[data-stage="1"]');
  // The teacher is the first run's model, evaluated as it was trained: the same accuracy.
  assert.equal(`${(100 * Number(await box.getAttribute('data-teacher'))).toFixed(2)}%`, teacherAccuracy);
  assert.match(await box.locator('.facts').first().textContent(), new RegExp(`teacher .*file ${path.basename(teacherFile).replace('.', '\\.')}`));
  const cells = await page.$$eval('#runs-table tbody tr:last-child td', (tds) => tds.map((t) => t.textContent));
  assert.equal(cells[1], `mlp 8 → (${path.basename(teacherFile)}) mlp 16`);
  // Its link names the file; a page opened from it asks for the file and will not run without it.
  const shared = page.url();
  assert.deepEqual(JSON.parse(new globalThis.URL(shared).searchParams.get('r')).stages[0].distill.teacher, { file: path.basename(teacherFile) });
  const { page: other } = await openPage();
  await other.goto(shared);
  await other.waitForFunction(() => document.getElementById('adapter').dataset.backend, null, { timeout: 60_000 });
  assert.match(await other.textContent('#stage-0-teacherFile-status'), /not loaded on this page/);
  await other.click('#train');
  await runEnds(other, 60_000);
  assert.match(await other.textContent('#error'), /stages\[0\]\.distill\.teacher\.file.*not loaded/);
  assert.deepEqual(errors, []);
  await other.close();
  await page.close();
});

test('a shared link opens the page with the same recipe, and a broken one says so', { timeout: 120_000 }, async () => {
  const recipe = {
    dataset: 'fashion-mnist', seed: 7, limit: { train: 1234, test: 567, holdout: 200 },
    model: { arch: 'mlp', hidden: [50, 20] },
    train: { epochs: 3, batch: 16, optimizer: 'adam', lr: 0.002, momentum: 0.9, weight_decay: 0.0001, schedule: 'constant' },
    stages: [
      { sensitivity: { sparsities: [0, 0.5, 0.9], criterion: 'magnitude' } },
      { prune: { granularity: 'neuron', criterion: 'l2', sparsity: [0.5, 0.25], scope: 'layer', mode: 'hard', rounds: 2, schedule: 'polynomial', rewind: { epoch: 1 }, control: true,
                 finetune: { batch: 16, optimizer: 'adam', momentum: 0.9, weight_decay: 0.0001, schedule: 'constant', epochs: 2, lr: 0.001 } } },
      { greedy: { sparsity: 0.8, chunk: 0.1, tolerance: 0.01 } },
    ],
  };
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${URL}?r=${encodeURIComponent(JSON.stringify(recipe))}`);
  await page.waitForFunction(() => document.getElementById('adapter').dataset.backend, null, { timeout: 60_000 });
  assert.equal(await page.inputValue('#dataset'), 'fashion-mnist');
  assert.equal(await page.inputValue('#hidden'), '50, 20');
  assert.equal(await page.inputValue('#optimizer'), 'adam');
  assert.deepEqual(await page.$$eval('#pipeline fieldset.stage', (els) => els.map((e) => e.dataset.kind)), ['sensitivity', 'prune', 'greedy']);
  assert.equal(await page.inputValue('#limit-holdout'), '200');
  assert.equal(await page.inputValue('#stage-1-sparsity'), '0.5, 0.25');
  assert.equal(await page.inputValue('#stage-1-granularity'), 'neuron');
  // Copy link gives back exactly the recipe that came in.
  await page.click('#share');
  const again = JSON.parse(new globalThis.URL(await page.inputValue('#share-link')).searchParams.get('r'));
  assert.deepEqual(again, recipe);
  assert.equal(await page.textContent('#error'), '');
  await page.screenshot({ path: path.join(artifacts, 'shared-link.png'), fullPage: true });
  // A recipe with every field set (www/tests/every-field.json; tests/recipe.rs checks it is valid
  // and complete) comes back from the link exactly, controls or not.
  const { readFileSync } = await import('node:fs');
  const full = JSON.parse(readFileSync(path.join(www, 'tests', 'every-field.json'), 'utf8'));
  await page.goto(`${URL}?r=${encodeURIComponent(JSON.stringify(full))}`);
  await page.waitForFunction(() => document.getElementById('adapter').dataset.backend, null, { timeout: 60_000 });
  assert.equal(await page.textContent('#error'), '');
  assert.equal(await page.inputValue('#l1'), '0.00001');
  await page.click('#share');
  assert.deepEqual(JSON.parse(new globalThis.URL(await page.inputValue('#share-link')).searchParams.get('r')), full);
  await page.goto(`${URL}?r=${encodeURIComponent(JSON.stringify(recipe))}`);
  await page.waitForFunction(() => document.getElementById('adapter').dataset.backend, null, { timeout: 60_000 });
  // Reorder and remove stages; the recipe follows.
  const kinds = () => page.$$eval('#pipeline fieldset.stage', (els) => els.map((e) => e.dataset.kind));
  await page.click('button[aria-label^="Move up stage 3"]');
  assert.deepEqual(await kinds(), ['sensitivity', 'greedy', 'prune']);
  await page.click('button[aria-label^="Remove stage 1"]');
  assert.deepEqual(await kinds(), ['greedy', 'prune']);
  await page.click('#share');
  const edited = JSON.parse(new globalThis.URL(await page.inputValue('#share-link')).searchParams.get('r'));
  assert.deepEqual(edited.stages, [recipe.stages[2], recipe.stages[1]]);
  // A malformed link: the error is shown, the page still works with its defaults.
  await page.goto(`${URL}?r=%7Bnot-json`);
  await page.waitForFunction(() => document.getElementById('adapter').dataset.backend, null, { timeout: 60_000 });
  assert.match(await page.textContent('#error'), /shared link's recipe could not be read/);
  assert.equal(await page.inputValue('#hidden'), '300, 100');
  assert.equal(await page.isDisabled('#train'), false);
  assert.deepEqual(errors, []);
  await page.close();
});

test('your own IDX files: a corrupt one is reported next to the picker, good ones load and train', { timeout: 180_000 }, async () => {
  const { mkdtempSync, copyFileSync, readFileSync, writeFileSync, truncateSync } = await import('node:fs');
  const os = await import('node:os');
  const mnist = path.join(www, 'public', 'data', 'mnist');
  const dir = (name) => {
    const d = mkdtempSync(path.join(os.tmpdir(), `squeeze-${name}-`));
    for (const [to, from] of [['train-images-idx3-ubyte', 't10k-images-idx3-ubyte'], ['train-labels-idx1-ubyte', 't10k-labels-idx1-ubyte'], ['t10k-images-idx3-ubyte', 't10k-images-idx3-ubyte'], ['t10k-labels-idx1-ubyte', 't10k-labels-idx1-ubyte']]) {
      copyFileSync(path.join(mnist, from), path.join(d, to));
    }
    return d;
  };
  const files = (d) => ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'].map((f) => path.join(d, f));
  const bad = dir('bad');
  // The training images cut off mid-image.
  writeFileSync(path.join(bad, 'train-images-idx3-ubyte'), readFileSync(path.join(bad, 'train-images-idx3-ubyte')).subarray(0, 5000));
  const good = dir('good');

  const { page, errors } = await openPage();
  await page.selectOption('#dataset', 'custom');
  assert.equal(await page.isVisible('#idx-files'), true);
  // Run before loading anything: a clear error, nothing breaks.
  await page.click('#train');
  await page.waitForFunction(() => document.getElementById('error').textContent.length > 0, null, { timeout: 30_000 });
  assert.match(await page.textContent('#error'), /Load your IDX files first/);
  // A corrupt file: the message names it, next to the picker.
  await page.setInputFiles('#idx-files', files(bad));
  await page.waitForFunction(() => document.getElementById('idx-status').className === 'error', null, { timeout: 30_000 });
  const message = await page.textContent('#idx-status');
  assert.match(message, /train-images-idx3-ubyte/, message);
  await page.locator('#controls fieldset').first().screenshot({ path: path.join(artifacts, 'corrupt-idx.png') });
  // Three files are not a dataset.
  await page.setInputFiles('#idx-files', files(good).slice(0, 3));
  await page.waitForFunction(() => /exactly four IDX files/.test(document.getElementById('idx-status').textContent), null, { timeout: 30_000 });
  // The good files load and train.
  await page.setInputFiles('#idx-files', files(good));
  await page.waitForFunction(() => document.getElementById('idx-status').dataset.loaded === 'true', null, { timeout: 30_000 });
  assert.match(await page.textContent('#idx-status'), /10000 training and 10000 test images of 28×28/);
  await fillAll(page, { '#limit-train': '2000', '#limit-test': '500', '#hidden': '32', '#epochs': '1' });
  await page.click('#train');
  await page.waitForFunction(() => document.getElementById('status').dataset.done === 'true' || document.getElementById('status').textContent.startsWith('Stopped'), null, { timeout: 100_000 });
  assert.equal(await page.textContent('#error'), '');
  const acc = await firstTestAccuracy(page);
  assert.ok(acc >= 60, `one epoch on 2000 of the user's digits: ${acc}`);
  await page.waitForFunction(() => document.getElementById('inspect').dataset.pictures !== undefined, null, { timeout: 30_000 });
  assert.equal(await page.getAttribute('#confusion', 'data-error'), null);
  // A file over the page's size limit is refused before it is read; what was loaded stays.
  const huge = dir('huge');
  truncateSync(path.join(huge, 'train-images-idx3-ubyte'), 300 << 20); // sparse: nothing is written
  await page.setInputFiles('#idx-files', files(huge));
  await page.waitForFunction(() => document.getElementById('idx-status').className === 'error', null, { timeout: 30_000 });
  assert.match(await page.textContent('#idx-status'), /train-images-idx3-ubyte is 300 MB; the page reads IDX files up to 256 MB each/);
  // Files of another image size: the same bytes as four times as many 14x14 images. The model
  // trained on 28x28 no longer gets a confusion matrix (it would read four images as one), but
  // an error in its place; the new files train a model of their own.
  const small = dir('small');
  for (const f of ['train-images-idx3-ubyte', 't10k-images-idx3-ubyte']) {
    const b = readFileSync(path.join(small, f));
    const n = b.readUInt32BE(4);
    b.writeUInt32BE(4 * n, 4);
    b.writeUInt32BE(14, 8);
    b.writeUInt32BE(14, 12);
    writeFileSync(path.join(small, f), b);
  }
  for (const f of ['train-labels-idx1-ubyte', 't10k-labels-idx1-ubyte']) {
    const b = readFileSync(path.join(small, f));
    const body = b.subarray(8);
    const out = Buffer.concat([b.subarray(0, 8), ...Array.from({ length: 4 }, () => body)]);
    out.writeUInt32BE(4 * body.length, 4);
    writeFileSync(path.join(small, f), out);
  }
  await page.setInputFiles('#idx-files', files(small));
  await page.waitForFunction(() => document.getElementById('confusion').dataset.error === 'true', null, { timeout: 30_000 });
  assert.match(await page.textContent('#confusion'), /reads 28x28x1 images; these images are 14x14x1/);
  assert.match(await page.textContent('#idx-status'), /40000 training and 40000 test images of 14×14/);
  await page.click('#train');
  await runEnds(page, 100_000);
  assert.equal(await page.textContent('#error'), '');
  await page.waitForFunction(() => document.getElementById('confusion').dataset.error === undefined, null, { timeout: 30_000 });
  assert.deepEqual(errors, []);
  await page.close();
});

test('a run pauses, holds still while paused, resumes and finishes', { timeout: 180_000 }, async () => {
  const { page, errors } = await openPage();
  await fillAll(page, { '#limit-train': '3000', '#limit-test': '500', '#hidden': '64', '#epochs': '2' });
  await page.click('#train');
  // Pressed in the same page task that sees the progress (a separate click can come after a
  // loaded machine's run has already finished).
  await page.waitForFunction(() => {
    if (!(document.getElementById('progress').value > 0.15)) return false;
    document.getElementById('pause').click();
    return true;
  }, null, { timeout: 60_000 });
  assert.equal(await page.getAttribute('#pause', 'aria-pressed'), 'true');
  await page.waitForTimeout(1000); // events already on their way arrive
  const held = await page.$eval('#progress', (p) => p.value);
  const rows = await page.locator('#epochs-table tbody tr').count();
  await page.waitForTimeout(3000);
  assert.equal(await page.$eval('#progress', (p) => p.value), held, 'no progress while paused');
  assert.equal(await page.locator('#epochs-table tbody tr').count(), rows);
  assert.match(await page.textContent('#status'), /Paused/);
  await page.click('#pause');
  assert.equal(await page.textContent('#pause'), 'Pause');
  await runEnds(page, 120_000);
  assert.equal(await page.textContent('#error'), '');
  assert.equal(await page.locator('#epochs-table tbody tr').count(), 2);
  assert.deepEqual(errors, []);
  await page.close();
});

test('choosing an architecture sets its recipe\'s training settings except the user\'s own; LeNet-5 at the MLP\'s lr is stopped with the cause', { timeout: 180_000 }, async () => {
  const { page, errors } = await openPage();
  await fillAll(page, { '#epochs': '1' });
  await page.selectOption('#arch', 'lenet5');
  assert.deepEqual(await Promise.all(['#lr', '#weight-decay', '#epochs', '#batch', '#momentum'].map((id) => page.inputValue(id))), ['0.01', '0.0005', '1', '64', '0.9']);
  assert.match(await page.textContent('#arch-defaults'), /lenet5 from recipes\/lenet5\.json: .*lr 0\.01.*your own epochs kept/);
  await page.selectOption('#arch', 'mlp');
  assert.equal(await page.inputValue('#lr'), '0.05');
  assert.equal(await page.inputValue('#weight-decay'), '0');
  // The new user's mistake from the issue: LeNet-5 at the MLP's learning rate, typed in.
  await fillAll(page, { '#limit-train': '2000', '#limit-test': '300', '#lr': '0.05' });
  await page.selectOption('#arch', 'lenet5');
  assert.equal(await page.inputValue('#lr'), '0.05');
  await page.click('#train');
  await runEnds(page, 150_000);
  assert.match(await page.textContent('#error'), /diverged.*stage `train`.*Likely cause: lr 0\.05 is high for lenet5 with momentum 0\.9; its recipe \(recipes\/lenet5\.json\) uses 0\.01/);
  assert.notEqual(await page.getAttribute('#status', 'data-done'), 'true');
  // The shared link keeps the choice of what divergence does.
  await page.selectOption('#divergence', 'warn');
  await page.click('#share');
  assert.equal(JSON.parse(new globalThis.URL(await page.inputValue('#share-link')).searchParams.get('r')).divergence, 'warn');
  assert.deepEqual(errors, []);
  await page.close();
});

test('a diverging run says so and the page keeps its earlier results and models', { timeout: 180_000 }, async () => {
  const { page, errors } = await openPage();
  await fillAll(page, { '#limit-train': '1000', '#limit-test': '300', '#hidden': '32', '#epochs': '1' });
  await page.click('#train');
  await page.waitForFunction(() => document.getElementById('status').dataset.done === 'true', null, { timeout: 100_000 });
  await page.waitForFunction(() => document.getElementById('inspect').dataset.pictures === '1', null, { timeout: 30_000 });
  // A learning rate of 10 with momentum 0.999: the loss becomes NaN within the first epoch
  // (measured natively: step 15 of MLP 32-32 on 1,000 digits).
  await fillAll(page, { '#hidden': '32, 32', '#lr': '10', '#momentum': '0.999', '#epochs': '3' });
  await page.click('#train');
  await page.waitForFunction(() => document.getElementById('error').textContent.length > 0, null, { timeout: 100_000 });
  assert.match(await page.textContent('#error'), /diverged.*Likely cause: lr 10 is high for mlp with momentum 0\.999; its recipe \(recipes\/lenet-300-100\.json\) uses 0\.05/);
  assert.equal(await page.isDisabled('#train'), false);
  // The first run's row, models and pictures are still there.
  assert.equal(await page.locator('#runs-table tbody tr').count(), 1);
  assert.equal(await page.isVisible('#inspect'), true);
  assert.deepEqual(await page.$$eval('#inspect-model option', (os) => os.map((o) => o.textContent.split(':')[0])), ['trained']);
  await page.screenshot({ path: path.join(artifacts, 'diverged.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('the page runs under a Content-Security-Policy without eval or inline script, and text from a link never becomes markup', { timeout: 180_000 }, async () => {
  const { readFileSync, readdirSync } = await import('node:fs');
  // The policy: sent by vite preview (scripts/serve) and carried by the built page.
  const header = (await fetch(URL)).headers.get('content-security-policy') ?? '';
  for (const policy of [header, readFileSync(path.join(www, 'dist', 'index.html'), 'utf8').match(/http-equiv="Content-Security-Policy" content="([^"]*)"/)?.[1]?.replaceAll('&#39;', "'") ?? '']) {
    assert.match(policy, /script-src 'self' 'wasm-unsafe-eval'(;|$)/, policy);
    assert.match(policy, /object-src 'none'/, policy);
    assert.doesNotMatch(policy, /(^|\s)'unsafe-eval'|unsafe-inline|\*/, policy);
  }
  assert.match(header, /frame-ancestors 'none'/);
  // A link whose recipe carries markup: the error shows it as text, nothing runs.
  const page = await browser.newPage();
  const errors = [];
  const violations = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => /Content Security Policy/i.test(m.text()) && violations.push(m.text()));
  const workerPolicies = [];
  page.on('response', (r) => /worker[^/]*\.js$/.test(r.url()) && workerPolicies.push(r.headers()['content-security-policy'] ?? ''));
  const markup = '<img src=x onerror="window.__xss=1">';
  await page.goto(`${URL}?backend=webgpu&r=${encodeURIComponent(JSON.stringify({ dataset: 'mnist', stages: [{ [markup]: {} }] }))}`);
  await page.waitForFunction(() => document.getElementById('adapter').dataset.backend, null, { timeout: 60_000 });
  assert.ok((await page.textContent('#error')).includes('<img src=x'), await page.textContent('#error'));
  assert.equal(await page.locator('#error img, body img[src="x"]').count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  // The engine started in its worker under the same policy (its WebAssembly compiled with
  // 'wasm-unsafe-eval'), and trains.
  assert.equal(await page.getAttribute('#adapter', 'data-backend'), 'webgpu', await page.textContent('#adapter'));
  assert.ok(workerPolicies.length > 0 && workerPolicies.every((p) => p === header), `worker policies ${JSON.stringify(workerPolicies)}`);
  await page.goto(`${URL}?backend=webgpu`);
  await page.waitForFunction(() => document.getElementById('adapter').dataset.backend, null, { timeout: 60_000 });
  await fillAll(page, { '#limit-train': '512', '#limit-test': '256', '#epochs': '1', '#hidden': '16' });
  await page.click('#train');
  await runEnds(page, 120_000);
  assert.equal(await page.textContent('#error'), '');
  assert.deepEqual(violations, [], 'the page itself breaks none of its policy');
  // What the policy forbids is refused: eval, and a script element added at run time.
  // (Code run through DevTools may eval; a string handed to the page's timer is the page's eval.)
  const blocked = await page.evaluate(async () => {
    setTimeout('window.__timer = 1', 0);
    await new Promise((ok) => setTimeout(ok, 200));
    const s = document.createElement('script');
    s.textContent = 'window.__inline = 1';
    document.head.append(s);
    return [window.__timer, window.__inline];
  });
  assert.deepEqual(blocked, [undefined, undefined]);
  assert.ok(violations.length >= 2, `violations reported: ${JSON.stringify(violations)}`);
  assert.deepEqual(errors, []);
  await page.close();
  // No page script writes markup from strings: text goes in with textContent.
  const src = path.join(www, 'src');
  for (const f of readdirSync(src).filter((f) => f.endsWith('.js'))) {
    assert.doesNotMatch(readFileSync(path.join(src, f), 'utf8'), /\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write/, f);
  }
});

test('a GPU device lost mid-run ends that run with a message, the earlier results stay, and the next run gets a new device', { timeout: 240_000 }, async () => {
  const { page, errors } = await openPage();
  await fillAll(page, { '#limit-train': '1000', '#limit-test': '300', '#hidden': '32', '#epochs': '1' });
  await page.click('#train');
  await runEnds(page, 100_000);
  assert.equal(await page.textContent('#error'), '');
  // A longer run, its device destroyed (as a driver reset would) once it is under way.
  await fillAll(page, { '#limit-train': '6000', '#epochs': '3' });
  await page.click('#train');
  await page.waitForFunction(() => {
    if (!(document.getElementById('progress').value > 0.1)) return false;
    window.squeezeSimulateDeviceLoss();
    return true;
  }, null, { timeout: 60_000 });
  await runEnds(page, 100_000);
  assert.match(await page.textContent('#error'), /the GPU device was lost.*next run starts on a new device/);
  assert.match(await page.textContent('#status'), /Stopped by an error/);
  assert.equal(await page.locator('#runs-table tbody tr').count(), 1, 'the first run stays');
  assert.equal(await page.isVisible('#inspect'), true);
  // No reload: the next run works, on a new device, and the banner says so.
  await fillAll(page, { '#limit-train': '1000', '#epochs': '1' });
  await page.click('#train');
  await runEnds(page, 100_000);
  assert.equal(await page.textContent('#error'), '');
  assert.equal(await page.locator('#runs-table tbody tr').count(), 2);
  assert.equal(await page.getAttribute('#adapter', 'data-backend'), 'webgpu');
  assert.match(await page.textContent('#adapter'), /the earlier GPU device was lost; this is a new one/);
  assert.ok((await firstTestAccuracy(page)) > 50);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a gallery entry runs as a quick look from one click and shows the paper beside the measured figures', { timeout: 240_000 }, async () => {
  const { page, errors } = await openPage('?backend=cpu');
  // Every entry of recipes/gallery.json has a card with its paper figures and two buttons.
  const cards = await page.$$eval('#gallery-entries .gallery-entry', (els) => els.map((e) => e.dataset.id));
  assert.ok(cards.length >= 13 && cards.includes('han-lenet-300-100') && cards.includes('deep-compression-lenet5'), cards.join(', '));
  assert.match(await page.textContent('.gallery-entry[data-id="han-lenet-300-100"]'), /1\.64% → 1\.59%/);
  await page.click('#gallery-details summary');
  await page.click('button[data-gallery="han-lenet-300-100"][data-quick="true"]');
  // The form shows the recipe that runs (once the worker has made the quick look): the file's
  // model and pruning, on the quick look's data.
  await page.waitForFunction(() => document.getElementById('limit-train').value === '5000', null, { timeout: 30_000 });
  assert.equal(await page.inputValue('#hidden'), '300, 100');
  assert.equal(await page.inputValue('#limit-train'), '5000');
  await runEnds(page, 200_000);
  assert.equal(await page.textContent('#error'), '');
  await page.waitForSelector('#gallery-result[data-entry="han-lenet-300-100"]', { timeout: 30_000 });
  const rows = await page.$$eval('#gallery-result tbody tr', (trs) => trs.map((tr) => ({ cells: [...tr.cells].map((c) => c.textContent), value: Number(tr.dataset.value), met: tr.dataset.met })));
  assert.equal(rows.length, 2);
  assert.equal(rows[0].cells[1], '1.64% → 1.59% (−0.05 pp)');
  // The measured error change is the runs' own: the dense epoch and the pruned model's accuracy.
  const acc = await page.$$eval('#epochs-table tbody tr td:nth-child(6)', (tds) => tds.map((td) => parseFloat(td.textContent)));
  const last = parseFloat(await page.$eval('#runs-table tbody tr:last-child td:nth-child(4)', (td) => td.textContent));
  assert.ok(Math.abs(rows[0].value - (acc[0] - last)) < 0.011, `${rows[0].value} vs ${acc[0]} - ${last}`);
  assert.match(rows[1].cells[2], /^8\.18% \(21,776 of 266,200/);
  assert.equal(rows[1].met, 'true');
  assert.match(await page.textContent('#gallery-result'), /quick look/);
  await page.screenshot({ path: path.join(artifacts, 'gallery.png'), fullPage: true });
  await page.locator('#gallery-result').screenshot({ path: path.join(artifacts, 'gallery-result.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('the Pareto chart holds every model of every run, matches the runs table, and a click opens that model', { timeout: 240_000 }, async () => {
  const { page, errors } = await openPage('?backend=cpu');
  // Two runs of different sizes (their points apart on both charts): MLP-32, then MLP-64 pruned to 90%.
  await fillAll(page, { '#limit-train': '2000', '#limit-test': '500', '#hidden': '32', '#epochs': '1' });
  await page.click('#train');
  await runEnds(page, 120_000);
  await fillAll(page, { '#hidden': '64' });
  await page.selectOption('#add-stage-kind', 'prune');
  await page.click('#add-stage');
  await fillAll(page, { '#stage-0-sparsity': '0.9', '#stage-0-rounds': '1', '#stage-0-ft_epochs': '1' });
  await page.click('#train');
  await page.waitForFunction(() => document.querySelectorAll('#runs-table tbody tr').length === 2 && document.getElementById('status').dataset.done === 'true', null, { timeout: 120_000 });
  assert.equal(await page.textContent('#error'), '');
  const points = JSON.parse(await page.getAttribute('#pareto', 'data-points'));
  // Run 1 left one model, run 2 two (trained, pruned): three points, each run's last one at the
  // runs table's accuracy, each with the bytes of its file and a measured latency.
  assert.deepEqual(points.map((p) => [p.run, p.stage]), [[1, 0], [2, 0], [2, 1]]);
  const table = await page.$$eval('#runs-table tbody tr', (trs) => trs.map((tr) => parseFloat(tr.children[3].textContent)));
  assert.equal(points[0].accuracy.toFixed(2), table[0].toFixed(2));
  assert.equal(points[2].accuracy.toFixed(2), table[1].toFixed(2));
  assert.ok(points[2].bytes < points[1].bytes / 3, `the 90% pruned file is smaller: ${points[2].bytes} vs ${points[1].bytes}`);
  assert.ok(points.every((p) => p.latency > 0));
  // The frontier on bytes holds the pruned model (the smallest) and no model beaten on both axes.
  const front = JSON.parse(await page.$eval('#pareto .chart', (d) => d.dataset.frontier));
  assert.ok(front.includes(points[2].id), front);
  for (const id of front) {
    const p = points.find((q) => q.id === id);
    assert.ok(!points.some((q) => q.bytes < p.bytes && q.accuracy >= p.accuracy), `frontier point ${id} is beaten`);
  }
  // Inside a model lists both runs' models; clicking run 1's point selects it and draws it.
  assert.equal(await page.locator('#inspect-model option').count(), 3);
  const plot = page.locator('#pareto .chart').first();
  await plot.scrollIntoViewIfNeeded();
  const at = await plot.evaluate((div, p) => {
    const over = div.querySelector('.u-over');
    const r = over.getBoundingClientRect();
    const xs = JSON.parse(div.dataset.xy);
    const hit = xs.find((q) => q.id === p.id);
    return { x: r.left + hit.x, y: r.top + hit.y };
  }, points[0]);
  await page.mouse.move(at.x, at.y);
  await page.mouse.click(at.x, at.y);
  await page.waitForFunction((id) => document.getElementById('inspect').dataset.pictures === String(id), points[0].id, { timeout: 30_000 });
  assert.equal(await page.inputValue('#inspect-model'), String(points[0].id));
  await page.locator('#pareto').screenshot({ path: path.join(artifacts, 'pareto.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('a .sqz and an ONNX file open in the page to look inside and try; a malformed one is refused and nothing is lost', { timeout: 240_000 }, async () => {
  const { page, errors } = await openPage('?backend=cpu');
  const { writeFileSync } = await import('node:fs');
  await fillAll(page, { '#limit-train': '2000', '#limit-test': '500', '#hidden': '48', '#epochs': '1' });
  await page.click('#train');
  await runEnds(page, 120_000);
  const saved = {};
  for (const [button, ext] of [['#download-model', 'sqz'], ['#download-onnx', 'onnx']]) {
    const [d] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
    saved[ext] = path.join(artifacts, `opened.${ext}`);
    await d.saveAs(saved[ext]);
  }
  const trainedAcc = await page.$eval('#runs-table tbody tr td:nth-child(4)', (td) => td.textContent);
  // A fresh page: nothing run yet. A malformed file is refused beside the picker.
  const { page: fresh } = await openPage('?backend=cpu');
  const bad = path.join(artifacts, 'broken.onnx');
  writeFileSync(bad, Buffer.from([8, 7, 18, 3, 1, 2]));
  await fresh.setInputFiles('#open-model', bad);
  await fresh.waitForSelector('#open-model-status.error', { timeout: 30_000 });
  assert.match(await fresh.textContent('#open-model-status'), /^broken\.onnx: /);
  assert.equal(await fresh.isHidden('#inspect'), true);
  for (const ext of ['sqz', 'onnx']) {
    await fresh.setInputFiles('#open-model', saved[ext]);
    await fresh.waitForFunction((name) => document.getElementById('open-model-status').dataset.loaded === 'true' && document.getElementById('open-model-status').textContent.startsWith(name), `opened.${ext}`, { timeout: 30_000 });
    assert.match(await fresh.textContent('#open-model-status'), /mlp, 38,170 parameters, 28×28 images, 10 classes/);
    // Inside it: judged on the form's dataset (MNIST, fetched now), its first 1,000 test images.
    await fresh.waitForFunction(() => document.getElementById('inspect').dataset.pictures, null, { timeout: 60_000 });
    await fresh.waitForSelector('#confusion td', { timeout: 30_000 });
  }
  // The two files are the same model: their confusion matrices agree, the opened ONNX file is a
  // distinct model in the list, and a drawn digit gets both files' predictions, equal.
  const options = await fresh.$$eval('#inspect-model option', (os) => os.map((o) => o.textContent));
  assert.equal(options.length, 2, options.join(' | '));
  await drawOne(fresh);
  await fresh.waitForFunction(() => document.querySelectorAll('#predictions .prediction').length === 2, null, { timeout: 30_000 });
  const probs = await fresh.$$eval('#predictions .prediction', (els) => els.map((e) => e.dataset.top));
  assert.equal(probs[0], probs[1]);
  // A malformed file after the good ones: refused, the opened models stay.
  await fresh.setInputFiles('#open-model', bad);
  await fresh.waitForSelector('#open-model-status.error', { timeout: 30_000 });
  assert.equal(await fresh.locator('#inspect-model option').count(), 2);
  // Compress the opened .sqz further: the form starts from it (its architecture, 0 epochs), a
  // prune stage runs on it, and stage 0 is the file's model as it was trained (same accuracy on
  // the same 500 test digits).
  await fresh.selectOption('#inspect-model', { label: await fresh.$eval('#inspect-model option', (o) => o.textContent) });
  await fresh.click('#compress-further');
  await fresh.waitForSelector('#from-status:not([hidden])', { timeout: 30_000 });
  assert.match(await fresh.textContent('#from-text'), /opened\.sqz/);
  assert.equal(await fresh.inputValue('#arch'), 'mlp');
  assert.equal(await fresh.inputValue('#hidden'), '48');
  assert.equal(await fresh.inputValue('#epochs'), '0');
  await fillAll(fresh, { '#limit-train': '2000', '#limit-test': '500' });
  await fresh.selectOption('#add-stage-kind', 'prune');
  await fresh.click('#add-stage');
  await fillAll(fresh, { '#stage-0-sparsity': '0.5', '#stage-0-rounds': '1', '#stage-0-ft_epochs': '1' });
  await fresh.click('#train');
  await runEnds(fresh, 120_000);
  assert.equal(await fresh.textContent('#error'), '');
  assert.equal(await fresh.locator('#epochs-table tbody tr').count(), 1, 'no training before the stage: one fine-tuning epoch');
  const cells = await fresh.$$eval('#runs-table tbody tr:last-child td', (tds) => tds.map((t) => t.textContent));
  assert.match(cells[1], /^mlp 48 \(from opened\.(sqz|onnx)\)$/);
  const points = JSON.parse(await fresh.getAttribute('#pareto', 'data-points'));
  assert.equal(`${points[0].accuracy.toFixed(2)}%`, trainedAcc, 'stage 0 is the opened model as it was');
  assert.equal(JSON.parse(new globalThis.URL(fresh.url()).searchParams.get('r')).from.file.startsWith('opened.'), true);
  assert.deepEqual(errors, []);
  await fresh.close();
  await page.close();
});

test('50 runs in one page, mixed models and stages: the engine\'s memory stays bounded', { timeout: 900_000 }, async () => {
  const { page, errors } = await openPage();
  const kinds = [
    { arch: 'mlp', size: { '#hidden': '16' } },
    { arch: 'mlp', size: { '#hidden': '16' }, stage: 'prune' },
    { arch: 'lenet5', size: { '#widths': '2, 4, 16' } },
    { arch: 'mlp', size: { '#hidden': '16' }, stage: 'quantize' },
    { arch: 'mlp', size: { '#hidden': '16' }, stage: 'distill' },
  ];
  const removeFirst = 'button[aria-label^="Remove stage 1"]';
  const memory = [];
  const heap = [];
  const started = Date.now();
  for (let i = 0; i < 50; i++) {
    const k = kinds[i % kinds.length];
    while (await page.locator(removeFirst).count()) await page.click(removeFirst);
    await page.selectOption('#arch', k.arch);
    await fillAll(page, { '#limit-train': '256', '#limit-test': '128', '#epochs': '1', ...k.size });
    if (k.stage) {
      await page.selectOption('#add-stage-kind', k.stage);
      await page.click('#add-stage');
    }
    await page.click('#train');
    await page.waitForFunction((n) => document.querySelectorAll('#runs-table tbody tr').length === n || document.getElementById('error').textContent, i + 1, { timeout: 120_000 });
    assert.equal(await page.textContent('#error'), '', `run ${i + 1} (${k.arch} ${k.stage ?? ''})`);
    memory.push(Number(await page.getAttribute('#runs-table tbody tr:last-child', 'data-memory')));
    heap.push(await page.evaluate(() => performance.memory?.usedJSHeapSize ?? 0));
  }
  const mb = (b) => (b / 2 ** 20).toFixed(1);
  console.log(`50 runs in ${((Date.now() - started) / 1000).toFixed(0)} s; engine memory (MB) after runs 1, 10, 25, 50: ${[0, 9, 24, 49].map((i) => mb(memory[i])).join(', ')}; page JS heap (MB): ${[0, 9, 24, 49].map((i) => mb(heap[i])).join(', ')}`);
  // Memory grows while the run kinds are first seen (the allocator's high-water mark), then holds:
  // the last 40 runs add at most 16 MB to the engine, and the page's heap stays under 64 MB.
  assert.ok(memory[49] - memory[9] <= 16 * 2 ** 20, `engine memory ${mb(memory[9])} MB after 10 runs, ${mb(memory[49])} MB after 50`);
  assert.ok(heap[49] === 0 || heap[49] < 64 * 2 ** 20, `page heap ${mb(heap[49])} MB`);
  assert.deepEqual(errors, []);
  await page.close();
});
