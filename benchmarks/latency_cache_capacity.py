"""How the time per transformer block grows once a graph's weights outgrow the cache (issue 4, the MAE gap).

Times R = 1, 2, 4, 6, 8, 12 chained blocks of the embedded default (width 192, 3 heads, 768 MLP units,
fp32: 1.77 MB of weights each) at 13 tokens (the MAE encoder) and 50 tokens (the classifier) with ONNX
Runtime, one thread on one pinned core, 3 interleaved passes (lowest pass median), and prints the time
per block, and, when the host proof's profile exists (results/latency/host-ort-1t.json), what that
profile, fitted on operator rows, predicts for each row (plus int8 blocks at R = 4). Constant per-block time = weights served from cache at every R; growth past some R = the
weights of one call no longer stay cached until the next call, which the per-operator rows (a fixed
~4 MB span) do not see.

    .venv/bin/python benchmarks/latency_cache_capacity.py        # ~3 min
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluators.latency.fit.calibrate import read_measure_csv
from evaluators.latency.fit.fit import predict_samples, profile_parts_to_coefs
from evaluators.latency.measure.kit import build_kit
from evaluators.latency.measure.op_items import block_item
from evaluators.latency.measure.ort_timing import pin_to_core, run_manifest
from evaluators.latency.predict.profile import DeviceProfile

DIM, HEADS, MLP = 192, 3, 768


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last one)")
    p.add_argument("--profile", default=str(ROOT / "results" / "latency" / "host-ort-1t.json"))
    args = p.parse_args()
    pin_to_core(args.cpu)
    copies = (1, 2, 4, 6, 8, 12)
    items = [block_item(t, DIM, HEADS, MLP, 32, r=r) for t in (13, 50) for r in copies]
    items += [block_item(t, DIM, HEADS, MLP, 8, r=4) for t in (13, 50)]
    mb_per_block = 4 * (DIM * 3 * DIM + DIM * DIM + 2 * DIM * MLP) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        build_kit(items, Path(tmp) / "kit", progress=False)
        out = Path(tmp) / "blocks.csv"
        run_manifest(Path(tmp) / "kit", out, threads=1, repeats=50, warmup=10, min_seconds=0.5,
                     rounds=args.rounds, progress=False)
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))
        samples, _ = read_measure_csv(out)
    pred = [float("nan")] * len(rows)
    if Path(args.profile).exists():
        prof = DeviceProfile.load(args.profile)
        coefs = profile_parts_to_coefs(prof.core, prof.overhead["op_us"], prof.overhead["call_us"])
        coefs[("io_us",)] = prof.overhead.get("io_us", 0.0)
        pred = list(predict_samples(samples, coefs))
    print(f"{'tokens':>6s} {'bits':>4s} {'blocks':>6s} {'fp32 weights MB':>15s} {'ms per block':>12s} {'vs 1 block':>10s} "
          f"{'predicted':>9s} {'error':>7s}")
    base: dict[int, float] = {}
    for row, pr in zip(rows, pred):
        spec_ops = json.loads(row["spec"])["ops"]
        r = int(spec_ops[0][1])
        tokens, bits = int(row["bench"].split("_")[1][1:]), int(row["bench"].split("_w")[1].split("_")[0])
        per_block = float(row["latency_ms"]) / r
        base.setdefault((tokens, bits), per_block)
        print(f"{tokens:6d} {bits:4d} {r:6d} {r * mb_per_block:15.1f} {per_block:12.4f} "
              f"{100 * (per_block / base[(tokens, bits)] - 1):+9.1f}% {pr / r:9.4f} {100 * (pr / float(row['latency_ms']) - 1):+6.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
