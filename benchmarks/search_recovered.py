"""Issue 13, item 6: the search strategies compared at the accuracy users get -- recovered, on the test split,
at equal wall-clock per search.

Reads the studies that ``benchmarks/search_quality.py`` ran (cheap fidelity: compressed weights, no
recovery, 1,000 validation images) in ``--results-dir`` and, per budget:

1. **Equal wall-clock.** Per seed, the time budget ``W`` is the summed trial durations of the
   ``--reference`` search (default: the allocate strategy's 40 trials). A search that spent less is
   extended (``run_search.py --resume`` with more trials, same seed and study) until it has spent at
   least ``W``; every search is then cut to its trials that finished within ``W`` (in trial order,
   summing trial durations: the machine's load while the studies ran differs, the trials' own time is
   what each search was given).
2. **The same final recovery for every contender.** Each search's top ``--top`` feasible trials by their
   cheap validation score are re-built with ``--recover-steps`` of distillation at the default
   distillation settings and the search's recovery learning rate (``DistillConfig(lr=SEARCH_RECOVERY_LR)``:
   a temperature a search sampled at the cheap fidelity was never scored), then scored on the whole validation split and on the 10,000 test images.
3. **Report.** Per search, the trial with the best *recovered validation* score is its pick; its test
   top-1 is what a user of that search gets. Mean and range over seeds, the paired difference per seed
   with a bootstrap interval (numpy, seeded), and the hypervolume of the recovered validation points
   (accuracy x ms, reference accuracy 0.1 and the budget).

Each finished recovery is stored in ``<results-dir>/recovered.json`` (key ``study/trial``), so a killed
run continues where it stopped, and ``--report-only`` prints the table from it.

    python benchmarks/search_recovered.py --results-dir results/bench-quality-10ms --budget 10ms
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402
import optuna  # noqa: E402
from tqdm import tqdm  # noqa: E402

from evaluators.latency.measure.ort_timing import machine_summary  # noqa: E402
from search_quality import VARIANTS, hypervolume, study_name  # noqa: E402

DEFAULT_VARIANTS = ["allocate TPE", "uniform", "joint TPE"]


def load(folder: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / name / 'study.db'}")


def spent_s(trial: optuna.trial.FrozenTrial) -> float:
    """How long the trial ran (0 for one that never finished, or was failed by ``--resume`` after a kill:
    its end is when the resume ran)."""
    if trial.datetime_start is None or trial.datetime_complete is None or \
            str(trial.user_attrs.get("fail_reason", "")).startswith("interrupted:"):
        return 0.0
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def within(study: optuna.Study, budget_s: float) -> list[optuna.trial.FrozenTrial]:
    """The trials, in order, whose summed durations stay within ``budget_s``."""
    out, total = [], 0.0
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        total += spent_s(t)
        if total > budget_s:
            break
        out.append(t)
    return out


def total_s(study: optuna.Study) -> float:
    return sum(spent_s(t) for t in study.get_trials(deepcopy=False))


def extend(variant: str, seed: int, args: argparse.Namespace, budget_s: float) -> None:
    """Run more trials of ``variant``'s study until it has spent ``budget_s`` (at most 3 rounds)."""
    name = study_name(variant, seed, args.trials)
    for _ in range(3):
        study = load(Path(args.results_dir), name)
        spent, n = total_s(study), len(study.trials)
        if spent >= budget_s:
            return
        per_trial = spent / max(1, n)
        more = math.ceil(1.2 * (budget_s - spent) / max(per_trial, 0.1)) + 2
        cmd = [sys.executable, str(REPO / "run_search.py"), "--budget", args.budget, "--trials", str(n + more),
               "--timeout", "0", "--seed", str(seed), "--study-name", name, "--results-dir", args.results_dir,
               "--cheap-val-images", "1000", "--no-progress", "--resume", *VARIANTS[variant]]
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        log = Path(args.results_dir) / f"{name}.extend.log"
        with log.open("a") as fh:
            subprocess.run(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)


def picks(trials: list[optuna.trial.FrozenTrial], top: int) -> list[optuna.trial.FrozenTrial]:
    """The ``top`` feasible complete trials by cheap score, one per distinct config (as the search picks)."""
    from search.winner import best_distinct

    feasible = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("feasible")]
    return best_distinct(feasible, top)


_SETUP = None


def _init_worker(budget: str, threads: int) -> None:
    import torch

    from search.settings import settings_from_args
    from search.setup import build_setup

    global _SETUP
    torch.set_num_threads(threads)
    _SETUP = build_setup(settings_from_args(["--budget", budget, "--no-progress", "--strategy", "joint"]))  # no table needed


def recover_one(config_dict: dict, steps: int) -> dict:
    """Re-build one config with the common recovery; its validation and test top-1."""
    from spaces.config import CompressionConfig, DistillConfig
    from spaces.space import SEARCH_RECOVERY_LR

    t0 = time.perf_counter()
    config = replace(CompressionConfig.from_dict(config_dict), distill=DistillConfig(steps=steps, lr=SEARCH_RECOVERY_LR))
    student, _ = _SETUP.evaluator.compress(config, recover_steps=steps)
    return {"val": _SETUP.evaluator.score(student, "val"), "test": _SETUP.evaluator.score(student, "test"),
            "steps": steps, "seconds": round(time.perf_counter() - t0, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results-dir", required=True)
    ap.add_argument("--budget", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=40, help="the trial count in the studies' names")
    ap.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS), metavar="VARIANT")
    ap.add_argument("--reference", default="allocate TPE", help="the search whose time the others get")
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--recover-steps", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2, help="recoveries side by side (one torch thread each)")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    from search.budget import parse_budget_ms

    args.budget_ms = parse_budget_ms(args.budget)
    folder = Path(args.results_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    budget_s = {s: total_s(load(folder, study_name(args.reference, s, args.trials))) for s in args.seeds}
    if not args.report_only:
        from concurrent.futures import ThreadPoolExecutor

        others = [(v, s) for s in args.seeds for v in args.variants if v != args.reference]
        with ThreadPoolExecutor(args.workers) as pool:  # each extension is a one-thread subprocess
            list(tqdm(pool.map(lambda vs: extend(*vs, args, budget_s[vs[1]]), others), total=len(others),
                      desc="equal-time extensions", unit="search"))
    cache_file = folder / "recovered.json"
    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    chosen: dict[tuple[str, int], list[optuna.trial.FrozenTrial]] = {}
    used: dict[tuple[str, int], list[optuna.trial.FrozenTrial]] = {}
    for s in args.seeds:
        for v in args.variants:
            study = load(folder, study_name(v, s, args.trials))
            used[v, s] = within(study, budget_s[s])
            chosen[v, s] = picks(used[v, s], args.top)
    key = lambda v, s, t: f"{study_name(v, s, args.trials)}/{t.number}"  # noqa: E731
    jobs = [(key(v, s, t), t.user_attrs["config"]) for (v, s), ts in chosen.items() for t in ts
            if key(v, s, t) not in cache]
    if jobs and not args.report_only:
        with ProcessPoolExecutor(args.workers, initializer=_init_worker, initargs=(args.budget, 1)) as pool, \
                tqdm(total=len(jobs), desc="recoveries", unit="config") as bar:
            futures = {pool.submit(recover_one, config, args.recover_steps): k for k, config in jobs}
            for f in as_completed(futures):
                cache[futures[f]] = f.result()
                tmp = cache_file.with_suffix(".tmp")
                tmp.write_text(json.dumps(cache, indent=1))
                tmp.replace(cache_file)
                bar.update()
    report(args, budget_s, used, chosen, cache, key, time.perf_counter() - t0)
    return 0


def report(args, budget_s, used, chosen, cache, key, wall_s: float) -> None:
    print(f"\nmachine: {machine_summary()}; budget {args.budget}; {args.workers} recoveries side by side, 1 torch "
          f"thread each; wall {wall_s / 60:.1f} min")
    print(f"equal wall-clock per seed (summed trial seconds of {args.reference}): "
          + ", ".join(f"seed {s}: {budget_s[s]:.0f} s" for s in args.seeds))
    print(f"each search's top {args.top} feasible trials by cheap val top-1, re-built with {args.recover_steps} "
          "distillation steps (default settings, peak lr 3e-4), scored on the whole validation split and the test split\n")
    print("| search | trials within the time | pick's recovered val top-1 (%) | pick's test top-1 (%) | "
          "best cheap val top-1 (%) | hypervolume, recovered val |")
    print("|---|---|---|---|---|---|")
    rows: dict[str, dict[int, dict]] = {}
    for v in args.variants:
        for s in args.seeds:
            done = [(t, cache[key(v, s, t)]) for t in chosen[v, s] if key(v, s, t) in cache]
            if not done:
                continue
            t, best = max(done, key=lambda p: (p[1]["val"], -p[0].values[1]))
            rows.setdefault(v, {})[s] = {
                "n": len(used[v, s]), "val": best["val"], "test": best["test"],
                "cheap": chosen[v, s][0].values[0], "recovered": len(done),
                "hv": hypervolume([(r["val"], t.values[1]) for t, r in done], args.budget_ms, 0.1)}
    for v, by_seed in rows.items():
        def col(k: str, scale: float = 100.0) -> str:
            xs = [r[k] * scale for r in by_seed.values()]
            return f"{statistics.mean(xs):.2f} [{min(xs):.2f}, {max(xs):.2f}]"
        n = ", ".join(str(r["n"]) for r in by_seed.values())
        print(f"| {v} ({len(by_seed)} seeds) | {n} | {col('val')} | {col('test')} | {col('cheap')} | {col('hv', 1.0)} |")
    print()
    ref = args.variants[0]
    for other in args.variants[1:]:
        seeds = sorted(set(rows.get(ref, {})) & set(rows.get(other, {})))
        if not seeds:
            continue
        d = np.array([rows[ref][s]["test"] - rows[other][s]["test"] for s in seeds]) * 100
        rng = np.random.default_rng(0)
        lo, hi = np.percentile([rng.choice(d, len(d)).mean() for _ in range(10_000)], [2.5, 97.5])
        hv_ratio = statistics.mean(rows[ref][s]["hv"] for s in seeds) / max(
            1e-12, statistics.mean(rows[other][s]["hv"] for s in seeds))
        print(f"{ref} - {other}, test top-1 of the pick: {d.mean():+.2f} points (per seed "
              f"{', '.join(f'{x:+.2f}' for x in d)}; paired bootstrap 95% [{lo:+.2f}, {hi:+.2f}], n = {len(d)}); "
              f"hypervolume ratio (recovered val) {hv_ratio:.2f}")


if __name__ == "__main__":
    sys.exit(main())
