// The charts (uPlot): accuracy during the whole pipeline, and per pruning stage its per-layer
// sparsity, accuracy versus sparsity over its rounds, and stored size by encoding; per sensitivity
// stage one accuracy-versus-sparsity curve per layer; per quantize stage its per-layer SQNR and
// the size waterfall, and accuracy versus bits per scheme over every quantize stage since the
// page opened; weight histograms with the stored levels drawn over them. Each chart is labelled
// for screen readers.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { logTicks } from './ticks.js';

const COLORS = ['#1f5fbf', '#d0421b', '#2a8a3a', '#8a2a8a', '#b07800', '#0a7a8a', '#555', '#c0306a', '#4a4aa0', '#708000'];
const width = (el) => Math.min(760, el.clientWidth || 700);

// Training accuracy (running) and test accuracy over epochs of every stage, one x axis.
export function accuracyChart(el) {
  const data = { x: [], train: [], test: [] };
  const chart = new uPlot(
    {
      width: width(el),
      height: 300,
      scales: { x: { time: false }, y: { range: [0, 100] } },
      axes: [{ label: 'epochs, all stages' }, { label: 'accuracy (%)' }],
      series: [
        {},
        { label: 'train (running)', stroke: COLORS[0], width: 2, spanGaps: true },
        { label: 'test', stroke: COLORS[1], width: 2, points: { show: true, size: 7 }, spanGaps: true },
      ],
    },
    [[], [], []],
    el,
  );
  const redraw = () => chart.setData([data.x, data.train, data.test]);
  return {
    clear() {
      data.x.length = data.train.length = data.test.length = 0;
      redraw();
    },
    train(x, acc) {
      data.x.push(x);
      data.train.push(acc);
      data.test.push(null);
      redraw();
    },
    test(x, acc) {
      data.x.push(x);
      data.train.push(null);
      data.test.push(acc);
      redraw();
    },
  };
}

function bars(el, { title, labels, values, yLabel, yMax }) {
  const xs = labels.map((_, i) => i + 1);
  return new uPlot(
    {
      title,
      width: width(el),
      height: 220,
      scales: { x: { time: false, range: [0.5, labels.length + 0.5] }, y: { range: [0, yMax ?? (Math.max(...values) * 1.1 || 1)] } },
      axes: [{ values: (_, ticks) => ticks.map((t) => labels[t - 1] ?? ''), splits: () => xs, label: '' }, { label: yLabel }],
      series: [{}, { label: yLabel, fill: COLORS[0] + 'bb', stroke: COLORS[0], paths: uPlot.paths.bars({ size: [0.6, 80] }), points: { show: false } }],
      legend: { show: false },
    },
    [xs, values],
    el,
  );
}

// Saves a file the browser offers to download.
export function download(name, blob) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

// A "PNG" button that saves the chart drawn in `el` (uPlot draws on one canvas).
export function pngButton(el, name) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'small secondary png';
  b.textContent = 'PNG';
  b.setAttribute('aria-label', `Download this chart as PNG (${name})`);
  b.addEventListener('click', () => el.querySelector('canvas')?.toBlob((blob) => blob && download(`${name}.png`, blob)));
  el.after(b);
  return b;
}

function panel(parent, text, name) {
  const div = document.createElement('div');
  div.className = 'chart';
  div.setAttribute('role', 'img');
  div.setAttribute('aria-label', text);
  parent.appendChild(div);
  if (name) pngButton(div, name);
  return div;
}

const kb = (b) => `${(b / 1024).toFixed(1)} KiB`;

// A stage's section in the results, titled.
function stageBox(parent, index, title) {
  const box = document.createElement('section');
  box.className = 'stage-result';
  box.dataset.stage = String(index);
  const h = document.createElement('h3');
  h.textContent = `Stage ${index}: ${title}`;
  box.appendChild(h);
  parent.appendChild(box);
  return box;
}

// Accuracy (%) against sparsity (%): one line per entry of `lines` ([label, ys]).
function accuracyVsSparsity(el, title, xLabel, xs, lines) {
  return new uPlot(
    {
      title,
      width: width(el),
      height: 250,
      scales: { x: { time: false }, y: { range: [0, 100] } },
      axes: [{ label: xLabel }, { label: 'test accuracy (%)' }],
      series: [{}, ...lines.map(([label], l) => ({ label, stroke: COLORS[l % COLORS.length], width: 2, points: { show: true, size: 7 } }))],
    },
    [xs, ...lines.map(([, ys]) => ys)],
    el,
  );
}

// One pruning stage's report (experiment::StageReport with its PruningReport).
export function pruningPanel(parent, index, report) {
  const p = report.pruning;
  const box = stageBox(parent, index, report.name);
  const facts = document.createElement('p');
  facts.className = 'facts';
  facts.textContent =
    `${(100 * p.weight_sparsity).toFixed(1)}% of weights are zero (${p.weights_left.toLocaleString('en')} left); ` +
    `${p.parameters.toLocaleString('en')} parameters, hidden widths ${p.hidden.join('-')}; ` +
    `${(p.flops_per_sample_remaining / 1e6).toFixed(2)} MFLOPs per image on nonzero weights; ` +
    `test accuracy ${(100 * report.test_accuracy).toFixed(2)}%, inference ${report.inference_us_per_image.toFixed(1)} µs per image.` +
    (p.greedy ? ` Greedy search: ${p.greedy.chunks_accepted} chunks kept pruned, ${p.greedy.chunks_restored} restored (held-out accuracy at the start ${(100 * p.greedy.holdout_accuracy_start).toFixed(2)}%).` : '') +
    (p.control_accuracy !== undefined ? ` Same masks from fresh random weights (control): ${(100 * p.control_accuracy).toFixed(2)}%.` : '');
  box.appendChild(facts);

  const names = p.per_layer_sparsity.map((_, i) => `W${i + 1}`);
  bars(panel(box, `Per-layer sparsity: ${p.per_layer_sparsity.map((s, i) => `${names[i]} ${(100 * s).toFixed(1)}%`).join(', ')}`, `stage${index}-sparsity`), {
    title: 'Sparsity per layer',
    labels: names,
    values: p.per_layer_sparsity.map((s) => 100 * s),
    yLabel: 'weights zero (%)',
    yMax: 100,
  });
  const sizes = [['dense f32', p.bytes_dense], ['bitmask', p.bytes_bitmask], ['5-bit rel. index', p.bytes_relative]];
  bars(panel(box, `Stored size: ${sizes.map(([n, b]) => `${n} ${kb(b)}`).join(', ')}`, `stage${index}-sizes`), {
    title: 'Stored size by encoding (bytes actually written)',
    labels: sizes.map(([n]) => n),
    values: sizes.map(([, b]) => b / 1024),
    yLabel: 'KiB',
  });
  if (p.rounds.length) {
    // Overall sparsity of each round, weighting layers by their weight count.
    const counts = p.per_layer_weights;
    const total = counts.reduce((a, b) => a + b, 0);
    const overall = p.rounds.map((r) => (100 * r.sparsity.reduce((a, s, l) => a + s * (counts[l] ?? 0), 0)) / (total || 1));
    const order = overall.map((_, i) => i).sort((a, b) => overall[a] - overall[b]);
    const el = panel(box, `Accuracy versus sparsity over ${p.rounds.length} rounds: ` + p.rounds.map((r, i) => `${overall[i].toFixed(1)}% sparse: ${(100 * r.accuracy_before_finetune).toFixed(1)}% before, ${(100 * r.accuracy_after_finetune).toFixed(1)}% after fine-tuning`).join('; '), `stage${index}-accuracy-vs-sparsity`);
    accuracyVsSparsity(el, 'Accuracy versus sparsity (each round)', 'weights zero (%)', order.map((i) => overall[i]), [
      ['right after pruning', order.map((i) => 100 * p.rounds[i].accuracy_before_finetune)],
      ['after fine-tuning', order.map((i) => 100 * p.rounds[i].accuracy_after_finetune)],
    ]);
  }
  return box;
}

// One sensitivity stage: accuracy versus sparsity, one curve per layer.
export function sensitivityPanel(parent, index, report) {
  const curves = report.sensitivity;
  const box = stageBox(parent, index, 'sensitivity of each layer');
  const xs = curves[0].map(([s]) => 100 * s);
  const el = panel(box, 'Per-layer sensitivity: ' + curves.map((c, l) => `W${l + 1}: ` + c.map(([s, a]) => `${(100 * s).toFixed(0)}% → ${(100 * a).toFixed(1)}%`).join(', ')).join('; '), `stage${index}-sensitivity`);
  accuracyVsSparsity(el, 'Accuracy with one layer pruned (no fine-tuning)', 'weights of that layer zero (%)', xs, curves.map((c, l) => [`W${l + 1}`, c.map(([, a]) => 100 * a)]));
  return box;
}

// A distill stage's report (experiment::distill): the student beside the same student from labels
// alone and the teacher, and how often they agree.
export function distillPanel(parent, index, report) {
  const d = report.distillation;
  const short = (v) => Number(v.toPrecision(4)); // f32 fields: 0.7, not 0.699999988
  const box = stageBox(parent, index, `distillation at T = ${short(d.temperature)}, α = ${short(d.alpha)}`);
  const facts = document.createElement('p');
  facts.className = 'facts';
  const pct = (v) => `${(100 * v).toFixed(2)}%`;
  facts.textContent = `Student ${pct(report.test_accuracy)} (${d.student_parameters.toLocaleString()} parameters)` +
    (d.baseline_accuracy !== undefined ? `, the same student from labels alone ${pct(d.baseline_accuracy)}` : '') +
    `; teacher ${pct(d.teacher_accuracy)} (${d.teacher}, ${d.teacher_parameters.toLocaleString()} parameters). ` +
    `Student and teacher agree on ${pct(d.agreement)} of test images; mean KL(teacher ‖ student) ${d.mean_kl.toFixed(4)}.` +
    (d.attention?.length ? ` Attention transfer: ${d.attention.map((a) => `student node ${a.student} ↔ teacher node ${a.teacher} (β ${a.beta})`).join(', ')}.` : '') +
    (d.hints?.length ? ` Hints: ${d.hints.map((h) => `student node ${h.student} → teacher node ${h.teacher} (weight ${h.weight})`).join(', ')}.` : '');
  box.dataset.student = String(report.test_accuracy);
  box.dataset.baseline = String(d.baseline_accuracy ?? '');
  box.dataset.teacher = String(d.teacher_accuracy);
  box.appendChild(facts);
  if (d.omitted) {
    const o = d.omitted;
    const om = document.createElement('p');
    om.className = 'facts omitted';
    om.dataset.before = String(o.omitted_accuracy_before);
    om.dataset.after = String(o.omitted_accuracy);
    om.textContent = `Class ${o.classes.join(', ')} left out of the transfer set (the student learned from ${o.transfer_samples.toLocaleString()} images and never saw one): ` +
      `${pct(o.omitted_accuracy_before)} of their ${o.test_samples_omitted} test images right from the teacher's soft targets alone, ` +
      `${pct(o.omitted_accuracy)} after raising their bias by ${o.bias_shift} (whole test set ${pct(o.test_accuracy_before)} → ${pct(report.test_accuracy)}).`;
    box.appendChild(om);
  }
  if (d.examples?.length) temperaturePlot(box, d.examples, short(d.temperature));
}

// A distill-grid stage's report: student test accuracy per (α, T) cell as a heat map (white at the
// worst cell, dark green at the best), each cell labelled; diverged cells marked.
export function gridPanel(parent, index, g) {
  const box = stageBox(parent, index, 'distillation grid: temperature × α');
  const facts = document.createElement('p');
  facts.className = 'facts';
  const pct = (v) => `${(100 * v).toFixed(2)}%`;
  facts.textContent = `Teacher ${pct(g.teacher_accuracy)}; each cell a student of ${g.student_parameters.toLocaleString()} parameters distilled from the same start.` +
    (g.best ? ` Best: T = ${Number(g.best[0].toPrecision(4))}, α = ${Number(g.best[1].toPrecision(4))} (${pct(g.best[2])}). α = 0 is the student from labels alone.` : '');
  box.appendChild(facts);
  const table = document.createElement('table');
  table.className = 'heatmap';
  const cells = g.accuracy.flat().filter((v) => v !== null);
  const [lo, hi] = [Math.min(...cells), Math.max(...cells)];
  const head = table.createTHead().insertRow();
  head.appendChild(Object.assign(document.createElement('th'), { textContent: 'α \\ T' }));
  for (const t of g.temperatures) head.appendChild(Object.assign(document.createElement('th'), { scope: 'col', textContent: String(Number(t.toPrecision(4))) }));
  const body = table.createTBody();
  g.alphas.forEach((a, r) => {
    const row = body.insertRow();
    row.appendChild(Object.assign(document.createElement('th'), { scope: 'row', textContent: String(Number(a.toPrecision(4))) }));
    g.accuracy[r].forEach((v) => {
      const td = row.insertCell();
      td.dataset.accuracy = v === null ? 'diverged' : String(v);
      td.textContent = v === null ? 'diverged' : pct(v);
      const f = v === null || hi === lo ? 0 : (v - lo) / (hi - lo);
      td.style.background = v === null ? '#f3c4c4' : `rgb(${Math.round(255 - 215 * f)}, ${Math.round(255 - 115 * f)}, ${Math.round(255 - 195 * f)})`;
      td.style.color = f > 0.6 ? 'white' : 'black';
    });
  });
  box.appendChild(table);
  return box;
}

// What the temperature does: one test image's teacher probabilities softmax(z / T) at T = 1 and at
// the T of the slider, as bars, recomputed from the stored logits as the slider moves.
function temperaturePlot(box, examples, temperature) {
  const wrap = document.createElement('div');
  wrap.className = 'temperature';
  const controls = document.createElement('div');
  controls.className = 'temperature-controls';
  const pick = document.createElement('select');
  pick.setAttribute('aria-label', 'Test image');
  examples.forEach((e, i) => pick.add(new Option(`test image ${e.index} (a ${e.label})`, String(i))));
  const slider = document.createElement('input');
  Object.assign(slider, { type: 'range', min: '0.5', max: '20', step: '0.5', value: String(temperature) });
  slider.setAttribute('aria-label', 'Temperature T');
  const shown = document.createElement('span');
  const canvas = document.createElement('canvas');
  canvas.className = 'example-image';
  controls.append(pick, document.createTextNode(' T '), slider, shown, canvas);
  const bars = document.createElement('div');
  bars.className = 'temperature-bars';
  wrap.append(controls, bars);
  box.appendChild(wrap);
  const soften = (z, t) => {
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp((v - m) / t));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  };
  const column = (title, probs) => {
    const col = document.createElement('div');
    col.className = 'prediction';
    const h = document.createElement('h4');
    h.textContent = title;
    col.appendChild(h);
    const top = probs.indexOf(Math.max(...probs));
    probs.forEach((v, c) => {
      const row = document.createElement('div');
      row.className = 'bar-row' + (c === top ? ' top' : '');
      row.setAttribute('aria-label', `${c}: ${(100 * v).toFixed(1)}%`);
      const label = document.createElement('span');
      label.textContent = `${c} ${(100 * v).toFixed(1)}%`;
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = `${(100 * v).toFixed(1)}%`;
      row.append(label, bar);
      col.appendChild(row);
    });
    return col;
  };
  const draw = () => {
    const e = examples[Number(pick.value)];
    const t = Number(slider.value);
    shown.textContent = ` ${t}`;
    canvas.width = e.cols;
    canvas.height = e.rows;
    const img = canvas.getContext('2d').createImageData(e.cols, e.rows);
    e.pixels.forEach((v, i) => img.data.set([255 - v, 255 - v, 255 - v, 255], 4 * i));
    canvas.getContext('2d').putImageData(img, 0, 0);
    const hot = soften(e.logits, t);
    bars.dataset.probabilities = hot.map((v) => v.toFixed(4)).join(',');
    bars.replaceChildren(column('Teacher at T = 1 (what it predicts)', soften(e.logits, 1)), column(`Teacher at T = ${t} (the soft targets)`, hot));
  };
  pick.addEventListener('change', draw);
  slider.addEventListener('input', draw);
  draw();
}

// A sweep stage's report (experiment::sweep): accuracy against bits per scheme, each layer alone
// against bits, and the proposed mixed-precision widths.
export function sweepPanel(parent, index, report) {
  const w = report.sweep;
  const box = stageBox(parent, index, 'bit-width sweep');
  const facts = document.createElement('p');
  facts.className = 'facts';
  const p = w.proposal;
  facts.textContent = `Float ${(100 * w.float_accuracy).toFixed(2)}%. ` + w.points.map((q) => `${q.scheme} ${q.layer_bits[0]}-bit ${(100 * q.accuracy).toFixed(2)}% (${(q.bytes / 1024).toFixed(1)} KiB)`).join(', ') + '.' +
    (p ? ` Mixed precision within ${(100 * w.budget).toFixed(2)} pp: bits ${p.layer_bits.join(' / ')}, ${(100 * p.accuracy).toFixed(2)}%, ${(p.bytes / 1024).toFixed(1)} KiB.` : '');
  box.appendChild(facts);
  const line = (el, title, xs, series) => accuracyVsSparsity(el, title, 'bits per weight', xs, series);
  const schemes = [...new Set(w.points.map((q) => q.scheme))];
  const xs = [...new Set(w.points.map((q) => q.layer_bits[0]))].sort((a, b) => a - b);
  const el = panel(box, 'Accuracy versus bits: ' + w.points.map((q) => `${q.scheme} ${q.layer_bits[0]} bits ${(100 * q.accuracy).toFixed(2)}%`).join(', '), `stage${index}-sweep`);
  el.classList.add('sweep');
  el.dataset.points = String(w.points.length);
  line(el, 'Accuracy versus weight bits (every layer quantized)', xs, schemes.map((s) => [s, xs.map((b) => { const q = w.points.find((q) => q.scheme === s && q.layer_bits[0] === b); return q ? 100 * q.accuracy : null; })]));
  if (w.layers.length) {
    const lx = w.layers[0].map(([b]) => b).sort((a, b) => a - b);
    const el2 = panel(box, 'Per-layer bit sensitivity: ' + w.layers.map((s, l) => `W${l + 1}: ` + s.map(([b, a]) => `${b} bits ${(100 * a).toFixed(2)}%`).join(', ')).join('; '), `stage${index}-bit-sensitivity`);
    line(el2, `Accuracy with one layer quantized (${schemes[0]}), the rest float`, lx, w.layers.map((s, l) => [`W${l + 1}`, lx.map((b) => 100 * s.find(([x]) => x === b)[1])]));
  }
  return box;
}

// One quantize stage's report (experiment::StageReport with its QuantReport): per-layer SQNR of
// the weights (and of the activation each layer reads), and the size waterfall from bytes the
// model file would hold.
export function quantizationPanel(parent, index, report) {
  const q = report.quantization;
  const box = stageBox(parent, index, `quantize (${q.mode})`);
  const facts = document.createElement('p');
  facts.className = 'facts';
  const layers = q.layers.map((l, i) => `W${i + 1} ${l.scheme} ${l.bits}-bit`).join(', ');
  facts.textContent =
    `${layers}. Float ${(100 * q.float_accuracy).toFixed(2)}% → quantized ${(100 * q.quantized_accuracy).toFixed(2)}%` +
    (q.mode === 'qat' ? ` → after QAT ${(100 * report.test_accuracy).toFixed(2)}%` : '') +
    `; ${(q.bytes_f32 / q.bytes_huffman).toFixed(1)}x smaller than f32.` +
    (q.calibration ? ` Activations: ${q.calibration}.` : '');
  box.appendChild(facts);
  const names = q.layers.map((_, i) => `W${i + 1}`);
  const db = (e) => (Number.isFinite(e.sqnr_db) ? e.sqnr_db : 150);
  bars(panel(box, `Weight SQNR per layer: ${q.layers.map((l, i) => `${names[i]} ${db(l.weights).toFixed(1)} dB` + (l.input ? `, its input ${db(l.input).toFixed(1)} dB` : '')).join('; ')}`, `stage${index}-sqnr`), {
    title: 'Weight SQNR per layer (dB; higher = closer to float)',
    labels: names,
    values: q.layers.map((l) => db(l.weights)),
    yLabel: 'SQNR (dB)',
  });
  const steps = [['dense f32', q.bytes_f32], ['pruned', q.bytes_pruned], ['quantized', q.bytes_quantized], ['Huffman', q.bytes_huffman]];
  const el = panel(box, `Size waterfall: ${steps.map(([n, b]) => `${n} ${b} bytes`).join(', ')}`, `stage${index}-waterfall`);
  el.classList.add('waterfall');
  el.dataset.bytes = steps.map(([, b]) => b).join(',');
  bars(el, { title: 'Size waterfall (bytes the model file holds, header aside)', labels: steps.map(([n]) => n), values: steps.map(([, b]) => b / 1024), yLabel: 'KiB' });
  // Integer inference: int8 against f32, timed on this backend at the same batch.
  const int = q.integer;
  if (int) {
    const timed = [['f32', int.f32_us], ...int.kernels.map(([k, us]) => [`int8 (${k})`, us])];
    const t = panel(box, `Inference time per image at batch ${int.batch}: ${timed.map(([n, us]) => `${n} ${us.toFixed(2)} µs`).join(', ')}; integer accuracy ${(100 * int.accuracy).toFixed(2)}%`, `stage${index}-int8`);
    t.classList.add('int8-time');
    t.dataset.us = timed.map(([, us]) => us).join(',');
    bars(t, {
      title: `Inference µs per image, batch ${int.batch} (int8 ${(int.f32_us / int.int8_us).toFixed(2)}x f32; integer accuracy ${(100 * int.accuracy).toFixed(2)}%)`,
      labels: timed.map(([n]) => n),
      values: timed.map(([, us]) => us),
      yLabel: 'µs per image',
    });
  } else if (q.integer_note) {
    const p = document.createElement('p');
    p.className = 'facts int8-note';
    p.textContent = `No integer inference: ${q.integer_note}.`;
    box.appendChild(p);
  }
  return box;
}

// Test accuracy against weight bits, one line per scheme, over every quantize stage since the
// page opened (a point per stage; mixed precision counts at its widest layer).
export function bitsChart(el) {
  const points = new Map(); // scheme -> Map(bits -> accuracy)
  return {
    add(report) {
      const q = report.quantization;
      const bits = Math.max(...q.layers.map((l) => l.bits));
      const scheme = q.layers[0].scheme;
      if (!points.has(scheme)) points.set(scheme, new Map());
      points.get(scheme).set(bits, 100 * report.test_accuracy);
      const xs = [...new Set([...points.values()].flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
      const lines = [...points.entries()].map(([name, m]) => [name, xs.map((b) => m.get(b) ?? null)]);
      el.replaceChildren();
      el.hidden = false;
      el.dataset.points = String([...points.values()].reduce((a, m) => a + m.size, 0));
      el.setAttribute('aria-label', 'Accuracy versus weight bits: ' + lines.map(([n, ys]) => `${n}: ` + xs.map((b, i) => (ys[i] === null ? null : `${b} bits ${ys[i].toFixed(2)}%`)).filter(Boolean).join(', ')).join('; '));
      new uPlot(
        {
          title: 'Accuracy versus weight bits (every quantize stage since the page opened)',
          width: width(el),
          height: 250,
          scales: { x: { time: false }, y: { range: (u, lo, hi) => [Math.max(0, Math.floor(lo - 1)), Math.min(100, Math.ceil(hi + 1))] } },
          axes: [{ label: 'bits per weight' }, { label: 'test accuracy (%)' }],
          series: [{}, ...lines.map(([label], l) => ({ label, stroke: COLORS[l % COLORS.length], width: 2, spanGaps: true, points: { show: true, size: 8 } }))],
        },
        [xs, ...lines.map(([, ys]) => ys)],
        el,
      );
    },
  };
}

// A histogram of one layer's nonzero weights (pruned zeros counted in the label, not drawn: they
// would dwarf the rest), with the values a quantized layer stores drawn over it as lines.
export function weightHistogram(el, values, name, levels = []) {
  el.replaceChildren();
  const nz = values.filter((v) => v !== 0);
  const zeros = values.length - nz.length;
  const bins = 60;
  const lim = nz.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-12);
  const counts = new Array(bins).fill(0);
  for (const v of nz) counts[Math.min(bins - 1, Math.floor(((v + lim) / (2 * lim)) * bins))]++;
  const xs = counts.map((_, i) => -lim + ((i + 0.5) * 2 * lim) / bins);
  el.setAttribute('aria-label', `Histogram of ${name}: ${nz.length} nonzero weights between ${(-lim).toPrecision(3)} and ${lim.toPrecision(3)}; ${zeros} of ${values.length} are zero (pruned), not drawn`);
  el.dataset.zeros = String(zeros);
  el.dataset.nonzero = String(nz.length);
  el.dataset.levels = String(levels.length);
  if (levels.length) el.setAttribute('aria-label', el.getAttribute('aria-label') + `; stored as ${levels.length} levels, drawn as lines`);
  const drawLevels = (u) => {
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = COLORS[1];
    ctx.lineWidth = 1;
    for (const v of levels) {
      const x = u.valToPos(v, 'x', true);
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
    }
    ctx.restore();
  };
  return new uPlot(
    {
      title: `${name}: ${nz.length.toLocaleString('en')} nonzero weights (${zeros.toLocaleString('en')} pruned, not drawn)` + (levels.length ? `; ${levels.length} stored levels (lines)` : ''),
      hooks: { draw: [drawLevels] },
      width: width(el),
      height: 220,
      scales: { x: { time: false }, y: { range: [0, Math.max(...counts) * 1.1 || 1] } },
      axes: [{ label: 'weight value' }, { label: 'count' }],
      series: [{}, { label: 'count', fill: COLORS[0] + 'bb', stroke: COLORS[0], paths: uPlot.paths.bars({ size: [1, 40] }), points: { show: false } }],
      legend: { show: false },
    },
    [xs, counts],
    el,
  );
}

// The model file after each stage of the run (bytes of the .sqz a download saves): how each
// compression stage shrinks what is stored.
export function sizeByStage(el, models) {
  el.replaceChildren();
  const labels = models.map((m) => m.name);
  el.setAttribute('aria-label', `Model file size after each stage: ${models.map((m) => `${m.name} ${m.fileBytes} bytes`).join(', ')}`);
  return bars(el, { title: 'Model file after each stage (bytes actually written)', labels, values: models.map((m) => m.fileBytes / 1024), yLabel: 'KiB' });
}

// The Pareto chart: every model of every run since the page opened (and the gallery's paper
// figures) as test accuracy against bytes written (log scale) and against measured latency (log
// scale), the frontier drawn (no other model is both smaller or faster and more accurate), each
// point labelled with its run and pipeline. Clicking a model's point calls onPick(point).
// Points: {id, label, accuracy (%), bytes, latency (µs/image), paper?}.
export function paretoChart(el, onPick) {
  const views = [
    { key: 'bytes', title: 'Accuracy against model file size', x: 'bytes written (log scale)' },
    { key: 'latency', title: 'Accuracy against measured inference time', x: 'µs per image (log scale)' },
  ].map((v) => {
    const div = document.createElement('div');
    div.className = 'chart';
    div.setAttribute('role', 'img');
    el.appendChild(div);
    pngButton(div, `pareto-${v.key}`);
    return { ...v, div, plot: null };
  });
  return {
    set(points) {
      el.dataset.points = JSON.stringify(points.filter((p) => !p.paper).map(({ id, run, stage, accuracy, bytes, latency }) => ({ id, run, stage, accuracy, bytes, latency })));
      for (const v of views) {
        v.plot?.destroy();
        const items = points.filter((p) => p[v.key] > 0).sort((a, b) => a[v.key] - b[v.key]);
        const front = frontier(items.filter((p) => !p.paper), v.key);
        v.div.setAttribute('aria-label', `${v.title}: ${items.map((p) => `${p.label} ${p.accuracy.toFixed(2)}% at ${Math.round(p[v.key]).toLocaleString('en')} ${v.key === 'bytes' ? 'bytes' : 'µs'}${front.has(p) ? ' (on the frontier)' : ''}`).join('; ')}`);
        v.div.dataset.frontier = JSON.stringify(items.filter((p) => front.has(p)).map((p) => p.id));
        const ys = (f) => items.map((p) => (f(p) ? p.accuracy : null));
        v.plot = new uPlot(
          {
            title: v.title,
            width: width(el),
            height: 320,
            // Log x with room around the points (one point alone too); y padded by hand as well.
            scales: { x: { time: false, distr: 3, range: (u, min, max) => [min / 1.6, max * 1.6] }, y: { range: (u, min, max) => [Math.max(0, min - 1), Math.min(100, max + 1)] } },
            axes: [{ label: v.x, splits: (u, i, min, max) => logTicks(min, max), filter: (u, splits) => splits, values: (u, ticks) => ticks.map((t) => (t == null ? '' : v.key === 'bytes' ? bytesLabel(t) : `${+t.toPrecision(3)}`)) }, { label: 'test accuracy (%)' }],
            series: [
              {},
              { label: 'models', stroke: COLORS[0], paths: () => null, points: { show: true, size: 9, fill: COLORS[0] + '88' } },
              { label: 'Pareto frontier', stroke: COLORS[1], width: 2, spanGaps: true, points: { show: false } },
              { label: 'paper', stroke: COLORS[2], paths: () => null, points: { show: true, size: 11, fill: '#fff' } },
            ],
            hooks: {
              draw: [
                (u) => {
                  const ctx = u.ctx;
                  ctx.save();
                  ctx.font = `${11 * devicePixelRatio}px sans-serif`;
                  ctx.fillStyle = '#333';
                  for (const p of items) ctx.fillText(p.label, u.valToPos(p[v.key], 'x', true) + 7 * devicePixelRatio, u.valToPos(p.accuracy, 'y', true) - 5 * devicePixelRatio);
                  ctx.restore();
                  v.div.dataset.xy = JSON.stringify(items.filter((p) => !p.paper).map((p) => ({ id: p.id, x: Math.round(u.valToPos(p[v.key], 'x')), y: Math.round(u.valToPos(p.accuracy, 'y')) })));
                },
              ],
            },
          },
          [items.map((p) => p[v.key]), ys((p) => !p.paper), ys((p) => front.has(p)), ys((p) => p.paper)],
          v.div,
        );
        // A click picks the nearest model's point within 12 px (where each lies: data-xy, set
        // once drawn: uPlot sizes its scales in a microtask after construction).
        const u = v.plot;
        u.over.addEventListener('click', () => {
          const { left, top } = u.cursor;
          let best = null;
          let bestD = 12;
          for (const p of items) {
            if (p.paper) continue;
            const d = Math.hypot(u.valToPos(p[v.key], 'x') - left, u.valToPos(p.accuracy, 'y') - top);
            if (d <= bestD) [best, bestD] = [p, d];
          }
          if (best) onPick(best);
        });
      }
    },
  };
}

const bytesLabel = (b) => (b >= 1e6 ? `${+(b / 1e6).toPrecision(3)} MB` : b >= 1e3 ? `${+(b / 1e3).toPrecision(3)} KB` : `${+b.toPrecision(3)} B`);

// The points no other point beats on both axes: none costs less (or the same) and is at least
// as accurate (more accurate, for the same cost). `items` sorted by cost.
function frontier(items, key) {
  const front = new Set();
  let best = -Infinity; // the best accuracy at a lower cost
  for (let i = 0; i < items.length; ) {
    let j = i;
    while (j < items.length && items[j][key] === items[i][key]) j++;
    const group = items.slice(i, j);
    const top = group.reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
    if (top.accuracy > best) {
      front.add(top);
      best = top.accuracy;
    }
    i = j;
  }
  return front;
}
