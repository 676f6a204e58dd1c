"""The ``allocate`` strategy: every trial is the exact allocation of the sampled weights, within budget."""
from __future__ import annotations

import optuna
from searchkit import quick_settings

from search.allocation_space import AllocationSpace, seed_params
from search.engine import search
from search.setup import build_setup


def test_every_sample_fits_the_budget_and_seeds_are_the_unweighted_allocation(tmp_path, tiny_ckpt, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the sensitivity cache goes under results/ of the working directory
    settings = quick_settings(tmp_path, tiny_ckpt, space="allocate", sensitivity_images=32)
    setup = build_setup(settings)
    space = setup.space
    assert isinstance(space, AllocationSpace)
    assert set(space.knob_types()) == {"heads", "mlp", "bits", "rank"}
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(0))
    for _ in range(6):
        config = space.sample(study.ask())
        assert setup.predict_ms(config) <= settings.budget_ms + 1e-9
        config.validate_for(setup.shape)
    seeds = seed_params(space)
    assert [p["budget_share"] for p in seeds] == [1.0, 0.95, 0.9]
    latencies = [setup.predict_ms(space.sample(optuna.trial.FixedTrial(p))) for p in seeds]
    assert latencies == sorted(latencies, reverse=True)  # a smaller share never allocates more


def test_a_search_with_the_allocate_strategy_runs_and_starts_from_its_seeds(tmp_path, tiny_ckpt, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome = search(quick_settings(tmp_path, tiny_ckpt, space="allocate", sensitivity_images=32, trials=4))
    study = outcome.study
    assert study.trials[0].user_attrs.get("warm_start") == "unweighted allocation"
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4 and all(t.user_attrs["feasible"] for t in done)
    assert outcome.winner is not None and outcome.winner["metrics"]["latency_ms"] <= 0.3


def test_the_winner_layer_view_shows_every_knob_beside_its_measured_damage(tmp_path, tiny_ckpt, monkeypatch):
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    outcome = search(quick_settings(tmp_path, tiny_ckpt, space="allocate", sensitivity_images=32, trials=2))
    layers = pd.read_csv(outcome.out_dir / "winner_layers.csv")
    for column in ("heads", "mlp_hidden", "qkv_bits", "fc1_rank", "damage_heads", "damage_mlp", "damage_bits",
                   "damage_rank", "damage"):
        assert column in layers, column
    # (the test model is untrained -- its head is near zero, so its KL damages are ~0 and the allocator
    # may remove everything; the damages of a real model are checked in tests/evaluators/test_sensitivity.py)
    assert (layers["damage"] >= 0).all()
    assert layers["damage"].equals(layers[["damage_heads", "damage_mlp", "damage_bits", "damage_rank"]].sum(axis=1))
    html = (outcome.out_dir / "winner_layers.html").read_text()
    assert "measured single-knob damage" in html and "SVD rank" in html
