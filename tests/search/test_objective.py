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
    assert trial.user_attrs["feasible"] and trial.user_attrs["stage"] == "cheap"
    assert score == trial.user_attrs["cheap_score"] and "recovered_score" not in trial.user_attrs
    assert trial.user_attrs["config"]["distill"]["steps"] == 0 and trial.user_attrs["params"] > 0


def test_cheap_fidelity_never_recovers_even_the_best_trial(parts, monkeypatch):
    objective = _objective(parts, budget_ms=1.0)
    compress = objective.evaluator.compress
    steps_seen = []
    monkeypatch.setattr(objective.evaluator, "compress",
                        lambda config, recover_steps, **k: steps_seen.append(recover_steps) or compress(config, recover_steps, **k))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=3)
    assert steps_seen == [0] * len(steps_seen) and steps_seen
    assert {t.user_attrs["stage"] for t in study.trials if t.values} == {"cheap"}


def test_recovered_fidelity_recovers_every_trial_on_the_whole_validation_split(parts, monkeypatch):
    objective = _objective(parts, budget_ms=1.0, fidelity="recovered")
    images = []
    score = objective.evaluator.score
    monkeypatch.setattr(objective.evaluator, "score", lambda m, split="val", n=None: images.append(n) or score(m, split, n))
    trial = optuna.trial.FixedTrial(_params(heads=1, mlp=64))
    value, _ = objective(trial)
    assert trial.user_attrs["stage"] == "recovered" and value == trial.user_attrs["recovered_score"]
    assert trial.user_attrs["config"]["distill"]["steps"] == 4 and trial.user_attrs["recovery"]["steps"] == 4
    assert images == [None]  # the whole split, never the cheap subset


def test_far_over_budget_is_pruned_without_building_a_model_or_inventing_a_score(parts, monkeypatch):
    objective = _objective(parts, budget_ms=0.05)
    monkeypatch.setattr(objective.evaluator, "compress", lambda *a, **k: pytest.fail("a model was built"))
    trial = optuna.trial.FixedTrial(_params(heads=2, mlp=128))
    with pytest.raises(optuna.TrialPruned, match="over 1.5x the budget"):
        objective(trial)
    assert trial.user_attrs["stage"].startswith("pruned") and not trial.user_attrs["feasible"]
    assert trial.user_attrs["latency_ms"] > 1.5 * 0.05 and trial.constraints[CONSTRAINT_KEY] > 0
    assert "cheap_score" not in trial.user_attrs


def test_constraints_are_recorded_in_a_study_and_pruned_trials_carry_no_values(parts):
    objective = _objective(parts, budget_ms=0.2)
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=10)
    states = {t.state for t in study.trials}
    assert states == {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}  # both kinds drawn
    for t in study.trials:
        latency_ms = t.user_attrs["latency_ms"]
        assert math.isclose(t.constraints[CONSTRAINT_KEY], latency_ms - 0.2, rel_tol=1e-9, abs_tol=1e-12)
        assert t.user_attrs["feasible"] == (latency_ms <= 0.2)
        if t.state == optuna.trial.TrialState.PRUNED:
            assert t.values is None and latency_ms > 1.5 * 0.2
        else:
            assert t.values[1] == latency_ms
