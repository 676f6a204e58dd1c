"""The exact allocator: least table damage within a latency budget, checked against brute force."""
from __future__ import annotations

import itertools
import time
from dataclasses import replace

import numpy as np
import pytest

from evaluators.latency.predict.predictor import LatencyPredictor
from evaluators.sensitivity import (
    SensitivityRow,
    SensitivityTable,
    additive_damage,
    block_labels,
    identity_level,
    knob_levels,
    knob_type,
)
from mae.model import create_model, describe
from search.allocate import AllocationError, AllocationProblem, allocate, allocate_front
from spaces.config import BlockConfig, CompressionConfig
from spaces.space import rank_for


def synthetic_table(shape, task="classify", seed=0, keep=None) -> SensitivityTable:
    """Seeded damages that grow with how far a level is from identity (as real tables mostly do);
    ``keep``: {knob type or knob: levels} to restrict the rows (a smaller brute force)."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, s in block_labels(shape, task):
        scale = rng.uniform(0.2, 2.0)
        for knob, levels in knob_levels(s).items():
            allowed = (keep or {}).get(knob, (keep or {}).get(knob_type(knob)))
            ident = identity_level(s, knob)
            for level in levels:
                if allowed is not None and level not in allowed and level != ident:
                    continue
                far = {"heads": 1 - level / max(1, s.heads), "mlp": 1 - level / max(1, s.mlp_hidden),
                       "bits": {32: 0, 16: 1e-4, 8: 1e-2, 4: 0.2}[int(level)] if knob_type(knob) == "bits" else 0,
                       "rank": 0 if level == 0 else 0.3 * (1 - level)}[knob_type(knob)]
                damage = 0.0 if level == ident else scale * far * rng.uniform(0.5, 1.5) + 1e-6
                rows.append(SensitivityRow(label, knob, float(level), damage))
    return SensitivityTable(rows=tuple(rows), task=task)


@pytest.fixture(scope="module")
def predictor():
    return LatencyPredictor()


@pytest.fixture(scope="module")
def tiny_shape():
    return describe(create_model("mae_vit_test_p7_28"))


@pytest.fixture(scope="module")
def default_shape():
    return describe(create_model("mae_vit_tiny_p4_28"))


def _brute_force(table, predictor, shape, keep, merges=None):
    """(latency, damage) of every config made of the kept levels, as deployed (what the allocator prices);
    ``merges``: a token-merging schedule every config carries."""
    per_block = []
    for i, s in enumerate(shape.blocks):
        combos = []
        for h, m, qb, fb, fr in itertools.product(range(s.heads + 1), keep["mlp"] + (s.mlp_hidden,), keep["qkv.bits"],
                                                  keep["fc1.bits"], keep["fc2.rank"]):
            dims = s.linear_dims(h, m)
            b = BlockConfig(heads=h, mlp_hidden=m)
            combos.append(replace(b, weight_bits={**b.weight_bits, "qkv": qb, "fc1": fb},
                                  ranks={**b.ranks, "fc2": rank_for(fr, *dims["fc2"])},
                                  merge_tokens=merges[i] if merges else 0))
        per_block.append(combos)
    out = []
    for blocks in itertools.product(*per_block):
        config = predictor.deployable_config(shape, CompressionConfig(blocks=blocks))
        try:
            damage = additive_damage(table, shape, config)
        except ValueError:  # deploys as a level the table has no row for: the allocator skips it too
            continue
        out.append((predictor.predict_ms(shape, config), damage))
    return np.array(out)


def test_objective_equals_brute_force_and_every_config_fits(tiny_shape, predictor):
    keep = {"mlp": (0, 64), "qkv.bits": (32, 8), "fc1.bits": (32, 4), "fc2.rank": (0.0, 0.25),
            "proj.bits": (32,), "fc2.bits": (32,), "qkv.rank": (0.0,), "proj.rank": (0.0,), "fc1.rank": (0.0,)}
    table = synthetic_table(tiny_shape, keep=keep)
    brute = _brute_force(table, predictor, tiny_shape, keep)
    problem = AllocationProblem(table, predictor, tiny_shape)
    assert problem.floor_ms == pytest.approx(brute[:, 0].min())
    for budget in np.quantile(brute[:, 0], [0.0, 0.1, 0.3, 0.5, 0.8, 1.0]):
        a = problem.solve(float(budget))
        best = brute[brute[:, 0] <= budget + 1e-9, 1].min()
        assert a.damage == pytest.approx(best, abs=1e-12)
        assert a.latency_ms == predictor.predict_ms(tiny_shape, a.config) <= budget + 1e-9
        assert a.damage == pytest.approx(additive_damage(table, tiny_shape, a.config))


def test_under_a_token_merging_schedule_the_objective_still_equals_brute_force(tiny_shape, predictor):
    """Blocks see different token counts once tokens merge, so each is priced where it is; the
    allocation stays exact under the fixed schedule, and every config carries it."""
    keep = {"mlp": (0, 64), "qkv.bits": (32, 8), "fc1.bits": (32, 4), "fc2.rank": (0.0, 0.25),
            "proj.bits": (32,), "fc2.bits": (32,), "qkv.rank": (0.0,), "proj.rank": (0.0,), "fc1.rank": (0.0,)}
    table = synthetic_table(tiny_shape, keep=keep)
    merges = (6, 3)
    brute = _brute_force(table, predictor, tiny_shape, keep, merges)
    problem = AllocationProblem(table, predictor, tiny_shape, merges=merges)
    assert problem.floor_ms == pytest.approx(brute[:, 0].min())
    for budget in np.quantile(brute[:, 0], [0.0, 0.3, 0.7, 1.0]):
        a = problem.solve(float(budget))
        assert [b.merge_tokens for b in a.config.blocks] == list(merges)
        assert a.damage == pytest.approx(brute[brute[:, 0] <= budget + 1e-9, 1].min(), abs=1e-12)
        assert a.latency_ms == predictor.predict_ms(tiny_shape, a.config) <= budget + 1e-9


def test_looser_budgets_never_give_more_damage(default_shape, predictor):
    table = synthetic_table(default_shape, seed=1)
    full_ms = predictor.predict_ms(default_shape)
    budgets = list(np.linspace(0.1, 1.05, 12) * full_ms)
    t0 = time.perf_counter()
    front = allocate_front(table, predictor, default_shape, budgets)
    assert time.perf_counter() - t0 < 60  # seconds, not a search (about 3 s here)
    assert [a.budget_ms for a in front] == budgets
    for a in front:
        assert predictor.predict_ms(default_shape, a.config) <= a.budget_ms + 1e-9
        a.config.validate_for(default_shape)
    damages = [a.damage for a in front]
    assert all(later <= earlier + 1e-12 for earlier, later in itertools.pairwise(damages))
    assert damages[-1] == 0.0 and front[-1].config.is_identity(default_shape)  # above the full model: nothing to cut


def test_per_layer_choices_follow_the_table(default_shape, predictor):
    table = synthetic_table(default_shape, seed=2)
    # a block whose heads cost nothing to remove loses them first
    config = allocate(table, predictor, default_shape, 40.0, weights={"b3.heads": 0.0})
    assert predictor.predict_ms(default_shape, config) <= 40.0
    assert config.blocks[3].heads == 0
    # no pruning allowed: heads and units stay whole, bits and ranks do the work
    config = allocate(table, predictor, default_shape, 40.0, techniques=("quant", "lowrank"))
    assert all(b.heads == 3 and b.mlp_hidden == 768 for b in config.blocks)
    assert predictor.predict_ms(default_shape, config) <= 40.0


def test_int8_activations_are_repaired_to_fit(default_shape, predictor):
    table = synthetic_table(default_shape, seed=3)
    for budget in (12.0, 25.0):
        config = allocate(table, predictor, default_shape, budget, act_bits=8)
        assert predictor.predict_ms(default_shape, config) <= budget + 1e-9


def test_full_mae_allocates_the_decoder_too(predictor):
    shape = describe(create_model("mae_vit_test_p7_28", kind="mae"))
    table = synthetic_table(shape, task="reconstruct", seed=4)
    full_ms = predictor.predict_ms(shape)
    front = allocate_front(table, predictor, shape, [0.5 * full_ms, 0.8 * full_ms])
    assert len(front) == 2 and all(len(a.config.decoder_blocks) == 1 for a in front)
    assert all(predictor.predict_ms(shape, a.config, task="reconstruct") <= a.budget_ms + 1e-9 for a in front)
    with pytest.raises(ValueError, match="cannot allocate"):
        AllocationProblem(table, predictor, shape, task="classify")


def test_impossible_budget_and_wrong_table_raise_one_sentence(tiny_shape, default_shape, predictor):
    table = synthetic_table(tiny_shape)
    with pytest.raises(AllocationError) as e:
        allocate(table, predictor, tiny_shape, 1e-3)
    message = str(e.value)
    floor = AllocationProblem(table, predictor, tiny_shape).floor_ms
    assert f"smallest latency the table's levels reach is {floor:.2f} ms" in message and "\n" not in message
    with pytest.raises(AllocationError, match="built for another model"):
        allocate(synthetic_table(default_shape), predictor, tiny_shape, 10.0)
    with pytest.raises(ValueError, match="unknown damage weight"):
        allocate(table, predictor, tiny_shape, 10.0, weights={"attention": 1.0})
