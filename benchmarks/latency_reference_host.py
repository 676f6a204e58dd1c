"""The per-operator method on whole published ViTs, on this machine: how far a profile calibrated from the
operator sweep (Linear rows up to 3072 wide at 10-197 tokens, block chains of 21 MB at most) carries to DeiT-T/S/B and
ViT-B/16, B/32 at 224 px -- what ``maec calibrate`` then ``maec validate`` tell a user about their own board.

One kit: the standard operator sweep and the five reference models (``maec measure --sweep reference``),
timed in the same interleaved passes in a fresh process (one core, one ONNX Runtime thread, lowest pass
median), so operator rows and models see one machine speed. Then:

1. the profile fitted on the operator rows only (``--fit-on ops``), every reference model predicted, and the
   size-scaling ratios (``maec validate``'s checks); beside them what MACs alone say of each ratio;
2. each reference model held out in turn from a fit on the operator rows plus the other four
   (``--fit-on all``): what timing the reference kit beside the sweep buys a calibration.

    .venv/bin/python benchmarks/latency_reference_host.py            # ~12 min; CSV in results/latency/
    .venv/bin/python benchmarks/latency_reference_host.py --reuse    # the last CSV, fits only
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluators.latency.fit.calibrate import calibrate_rows, read_measure_csv
from evaluators.latency.fit.reference_check import check_models, check_ratios, reference_samples, summary
from evaluators.latency.measure.kit import build_kit, sweep_items, time_kit
from evaluators.latency.measure.op_items import SPAN_BYTES, l2_bytes
from evaluators.latency.measure.ort_timing import machine_summary

OUT = ROOT / "results" / "latency"
CSV = OUT / "host-reference-1t.csv"


def _round_ms(path: Path) -> dict[str, str]:
    """``{bench: "a;b;c"}`` pass medians of the reference rows."""
    with open(path, newline="") as f:
        return {r["bench"]: r["round_ms"] for r in csv.DictReader(f) if r["bench"].startswith("ref_")}


def _macs(sample) -> float:
    return sum(op.macs for op, _ in sample.terms)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reuse", action="store_true", help="fit and report the last CSV; time nothing")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cpu", type=int, default=None, help="core to pin the timing to (default: the last one)")
    args = p.parse_args()
    if not args.reuse:
        cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
        items = sweep_items("standard", 0, models=False, span=max(SPAN_BYTES, 4 * l2_bytes())) + sweep_items("reference")
        kit = OUT / "kit-reference"
        shutil.rmtree(kit, ignore_errors=True)
        OUT.mkdir(parents=True, exist_ok=True)
        build_kit(items, kit, progress=True)
        print(f"timing {len(items)} rows ({len(items) - 5} operator rows, 5 reference models) on cpu {cpu}, "
              f"{args.rounds} passes", file=sys.stderr)
        time_kit(kit, CSV, threads=1, repeats=30, warmup=5, min_seconds=0.5, rounds=args.rounds, cpu=cpu)
    elif not CSV.is_file():
        print(f"{CSV} does not exist; run without --reuse first", file=sys.stderr)
        return 2
    samples, meta = read_measure_csv(CSV)
    ops, refs = [s for s in samples if s.group != "model"], reference_samples(samples)
    print(f"machine: {machine_summary()}")
    print(f"rows: {len(ops)} operator rows and {len(refs)} reference models, timed {meta['measured_at']} in one kit\n")

    prof = calibrate_rows(ops, meta, name="host-ops", source=CSV, fit_on="ops")
    fp = prof.overhead.get("footprint")
    print("## 1. Fitted on the operator rows only (footprint: "
          + (f"{fp['ns_per_byte']:.4f} ns per byte beyond {fp['cache_bytes'] / 1e6:.0f} MB)" if fp else "none fitted)")
          + "\n")
    models = check_models(prof, refs)
    weights_mb = {s.meta["bench"].removeprefix("ref_"): 4 * sum(op.params for op, _ in s.terms) / 1e6 for s in refs}
    print("| model | fp32 weights MB | measured ms | predicted ms | error |")
    print("|---|---|---|---|---|")
    for m in models:
        print(f"| {m.model} | {weights_mb[m.model]:.0f} | {m.measured_ms:.2f} | {m.predicted_ms:.2f} | {100 * m.error:+.1f}% |")
    macs = {s.meta["bench"].removeprefix("ref_"): _macs(s) for s in refs}
    print("\n| size scaling | measured | predicted | error | MACs alone | error |")
    print("|---|---|---|---|---|---|")
    ratios = check_ratios(models)
    for r in ratios:
        mac = macs[r.larger] / macs[r.smaller]
        print(f"| {r.larger} / {r.smaller} | {r.measured:.2f} | {r.predicted:.2f} | {100 * r.error:+.1f}% | {mac:.2f} | "
              f"{100 * (mac / r.measured - 1):+.1f}% |")
    s = summary(models, ratios)
    print(f"\n{100 * s['within_25pct']:.0f}% of {s['models']} models within ±25% (target >= 80%); worst size-scaling error "
          f"{100 * s['worst_ratio_error']:.1f}% (target <= 15%)")
    if s["same_graph_ratio"] is not None:
        print(f"noise gauge: DeiT-B / ViT-B/16 (one graph) measured {s['same_graph_ratio']:.3f}; pass medians "
              + "; ".join(f"{n.removeprefix('ref_')} " + "/".join(f"{float(v):.0f}" for v in rm.split(";"))
                          for n, rm in _round_ms(CSV).items()))

    print("\n## 2. Each reference model held out from a fit on the operator rows and the other four\n")
    print("| held out | measured ms | predicted ms | error |")
    print("|---|---|---|---|")
    held = []
    for s_out in refs:
        rest = [s for s in refs if s is not s_out]
        # heldout_frac 0.1: the calibration's own split keeps all four models in the fit (round(0.4) = 0)
        fit = calibrate_rows(ops + rest, meta, name="host-ops-refs", source=CSV, fit_on="all", heldout_frac=0.1)
        (m,) = check_models(fit, [s_out])
        held.append(m)
        print(f"| {m.model} | {m.measured_ms:.2f} | {m.predicted_ms:.2f} | {100 * m.error:+.1f}% |")
    s2 = summary(held, check_ratios(held))
    print(f"\nheld out one at a time: {100 * s2['within_25pct']:.0f}% of {s2['models']} within ±25%; the same ratios from "
          f"these held-out predictions, worst error {100 * s2['worst_ratio_error']:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
