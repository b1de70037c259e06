// Browser int8-versus-f32 inference benchmark: serves the built site (www/dist), opens it in
// Debian's headless Chromium (WebGPU on SwiftShader unless --gpu), once on WebGPU and once with
// ?backend=cpu (the CPU backend in wasm), runs a short recipe that trains LeNet-300-100 or lenet5
// and quantizes it to 8-bit weights and activations, and prints the quantize stage's timing: the
// whole test set at batch 256 in f32 and in integers (every product the adapter has). Not a test.
// Usage: node bench/browser-int8.mjs [mlp|lenet5] [--test N] [--gpu]   (after scripts/build-wasm and vite build)
import { openSite } from './site.mjs';

const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const arch = args[0] === 'lenet5' ? 'lenet5' : 'mlp';
const recipe = {
  dataset: 'mnist', seed: 1, limit: { train: arch === 'mlp' ? 10000 : 2000, test: Number(opt('--test') ?? 10000) },
  model: arch === 'mlp' ? { arch, hidden: [300, 100] } : { arch },
  train: { epochs: 1, batch: 64, optimizer: 'sgd', lr: arch === 'mlp' ? 0.05 : 0.01, momentum: 0.9, weight_decay: 0, schedule: 'constant' },
  stages: [{ quantize: { weights: { scheme: 'symmetric', bits: 8, per_channel: true }, activations: { bits: 8, calibration: 'minmax', samples: 1000 }, mode: 'ptq' } }],
};
const { url, browser, close } = await openSite({ gpu: args.includes('--gpu') });
try {
  for (const backend of ['', '&backend=cpu']) {
    const page = await browser.newPage();
    await page.goto(`${url}?r=${encodeURIComponent(JSON.stringify(recipe))}${backend}`);
    await page.waitForFunction(() => document.getElementById('adapter').dataset.backend, null, { timeout: 60_000 });
    const adapter = (await page.textContent('#adapter')).trim();
    await page.click('#train');
    await page.waitForFunction(() => document.getElementById('status').dataset.done === 'true' || document.getElementById('error').textContent, null, { timeout: 1_800_000 });
    const error = await page.textContent('#error');
    if (error) throw new Error(error);
    const label = await page.getAttribute('.int8-time', 'aria-label');
    console.log(`${arch} | ${adapter}\n  ${label}`);
    await page.close();
  }
} finally {
  await close();
}
