"""Issue 7: does the joint search beat the obvious alternatives at the 20 ms budget?

Runs ``run_search.py`` on the embedded default (shipped MAE classifier, Fashion-MNIST, default ARM
profile) for every variant x seed, at equal trial counts, and prints one table:

* joint per-layer space with TPE, NSGA-II and random sampling;
* single-technique searches (pruning only, quantization only, low-rank only; TPE);
* the uniform heuristic (one pruning ratio / bit-width / rank fraction for every layer; TPE);
* the ``allocate`` strategy (issue 13: a measured sensitivity table solved exactly under the budget by
  ``search/allocate.py``, TPE over the damage weights and the budget share; ``search/allocation_space.py``).

The joint and single-technique searches start, as every new joint-space study does, with the uniform
heuristic's largest configs within budget (``search/warm_start.py``; up to 6 of the 40 trials).

Per variant: best feasible validation accuracy (mean and range over seeds), that trial's test accuracy
(the winner, re-built once and scored on the 10,000 test images), and the hypervolume of the
accuracy / latency front (two reference regions, see :func:`hypervolume`).

Why no distillation here: recovery costs ~60 s a trial on 2 cores, the cheap estimate ~3 s. To make
21 searches affordable every variant is scored at the cheap fidelity (compressed weights, no recovery,
``--cheap-val-images`` validation images), so this compares the *search*, not the recovery; the
default run with recovery is ``benchmarks/search_default.py``.

    python benchmarks/search_quality.py                       # 7 variants x 3 seeds x 40 trials (~25 min on 2 cores)
    python benchmarks/search_quality.py --report-only         # the table from the studies already run

Each search is a separate process with one torch thread (``--workers`` run side by side); finished
studies are reused, so a killed run continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import optuna  # noqa: E402
from tqdm import tqdm  # noqa: E402

from evaluators.latency.measure.ort_timing import machine_summary  # noqa: E402

COMPRESSION = "prune,quant,lowrank"
VARIANTS: dict[str, list[str]] = {
    "joint TPE": ["--sampler", "tpe", "--techniques", COMPRESSION, "--strategy", "joint"],
    "joint NSGA-II": ["--sampler", "nsga2", "--techniques", COMPRESSION, "--strategy", "joint"],
    "joint random": ["--sampler", "random", "--techniques", COMPRESSION, "--strategy", "joint"],
    "prune only": ["--sampler", "tpe", "--techniques", "prune", "--strategy", "joint"],
    "quant only": ["--sampler", "tpe", "--techniques", "quant", "--strategy", "joint"],
    "low-rank only": ["--sampler", "tpe", "--techniques", "lowrank", "--strategy", "joint"],
    "uniform": ["--sampler", "tpe", "--techniques", COMPRESSION, "--strategy", "uniform"],
    "allocate TPE": ["--sampler", "tpe", "--techniques", COMPRESSION, "--strategy", "allocate"],
}


def slug(variant: str) -> str:
    return variant.lower().replace(" ", "-").replace("_", "-")


def study_name(variant: str, seed: int, trials: int) -> str:
    return f"quality-{slug(variant)}-t{trials}-s{seed}"


def hypervolume(points: list[tuple[float, float]], ref_latency_ms: float, ref_accuracy: float) -> float:
    """Area dominated by ``(accuracy, latency_ms)`` points (accuracy up, latency down) inside the box
    from ``(ref_accuracy, 0)`` to ``(1, ref_latency_ms)``, in accuracy x ms.

    Two objectives need no library: sweep the points by latency and add the staircase rectangles.
    Points at or beyond the reference (slower, or less accurate) add nothing."""
    pts = sorted((lat, acc) for acc, lat in points if lat < ref_latency_ms and acc > ref_accuracy)
    area, best_acc = 0.0, ref_accuracy
    for i, (lat, acc) in enumerate(pts):
        best_acc = max(best_acc, acc)
        nxt = pts[i + 1][0] if i + 1 < len(pts) else ref_latency_ms
        area += (best_acc - ref_accuracy) * (nxt - lat)
    return area


def run_one(variant: str, seed: int, args: argparse.Namespace) -> tuple[str, int, float, int]:
    """One search as a subprocess (one torch thread); returns ``(variant, seed, wall s, exit status)``."""
    name = study_name(variant, seed, args.trials)
    folder = Path(args.results_dir) / name
    if (folder / "trials.csv").exists() and not args.rerun:
        return variant, seed, 0.0, -1  # finished before: reused
    cmd = [sys.executable, str(REPO / "run_search.py"), "--budget", args.budget, "--trials", str(args.trials),
           "--timeout", "0", "--seed", str(seed), "--study-name", name, "--results-dir", args.results_dir,
           "--cheap-val-images", str(args.cheap_val_images), "--no-progress", *VARIANTS[variant]]
    if folder.exists() and args.rerun:  # a fresh study: the old one goes
        shutil.rmtree(folder)
    elif folder.exists():  # killed half-way: finish the same study
        cmd.append("--resume")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    t0 = time.perf_counter()
    log = Path(args.results_dir) / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
    return variant, seed, time.perf_counter() - t0, rc


def summarize(variant: str, seed: int, args: argparse.Namespace) -> dict | None:
    name = study_name(variant, seed, args.trials)
    folder = Path(args.results_dir) / name
    db = folder / "study.db"
    if not db.exists():
        return None
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    feasible = [t for t in done if t.user_attrs.get("feasible")]
    scored = [t for t in done if not str(t.user_attrs.get("stage", "")).startswith("skipped")]
    best = max(feasible, key=lambda t: (t.values[0], -t.values[1])) if feasible else None
    winner_file = folder / "winner.json"
    test = None
    if winner_file.exists():
        test = json.loads(winner_file.read_text())["metrics"].get("test_accuracy")
    points = [(t.values[0], t.values[1]) for t in scored]
    return {"variant": variant, "seed": seed, "trials": len(done), "scored": len(scored), "feasible": len(feasible),
            "best_val": best.values[0] if best else None, "best_ms": best.values[1] if best else None,
            "test": test, "hv_budget": hypervolume(points, args.budget_ms, args.ref_accuracy),
            "hv_wide": hypervolume(points, args.wide_ref_ms, args.ref_accuracy),
            "failed": len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)))}


def fmt(values: list[float | None], scale: float = 100.0, digits: int = 2) -> str:
    """``mean [min, max]`` of the values that exist, with how many are missing."""
    have = [v * scale for v in values if v is not None]
    if not have:
        return "none feasible"
    s = f"{statistics.mean(have):.{digits}f}" + (f" [{min(have):.{digits}f}, {max(have):.{digits}f}]" if len(have) > 1 else "")
    return s + (f" ({len(values) - len(have)} seeds none)" if len(have) < len(values) else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--budget", default="20ms")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="VARIANT")
    ap.add_argument("--workers", type=int, default=2, help="searches run side by side (one torch thread each)")
    ap.add_argument("--cheap-val-images", type=int, default=1000)
    ap.add_argument("--results-dir", default="results/bench-quality")
    ap.add_argument("--ref-accuracy", type=float, default=0.1, help="hypervolume reference accuracy (chance)")
    ap.add_argument("--wide-ref-ms", type=float, default=None,
                    help="latency reference of the wide hypervolume (default: 1.5x the budget)")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--rerun", action="store_true", help="run again even where a finished study exists")
    args = ap.parse_args()
    from search.budget import parse_budget_ms

    args.budget_ms = parse_budget_ms(args.budget)
    args.wide_ref_ms = args.wide_ref_ms or 1.5 * args.budget_ms
    jobs = [(v, s) for s in args.seeds for v in args.variants]
    t0 = time.perf_counter()
    if not args.report_only:
        with ThreadPoolExecutor(args.workers) as pool, tqdm(total=len(jobs), desc="searches", unit="search") as bar:
            futures = [pool.submit(run_one, v, s, args) for v, s in jobs]
            for f in as_completed(futures):
                variant, seed, wall, rc = f.result()
                bar.set_postfix_str(f"{variant} s{seed}: " + ("reused" if rc == -1 else f"{wall:.0f}s exit {rc}"))
                bar.update()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = [r for v, s in jobs if (r := summarize(v, s, args)) is not None]
    print(f"\nmachine: {machine_summary()}; {args.workers} searches side by side, 1 torch thread "
          f"each; {args.trials} trials per search; seeds {args.seeds}; wall {(time.perf_counter() - t0) / 60:.1f} min")
    print(f"budget {args.budget}; scores: validation accuracy on {args.cheap_val_images} images without recovery; "
          f"hypervolume in accuracy x ms over (accuracy > {args.ref_accuracy}, latency < budget) and "
          f"(< {args.wide_ref_ms:g} ms)\n")
    print("| search | best feasible val top-1 (%) | its test top-1 (%) | hypervolume <= budget | "
          f"hypervolume <= {args.wide_ref_ms:g} ms | feasible / scored / trials |")
    print("|---|---|---|---|---|---|")
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["variant"], []).append(r)
    for v in args.variants:
        rs = by.get(v, [])
        if not rs:  # refused before its first trial (e.g. nothing this variant can build fits the budget)
            log = Path(args.results_dir) / f"{study_name(v, args.seeds[0], args.trials)}.log"
            why = log.read_text().strip().splitlines()[-1] if log.exists() and log.read_text().strip() else "not run"
            print(f"| {v} | none feasible: {why.removeprefix('run_search.py: error: ')} | | | | |")
            continue
        counts = f"{sum(r['feasible'] for r in rs)} / {sum(r['scored'] for r in rs)} / {sum(r['trials'] for r in rs)}"
        print(f"| {v} ({len(rs)} seeds) | {fmt([r['best_val'] for r in rs])} | {fmt([r['test'] for r in rs])} | "
              f"{fmt([r['hv_budget'] for r in rs], 1, 2)} | {fmt([r['hv_wide'] for r in rs], 1, 2)} | {counts} |")

    def mean_of(v: str, key: str) -> float | None:
        have = [r[key] for r in by.get(v, []) if r[key] is not None]
        return statistics.mean(have) if have else None

    joint = mean_of("joint TPE", "best_val")
    if joint is not None:
        print()
        for single in ("prune only", "quant only", "low-rank only"):
            if single in by:
                other = mean_of(single, "best_val")
                ok = other is None or joint >= other
                print(f"target: joint TPE best feasible ({100 * joint:.2f}) >= {single} "
                      f"({'none feasible' if other is None else f'{100 * other:.2f}'}): {ok}")
        for key, label in (("hv_budget", "<= budget"), ("hv_wide", f"<= {args.wide_ref_ms:g} ms")):
            j, r = mean_of("joint TPE", key), mean_of("joint random", key)
            if j is not None and r:
                print(f"target: joint TPE hypervolume {label} / random's = {j / r:.2f} (>= 1.1: {j / r >= 1.1})")
    if "allocate TPE" in by:
        print()
        for other in ("uniform", "joint TPE"):
            paired_difference(by, "allocate TPE", other)
        for key, label in (("hv_budget", "<= budget"), ("hv_wide", f"<= {args.wide_ref_ms:g} ms")):
            a, u = mean_of("allocate TPE", key), mean_of("uniform", key)
            if a is not None and u:
                print(f"allocate TPE hypervolume {label} / uniform's = {a / u:.2f}")
    return 0


def paired_difference(by: dict[str, list[dict]], a: str, b: str, resamples: int = 10_000) -> None:
    """Test top-1 of ``a`` minus ``b`` per seed (the same seed: the same data order and start), its mean
    and a paired bootstrap 95% interval over seeds (numpy, seeded)."""
    tests = {v: {r["seed"]: r["test"] for r in by.get(v, []) if r["test"] is not None} for v in (a, b)}
    seeds = sorted(set(tests[a]) & set(tests[b]))
    if not seeds:
        return
    d = np.array([tests[a][s] - tests[b][s] for s in seeds]) * 100
    rng = np.random.default_rng(0)
    boots = [rng.choice(d, len(d)).mean() for _ in range(resamples)]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    print(f"{a} - {b}, test top-1: {d.mean():+.2f} points (per seed {', '.join(f'{x:+.2f}' for x in d)}; "
          f"paired bootstrap 95% [{lo:+.2f}, {hi:+.2f}], n = {len(d)} seeds)")


if __name__ == "__main__":
    sys.exit(main())
