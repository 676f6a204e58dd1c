"""Issue 6 benchmark: search throughput (trials per hour) with 1 and 2 workers on this machine, and the
per-trial overhead of the Ray Tune backend against the Optuna backend.

Every configuration runs the same search (same model, data, budget, seeded random sampler, so the
same configs in the same order) as a real ``run_search.py`` process and reads its study afterwards:

* trial phase: from the first trial's start to the last trial's end (what trials per hour is made of);
* overhead per trial: a trial's duration in the study (ask -> tell) minus the objective's own compute
  (compress, evaluate, recover; ``user_attrs["timings"]`` without ``predict_s``, which holds sampling);
* process: the whole command, start-up (imports, data, Ray) and winner export included.

    python benchmarks/search_throughput.py [--trials 12] [--model tiny|default|PATH] [--recover-steps 30]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import optuna  # noqa: E402

from evaluators.latency.measure.ort_timing import machine_summary  # noqa: E402

# (backend, workers, how the workers run)
CONFIGS = (("optuna", 1, "1 process"), ("optuna", 2, "threads (--jobs 2)"), ("optuna", 2, "processes (--join)"),
           ("ray", 1, "1 Ray worker"), ("ray", 2, "Ray workers (--jobs 2)"))


@dataclass
class Row:
    backend: str
    workers: int
    mode: str
    trials: int
    phase_s: float
    overhead_s: float
    process_s: float

    @property
    def per_hour(self) -> float:
        return 3600 * self.trials / self.phase_s


def tiny_checkpoint(folder: Path) -> str:
    import torch

    from mae.checkpoints import save_model
    from mae.model import create_model

    torch.manual_seed(0)
    path = folder / "tiny.safetensors"
    save_model(create_model("mae_vit_test_p7_28"), path)
    return str(path)


def measure(study_name: str, storage: str, process_s: float) -> tuple[int, float, float, float]:
    """``(finished trials, trial phase s, mean overhead per trial s, process s)`` of a finished study."""
    trials = [t for t in optuna.load_study(study_name=study_name, storage=storage).trials if t.state.is_finished()]
    phase = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    overhead = [t.duration.total_seconds()
                - sum(v for k, v in (t.user_attrs.get("timings") or {}).items() if k != "predict_s")
                for t in trials]
    return len(trials), phase, statistics.mean(overhead), process_s


def run_config(backend: str, workers: int, mode: str, base: list[str], out: Path, trials: int) -> Row:
    name = f"{backend}-{workers}-{mode.split()[0]}"
    storage = f"sqlite:///{out / name}.db"
    args = [*base, "--backend", backend, "--study-name", name, "--storage", storage]
    cmd = [sys.executable, str(REPO / "run_search.py")]
    env = os.environ | {"PYTHONPATH": str(REPO)}
    if mode.startswith("processes"):
        # processes on one machine do not know of each other: each gets its share of the cores, as the
        # README tells users to do (--jobs and Ray split the threads themselves)
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    t0 = time.perf_counter()
    if mode.startswith("processes"):
        # --join: the first creates the study, both share it; each runs its half of the trials
        procs = [subprocess.Popen([*cmd, *args, "--join", "--trials", str(n)], env=env, cwd=REPO,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for n in (trials // 2, trials - trials // 2)]
        errors = [p.communicate()[1] for p in procs]
        codes = [p.returncode for p in procs]
    else:
        p = subprocess.run([*cmd, *args, "--jobs", str(workers), "--trials", str(trials)], env=env, cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        errors, codes = [p.stderr], [p.returncode]
    process_s = time.perf_counter() - t0
    if any(c not in (0, 1) for c in codes):
        raise SystemExit(f"{name} failed:\n" + "\n".join(e[-3000:] for e in errors))
    n, phase, overhead, process_s = measure(name, storage, process_s)
    return Row(backend, workers, mode, n, phase, overhead, process_s)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--model", default="tiny", help="tiny (the test preset, random weights), default, or a path")
    ap.add_argument("--budget", default="1ms", help="1ms: above the tiny model's latency, so every trial trains")
    ap.add_argument("--recover-steps", type=int, default=30)
    ap.add_argument("--limit-train", type=int, default=4096)
    ap.add_argument("--limit-val", type=int, default=1000)
    ap.add_argument("--only", default=None, help="comma-separated subset of: optuna, ray")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="search-throughput-") as tmp:
        out = Path(tmp)
        model = tiny_checkpoint(out) if args.model == "tiny" else args.model
        base = ["--budget", args.budget, "--model", model, "--sampler", "random", "--seed", "0", "--timeout", "0",
                "--results-dir", str(out / "results"), "--recover-steps", str(args.recover_steps),
                "--limit-train", str(args.limit_train), "--limit-val", str(args.limit_val), "--no-progress",
                "--final-recover-steps", "0"]  # the engine is measured, not the final recovery of the winner
        wanted = set((args.only or "optuna,ray").split(","))
        rows = []
        for backend, workers, mode in CONFIGS:
            if backend in wanted:
                rows.append(run_config(backend, workers, mode, base, out, args.trials))
                print(f"  done: {backend} {mode}", file=sys.stderr)
    print(f"\nmachine: {machine_summary()}; "
          f"model {args.model}, {args.trials} trials, budget {args.budget}, recover-steps {args.recover_steps}, "
          f"{args.limit_train} train / {args.limit_val} val images")
    print(f"{'backend':8} {'workers':>7}  {'mode':24} {'trials':>6} {'trial phase s':>13} {'trials/hour':>11} "
          f"{'overhead/trial s':>16} {'process s':>9}")
    for r in rows:
        print(f"{r.backend:8} {r.workers:>7}  {r.mode:24} {r.trials:>6} {r.phase_s:>13.1f} {r.per_hour:>11.0f} "
              f"{r.overhead_s:>16.3f} {r.process_s:>9.1f}")
    one = {r.backend: r for r in rows if r.workers == 1}
    if {"optuna", "ray"} <= set(one):
        o, r = one["optuna"], one["ray"]
        print(f"\nRay vs Optuna, 1 worker: {(r.phase_s / r.trials) - (o.phase_s / o.trials):+.3f} s per trial in the trial "
              f"phase, {r.overhead_s - o.overhead_s:+.3f} s per trial outside the objective, "
              f"{(r.process_s - r.phase_s) - (o.process_s - o.phase_s):+.1f} s once (Ray start-up and shut-down)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
