"""Structured pruning: real shapes, exactness where it must be exact, criteria, MAE decoder, work saved."""
from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mae.model import create_model, describe
from spaces.config import BlockConfig, CompressionConfig, ConfigError
from toolkit.prune import RemovedBranch, collect_taylor_scores, head_importance, prune_model, unit_importance
from toolkit.stats import count_macs

HEAD_DIM = 8  # mae_vit_test_p7_28 with num_heads=4: width 32 -> 4 heads of 8


def _model(kind: str = "classifier", **kw) -> nn.Module:
    """Test preset with 4 heads and perturbed weights (non-zero biases, non-trivial head)."""
    m = create_model("mae_vit_test_p7_28", kind, num_heads=4, **kw)
    with torch.no_grad():
        for p in m.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def _config(model: nn.Module, heads=None, units=None, dec_heads=None, dec_units=None, **kw) -> CompressionConfig:
    """Identity config of ``model`` with per-block heads / units replaced where given (lists)."""
    ident = CompressionConfig.identity(describe(model))

    def blocks(base, h, u):
        return tuple(BlockConfig(heads=h[i] if h else b.heads, mlp_hidden=u[i] if u else b.mlp_hidden)
                     for i, b in enumerate(base))

    return CompressionConfig(blocks=blocks(ident.blocks, heads, units),
                             decoder_blocks=blocks(ident.decoder_blocks, dec_heads, dec_units), **kw)


def _imgs(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28)


def _ce(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


def test_shapes_after_pruning_and_model_still_trains():
    m = _model()
    report = prune_model(m, _config(m, heads=[3, 1], units=[50, 7]))
    for blk, h, u in zip(m.blocks, (3, 1), (50, 7)):
        assert blk.attn.num_heads == h and blk.attn.attn_dim == h * HEAD_DIM and blk.attn.head_dim == HEAD_DIM
        assert (blk.attn.qkv.in_features, blk.attn.qkv.out_features) == (32, 3 * h * HEAD_DIM)
        assert (blk.attn.proj.in_features, blk.attn.proj.out_features) == (h * HEAD_DIM, 32)
        assert (blk.mlp.fc1.out_features, blk.mlp.fc2.in_features) == (u, u)
    assert [len(b.heads_kept) for b in report.blocks] == [3, 1]
    assert [len(b.units_kept) for b in report.blocks] == [50, 7]
    assert all(b.heads_kept == sorted(b.heads_kept) for b in report.blocks)
    assert report.params_after < report.params_before
    assert isinstance(report.to_dict()["blocks"][0]["heads_kept"][0], int)

    x = _imgs()
    assert m(x).shape == (4, 10)
    m.train()
    m(x).sum().backward()
    assert m.blocks[1].attn.qkv.weight.grad.shape == (3 * HEAD_DIM, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m.eval()(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_param_count_falls_monotonically():
    counts = []
    for h, u in [(4, 128), (3, 96), (2, 64), (1, 32), (0, 8), (0, 0)]:
        m = _model()
        counts.append(prune_model(m, _config(m, heads=[h, h], units=[u, u])).params_after)
        assert counts[-1] == sum(p.numel() for p in m.parameters())
    assert all(a > b for a, b in itertools.pairwise(counts)), counts


def test_keeping_everything_changes_nothing():
    m = _model()
    x = _imgs()
    before = m(x)
    report = prune_model(m, _config(m))
    assert torch.equal(m(x), before)
    assert report.params_before == report.params_after
    assert report.blocks[0].heads_kept == [0, 1, 2, 3] and report.blocks[0].units_kept == list(range(128))


@pytest.mark.parametrize("criterion", ["magnitude", "taylor"])
def test_pruning_heads_and_units_that_contribute_nothing_keeps_outputs(criterion):
    m = _model()
    dead_head, dead_units = 2, [5, 40, 77]
    with torch.no_grad():
        for blk in m.blocks:
            v_rows = slice(2 * 32 + dead_head * HEAD_DIM, 2 * 32 + (dead_head + 1) * HEAD_DIM)
            blk.attn.qkv.weight[v_rows] = 0  # v rows and proj columns zero: softmax still runs, adds 0
            blk.attn.qkv.bias[v_rows] = 0
            blk.attn.proj.weight[:, dead_head * HEAD_DIM:(dead_head + 1) * HEAD_DIM] = 0
            blk.mlp.fc2.weight[:, dead_units] = 0
            blk.mlp.fc1.weight[dead_units] = 0
    x, y = _imgs(8), torch.randint(0, 10, (8,))
    before = m(x)
    report = prune_model(m, _config(m, heads=[3, 3], units=[125, 125]), importance=criterion,
                         calib_batches=[(x, y)], loss_fn=_ce)
    for b in report.blocks:
        assert dead_head not in b.heads_kept and not set(dead_units) & set(b.units_kept)
    torch.testing.assert_close(m(x), before, atol=1e-5, rtol=1e-5)


def test_block_with_no_heads_and_no_units_is_the_identity():
    m = _model(drop_path=0.3)  # block 1 has a DropPath, which must not see the removed branch
    prune_model(m, _config(m, heads=[0, 0], units=[0, 0]))
    x = torch.randn(4, 17, 32)
    for blk in m.blocks:
        assert isinstance(blk.attn, RemovedBranch) and isinstance(blk.mlp, RemovedBranch)
        assert sum(p.numel() for p in blk.parameters()) == 0
        for train in (True, False):
            assert torch.equal(blk.train(train)(x), x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert blk(x.bfloat16()).dtype == torch.bfloat16
    m.train()
    assert m(_imgs()).shape == (4, 10)


def test_magnitude_keeps_the_largest_heads_and_units():
    m = _model()
    blk = m.blocks[0]
    with torch.no_grad():
        for h in (1, 3):  # scale q, k and v rows of heads 1 and 3
            for part in range(3):
                blk.attn.qkv.weight[part * 32 + h * HEAD_DIM: part * 32 + (h + 1) * HEAD_DIM] *= 4
        blk.mlp.fc1.weight[[9, 100]] *= 10
    assert head_importance(blk, "magnitude").shape == (4,)
    assert set(head_importance(blk, "magnitude").topk(2).indices.tolist()) == {1, 3}
    assert unit_importance(blk, "magnitude").shape == (128,)
    report = prune_model(m, _config(m, heads=[2, 4], units=[2, 128]))
    assert report.blocks[0].heads_kept == [1, 3] and report.blocks[0].units_kept == [9, 100]


def test_taylor_ranks_by_effect_on_the_loss_not_by_size():
    m = _model()
    blk = m.blocks[0]
    with torch.no_grad():  # head 0: huge q and k, but v rows and proj columns zero -> no effect on the loss
        blk.attn.qkv.weight[0:HEAD_DIM] *= 20
        blk.attn.qkv.weight[32:32 + HEAD_DIM] *= 20
        blk.attn.qkv.weight[64:64 + HEAD_DIM] = 0
        blk.attn.qkv.bias[64:64 + HEAD_DIM] = 0
        blk.attn.proj.weight[:, :HEAD_DIM] = 0
    batch = (_imgs(8), torch.randint(0, 10, (8,)))
    m.requires_grad_(False)  # a frozen model (e.g. a teacher copy) must work and stay frozen
    scores = collect_taylor_scores(m, [batch, batch], _ce)
    assert set(scores) == {"blocks.0.attn", "blocks.0.mlp", "blocks.1.attn", "blocks.1.mlp"}
    assert scores["blocks.0.attn"].shape == (4,) and scores["blocks.1.mlp"].shape == (128,)
    assert scores["blocks.0.attn"][0] == 0 and (scores["blocks.0.attn"][1:] > 0).all()
    assert not any(p.requires_grad or p.grad is not None for p in m.parameters())
    assert head_importance(blk, "magnitude").argmax() == 0

    # head_importance reads .grad after an ordinary backward: same numbers as one calibration batch
    m.requires_grad_(True)
    _ce(m, batch).backward()
    torch.testing.assert_close(head_importance(blk, "taylor"), scores["blocks.0.attn"] / 2)
    torch.testing.assert_close(unit_importance(blk, "taylor"), scores["blocks.0.mlp"] / 2)

    mag, tay = copy.deepcopy(m), copy.deepcopy(m)
    cfg = _config(m, heads=[1, 4])
    assert prune_model(mag, cfg).blocks[0].heads_kept == [0]
    kept = prune_model(tay, cfg, importance="taylor", calib_batches=[batch], loss_fn=_ce).blocks[0].heads_kept
    assert kept != [0] and len(kept) == 1


def test_taylor_without_gradients_or_data_is_refused():
    m = _model()
    with pytest.raises(ValueError, match="gradients"):
        head_importance(m.blocks[0], "taylor")
    with pytest.raises(ConfigError, match="calibration"):
        prune_model(m, _config(m, importance="taylor"))
    with pytest.raises(ValueError, match="unknown importance"):
        unit_importance(m.blocks[0], "random")


def test_config_that_does_not_fit_is_refused():
    m = _model()
    x = _imgs()
    before = m(x)
    with pytest.raises(ConfigError, match=r"blocks\[1\]"):
        prune_model(m, _config(m, heads=[1, 5]))
    assert torch.equal(m(x), before)  # refused before anything was cut
    with pytest.raises(ConfigError, match="the model has 2"):
        prune_model(m, CompressionConfig(blocks=(BlockConfig(heads=1, mlp_hidden=1),)))


def test_full_mae_prunes_encoder_and_decoder_blocks():
    m = _model("mae")
    x = _imgs()

    def run(model):
        return model(x, generator=torch.Generator().manual_seed(1))

    loss0, _, _ = run(m)
    prune_model(m, _config(m))  # keep everything, decoder included
    assert torch.equal(run(m)[0], loss0)

    def mae_loss(model, imgs):
        return model(imgs, generator=torch.Generator().manual_seed(2))[0]

    report = prune_model(m, _config(m, heads=[2, 1], units=[64, 0], dec_heads=[1], dec_units=[10]),
                         importance="taylor", calib_batches=[x], loss_fn=mae_loss)
    dec = m.decoder_blocks[0]
    assert dec.attn.num_heads == 1 and dec.attn.qkv.out_features == 3 * 8 and dec.mlp.fc1.out_features == 10
    assert isinstance(m.blocks[1].mlp, RemovedBranch)
    assert len(report.decoder_blocks) == 1 and len(report.decoder_blocks[0].heads_kept) == 1
    loss, pred, _ = run(m)
    assert pred.shape == (4, 16, 49) and torch.isfinite(loss)
    m.train()
    run(m)[0].backward()


def test_pruned_default_model_does_less_work():
    """Half the heads and units of the default model: about half the multiply-accumulates (counted, not
    timed: wall-clock speed belongs to the benchmarks), real smaller Linears, same output shape."""
    torch.manual_seed(0)
    m = create_model("mae_vit_tiny_p4_28").eval()
    pruned = copy.deepcopy(m)
    shape = describe(m)
    cfg = CompressionConfig(blocks=tuple(BlockConfig(heads=b.heads // 2, mlp_hidden=b.mlp_hidden // 2)
                                         for b in shape.blocks))
    prune_model(pruned, cfg)
    for blk, b in zip(pruned.blocks, cfg.blocks):
        assert blk.mlp.fc1.out_features == b.mlp_hidden and blk.attn.num_heads == b.heads
    full, small = count_macs(m), count_macs(pruned)
    assert 0 < small < 0.6 * full, (full, small)
    x = torch.randn(4, 1, 28, 28)
    with torch.inference_mode():
        out = pruned(x)
    assert out.shape == m(x).shape and torch.isfinite(out).all()
