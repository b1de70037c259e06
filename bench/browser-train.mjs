// Browser training benchmark: serves the built site (www/dist), opens it in Debian's headless
// Chromium (WebGPU on SwiftShader unless --gpu), fills the controls from a recipe and presses
// Train, then prints the per-epoch table and the report the page shows. Not a test.
// Usage: node bench/browser-train.mjs [recipe.json] [--epochs N] [--train N] [--test N] [--conv im2col|direct] [--backend cpu|webgpu] [--simd plain] [--threads N]
// (after scripts/serve's build)
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { openSite, root } from './site.mjs';

const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const recipe = JSON.parse(readFileSync(args[0] && !args[0].startsWith('--') ? args[0] : path.join(root, 'recipes/lenet-300-100.json'), 'utf8'));
if (opt('--epochs')) recipe.train.epochs = Number(opt('--epochs'));
const { url, browser, close } = await openSite({ gpu: args.includes('--gpu') });
try {
  const page = await browser.newPage();
  const query = new URLSearchParams();
  if (opt('--conv')) query.set('conv', opt('--conv'));
  if (opt('--backend')) query.set('backend', opt('--backend'));
  if (opt('--simd')) query.set('simd', opt('--simd'));
  if (opt('--threads')) query.set('threads', opt('--threads'));
  await page.goto(`${url}${query.size ? `?${query}` : ''}`);
  await page.waitForFunction(() => document.getElementById('adapter').dataset.backend, null, { timeout: 60_000 });
  const set = (id, v) => page.fill(id, String(v));
  await page.selectOption('#dataset', recipe.dataset);
  await set('#limit-train', opt('--train') ?? recipe.limit?.train ?? 60000);
  await set('#limit-test', opt('--test') ?? recipe.limit?.test ?? 10000);
  await page.selectOption('#arch', recipe.model.arch);
  if (recipe.model.hidden) await set('#hidden', recipe.model.hidden.join(', '));
  if (recipe.model.widths) await set('#widths', recipe.model.widths.join(', '));
  await set('#weight-decay', recipe.train.weight_decay ?? 0);
  await set('#epochs', recipe.train.epochs);
  await set('#batch', recipe.train.batch);
  await page.selectOption('#optimizer', recipe.train.optimizer);
  await set('#lr', recipe.train.lr);
  await set('#momentum', recipe.train.momentum ?? 0);
  await page.selectOption('#schedule', recipe.train.schedule ?? 'constant');
  await set('#seed', recipe.seed ?? 1);
  // Without --backend the page times both on this model first (backend by measurement).
  await page.waitForFunction(() => document.getElementById('adapter').dataset.chosen !== 'measuring', null, { timeout: 180_000 });
  console.log(await page.textContent('#adapter'));
  console.log(`build: ${await page.getAttribute('#adapter', 'data-simd')} SIMD, ${await page.getAttribute('#adapter', 'data-threads')} thread(s)`);
  const t0 = Date.now();
  await page.click('#train');
  let shown = 0;
  for (;;) {
    await new Promise((r) => setTimeout(r, 2000));
    const rows = await page.$$eval('#epochs-table tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent).join('\t')));
    for (; shown < rows.length; shown++) console.log(`epoch\t${rows[shown]}`);
    const done = await page.evaluate(() => document.getElementById('status').dataset.done === 'true');
    const err = await page.textContent('#error');
    if (err) throw new Error(err);
    if (done) break;
  }
  console.log(await page.textContent('#status'));
  console.log(`wall time from pressing Train (data loading included): ${((Date.now() - t0) / 1000).toFixed(1)} s`);
} finally {
  await close();
}
