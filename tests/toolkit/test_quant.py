"""Simulated quantization: error against bits, ORT conventions, calibration, STE, baking."""
from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from mae.model import create_model, describe
from spaces.config import CompressionConfig
from spaces.shape import LINEARS
from toolkit.lowrank import apply_lowrank
from toolkit.quant import (
    FakeQuantLinear,
    act_qparams,
    bake_fake_quant_,
    calibrate_activations_,
    fake_quant_act,
    fake_quant_weight,
    prepare_fake_quant_,
    quantize_weights_,
    weight_qparams,
)


def _config(model: nn.Module, bits: int | dict[int, dict[str, int]], act_bits: int = 32,
            ranks: dict[int, dict[str, int]] | None = None) -> CompressionConfig:
    """Identity config with weight bits (one number for all, or ``{block: {linear: bits}}``) and ranks."""
    base = CompressionConfig.identity(describe(model))
    blocks = []
    for i, b in enumerate(base.blocks):
        wb = {k: bits if isinstance(bits, int) else bits.get(i, {}).get(k, 32) for k in LINEARS}
        rk = {k: (ranks or {}).get(i, {}).get(k) for k in LINEARS}
        blocks.append(replace(b, weight_bits=wb, ranks=rk))
    return replace(base, blocks=tuple(blocks), act_bits=act_bits)


def test_weight_error_shrinks_with_bits():
    lin = nn.Linear(64, 48)
    x = torch.randn(32, 64)
    y = lin(x)
    stats = []
    for bits in (4, 8, 16, 32):
        w_hat = fake_quant_weight(lin.weight, bits)
        err = (w_hat - lin.weight).abs()
        mse = (nn.functional.linear(x, w_hat, lin.bias) - y).pow(2).mean().item()
        stats.append((err.max().item(), err.mean().item(), mse))
    for a, b in itertools.pairwise(stats):
        assert all(sa > sb for sa, sb in zip(a, b)), stats
    assert stats[-1] == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("bits", [8, 4])
def test_int_weights_are_integers_times_the_row_scale(bits):
    w = torch.randn(16, 40) * 0.1
    w[3] = 0.0  # an all-zero row stays zero (ORT uses scale 1 there)
    q, scale = weight_qparams(w, bits)
    qmax = 2 ** (bits - 1) - 1
    assert q.dtype == torch.int8 and scale.shape == (16,)
    assert int(q.abs().max()) == qmax and int(q.min()) >= -qmax
    assert (q.abs().amax(dim=1)[torch.arange(16) != 3] == qmax).all()  # each row's largest weight hits qmax
    torch.testing.assert_close(scale[0], w[0].abs().max() / qmax)
    w_hat = fake_quant_weight(w, bits)
    ratio = w_hat / scale[:, None]
    torch.testing.assert_close(ratio, ratio.round(), atol=1e-4, rtol=0)
    assert (w_hat[3] == 0).all()


def test_int8_weights_match_onnxruntime_per_channel_symmetric():
    quant_utils = pytest.importorskip("onnxruntime.quantization.quant_utils")
    from onnx import TensorProto

    w = torch.randn(64, 48) * 0.05
    q, scale = weight_qparams(w, 8)
    for row in range(w.shape[0]):
        zp, s, q_ort = quant_utils.quantize_data(w[row].numpy(), TensorProto.INT8, True)
        assert int(zp) == 0 and np.float32(s) == scale[row].item()
        np.testing.assert_array_equal(q_ort.astype(np.int8), q[row].numpy())


def test_act_qparams_match_onnxruntime_asymmetric_int8():
    quant_utils = pytest.importorskip("onnxruntime.quantization.quant_utils")
    from onnx import TensorProto

    qmin, qmax = quant_utils.get_qmin_qmax_for_qType(TensorProto.INT8)
    x = torch.randn(4, 50) * 3 + 0.5
    for lo, hi in ((-2.7, 5.1), (0.3, 4.0), (-1.0, -0.2), (0.0, 0.0)):
        zp, s = quant_utils.compute_scale_zp(np.array(lo, np.float32), np.array(hi, np.float32), qmin, qmax)
        scale, zero_point = act_qparams(np.float32(lo), np.float32(hi))
        assert (scale, zero_point) == (float(s), int(zp))
        q_ort = quant_utils.quantize_nparray(TensorProto.INT8, x.numpy(), s, zp).astype(np.float32)
        ours = fake_quant_act(x, torch.tensor(scale), torch.tensor(float(zero_point)))
        np.testing.assert_allclose(ours.numpy(), (q_ort - float(zp)) * np.float32(s), rtol=0, atol=1e-6)


def test_fp16_weights_are_half_representable():
    w = torch.randn(8, 8)
    w_hat = fake_quant_weight(w, 16)
    assert torch.equal(w_hat, w_hat.half().float()) and not torch.equal(w_hat, w)


def test_fake_quant_linear_gradient_is_straight_through():
    lin = nn.Linear(12, 6)
    fq = FakeQuantLinear.from_linear(lin, weight_bits=4)
    x = torch.randn(5, 12, requires_grad=True)
    fq(x).pow(2).sum().backward()
    # reference: a plain Linear holding the quantized weights; STE gives the weight the same gradient
    ref = nn.Linear(12, 6)
    with torch.no_grad():
        ref.weight.copy_(fake_quant_weight(lin.weight, 4))
        ref.bias.copy_(lin.bias)
    x_ref = x.detach().clone().requires_grad_(True)
    ref(x_ref).pow(2).sum().backward()
    assert fq.weight.grad is not None and fq.weight.grad.abs().sum() > 0
    torch.testing.assert_close(fq.weight.grad, ref.weight.grad)
    torch.testing.assert_close(fq.bias.grad, ref.bias.grad)
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_activation_ste_passes_gradient_inside_range_only():
    x = torch.tensor([-3.0, -0.5, 0.2, 0.9, 2.5], requires_grad=True)
    scale, zp = act_qparams(-1.0, 1.0)
    fake_quant_act(x, torch.tensor(scale), torch.tensor(float(zp))).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_bake_keeps_forward_and_gives_plain_linears():
    model = create_model("mae_vit_test_p7_28").eval()
    x = torch.randn(3, 1, 28, 28)
    names = prepare_fake_quant_(model, _config(model, {0: {"qkv": 4, "fc1": 8}, 1: {"fc2": 16}}))
    assert names == ["blocks.0.attn.qkv", "blocks.0.mlp.fc1", "blocks.1.mlp.fc2"]
    y_fq = model(x)
    entries = bake_fake_quant_(model)
    assert [(e.module, e.bits) for e in entries] == [("blocks.0.attn.qkv", 4), ("blocks.0.mlp.fc1", 8),
                                                     ("blocks.1.mlp.fc2", 16)]
    assert all(e.max_abs_error > 0 for e in entries)
    # 8-bit weights keep their dynamic input quantizer (ORT's DynamicQuantizeLinear); 4 and 16 do not
    assert [n for n, m in model.named_modules() if isinstance(m, FakeQuantLinear)] == ["blocks.0.mlp.fc1"]
    assert type(model.blocks[0].attn.qkv) is nn.Linear
    torch.testing.assert_close(model(x), y_fq, atol=1e-6, rtol=0)


def test_quantize_weights_error_shrinks_with_bits_on_a_model():
    ref = create_model("mae_vit_test_p7_28").eval()
    x = torch.randn(4, 1, 28, 28)
    y = ref(x)
    mses = []
    for bits in (4, 8, 16, 32):
        model = create_model("mae_vit_test_p7_28").eval()
        model.load_state_dict(ref.state_dict())
        entries = quantize_weights_(model, _config(model, bits))
        assert len(entries) == (0 if bits == 32 else 8)
        mses.append((model(x) - y).pow(2).mean().item())
    assert mses[0] > mses[1] > mses[2] > mses[3] == 0.0


def test_lowrank_factors_take_the_bits_of_their_linear():
    model = create_model("mae_vit_test_p7_28").eval()
    config = _config(model, {0: {"qkv": 4}}, ranks={0: {"qkv": 8}})
    apply_lowrank(model, config)
    entries = quantize_weights_(model, config)
    assert [(e.module, e.bits) for e in entries] == [("blocks.0.attn.qkv.first", 4), ("blocks.0.attn.qkv.second", 4)]
    assert type(model.blocks[0].attn.qkv.first) is nn.Linear


def test_int8_activation_calibration_stays_close_to_float():
    ref = create_model("mae_vit_test_p7_28").eval()
    model = create_model("mae_vit_test_p7_28").eval()
    model.load_state_dict(ref.state_dict())
    config = _config(model, {0: {k: 8 for k in LINEARS}, 1: {"qkv": 4, "proj": 16}}, act_bits=8)
    quantize_weights_(model, config)
    act_layers = {n for n, m in model.named_modules() if isinstance(m, FakeQuantLinear)}
    # 16-bit proj keeps float inputs (no integer kernel), so it was baked to a plain Linear
    assert act_layers == {"blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2",
                          "blocks.1.attn.qkv"}
    x = torch.randn(4, 1, 28, 28)
    with pytest.raises(RuntimeError, match="calibrate_activations_"):
        model(x)
    calibrate_activations_(model, [(torch.randn(4, 1, 28, 28), None), torch.randn(4, 1, 28, 28), x])
    for name in act_layers:
        m = model.get_submodule(name)
        assert m.act_min < m.act_max and m.act_scale > 0
        assert (m.act_scale.item(), int(m.act_zero_point)) == act_qparams(m.act_min.item(), m.act_max.item())
    y, y_ref = model(x), ref(x)
    rel = (y - y_ref).norm() / y_ref.norm()
    assert 0 < rel < 0.05, rel
    # the input quantizer survives baking and the forward does not change
    entries = bake_fake_quant_(model)
    assert {e.module for e in entries} == act_layers and all(e.act_bits == 8 for e in entries)
    torch.testing.assert_close(model(x), y, atol=1e-5, rtol=0)
    # the calibrated ranges travel in the state dict
    state = model.state_dict()
    assert "blocks.0.attn.qkv.act_scale" in state
    fresh = create_model("mae_vit_test_p7_28").eval()
    prepare_fake_quant_(fresh, config)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh(x), model(x), atol=1e-5, rtol=0)


def test_calibration_without_batches_raises_and_noop_without_int8_inputs():
    model = create_model("mae_vit_test_p7_28").eval()
    calibrate_activations_(model, [torch.randn(2, 1, 28, 28)])  # nothing to calibrate: no error
    quantize_weights_(model, _config(model, 8, act_bits=8))
    with pytest.raises(RuntimeError, match="no activations observed"):
        calibrate_activations_(model, [])
