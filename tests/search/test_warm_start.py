"""Warm start: the uniform heuristic's largest configs within budget become a new study's first trials."""
from __future__ import annotations

import optuna
from searchkit import quick_settings

from search.engine import search
from search.setup import build_setup
from search.warm_start import seed_params
from spaces.space import JointSpace


def test_seeds_are_uniform_fit_the_budget_and_come_largest_first(tmp_path, tiny_ckpt):
    settings = quick_settings(tmp_path, tiny_ckpt)
    setup = build_setup(settings)

    def price(c):
        return setup.predict_ms(setup.deployable(c))

    seeds = seed_params(setup.shape, setup.space, price, settings.budget_ms)
    assert 1 <= len(seeds) <= 6
    configs = [setup.space.sample(optuna.trial.FixedTrial(p)) for p in seeds]
    latencies = [price(c) for c in configs]
    assert all(ms <= settings.budget_ms for ms in latencies) and latencies == sorted(latencies, reverse=True)
    families = set()
    for p, c in zip(seeds, configs):
        assert len({(b.heads, b.mlp_hidden) for b in c.blocks}) == 1  # one ratio for every layer
        bits = {b.weight_bits[n] for b in c.blocks for n in b.live_linears()}
        fractions = {v for k, v in p.items() if k.endswith(".rank")}
        assert len(bits) == 1 and bits <= {8, 16} and len(fractions) == 1
        families.add((bits.pop(), fractions.pop()))
    assert len(families) == len(seeds)  # one seed per (bits, rank share) family
    no_prune = JointSpace(shape=setup.shape, techniques=frozenset({"quant", "lowrank"}))
    for p in seed_params(setup.shape, no_prune, price, settings.budget_ms):
        assert not any(k.endswith((".heads", ".mlp")) for k in p)  # heads and units stay whole
    assert seed_params(setup.shape, setup.space, price, budget_ms=1e-6) == []  # nothing fits


def test_a_new_study_starts_with_the_seeds_unless_told_not_to(tmp_path, tiny_ckpt):
    seeded = search(quick_settings(tmp_path / "a", tiny_ckpt, trials=2)).study
    assert seeded.trials[0].user_attrs.get("warm_start") == "uniform heuristic"
    plain = search(quick_settings(tmp_path / "b", tiny_ckpt, trials=2, warm_start=False)).study
    assert not any(t.user_attrs.get("warm_start") for t in plain.trials)
