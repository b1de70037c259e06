// What the browser benchmarks share: serve the built site (www/dist) with vite preview on a free
// port and launch Debian's headless Chromium with WebGPU (SwiftShader unless `gpu`).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const www = path.join(root, 'www');
const { chromium } = createRequire(path.join(www, 'package.json'))('playwright-core');

// { url, browser, close() }: the served site and a browser for it.
export async function openSite({ gpu = false } = {}) {
  const port = 4800 + Math.floor(Math.random() * 200);
  const server = spawn(process.execPath, [path.join(www, 'node_modules/vite/bin/vite.js'), 'preview', '--host', '127.0.0.1', '--port', String(port), '--strictPort'], { cwd: www, stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0; i < 100; i++) { try { if ((await fetch(url)).ok) break; } catch {} await new Promise((r) => setTimeout(r, 200)); }
  const flags = ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--enable-unsafe-webgpu'];
  if (!gpu) flags.push('--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader');
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: flags });
  return { url, browser, close: async () => { await browser.close(); server.kill(); } };
}
