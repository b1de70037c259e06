// The page's state is a recipe (the same JSON the CLI runs). This module is the one table that
// maps controls to recipe fields, the pipeline editor for compression stages, and the recipe's
// round trip through the URL (?r=...), so a link reproduces an experiment.

const $ = (id) => document.getElementById(id);

const numList = (text) => text.split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
const oneOrList = (text) => {
  const v = numList(text);
  return v.length === 1 ? v[0] : v;
};
const showList = (v) => (Array.isArray(v) ? v.join(', ') : v === undefined || v === null ? '' : String(v));

// Every fixed control: element id, path in the recipe, how to read it, whether it applies.
// kind: 'num' | 'text' (a string) | 'list' (comma-separated numbers).
export const FIELDS = [
  { id: 'dataset', path: 'dataset', kind: 'text' },
  { id: 'seed', path: 'seed', kind: 'num' },
  { id: 'limit-train', path: 'limit.train', kind: 'num', default: '60000' },
  { id: 'limit-test', path: 'limit.test', kind: 'num', default: '10000' },
  { id: 'limit-holdout', path: 'limit.holdout', kind: 'num', optional: true },
  { id: 'arch', path: 'model.arch', kind: 'text' },
  { id: 'hidden', path: 'model.hidden', kind: 'list', when: (r) => r.model.arch === 'mlp' },
  { id: 'widths', path: 'model.widths', kind: 'list', when: (r) => ['lenet5', 'vgg-mini', 'resnet-mini'].includes(r.model.arch), optional: true },
  // A model file the run starts from instead of fresh weights (set by "Compress this model further").
  { id: 'from-file', path: 'from.file', kind: 'text', optional: true, default: '' },
  { id: 'epochs', path: 'train.epochs', kind: 'num' },
  { id: 'batch', path: 'train.batch', kind: 'num' },
  { id: 'optimizer', path: 'train.optimizer', kind: 'text' },
  { id: 'lr', path: 'train.lr', kind: 'num' },
  { id: 'momentum', path: 'train.momentum', kind: 'num' },
  { id: 'weight-decay', path: 'train.weight_decay', kind: 'num' },
  { id: 'l1', path: 'train.l1', kind: 'num', optional: true, default: '0' },
  { id: 'beta2', path: 'train.beta2', kind: 'num', optional: true, default: '0.999' },
  { id: 'eps', path: 'train.eps', kind: 'num', optional: true, default: '1e-8' },
  { id: 'jitter', path: 'train.jitter', kind: 'num', optional: true, default: '0' },
  { id: 'schedule', path: 'train.schedule', kind: 'text' },
  { id: 'divergence', path: 'divergence', kind: 'text', optional: true, default: 'stop' },
];

function setPath(obj, path, value) {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k] ??= {};
  o[keys[keys.length - 1]] = value;
}
function getPath(obj, path) {
  return path.split('.').reduce((o, k) => (o === undefined || o === null ? undefined : o[k]), obj);
}

// Compression stage kinds the pipeline editor offers. Each: a label, its fields (key, label,
// control, default), and the recipe stage it makes.
const SELECT = (options) => ({ control: 'select', options });
// A distill stage's student (default: the teacher's architecture), its controls both ways.
const STUDENT_FIELDS = [
  { key: 'arch', label: 'Student', ...SELECT([['same', "the teacher's architecture"], ['mlp', 'MLP'], ['lenet5', 'LeNet-5'], ['vgg-mini', 'vgg-mini'], ['resnet-mini', 'resnet-mini']]), value: 'mlp' },
  { key: 'hidden', label: 'Student MLP hidden layers', control: 'text', value: '30' },
  { key: 'widths', label: 'Student widths, other architectures (e.g. lenet5 at half width: 10, 25, 250; empty = default)', control: 'text', value: '' },
];
function studentOf(v) {
  if (v.arch === 'mlp') return { arch: 'mlp', hidden: numList(v.hidden) };
  return numList(v.widths ?? '').length ? { arch: v.arch, widths: numList(v.widths) } : { arch: v.arch };
}
const studentFields = (m) => ({ arch: m?.arch ?? 'same', hidden: showList(m?.hidden), widths: showList(m?.widths) });
const STUDENT_OWNS = ['student', 'student.arch', 'student.hidden', 'student.widths'];

export const STAGE_KINDS = {
  prune: {
    label: 'Prune',
    // Recipe keys its controls decide (a shared recipe's other keys are kept as they came).
    owns: ['granularity', 'criterion', 'sparsity', 'scope', 'mode', 'rounds', 'schedule', 'every', 'rewind', 'control', 'finetune'],
    fields: [
      { key: 'granularity', label: 'What to remove', ...SELECT([['weight', 'single weights'], ['neuron', 'neurons / conv filters'], ['channel', 'channels (scored by their readers)']]), value: 'weight' },
      { key: 'criterion', label: 'Importance score', ...SELECT([['magnitude', '|w| (magnitude)'], ['l1', 'L1 norm'], ['l2', 'L2 norm'], ['taylor', 'Taylor |w·∂L/∂w|'], ['random', 'random (baseline)']]), value: 'magnitude' },
      { key: 'sparsity', label: 'Fraction removed (one, or one per layer)', control: 'text', value: '0.8' },
      { key: 'scope', label: 'Threshold', ...SELECT([['layer', 'per layer'], ['global', 'one global']]), value: 'layer' },
      { key: 'mode', label: 'Masks', ...SELECT([['hard', 'hard (pruned stay zero; units physically removed)'], ['soft', 'soft (may regrow)']]), value: 'hard' },
      { key: 'rounds', label: 'Rounds (1 = one-shot)', control: 'number', value: '3' },
      { key: 'schedule', label: 'Sparsity schedule over rounds', ...SELECT([['geometric', 'geometric (same share each round)'], ['polynomial', 'polynomial (Zhu & Gupta)']]), value: 'geometric' },
      { key: 'every', label: 'Gradual: prune every N training steps (empty = once per round)', control: 'number', value: '' },
      { key: 'rewind', label: 'Rewind survivors', ...SELECT([['none', 'no (fine-tune them)'], ['init', 'to their initial values (lottery ticket)'], ['epoch', 'to their values after an epoch of training (below)']]), value: 'none' },
      { key: 'rewind_epoch', label: 'Rewind to after epoch', control: 'number', value: '1' },
      { key: 'control', label: 'Lottery control: also train the final masks from fresh weights', ...SELECT([['no', 'no'], ['yes', 'yes']]), value: 'no' },
      { key: 'ft_epochs', label: 'Fine-tuning epochs per round (0 = none)', control: 'number', value: '1' },
      { key: 'ft_lr', label: 'Fine-tuning learning rate', control: 'number', value: '0.01' },
    ],
    toRecipe(v, train) {
      const rewind = v.rewind === 'epoch' ? { epoch: Number(v.rewind_epoch) } : v.rewind;
      const p = { granularity: v.granularity, criterion: v.criterion, sparsity: oneOrList(v.sparsity), scope: v.scope, mode: v.mode, rounds: Number(v.rounds), schedule: v.schedule, rewind };
      if (v.every !== '') p.every = Number(v.every);
      if (v.control === 'yes') p.control = true;
      if (Number(v.ft_epochs) > 0) p.finetune = { ...train, epochs: Number(v.ft_epochs), lr: Number(v.ft_lr) };
      return { prune: p };
    },
    fromRecipe(p) {
      return {
        granularity: p.granularity === 'filter' ? 'neuron' : p.granularity,
        criterion: p.criterion,
        sparsity: showList(p.sparsity),
        scope: p.scope,
        mode: p.mode,
        rounds: p.rounds,
        schedule: p.schedule,
        every: p.every ?? '',
        rewind: typeof p.rewind === 'string' ? p.rewind : p.rewind?.epoch !== undefined ? 'epoch' : undefined,
        rewind_epoch: p.rewind?.epoch,
        control: p.control ? 'yes' : 'no',
        ft_epochs: p.finetune ? p.finetune.epochs : 0,
        ft_lr: p.finetune?.lr,
      };
    },
  },
  greedy: {
    label: 'Greedy prune (evaluate, restore)',
    // Recipe keys its controls decide (a shared recipe's other keys are kept as they came).
    owns: ['sparsity', 'chunk', 'tolerance'],
    fields: [
      { key: 'sparsity', label: 'Target fraction removed (one, or one per layer)', control: 'text', value: '0.9' },
      { key: 'chunk', label: 'Chunk: fraction of a layer removed per try', control: 'number', value: '0.05' },
      { key: 'tolerance', label: 'Largest accepted held-out accuracy drop (0.005 = half a point); needs held-out samples', control: 'number', value: '0.005' },
    ],
    toRecipe: (v) => ({ greedy: { sparsity: oneOrList(v.sparsity), chunk: Number(v.chunk), tolerance: Number(v.tolerance) } }),
    fromRecipe: (g) => ({ sparsity: showList(g.sparsity), chunk: g.chunk, tolerance: g.tolerance }),
  },
  sensitivity: {
    label: 'Sensitivity scan',
    // Recipe keys its controls decide (a shared recipe's other keys are kept as they came).
    owns: ['sparsities', 'criterion'],
    fields: [
      { key: 'sparsities', label: 'Sparsities to try per layer', control: 'text', value: '0, 0.5, 0.8, 0.9, 0.95' },
      { key: 'criterion', label: 'Importance score', ...SELECT([['magnitude', '|w|'], ['random', 'random']]), value: 'magnitude' },
    ],
    toRecipe: (v) => ({ sensitivity: { sparsities: numList(v.sparsities), criterion: v.criterion } }),
    fromRecipe: (s) => ({ sparsities: showList(s.sparsities), criterion: s.criterion }),
  },
  quantize: {
    label: 'Quantize',
    // Recipe keys its controls decide (a shared recipe's other keys are kept as they came).
    owns: ['weights', 'weights.scheme', 'weights.bits', 'weights.layer_bits', 'weights.per_channel', 'activations', 'activations.bits', 'activations.calibration', 'activations.samples', 'mode', 'lsq', 'biases', 'finetune'],
    fields: [
      { key: 'scheme', label: 'Weights: scheme', ...SELECT([['symmetric', 'uniform, symmetric'], ['asymmetric', 'uniform, scale + zero point'], ['fixed-point', 'fixed point Qm.n (8 or 16 bits)'], ['kmeans', 'k-means weight sharing (Deep Compression)'], ['power-of-two', 'powers of two (logarithmic)'], ['ternary', 'ternary (TWN)'], ['binary', 'binary (sign × mean |w|)'], ['f16', 'half precision (f16)']]), value: 'symmetric' },
      { key: 'bits', label: 'Weight bits (one, or one per layer)', control: 'text', value: '8' },
      { key: 'per_channel', label: 'Scales', ...SELECT([['yes', 'one per output channel'], ['no', 'one per layer']]), value: 'yes' },
      { key: 'act_bits', label: 'Activations', ...SELECT([['8', '8-bit'], ['6', '6-bit'], ['4', '4-bit'], ['off', 'float (not quantized)']]), value: '8' },
      { key: 'calibration', label: 'Activation ranges from', ...SELECT([['minmax', 'min / max'], ['moving-average', 'moving-average min / max'], ['percentile', 'percentiles (clip outliers)'], ['mse', 'MSE-optimal clipping'], ['dynamic', 'each batch its own (dynamic; no int8)']]), value: 'minmax' },
      { key: 'samples', label: 'Calibration samples', control: 'number', value: '1000' },
      { key: 'biases', label: 'Biases', ...SELECT([['float', 'f32'], ['f16', 'f16 (half the bytes)']]), value: 'float' },
      { key: 'mode', label: 'Mode', ...SELECT([['ptq', 'post-training (no training)'], ['qat', 'quantization-aware training (k-means: fine-tune centroids)'], ['qat-lsq', 'QAT with learned step sizes (LSQ; uniform schemes)']]), value: 'ptq' },
      { key: 'ft_epochs', label: 'QAT epochs', control: 'number', value: '1' },
      { key: 'ft_lr', label: 'QAT learning rate', control: 'number', value: '0.005' },
    ],
    toRecipe(v, train) {
      const w = { scheme: v.scheme, per_channel: v.per_channel === 'yes' };
      // Binary, ternary and f16 have their width by definition.
      if (!['binary', 'ternary', 'f16'].includes(v.scheme)) {
        const b = oneOrList(v.bits);
        if (Array.isArray(b)) w.layer_bits = b;
        else w.bits = b;
      }
      const q = { weights: w, mode: v.mode === 'qat-lsq' ? 'qat' : v.mode };
      if (v.mode === 'qat-lsq') q.lsq = true;
      if (v.biases === 'f16') q.biases = 'f16';
      if (v.act_bits !== 'off') q.activations = { bits: Number(v.act_bits), calibration: v.calibration, samples: Number(v.samples) };
      if (q.mode === 'qat') q.finetune = { ...train, epochs: Math.max(1, Number(v.ft_epochs)), lr: Number(v.ft_lr) };
      return { quantize: q };
    },
    fromRecipe(q) {
      const w = q.weights ?? {};
      return {
        scheme: w.scheme,
        bits: showList(w.layer_bits ?? w.bits),
        per_channel: w.per_channel === false ? 'no' : 'yes',
        act_bits: q.activations ? String(q.activations.bits ?? 8) : 'off',
        calibration: q.activations?.calibration,
        samples: q.activations?.samples,
        biases: q.biases,
        mode: q.lsq ? 'qat-lsq' : q.mode,
        ft_epochs: q.finetune?.epochs,
        ft_lr: q.finetune?.lr,
      };
    },
  },
  sweep: {
    label: 'Bit-width sweep',
    // Recipe keys its controls decide (a shared recipe's other keys are kept as they came).
    owns: ['schemes', 'bits', 'budget'],
    fields: [
      { key: 'schemes', label: 'Weight schemes', control: 'text', value: 'symmetric, kmeans' },
      { key: 'bits', label: 'Widths to try', control: 'text', value: '8, 6, 4, 3, 2' },
      { key: 'budget', label: 'Accuracy budget for mixed precision (0.005 = half a point)', control: 'number', value: '0.005' },
    ],
    toRecipe: (v) => ({ sweep: { schemes: v.schemes.split(',').map((s) => s.trim()).filter((s) => s.length), bits: numList(v.bits), budget: Number(v.budget) } }),
    fromRecipe: (c) => ({ schemes: showList(c.schemes), bits: showList(c.bits), budget: c.budget }),
  },
  distill: {
    label: 'Distill (the model so far teaches a student)',
    // Recipe keys its controls decide (a shared recipe's other keys are kept as they came).
    owns: [...STUDENT_OWNS, 'temperature', 'alpha', 'train', 'baseline', 'teacher', 'omit', 'bias_correction', 'attention', 'hints'],
    fields: [
      ...STUDENT_FIELDS,
      { key: 'temperature', label: 'Temperature T', control: 'number', value: '4' },
      { key: 'alpha', label: 'Weight α of the soft targets (1 − α on the labels)', control: 'number', value: '0.9' },
      { key: 'epochs', label: 'Student epochs', control: 'number', value: '3' },
      { key: 'lr', label: 'Student learning rate', control: 'number', value: '0.05' },
      { key: 'baseline', label: 'Also train the student from labels alone', ...SELECT([['yes', 'yes (compare)'], ['no', 'no']]), value: 'yes' },
      { key: 'teacher', label: 'Teacher', ...SELECT([['so-far', 'the model so far'], ['trained', 'the first training\'s model'], ...[0, 1, 2, 3, 4, 5].map((k) => [String(k), `the model stage ${k + 1} left`]), ['file', 'a model file (.sqz, chosen below)']]), value: 'so-far' },
      { key: 'teacherFile', label: 'Teacher file (a .sqz or .onnx this page downloaded; name the student above)', control: 'file', accept: '.sqz,.onnx', value: '' },
      { key: 'omit', label: 'Classes the student never sees (e.g. 3; empty = none)', control: 'text', value: '' },
      { key: 'bias', label: 'Then raise their bias by', control: 'number', value: '3.5' },
      { key: 'attention', label: 'Attention transfer: student node : teacher node : β, comma-separated (e.g. 1:1:100; nodes counted from the input, maps of equal size)', control: 'text', value: '' },
      { key: 'hints', label: 'Hints (FitNets): student node : teacher node : weight, comma-separated (a learned projection; outputs of equal height and width)', control: 'text', value: '' },
    ],
    toRecipe(v, train) {
      const d = { temperature: Number(v.temperature), alpha: Number(v.alpha), train: { ...train, epochs: Math.max(1, Number(v.epochs)), lr: Number(v.lr) }, baseline: v.baseline !== 'no' };
      if (v.teacher === 'trained') d.teacher = 'trained';
      else if (v.teacher === 'file') d.teacher = { file: v.teacherFile ?? '' };
      else if (v.teacher !== 'so-far' && v.teacher !== undefined) d.teacher = Number(v.teacher);
      const triples = (text) => (text ?? '').split(',').map((t) => t.trim()).filter((t) => t.length).map((t) => t.split(':').map(Number));
      const pairs = triples(v.attention);
      if (pairs.length) d.attention = pairs.map(([student, teacher, beta]) => ({ student, teacher, beta }));
      const hints = triples(v.hints);
      if (hints.length) d.hints = hints.map(([student, teacher, weight]) => ({ student, teacher, weight }));
      if (numList(v.omit ?? '').length) {
        d.omit = numList(v.omit);
        d.bias_correction = Number(v.bias);
      }
      if (v.arch !== 'same') d.student = studentOf(v);
      return { distill: d };
    },
    fromRecipe: (d) => ({
      ...studentFields(d.student),
      temperature: d.temperature,
      alpha: d.alpha,
      epochs: d.train?.epochs,
      lr: d.train?.lr,
      baseline: d.baseline === false ? 'no' : 'yes',
      teacher: d.teacher === undefined ? 'so-far' : d.teacher?.file !== undefined ? 'file' : String(d.teacher),
      teacherFile: d.teacher?.file ?? '',
      omit: showList(d.omit),
      attention: (d.attention ?? []).map((a) => `${a.student}:${a.teacher}:${a.beta}`).join(', '),
      hints: (d.hints ?? []).map((h) => `${h.student}:${h.teacher}:${h.weight}`).join(', '),
      bias: d.bias_correction,
    }),
  },
  'distill-grid': {
    label: 'Distill grid (one student per temperature × α: a heat map)',
    // Recipe keys its controls decide (a shared recipe's other keys are kept as they came).
    owns: [...STUDENT_OWNS, 'temperatures', 'alphas', 'train'],
    fields: [
      ...STUDENT_FIELDS,
      { key: 'temperatures', label: 'Temperatures T (comma-separated)', control: 'text', value: '1, 2, 4, 8' },
      { key: 'alphas', label: 'Weights α of the soft targets (0 = labels only)', control: 'text', value: '0, 0.5, 0.9' },
      { key: 'epochs', label: 'Epochs per student', control: 'number', value: '2' },
      { key: 'lr', label: 'Student learning rate', control: 'number', value: '0.05' },
    ],
    toRecipe(v, train) {
      const g = { temperatures: numList(v.temperatures), alphas: numList(v.alphas), train: { ...train, epochs: Math.max(1, Number(v.epochs)), lr: Number(v.lr) } };
      if (v.arch !== 'same') g.student = studentOf(v);
      return { 'distill-grid': g };
    },
    fromRecipe: (g) => ({
      ...studentFields(g.student),
      temperatures: showList(g.temperatures),
      alphas: showList(g.alphas),
      epochs: g.train?.epochs,
      lr: g.train?.lr,
    }),
  },
  train: {
    label: 'Fine-tune',
    // Recipe keys its controls decide (a shared recipe's other keys are kept as they came).
    owns: ['epochs', 'lr'],
    fields: [
      { key: 'epochs', label: 'Epochs', control: 'number', value: '1' },
      { key: 'lr', label: 'Learning rate', control: 'number', value: '0.01' },
    ],
    toRecipe: (v, train) => ({ train: { ...train, epochs: Number(v.epochs), lr: Number(v.lr) } }),
    fromRecipe: (t) => ({ epochs: t.epochs, lr: t.lr }),
  },
};
// Kinds the engine does not have yet: shown, disabled, so the pipeline's shape is visible.
const COMING = [];

// The pipeline: an ordered list of {kind, values}.
const pipeline = [];
let stageIds = 0;

function stageCard(stage, index) {
  const kind = STAGE_KINDS[stage.kind];
  const card = document.createElement('fieldset');
  card.className = 'stage';
  card.dataset.kind = stage.kind;
  const legend = document.createElement('legend');
  legend.textContent = `${index + 1}. ${kind.label}`;
  card.appendChild(legend);
  for (const f of kind.fields) {
    const id = `stage-${stage.id}-${f.key}`;
    const label = document.createElement('label');
    label.htmlFor = id;
    label.textContent = f.label;
    let input;
    if (f.control === 'file') {
      card.append(label, fileControl(stage, f, id));
      continue;
    }
    if (f.control === 'select') {
      input = document.createElement('select');
      for (const [value, text] of f.options) input.appendChild(new Option(text, value));
    } else {
      input = document.createElement('input');
      input.type = f.control === 'number' ? 'number' : 'text';
      if (f.control === 'number') input.step = 'any';
    }
    input.id = id;
    input.dataset.key = f.key;
    input.value = stage.values[f.key] ?? f.value;
    for (const ev of ['input', 'change']) input.addEventListener(ev, () => (stage.values[f.key] = input.value));
    card.append(label, input);
  }
  const buttons = document.createElement('div');
  buttons.className = 'stage-buttons';
  const button = (text, aria, fn, disabled) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'small';
    b.textContent = text;
    b.setAttribute('aria-label', `${aria} stage ${index + 1} (${kind.label})`);
    b.disabled = disabled;
    b.addEventListener('click', fn);
    buttons.appendChild(b);
  };
  button('↑', 'Move up', () => move(index, -1), index === 0);
  button('↓', 'Move down', () => move(index, 1), index === pipeline.length - 1);
  button('Remove', 'Remove', () => {
    pipeline.splice(index, 1);
    renderPipeline();
  });
  card.appendChild(buttons);
  return card;
}

// Model files the engine has loaded (name -> its description), and who loads one: main.js
// hands the file to the worker and resolves with the engine's description or rejects.
const loadedFiles = new Map();
let loadModelFile = null;
export function setModelFileLoader(fn) {
  loadModelFile = fn;
}
const describeFile = (i) => `${i.name}: ${i.arch}, ${i.parameters.toLocaleString('en')} parameters, ${i.input[0]}×${i.input[1]} images, ${i.classes} classes`;

// A file picker whose value (the loaded file's name) is the stage's; choosing a file loads it
// into the engine and makes it the teacher. What it says is beside it (an error as an alert).
function fileControl(stage, f, id) {
  const input = document.createElement('input');
  input.type = 'file';
  input.accept = f.accept;
  input.id = id;
  input.dataset.key = f.key;
  const status = document.createElement('p');
  status.id = `${id}-status`;
  status.className = 'hint';
  status.setAttribute('role', 'status');
  const show = () => {
    const name = stage.values[f.key];
    const info = loadedFiles.get(name);
    status.className = info || !name ? 'hint' : 'warn';
    status.setAttribute('role', 'status');
    status.textContent = info ? `Loaded ${describeFile(info)}` : name ? `${name} is not loaded on this page: choose it to run this recipe.` : 'No file chosen.';
    status.dataset.loaded = info ? 'true' : '';
  };
  input.addEventListener('change', async () => {
    const file = input.files[0];
    if (!file || !loadModelFile) return;
    status.className = 'hint';
    status.textContent = `Reading ${file.name}…`;
    try {
      const info = await loadModelFile(file);
      loadedFiles.set(info.name, info);
      stage.values[f.key] = info.name;
      stage.values.teacher = 'file';
      const select = input.closest('fieldset').querySelector('select[data-key=teacher]');
      if (select) select.value = 'file';
      show();
    } catch (e) {
      // The engine keeps what it had; the stage keeps its teacher.
      status.className = 'error';
      status.setAttribute('role', 'alert');
      status.textContent = e.message;
    }
  });
  show();
  const box = document.createElement('div');
  box.append(input, status);
  return box;
}

function move(index, by) {
  const [s] = pipeline.splice(index, 1);
  pipeline.splice(index + by, 0, s);
  renderPipeline();
}

export function renderPipeline() {
  const list = $('pipeline');
  list.replaceChildren(...pipeline.map(stageCard));
  $('pipeline-empty').hidden = pipeline.length > 0;
}

// `base`: the recipe stage a shared link or preset brought (its keys without controls are kept).
export function addStage(kind, values = {}, base = {}) {
  const defaults = Object.fromEntries(STAGE_KINDS[kind].fields.map((f) => [f.key, f.value]));
  const clean = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined && v !== null));
  pipeline.push({ id: stageIds++, kind, values: { ...defaults, ...clean }, base });
  renderPipeline();
}

export function setupPipelineControls() {
  const select = $('add-stage-kind');
  for (const [kind, k] of Object.entries(STAGE_KINDS)) select.appendChild(new Option(k.label, kind));
  for (const [value, text] of COMING) {
    const o = new Option(text, value);
    o.disabled = true;
    select.appendChild(o);
  }
  $('add-stage').addEventListener('click', () => addStage(select.value));
  renderPipeline();
}

// Controls -> recipe.
export function readRecipe() {
  const r = { model: {}, train: {}, limit: {} };
  for (const f of FIELDS) {
    const raw = $(f.id).value;
    const value = f.kind === 'num' ? Number(raw) : f.kind === 'list' ? numList(raw) : raw;
    setPath(r, f.path, value);
  }
  for (const f of FIELDS) {
    const v = getPath(r, f.path);
    const raw = $(f.id).value.trim();
    const empty = (Array.isArray(v) && v.length === 0) || (f.kind === 'num' && raw === '') || (f.optional && f.default !== undefined && raw === f.default);
    if ((f.when && !f.when(r)) || (f.optional && empty)) {
      const keys = f.path.split('.');
      const parent = keys.length > 1 ? getPath(r, keys.slice(0, -1).join('.')) : r;
      delete parent[keys[keys.length - 1]];
    }
  }
  if (r.from && !r.from.file) delete r.from;
  const { epochs, lr, ...trainRest } = r.train;
  r.stages = pipeline.map((s) => {
    const kind = STAGE_KINDS[s.kind];
    // A stage's own training settings (from a shared link) over the page's, under its controls.
    const own = s.kind === 'train' ? s.base : (s.base.finetune ?? s.base.train ?? {});
    const { epochs: _e, lr: _l, ...ownRest } = own;
    const made = kind.toRecipe(s.values, { ...trainRest, ...ownRest })[s.kind];
    return { [s.kind]: keepUnowned(s.base, made, kind.owns) };
  });
  return r;
}

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
// `made` (from the controls) with the keys of `base` no control decides: an owned key's value
// (or absence) is the controls'; inside an object both have, the same rule one level down.
function keepUnowned(base, made, owns, prefix = '') {
  const out = { ...made };
  for (const [k, v] of Object.entries(base ?? {})) {
    const path = prefix + k;
    if (k in made) {
      if (isObject(v) && isObject(made[k])) out[k] = keepUnowned(v, made[k], owns, `${path}.`);
    } else if (!owns.includes(path)) {
      out[k] = v;
    }
  }
  return out;
}

// Recipe -> controls (a shared link). Unknown stage kinds are reported, not dropped silently.
export function writeRecipe(r) {
  for (const f of FIELDS) {
    const v = getPath(r, f.path);
    if (v !== undefined) $(f.id).value = f.kind === 'list' ? showList(v) : String(v);
    else if (f.default !== undefined) $(f.id).value = f.default;
  }
  pipeline.length = 0;
  const skipped = [];
  for (const stage of r.stages ?? []) {
    const [kind] = Object.keys(stage);
    if (STAGE_KINDS[kind]) addStage(kind, STAGE_KINDS[kind].fromRecipe(stage[kind]), stage[kind]);
    else skipped.push(kind);
  }
  renderPipeline();
  $('arch').dispatchEvent(new Event('change'));
  return skipped;
}

export function recipeToURL(recipe) {
  const u = new URL(location.href);
  u.search = '';
  u.searchParams.set('r', JSON.stringify(recipe));
  for (const keep of ['backend', 'conv']) {
    const v = new URLSearchParams(location.search).get(keep);
    if (v) u.searchParams.set(keep, v);
  }
  return u.href;
}

// The recipe of a shared link, or null; throws with a readable message when it is malformed.
export function recipeFromURL() {
  const raw = new URLSearchParams(location.search).get('r');
  if (raw === null) return null;
  try {
    const r = JSON.parse(raw);
    if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new Error('not a recipe object');
    return r;
  } catch (e) {
    throw new Error(`The shared link's recipe could not be read (${e.message}); the settings below are the defaults.`);
  }
}
