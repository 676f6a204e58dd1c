"""Issue 16 target: does adding ``tokens`` to the searched techniques raise the best recovered test top-1?

For each seed, two searches of the default strategy at the same budget with the same cost (trials,
recovery): the default techniques, and the default techniques plus ``tokens``. Each search's winner is
its best feasible trial by cheap validation score (``--recover-top 0``), re-built with
``--final-recover-steps`` of distillation and scored once on the whole test split. Prints per seed and
the mean difference with its range (n seeds: a paired bootstrap over n values spans their range).
Studies are kept under ``--results-dir`` and reused when present (``--report-only`` prints only).

    python benchmarks/tome_search.py [--budget 10ms] [--seeds 0,1,2] [--trials 30] [--final-recover-steps 100]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.engine import search  # noqa: E402
from search.settings import settings_from_args  # noqa: E402

CONTENDERS = {"default": "prune,quant,lowrank,distill", "with tokens": "prune,quant,lowrank,distill,tokens"}


def run_one(results: Path, budget: str, seed: int, name: str, techniques: str, trials: int, steps: int) -> dict:
    study = f"tome-{budget}-{name.replace(' ', '-')}-s{seed}"
    winner = results / study / "winner.json"
    if not winner.is_file():
        argv = ["--budget", budget, "--seed", str(seed), "--study-name", study, "--results-dir", str(results),
                "--techniques", techniques, "--trials", str(trials), "--timeout", "0", "--recover-top", "0",
                "--final-recover-steps", str(steps), "--recover-steps", str(steps)]
        t0 = time.perf_counter()
        search(settings_from_args(argv))
        print(f"  {study}: {(time.perf_counter() - t0) / 60:.1f} min", file=sys.stderr, flush=True)
    w = json.loads(winner.read_text())
    return {"test": w["metrics"]["test_accuracy"], "ms": w["metrics"]["latency_ms"],
            "merges": [b.get("merge_tokens", 0) for b in w["config"]["blocks"]]}


def share_summary(study_dir: Path, budget: str) -> str:
    """``share: n trials, best feasible cheap score`` of a with-tokens study, read from its storage."""
    import optuna

    from search.budget import parse_budget_ms

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_dir.name, storage=f"sqlite:///{study_dir / 'study.db'}")
    by_share: dict[float, list[float]] = {}
    for t in study.trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            share = t.user_attrs.get("merge_used", t.params.get("merge", 0.0))
            feasible = t.values[1] <= parse_budget_ms(budget)
            by_share.setdefault(share, []).append(t.values[0] if feasible else float("nan"))
    return "; ".join(f"{share:g}: {len(v)} trials, best {max((x for x in v if not math.isnan(x)), default=float('nan')):.3f}"
                     for share, v in sorted(by_share.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", default="10ms")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--final-recover-steps", type=int, default=100)
    ap.add_argument("--results-dir", default="results/bench-tome")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    results = Path(args.results_dir)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for seed in seeds:
        row = {}
        for name, techniques in CONTENDERS.items():
            study = results / f"tome-{args.budget}-{name.replace(' ', '-')}-s{seed}" / "winner.json"
            if args.report_only and not study.is_file():
                continue
            row[name] = run_one(results, args.budget, seed, name, techniques, args.trials, args.final_recover_steps)
        if len(row) == len(CONTENDERS):
            rows.append((seed, row))
    print(f"budget {args.budget}, default strategy, {args.trials} trials per search, winner = best cheap trial "
          f"re-built with {args.final_recover_steps} recovery steps, test top-1 on 10,000 images:")
    print("| seed | default | with tokens | difference (points) | tokens merged per block (with tokens) |")
    print("|---|---|---|---|---|")
    diffs = []
    for seed, row in rows:
        d = 100 * (row["with tokens"]["test"] - row["default"]["test"])
        diffs.append(d)
        print(f"| {seed} | {100 * row['default']['test']:.2f} | {100 * row['with tokens']['test']:.2f} | {d:+.2f} | "
              f"{row['with tokens']['merges']} |")
    print("\nwith tokens, per merge share actually used (merge_used when a share fell back): trials, best cheap "
          "validation accuracy within the budget")
    for seed, _ in rows:
        print(f"  seed {seed}: {share_summary(results / f'tome-{args.budget}-with-tokens-s{seed}', args.budget)}")
    if diffs:
        mean = sum(diffs) / len(diffs)
        print(f"mean difference {mean:+.2f} points over {len(diffs)} seeds (range {min(diffs):+.2f} .. {max(diffs):+.2f}); "
              f"target >= +0.5: {'met' if mean >= 0.5 else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
