"""A trial that raises or scores NaN is recorded as FAIL with its reason; the search goes on and the
summary counts the failures."""
from __future__ import annotations

import itertools
import math

import optuna
import pandas as pd
from searchkit import quick_settings

from evaluators.accuracy import TaskEvaluator
from search.engine import _RecordFailures, search


def test_raising_and_nan_trials_fail_with_their_reason_and_the_search_goes_on(tmp_path, tiny_ckpt, monkeypatch,
                                                                               capsys):
    cheap_calls = itertools.count()
    compress, score = TaskEvaluator.compress, TaskEvaluator.score

    def flaky_compress(self, config, recover_steps, time_limit_s=None):
        call = next(cheap_calls) if recover_steps == 0 else None  # the first compress of each trained trial
        if call == 0:
            raise RuntimeError("simulated: out of memory")
        student, report = compress(self, config, recover_steps, time_limit_s)
        student.simulate_nan = call == 1
        return student, report

    def nan_score(self, model, split="val", images=None):
        return math.nan if getattr(model, "simulate_nan", False) else score(self, model, split, images)

    monkeypatch.setattr(TaskEvaluator, "compress", flaky_compress)
    monkeypatch.setattr(TaskEvaluator, "score", nan_score)
    # a budget above the teacher's latency: every trial is trained (none skipped before compress)
    outcome = search(quick_settings(tmp_path, tiny_ckpt, trials=4, budget_ms=1.0))

    states = [t.state for t in outcome.study.trials]
    assert states == [optuna.trial.TrialState.FAIL] * 2 + [optuna.trial.TrialState.COMPLETE] * 2
    reasons = [t.user_attrs.get("fail_reason") for t in outcome.study.trials]
    assert reasons[0] == "RuntimeError: simulated: out of memory"
    assert reasons[1].startswith("FloatingPointError: the accuracy of this trial is nan")
    assert outcome.failed == 2 and outcome.winner is not None
    assert "4 trials (2 complete, 2 failed)" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "quick" / "trials.csv")
    assert table["fail_reason"].iloc[:2].tolist() == reasons[:2]


def test_nan_values_returned_by_an_objective_fail_with_a_reason():
    """Optuna alone fails a NaN trial without saying why; the wrapper records it."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.optimize(_RecordFailures(lambda trial: (0.5, math.nan)), n_trials=1, catch=(Exception,))
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["fail_reason"] == "FloatingPointError: the objective returned (0.5, nan)"
