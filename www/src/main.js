// The playground page: reads the controls and the compression pipeline into a recipe, hands it to
// the engine worker, and draws what comes back (progress bar with ETA over the whole pipeline,
// accuracy chart, per-stage pruning and sensitivity charts, a table of all runs). The page never
// does the math itself, so it stays responsive while the worker trains. The recipe lives in the
// URL (?r=...), so a link reproduces the experiment.
import { readRecipe, writeRecipe, recipeToURL, recipeFromURL, setupPipelineControls, setModelFileLoader } from './recipe-form.js';
import { accuracyChart, pruningPanel, sensitivityPanel, sweepPanel, quantizationPanel, distillPanel, gridPanel, bitsChart, download, pngButton, weightHistogram, sizeByStage } from './charts.js';
import omitted3 from '../../recipes/omitted-3.json';
import lenet300 from '../../recipes/lenet-300-100.json';
import lenet5 from '../../recipes/lenet5.json';
import vggMini from '../../recipes/vgg-mini-fashion.json';
import resnetMini from '../../recipes/resnet-mini-fashion.json';
import { drawingPad, mnistPixels, showPredictions, drawFirstLayer, showConfusion, setDataset } from './inspect.js';

const $ = (id) => document.getElementById(id);
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const dataBase = new URL('data/', document.baseURI).href;
const chart = accuracyChart($('chart'));
const bits = bitsChart($('bits-chart'));
pngButton($('bits-chart'), 'accuracy-vs-bits');
pngButton($('chart'), 'accuracy');

function showModelFields() {
  for (const f of document.querySelectorAll('.field[data-for]')) {
    f.hidden = !f.dataset.for.split(' ').includes($('arch').value);
  }
}
$('arch').addEventListener('change', showModelFields);

// Training defaults follow the architecture: the settings of the recipe that reached its README
// figure (LeNet-5 diverges at the MLP's lr 0.05), for every field the user has not changed.
const ARCH_RECIPES = { mlp: [lenet300, 'recipes/lenet-300-100.json'], lenet5: [lenet5, 'recipes/lenet5.json'], 'vgg-mini': [vggMini, 'recipes/vgg-mini-fashion.json'], 'resnet-mini': [resnetMini, 'recipes/resnet-mini-fashion.json'] };
const TRAIN_FIELDS = { epochs: 'epochs', batch: 'batch', optimizer: 'optimizer', lr: 'lr', momentum: 'momentum', 'weight-decay': 'weight_decay', schedule: 'schedule' };
const touched = new Set();
let applying = false; // a shared link or a preset: its values are deliberate, kept from then on
for (const id of Object.keys(TRAIN_FIELDS)) {
  for (const ev of ['input', 'change']) $(id).addEventListener(ev, () => touched.add(id));
}
function applyRecipe(r) {
  applying = true;
  try {
    return writeRecipe(r);
  } finally {
    applying = false;
    Object.keys(TRAIN_FIELDS).forEach((id) => touched.add(id));
  }
}
$('arch').addEventListener('change', () => {
  if (applying) return;
  const [recipe, file] = ARCH_RECIPES[$('arch').value] ?? [];
  if (!recipe) return;
  const set = [];
  for (const [id, key] of Object.entries(TRAIN_FIELDS)) {
    const v = recipe.train[key] ?? (key === 'weight_decay' ? 0 : undefined);
    if (v === undefined || touched.has(id)) continue;
    $(id).value = String(v);
    set.push(`${id} ${v}`);
  }
  $('arch-defaults').textContent = set.length ? `Training set for ${$('arch').value} from ${file}: ${set.join(', ')}${touched.size ? ` (your own ${[...touched].join(', ')} kept)` : ''}.` : '';
});
const showDataFields = () => ($('idx-field').hidden = $('dataset').value !== 'custom');
$('dataset').addEventListener('change', showDataFields);
$('idx-files').addEventListener('change', () => {
  const files = [...$('idx-files').files];
  if (!files.length) return;
  $('idx-status').textContent = `Reading ${files.length} file(s)…`;
  $('idx-status').className = 'hint';
  $('idx-status').setAttribute('role', 'status');
  $('idx-status').dataset.loaded = '';
  $('error').textContent = '';
  worker.postMessage({ type: 'load-custom', files });
});
// A distill stage's teacher file: the worker's engine reads it (loadModel) and describes it.
const fileLoads = new Map();
let fileSeq = 0;
setModelFileLoader((file) => new Promise((resolve, reject) => {
  fileLoads.set(++fileSeq, { resolve, reject });
  worker.postMessage({ type: 'load-model', file, seq: fileSeq });
}));
setupPipelineControls();
// One click: Hinton's omitted-class experiment (the CLI runs the same file).
$('preset-omitted-3').addEventListener('click', () => {
  applyRecipe(omitted3);
  showModelFields();
  $('error').textContent = '';
});

// A shared link fills the controls; a malformed one says so and leaves the defaults.
try {
  const shared = recipeFromURL();
  if (shared) {
    const skipped = applyRecipe(shared);
    if (skipped.length) $('error').textContent = `This page cannot run these stages of the shared recipe yet: ${skipped.join(', ')}.`;
  }
} catch (e) {
  $('error').textContent = e.message;
}
showModelFields();
showDataFields();

// Epochs the whole pipeline trains, for one progress bar over every stage.
function plannedEpochs(r) {
  let n = r.train.epochs;
  for (const s of r.stages) {
    if (s.train) n += s.train.epochs;
    if (s.prune?.finetune) n += s.prune.every ? s.prune.finetune.epochs : s.prune.rounds * s.prune.finetune.epochs;
    if (s.quantize?.finetune) n += s.quantize.finetune.epochs;
    if (s.distill) n += s.distill.train.epochs * (s.distill.baseline === false ? 1 : 2);
    const g = s['distill-grid'];
    if (g) n += g.train.epochs * g.temperatures.length * g.alphas.length;
  }
  return Math.max(n, 1);
}

let run = null; // {recipe, started, planned, done (epochs finished), n}
let runCount = 0;
let running = false;
let paused = false;
function setRunning(on) {
  running = on;
  $('train').disabled = on;
  $('cancel').disabled = !on;
  $('pause').disabled = !on;
  setPaused(false);
}
function setPaused(on) {
  if (run && on !== paused) {
    if (on) run.pausedAt = performance.now();
    else if (run.pausedAt) run.pausedMs += performance.now() - run.pausedAt;
  }
  paused = on;
  $('pause').textContent = on ? 'Resume' : 'Pause';
  $('pause').setAttribute('aria-pressed', String(on));
  if (on) $('status').textContent = 'Paused. Resume to go on from here.';
}

function onEvent(ev) {
  if (ev.kind === 'progress') {
    const x = run.done + ev.step / ev.steps;
    if (paused) {
      chart.train(x, 100 * ev.train_accuracy);
      return;
    }
    const frac = Math.min(x / run.planned, 1);
    $('progress').value = frac;
    const elapsed = (performance.now() - run.started - run.pausedMs) / 1000;
    const eta = frac > 0 ? elapsed * (1 / frac - 1) : 0;
    $('status').textContent = `Stage ${ev.stage}, epoch ${ev.epoch + 1}/${ev.epochs}, step ${ev.step}/${ev.steps}: loss ${ev.train_loss.toFixed(4)}, training accuracy ${(100 * ev.train_accuracy).toFixed(2)}% · ${elapsed.toFixed(0)} s elapsed, about ${eta.toFixed(0)} s left`;
    chart.train(x, 100 * ev.train_accuracy);
  } else if (ev.kind === 'epoch') {
    run.done += 1;
    chart.test(run.done, 100 * ev.test_accuracy);
    const row = document.createElement('tr');
    for (const v of [ev.stage, ev.epoch, ev.train_loss.toFixed(4), `${(100 * ev.train_accuracy).toFixed(2)}%`, ev.test_loss.toFixed(4), `${(100 * ev.test_accuracy).toFixed(2)}%`, ev.samples_per_s.toFixed(0)]) {
      const td = document.createElement('td');
      td.textContent = v;
      row.appendChild(td);
    }
    $('epochs-table').querySelector('tbody').appendChild(row);
  } else if (ev.kind === 'stage') {
    for (const w of ev.report.warnings ?? []) {
      const li = document.createElement('li');
      li.textContent = `Stage ${ev.stage} (${ev.report.name}): ${w}`;
      $('warnings').appendChild(li);
      $('warnings').hidden = false;
    }
    if (ev.report.pruning) pruningPanel($('stage-results'), ev.stage, ev.report);
    if (ev.report.sensitivity) sensitivityPanel($('stage-results'), ev.stage, ev.report);
    if (ev.report.sweep) sweepPanel($('stage-results'), ev.stage, ev.report);
    if (ev.report.distillation) distillPanel($('stage-results'), ev.stage, ev.report);
    if (ev.report.distill_grid) gridPanel($('stage-results'), ev.stage, ev.report.distill_grid);
    if (ev.report.quantization) {
      quantizationPanel($('stage-results'), ev.stage, ev.report);
      bits.add(ev.report);
    }
  }
}

// One row per finished run, kept for the page's lifetime: compare settings side by side.
function addRunRow(report, recipe, memory) {
  const last = report.stages[report.stages.length - 1];
  const pruned = [...report.stages].reverse().find((s) => s.pruning)?.pruning;
  const describe = (m) => m.arch + (m.arch === 'mlp' && m.hidden ? ` ${m.hidden.join('-')}` : m.widths ? ` ${m.widths.join('-')}` : '');
  const students = recipe.stages.filter((s) => s.distill?.student).map((s) => (s.distill.teacher?.file ? `(${s.distill.teacher.file}) ` : '') + describe(s.distill.student));
  const model = [describe(recipe.model), ...students].join(' → ');
  const pipeline = ['train', ...recipe.stages.map((s) => Object.keys(s)[0])].join(' → ');
  const cells = [
    runCount,
    model,
    pipeline,
    `${(100 * last.test_accuracy).toFixed(2)}%`,
    pruned ? `${(100 * pruned.weight_sparsity).toFixed(1)}%` : '0%',
    (pruned ? pruned.parameters : report.model.parameters).toLocaleString('en'),
    pruned ? `${(pruned.bytes_relative / 1024).toFixed(1)} KiB (5-bit rel.)` : `${(report.model.bytes_f32 / 1024).toFixed(1)} KiB (f32)`,
    last.inference_us_per_image.toFixed(1),
    report.stages.filter((s) => s.distillation).map((s) => {
      const d = s.distillation;
      const pct = (v) => `${(100 * v).toFixed(2)}%`;
      return `${pct(s.test_accuracy)} / ${d.baseline_accuracy === undefined ? '–' : pct(d.baseline_accuracy)} / ${pct(d.teacher_accuracy)}`;
    }).join('; ') || '–',
    `${(memory / 2 ** 20).toFixed(0)} MB`,
    report.adapter ? `WebGPU (${report.adapter.name})` : 'CPU',
  ];
  const row = document.createElement('tr');
  for (const v of cells) {
    const td = document.createElement('td');
    td.textContent = v;
    row.appendChild(td);
  }
  row.dataset.memory = String(memory);
  row.dataset.backend = report.adapter ? 'webgpu' : 'cpu';
  $('runs-table').querySelector('tbody').appendChild(row);
}

// The banner: which backend runs, on what (after a lost GPU device, the one that replaced it),
// and when both were timed on the form's model, both figures and the choice.
let gpuInfo = {};
function showBackend(b) {
  const i = gpuInfo;
  const name = [i.vendor, i.architecture, i.description].filter(Boolean).join(' ') || b.adapter?.name;
  const software = !!b.adapter && (b.adapter.software || i.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe/i.test(name));
  if (b.choice) {
    $('adapter').textContent = `Backend by measurement on this model: ${b.choice.summary}${b.fallbackReason ? ` (${b.fallbackReason})` : ''}.${forcedBackend ? '' : ' Add ?backend=cpu or ?backend=webgpu to the address to force one.'}`;
    $('adapter').classList.remove('warn');
  } else if (b.backend === 'webgpu') {
    $('adapter').textContent = `WebGPU on ${software ? 'a software adapter (the CPU emulates the GPU; slower than a real one)' : 'the GPU'}: ${name}${b.fallbackReason ? ` (${b.fallbackReason})` : ''}`;
    $('adapter').classList.remove('warn');
  } else {
    $('adapter').textContent = `No WebGPU here (${b.fallbackReason}); running on the CPU reference backend.`;
    $('adapter').classList.add('warn');
  }
  $('adapter').dataset.software = String(software);
  $('adapter').dataset.backend = b.backend;
  $('adapter').dataset.chosen = b.choice ? 'measured' : forcedBackend ? 'forced' : 'only';
}

// Backend by measurement: with a GPU and no ?backend= in the address, both backends are timed on
// the form's model when the page starts and whenever the model (or its batch, optimizer or
// image size) changes; runs use the faster.
const params = new URLSearchParams(location.search);
const forcedBackend = ['cpu', 'webgpu'].includes(params.get('backend')) ? params.get('backend') : null;
let gpuPresent = false;
let chooseSeq = 0;
let chooseTimer = null;
let chosenFor = '';
let customShape = null;
function modelKey(r) {
  const shape = r.dataset === 'custom' ? customShape ?? [28, 28] : [28, 28];
  return JSON.stringify([r.model, r.train.batch, r.train.optimizer, shape]);
}
// WebGPU still starting (the page is usable before it is); a run asked for meanwhile.
let gpuPending = false;
let runAfterGpu = null;
function chooseBackend(beforeRun = false) {
  if (forcedBackend || !gpuPresent || (running && !beforeRun)) return;
  let recipe;
  try {
    recipe = readRecipe();
  } catch {
    return;
  }
  const key = modelKey(recipe);
  if (key === chosenFor) return;
  chosenFor = key;
  const [rows, cols] = recipe.dataset === 'custom' ? customShape ?? [28, 28] : [28, 28];
  $('adapter').textContent = `Timing a few training steps of this model on the CPU and on WebGPU…`;
  $('adapter').dataset.chosen = 'measuring';
  worker.postMessage({ type: 'choose-backend', recipe, rows, cols, seq: ++chooseSeq });
}
const chooseSoon = () => {
  clearTimeout(chooseTimer);
  chooseTimer = setTimeout(chooseBackend, 400);
};
for (const id of ['arch', 'hidden', 'widths', 'batch', 'optimizer', 'dataset']) $(id).addEventListener('change', chooseSoon);

// What a driver reset does to a run (the end-to-end test uses it): see Squeeze.simulateDeviceLoss.
window.squeezeSimulateDeviceLoss = () => worker.postMessage({ type: 'simulate-device-loss' });

worker.onmessage = (msg) => {
  const m = msg.data;
  if (m.type === 'ready') {
    $('adapter').dataset.simd = m.simd;
    gpuPending = m.gpuPending;
    if (gpuPending) {
      $('adapter').textContent = 'Starting WebGPU (compiling its kernels)…';
      $('adapter').dataset.chosen = 'measuring';
    } else {
      showBackend(m.backend);
    }
    $('train').disabled = false;
  } else if (m.type === 'gpu-ready') {
    gpuPending = false;
    gpuInfo = m.gpuInfo || {};
    gpuPresent = m.backend.backend === 'webgpu';
    showBackend(m.backend);
    if (runAfterGpu) {
      const start = runAfterGpu;
      runAfterGpu = null;
      start();
    } else {
      chooseBackend();
    }
  } else if (m.type === 'backend-chosen') {
    if (m.seq === chooseSeq) showBackend(m.backend);
  } else if (m.type === 'error' && m.during === 'choose-backend') {
    // The form holds something that does not validate yet: the run will say what; keep the backend.
    if (m.seq === chooseSeq) {
      chosenFor = '';
      $('adapter').dataset.chosen = 'unmeasured';
      $('adapter').textContent = `Could not time this model on both backends (${m.message}); runs use the ${$('adapter').dataset.backend === 'cpu' ? 'CPU' : 'GPU'}.`;
    }
  } else if (m.type === 'loaded') {
    $('status').textContent = `Loaded ${m.info.name}: ${m.info.train} training and ${m.info.test} test images of ${m.info.rows}×${m.info.cols}. Training…`;
  } else if (m.type === 'custom-loaded') {
    $('idx-status').textContent = `Loaded your files: ${m.info.train} training and ${m.info.test} test images of ${m.info.rows}×${m.info.cols}.`;
    $('idx-status').dataset.loaded = 'true';
    customShape = [m.info.rows, m.info.cols];
    chooseSoon();
    // Models of a run on the earlier files are judged on the new ones (or told they cannot be).
    if (!$('inspect').hidden && run?.recipe?.dataset === 'custom') requestPictures();
  } else if (m.type === 'event') {
    onEvent(m.event);
  } else if (m.type === 'done') {
    setRunning(false);
    showBackend(m.backend);
    chooseSoon();
    const s = m.report.stages[m.report.stages.length - 1];
    $('progress').value = 1;
    const seconds = m.report.stages.reduce((a, st) => a + st.train_s, 0);
    const warned = m.report.stages.some((st) => st.warnings?.length);
    $('status').textContent = `Done${warned ? ', with warnings (below)' : ''}: test accuracy ${(100 * s.test_accuracy).toFixed(2)}% after ${m.report.stages.length} stage(s), ${seconds.toFixed(1)} s of training.`;
    $('status').dataset.done = 'true';
    addRunRow(m.report, run.recipe, m.memory);
    run.report = m.report;
    // The last run's whole report, for the benchmark (bench/compare.mjs) and the curious.
    window.squeezeLastReport = m.report;
    $('downloads').hidden = false;
    showModels(m.models, run.recipe);
  } else if (m.type === 'model-loaded' || (m.type === 'error' && m.during === 'load-model')) {
    const pending = fileLoads.get(m.seq);
    fileLoads.delete(m.seq);
    if (m.type === 'model-loaded') pending?.resolve(m.info);
    else pending?.reject(new Error(m.message));
  } else if (m.type === 'predictions') {
    if (m.seq === predictSeq) showPredictions(m.predictions);
  } else if (m.type === 'model-file') {
    const name = $('inspect-model').selectedOptions[0]?.textContent.split(':')[0].replace(/[^a-z0-9]+/gi, '-') ?? 'model';
    $('model-file-size').textContent = `${m.format === 'onnx' ? 'ONNX: ' : ''}${m.bytes.length.toLocaleString('en')} bytes`;
    $('model-file-size').dataset.bytes = String(m.bytes.length);
    $('model-file-size').dataset.format = m.format;
    $('model-file-size').className = 'hint';
    download(`squeeze-${run.recipe.model.arch}-${name}.${m.format}`, new Blob([m.bytes], { type: 'application/octet-stream' }));
  } else if (m.type === 'error' && m.during === 'export') {
    // Beside the download buttons (a model with no ONNX form, say); nothing else changes.
    $('model-file-size').textContent = m.message;
    $('model-file-size').className = 'error';
  } else if (m.type === 'pictures') {
    drawFirstLayer($('first-layer'), m.layer);
    showHistograms(m.weights, m.levels);
    showConfusion(m.confusion);
    $('inspect').dataset.pictures = String(m.index);
  } else if (m.type === 'error' && (m.during === 'predict' || m.during === 'pictures')) {
    $('error').textContent = m.message;
  } else if (m.type === 'error' && m.during === 'load-custom') {
    // Next to the file picker; whatever was loaded before (and any run) is untouched.
    $('idx-status').textContent = m.message;
    $('idx-status').className = 'error';
    $('idx-status').setAttribute('role', 'alert');
  } else if (m.type === 'error') {
    setRunning(false);
    $('error').textContent = m.message;
    $('status').textContent = m.message === 'cancelled' ? 'Cancelled.' : 'Stopped by an error.';
  }
};

$('controls').addEventListener('submit', (e) => {
  e.preventDefault();
  if (running) return;
  $('error').textContent = '';
  $('status').dataset.done = '';
  chart.clear();
  $('epochs-table').querySelector('tbody').replaceChildren();
  $('stage-results').replaceChildren();
  $('warnings').replaceChildren();
  $('warnings').hidden = true;
  $('downloads').hidden = true;
  $('progress').value = 0;
  const recipe = readRecipe();
  // The address bar always reproduces the last run.
  history.replaceState(null, '', recipeToURL(recipe));
  run = { recipe, started: performance.now(), planned: plannedEpochs(recipe), done: 0, pausedMs: 0 };
  runCount += 1;
  setRunning(true);
  // A model changed just now is timed before it runs (the worker holds the run until then); while
  // WebGPU is still starting, the run waits for it and for that timing.
  const start = () => {
    clearTimeout(chooseTimer);
    chooseBackend(true);
    $('status').textContent = 'Loading data…';
    worker.postMessage({ type: 'run', recipe, dataBase, progressEvery: 25 });
    if (paused) worker.postMessage({ type: 'pause' });
  };
  if (gpuPending) {
    runAfterGpu = start;
    $('status').textContent = 'Waiting for WebGPU to start…';
  } else {
    start();
  }
});
$('cancel').addEventListener('click', () => {
  if (runAfterGpu) {
    runAfterGpu = null;
    setRunning(false);
    $('status').textContent = 'Cancelled.';
    return;
  }
  worker.postMessage({ type: 'cancel' });
});
$('pause').addEventListener('click', () => {
  setPaused(!paused);
  worker.postMessage({ type: paused ? 'pause' : 'resume' });
});

// Looking inside: the last run's models (after training, after each compressing stage).
function showModels(models, recipe) {
  setDataset(recipe.dataset);
  const select = $('inspect-model');
  select.replaceChildren(...models.map((m) => new Option(`${m.name}: ${m.nonzero.toLocaleString('en')} of ${m.parameters.toLocaleString('en')} parameters nonzero`, String(m.index))));
  select.value = String(models.length - 1);
  $('inspect').hidden = false;
  sizeByStage($('size-by-stage'), models);
  requestPictures();
  predictDrawing();
}
const requestPictures = () => worker.postMessage({ type: 'pictures', index: Number($('inspect-model').value), images: 1000, show: 24 });
$('inspect-model').addEventListener('change', requestPictures);
let layerWeights = [];
let layerLevels = [];
function showHistograms(weights, levels) {
  layerWeights = weights;
  layerLevels = levels ?? [];
  const select = $('histogram-layer');
  const keep = Math.min(Number(select.value) || 0, weights.length - 1);
  select.replaceChildren(...weights.map((w, i) => new Option(`W${i + 1} (${w.length.toLocaleString('en')} weights)`, String(i))));
  select.value = String(keep);
  drawHistogram();
}
const drawHistogram = () => {
  const l = Number($('histogram-layer').value);
  weightHistogram($('histogram'), layerWeights[l], `W${l + 1}`, layerLevels[l] ?? []);
};
$('histogram-layer').addEventListener('change', drawHistogram);
pngButton($('histogram'), 'weight-histogram');
pngButton($('size-by-stage'), 'size-by-stage');
$('download-model').addEventListener('click', () => worker.postMessage({ type: 'export', format: 'sqz', index: Number($('inspect-model').value) }));
$('download-onnx').addEventListener('click', () => worker.postMessage({ type: 'export', format: 'onnx', index: Number($('inspect-model').value) }));
$('download-json').addEventListener('click', () => download('squeeze-results.json', new Blob([JSON.stringify({ recipe: run.recipe, report: run.report }, null, 2)], { type: 'application/json' })));
$('download-csv').addEventListener('click', () => {
  const head = 'stage,name,epoch,train_loss,train_accuracy,test_loss,test_accuracy,train_s,samples_per_s';
  const rows = run.report.stages.flatMap((s, i) => s.epochs.map((e) => [i, s.name, e.epoch, e.train_loss, e.train_accuracy, e.test_loss, e.test_accuracy, e.train_s, e.samples_per_s].join(',')));
  download('squeeze-epochs.csv', new Blob([[head, ...rows].join('\n') + '\n'], { type: 'text/csv' }));
});
let predictSeq = 0;
function predictDrawing() {
  const pixels = mnistPixels($('draw'));
  if (!pixels) return;
  predictSeq += 1;
  worker.postMessage({ type: 'predict', pixels, seq: predictSeq });
}
const pad = drawingPad($('draw'), predictDrawing);
$('clear-draw').addEventListener('click', () => {
  pad.clear();
  $('predictions').replaceChildren();
});
$('share').addEventListener('click', async () => {
  const link = recipeToURL(readRecipe());
  history.replaceState(null, '', link);
  $('share-link').hidden = false;
  $('share-link').value = link;
  $('share-link').select();
  try {
    await navigator.clipboard.writeText(link);
    $('status').textContent = 'Link copied: it opens this page with these settings.';
  } catch {
    $('status').textContent = 'Copy the link above: it opens this page with these settings.';
  }
});

worker.postMessage({ type: 'init', preferGpu: forcedBackend !== 'cpu', conv: params.get('conv'), simd: params.get('simd') });
