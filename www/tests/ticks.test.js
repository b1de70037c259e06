// The log-axis ticks (src/ticks.js) on the ranges the Pareto chart meets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logTicks } from '../src/ticks.js';

test('log ticks: 1-2-5 inside a decade or two, digits in a narrow range, powers of ten over many', () => {
  // A run's model files (16 KB to 410 KB after the chart's padding).
  assert.deepEqual(logTicks(16_100, 410_000), [20_000, 50_000, 100_000, 200_000]);
  // Latencies of about 1.2 to 3 µs, padded: no float noise.
  assert.deepEqual(logTicks(0.75, 4.8), [1, 2]);
  assert.deepEqual(logTicks(0.013, 0.07), [0.02, 0.05]);
  // One point alone, padded 1.6x each way: 1-2-5 leave one tick, so every digit.
  assert.deepEqual(logTicks(2.1, 5.4), [3, 4, 5]);
  // Eight decades: 1-2-5 would be 24 labels.
  assert.deepEqual(logTicks(1, 1e8), [1, 10, 100, 1000, 1e4, 1e5, 1e6, 1e7, 1e8]);
  // The ends count; bad ranges give none.
  assert.deepEqual(logTicks(2, 5), [2, 5]);
  for (const [a, b] of [[0, 10], [-1, 10], [5, 2], [NaN, 3], [1, Infinity]]) assert.deepEqual(logTicks(a, b), []);
});
