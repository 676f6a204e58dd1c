"""Issue 5 target: the default search (`run_search.py --budget 20ms` on the embedded default).

Runs the search with the given arguments (default: the README's main job, in a fresh study named
after the seed) and prints the winner's predicted latency, test top-1 against the teacher's, the
trial counts and the wall time.

    python benchmarks/search_default.py [--seed 0] [-- extra run_search.py arguments]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.engine import search  # noqa: E402
from search.settings import settings_from_args  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", default="20ms")
    ap.add_argument("rest", nargs="*", help="more run_search.py arguments (after --)")
    args = ap.parse_args()
    name = f"bench-default-{args.budget}-s{args.seed}-{int(time.time())}"
    settings = settings_from_args(["--budget", args.budget, "--seed", str(args.seed), "--study-name", name,
                                   *args.rest])
    t0 = time.perf_counter()
    outcome = search(settings)
    wall_min = (time.perf_counter() - t0) / 60
    df = outcome.study.trials_dataframe(attrs=("state",))
    print(f"\nmachine: {os.cpu_count()} cores; study {name}; wall {wall_min:.1f} min; "
          f"{len(df)} trials, {int((df['state'] == 'COMPLETE').sum())} complete, {outcome.failed} failed")
    if outcome.winner is None:
        print(f"no winner within {args.budget}")
        return 1
    m = outcome.winner["metrics"]
    gap = 100 * (m["teacher_test_accuracy"] - m["test_accuracy"])
    print("| budget | teacher predicted ms | winner predicted ms | winner val top-1 in the search "
          "(recovery steps) | winner val top-1 exported (final recovery steps) | teacher test top-1 | "
          "winner test top-1 | gap (points) |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.budget} | {m['teacher_latency_ms']:.1f} | {m['latency_ms']:.2f} | "
          f"{100 * m['val_accuracy']:.2f} ({m.get('trial_recover_steps', '?')}) | "
          f"{100 * m['val_accuracy_rebuilt']:.2f} ({m.get('final_recover_steps', '?')}) | "
          f"{100 * m['teacher_test_accuracy']:.2f} | {100 * m['test_accuracy']:.2f} | {gap:.2f} |")
    print(f"target: fits the budget ({m['latency_ms'] <= m['budget_ms']}) and gap <= 1.5 points ({gap <= 1.5})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
