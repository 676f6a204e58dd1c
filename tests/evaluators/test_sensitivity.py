"""The sensitivity table: single-knob damages on a seeded calibration batch, cached on disk."""
from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

import evaluators.sensitivity as sens
from evaluators.sensitivity import (
    SensitivityError,
    SensitivityTable,
    additive_damage,
    build_table,
    calibration_batch,
    knob_levels,
    measure_table,
    single_knob_config,
    write_heatmap,
)
from mae.model import create_model, describe
from spaces.config import CompressionConfig
from spaces.space import RANK_FRACTIONS, WEIGHT_BIT_CHOICES, mlp_levels
from toolkit.compress import apply
from toolkit.model_spec import resolve_model


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("mae_vit_test_p7_28").eval()


@pytest.fixture(scope="module")
def tiny_mae():
    torch.manual_seed(0)
    return create_model("mae_vit_test_p7_28", kind="mae").eval()


def test_rows_use_the_search_levels_and_identity_is_exactly_zero(tiny, fashion_mnist):
    table = build_table(tiny, fashion_mnist["train"], images=8, cache_dir=None, progress=False)
    shape = describe(tiny)
    assert table.task == "classify" and table.blocks() == ["b0", "b1"]
    s = shape.blocks[0]
    assert knob_levels(s)["heads"] == (0, 1, 2) and knob_levels(s)["mlp"] == mlp_levels(s.mlp_hidden)
    assert knob_levels(s)["fc1.bits"] == WEIGHT_BIT_CHOICES and set(knob_levels(s)["fc1.rank"]) <= set(RANK_FRACTIONS)
    for r in table.rows:
        ident = {"heads": s.heads, "mlp": s.mlp_hidden, "bits": 32, "rank": 0.0}[sens.knob_type(r.knob)]
        if r.level == ident:
            assert r.damage == 0.0, r
        else:
            assert r.damage >= 0.0, r  # KL
    assert len(table.rows) == 2 * sum(len(v) for v in knob_levels(s).values())


def test_block_suffix_shortcut_equals_a_full_forward(tiny_mae, fashion_mnist):
    """Each row runs only the blocks from the changed one on; that must equal the whole student's output."""
    torch.manual_seed(0)
    clf = create_model("mae_vit_test_p7_28", num_classes=10).eval()
    with torch.no_grad():  # a head that says something (the MAE-style init gives near-uniform outputs)
        clf.head.weight.normal_(0, 0.5)
    x, _ = calibration_batch(fashion_mnist["train"], 8, seed=3)
    table = measure_table(clf, x, seed=3, progress=False, kinds=("heads", "rank"))
    shape = describe(clf)
    for block, knob, level in [("b1", "heads", 1), ("b0", "heads", 0), ("b0", "qkv.rank", 0.25)]:
        student = apply(clf, single_knob_config(shape, block, knob, level))
        with torch.no_grad():
            kl = F.kl_div(F.log_softmax(student(x), -1), F.log_softmax(clf(x), -1), reduction="batchmean",
                          log_target=True)
        assert table.damage(block, knob, level) == pytest.approx(float(kl), rel=1e-4, abs=1e-7)
        assert table.damage(block, knob, level) > 0
    # full MAE: the increase of the masked-patch loss, one mask for teacher and student
    mae_table = measure_table(tiny_mae, x, seed=3, progress=False, kinds=("heads",))
    assert mae_table.task == "reconstruct" and "d0" in mae_table.blocks()
    mshape = describe(tiny_mae)
    for block in ("b1", "d0"):
        student = apply(tiny_mae, single_knob_config(mshape, block, "heads", 1))
        with torch.no_grad():
            losses = [float(m(x, sens.MASK_RATIO, torch.Generator().manual_seed(3))[0]) for m in (student, tiny_mae)]
        assert mae_table.damage(block, "heads", 1) == pytest.approx(losses[0] - losses[1], rel=1e-4, abs=1e-6)
        assert mae_table.damage(block, "heads", 2) == 0.0


def test_damage_grows_as_heads_and_units_go_on_the_shipped_model(fashion_mnist):
    model = resolve_model("default").model
    x, _ = calibration_batch(fashion_mnist["train"], 16, seed=0)
    table = measure_table(model, x, progress=False, kinds=("heads", "mlp"))
    pairs = monotone = 0
    for block in table.blocks():
        for knob in ("heads", "mlp"):
            damages = [r.damage for r in table.rows if r.block == block and r.knob == knob]  # levels ascending
            assert damages[-1] == 0.0 and min(damages[:-1]) > 0  # identity, then real damage
            assert damages[0] > damages[-2]  # removing the whole sub-layer hurts more than one step
            pairs += len(damages) - 1
            monotone += sum(a >= b for a, b in itertools.pairwise(damages))
    # non-strictly growing in the typical case: 16 images are noisy (59 of 66 steps measured here)
    assert monotone >= 0.85 * pairs


def test_cache_hit_returns_the_same_table_without_measuring(tiny, fashion_mnist, tmp_path, monkeypatch):
    train = fashion_mnist["train"]
    first = build_table(tiny, train, images=4, seed=1, cache_dir=tmp_path, progress=False)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"{first.meta['key']}.csv", f"{first.meta['key']}.json"]

    def boom(*a, **k):
        raise AssertionError("measured again")

    monkeypatch.setattr(sens, "measure_table", boom)
    again = build_table(tiny, train, images=4, seed=1, cache_dir=tmp_path, progress=False)
    assert again == first
    with pytest.raises(AssertionError, match="measured again"):  # another seed is another batch
        build_table(tiny, train, images=4, seed=2, cache_dir=tmp_path, progress=False)
    other = create_model("mae_vit_test_p7_28").eval()  # other weights: another key
    assert sens.table_key(other, train, images=4, seed=1, data_name="fashion-mnist") != first.meta["key"]
    assert sens.table_key(tiny, train, images=4, seed=1, data_name="folder") != first.meta["key"]


def test_csv_round_trip_heatmap_and_bad_files(tiny, fashion_mnist, tmp_path):
    x, idx = calibration_batch(fashion_mnist["train"], 4, seed=0)
    assert torch.equal(idx, calibration_batch(fashion_mnist["train"], 4, seed=0)[1])  # seeded
    table = measure_table(tiny, x, progress=False, kinds=("bits",))
    table.to_csv(tmp_path / "t.csv")
    assert SensitivityTable.from_csv(tmp_path / "t.csv") == table
    write_heatmap(table, tmp_path / "t.html")
    assert "plotly" in (tmp_path / "t.html").read_text()[:5000].lower()
    (tmp_path / "bad.csv").write_text("block,knob\nb0,heads\n")
    with pytest.raises(SensitivityError, match="cannot read"):
        SensitivityTable.from_csv(tmp_path / "bad.csv")
    with pytest.raises(SensitivityError, match="1 to"):
        calibration_batch(fashion_mnist["train"], 0, seed=0)


def test_additive_damage_sums_single_knob_rows(tiny, fashion_mnist):
    x, _ = calibration_batch(fashion_mnist["train"], 4, seed=0)
    table = measure_table(tiny, x, progress=False)
    shape = describe(tiny)
    one = single_knob_config(shape, "b0", "fc1.bits", 8)
    cfg = replace(one, blocks=(one.blocks[0], single_knob_config(shape, "b1", "heads", 1).blocks[1]))
    expected = table.damage("b0", "fc1.bits", 8) + table.damage("b1", "heads", 1)
    assert additive_damage(table, shape, cfg) == pytest.approx(expected)
    assert additive_damage(table, shape, cfg, {"bits": 2.0, "b1": 0.0}) == pytest.approx(
        2 * table.damage("b0", "fc1.bits", 8))
    with pytest.raises(ValueError, match="unknown damage weight"):
        sens.check_weights({"b7": 1.0}, table.blocks())


def test_merge_rows_equal_a_full_forward_and_price_a_schedule(fashion_mnist, tiny_mae, tmp_path):
    """Token merging rows (searched with ``tokens``): one per encoder block and merge fraction, measured
    like the other knobs; a merge schedule's additive damage is the sum of the rows its flow lands on."""
    from spaces.space import MERGE_FRACTIONS, merge_schedule

    torch.manual_seed(0)
    clf = create_model("mae_vit_test_p7_28", num_classes=10).eval()
    with torch.no_grad():
        clf.head.weight.normal_(0, 0.5)
    x, _ = calibration_batch(fashion_mnist["train"], 8, seed=3)
    table = measure_table(clf, x, seed=3, progress=False, kinds=("heads", sens.MERGE))
    shape = describe(clf)
    merge_rows = [r for r in table.rows if r.knob == sens.MERGE]
    assert {r.block for r in merge_rows} == {"b0", "b1"} and {r.level for r in merge_rows} == set(MERGE_FRACTIONS)
    for block in ("b0", "b1"):
        student = apply(clf, single_knob_config(shape, block, sens.MERGE, 0.25))
        assert [b.merge_r for b in student.blocks] == ([4, 0] if block == "b0" else [0, 4])
        with torch.no_grad():
            kl = F.kl_div(F.log_softmax(student(x), -1), F.log_softmax(clf(x), -1), reduction="batchmean",
                          log_target=True)
        assert table.damage(block, sens.MERGE, 0.25) == pytest.approx(float(kl), rel=1e-4, abs=1e-7)
        assert table.damage(block, sens.MERGE, 0.25) > 0
    ident = CompressionConfig.identity(shape)
    schedule = replace(ident, blocks=merge_schedule(ident.blocks, 0.25, 17))  # 4 of 16, then 3 of 12
    assert additive_damage(table, shape, schedule) == pytest.approx(
        table.damage("b0", sens.MERGE, 0.25) + table.damage("b1", sens.MERGE, 0.25))
    # the MAE's encoder merges its visible tokens only (1 + 4 here), the decoder never
    mae_table = measure_table(tiny_mae, x, seed=3, progress=False, kinds=(sens.MERGE,))
    assert {r.block for r in mae_table.rows} == {"b0", "b1"}
    assert all(r.knob == sens.MERGE for r in mae_table.rows)
    # tables without merge rows keep their cache key; with them, it is another table
    train = fashion_mnist["train"]
    plain = sens.table_key(clf, train, images=4, seed=1, data_name="fashion-mnist")
    assert sens.table_key(clf, train, images=4, seed=1, data_name="fashion-mnist", tokens=True) != plain
    with_tokens = build_table(clf, train, images=4, seed=1, cache_dir=tmp_path, progress=False, tokens=True)
    assert any(r.knob == sens.MERGE for r in with_tokens.rows)
    assert SensitivityTable.from_csv(tmp_path / f"{with_tokens.meta['key']}.csv") == with_tokens
