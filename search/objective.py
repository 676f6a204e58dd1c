"""The objective of one trial: ``(score, latency_ms)`` with the latency budget as an Optuna constraint.

Stages, cheapest first (multi-fidelity, written out because Optuna's pruners do not support
multi-objective studies):

1. **predict**: sample a config, predict its on-device latency from the architecture alone. A trial
   far over budget (``far_over_budget`` x budget) is recorded without building a model (score 0).
2. **cheap**: compress without recovery, score on a validation subset.
3. **recover**: only for *promising* trials (within budget, and a cheap score no worse than the best
   feasible cheap score so far minus ``promising_margin``): distillation recovery, then the whole
   validation split. Other trials keep their cheap score.

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


def best_feasible_cheap_score(trial: optuna.trial.BaseTrial) -> float:
    """The best cheap score of finished feasible trials in ``trial``'s study (-inf without a study).

    A trial run by a Ray worker has no study at hand: the driver looked the score up when it sampled
    the trial and hands it over as ``trial.best_cheap_score``.
    """
    known = getattr(trial, "best_cheap_score", None)
    if known is not None:
        return float(known)
    study = getattr(trial, "study", None)
    if study is None:
        return -math.inf
    scores = [t.user_attrs.get("cheap_score", -math.inf)
              for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
              if t.user_attrs.get("feasible")]
    return max(scores, default=-math.inf)


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
                           ("budget_ms", s.budget_ms)):
            trial.set_user_attr(key, value)
        if latency_ms > s.far_over_budget * s.budget_ms:
            trial.set_user_attr("stage", "skipped: far over budget, not trained")
            trial.set_user_attr("timings", timings)
            return 0.0, latency_ms

        t1 = time.perf_counter()
        student, report = self.evaluator.compress(config, recover_steps=0)
        timings["compress_s"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        cheap = self.evaluator.score(student, "val", s.cheap_val_images)
        timings["cheap_eval_s"] = time.perf_counter() - t2
        self._record_model(trial, student, config, report.params_after)
        trial.set_user_attr("cheap_score", cheap)
        score, stage, evaluated = cheap, "cheap", replace(config, distill=replace(config.distill, steps=0))
        wants_recovery = "distill" in s.techniques and s.recover_steps > 0
        if wants_recovery and feasible and cheap >= best_feasible_cheap_score(trial) - s.promising_margin:
            t3 = time.perf_counter()
            evaluated = replace(config, distill=replace(config.distill, steps=s.recover_steps))
            recovered, rep = self.evaluator.compress(evaluated, recover_steps=s.recover_steps)
            timings["recover_s"] = time.perf_counter() - t3
            t4 = time.perf_counter()
            score, stage = self.evaluator.score(recovered, "val"), "recovered"
            timings["eval_s"] = time.perf_counter() - t4
            trial.set_user_attr("recovery", rep.recovery)
        if not math.isfinite(score):
            raise FloatingPointError(f"the {self.evaluator.metric_name} of this trial is {score}")
        trial.set_user_attr("config", evaluated.to_dict())  # what was scored, steps included
        trial.set_user_attr("stage", stage)
        trial.set_user_attr("timings", {k: round(v, 3) for k, v in timings.items()})
        return score, latency_ms

    @staticmethod
    def _record_model(trial, student, config: CompressionConfig, params: int) -> None:
        trial.set_user_attr("params", params)
        trial.set_user_attr("macs", count_macs(student))
        trial.set_user_attr("size_mb", round(weight_bytes(student, config) / 2**20, 4))
