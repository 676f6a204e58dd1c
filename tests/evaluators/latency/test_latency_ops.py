"""The decomposition counts the MACs torch executes, for plain, pruned, low-rank and MAE models."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from evaluators.latency.predict.ops import decompose, saves_compute, total_macs
from mae.model import create_model, describe
from spaces.config import BlockConfig, CompressionConfig, ConfigError
from toolkit.lowrank import apply_lowrank
from toolkit.lowrank import saves_compute as toolkit_saves_compute
from toolkit.prune import prune_model


def _torch_macs(model: torch.nn.Module, **forward_kw) -> float:
    """FlopCounterMode / 2 with timm's fused SDPA switched off: torch's counter has no formula for the
    CPU flash-attention kernel, so the explicit ``q @ k^T`` / ``attn @ v`` matmuls are what it can see."""
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    x = torch.randn(1, model.arch.in_chans, model.arch.img_size, model.arch.img_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(x, **forward_kw)
    return counter.get_total_flops() / 2


@pytest.mark.parametrize("preset", ["mae_vit_tiny_p4_28", "mae_vit_test_p7_28"])
def test_classifier_macs_match_flop_counter(preset):
    model = create_model(preset)
    assert total_macs(decompose(describe(model))) == pytest.approx(_torch_macs(model), rel=0.01)


def test_mae_reconstruction_macs_match_flop_counter():
    model = create_model("mae_vit_tiny_p4_28", kind="mae")
    ops = decompose(describe(model), task="reconstruct", mask_ratio=0.75)
    assert total_macs(ops) == pytest.approx(_torch_macs(model, mask_ratio=0.75), rel=0.01)


def _compressed_config(shape) -> CompressionConfig:
    """Heads and units pruned, a removed attention and a removed MLP, ranks that do and do not save
    compute (the toolkit skips the latter), mixed bits."""
    def block(i, s):
        heads = [2, 0, 3, 1, 2, 3][i]
        units = [384, 768, 0, 96, 768, 192][i]
        ranks = {"qkv": 32 if i % 2 == 0 else None, "proj": None, "fc1": 24 if i == 3 else None,
                 "fc2": 150 if i == 5 else None}  # block 5: fc2 is 192 -> 192, 150 x 384 > 192^2: kept dense
        bits = {"qkv": 8, "proj": 32, "fc1": 4, "fc2": 16}
        return BlockConfig(heads=heads, mlp_hidden=units, ranks=ranks, weight_bits=bits)
    return CompressionConfig(blocks=tuple(block(i, s) for i, s in enumerate(shape.blocks)), act_bits=8)


def test_pruned_low_rank_macs_match_flop_counter():
    model = create_model("mae_vit_tiny_p4_28")
    shape = describe(model)
    cfg = _compressed_config(shape)
    prune_model(model, cfg, importance="magnitude")
    entries = apply_lowrank(model, cfg)
    assert any(e.applied for e in entries) and any(not e.applied for e in entries)
    assert total_macs(decompose(shape, cfg)) == pytest.approx(_torch_macs(model), rel=0.01)


def test_low_rank_rule_is_the_toolkits():
    for k, n, r in [(192, 576, 32), (192, 192, 96), (192, 192, 95), (16, 10, 6), (768, 3072, 614), (8, 8, 4)]:
        assert saves_compute(k, n, r) == toolkit_saves_compute(k, n, r)


def test_a_config_that_does_not_fit_raises_config_error():
    shape = describe(create_model("mae_vit_test_p7_28"))
    bad = CompressionConfig(blocks=(BlockConfig(heads=5, mlp_hidden=10),) * len(shape.blocks))
    with pytest.raises(ConfigError, match="heads"):
        decompose(shape, bad)
    with pytest.raises(ConfigError, match="no decoder"):
        decompose(shape, task="reconstruct")


def test_mae_encoder_sees_visible_tokens_and_decoder_all():
    shape = describe(create_model("mae_vit_tiny_p4_28", kind="mae"))
    ops = {op.name: op for op in decompose(shape, mask_ratio=0.75)}
    assert ops["blocks.0.attn.core"].kv == 1 + 12      # int(49 * 0.25) visible + class token
    assert ops["decoder_blocks.0.attn.core"].kv == 1 + 49
    assert ops["decoder_pred"].m == 50


def test_merging_macs_match_flop_counter_and_tokens_shrink():
    """Token merging: the decomposition's MACs (fewer tokens after each merge, the matching's scores)
    are what torch executes."""
    from dataclasses import replace

    from toolkit.tokens import apply_token_merging

    model = create_model("mae_vit_tiny_p4_28")
    shape = describe(model)
    ident = CompressionConfig.identity(shape)
    cfg = replace(ident, blocks=tuple(replace(b, merge_tokens=r) for b, r in zip(ident.blocks, (6, 6, 4, 4, 2, 0))))
    apply_token_merging(model, cfg)
    ops = decompose(shape, cfg)
    assert total_macs(ops) == pytest.approx(_torch_macs(model), rel=0.01)
    assert total_macs(ops) < total_macs(decompose(shape))
    fc1_rows = [op.m for op in ops if op.name.endswith("mlp.fc1")]
    assert fc1_rows == [44, 38, 34, 30, 28, 28]  # 50 tokens, minus what each block merged before its MLP
    assert [op.kv for op in ops if op.kind == "merge"] == [50, 44, 38, 34, 30]
