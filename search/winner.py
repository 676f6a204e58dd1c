"""Choosing and exporting the winner: the best feasible trial, re-built once to measure test accuracy,
written to ``results/<study>/winner.json`` for ``maec apply``."""
from __future__ import annotations

import json
import platform
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import optuna

from core.files import write_text_atomic
from search.settings import SearchSettings
from search.setup import SearchSetup, model_spec_for
from spaces.config import CompressionConfig

WINNER_SCHEMA = 1


def feasible_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.user_attrs.get("feasible")]


def best_feasible(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """Highest validation score within budget; ties go to the lower latency."""
    trials = feasible_trials(study)
    return max(trials, key=lambda t: (t.values[0], -t.values[1])) if trials else None


def closest_trials(study: optuna.Study, n: int = 5) -> list[optuna.trial.FrozenTrial]:
    """The ``n`` complete trials with the lowest predicted latency (for a budget that was not met)."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return sorted(done, key=lambda t: t.values[1])[:n]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("mae-compress-search", "torch", "timm", "optuna", "onnxruntime"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def final_config(config: CompressionConfig, settings: SearchSettings) -> CompressionConfig:
    """The winner's config as exported: its trial's, with the final recovery's steps when distillation is
    searched and ``settings.final_recover_steps`` is longer (a trial scored without recovery keeps its
    sampled temperature and weights, and gets them)."""
    if "distill" not in settings.techniques or settings.final_recover_steps <= config.distill.steps:
        return config
    return replace(config, distill=replace(config.distill, steps=settings.final_recover_steps))


def export_winner(study: optuna.Study, trial: optuna.trial.FrozenTrial, setup: SearchSetup,
                  settings: SearchSettings, out_dir: Path) -> dict:
    """Re-build the winner (same seed; with ``final_recover_steps`` of distillation where that is longer
    than its trial's), measure its test score once, write winner.json.

    ``val_<metric>`` is what the search scored; ``val_<metric>_rebuilt`` is the exported model's (after
    the final recovery), which ``maec apply winner.json --split val`` reproduces."""
    config = final_config(CompressionConfig.from_dict(trial.user_attrs["config"]), settings)
    t0 = time.perf_counter()
    if settings.progress and config.distill.steps:
        print(f"re-building the winner (trial {trial.number}) with {config.distill.steps} recovery steps")
    evaluator = setup.evaluator
    evaluator.progress, was = settings.progress, evaluator.progress  # a bar: this takes minutes
    try:
        student, report = evaluator.compress(config, recover_steps=config.distill.steps)
    finally:
        evaluator.progress = was
    metric = setup.evaluator.metric_name
    winner = {
        "schema_version": WINNER_SCHEMA,
        "config": config.to_dict(),
        "model": model_spec_for(settings),
        "task": settings.task,
        "metrics": {
            f"val_{metric}": trial.values[0],
            f"val_{metric}_rebuilt": setup.evaluator.score(student, "val"),
            "trial_recover_steps": trial.user_attrs["config"].get("distill", {}).get("steps", 0),
            "final_recover_steps": config.distill.steps,
            f"test_{metric}": setup.evaluator.score(student, "test"),
            f"teacher_test_{metric}": setup.evaluator.score(setup.teacher, "test"),
            "latency_ms": trial.values[1],
            "teacher_latency_ms": setup.predict_ms(None),
            "budget_ms": settings.budget_ms,
            "params": report.params_after, "macs": trial.user_attrs.get("macs"),
            "size_mb": trial.user_attrs.get("size_mb"), "stage": trial.user_attrs.get("stage"),
        },
        "provenance": {
            "study": study.study_name, "storage": settings.resolved_storage, "trial": trial.number,
            "model_sha256": setup.model_sha256, "device_profile": setup.predictor.device.name,
            "device": setup.predictor.device.summary(), "seed": settings.seed, "versions": versions(),
            "rebuild_s": round(time.perf_counter() - t0, 1),
        },
    }
    write_text_atomic(out_dir / "winner.json", json.dumps(winner, indent=2) + "\n")
    return winner
