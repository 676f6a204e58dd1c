"""Fewer heads, units, rank or bits never predict slower; predictions are deterministic and add up."""
from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from evaluators.latency.predict.predictor import LatencyPredictor
from evaluators.latency.predict.profile import profile_names
from spaces.config import BlockConfig, CompressionConfig, ConfigError
from spaces.shape import LINEARS, BlockShape, ModelShape

SHAPE = ModelShape(name="tiny", img_size=28, patch_size=4, in_chans=1, embed_dim=192, num_classes=10,
                   blocks=tuple(BlockShape(192, 3, 64, 768) for _ in range(2)), decoder_dim=128,
                   decoder_blocks=(BlockShape(128, 4, 32, 512),))
PREDICTORS = [LatencyPredictor(n) for n in profile_names()]
assert PREDICTORS, "no latency profiles found: the property tests below would check nothing"
BITS = (32, 16, 8, 4)


@st.composite
def block_configs(draw, s: BlockShape):
    heads = draw(st.integers(0, s.heads))
    units = draw(st.integers(0, s.mlp_hidden))
    dims = s.linear_dims(heads, units)
    ranks = {k: draw(st.one_of(st.none(), st.integers(1, max(1, min(dims[k]))))) if min(dims[k]) > 0 else None
             for k in LINEARS}
    bits = {k: draw(st.sampled_from(BITS)) for k in LINEARS}
    return BlockConfig(heads=heads, mlp_hidden=units, ranks=ranks, weight_bits=bits)


@st.composite
def configs(draw):
    return CompressionConfig(blocks=tuple(draw(block_configs(s)) for s in SHAPE.blocks),
                             decoder_blocks=tuple(draw(block_configs(s)) for s in SHAPE.decoder_blocks),
                             act_bits=draw(st.sampled_from((32, 8))))


def _reduce(cfg: CompressionConfig, which: str, where: int, linear: str) -> CompressionConfig | None:
    """``cfg`` with one knob of one block made smaller, or None when it is already at its floor."""
    blocks = list(cfg.blocks + cfg.decoder_blocks)
    b = blocks[where]
    s = (SHAPE.blocks + SHAPE.decoder_blocks)[where]
    if which == "heads" and b.heads > 0:
        new = BlockConfig(heads=b.heads - 1, mlp_hidden=b.mlp_hidden, ranks=b.ranks, weight_bits=b.weight_bits)
    elif which == "units" and b.mlp_hidden > 0:
        new = BlockConfig(heads=b.heads, mlp_hidden=b.mlp_hidden - 1, ranks=b.ranks, weight_bits=b.weight_bits)
    elif which == "rank" and linear in b.live_linears():
        full = min(s.linear_dims(b.heads, b.mlp_hidden)[linear])
        r = b.ranks[linear] if b.ranks[linear] is not None else full
        if r <= 1:
            return None
        new = BlockConfig(heads=b.heads, mlp_hidden=b.mlp_hidden, ranks={**b.ranks, linear: r - 1},
                          weight_bits=b.weight_bits)
    elif which == "bits" and b.weight_bits[linear] > 4:
        lower = BITS[BITS.index(b.weight_bits[linear]) + 1]
        new = BlockConfig(heads=b.heads, mlp_hidden=b.mlp_hidden, ranks=b.ranks,
                          weight_bits={**b.weight_bits, linear: lower})
    elif which == "act_bits" and cfg.act_bits == 32:
        return CompressionConfig(blocks=cfg.blocks, act_bits=8, decoder_blocks=cfg.decoder_blocks)
    else:
        return None
    blocks[where] = new
    n = len(cfg.blocks)
    return CompressionConfig(blocks=tuple(blocks[:n]), act_bits=cfg.act_bits, decoder_blocks=tuple(blocks[n:]))


def _fits(cfg: CompressionConfig) -> bool:
    try:
        cfg.validate_for(SHAPE)
        return True
    except ConfigError:
        return False


@settings(max_examples=300, deadline=None, derandomize=True)  # derandomize: the same examples every run
@given(cfg=configs(), which=st.sampled_from(("heads", "units", "rank", "bits", "act_bits")),
       where=st.integers(0, 2), linear=st.sampled_from(LINEARS), task=st.sampled_from(("classify", "reconstruct")))
def test_fewer_heads_units_rank_or_bits_never_predict_slower(cfg, which, where, linear, task):
    cfg.validate_for(SHAPE)  # the strategy only draws configs that fit: a failure here is a bug, not a skip
    smaller = _reduce(cfg, which, where, linear)
    assume(smaller is not None)  # that knob is already at its floor
    assume(_fits(smaller))  # e.g. fewer heads under a rank that no longer fits the pruned Linear
    assert smaller != cfg
    for p in PREDICTORS:
        before, after = p.predict_ms(SHAPE, cfg, task=task), p.predict_ms(SHAPE, smaller, task=task)
        assert after <= before * (1 + 1e-12), (p.device.name, which, where, linear, before, after)


def test_breakdown_sums_to_the_prediction():
    p = PREDICTORS[0]
    cfg = CompressionConfig(blocks=(BlockConfig(heads=2, mlp_hidden=300,
                                                ranks={"qkv": 16, "proj": None, "fc1": None, "fc2": 8},
                                                weight_bits={"qkv": 8, "proj": 4, "fc1": 16, "fc2": 32}),
                                    BlockConfig(heads=0, mlp_hidden=768)),
                            act_bits=8)
    rows = p.breakdown_ms(SHAPE, cfg, task="classify")
    assert sum(r.ms for r in rows) + p.call_ms == pytest.approx(p.predict_ms(SHAPE, cfg, task="classify"))
    assert {r.name for r in rows} >= {"blocks.0.attn.qkv.first", "blocks.0.attn.qkv.second", "head"}
    assert not any(r.name.startswith("blocks.1.attn") for r in rows)  # 0 heads: the branch is gone


def test_a_prediction_is_deterministic_and_positive():
    """How fast a prediction is belongs to the benchmark (benchmarks/latency_predict_time.py, <= 1 ms);
    here only what does not depend on the machine's load: same input, same finite positive answer."""
    cfg = CompressionConfig.identity(SHAPE)
    for p in PREDICTORS:
        for task in ("classify", "reconstruct"):
            first = p.predict_ms(SHAPE, cfg, task=task)
            assert math.isfinite(first) and first > 0 and first == p.predict_ms(SHAPE, cfg, task=task), (p.device.name, task)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(cfg=configs(), task=st.sampled_from(("classify", "reconstruct")))
def test_the_deployable_config_is_what_was_priced(cfg, task):
    """Exporting ``deployable_config`` gives exactly the predicted kernels: same prediction, no envelope
    left to apply, never less precise than the config asked for."""
    cfg.validate_for(SHAPE)  # the strategy only draws configs that fit
    for p in PREDICTORS[:4]:
        dep = p.deployable_config(SHAPE, cfg, task=task)
        dep.validate_for(SHAPE)
        assert p.predict_ms(SHAPE, dep, task=task) == pytest.approx(p.predict_ms(SHAPE, cfg, task=task), rel=1e-12)
        assert all(r.kernel == r.dtype for r in p.breakdown_ms(SHAPE, dep, task=task))
        assert dep.act_bits >= cfg.act_bits
        for a, b in zip(dep.blocks + dep.decoder_blocks, cfg.blocks + cfg.decoder_blocks):
            assert all(a.weight_bits[k] >= b.weight_bits[k] for k in LINEARS)
            assert all(a.ranks[k] in (None, b.ranks[k]) for k in LINEARS)


def test_a_weight_footprint_adds_the_bytes_beyond_the_cache_and_keeps_fewer_bits_cheaper():
    from dataclasses import replace as dc_replace

    from evaluators.latency.predict.cost import footprint_ms
    from evaluators.latency.predict.ops import decompose
    from evaluators.latency.predict.profile import load_profile

    base = load_profile(None)
    fp = {"cache_bytes": 2e6, "ns_per_byte": 0.5}
    with_fp = LatencyPredictor(dc_replace(base, overhead={**base.overhead, "footprint": fp}))
    plain = LatencyPredictor(base)
    ident = CompressionConfig.identity(SHAPE)
    weights = sum(4 * op.k * op.n for op in decompose(SHAPE, ident, task="classify") if op.kind in ("linear", "conv"))
    extra = with_fp.predict_ms(SHAPE, ident, task="classify") - plain.predict_ms(SHAPE, ident, task="classify")
    assert extra == pytest.approx(footprint_ms(weights, fp), rel=1e-9) and extra > 0
    rows = with_fp.breakdown_ms(SHAPE, ident, task="classify")
    assert rows[-1].kind == "footprint" and sum(r.ms for r in rows) + with_fp.call_ms == pytest.approx(
        with_fp.predict_ms(SHAPE, ident, task="classify"))
    int8 = CompressionConfig.from_dict({**ident.to_dict(), "blocks": [
        {**b.to_dict(), "weight_bits": {k: 8 for k in LINEARS}} for b in ident.blocks]})
    assert with_fp.predict_ms(SHAPE, int8, task="classify") <= with_fp.predict_ms(SHAPE, ident, task="classify")
