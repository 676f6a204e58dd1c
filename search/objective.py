"""The objective of one trial: ``(score, latency_ms)`` with the latency budget as an Optuna constraint.

One fidelity per objective (``--fidelity``): the value the sampler learns from is always the same kind
of score, so TPE/NSGA-II never model two quantities as one.

1. **predict**: sample a config, predict its on-device latency from the architecture alone. A trial
   far over budget (``far_over_budget`` x budget) is *pruned*: recorded as infeasible (its constraint
   says by how much) without a score -- no invented accuracy reaches the sampler (constraint-aware TPE
   ranks infeasible trials by their violation alone).
2. **score** at the study's fidelity:

   * ``cheap`` (default): compress without recovery, score on ``cheap_val_images`` validation images.
     Recovery happens after the search, for the top trials only (:mod:`search.winner`), and its scores
     are kept apart (study user attr ``recovered_scores``, column ``recovered_score``).
   * ``recovered``: every scored trial gets ``recover_steps`` of distillation and the whole validation
     split (slow; the sampler then also learns the distillation settings).

The score is always a validation score; the test split is touched once, for the winner, at the end.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Callable

import optuna

from evaluators.accuracy import TaskEvaluator
from search.settings import SearchSettings
from spaces.config import CompressionConfig
from spaces.space import SearchSpace
from toolkit.stats import count_macs, weight_bytes

CONSTRAINT_KEY = "latency_over_budget_ms"
OBJECTIVE_NAMES = {"accuracy": ("accuracy", "latency_ms"), "psnr_db": ("psnr_db", "latency_ms")}


def set_constraint(trial: optuna.trial.BaseTrial, key: str, value: float) -> None:
    """``trial.set_constraint`` (what Optuna 5's samplers read), mirrored in the list form of Optuna 4
    (system attr ``constraints``) because optuna-dashboard 0.21 reads only that one. Optuna 5 then sees
    two equal constraints: the same feasibility, and violations only scaled by 2."""
    trial.set_constraint(key, value)
    storage, trial_id = getattr(trial, "storage", None), getattr(trial, "_trial_id", None)
    if storage is not None and trial_id is not None:
        storage.set_trial_system_attr(trial_id, "constraints", [float(value)])


def fail_reason(e: BaseException) -> str:
    """What a failed trial records as ``fail_reason``: the exception's type and message (500 characters)."""
    return f"{type(e).__name__}: {e}"[:500]


def check_finite(values) -> tuple[float, ...]:
    """``values`` as floats, or FloatingPointError: Optuna fails a NaN trial too, but without saying why."""
    try:
        floats = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise FloatingPointError(f"the objective returned {values!r}, not numbers") from None
    if not all(math.isfinite(v) for v in floats):
        raise FloatingPointError(f"the objective returned {values}")
    return floats


class Objective:
    """Callable for ``study.optimize``; also works with ``FixedTrial`` (tests, Ray Tune workers)."""

    def __init__(self, *, settings: SearchSettings, space: SearchSpace, evaluator: TaskEvaluator,
                 predict_ms: Callable[[CompressionConfig], float],
                 deployable: Callable[[CompressionConfig], CompressionConfig] | None = None):
        """``deployable`` maps a sampled config to the one with the kernels the predictor priced
        (e.g. int4 weights the device would run slower than int8 become int8): scoring that config
        keeps the accuracy, the latency and the exported model about the same network."""
        self.settings, self.space, self.evaluator, self.predict_ms = settings, space, evaluator, predict_ms
        self.deployable = deployable

    def __call__(self, trial: optuna.trial.BaseTrial) -> tuple[float, float]:
        s = self.settings
        t0 = time.perf_counter()
        config = self.space.sample(trial)
        if self.deployable is not None:
            config = self.deployable(config)
        latency_ms = float(self.predict_ms(config))
        timings = {"predict_s": time.perf_counter() - t0}
        feasible = latency_ms <= s.budget_ms
        set_constraint(trial, CONSTRAINT_KEY, latency_ms - s.budget_ms)
        for key, value in (("config", config.to_dict()), ("summary", config.summary()), ("feasible", feasible),
                           ("budget_ms", s.budget_ms), ("latency_ms", latency_ms)):
            trial.set_user_attr(key, value)
        if latency_ms > s.far_over_budget * s.budget_ms:
            trial.set_user_attr("stage", "pruned: far over budget, not scored")
            trial.set_user_attr("timings", timings)
            raise optuna.TrialPruned(f"{latency_ms:.2f} ms predicted, over {s.far_over_budget:g}x the budget")

        recover_steps = s.recover_steps if s.fidelity == "recovered" else 0
        scored = replace(config, distill=replace(config.distill, steps=recover_steps))
        t1 = time.perf_counter()
        student, report = self.evaluator.compress(scored, recover_steps=recover_steps)
        timings["recover_s" if recover_steps else "compress_s"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        if recover_steps:
            score = self.evaluator.score(student, "val")
            trial.set_user_attr("recovered_score", score)
            trial.set_user_attr("recovery", report.recovery)
        else:
            score = self.evaluator.score(student, "val", s.cheap_val_images)
            trial.set_user_attr("cheap_score", score)
        timings["eval_s"] = time.perf_counter() - t2
        self._record_model(trial, student, config, report.params_after)
        if not math.isfinite(score):
            raise FloatingPointError(f"the {self.evaluator.metric_name} of this trial is {score}")
        trial.set_user_attr("config", scored.to_dict())  # what was scored, steps included
        trial.set_user_attr("stage", s.fidelity)
        trial.set_user_attr("timings", {k: round(v, 3) for k, v in timings.items()})
        return score, latency_ms

    @staticmethod
    def _record_model(trial, student, config: CompressionConfig, params: int) -> None:
        trial.set_user_attr("params", params)
        trial.set_user_attr("macs", count_macs(student))
        trial.set_user_attr("size_mb", round(weight_bytes(student, config) / 2**20, 4))
