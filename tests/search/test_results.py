"""``search.results`` against what the study holds: the table row by row, the Pareto front written out by
hand from the trials (feasible, non-dominated, one point per (score, latency)), the plot's points, and
the files. On small studies built here with the attributes the objective records; no model."""
from __future__ import annotations

import math
import warnings

import optuna
import pandas as pd
import pytest

from search.objective import CONSTRAINT_KEY, set_constraint
from search.results import (
    RECOVERED_KEY,
    pareto_figure,
    pareto_front,
    pareto_plot,
    pareto_trials,
    trials_table,
    write_tables,
)

BUDGET_MS = 5.0


def _objective(trial: optuna.Trial) -> tuple[float, float]:
    """Shaped like :class:`search.objective.Objective`: a conditional space, the latency constraint,
    a far-over-budget trial pruned without a score, the others scored cheaply, an occasional failure."""
    heads = trial.suggest_int("b0.heads", 1, 3)
    if heads > 1:
        trial.suggest_categorical("b0.fc1.bits", [4, 8])
    mlp = trial.suggest_int("b1.mlp", 1, 3)
    latency = float(2 * heads + mlp)
    set_constraint(trial, CONSTRAINT_KEY, latency - BUDGET_MS)
    trial.set_user_attr("feasible", latency <= BUDGET_MS)
    trial.set_user_attr("latency_ms", latency)
    if latency > 8:
        trial.set_user_attr("stage", "pruned: far over budget, not scored")
        trial.set_user_attr("timings", {"predict_s": 0.01})
        raise optuna.TrialPruned("far over budget")
    if heads == 3 and mlp == 1:
        trial.set_user_attr("fail_reason", "RuntimeError: simulated")
        raise RuntimeError("simulated")
    # 4-bit weights cost accuracy but no latency here: those trials are dominated (the plot's "feasible")
    score = round(0.1 * heads + 0.05 * mlp - (0.12 if trial.params.get("b0.fc1.bits") == 4 else 0.0), 4)
    trial.set_user_attr("stage", "cheap")
    trial.set_user_attr("cheap_score", score)
    for key, value in (("params", 1000 * heads + mlp), ("macs", 10**6 * mlp), ("size_mb", 0.5 * heads)):
        trial.set_user_attr(key, value)
    trial.set_user_attr("timings", {"predict_s": 0.01, "compress_s": 0.2, "eval_s": 0.1})
    return score, latency


@pytest.fixture(scope="module")
def study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["accuracy", "latency_ms"])
    # a pruned trial first (one timing), then one without the conditional knob, then one config twice
    for params in ({"b0.heads": 3, "b0.fc1.bits": 8, "b1.mlp": 3}, {"b0.heads": 1, "b1.mlp": 1},
                   {"b0.heads": 1, "b1.mlp": 2}, {"b0.heads": 1, "b1.mlp": 2}):
        study.enqueue_trial(params)
    study.optimize(_objective, n_trials=30, catch=(RuntimeError,))
    study.ask()  # left RUNNING, as a killed search leaves a trial
    study.set_user_attr(RECOVERED_KEY, {"1": 0.5, "2": 0.45})  # the top trials, recovered after the search
    return study


def _dominates(a: optuna.trial.FrozenTrial, b: optuna.trial.FrozenTrial) -> bool:
    return a.values[0] >= b.values[0] and a.values[1] <= b.values[1] and a.values != b.values


def _front_by_hand(study: optuna.Study) -> list[int]:
    ok = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.values[1] <= BUDGET_MS]
    front = [t for t in ok if not any(_dominates(o, t) for o in ok)]
    first = {}
    for t in front:  # in trial order: the first of equal points is kept
        first.setdefault(tuple(t.values), t)
    return [t.number for t in sorted(first.values(), key=lambda t: t.values[1])]


def test_trials_table_holds_what_the_study_holds(study):
    table = trials_table(study)
    assert list(table.columns[:13]) == ["number", "state", "accuracy", "latency_ms", "feasible", "stage", "cheap_score",
                                        "recovered_score", "params", "macs", "size_mb", "fail_reason", "duration_s"]
    # then each name where it first appears, as trials.csv always had them: trial 0 (pruned) brings
    # one timing and its knobs, trial 1 the timings of a cheap score
    assert list(table.columns[13:]) == ["time_predict_s", "b0.heads", "b0.fc1.bits", "b1.mlp", "time_compress_s",
                                        "time_eval_s"]
    assert table["number"].tolist() == [t.number for t in study.trials]
    for t, (_, row) in zip(study.trials, table.iterrows()):
        assert row["state"] == t.state.name
        values = t.values or [None, None]
        assert row["accuracy"] == values[0] or (values[0] is None and pd.isna(row["accuracy"]))
        # a trial without values (pruned far over budget, failed): the column holds the latency it recorded
        latency = values[1] if t.values else t.user_attrs.get("latency_ms")
        assert row["latency_ms"] == latency or (latency is None and pd.isna(row["latency_ms"]))
        recovered = {1: 0.5, 2: 0.45}.get(t.number)
        assert row["recovered_score"] == recovered or (recovered is None and pd.isna(row["recovered_score"]))
        for key in ("feasible", "stage", "cheap_score", "params", "macs", "size_mb", "fail_reason"):
            assert row[key] == t.user_attrs.get(key) or (key not in t.user_attrs and pd.isna(row[key])), key
        for stage, seconds in (t.user_attrs.get("timings") or {}).items():
            assert row[f"time_{stage}"] == seconds
        for name in ("b0.heads", "b0.fc1.bits", "b1.mlp"):
            assert row[name] == t.params[name] if name in t.params else pd.isna(row[name])
        seconds = t.duration.total_seconds() if t.duration else None  # None: the RUNNING trial
        assert row["duration_s"] == pytest.approx(seconds) if seconds is not None else pd.isna(row["duration_s"])
    assert set(table["state"]) == {"COMPLETE", "FAIL", "PRUNED", "RUNNING"}
    assert table.loc[table["state"] == "FAIL", "fail_reason"].eq("RuntimeError: simulated").all()


def test_pareto_front_is_the_feasible_non_dominated_trials(study):
    by_hand = _front_by_hand(study)
    assert len(by_hand) >= 2
    assert [t.number for t in pareto_trials(study)] == by_hand
    front = pareto_front(study)
    assert front["number"].tolist() == by_hand
    assert front["feasible"].all() and (front["latency_ms"] <= BUDGET_MS).all()
    # Optuna's best_trials holds both copies of the config run twice (enqueued): the front holds one
    twice = [t.number for t in study.trials if t.params == {"b0.heads": 1, "b1.mlp": 2}
             and t.state == optuna.trial.TrialState.COMPLETE]
    assert len(twice) >= 2 and set(twice) <= {t.number for t in study.best_trials}
    assert twice[0] in by_hand and not set(twice[1:]) & set(by_hand)


def test_pareto_front_of_a_study_without_constraints_is_the_front_of_its_feasible_trials():
    """Trials recorded without constraints, under two budgets (``feasible`` is per trial): Optuna's
    ``best_trials`` of the whole study would let an over-budget trial hide a feasible one."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    dist = {"x": optuna.distributions.IntDistribution(0, 9)}
    trials = [(0.5, 4.0, 4.0), (0.9, 3.0, 2.5), (0.6, 3.5, 4.0)]  # score, latency, budget: trial 1 is over
    for x, (score, ms, budget) in enumerate(trials):
        study.add_trial(optuna.trial.create_trial(params={"x": x}, distributions=dist, values=[score, ms],
                                                  user_attrs={"feasible": ms <= budget}))
    assert {t.number for t in study.best_trials} == {1}
    assert [t.number for t in pareto_trials(study)] == [2]


def test_pareto_plot_shows_each_trial_where_the_study_has_it(study, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated Optuna API (constraints_func) on the way
        fig = pareto_figure(study, BUDGET_MS, "title")
    by_number = {t.number: t for t in study.trials}
    traces = {trace.name: trace for trace in fig.data}
    assert set(traces) == {"over budget", "feasible", "Pareto-optimal", "Pareto front",
                           "recovered after the search (top trials)"}
    recovered = traces["recovered after the search (top trials)"]  # its own fidelity, its own marker
    assert list(recovered.y) == [0.5, 0.45] and list(recovered.x) == [by_number[1].values[1], by_number[2].values[1]]
    shown = {}
    for name in ("over budget", "feasible", "Pareto-optimal"):
        trace = traces[name]
        for text, x, y, (stage,) in zip(trace.text, trace.x, trace.y, trace.customdata):
            t = by_number[int(text.removeprefix("trial "))]
            assert (x, y) == (t.values[1], t.values[0]) and stage == t.user_attrs["stage"]
            shown[t.number] = name
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(shown) == [t.number for t in complete]
    assert {n for n, name in shown.items() if name == "over budget"} == {t.number for t in complete
                                                                         if not t.user_attrs["feasible"]}
    assert set(_front_by_hand(study)) <= {n for n, name in shown.items() if name == "Pareto-optimal"}
    front = traces["Pareto front"]
    assert list(front.x) == [by_number[n].values[1] for n in _front_by_hand(study)]
    assert fig.layout.shapes[0].x0 == BUDGET_MS and fig.layout.title.text == "title"

    pareto_plot(study, BUDGET_MS, tmp_path / "pareto.html", "title")
    assert [p.name for p in tmp_path.iterdir()] == ["pareto.html"]  # no temporary left behind
    assert "trial " in (tmp_path / "pareto.html").read_text()


def test_write_tables_writes_the_table(study, tmp_path):
    out = tmp_path / "results" / "study"
    table = write_tables(study, out)
    assert sorted(p.name for p in out.iterdir()) == ["trials.csv", "trials.parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "trials.parquet"), table)
    csv = pd.read_csv(out / "trials.csv")
    assert list(csv.columns) == list(table.columns) and csv["number"].tolist() == table["number"].tolist()
    assert math.isclose(csv["accuracy"].max(), table["accuracy"].max())


def test_an_empty_study_gives_an_empty_table_and_front():
    study = optuna.create_study(directions=["maximize", "minimize"])
    assert trials_table(study).empty and pareto_trials(study) == []
    assert pareto_front(study).empty
