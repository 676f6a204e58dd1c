"""Simulated quantization: per-Linear weight bits (32, 16, 8, 4) and optional int8 activations.

Conventions (chosen to equal ONNX Runtime's ``quantize_static`` so an exported model computes the
numbers this simulation scored; checked against onnxruntime 1.32 ``quant_utils``):

* Weights, 8 and 4 bits: per output channel (row of ``W: [out, in]``; axis 1 of an ONNX MatMul's
  ``[in, out]`` weight), symmetric, restricted range.
  ``qmax = 2^(b-1) - 1`` (127, 7); ``scale = max|w_row| / qmax`` in float32 (1.0 for an all-zero
  row); ``q = clamp(round_half_even(w / scale), -qmax, qmax)``; ``w_hat = q * scale``; zero point 0.
  For int8 this is ORT's ``QuantType.QInt8``, ``per_channel=True``, ``reduce_range=False``,
  ``WeightSymmetric`` (its default for signed types): range [-127, 127], scale = 2 absmax / 254,
  and it divides by the scale. Bit-exact against ``quantize_data`` on random weights.
  For 4 bits we keep the same restricted formula ([-7, 7], absmax / 7); note that ORT's own QInt4
  symmetric path would use [-8, 7] with scale 2 absmax / 15, so a 4-bit exporter writes our scales.
* fp16 weights: rounded through ``torch.float16`` (round to nearest even, as ORT's float16 converter).
* Activations (``act_bits == 8``): the input of every Linear with 8- or 4-bit weights (an integer
  matmul needs both operands integer; fp16/fp32 Linears keep float inputs), per tensor, asymmetric
  int8 [-128, 127], static ranges from a MinMax calibration (min of mins, max of maxes over batches).
  That is ``quantize_static``'s default (``activation_type=QInt8``, ``ActivationSymmetric=False``,
  ``CalibrationMethod.MinMax``). ``lo = min(min, 0)``, ``hi = max(max, 0)``, ``scale = (hi - lo) / 255``
  (float64, stored float32), ``zero_point = round(-128 - lo / scale)``. QUInt8 gives the same
  dequantized values (zero point shifted by 128), so the exporter may use either.
  With ``act_bits == 32``, Linears with 8-bit weights still see their input quantized *dynamically*,
  because that is what ORT's ``quantize_dynamic`` graph does (``DynamicQuantizeLinear``: uint8,
  asymmetric, range of the whole input tensor at each call, ``scale = (max(x, 0) - min(x, 0)) / 255``,
  ``zero_point = round(-min / scale)``). Deployment runs batch 1, so the range is taken per sample
  (:func:`fake_quant_act_dynamic`). 4-bit weights run as MatMulNBits with fp32 inputs: no input rounding.
  Bias stays float here; ORT stores it as int32 at ``input_scale * weight_scale`` (error at most half
  that step, far below the weights').

torchao 0.18 was checked and is not used for the rounding: ``IntxFakeQuantizeConfig`` has no
restricted range (int8 symmetric gives absmax / 127.5, not ORT's absmax / 127), and
``quant_primitives.quantize_affine`` multiplies by ``1 / scale`` instead of dividing, which differs
from ORT in ~2 of 10^6 weights. The ~15 lines below are bit-exact.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spaces.config import CompressionConfig
from toolkit.lowrank import LowRankLinear, linear_sites

INT_BITS = (8, 4)
FLOAT_BITS = (32, 16)
ACT_QMIN, ACT_QMAX = -128, 127


# ---- weights ---------------------------------------------------------------------------------------
def weight_qparams(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``w: [out, in]`` -> ``(q [out, in] int8, scale [out] float32)`` with ``w ~ q * scale[:, None]``."""
    if bits not in INT_BITS:
        raise ValueError(f"integer weight bits must be one of {INT_BITS}, got {bits}")
    qmax = 2 ** (bits - 1) - 1
    w32 = w.detach().float()
    scale = w32.abs().amax(dim=1, keepdim=True) / qmax
    # ORT replaces a scale below the smallest normal float by 1.0 (an all-zero row stays zero).
    scale = torch.where(scale < torch.finfo(torch.float32).tiny, torch.ones_like(scale), scale)
    q = torch.clamp(torch.round(w32 / scale), -qmax, qmax)  # division, not * (1/scale): as ORT
    return q.to(torch.int8), scale.squeeze(1)


def fake_quant_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """The values ``w: [out, in]`` takes at ``bits`` (32: unchanged), same dtype, no gradient path."""
    if bits == 32:
        return w.detach().clone()
    if bits == 16:
        return w.detach().to(torch.float16).to(w.dtype)
    q, scale = weight_qparams(w, bits)
    return (q.float() * scale[:, None]).to(w.dtype)


def _ste(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Forward ``x_hat``, backward identity to ``x`` (straight-through estimator)."""
    return x + (x_hat - x).detach()


# ---- activations -----------------------------------------------------------------------------------
def act_qparams(lo: float, hi: float) -> tuple[float, int]:
    """Observed range -> ``(scale, zero_point)`` of asymmetric int8, exactly as ORT's ``compute_scale_zp``."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale64 = (hi - lo) / (ACT_QMAX - ACT_QMIN)
    if float(np.float32(scale64)) < np.finfo(np.float32).tiny:
        return 1.0, 0
    return float(np.float32(scale64)), int(np.round(ACT_QMIN - lo / scale64))


def fake_quant_act(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """``x: [..., in]`` through QuantizeLinear/DequantizeLinear; gradient 1 inside the range, 0 outside."""
    q = torch.clamp(torch.round(x / scale) + zero_point, ACT_QMIN, ACT_QMAX)
    x_hat = (q - zero_point) * scale
    clipped = torch.clamp(x, (ACT_QMIN - zero_point) * scale, (ACT_QMAX - zero_point) * scale)
    return _ste(clipped, x_hat)


def fake_quant_act_dynamic(x: torch.Tensor) -> torch.Tensor:
    """``x: [N, ...]`` through ORT's DynamicQuantizeLinear/Dequantize with one range per sample (the
    range of a batch-1 call); straight-through gradient."""
    flat = x.detach().float().reshape(x.shape[0], -1)
    lo = flat.amin(dim=1).clamp(max=0.0)
    hi = flat.amax(dim=1).clamp(min=0.0)
    scale = (hi - lo) / 255.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zp = torch.clamp(torch.round(-lo / scale), 0, 255)
    shape = (-1,) + (1,) * (x.dim() - 1)
    scale, zp = scale.reshape(shape), zp.reshape(shape)
    q = torch.clamp(torch.round(x.float() / scale) + zp, 0, 255)
    return _ste(x, ((q - zp) * scale).to(x.dtype))


# ---- the module ------------------------------------------------------------------------------------
class FakeQuantLinear(nn.Linear):
    """A Linear whose forward uses fake-quantized weights (and inputs), trainable straight-through.

    Subclasses ``nn.Linear`` so parameter names (``weight``, ``bias``) and module names stay as they
    were: checkpoints, pruning and the exporter keep addressing ``blocks.0.attn.qkv``. With int8
    inputs the range lives in buffers ``act_min``, ``act_max`` and, once calibrated, ``act_scale``,
    ``act_zero_point`` (float32 scalars: what an exporter writes into its QuantizeLinear).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, weight_bits: int = 8,
                 act_bits: int = 32, device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        if weight_bits not in INT_BITS + FLOAT_BITS or act_bits not in (32, 8):
            raise ValueError(f"unsupported bits: weight {weight_bits}, activation {act_bits}")
        if act_bits == 8 and weight_bits not in INT_BITS:
            raise ValueError("int8 inputs need integer (8- or 4-bit) weights")
        self.weight_bits, self.act_bits = weight_bits, act_bits
        self.observing = False
        # A Python flag, not a tensor test, so forward has no data-dependent branch (tracing, export).
        self.calibrated = False
        if self.quantizes_input:  # only then: a baked model's state dict has the same keys as a QAT one
            for name, value in (("act_min", float("inf")), ("act_max", float("-inf")),
                                ("act_scale", float("nan")), ("act_zero_point", 0.0)):
                self.register_buffer(name, torch.tensor(value, device=device))
            self.register_load_state_dict_post_hook(FakeQuantLinear._sync_calibrated)

    @staticmethod
    def _sync_calibrated(module: FakeQuantLinear, _incompatible) -> None:
        module.calibrated = bool(torch.isfinite(module.act_scale))

    @classmethod
    def from_linear(cls, linear: nn.Linear, weight_bits: int, act_bits: int = 32) -> FakeQuantLinear:
        """Same shapes, weights and device as ``linear`` (weights stay float: they are trained)."""
        w = linear.weight
        m = cls(linear.in_features, linear.out_features, linear.bias is not None, weight_bits=weight_bits,
                act_bits=act_bits, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            m.weight.copy_(w)
            if linear.bias is not None:
                m.bias.copy_(linear.bias)
        m.train(linear.training)
        return m

    @property
    def quantizes_input(self) -> bool:
        return self.act_bits == 8

    @torch.no_grad()
    def freeze_act_range(self) -> None:
        """Turn the observed ``[act_min, act_max]`` into ``act_scale`` / ``act_zero_point``."""
        if not torch.isfinite(self.act_min):
            raise RuntimeError("no activations observed: run calibrate_activations_ with at least one batch")
        scale, zp = act_qparams(self.act_min.item(), self.act_max.item())
        self.act_scale.fill_(scale)
        self.act_zero_point.fill_(zp)
        self.calibrated = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [..., in]`` -> ``[..., out]``."""
        if self.quantizes_input:
            if self.observing:  # calibration sees float inputs, as ORT's calibrator does
                with torch.no_grad():
                    self.act_min.copy_(torch.minimum(self.act_min, x.min().float()))
                    self.act_max.copy_(torch.maximum(self.act_max, x.max().float()))
            elif not self.calibrated:
                raise RuntimeError("int8 inputs are not calibrated: call calibrate_activations_ first")
            else:
                x = fake_quant_act(x, self.act_scale.to(x.dtype), self.act_zero_point.to(x.dtype))
        elif self.weight_bits == 8:
            x = fake_quant_act_dynamic(x)
        w = _ste(self.weight, fake_quant_weight(self.weight, self.weight_bits))
        return F.linear(x, w, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", weight_bits={self.weight_bits}, act_bits={self.act_bits}"


@dataclass(frozen=True)
class QuantEntry:
    """One quantized Linear (plain data): name, weight bits, input bits, max |w_hat - w|."""

    module: str
    bits: int
    act_bits: int
    max_abs_error: float

    def to_dict(self) -> dict:
        return asdict(self)


# ---- whole-model passes ----------------------------------------------------------------------------
def prepare_fake_quant_(model: nn.Module, config: CompressionConfig) -> list[str]:
    """Swap each block Linear that ``config`` quantizes for a :class:`FakeQuantLinear` (QAT, in place).

    Low-rank factors (``<linear>.first`` / ``.second``) get the bits of the Linear they replaced.
    Linears left at 32 bits with float inputs, and those removed by pruning, stay as they are.
    Returns the names of the swapped modules.
    """
    swapped: list[str] = []
    for site in linear_sites(model, config):
        m, bits = site.module, site.block.weight_bits[site.key]
        act = config.act_bits if bits in INT_BITS else 32
        if m is None or (bits == 32 and act == 32):
            continue
        targets = ([(m, "first"), (m, "second")] if isinstance(m, LowRankLinear)
                   else [(site.parent, site.attr)])
        for parent, attr in targets:
            setattr(parent, attr, FakeQuantLinear.from_linear(getattr(parent, attr), bits, act))
            swapped.append(site.name if parent is site.parent else f"{site.name}.{attr}")
    return swapped


@torch.no_grad()
def bake_fake_quant_(model: nn.Module) -> list[QuantEntry]:
    """Write the quantized weight values into the model (in place) and report the error.

    A :class:`FakeQuantLinear` with float inputs becomes a plain ``nn.Linear`` holding ``w_hat``;
    one with int8 inputs (static, or dynamic for 8-bit weights) keeps its input quantizer (it is part
    of inference) and holds ``w_hat`` too
    (re-quantizing ``w_hat`` gives ``w_hat`` back, to float rounding). The forward is unchanged.
    """
    entries: list[QuantEntry] = []
    for name, m in list(model.named_modules()):
        if not isinstance(m, FakeQuantLinear):
            continue
        w_hat = fake_quant_weight(m.weight, m.weight_bits)
        entries.append(QuantEntry(name, m.weight_bits, m.act_bits, float((w_hat - m.weight).abs().max())))
        if m.quantizes_input or m.weight_bits == 8:  # its input rounding is part of inference
            m.weight.copy_(w_hat)
            continue
        plain = nn.Linear(m.in_features, m.out_features, m.bias is not None, device=w_hat.device, dtype=w_hat.dtype)
        plain.weight.copy_(w_hat)
        if m.bias is not None:
            plain.bias.copy_(m.bias)
        plain.weight.requires_grad_(m.weight.requires_grad)
        plain.train(m.training)
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, plain)
    return entries


def quantize_weights_(model: nn.Module, config: CompressionConfig) -> list[QuantEntry]:
    """Quantize the block Linears' weights as ``config`` says, baked into the model (in place).

    With ``config.act_bits == 8`` the integer Linears stay :class:`FakeQuantLinear` with an input
    quantizer that :func:`calibrate_activations_` must calibrate before the next forward.
    Run after pruning and low-rank.
    """
    prepare_fake_quant_(model, config)
    return bake_fake_quant_(model)


@torch.no_grad()
def calibrate_activations_(model: nn.Module, batches: Iterable[torch.Tensor | tuple | list]) -> None:
    """MinMax calibration of every int8 input: run ``model(x)`` on each batch (an input tensor, or a
    tuple/list whose first item is it), record min/max, then fix ``act_scale`` / ``act_zero_point``.

    Ranges are observed with float inputs and the weights as they stand (already quantized after
    :func:`quantize_weights_`), close to ORT's calibration on the float model. No-op without int8 inputs.
    """
    layers = [m for m in model.modules() if isinstance(m, FakeQuantLinear) and m.quantizes_input]
    if not layers:
        return
    was_training = model.training
    model.eval()
    for m in layers:
        m.act_min.fill_(float("inf"))
        m.act_max.fill_(float("-inf"))
        m.observing = True
    try:
        for batch in batches:
            model(batch[0] if isinstance(batch, (tuple, list)) else batch)
    finally:
        for m in layers:
            m.observing = False
        model.train(was_training)
    for m in layers:
        m.freeze_act_range()
