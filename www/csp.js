// The page's Content-Security-Policy, in one place: `vite preview` (scripts/serve) sends it as a
// header and the built index.html carries it as a <meta> tag for any static host. Scripts only
// from the page's own origin, no eval and no inline script; 'wasm-unsafe-eval' lets the engine
// compile its WebAssembly. frame-ancestors only works as a header (browsers ignore it in <meta>).
export const CSP_DIRECTIVES = {
  'default-src': ["'self'"],
  'script-src': ["'self'", "'wasm-unsafe-eval'"],
  'worker-src': ["'self'"],
  'style-src': ["'self'"],
  'img-src': ["'self'", 'data:', 'blob:'],
  'connect-src': ["'self'"],
  'object-src': ["'none'"],
  'base-uri': ["'self'"],
  'form-action': ["'none'"],
  'frame-ancestors': ["'none'"],
};

export const cspString = (meta = false) =>
  Object.entries(CSP_DIRECTIVES)
    .filter(([name]) => !(meta && name === 'frame-ancestors'))
    .map(([name, sources]) => `${name} ${sources.join(' ')}`)
    .join('; ');
