// The playground page: reads the controls and the compression pipeline into a recipe, hands it to
// the engine worker, and draws what comes back (progress bar with ETA over the whole pipeline,
// accuracy chart, per-stage pruning and sensitivity charts, a table of all runs). The page never
// does the math itself, so it stays responsive while the worker trains. The recipe lives in the
// URL (?r=...), so a link reproduces the experiment. Also here: the gallery of classic results
// (recipes/gallery.json), the models the engine holds (every run's, and opened files) with their
// Pareto chart.
import { readRecipe, writeRecipe, recipeToURL, recipeFromURL, setupPipelineControls, setModelFileLoader } from './recipe-form.js';
import { accuracyChart, pruningPanel, sensitivityPanel, sweepPanel, quantizationPanel, distillPanel, gridPanel, bitsChart, download, pngButton, weightHistogram, sizeByStage, paretoChart } from './charts.js';
import gallery from '../../recipes/gallery.json';
import omitted3 from '../../recipes/omitted-3.json';
import lenet300 from '../../recipes/lenet-300-100.json';
import lenet5 from '../../recipes/lenet5.json';
import vggMini from '../../recipes/vgg-mini-fashion.json';
import resnetMini from '../../recipes/resnet-mini-fashion.json';
import { drawingPad, mnistPixels, showPredictions, drawFirstLayer, showConfusion, setDataset } from './inspect.js';

// Every recipe file, for the gallery (the CLI runs the same files).
const RECIPES = import.meta.glob('../../recipes/*.json', { eager: true, import: 'default' });

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
    const skipped = writeRecipe(r);
    showFrom();
    return skipped;
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
// A question to the worker answered by one message (or an error) carrying the same `ask`.
const asks = new Map();
let askSeq = 0;
const ask = (type, payload) => new Promise((resolve, reject) => {
  asks.set(++askSeq, { resolve, reject });
  worker.postMessage({ type, ...payload, ask: askSeq });
});
// A model file (a distill stage's teacher, or one opened to look inside): the worker's engine
// reads it (loadModel), holds it, and describes it. A file of the same name replaces the earlier.
const loadModelFile = async (file) => {
  const info = await ask('load-model', { file });
  for (const [id, h] of held) if (!h.run && h.name === info.name) held.delete(id);
  held.set(info.index, { ...info, label: info.name, dataset: null });
  return info;
};
setModelFileLoader(loadModelFile);
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
  const model = [describe(recipe.model) + (recipe.from ? ` (from ${recipe.from.file})` : ''), ...students].join(' → ');
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
// Threads in the CPU backend's pool (1: a single-thread build; see worker.js's loadEngine).
let cpuThreads = 1;
const threadsNote = () => (cpuThreads > 1 ? ` The CPU backend multiplies on ${cpuThreads} threads.` : '');
function showBackend(b) {
  const i = gpuInfo;
  const name = [i.vendor, i.architecture, i.description].filter(Boolean).join(' ') || b.adapter?.name;
  const software = !!b.adapter && (b.adapter.software || i.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe/i.test(name));
  if (b.choice) {
    $('adapter').textContent = `Backend by measurement on this model: ${b.choice.summary}${b.fallbackReason ? ` (${b.fallbackReason})` : ''}.${threadsNote()}${forcedBackend ? '' : ' Add ?backend=cpu or ?backend=webgpu to the address to force one.'}`;
    $('adapter').classList.remove('warn');
  } else if (b.backend === 'webgpu') {
    $('adapter').textContent = `WebGPU on ${software ? 'a software adapter (the CPU emulates the GPU; slower than a real one)' : 'the GPU'}: ${name}${b.fallbackReason ? ` (${b.fallbackReason})` : ''}`;
    $('adapter').classList.remove('warn');
  } else {
    $('adapter').textContent = `No WebGPU here (${b.fallbackReason}); running on the CPU reference backend.${threadsNote()}`;
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
    $('adapter').dataset.threads = m.threads;
    cpuThreads = m.threads;
    if (m.threadsWhy) console.info(`CPU backend on one thread: ${m.threadsWhy}`);
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
    if (m.quiet) return;
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
    keepRunModels(m.models, m.report, run.recipe, runCount);
    showModels();
    if (run.gallery) showGalleryResult(run.gallery, m.report, m.models);
  } else if (m.ask && asks.has(m.ask)) {
    const pending = asks.get(m.ask);
    asks.delete(m.ask);
    if (m.type === 'error') pending.reject(new Error(m.message));
    else pending.resolve(m.type === 'model-loaded' ? m.info : m.type === 'quick-recipe' ? m.recipe : m.type === 'start-from' ? m.start : m.figures);
  } else if (m.type === 'predictions') {
    if (m.seq === predictSeq) showPredictions(m.predictions);
  } else if (m.type === 'model-file') {
    const name = $('inspect-model').selectedOptions[0]?.textContent.split(':')[0].replace(/[^a-z0-9]+/gi, '-') ?? 'model';
    $('model-file-size').textContent = `${m.format === 'onnx' ? 'ONNX: ' : ''}${m.bytes.length.toLocaleString('en')} bytes`;
    $('model-file-size').dataset.bytes = String(m.bytes.length);
    $('model-file-size').dataset.format = m.format;
    $('model-file-size').className = 'hint';
    download(`squeeze-${held.get(m.index)?.arch ?? 'model'}-${name}.${m.format}`, new Blob([m.bytes], { type: 'application/octet-stream' }));
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
  startRun(readRecipe());
});
// Runs `recipe` (the form's, or a gallery entry's as written in its file); `galleryRun`:
// {entry, quick} when the gallery started it.
function startRun(recipe, galleryRun = null) {
  $('error').textContent = '';
  $('status').dataset.done = '';
  $('gallery-result').hidden = true;
  chart.clear();
  $('epochs-table').querySelector('tbody').replaceChildren();
  $('stage-results').replaceChildren();
  $('warnings').replaceChildren();
  $('warnings').hidden = true;
  $('downloads').hidden = true;
  $('progress').value = 0;
  // The address bar always reproduces the last run.
  history.replaceState(null, '', recipeToURL(recipe));
  run = { recipe, started: performance.now(), planned: plannedEpochs(recipe), done: 0, pausedMs: 0, gallery: galleryRun };
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
}
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

// Every model the engine holds for the page, by id: each run's (numbered as the runs table numbers
// runs, with its test accuracy, file bytes and measured latency, for the Pareto chart) and each
// opened file. The engine drops the oldest
// runs' models past its budget; their points stay on the chart and say so when clicked.
const held = new Map();
let lastRunIds = [];
function keepRunModels(models, report, recipe, n) {
  const kinds = ['train', ...recipe.stages.map((st) => Object.keys(st)[0])];
  for (const mi of models) {
    const st = report.stages[mi.stage];
    held.set(mi.index, { ...mi, id: mi.index, run: n, dataset: recipe.dataset, label: `${n}: ${kinds.slice(0, mi.stage + 1).join('→')}`, accuracy: 100 * st.test_accuracy, bytes: mi.fileBytes, latency: st.inference_us_per_image });
  }
  lastRunIds = models.map((mi) => mi.index);
  sizeByStage($('size-by-stage'), models);
  refreshPareto();
}
const paperPoints = gallery.entries.filter((e) => e.point).map((e) => ({ id: `paper:${e.id}`, label: e.point.label, accuracy: e.point.accuracy, bytes: e.point.bytes, latency: 0, paper: true }));
const pareto = paretoChart($('pareto'), (p) => {
  $('inspect-model').value = String(p.id);
  requestPictures();
  $('inspect-model').focus();
});
const refreshPareto = () => pareto.set([...[...held.values()].filter((h) => h.run), ...paperPoints]);

// Looking inside: the models held (the last run's first, then earlier runs', then opened files).
function showModels(select = lastRunIds[lastRunIds.length - 1]) {
  const groups = new Map();
  const order = [...held.values()].sort((a, b) => (b.run ?? -1) - (a.run ?? -1) || a.index - b.index);
  for (const h of order) {
    const g = h.run ? `Run ${h.run}` : 'Opened files';
    if (!groups.has(g)) groups.set(g, Object.assign(document.createElement('optgroup'), { label: g }));
    groups.get(g).appendChild(new Option(`${h.name}: ${h.nonzero.toLocaleString('en')} of ${h.parameters.toLocaleString('en')} parameters nonzero`, String(h.index)));
  }
  $('inspect-model').replaceChildren(...groups.values());
  $('inspect-model').value = String(select);
  $('inspect').hidden = false;
  requestPictures();
  predictDrawing();
}
const requestPictures = () => {
  const h = held.get(Number($('inspect-model').value));
  if (!h) return;
  setDataset(h.dataset ?? $('dataset').value);
  worker.postMessage({ type: 'pictures', index: h.index, images: 1000, show: 24, dataset: h.run ? undefined : $('dataset').value, dataBase });
};
$('open-model').addEventListener('change', async () => {
  const file = $('open-model').files[0];
  if (!file) return;
  const status = $('open-model-status');
  status.className = 'hint';
  status.textContent = `Reading ${file.name}…`;
  status.dataset.loaded = '';
  try {
    const info = await loadModelFile(file);
    status.textContent = `${info.name}: ${info.arch}, ${info.parameters.toLocaleString('en')} parameters, ${info.input[0]}×${info.input[1]} images, ${info.classes} classes; in Try the models and Inside a model below.`;
    status.dataset.loaded = 'true';
    showModels(info.index);
  } catch (e) {
    // Beside the picker; every model and result already here stays.
    status.className = 'error';
    status.textContent = e.message;
  }
});

// Compress further: the next run starts from the chosen model (`"from": {"file": ...}`; a run's
// model is kept as a file of its own first), with the form's model set to its architecture and
// no training before the stages (0 epochs: stage 0 evaluates it as it came).
$('compress-further').addEventListener('click', async () => {
  try {
    const { file, model, info } = await ask('start-from', { index: Number($('inspect-model').value) });
    if (!held.has(info.index)) held.set(info.index, { ...info, label: info.name, dataset: null });
    applyRecipe({ ...readRecipe(), model, from: { file }, train: { ...readRecipe().train, epochs: 0 } });
    showModelFields();
    showFrom();
    $('error').textContent = '';
    $('from-status').scrollIntoView({ block: 'center' });
  } catch (e) {
    $('model-file-size').textContent = e.message;
    $('model-file-size').className = 'error';
  }
});
function showFrom() {
  const file = $('from-file').value;
  $('from-status').hidden = !file;
  $('from-text').textContent = file ? `Starting from the model file ${file} (its weights, pruned zeros and quantizers; 0 training epochs: the stages work on it as it is).` : '';
}
$('from-clear').addEventListener('click', () => {
  $('from-file').value = '';
  showFrom();
});

// The gallery: one card per entry of recipes/gallery.json, grouped; Run or Quick look starts its
// recipe (shown in the form too), and when it ends the paper's figures stand beside ours.
function galleryCards() {
  const box = $('gallery-entries');
  let group = null;
  for (const e of gallery.entries) {
    if (e.group !== group) {
      group = e.group;
      box.appendChild(Object.assign(document.createElement('h3'), { textContent: group }));
    }
    const card = document.createElement('div');
    card.className = 'gallery-entry';
    card.dataset.id = e.id;
    const title = Object.assign(document.createElement('p'), { className: 'gallery-title' });
    title.append(Object.assign(document.createElement('strong'), { textContent: e.title }), ' ', Object.assign(document.createElement('span'), { className: 'hint', textContent: `recipes/${e.recipe}` }));
    const paper = Object.assign(document.createElement('p'), { className: 'hint', textContent: e.paper });
    const figs = document.createElement('ul');
    for (const f of e.figures) figs.appendChild(Object.assign(document.createElement('li'), { textContent: `${f.label}: paper ${f.paper}` }));
    const row = document.createElement('div');
    row.className = 'row';
    for (const [text, quick] of [['Run', false], ['Quick look', true]]) {
      const b = Object.assign(document.createElement('button'), { type: 'button', className: 'small', textContent: text });
      b.setAttribute('aria-label', `${text}: ${e.title}`);
      b.dataset.gallery = e.id;
      b.dataset.quick = String(quick);
      b.addEventListener('click', () => runGallery(e, quick));
      row.appendChild(b);
    }
    card.append(title, paper, figs, row);
    box.appendChild(card);
  }
}
async function runGallery(entry, quick) {
  if (running) return;
  try {
    let recipe = RECIPES[`../../recipes/${entry.recipe}`];
    if (!recipe) throw new Error(`recipes/${entry.recipe} is not in this build`);
    if (quick) recipe = await ask('quick-recipe', { recipe, train: 5000, test: 1000 });
    applyRecipe(recipe);
    showModelFields();
    startRun(recipe, { entry, quick });
  } catch (e) {
    $('error').textContent = e.message;
  }
}
async function showGalleryResult({ entry, quick }, report, models) {
  const box = $('gallery-result');
  try {
    const figures = await ask('gallery-figures', { figures: entry.figures, report, models });
    const h = Object.assign(document.createElement('h2'), { textContent: `${entry.title}: the paper beside this run` });
    const note = Object.assign(document.createElement('p'), { className: 'hint', textContent: `${entry.paper}.${quick ? ' This was a quick look (few images, one epoch per training): the paper\'s setting is the full Run.' : ''}` });
    const table = document.createElement('table');
    table.className = 'gallery-figures';
    const head = table.createTHead().insertRow();
    for (const t of ['figure', 'paper', 'this run', 'target']) head.appendChild(Object.assign(document.createElement('th'), { scope: 'col', textContent: t }));
    const body = table.createTBody();
    for (const f of figures) {
      const tr = body.insertRow();
      tr.dataset.met = f.met === undefined ? '' : String(f.met);
      tr.dataset.value = String(f.value);
      for (const t of [f.label, f.paper, f.measured, f.target ? `${f.target}: ${f.met ? 'met' : 'missed'}` : '–']) tr.insertCell().textContent = t;
    }
    box.replaceChildren(h, note, table);
    box.dataset.entry = entry.id;
  } catch (e) {
    box.replaceChildren(Object.assign(document.createElement('p'), { className: 'error', textContent: `The paper's figures could not be measured on this run: ${e.message}` }));
  }
  box.hidden = false;
}
galleryCards();
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
  const opened = [...held.values()].filter((h) => !h.run).map((h) => h.index);
  if (!lastRunIds.length && !opened.length) return;
  worker.postMessage({ type: 'predict', pixels, rows: 28, cols: 28, ids: [...lastRunIds, ...opened], seq: predictSeq });
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

worker.postMessage({ type: 'init', preferGpu: forcedBackend !== 'cpu', conv: params.get('conv'), simd: params.get('simd'), threads: params.get('threads') });
