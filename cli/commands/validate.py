"""``maec validate BOARD.csv --device PROFILE``: a latency profile against whole reference ViTs timed on the
device (DeiT-T/S/B, ViT-B/16, ViT-B/32; ``maec measure --sweep reference``), per model and as size-scaling
ratios. Exit status 0 when both targets hold (>= 80% of models within ±25%, every ratio within ±15%), 1 when
not, 2 on bad input.

    maec measure --sweep reference --export-kit refkit/     # on the board: python3 run_kit.py --threads 1 --repeats 10 --out pi4-1t.csv
    maec validate pi4-1t.csv --device rpi4-a72-ort-1t
    maec validate pi4-1t.csv --device rpi4-a72-ort-1t --add-to-data --cpu-cores "4x Cortex-A72 @1.8 GHz"
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
from pathlib import Path

from core.errors import UsageError
from evaluators.latency.fit.reference_check import RUNS_CSV  # no torch: maec devices imports it at start too


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a latency profile against reference ViTs timed on the device",
                       description="Predicts every reference model of a `maec measure --sweep reference` CSV with "
                                   "the profile and compares per model (±25%%) and as size ratios (±15%%).")
    p.add_argument("csv", help="CSV written by the reference kit's run_kit.py (or `maec measure --sweep reference`)")
    p.add_argument("--device", default=None, help="latency profile name or .json (default: the default profile)")
    p.add_argument("--add-to-data", nargs="?", const="", default=None, metavar="CSV",
                   help=f"append the runs, with provenance, to the project's board data (default {RUNS_CSV}); "
                        "ARM runs only")
    p.add_argument("--cpu-cores", default="", help="the cores the threads ran on, e.g. '4x Cortex-A76 @2.4 GHz' "
                                                   "(default: the CSV's CPU model; required on big.LITTLE SoCs)")
    p.add_argument("--soc", default="", help="SoC for the data rows, e.g. 'Broadcom BCM2711'")
    p.add_argument("--board", default="", help="device name for the data rows (default: the CSV's device column)")
    p.add_argument("--json", action="store_true", help="one JSON object with every check")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from evaluators.latency.fit.calibrate import read_measure_csv
    from evaluators.latency.fit.reference_check import (
        append_rows,
        check_models,
        check_ratios,
        mixed_cores,
        reference_samples,
        summary,
        whole_rows,
    )
    from evaluators.latency.measure.reference_items import REFERENCE_MODELS
    from evaluators.latency.predict.profile import load_profile

    samples, meta = read_measure_csv(Path(args.csv))
    if not reference_samples(samples):
        raise UsageError(f"{args.csv} has no reference rows (ref_*); time the kit of `maec measure --sweep reference "
                         "--export-kit DIR` on the device first")
    profile = load_profile(args.device)
    models = check_models(profile, samples)
    ratios = check_ratios(models)
    s = summary(models, ratios)
    added = 0
    if args.add_to_data is not None:
        with open(args.csv, newline="") as f:
            rows = list(csv.DictReader(f))
        try:  # first: rows not timed on ARM are refused whatever their cores
            new = whole_rows(rows, source_file=Path(args.csv).name, source_commit=_project_commit(),
                             cpu_cores=args.cpu_cores, soc=args.soc, device=args.board)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if mixed_cores(args.cpu_cores or meta["cpu_model"]):
            raise UsageError(f"say which cores the threads ran on with --cpu-cores (the CSV's CPU model is "
                             f"{meta['cpu_model']!r}), e.g. '4x Cortex-A76 @2.4 GHz'")
        target = Path(args.add_to_data or RUNS_CSV)
        added = append_rows(new, target)
    if args.json:
        print(json.dumps({"profile": profile.name, "threads": meta["threads"], "device": meta["device"],
                          "models": [dict(m.__dict__, error=m.error) for m in models],
                          "ratios": [dict(r.__dict__, error=r.error) for r in ratios], "summary": s,
                          "rows_added": added}, indent=1))
        return 0 if s["targets_met"] else 1
    print(f"{meta['device']} ({meta['cpu_model']}), {meta['threads']} thread(s), onnxruntime "
          f"{meta['runtime_version']}; profile {profile.name}")
    print(f"{'model':26s} {'measured ms':>12s} {'predicted ms':>13s} {'error':>8s}")
    for m in models:
        print(f"{m.model:26s} {m.measured_ms:12.2f} {m.predicted_ms:13.2f} {100 * m.error:+7.1f}%")
    for r in ratios:
        print(f"size scaling {r.larger} / {r.smaller}: measured {r.measured:.2f}, predicted {r.predicted:.2f} "
              f"({100 * r.error:+.1f}%)")
    missing = [n for n in REFERENCE_MODELS if n not in {m.model for m in models}]
    if missing:
        print(f"not timed: {', '.join(missing)}")
    print(f"{100 * s['within_25pct']:.0f}% of {s['models']} models within ±25% (target >= 80%); worst size-scaling "
          f"error {100 * s['worst_ratio_error']:.1f}% of {s['ratios']} (target <= 15%): "
          + ("targets met" if s["targets_met"] else "targets missed"))
    if s["same_graph_ratio"] is not None:
        print(f"DeiT-B / ViT-B/16, one graph timed twice: {s['same_graph_ratio']:.3f} (1 when the timing is steady; "
              "further than a few percent from 1: rerun on a quieter device or with more --rounds)")
    if added:
        print(f"appended {added} rows to {target}; `python benchmarks/latency_arm_validation.py` prints them "
              "against the shipped profiles")
    return 0 if s["targets_met"] else 1


def _project_commit() -> str:
    """The git commit of this checkout (the kit's and the check's code), or '' outside a git checkout."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False,
                             cwd=Path(__file__).resolve().parent)
    except OSError:
        return ""
    return res.stdout.strip() if res.returncode == 0 else ""
