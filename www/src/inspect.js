// Looking inside the last run's models: draw a digit and see every model's class probabilities
// side by side (original and each compressed one), the first layer's weights as pictures with
// pruned weights marked, the confusion matrix and a grid of misclassified test images.

const $ = (id) => document.getElementById(id);
const CLASSES = {
  mnist: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  'fashion-mnist': ['T-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'boot'],
};
let classNames = CLASSES.mnist;
export function setDataset(name) {
  classNames = CLASSES[name] ?? CLASSES.mnist;
}

// ---- draw a digit ----

// MNIST's preprocessing of a drawing: the ink's bounding box scaled so its longer side is 20 px
// (aspect kept, anti-aliased), then placed in 28×28 with its centre of mass at the centre.
export function mnistPixels(canvas) {
  const { width, height } = canvas;
  const src = canvas.getContext('2d').getImageData(0, 0, width, height).data;
  let [x0, y0, x1, y1] = [width, height, -1, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (src[(y * width + x) * 4 + 3] > 0) {
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
    }
  }
  if (x1 < 0) return null;
  const bw = x1 - x0 + 1;
  const bh = y1 - y0 + 1;
  const s = 20 / Math.max(bw, bh);
  const small = document.createElement('canvas');
  small.width = small.height = 28;
  const ctx = small.getContext('2d');
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  const dw = Math.max(1, Math.round(bw * s));
  const dh = Math.max(1, Math.round(bh * s));
  ctx.drawImage(canvas, x0, y0, bw, bh, (28 - dw) / 2, (28 - dh) / 2, dw, dh);
  const a = ctx.getImageData(0, 0, 28, 28).data;
  const box = new Float32Array(784);
  let [m, mx, my] = [0, 0, 0];
  for (let i = 0; i < 784; i++) {
    box[i] = a[i * 4 + 3] / 255;
    m += box[i];
    mx += box[i] * (i % 28);
    my += box[i] * Math.floor(i / 28);
  }
  const dx = Math.round(13.5 - mx / m);
  const dy = Math.round(13.5 - my / m);
  const out = new Float32Array(784);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const sx = x - dx;
      const sy = y - dy;
      if (sx >= 0 && sx < 28 && sy >= 0 && sy < 28) out[y * 28 + x] = box[sy * 28 + sx];
    }
  }
  return out;
}

// A pad: pointer strokes (mouse, pen, touch) with a round brush; `onStroke` after each change.
export function drawingPad(canvas, onStroke) {
  const ctx = canvas.getContext('2d');
  ctx.lineWidth = canvas.width / 14;
  ctx.lineCap = ctx.lineJoin = 'round';
  ctx.strokeStyle = '#000';
  let last = null;
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [((e.clientX - r.left) * canvas.width) / r.width, ((e.clientY - r.top) * canvas.height) / r.height];
  };
  canvas.addEventListener('pointerdown', (e) => {
    canvas.setPointerCapture(e.pointerId);
    last = at(e);
    ctx.beginPath();
    ctx.arc(last[0], last[1], ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!last) return;
    const p = at(e);
    ctx.beginPath();
    ctx.moveTo(...last);
    ctx.lineTo(...p);
    ctx.stroke();
    last = p;
    onStroke();
  });
  const end = () => {
    if (last) onStroke();
    last = null;
  };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  return { clear: () => ctx.clearRect(0, 0, canvas.width, canvas.height) };
}

// Probability bars, one block per model, the top class marked.
export function showPredictions(predictions) {
  const box = $('predictions');
  box.replaceChildren();
  for (const p of predictions) {
    const top = p.probabilities.indexOf(Math.max(...p.probabilities));
    const block = document.createElement('div');
    block.className = 'prediction';
    block.dataset.top = String(top);
    const h = document.createElement('h4');
    h.textContent = `${p.name}: ${classNames[top]} (${(100 * p.probabilities[top]).toFixed(1)}%)`;
    block.appendChild(h);
    p.probabilities.forEach((v, c) => {
      const row = document.createElement('div');
      row.className = 'bar-row' + (c === top ? ' top' : '');
      row.setAttribute('aria-label', `${classNames[c]}: ${(100 * v).toFixed(1)}%`);
      const label = document.createElement('span');
      label.textContent = classNames[c];
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = `${(100 * v).toFixed(1)}%`;
      row.append(label, bar);
      block.appendChild(row);
    });
    box.appendChild(block);
  }
}

// ---- pictures ----

// Diverging colours: blue negative, red positive, white near zero; exact zeros (pruned) yellow.
function weightColor(v, scale) {
  if (v === 0) return [255, 214, 0];
  const t = Math.min(1, Math.abs(v) / scale);
  const f = Math.round(255 * (1 - t));
  return v > 0 ? [255, f, f] : [f, f, 255];
}

export function drawFirstLayer(canvas, layer, maxTiles = 64) {
  const { tile_h: th, tile_w: tw, channels: ch, units, weights } = layer;
  const n = Math.min(units, maxTiles);
  const cols = Math.min(n, 8);
  const rows = Math.ceil(n / cols);
  const zoom = Math.max(2, Math.floor(64 / Math.max(th, tw)));
  const gap = 4;
  canvas.width = cols * (tw * zoom + gap);
  canvas.height = rows * (th * zoom + gap);
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  let pruned = 0;
  for (let u = 0; u < n; u++) {
    // One colour scale per tile (its largest |w|), channel 0 shown for multi-channel filters.
    let scale = 1e-12;
    for (let r = 0; r < th * tw * ch; r++) scale = Math.max(scale, Math.abs(weights[r * units + u]));
    const img = ctx.createImageData(tw * zoom, th * zoom);
    for (let y = 0; y < th; y++) {
      for (let x = 0; x < tw; x++) {
        const v = weights[((y * tw + x) * ch) * units + u];
        if (v === 0) pruned++;
        const [r, g, b] = weightColor(v, scale);
        for (let zy = 0; zy < zoom; zy++) {
          for (let zx = 0; zx < zoom; zx++) {
            const i = ((y * zoom + zy) * tw * zoom + x * zoom + zx) * 4;
            img.data.set([r, g, b, 255], i);
          }
        }
      }
    }
    ctx.putImageData(img, (u % cols) * (tw * zoom + gap), Math.floor(u / cols) * (th * zoom + gap));
  }
  const shown = n * th * tw;
  canvas.setAttribute(
    'aria-label',
    `${layer.kind === 'dense' ? 'Input weights of the first layer\'s neurons' : 'First-layer conv filters'}: ${n} of ${units} shown as ${th}×${tw} tiles; ${pruned} of ${shown} shown weights are pruned (yellow)`,
  );
  canvas.dataset.pruned = String(pruned);
  canvas.dataset.shown = String(shown);
}

export function showConfusion(view) {
  const table = $('confusion');
  table.replaceChildren();
  const cap = document.createElement('caption');
  if (view.error) {
    // The run's data no longer fits the model (e.g. new files of another image size).
    cap.textContent = `No confusion matrix: ${view.error}`;
    cap.className = 'error';
    cap.setAttribute('role', 'alert');
    table.appendChild(cap);
    table.dataset.error = 'true';
    $('misclassified').replaceChildren();
    return;
  }
  delete table.dataset.error;
  const right = view.matrix.reduce((a, row, i) => a + row[i], 0);
  cap.textContent = `Confusion matrix on the first ${view.images} test images (rows: true class, columns: predicted): ${right} right, ${view.images - right} wrong`;
  table.appendChild(cap);
  const head = document.createElement('tr');
  head.appendChild(document.createElement('th'));
  for (const c of classNames) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = c;
    head.appendChild(th);
  }
  table.appendChild(head);
  const max = Math.max(1, ...view.matrix.flatMap((row, i) => row.filter((_, j) => j !== i)));
  view.matrix.forEach((row, i) => {
    const tr = document.createElement('tr');
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = classNames[i];
    tr.appendChild(th);
    row.forEach((v, j) => {
      const td = document.createElement('td');
      td.textContent = String(v);
      // Off-diagonal cells darken with their count; the diagonal is green.
      td.style.background = i === j ? '#d8f0d8' : `rgba(208, 66, 27, ${(0.7 * v) / max})`;
      tr.appendChild(td);
    });
    table.appendChild(tr);
  });
  const grid = $('misclassified');
  grid.replaceChildren();
  view.misclassified_pixels.forEach((px, k) => {
    const [index, label, pred] = view.misclassified[k];
    const fig = document.createElement('figure');
    const c = document.createElement('canvas');
    c.width = view.cols;
    c.height = view.rows;
    const img = c.getContext('2d').createImageData(view.cols, view.rows);
    px.forEach((v, i) => img.data.set([255 - v, 255 - v, 255 - v, 255], i * 4));
    c.getContext('2d').putImageData(img, 0, 0);
    c.setAttribute('aria-label', `test image ${index}: a ${classNames[label]} taken for ${classNames[pred]}`);
    const cap2 = document.createElement('figcaption');
    cap2.textContent = `${classNames[label]}→${classNames[pred]}`;
    fig.append(c, cap2);
    grid.appendChild(fig);
  });
}
