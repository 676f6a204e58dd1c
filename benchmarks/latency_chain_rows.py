"""Why the sweep has Linears in sequence (``op_items.linear_chain_item``) beside its parallel rows.

Times, on one core with one ONNX Runtime thread, the same Linear shapes two ways: as the sweep's parallel
row (R copies, each on its own graph input with its own output, ``op_items.linear_item``) and as a chain
(``k -> n -> k`` pairs in sequence on one input, as a model's Linears and a low-rank pair's two factors run),
and prints the time per Linear. A gap on small shapes and none on large ones is a fixed cost per graph input /
output that the parallel rows add to every Linear, which the fit can only tell apart from the Linear's own
fixed cost with rows that have no extra inputs. ``--rounds`` interleaved passes, lowest pass median.

    .venv/bin/python benchmarks/latency_chain_rows.py          # ~1 min
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluators.latency.measure.op_items import linear_chain_item, linear_item
from evaluators.latency.measure.ort_timing import pin_to_core, time_interleaved_ms

SHAPES = ((50, 192, 24), (13, 192, 768), (65, 384, 48), (50, 192, 576))  # tokens, k, n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--span", type=float, default=8.4e6, help="weight bytes per row (the host proof: 4 x L2)")
    p.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last one)")
    args = p.parse_args()
    pin_to_core(args.cpu)
    items = []
    for t, k, n in SHAPES:
        items += [linear_item(t, k, n, span=args.span), linear_item(t, n, k, span=args.span),
                  linear_chain_item(t, k, n, span=args.span)]
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for it in items:
            path = Path(tmp) / f"{it.bench}.onnx"
            files[it.bench] = (path, it.build(path))
        # interleaved passes, lowest pass median: a disturbed window hits one pass of each row
        timed = time_interleaved_ms(files, rounds=args.rounds, repeats=200, warmup=20, progress=True)
    # µs per Linear: a row's time over the Linears it runs
    best = {it.bench: 1e3 * timed[it.bench]["latency_ms"] / sum(c for _, c in it.spec["ops"]) for it in items}
    print("| tokens, k -> n | parallel k -> n, µs per Linear | parallel n -> k | in sequence (k -> n -> k) | sequence / parallel mean |")
    print("|---|---|---|---|---|")
    for t, k, n in SHAPES:
        a, b = best[f"linear_t{t}_{k}x{n}_w32a32"], best[f"linear_t{t}_{n}x{k}_w32a32"]
        c = best[f"linchain_t{t}_{k}x{n}_w32a32"]
        print(f"| {t}, {k} -> {n} | {a:.2f} | {b:.2f} | {c:.2f} | {c / ((a + b) / 2):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
