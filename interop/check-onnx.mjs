// The ONNX round trip, checked by a real runtime: trains small models with the native CLI (CPU
// backend), exports them as ONNX, runs the files in ONNX Runtime (onnxruntime-node) on the MNIST
// test set and compares with Squeeze's own answers: a float model's top-1 must agree on ≥ 99.9%
// of the images with logits within 1e-4 (relative to the row's largest |logit|), a QDQ model's
// on ≥ 99.5% with Squeeze's integer model (or, where the model has none, its fake-quantized one).
//
//   node interop/check-onnx.mjs [--images N] [--json FILE]     (scripts/test runs it)
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : undefined; };
const images = Number(arg('--images') ?? 10000);
const work = mkdtempSync(join(tmpdir(), 'squeeze-onnx-'));

// The dev-profile binary (optimized; `cargo test` has just built it): a release build would add
// minutes of compiling to the test command for seconds of training.
execFileSync('cargo', ['build', '-q', '--bin', 'squeeze'], { cwd: root, stdio: 'inherit' });
const squeeze = (...args) => execFileSync(join(root, 'target/debug/squeeze'), args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

// Each model at its recipe's learning rate (recipes/*.json), trained long enough to be well
// past chance (a model of near ties would make agreement a coin toss).
const train = ([, lr, epochs]) => ({ epochs, batch: 64, optimizer: 'sgd', lr, momentum: 0.9 });
const w8a8 = { quantize: { weights: { scheme: 'symmetric', bits: 8, per_channel: true }, activations: { bits: 8, calibration: 'minmax', samples: 1000 } } };
const models = {
  // [model, lr, epochs, training images]
  mlp: [{ arch: 'mlp', hidden: [300, 100] }, 0.05, 1, 5000],
  lenet5: [{ arch: 'lenet5' }, 0.01, 1, 5000],
  'resnet-mini': [{ arch: 'resnet-mini', widths: [8, 16] }, 0.05, 2, 20000],
};
// Each case: a recipe's final model, exported; `integer`: compare with Squeeze's integer model.
const cases = [
  ...Object.entries(models).map(([name, model]) => ({ name: `${name} float`, model, stages: [], kind: 'float' })),
  { name: 'mlp W8A8 per-channel', model: models.mlp, stages: [w8a8], kind: 'qdq' },
  { name: 'lenet5 W8A8 per-channel', model: models.lenet5, stages: [w8a8], kind: 'qdq' },
  { name: 'resnet-mini W8A8 per-channel', model: models['resnet-mini'], stages: [w8a8], kind: 'qdq' },
  { name: 'mlp W8 asymmetric per-tensor, A4', model: models.mlp, kind: 'qdq',
    stages: [{ quantize: { weights: { scheme: 'asymmetric', bits: 8, per_channel: false }, activations: { bits: 4, calibration: 'minmax', samples: 1000 } } }] },
];

// The MNIST test split as the ONNX input wants it: [N, 1, 28, 28] f32, pixels / 255.
const idx = readFileSync(join(root, 'www/public/data/mnist/t10k-images-idx3-ubyte'));
const n = Math.min(images, idx.readUInt32BE(4));
const side = idx.readUInt32BE(8);
const pixels = new Float32Array(n * side * side);
for (let i = 0; i < pixels.length; i++) pixels[i] = idx[16 + i] / 255;

const labels = readFileSync(join(root, 'www/public/data/mnist/t10k-labels-idx1-ubyte')).subarray(8, 8 + n);
const argmax = (row) => row.reduce((b, v, i) => (v > row[b] ? i : b), 0);
const floats = (file) => { const b = readFileSync(file); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); };

async function runtimeLogits(file) {
  const session = await ort.InferenceSession.create(file);
  const out = [];
  for (let s = 0; s < n; s += 1000) {
    const rows = Math.min(1000, n - s);
    const input = new ort.Tensor('float32', pixels.subarray(s * side * side, (s + rows) * side * side), [rows, 1, side, side]);
    out.push((await session.run({ image: input })).logits.data);
  }
  return Float32Array.from(out.flatMap((a) => Array.from(a)));
}

function compare(a, b, classes) {
  let agree = 0, worst = 0;
  for (let r = 0; r < n; r++) {
    const ra = a.subarray(r * classes, (r + 1) * classes), rb = b.subarray(r * classes, (r + 1) * classes);
    if (argmax(ra) === argmax(rb)) agree++;
    const scale = Math.max(...rb.map(Math.abs), 1e-30);
    for (let c = 0; c < classes; c++) worst = Math.max(worst, Math.abs(ra[c] - rb[c]) / scale);
  }
  return { agreement: agree / n, worst };
}
const accuracy = (a, classes) => labels.reduce((s, l, r) => s + (argmax(a.subarray(r * classes, (r + 1) * classes)) === l), 0) / n;

const results = [];
let failed = false;
for (const c of cases) {
  const tag = c.name.replace(/[^a-z0-9]+/gi, '-');
  const sqz = join(work, `${tag}.sqz`), onnx = join(work, `${tag}.onnx`);
  // Each model is trained once (its float case); a quantized case starts from that file
  // (`"from"`, 0 epochs) and runs its stages only.
  const trained = join(work, `${c.model[0].arch}-float.sqz`);
  // The run's own test figures are not what is compared (`squeeze logits` below is, on every
  // test image), so it evaluates on the first 1,000 only.
  const limit = { train: c.model[3], test: 1000 };
  const recipe = c.kind === 'float'
    ? { dataset: 'mnist', seed: 1, limit, model: c.model[0], train: train(c.model), stages: [] }
    : { dataset: 'mnist', seed: 1, limit, model: c.model[0], from: { file: trained }, train: { ...train(c.model), epochs: 0 }, stages: c.stages };
  const rfile = join(work, `${tag}.json`);
  writeFileSync(rfile, JSON.stringify(recipe));
  squeeze('run', rfile, '--backend', 'cpu', '--progress-every', '1000000', '--save-model', c.kind === 'float' ? trained : sqz);
  if (c.kind === 'float') copyFileSync(trained, sqz);
  const notes = squeeze('export-onnx', sqz, onnx).trim().split('\n').slice(1).map((l) => l.trim());
  squeeze('logits', sqz, '--images', String(n), '--out', join(work, `${tag}.f32`));
  const ours = floats(join(work, `${tag}.f32`));
  let reference = 'float', integer = ours;
  if (c.kind === 'qdq') {
    try {
      squeeze('logits', sqz, '--integer', '--images', String(n), '--out', join(work, `${tag}.int`));
      integer = floats(join(work, `${tag}.int`));
      reference = 'integer';
    } catch (e) {
      reference = `fake-quantized (no integer model: ${String(e.stderr).trim().replace(/^error: /, '')})`;
    }
  }
  const theirs = await runtimeLogits(onnx);
  const classes = ours.length / n;
  const vsFloat = compare(theirs, ours, classes);
  const vsRef = compare(theirs, integer, classes);
  const need = c.kind === 'float' ? 0.999 : 0.995;
  const ok = c.kind === 'float' ? vsFloat.agreement >= need && vsFloat.worst <= 1e-4 : vsRef.agreement >= need;
  failed ||= !ok;
  const bytes = readFileSync(onnx).length;
  const acc = accuracy(theirs, classes);
  results.push({ case: c.name, bytes, accuracy: acc, reference, agreement: vsRef.agreement, worst_relative: vsFloat.worst, agreement_fake_quant: vsFloat.agreement, notes, ok });
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(34)} ${String(bytes).padStart(9)} B  accuracy ${(acc * 100).toFixed(2)}%  top-1 vs Squeeze ${reference.split(' (')[0]}: ${(vsRef.agreement * 100).toFixed(2)}% (need ${need * 100}%)` +
    `${c.kind === 'float' ? `, worst logit ${vsFloat.worst.toExponential(2)} (need ≤ 1e-4)` : `, vs fake-quantized ${(vsFloat.agreement * 100).toFixed(2)}%`}`);
  if (reference.startsWith('fake')) console.log(`     ${reference}`);
  notes.forEach((l) => console.log(`     ${l}`));
}
console.log(`${n} MNIST test images, ONNX Runtime ${ort.env.versions?.common ?? ''} (onnxruntime-node), files in ${work}`);
if (arg('--json')) writeFileSync(arg('--json'), JSON.stringify({ date: new Date().toISOString(), images: n, results }, null, 2));
process.exit(failed ? 1 : 0);
