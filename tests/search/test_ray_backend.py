"""``--backend ray``: the same objective through Ray Tune's OptunaSearch; every Ray trial lands in the
study that ``search()`` opened, with the same params, values, user attrs and constraint as with the
Optuna backend, and the same ``results/<study>/`` files."""
from __future__ import annotations

import json
import math
import time

import optuna
import pytest
from searchkit import quick_settings

pytest.importorskip("ray")

from mae.model import create_model, describe  # noqa: E402
from search import ray_backend  # noqa: E402
from search.engine import search  # noqa: E402
from search.objective import CONSTRAINT_KEY  # noqa: E402
from search.ray_backend import NUMBER_KEY, RECORD_KEY, StudySearch, run_trial  # noqa: E402
from spaces.space import JointSpace  # noqa: E402

State = optuna.trial.TrialState


def test_ray_trials_land_in_the_study_like_optuna_trials(tmp_path, tiny_ckpt):
    # a budget that prunes some trials far over it, and the top trials recovered after the search: the
    # two backends must agree on every value, state and recovered score
    common = {"trials": 6, "far_over_budget": 1.0, "warm_start": False, "budget_ms": 0.4}
    by_optuna = search(quick_settings(tmp_path, tiny_ckpt, study_name="optuna", **common))
    by_ray = search(quick_settings(tmp_path, tiny_ckpt, study_name="ray", backend="ray", jobs=2, **common))
    import ray

    assert not ray.is_initialized()  # the Ray it started is shut down

    a, b = by_optuna.study.trials, by_ray.study.trials
    assert [t.number for t in b] == list(range(6)) and {t.state for t in b} == {State.COMPLETE, State.PRUNED}
    assert by_ray.study.metric_names == ["accuracy", "latency_ms"]
    for x, y in zip(a, b):
        assert (y.params, y.distributions, y.values, y.state) == (x.params, x.distributions, x.values, x.state)
        # "0": the list form mirrored for optuna-dashboard (search.objective.set_constraint)
        assert y.constraints == x.constraints and set(y.constraints) == {CONSTRAINT_KEY, "0"}
        drop = {"timings", "recovery"}  # wall times differ
        assert {k: v for k, v in y.user_attrs.items() if k not in drop} == \
               {k: v for k, v in x.user_attrs.items() if k not in drop}
    files = sorted(p.name for p in (tmp_path / "optuna").iterdir() if p.name != "study.db")
    assert files == sorted(p.name for p in (tmp_path / "ray").iterdir() if p.name != "study.db")
    assert "winner.json" in files
    assert json.loads((tmp_path / "ray" / "winner.json").read_text())["config"] == by_optuna.winner["config"]
    assert by_ray.study.user_attrs["recovered_scores"] == by_optuna.study.user_attrs["recovered_scores"]


@pytest.fixture
def searcher():
    """A StudySearch on an in-memory study, driven by hand (no Ray needed for the driver's side)."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    setup = type("Setup", (), {"space": JointSpace(shape=describe(create_model("mae_vit_test_p7_28")))})()
    finished: list[int] = []
    s = StudySearch(study, setup, ("accuracy", "latency_ms"), None, lambda st, t: finished.append(t.number))
    return s, study, finished


def _record(**record) -> dict:
    return {"accuracy": math.nan, "latency_ms": math.nan, RECORD_KEY: json.dumps(record)}


def test_the_driver_records_values_constraints_and_failures(searcher):
    s, study, finished = searcher
    configs = [s.suggest(f"t{i}") for i in range(4)]
    assert [c[NUMBER_KEY] for c in configs] == [0, 1, 2, 3]
    assert {k for k in configs[0] if not k.startswith("__")} == set(study.trials[0].params)
    s.on_trial_complete("t0", _record(values=[0.5, 0.2], user_attrs={"feasible": True, "cheap_score": 0.4},
                                      constraints={CONSTRAINT_KEY: -0.1}))
    s.on_trial_complete("t1", _record(fail_reason="RuntimeError: boom", user_attrs={"feasible": True},
                                      constraints={CONSTRAINT_KEY: -0.1}))
    s.on_trial_complete("t2", None, error=True)
    s.on_trial_complete("t3", _record(pruned=True, user_attrs={"feasible": False, "latency_ms": 9.0},
                                      constraints={CONSTRAINT_KEY: 4.0}))
    t = study.trials
    assert (t[0].state, t[0].values, t[0].constraints) == (State.COMPLETE, [0.5, 0.2],
                                                         {CONSTRAINT_KEY: -0.1, "0": -0.1})
    assert t[1].state == State.FAIL and t[1].user_attrs["fail_reason"] == "RuntimeError: boom"
    assert t[2].state == State.FAIL and "worker died" in t[2].user_attrs["fail_reason"]
    # far over budget: pruned, without values, its constraint kept for the sampler
    assert (t[3].state, t[3].values, t[3].constraints[CONSTRAINT_KEY]) == (State.PRUNED, None, 4.0)
    s.suggest("t4")
    s.fail_unfinished("interrupted: the Ray experiment ended before this trial reported")
    assert study.trials[4].state == State.FAIL and study.trials[4].user_attrs["fail_reason"].startswith("interrupted")
    assert finished == [0, 1, 2, 3]


def test_no_suggestion_after_the_deadline(searcher):
    s, study, _ = searcher
    s._deadline = time.monotonic() - 1
    assert s.suggest("late") == "FINISHED" and not study.trials


def test_a_worker_reports_a_failing_objective_with_its_reason(monkeypatch):
    reported = []
    monkeypatch.setattr(ray_backend.tune, "report", reported.append)

    def objective(trial):
        trial.set_user_attr("feasible", True)
        trial.set_constraint(CONSTRAINT_KEY, -1.0)
        raise RuntimeError("simulated")

    run_trial({"x": 1, NUMBER_KEY: 7}, objective=objective, threads=1,
              metric_names=("accuracy", "latency_ms"))
    (result,) = reported
    assert math.isnan(result["accuracy"]) and math.isnan(result["latency_ms"])
    assert json.loads(result[RECORD_KEY]) == {"fail_reason": "RuntimeError: simulated", "user_attrs": {"feasible": True},
                                              "constraints": {CONSTRAINT_KEY: -1.0}}


def test_a_worker_reports_a_trial_pruned_far_over_budget_without_values(monkeypatch):
    reported = []
    monkeypatch.setattr(ray_backend.tune, "report", reported.append)

    def objective(trial):
        trial.set_constraint(CONSTRAINT_KEY, 4.0)
        raise optuna.TrialPruned("far over budget")

    run_trial({"x": 1, NUMBER_KEY: 3}, objective=objective, threads=1, metric_names=("accuracy", "latency_ms"))
    (result,) = reported
    assert math.isnan(result["accuracy"])
    assert json.loads(result[RECORD_KEY]) == {"pruned": True, "user_attrs": {}, "constraints": {CONSTRAINT_KEY: 4.0}}
