// Ticks for the charts' log axes (the Pareto chart's bytes and µs): uPlot's own log ticks label
// powers of ten only, so a range inside one decade, as the models of one run often are, had one
// label or none.

// Ticks from `min` to `max`: 1, 2 and 5 × 10^k; every digit × 10^k where those are fewer than
// two; powers of ten alone where they are more than eight.
export function logTicks(min, max) {
  if (!(min > 0) || !(max >= min) || !Number.isFinite(max)) return [];
  const ticks = (mantissas) => {
    const out = [];
    for (let e = Math.floor(Math.log10(min)); 10 ** e <= max; e++) {
      for (const m of mantissas) {
        const t = +(m * 10 ** e).toPrecision(6); // 0.2, not 0.20000000000000004
        if (t >= min && t <= max) out.push(t);
      }
    }
    return out;
  };
  const fine = ticks([1, 2, 5]);
  if (fine.length < 2) return ticks([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  return fine.length <= 8 ? fine : ticks([1]);
}
