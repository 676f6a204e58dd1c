"""The per-operator cost model: what a profile's numbers multiply.

    t_op [ms] = op_us[kind/dtype] * 1e-3 + sum_f core[kind/dtype][f] * feature_f(op) * 1e-6
    t_model   = call_us * 1e-3 + sum over ops of t_op + footprint
    footprint = ns_per_byte * max(0, weight bytes per call - cache_bytes) * 1e-6   (optional, host profiles)

Features (all counts, so every coefficient is a time per unit and must be >= 0):

* ``linear`` / ``conv``: ``ns_per_mac`` x m k n (compute), ``ns_per_weight`` x k n (streaming the
  weight matrix once per call: memory traffic and packing), ``ns_per_act`` x m (k + n) (reading
  inputs, writing outputs, quantizing activations for integer kernels);
* ``attention``: ``ns_per_mac`` x 2 m kv h d (``q k^T`` and ``attn v``), ``ns_per_score`` x h m kv
  (softmax over the scores), ``ns_per_act`` x 4 m h d (split q, k, v, merge heads);
* ``merge`` (token merging, ``mae.tome``): ``ns_per_mac`` x the bipartite score MACs, ``ns_per_elem``
  x m n (the token values weighted, scatter-added and divided);
* elementwise kinds: ``ns_per_elem`` x elements.

``footprint`` (a profile's ``overhead["footprint"]``, fitted by ``maec calibrate`` from chains of blocks at
several depths): the operator rows stream a fixed span of weights that stays in cache between calls; a
whole model whose weights per call (:func:`weight_bytes`, summed) exceed the effective cache pays per byte
beyond it, which no single operator row can show. Shipped ARM profiles have none: their fits are on whole
models past their small caches, so the cost is in their per-operator terms.

With non-negative coefficients every feature grows with heads, units, rank and tokens, so fewer of
them never predict slower. Bits are made monotone by the precision envelope (:func:`op_cost_ms`).

Linear dtypes follow the export path of ``toolkit.onnx_quant``: ``fp32``; ``fp16`` (fp16 weights);
``w8a32`` (dynamic int8: activations quantized per call); ``w8a8`` (static int8 QDQ); ``w4a32``
(MatMulNBits); ``w4a8`` (MatMulNBits behind an int8 Q/DQ pair).
"""
from __future__ import annotations

from evaluators.latency.predict.ops import ELEMENTWISE_KINDS, LINEAR_KINDS, Op

FEATURES: dict[str, tuple[str, ...]] = {
    **{k: ("ns_per_mac", "ns_per_weight", "ns_per_act") for k in LINEAR_KINDS},
    "attention": ("ns_per_mac", "ns_per_score", "ns_per_act"),
    "merge": ("ns_per_mac", "ns_per_elem"),
    **{k: ("ns_per_elem",) for k in ELEMENTWISE_KINDS},
}
LINEAR_DTYPES = ("fp32", "fp16", "w8a32", "w8a8", "w4a32", "w4a8")
# weight bytes per weight at run time, by kernel: fp16 weights are folded to fp32 at session start (see below)
WEIGHT_BYTES = {"fp32": 4.0, "fp16": 4.0, "w8a32": 1.0, "w8a8": 1.0, "w4a32": 0.5, "w4a8": 0.5}
_BITS_OF = {"fp32": (32, 32), "fp16": (16, 32), "w8a32": (8, 32), "w8a8": (8, 8), "w4a32": (4, 32), "w4a8": (4, 8)}


def dtype_of(op: Op) -> str:
    """Kernel dtype of an op: only ``linear`` ops carry bits (the config sets no others)."""
    if op.kind != "linear" or op.bits == 32:
        return "fp32"
    if op.bits == 16:  # toolkit.quant: fp16 Linears keep float inputs whatever act_bits says
        return "fp16"
    return f"w{op.bits}a{8 if op.act_bits == 8 else 32}"


def key_of(op: Op, dtype: str | None = None) -> str:
    return f"{op.kind}/{dtype or dtype_of(op)}"


def at_least_as_precise(dtype: str) -> tuple[str, ...]:
    """Linear dtypes with weight bits >= those of ``dtype`` at the same activation setting (float
    kernels take any), itself first: the kernels one Linear of a config can fall back to, since
    ``act_bits`` is one setting for the whole model (:class:`~spaces.config.CompressionConfig`)."""
    b, a = _BITS_OF[dtype]
    return (dtype,) + tuple(d for d in LINEAR_DTYPES if d != dtype and _BITS_OF[d][0] >= b
                            and (_BITS_OF[d][0] >= 16 or _BITS_OF[d][1] == a))


def bits_of(dtype: str) -> int:
    """Weight bits of a Linear dtype."""
    return _BITS_OF[dtype][0]


def weight_bytes(op: Op, kernel: str | None = None) -> float:
    """Bytes of weights ``op`` reads per call when run with ``kernel`` (default: its own dtype); 0 for
    operators without weights."""
    if op.kind not in LINEAR_KINDS:
        return 0.0
    return op.k * op.n * WEIGHT_BYTES[kernel or dtype_of(op)]


def footprint_ms(total_weight_bytes: float, footprint: dict | None) -> float:
    """The per-call cost of weights beyond the effective cache (module doc); 0 without a footprint."""
    if not footprint:
        return 0.0
    return footprint["ns_per_byte"] * max(0.0, total_weight_bytes - footprint["cache_bytes"]) * 1e-6


def feature_values(op: Op) -> tuple[float, ...]:
    """Values of ``FEATURES[op.kind]`` for ``op``, in that order."""
    if op.kind in LINEAR_KINDS:
        return (op.m * op.k * op.n, op.k * op.n, op.m * (op.k + op.n))
    if op.kind == "attention":
        hd = op.heads * op.head_dim
        return (2.0 * op.m * op.kv * hd, op.heads * op.m * op.kv, 4.0 * op.m * hd)
    if op.kind == "merge":
        return (op.macs, op.m * op.n)
    return (op.elems,)


def cost_at_ms(op: Op, core: dict, op_us: dict, dtype: str) -> float | None:
    """Cost of ``op`` run with a ``dtype`` kernel, or None when the profile has no such kernel."""
    key = key_of(op, dtype)
    coefs = core.get(key)
    if coefs is None:
        return None
    t_ns = sum(coefs.get(f, 0.0) * v for f, v in zip(FEATURES[op.kind], feature_values(op)))
    return op_us.get(key, 0.0) * 1e-3 + t_ns * 1e-6


def op_cost_ms(op: Op, core: dict, op_us: dict) -> tuple[float, str]:
    """``(ms, kernel dtype)``: the cheapest kernel at least as precise as the one asked for.

    Why an envelope: a lower bit-width that would run slower on a device (an int8 GEMM with extra
    quantize nodes on a tiny matrix, say) is never worth deploying; the prediction is the latency of
    keeping that Linear at the cheaper, more precise kernel, which ``deployable_config`` writes out.
    This makes fewer weight bits never predict slower; ``breakdown`` shows the kernel chosen.
    """
    asked = dtype_of(op)
    if op.kind != "linear":
        t = cost_at_ms(op, core, op_us, asked)
        if t is None:
            raise KeyError(key_of(op, asked))
        return t, asked
    best: tuple[float, str] | None = None
    for d in at_least_as_precise(asked):
        t = cost_at_ms(op, core, op_us, d)
        if t is not None and (best is None or t < best[0]):
            best = (t, d)
    if best is None:
        raise KeyError(key_of(op, asked))
    return best
