"""Low-rank factorisation: exactness at full rank, energy, skip rules, in-place replacement."""
from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch
from torch import nn

from mae.model import create_model, describe
from spaces.config import CompressionConfig
from spaces.shape import LINEARS
from toolkit.lowrank import LowRankLinear, apply_lowrank, factorize, saves_compute


def _config(model: nn.Module, ranks: dict[int, dict[str, int]], dec_ranks: dict[int, dict[str, int]] | None = None,
            heads: dict[int, int] | None = None) -> CompressionConfig:
    """Identity config of ``model`` with ``ranks[block][linear]`` (and decoder ranks / kept heads) set."""
    base = CompressionConfig.identity(describe(model))

    def edit(blocks, per_block, kept_heads=None):
        out = []
        for i, b in enumerate(blocks):
            r = {k: (per_block or {}).get(i, {}).get(k) for k in LINEARS}
            out.append(replace(b, ranks=r, heads=(kept_heads or {}).get(i, b.heads)))
        return tuple(out)

    return replace(base, blocks=edit(base.blocks, ranks, heads),
                   decoder_blocks=edit(base.decoder_blocks, dec_ranks) if base.decoder_blocks else ())


def test_full_rank_reproduces_layer():
    lin = nn.Linear(24, 16)
    lr, energy = factorize(lin, 16)
    x = torch.randn(5, 24)
    assert isinstance(lr, LowRankLinear) and (lr.in_features, lr.out_features, lr.rank) == (24, 16, 16)
    assert lr.first.bias is None and lr.first.weight.shape == (16, 24) and lr.second.weight.shape == (16, 16)
    torch.testing.assert_close(lr(x), lin(x), atol=1e-5, rtol=0)
    assert energy == pytest.approx(1.0, abs=1e-9)


def test_retained_energy_increases_with_rank():
    lin = nn.Linear(20, 12)
    energies = [factorize(lin, r)[1] for r in range(1, 13)]
    assert all(0 < e <= 1 for e in energies)
    assert all(a < b for a, b in itertools.pairwise(energies))
    assert energies[-1] == pytest.approx(1.0)
    # and the reconstruction error falls as the rank grows
    x = torch.randn(8, 20)
    errs = [(factorize(lin, r)[0](x) - lin(x)).pow(2).mean().item() for r in (2, 6, 12)]
    assert errs[0] > errs[1] > errs[2]


def test_factorize_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank 9"):
        factorize(nn.Linear(8, 16), 9)


def test_saves_compute():
    assert saves_compute(32, 96, 8)          # 8 * 128 = 1024 < 3072
    assert not saves_compute(32, 32, 16)     # 16 * 64 = 1024, not below 1024
    assert not saves_compute(128, 32, 30)    # 30 * 160 = 4800 > 4096


def test_apply_lowrank_replaces_modules_and_keeps_shapes():
    model = create_model("mae_vit_test_p7_28").eval()
    x = torch.randn(3, 1, 28, 28)
    ranks = {0: {"qkv": 8, "proj": 8, "fc1": 8, "fc2": 8}, 1: {"fc1": 4}}
    entries = apply_lowrank(model, _config(model, ranks))
    assert [e.module for e in entries] == ["blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc1",
                                           "blocks.0.mlp.fc2", "blocks.1.mlp.fc1"]
    assert all(e.applied and 0 < e.retained_energy <= 1 for e in entries)
    assert isinstance(model.blocks[0].attn.qkv, LowRankLinear) and model.blocks[0].attn.qkv.rank == 8
    assert isinstance(model.blocks[1].mlp.fc1, LowRankLinear)
    assert type(model.blocks[1].mlp.fc2) is nn.Linear
    assert model(x).shape == (3, 10)
    assert entries[0].to_dict()["module"] == "blocks.0.attn.qkv"


def test_full_mae_decoder_blocks():
    model = create_model("mae_vit_test_p7_28", kind="mae").eval()
    entries = apply_lowrank(model, _config(model, {0: {"fc1": 4}}, dec_ranks={0: {"fc1": 4, "qkv": 4}}))
    assert [e.module for e in entries] == ["blocks.0.mlp.fc1", "decoder_blocks.0.attn.qkv",
                                           "decoder_blocks.0.mlp.fc1"]
    assert isinstance(model.decoder_blocks[0].mlp.fc1, LowRankLinear)
    loss, pred, _mask = model(torch.randn(2, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    assert pred.shape == (2, 16, 49) and torch.isfinite(loss)


def test_rank_that_does_not_save_compute_is_skipped():
    model = create_model("mae_vit_test_p7_28")
    entries = apply_lowrank(model, _config(model, {0: {"fc2": 30, "proj": 16}}))
    assert [e.applied for e in entries] == [False, False]
    assert all("does not save compute" in e.reason for e in entries)
    assert type(model.blocks[0].mlp.fc2) is nn.Linear and type(model.blocks[0].attn.proj) is nn.Linear


def test_rank_above_live_linear_raises():
    model = create_model("mae_vit_test_p7_28")
    with pytest.raises(ValueError, match=r"blocks\.0\.attn\.qkv: rank 33 is above min\(in, out\) = 32"):
        apply_lowrank(model, _config(model, {0: {"qkv": 33}}))


def test_pruned_linear_is_skipped():
    model = create_model("mae_vit_test_p7_28")
    entries = apply_lowrank(model, _config(model, {0: {"qkv": 4, "fc1": 4}}, heads={0: 0}))
    assert (entries[0].module, entries[0].applied, entries[0].reason) == ("blocks.0.attn.qkv", False,
                                                                          "removed by pruning")
    assert entries[1].applied
    assert type(model.blocks[0].attn.qkv) is nn.Linear
    assert not apply_lowrank(model, _config(model, {}))  # no ranks: nothing to do
