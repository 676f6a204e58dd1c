import math

import optuna
import pytest
import torch

from evaluators.accuracy import TaskEvaluator
from mae.model import create_model, describe
from search.objective import CONSTRAINT_KEY, Objective
from search.settings import SearchSettings
from spaces.space import JointSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _macs_ms(shape):
    """A stand-in latency model for the objective's tests: 1 ms per million MACs of the kept blocks."""
    def predict(config):
        total = 0
        for s, b in zip(shape.blocks, config.blocks):
            dims = s.linear_dims(b.heads, b.mlp_hidden)
            total += sum(i * o for k, (i, o) in dims.items() if k in b.live_linears())
        return total * 17 / 1e6
    return predict


@pytest.fixture(scope="module")
def parts(fashion_mnist):
    torch.manual_seed(0)
    teacher = create_model("mae_vit_test_p7_28").eval()
    splits = {k: v.head(512) for k, v in fashion_mnist.items()}
    shape = describe(teacher)
    return teacher, splits, shape


def _objective(parts, budget_ms, **kw):
    teacher, splits, shape = parts
    settings = SearchSettings(budget_ms=budget_ms, cheap_val_images=128, recover_steps=4, bf16=False, **kw)
    space = JointSpace(shape=shape, distill_steps=settings.recover_steps)
    return Objective(settings=settings, space=space, evaluator=TaskEvaluator(teacher, splits, bf16=False),
                     predict_ms=_macs_ms(shape))


def _params(heads, mlp, bits=8):
    p = {"act_bits": 32, "distill.temperature": 2.0, "distill.alpha": 0.5, "distill.feature_weight": 0.0}
    for i in range(2):
        p |= {f"b{i}.heads": heads, f"b{i}.mlp": mlp}
        for k in ("qkv", "proj", "fc1", "fc2"):
            p |= {f"b{i}.{k}.bits": bits, f"b{i}.{k}.rank": 0.0}
    return p


def test_fixed_trial_returns_score_and_latency_and_sets_the_constraint(parts):
    objective = _objective(parts, budget_ms=1.0)
    trial = optuna.trial.FixedTrial(_params(heads=1, mlp=64))
    score, latency_ms = objective(trial)
    assert 0.0 <= score <= 1.0 and latency_ms == pytest.approx(2 * (32 * 48 + 16 * 32 + 2 * 32 * 64) * 17 / 1e6)
    assert trial.constraints == {CONSTRAINT_KEY: pytest.approx(latency_ms - 1.0)}
    assert trial.user_attrs["feasible"] and trial.user_attrs["stage"] == "recovered"
    assert trial.user_attrs["config"]["distill"]["steps"] == 4 and trial.user_attrs["params"] > 0


def test_far_over_budget_is_recorded_without_building_a_model(parts, monkeypatch):
    objective = _objective(parts, budget_ms=0.05)
    monkeypatch.setattr(objective.evaluator, "compress", lambda *a, **k: pytest.fail("a model was built"))
    trial = optuna.trial.FixedTrial(_params(heads=2, mlp=128))
    score, latency_ms = objective(trial)
    assert score == 0.0 and latency_ms > 1.5 * 0.05
    assert trial.user_attrs["stage"].startswith("skipped") and not trial.user_attrs["feasible"]


def test_feasible_but_unpromising_trials_keep_their_cheap_score(parts, monkeypatch):
    objective = _objective(parts, budget_ms=1.0)
    # an earlier feasible trial scored 2.0: nothing this trial can reach is promising
    monkeypatch.setattr("search.objective.best_feasible_cheap_score", lambda trial: 2.0)
    trial = optuna.trial.FixedTrial(_params(heads=1, mlp=32))
    score, _ = objective(trial)
    assert trial.user_attrs["stage"] == "cheap" and score == trial.user_attrs["cheap_score"]
    assert trial.user_attrs["config"]["distill"]["steps"] == 0  # the config says what was scored


def test_constraints_are_recorded_in_a_study(parts):
    objective = _objective(parts, budget_ms=0.3)
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=4)
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert math.isclose(t.constraints[CONSTRAINT_KEY], t.values[1] - 0.3, rel_tol=1e-9, abs_tol=1e-12)
        assert t.user_attrs["feasible"] == (t.values[1] <= 0.3)
