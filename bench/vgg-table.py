#!/usr/bin/env python3
"""Summarises `squeeze run recipes/quantize-vgg-mini.json --json F` reports (one per seed) into the
README's VGG case-study table: per quantize stage, accuracy per seed with mean ± std and the change
against float, bytes the model file stores (weights Huffman-coded where smaller), per-layer weight
SQNR (mean over seeds). Usage: bench/vgg-table.py seed1.json seed2.json ..."""
import json
import statistics
import sys

reports = [json.load(open(f)) for f in sys.argv[1:]]
floats = [r["stages"][0]["test_accuracy"] * 100 for r in reports]
std = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
print(f"float: {' / '.join(f'{a:.2f}' for a in floats)} = {statistics.mean(floats):.2f} ± {std(floats):.2f}")
print("| method | test accuracy, seeds (%) | mean ± std | change vs float (pp) | stored bytes (x smaller) | weight SQNR per layer (dB) |")
print("|---|---|---|---|---|---|")
for i, stage in enumerate(reports[0]["stages"]):
    q = stage.get("quantization")
    if not q:
        continue
    accs = [r["stages"][i]["test_accuracy"] * 100 for r in reports]
    delta = [a - f for a, f in zip(accs, floats)]
    layers = q["layers"]
    name = f"{layers[0]['scheme']} {layers[0]['bits']}"
    sqnr = [statistics.mean(r["stages"][i]["quantization"]["layers"][l]["weights"]["sqnr_db"] for r in reports) for l in range(len(layers))]
    size = [r["stages"][i]["quantization"]["bytes_huffman"] for r in reports]
    f32 = q["bytes_f32"]
    print(f"| {name} | {' / '.join(f'{a:.2f}' for a in accs)} | {statistics.mean(accs):.2f} ± {std(accs):.2f} | {statistics.mean(delta):+.2f} | "
          f"{' / '.join(f'{b:,}' for b in size)} ({f32 / statistics.mean(size):.1f}x) | {' / '.join(f'{s:.1f}' for s in sqnr)} |")
for r in reports:
    for s in r["stages"]:
        if "sweep" in s:
            p = s["sweep"].get("proposal")
            print("sweep proposal:", json.dumps(p)[:300])
