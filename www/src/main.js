// The playground page: reads the controls into a recipe, hands it to the engine worker, and
// draws what comes back (progress bar with ETA, accuracy chart, per-epoch table). The page never
// does the math itself, so it stays responsive while the worker trains.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const $ = (id) => document.getElementById(id);
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const dataBase = new URL('data/', document.baseURI).href;

// The chart: x = epochs (fractional while training), running train accuracy and per-epoch test accuracy.
const series = { x: [], train: [], test: [] };
const chart = new uPlot(
  {
    width: Math.min(760, $('chart').clientWidth || 700),
    height: 320,
    scales: { x: { time: false }, y: { range: [0, 100] } },
    axes: [{ label: 'epoch' }, { label: 'accuracy (%)' }],
    series: [
      {},
      { label: 'train (running)', stroke: '#1f5fbf', width: 2, spanGaps: true },
      { label: 'test', stroke: '#d0421b', width: 2, points: { show: true, size: 7 }, spanGaps: true },
    ],
  },
  [[], [], []],
  $('chart'),
);
function redraw() {
  chart.setData([series.x, series.train, series.test]);
}

const list = (id) => $(id).value.split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);

// The model settings the chosen architecture takes (the others are hidden, not sent).
function readModel() {
  const arch = $('arch').value;
  if (arch === 'mlp') return { arch, hidden: list('hidden') };
  if (arch === 'lenet5') return { arch };
  const widths = list('widths');
  return widths.length ? { arch, widths } : { arch };
}

function showModelFields() {
  for (const f of document.querySelectorAll('.field[data-for]')) {
    f.hidden = !f.dataset.for.split(' ').includes($('arch').value);
  }
}
$('arch').addEventListener('change', showModelFields);
showModelFields();

function readRecipe() {
  const num = (id) => Number($(id).value);
  return {
    dataset: $('dataset').value,
    seed: num('seed'),
    limit: { train: num('limit-train'), test: num('limit-test') },
    model: readModel(),
    train: {
      epochs: num('epochs'),
      batch: num('batch'),
      optimizer: $('optimizer').value,
      lr: num('lr'),
      momentum: num('momentum'),
      weight_decay: num('weight-decay'),
      schedule: $('schedule').value,
    },
  };
}

let started = 0;
let running = false;
function setRunning(on) {
  running = on;
  $('train').disabled = on;
  $('cancel').disabled = !on;
}

function onEvent(ev) {
  if (ev.kind === 'progress') {
    const frac = (ev.epoch + ev.step / ev.steps) / ev.epochs;
    $('progress').value = frac;
    const elapsed = (performance.now() - started) / 1000;
    const eta = frac > 0 ? elapsed * (1 / frac - 1) : 0;
    $('status').textContent = `Epoch ${ev.epoch + 1}/${ev.epochs}, step ${ev.step}/${ev.steps}: loss ${ev.train_loss.toFixed(4)}, training accuracy ${(100 * ev.train_accuracy).toFixed(2)}% · ${elapsed.toFixed(0)} s elapsed, about ${eta.toFixed(0)} s left`;
    series.x.push(ev.epoch + ev.step / ev.steps);
    series.train.push(100 * ev.train_accuracy);
    series.test.push(null);
    redraw();
  } else if (ev.kind === 'epoch') {
    series.x.push(ev.epoch);
    series.train.push(null);
    series.test.push(100 * ev.test_accuracy);
    redraw();
    const row = document.createElement('tr');
    for (const v of [ev.epoch, ev.train_loss.toFixed(4), `${(100 * ev.train_accuracy).toFixed(2)}%`, ev.test_loss.toFixed(4), `${(100 * ev.test_accuracy).toFixed(2)}%`, ev.samples_per_s.toFixed(0)]) {
      const td = document.createElement('td');
      td.textContent = v;
      row.appendChild(td);
    }
    $('epochs-table').querySelector('tbody').appendChild(row);
  }
}

worker.onmessage = (msg) => {
  const m = msg.data;
  if (m.type === 'ready') {
    const b = m.backend;
    if (b.backend === 'webgpu') {
      const i = m.gpuInfo || {};
      const name = [i.vendor, i.architecture, i.description].filter(Boolean).join(' ') || b.adapter.name;
      const software = b.adapter.software || i.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe/i.test(name);
      $('adapter').textContent = `WebGPU on ${software ? 'a software adapter (the CPU emulates the GPU; slower than a real one)' : 'the GPU'}: ${name}`;
      $('adapter').dataset.software = String(software);
    } else {
      $('adapter').textContent = `No WebGPU here (${b.fallbackReason}); running on the CPU reference backend, which is slower.`;
      $('adapter').classList.add('warn');
    }
    $('adapter').dataset.backend = b.backend;
    $('train').disabled = false;
  } else if (m.type === 'loaded') {
    $('status').textContent = `Loaded ${m.info.name}: ${m.info.train} training and ${m.info.test} test images of ${m.info.rows}×${m.info.cols}. Training…`;
  } else if (m.type === 'event') {
    onEvent(m.event);
  } else if (m.type === 'done') {
    setRunning(false);
    const s = m.report.stages[m.report.stages.length - 1];
    $('progress').value = 1;
    $('status').textContent = `Done: test accuracy ${(100 * s.test_accuracy).toFixed(2)}% after ${s.epochs.length} epochs, ${s.train_s.toFixed(1)} s of training (${s.samples_per_s.toFixed(0)} samples/s).`;
    $('status').dataset.done = 'true';
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
  series.x.length = series.train.length = series.test.length = 0;
  redraw();
  $('epochs-table').querySelector('tbody').replaceChildren();
  $('progress').value = 0;
  started = performance.now();
  setRunning(true);
  $('status').textContent = 'Loading data…';
  worker.postMessage({ type: 'run', recipe: readRecipe(), dataBase, progressEvery: 25 });
});
$('cancel').addEventListener('click', () => worker.postMessage({ type: 'cancel' }));

const params = new URLSearchParams(location.search);
worker.postMessage({ type: 'init', preferGpu: params.get('backend') !== 'cpu', conv: params.get('conv') });
