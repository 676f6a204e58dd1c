"""Issue 7: what a search's winner costs and gives, against the original model.

Two tables from one finished study (default: the newest ``results/bench-default-*`` study that
``benchmarks/search_default.py`` wrote):

1. trial cost by stage: seconds per trial for predict, compress, cheap estimate, recovery and the whole
   validation split (from each trial's ``timings``), split by what the trial went through;
2. the winner against the original: ``maec apply winner.json --split val`` here (the toolkit re-builds
   the winner with the search's seed and recovery, exports both ONNX models and quantizes the winner's):
   validation top-1 against what the search recorded (issue 5: within 0.5 points), ONNX Runtime latency
   on this machine (1 thread, batch 1, median), size on disk, and test top-1 as the search measured it.

    python benchmarks/winner_report.py [--study results/<study>] [--skip-apply]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import optuna  # noqa: E402

from evaluators.latency.measure.ort_timing import machine_summary  # noqa: E402

STAGES = ("predict_s", "compress_s", "cheap_eval_s", "recover_s", "eval_s")


def newest_default_study() -> Path:
    found = sorted((REPO / "results").glob("bench-default-*/winner.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit("no results/bench-default-*/winner.json: run benchmarks/search_default.py first")
    return found[-1].parent


def trial_cost_table(folder: Path) -> None:
    name = folder.name
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'study.db'}")
    groups: dict[str, list[dict]] = {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        stage = str(t.user_attrs.get("stage", "?"))
        key = "skipped (far over budget)" if stage.startswith("skipped") else stage
        groups.setdefault(key, []).append(t.user_attrs.get("timings") or {})
    print(f"trial cost by stage, study {name} (seconds per trial, mean):\n")
    print("| trials | n | " + " | ".join(s.removesuffix("_s") for s in STAGES) + " | total |")
    print("|---|---|" + "---|" * (len(STAGES) + 1))
    for key in ("skipped (far over budget)", "cheap", "recovered"):
        rows = groups.get(key, [])
        if not rows:
            continue
        means = [statistics.mean(r.get(s, 0.0) for r in rows) for s in STAGES]
        cells = " | ".join(f"{m:.2f}" if any(s in r for r in rows) else "-" for m, s in zip(means, STAGES))
        print(f"| {key} | {len(rows)} | {cells} | {sum(means):.2f} |")
    winner = json.loads((folder / "winner.json").read_text())
    print(f"\nwinner re-build (final recovery {winner['metrics'].get('final_recover_steps', '?')} steps, val + test "
          f"scoring): {winner['provenance'].get('rebuild_s', '?')} s")


def winner_vs_original(folder: Path) -> None:
    """``maec apply winner.json --split val`` here: the reproduction check (validation top-1 against what
    the search recorded for the exported winner) and the winner against the original."""
    winner = json.loads((folder / "winner.json").read_text())
    m = winner["metrics"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "deploy"
        cmd = [sys.executable, "-m", "cli.main", "apply", str(folder / "winner.json"), "--out", str(out),
               "--split", "val", "--threads", "1"]
        print(f"\nrunning: maec apply {folder / 'winner.json'} --out DIR --split val --threads 1", file=sys.stderr)
        subprocess.run(cmd, cwd=REPO, check=True, env=os.environ | {"PYTHONPATH": str(REPO)})
        r = json.loads((out / "report.json").read_text())
    lat, size = r["onnx_latency_ms"], r["size_on_disk_mb"]
    diff = 100 * (r["after"]["top1"] - m["val_accuracy_rebuilt"])
    print(f"\nreproduction: maec apply gives val top-1 {100 * r['after']['top1']:.2f}%, the search recorded "
          f"{100 * m['val_accuracy_rebuilt']:.2f}% for the exported winner ({diff:+.2f} points; target within 0.5: "
          f"{abs(diff) <= 0.5})")
    print(f"\nwinner of {folder.name} against the original, on this machine ({machine_summary()}, ONNX Runtime 1 thread, "
          f"batch 1, median of repeated runs); test top-1 as measured once by the search:\n")
    print("| model | predicted on the default profile (ms) | ONNX Runtime latency here (ms) | ONNX size on disk (MB) | "
          "test top-1 (%) | val top-1 PyTorch / ONNX (%) |")
    print("|---|---|---|---|---|---|")
    print(f"| original (fp32) | {m['teacher_latency_ms']:.1f} | {lat['original']['median_ms']:.3f} | "
          f"{size['original_onnx']:.2f} | {100 * m['teacher_test_accuracy']:.2f} | {100 * r['before']['top1']:.2f} / - |")
    print(f"| winner | {m['latency_ms']:.2f} | {lat['compressed']['median_ms']:.3f} | {size['compressed_onnx']:.2f} | "
          f"{100 * m['test_accuracy']:.2f} | {100 * r['after']['top1']:.2f} / {100 * r['after'].get('onnx_top1', float('nan')):.2f} |")
    print(f"\nspeed-up here {lat['speedup']}x (predicted on the Pi 4 profile "
          f"{m['teacher_latency_ms'] / m['latency_ms']:.2f}x); ONNX {size['original_onnx'] / size['compressed_onnx']:.2f}x "
          f"smaller; params {r['params']['original']:,} -> {r['params']['compressed']:,}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--study", type=Path, default=None, help="results/<study> folder (default: newest bench-default)")
    ap.add_argument("--skip-apply", action="store_true", help="only the trial-cost table")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = args.study or newest_default_study()
    print(f"machine: {machine_summary()}\n")
    trial_cost_table(folder)
    if not args.skip_apply:
        winner_vs_original(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
