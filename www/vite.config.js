// Vite config for the playground: the page lives in www/, the wasm package is built into
// www/pkg by scripts/build-wasm, datasets are served from www/public/data (scripts/setup).
// The built page carries the Content-Security-Policy of csp.js; `vite preview` also sends it.
// Both servers send COOP and COEP: a cross-origin-isolated page may share memory with workers,
// which the CPU backend's threaded build needs (www/src/worker.js); a static host that does not
// send them gets the single-thread builds.
import { defineConfig } from 'vite';
import { cspString } from './csp.js';

// Puts the policy into the built index.html only (the dev server injects inline styles for HMR).
const cspMeta = {
  name: 'squeeze-csp',
  apply: 'build',
  transformIndexHtml: () => [{ tag: 'meta', attrs: { 'http-equiv': 'Content-Security-Policy', content: cspString(true) }, injectTo: 'head-prepend' }],
};

const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

export default defineConfig({
  root: '.',
  base: './', // the static build works from any path on any static host
  plugins: [cspMeta],
  server: { host: '127.0.0.1', port: 5173, strictPort: false, fs: { allow: ['..'] }, headers: isolation },
  preview: { host: '127.0.0.1', port: 4173, headers: { 'Content-Security-Policy': cspString(), ...isolation } },
  worker: { format: 'es' },
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true },
});
