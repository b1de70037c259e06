// Vite config for the playground: the page lives in www/, the wasm package is built into
// www/pkg by scripts/build-wasm, datasets are served from www/public/data (scripts/setup).
import { defineConfig } from 'vite';

export default defineConfig({
  root: '.',
  base: './', // the static build works from any path on any static host
  server: { host: '127.0.0.1', port: 5173, strictPort: false, fs: { allow: ['..'] } },
  preview: { host: '127.0.0.1', port: 4173 },
  worker: { format: 'es' },
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true },
});
