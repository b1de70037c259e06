// The CPU backend's wasm GEMM alone, in headless Chromium: each micro-tile (4×8, 2×16, and the one
// `tile_for` picks) on the products of a LeNet-300-100 training step at batch 64 and 256, in
// multiply-adds per second, beside the engine's best 4-lane multiply-add rate on the same machine
// (12 accumulators in registers, no memory traffic; the best of ten timings) and its rate on 8
// accumulators (as many as a micro-tile holds), for the relaxed-SIMD and the plain-SIMD build. Builds bench/wasm-gemm (src/reference/gemm.rs compiled in unchanged) first. Prints a
// table and writes JSON to bench/results/. Not a test: scripts/test runs it with --tiny.
// Usage: node bench/wasm-gemm.mjs [--tiny] [--out FILE]
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import os from 'node:os';
import { createRequire } from 'node:module';
import { root } from './site.mjs';

const args = process.argv.slice(2);
const tiny = args.includes('--tiny');
const outArg = args.indexOf('--out') >= 0 ? args[args.indexOf('--out') + 1] : undefined;
const crate = path.join(root, 'bench/wasm-gemm');
const builds = { relaxed: '+simd128,+relaxed-simd', plain: '+simd128' };

for (const [name, features] of Object.entries(builds)) {
  const target = path.join(crate, `target-${name}`);
  execFileSync('cargo', ['build', '--release', '--quiet', '--target', 'wasm32-unknown-unknown', '--manifest-path', path.join(crate, 'Cargo.toml')], {
    stdio: 'inherit', env: { ...process.env, CARGO_TARGET_DIR: target, CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS: `-C target-feature=${features}` },
  });
  execFileSync('wasm-bindgen', ['--target', 'web', '--out-dir', path.join(crate, `pkg-${name}`), path.join(target, 'wasm32-unknown-unknown/release/wasm_gemm_bench.wasm')], { stdio: 'inherit' });
}

// LeNet-300-100's products at batch B: forward X·W, weight gradients Xᵀ·dY, input gradients dY·Wᵀ.
const products = (b) => [
  ['fwd 1', b, 300, 784, false, false], ['fwd 2', b, 100, 300, false, false], ['fwd 3', b, 10, 100, false, false],
  ['dW 1', 784, 300, b, true, false], ['dW 2', 300, 100, b, true, false], ['dW 3', 100, 10, b, true, false],
  ['dX 2', b, 300, 100, false, true], ['dX 3', b, 100, 10, false, true],
];
const batches = tiny ? [8] : [64, 256];
const seconds = tiny ? 0.002 : 0.25; // per measurement
const repeats = tiny ? 1 : 3;        // the best of these

const { chromium } = createRequire(path.join(root, 'www/package.json'))('playwright-core');
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
const results = { date: new Date().toISOString(), machine: `${os.cpus()[0].model}, ${os.cpus().length} cores`, browser: browser.version(), builds: {} };
try {
  for (const name of Object.keys(builds)) {
    const page = await browser.newPage();
    await page.route('http://bench.invalid/**', (route) => {
      const file = path.basename(new URL(route.request().url()).pathname) || 'index.html';
      if (file === 'index.html') return route.fulfill({ body: '<!doctype html>', contentType: 'text/html' });
      const type = file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
      return route.fulfill({ body: readFileSync(path.join(crate, `pkg-${name}`, file)), contentType: type });
    });
    await page.goto('http://bench.invalid/index.html');
    results.builds[name] = await page.evaluate(async ({ list, seconds, repeats }) => {
      const m = await import('/wasm_gemm_bench.js');
      await m.default('/wasm_gemm_bench_bg.wasm');
      // Rate of f(iters) in units per second: iterations sized to `seconds`, the best of `repeats`.
      const rate = (f, units) => {
        let iters = 1;
        for (let t = 0; t < seconds / 4; iters *= 2) { const t0 = performance.now(); f(iters); t = (performance.now() - t0) / 1000; }
        let best = 0;
        for (let r = 0; r < repeats; r++) { const t0 = performance.now(); f(iters); best = Math.max(best, (units * iters) / (Math.max(performance.now() - t0, 0.1) / 1000)); } // (the clock ticks in 0.1 ms)
        return best;
      };
      // The peak is the best rate seen, so it is timed before and after the products, 5 times each.
      const best = (f, units) => Math.max(...Array.from({ length: 5 }, () => rate(f, units) / 1e9));
      const peakRate = () => best((i) => m.peak(i * 1000, 0.5), 96_000);
      const eightRate = () => best((i) => m.peak8(i * 1000, 0.5), 64_000);
      let [peak, eight] = [peakRate(), eightRate()];
      const rows = [];
      for (const [b, label, M, N, K, ta, tb] of list) {
        const p = new m.Product(M, N, K, ta, tb);
        const row = { batch: b, product: label, m: M, n: N, k: K };
        for (const tile of ['4x8', '2x16', 'auto']) row[tile] = rate((i) => p.run(tile, i), M * N * K) / 1e9;
        p.free();
        rows.push(row);
      }
      [peak, eight] = [Math.max(peak, peakRate()), Math.max(eight, eightRate())];
      return { peak_gmacs: peak, eight_chains_gmacs: eight, products: rows };
    }, { list: batches.flatMap((b) => products(b).map((p) => [b, ...p])), seconds, repeats });
    await page.close();
  }
} finally {
  await browser.close();
}

// The table: GMAC/s per product and tile, then per batch the whole step's products with the
// tile `tile_for` picks (their time summed), against the peak.
const fmt = (v) => v.toFixed(1).padStart(6);
const lines = [];
for (const [name, r] of Object.entries(results.builds)) {
  lines.push(`\n${name} SIMD build: 4-lane multiply-add peak ${r.peak_gmacs.toFixed(1)} GMAC/s on 12 chains, ${r.eight_chains_gmacs.toFixed(1)} on 8 (GMAC/s below)`);
  lines.push('batch product      M    N    K    4x8   2x16   auto');
  for (const p of r.products) lines.push(`${String(p.batch).padStart(5)} ${p.product.padEnd(7)} ${[p.m, p.n, p.k].map((v) => String(v).padStart(4)).join(' ')} ${fmt(p['4x8'])} ${fmt(p['2x16'])} ${fmt(p.auto)}`);
  for (const b of batches) {
    const ps = r.products.filter((p) => p.batch === b);
    const macs = ps.reduce((s, p) => s + p.m * p.n * p.k, 0);
    const secs = ps.reduce((s, p) => s + (p.m * p.n * p.k) / (p.auto * 1e9), 0);
    r[`step_${b}`] = { ms: secs * 1000, gmacs: macs / secs / 1e9 };
    lines.push(`batch ${b}: the step's products ${(secs * 1000).toFixed(3)} ms, ${(macs / secs / 1e9).toFixed(1)} GMAC/s = ${(100 * macs / secs / 1e9 / r.peak_gmacs).toFixed(0)}% of the peak`);
  }
}
console.log(`${results.machine}; Chromium ${results.browser}; ${results.date}` + lines.join('\n'));
const out = outArg ?? path.join(root, 'bench/results', `${results.date.slice(0, 10)}-wasm-gemm.json`);
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(results, null, 1) + '\n');
console.log(`wrote ${path.relative(process.cwd(), out)}`);
