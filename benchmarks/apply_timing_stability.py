"""Issue 12: is `maec apply`'s original-vs-compressed latency ratio stable from run to run?

Times the two ONNX files of a `maec apply` folder ``--runs`` times, each run both ways: the multi-pass
rule `maec apply` uses (3 interleaved passes, lowest pass median; ``measure.host.compare_latency_ms``)
and a single pass (one median of 50 runs each, one after the other), and prints the ratios.

    python benchmarks/apply_timing_stability.py DEPLOY_DIR [--runs 4]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluators.latency.measure.host import compare_latency_ms, model_inputs  # noqa: E402
from evaluators.latency.measure.ort_timing import machine_summary, time_ms  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a folder written by `maec apply` (original.onnx, model.onnx)")
    ap.add_argument("--runs", type=int, default=4)
    args = ap.parse_args()
    paths = {"original": Path(args.folder) / "original.onnx", "compressed": Path(args.folder) / "model.onnx"}
    print(f"machine: {machine_summary()}; ONNX Runtime 1 thread, batch 1")
    print("| run | multi-pass: original -> compressed ms (ratio) | single pass ratio |")
    print("|---|---|---|")
    for i in range(args.runs):
        r = compare_latency_ms(paths)
        single = {k: time_ms(p, model_inputs(p), repeats=50, warmup=10)["latency_ms"] for k, p in paths.items()}
        print(f"| {i + 1} | {r['original'].median_ms:.3f} -> {r['compressed'].median_ms:.3f} "
              f"({r['compressed'].median_ms / r['original'].median_ms:.3f}) | "
              f"{single['compressed'] / single['original']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
