"""Helpers of the engine's tests: quick searches on the tiny test model, a few hundred Fashion-MNIST
images, two recovery steps and the default ARM profile (the tiny model predicts about 0.1-1 ms there without merging, so
a 0.3 ms budget splits the space)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna

from search.settings import SearchSettings

REPO = Path(__file__).resolve().parents[2]
BUDGET_MS = 0.3


def quick_settings(results: Path, model: str, **overrides) -> SearchSettings:
    """SearchSettings of a quick in-process search (seeded random sampler, fp32, no progress bar)."""
    base = {"budget_ms": BUDGET_MS, "model": model, "trials": 3, "timeout_s": None, "sampler": "random", "seed": 0,
            "results_dir": str(results), "study_name": "quick", "space": "joint", "cheap_val_images": 64, "recover_steps": 2, "final_recover_steps": 3,
            "limit_train": 256, "limit_val": 128, "bf16": False, "progress": False,
            "check_teacher": False}  # the test model has random weights: chance level
    return SearchSettings(**(base | overrides))


def quick_args(results: Path, model: str, *extra: str) -> list[str]:
    """The same quick search as command-line arguments of run_search.py."""
    return ["--budget", f"{BUDGET_MS}ms", "--model", model, "--sampler", "random", "--timeout", "0",
            "--results-dir", str(results), "--study-name", "quick", "--strategy", "joint", "--cheap-val-images", "64",
            "--recover-steps", "2", "--final-recover-steps", "3", "--limit-train", "256", "--limit-val", "128", "--no-bf16", "--no-progress", "--no-teacher-check",
            *extra]


def cli_env() -> dict[str, str]:
    """The environment of a run_search.py subprocess: one torch thread (the tests share 2 cores with each
    other), the repository importable whether or not it is installed."""
    return os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def start_cli(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "run_search.py"), *args], cwd=REPO, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def run_cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "run_search.py"), *args], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)


def load(storage: str, name: str = "quick") -> optuna.Study:
    from search.storage import make_storage

    return optuna.load_study(study_name=name, storage=make_storage(storage))
