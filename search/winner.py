"""Choosing and exporting the winner, written to ``results/<study>/winner.json`` for ``maec apply``.

Choosing: at the ``recovered`` fidelity, the best feasible trial. At the ``cheap`` fidelity (with
distillation among the techniques), the ``recover_top`` best feasible trials by cheap score are
recovered (``recover_steps``, default distillation settings, the whole validation split) and the best
recovered score wins: a cheap score ranks configs well but not exactly (``benchmarks/search_fidelity_rank.py``).
Those scores are kept in the study's user attr ``recovered_scores`` ({trial number: score}; a finished
trial's own attrs cannot change), so a resumed or joined study does not recover a trial twice, and they
never reach the sampler. The winner is then re-built once with the final recovery and scored on test."""
from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import optuna
from tqdm.auto import tqdm

from core.files import write_text_atomic
from search.results import RECOVERED_KEY, recovered_scores
from search.settings import SearchSettings
from search.setup import SearchSetup, model_spec_for
from spaces.config import CompressionConfig, DistillConfig
from spaces.space import SEARCH_RECOVERY_LR

WINNER_SCHEMA = 1


def feasible_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.user_attrs.get("feasible")]


def best_feasible(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """Highest validation score within budget; ties go to the lower latency."""
    trials = feasible_trials(study)
    return max(trials, key=lambda t: (t.values[0], -t.values[1])) if trials else None


def top_feasible(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """The ``k`` best feasible trials of ``study``; see :func:`best_distinct`."""
    return best_distinct(feasible_trials(study), k)


def best_distinct(trials: list[optuna.trial.FrozenTrial], k: int) -> list[optuna.trial.FrozenTrial]:
    """The ``k`` best of complete ``trials`` by score (ties: lower latency, then earlier), one per distinct
    config (the sampler may propose a config twice; recovering it twice would only repeat the same run)."""
    out, seen = [], set()
    for t in sorted(trials, key=lambda t: (-t.values[0], t.values[1], t.number)):
        key = json.dumps(t.user_attrs.get("config"), sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(t)
        if len(out) == k:
            break
    return out


def recovers_top(settings: SearchSettings) -> bool:
    """Whether the winner is chosen by recovering the top trials of a cheap-fidelity study."""
    return (settings.fidelity == "cheap" and "distill" in settings.techniques and settings.recover_steps > 0
            and settings.recover_top > 0)


def with_recovery(config: CompressionConfig, steps: int) -> CompressionConfig:
    """``config`` recovered for ``steps``: its own distillation settings where the search sampled them
    (recovered fidelity), else the defaults at the search's recovery learning rate."""
    if config.distill.steps > 0:
        return replace(config, distill=replace(config.distill, steps=steps))
    return replace(config, distill=DistillConfig(steps=steps, lr=SEARCH_RECOVERY_LR))


def choose_winner(study: optuna.Study, setup: SearchSetup, settings: SearchSettings) -> optuna.trial.FrozenTrial | None:
    """The trial to export (None when no trial fits the budget); see the module docstring."""
    if not recovers_top(settings):
        return best_feasible(study)
    top = top_feasible(study, settings.recover_top)
    if not top:
        return None
    scores = recovered_scores(study)
    todo = [t for t in top if t.number not in scores]
    for t in tqdm(todo, desc=f"recovering the top {len(top)} trials", disable=not (settings.progress and todo)):
        config = with_recovery(CompressionConfig.from_dict(t.user_attrs["config"]), settings.recover_steps)
        student, _ = setup.evaluator.compress(config, recover_steps=settings.recover_steps)
        scores[t.number] = setup.evaluator.score(student, "val")
        stored = dict(study.user_attrs.get(RECOVERED_KEY) or {})
        study.set_user_attr(RECOVERED_KEY, stored | {str(t.number): scores[t.number]})  # kept at once: resumable
    return max(top, key=lambda t: (scores[t.number], -t.values[1], -t.number))


def predicted_latency_ms(trial: optuna.trial.FrozenTrial) -> float:
    """A finished trial's predicted latency: its second value, or (a trial pruned far over budget, which has
    no values) the one it recorded."""
    return trial.values[1] if trial.values else float(trial.user_attrs.get("latency_ms", math.inf))


def closest_trials(study: optuna.Study, n: int = 5) -> list[optuna.trial.FrozenTrial]:
    """The ``n`` complete or pruned trials with the lowest predicted latency (for a budget that was not met)."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    return sorted(done, key=predicted_latency_ms)[:n]


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
    a technique and ``settings.final_recover_steps`` is longer (:func:`with_recovery`: a trial scored
    without recovery gets the default distillation settings)."""
    if "distill" not in settings.techniques or settings.final_recover_steps <= config.distill.steps:
        return config
    return with_recovery(config, settings.final_recover_steps)


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
        # the data the search scored on: `maec apply winner.json` evaluates on the same by default
        "data": {"data": settings.data, "data_dir": settings.data_dir},
        "task": settings.task,
        "metrics": {
            "fidelity": settings.fidelity,
            f"val_{metric}": trial.values[0],
            f"val_{metric}_recovered": recovered_scores(study).get(trial.number),
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
            "recover_batch_size": settings.recover_batch_size,
            "rebuild_s": round(time.perf_counter() - t0, 1),
        },
    }
    write_text_atomic(out_dir / "winner.json", json.dumps(winner, indent=2) + "\n")
    return winner
