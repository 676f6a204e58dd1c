"""Turn an fp32 ONNX model from :func:`toolkit.export.export_onnx` into one that really runs int8 /
int4 kernels, Linear by Linear, as a ``CompressionConfig`` says.

Per Linear (``linear_bits`` maps module names such as ``blocks.3.mlp.fc1`` or
``blocks.3.attn.qkv.first`` to bits; the MatMul is found by its node name, see ``export.module_of``):

* 8 bits, ``act_bits == 32``: ORT ``quantize_dynamic`` (``per_channel=True``, ``QInt8`` weights,
  ``MatMulConstBOnly``) -> ``DynamicQuantizeLinear`` + ``MatMulInteger`` + scale ``Mul``.
  Note: this also quantizes the *input* per tensor at run time (uint8, asymmetric, range of each
  call); the PyTorch simulation (weight-only int8) does not model that.
* 8 bits, ``act_bits == 8``: ORT ``quantize_static``, QDQ, ``per_channel=True``, MinMax over
  ``calib_batches``, MatMul outputs left float (``OpTypesToExcludeOutputQuantization``) because the
  simulation quantizes Linear inputs only; ORT fuses each pattern into ``MatMulIntegerToFloat``.
  Activations are ``QUInt8`` asymmetric: the same dequantized values as the simulation's asymmetric
  int8 (zero point + 128, same scale), but x86 runs u8 x s8 fast and s8 x s8 slowly (measured on
  the default model, 1 thread: 1.2 ms with QUInt8 against 2.8 ms with QInt8, fp32 2.3 ms).
* 4 bits: a ``com.microsoft.MatMulNBits`` node written here, not by ORT's ``MatMulNBitsQuantizer``,
  whose symmetric RTN grid (per block, ``scale = -(value of largest |w|) / 8``, q in [-8, 7], round
  half up) differs from ``toolkit.quant``'s per-output-channel [-7, 7] grid. MatMulNBits stores a
  scale per block of ``int4_block_size(in_features)`` inputs; we write the channel's scale into every
  block, so the stored values are exactly ``toolkit.quant.weight_qparams(w, 4)`` and the block size
  only affects kernel speed. No ``accuracy_level`` (fp32 compute of the dequantized weights; level 4
  would quantize inputs to int8 per block, which the simulation does not model). With
  ``act_bits == 8`` a QuantizeLinear/DequantizeLinear pair with MinMax ranges goes in front of it.
  Measured on this x86 host (default model, all block Linears, 1 thread, batch 1): 2.6 ms against
  2.26 ms fp32 -- the int4 graph is 6x smaller, not faster, here.
* 16 bits: the weight is stored as fp16 with a ``Cast`` to fp32 before the MatMul (half the bytes;
  ORT folds the Cast of a constant at session start, so it runs as fast as fp32, in fp32).
* 32 bits: unchanged.

Fidelity: export the model as ``toolkit.compress.compress`` leaves it (quantized values baked in) and
pass the calibration batches it used; then the static-int8 and int4 graphs reproduce the PyTorch
simulation to ~1e-6 (tests/toolkit/test_export.py). All input ranges are observed on the float graph.
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from spaces.config import ConfigError
from toolkit.onnx_static import dequantized_matmuls, is_static, keep_bias_adds
from toolkit.quant import act_qparams, weight_qparams

# MatMulNBits block length along in_features. Block sizes 16, 32 and 64 measured the same within
# noise on the default model (2.55-2.66 ms, 1 thread); 32 is MLAS's most used block length.
INT4_BLOCK_SIZE = 32


def int4_block_size(in_features: int) -> int:
    """Block size of the 4-bit MatMulNBits of a Linear with ``in_features`` inputs: always
    ``INT4_BLOCK_SIZE``, a partial last block is zero-padded.

    It does not change the numbers: every block of a column carries that output channel's scale,
    so the simulation (``toolkit.quant``, per output channel) needs no block rule at all.
    """
    return INT4_BLOCK_SIZE


@dataclass(frozen=True)
class NodeQuant:
    """What happened to one Linear: module, bits asked, ONNX node, action taken, block size (4-bit)."""

    module: str
    bits: int
    node: str
    action: str
    block_size: int | None = None


@dataclass(frozen=True)
class QuantizeReport:
    """Per-Linear actions and file sizes (bytes); ``to_dict`` is JSON-ready."""

    nodes: list[NodeQuant]
    act_bits: int
    bytes_before: int
    bytes_after: int
    int4_block_size: int = INT4_BLOCK_SIZE
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# ---- finding the Linears ----------------------------------------------------------------------------
def module_of(node_name: str) -> str:
    """``"/blocks.0/attn/qkv/MatMul"`` -> ``"blocks.0.attn.qkv"`` (the scope, dots between levels).

    The TorchScript exporter writes one ``/``-separated level per module in the call stack, using
    the child name (``blocks.0`` for item 0 of the ModuleList ``blocks``), then the op name. ORT's
    quantizers append suffixes to the op name only (``MatMul_quant``), so quantized nodes map too.
    """
    parts = node_name.strip("/").split("/")
    return ".".join(parts[:-1])


def linear_nodes(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    """``{module name: MatMul node}`` for every MatMul whose second input is an initializer.

    Attention's ``q @ k^T`` and ``attn @ v`` MatMuls have no constant operand and are skipped.
    """
    inits = {i.name for i in model.graph.initializer}
    out: dict[str, onnx.NodeProto] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits and node.name.startswith("/"):
            name = module_of(node.name)
            if name in out:
                raise ValueError(f"two constant MatMuls in the scope of module {name!r}; "
                                 "a Linear called twice cannot be quantized per module")
            out[name] = node
    return out


# ---- calibration ----------------------------------------------------------------------------------
def _as_numpy(batch) -> np.ndarray | dict[str, np.ndarray]:
    """A batch is an image tensor/array ``[N, C, H, W]`` or a tuple/list whose first item is one; a
    graph with several inputs (the latency harness's micro-benchmarks) takes a dict ``{input: array}``."""
    if isinstance(batch, dict):
        return {k: np.asarray(v, dtype=np.float32) for k, v in batch.items()}
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    return (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.float32)


class _Reader:
    """``onnxruntime.quantization.CalibrationDataReader`` over a list of batches."""

    def __init__(self, input_name: str, batches: list):
        self._it = iter([b if isinstance(b, dict) else {input_name: b} for b in batches])

    def get_next(self) -> dict | None:
        return next(self._it, None)


def _minmax(model: onnx.ModelProto, tensors: list[str], batches: list) -> dict[str, tuple[float, float]]:
    """Min and max of each tensor over all batches (ORT's MinMax: min of mins, max of maxes)."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in tensors)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep the tensors
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    lo = {t: np.inf for t in tensors}
    hi = {t: -np.inf for t in tensors}
    name = sess.get_inputs()[0].name
    for b in batches:
        for t, v in zip(tensors, sess.run(tensors, b if isinstance(b, dict) else {name: b})):
            lo[t], hi[t] = min(lo[t], float(v.min())), max(hi[t], float(v.max()))
    return {t: (lo[t], hi[t]) for t in tensors}


# ---- graph edits ----------------------------------------------------------------------------------
def _untie(model: onnx.ModelProto, nodes: Iterable[onnx.NodeProto]) -> None:
    """Give each node its own weight initializer (an exporter may share equal constants)."""
    inits = {i.name: i for i in model.graph.initializer}
    users: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    for n in nodes:
        w = n.input[1]
        if users[w] > 1:
            copy_ = onnx.TensorProto()
            copy_.CopyFrom(inits[w])
            copy_.name = f"{w}_{n.name.strip('/').replace('/', '_')}"
            model.graph.initializer.append(copy_)
            n.input[1] = copy_.name
            users[w] -= 1


def _pop_init(model: onnx.ModelProto, name: str) -> np.ndarray:
    for i, t in enumerate(model.graph.initializer):
        if t.name == name:
            arr = numpy_helper.to_array(t)
            del model.graph.initializer[i]
            return arr
    raise KeyError(name)


def _replace(model: onnx.ModelProto, old: onnx.NodeProto, new: list[onnx.NodeProto]) -> None:
    nodes = list(model.graph.node)
    i = next(k for k, n in enumerate(nodes) if n.name == old.name)
    model.graph.ClearField("node")
    model.graph.node.extend(nodes[:i] + new + nodes[i + 1:])


def pack_int4(w_in_out: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """MatMul weight ``[K, N]`` -> MatMulNBits ``B: [N, K/block, block/2] uint8`` and
    ``scales: [N * K/block] float32``, using ``toolkit.quant``'s per-channel [-7, 7] grid.

    Stored nibble = q + 8 (the default zero point of 4-bit MatMulNBits), element 2j in the low
    nibble of byte j. Rows past K (padding of the last block) are q = 0.
    """
    k, n = w_in_out.shape
    q, scale = weight_qparams(torch.from_numpy(np.ascontiguousarray(w_in_out.T)), 4)  # [N, K], [N]
    blocks = -(-k // block)
    u = np.full((n, blocks * block), 8, np.uint8)
    u[:, :k] = (q.numpy().astype(np.int16) + 8).astype(np.uint8)
    u = u.reshape(n, blocks, block // 2, 2)
    packed = (u[..., 0] | (u[..., 1] << 4)).astype(np.uint8)
    scales = np.repeat(scale.numpy().astype(np.float32)[:, None], blocks, axis=1).reshape(-1)
    return packed, scales


def _to_nbits(model: onnx.ModelProto, node: onnx.NodeProto, act: tuple[float, int] | None) -> int:
    """Replace a MatMul by MatMulNBits (and a Q/DQ pair on its input when ``act`` = (scale, zp))."""
    w = _pop_init(model, node.input[1])
    k, n = w.shape
    block = int4_block_size(k)
    packed, scales = pack_int4(w, block)
    base = node.input[1]
    model.graph.initializer.extend([numpy_helper.from_array(packed, base + "_Q4"),
                                    numpy_helper.from_array(scales, base + "_scales")])
    x, new = node.input[0], []
    if act is not None:
        s, zp = act
        model.graph.initializer.extend([numpy_helper.from_array(np.array(s, np.float32), base + "_x_scale"),
                                        numpy_helper.from_array(np.array(zp, np.int8), base + "_x_zp")])
        q_out, dq_out = node.name + "_x_q", node.name + "_x_dq"
        new += [helper.make_node("QuantizeLinear", [x, base + "_x_scale", base + "_x_zp"], [q_out],
                                 name=node.name + "_QuantizeLinear"),
                helper.make_node("DequantizeLinear", [q_out, base + "_x_scale", base + "_x_zp"], [dq_out],
                                 name=node.name + "_DequantizeLinear")]
        x = dq_out
    new.append(helper.make_node("MatMulNBits", [x, base + "_Q4", base + "_scales"], list(node.output),
                                name=node.name + "_Q4", domain="com.microsoft", K=k, N=n, bits=4, block_size=block))
    _replace(model, node, new)
    return block


def _to_fp16(model: onnx.ModelProto, node: onnx.NodeProto) -> None:
    """fp16 weight initializer + Cast to fp32 in front of the MatMul."""
    w = _pop_init(model, node.input[1])
    name16 = node.input[1] + "_fp16"
    model.graph.initializer.append(numpy_helper.from_array(w.astype(np.float16), name16))
    cast = helper.make_node("Cast", [name16], [name16 + "_fp32"], name=node.name + "_Cast", to=TensorProto.FLOAT)
    node.input[1] = name16 + "_fp32"
    _replace(model, node, [cast, node])


def _set_opsets(model: onnx.ModelProto) -> None:
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))


# ---- entry point ----------------------------------------------------------------------------------
class _DropPreprocessAdvice(logging.Filter):
    """Drops ORT's "Please consider to run pre-processing before quantization" (logged on the root logger
    at WARNING for every graph): it is advice to ORT's users about shape inference, which our exported
    graphs already carry, and means nothing to a user of ``maec``. Other warnings pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _same_value_info(quantized: onnx.ModelProto, source: onnx.ModelProto) -> onnx.ModelProto:
    """``quantized`` with the intermediate shapes (``value_info``) of ``source``, in place.

    Why: ORT's quantizer runs shape inference and leaves every inferred shape in the graph. With them ONNX
    Runtime fuses a residual Add and the LayerNormalization after it into ``SkipLayerNormalization``
    (the full MAE's encoder ``norm`` and ``decoder_norm``), a contrib kernel that on the CPU costs 2.4-7x
    the Add and LayerNormalization it replaces (``benchmarks/onnx_skip_layernorm.py``, Xeon host: 20.6
    against 8.6 µs at 13 x 192, 43.3 against 11.4 µs at 50 x 128): a dynamic-int8 MAE ran 6-9% slower than
    the same graph without those shapes, and than the float graphs the latency rows price. The exporter writes none, so
    the quantized graph keeps none either and is optimized the way its float export is.
    """
    del quantized.graph.value_info[:]
    quantized.graph.value_info.extend(source.graph.value_info)
    return quantized


def _ort_int8(model: onnx.ModelProto, names: list[str], act_bits: int, batches: list) -> onnx.ModelProto:
    """ORT's int8 quantization of the MatMul nodes ``names`` (dynamic, or static QDQ for act_bits 8)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    advice_filter = _DropPreprocessAdvice()
    logging.getLogger().addFilter(advice_filter)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
            onnx.save(model, str(src))
            if act_bits == 32:
                quantize_dynamic(src, dst, per_channel=True, weight_type=QuantType.QInt8, nodes_to_quantize=names,
                                 op_types_to_quantize=["MatMul"], extra_options={"MatMulConstBOnly": True})
            else:
                quantize_static(src, dst, _Reader(model.graph.input[0].name, batches), quant_format=QuantFormat.QDQ,
                                per_channel=True, op_types_to_quantize=["MatMul"], activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8, nodes_to_quantize=names,
                                calibrate_method=CalibrationMethod.MinMax,
                                extra_options={"MatMulConstBOnly": True, "OpTypesToExcludeOutputQuantization": ["MatMul"]})
            return _same_value_info(onnx.load(str(dst)), model)
    finally:
        logging.getLogger().removeFilter(advice_filter)


def quantize_onnx(fp32_path: str | Path, out_path: str | Path, *, linear_bits: Mapping[str, int], act_bits: int = 32,
                  calib_batches: Iterable | None = None) -> QuantizeReport:
    """Quantize the MatMul of each Linear in ``linear_bits`` (module name -> 32/16/8/4) and write
    ``out_path``. ``act_bits`` 8 quantizes the inputs of the 8- and 4-bit Linears with static
    ranges and needs ``calib_batches`` (image tensors ``[N, C, H, W]`` or ``(images, labels)``).
    Raises ConfigError for a module name the graph does not have or unsupported bits.
    """
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    model = onnx.load(str(fp32_path))
    nodes = linear_nodes(model)
    for name, bits in linear_bits.items():
        if name not in nodes:
            raise ConfigError(f"linear_bits: the ONNX graph has no Linear named {name!r}")
        if bits not in (32, 16, 8, 4):
            raise ConfigError(f"linear_bits.{name}: {bits!r} is not one of 32, 16, 8, 4")
    if act_bits not in (32, 8):
        raise ConfigError(f"act_bits: {act_bits!r} is not one of 32, 8")
    by_bits = {b: sorted(m for m, v in linear_bits.items() if v == b) for b in (16, 8, 4)}
    batches = [_as_numpy(b) for b in calib_batches] if calib_batches is not None else []
    if act_bits == 8 and (by_bits[8] or by_bits[4]) and not batches:
        raise ConfigError("act_bits 8 needs calibration batches (calib_batches)")
    _untie(model, [nodes[m] for b in (16, 8, 4) for m in by_bits[b]])
    report = [NodeQuant(m, 32, nodes[m].name, "unchanged") for m, b in linear_bits.items() if b == 32]
    notes: list[str] = []

    # All input ranges are observed on the float graph, as toolkit.quant observes float inputs:
    # the 4-bit ones here, the 8-bit ones by ORT's calibrator before any other node is touched.
    ranges = _minmax(model, [nodes[m].input[0] for m in by_bits[4]], batches) if act_bits == 8 and by_bits[4] else {}
    if by_bits[8]:
        model = _ort_int8(model, [nodes[m].name for m in by_bits[8]], act_bits, batches)
        action = "dynamic int8 (MatMulInteger)" if act_bits == 32 else "static int8 QDQ"
        report += [NodeQuant(m, 8, nodes[m].name, action) for m in by_bits[8]]
        if act_bits == 8 and is_static(model):  # a token-merging export: keep ORT's integer kernels
            keep_bias_adds(model, dequantized_matmuls(model))
        if act_bits == 32:
            notes.append("dynamic int8 also quantizes each 8-bit Linear's input per call (uint8, asymmetric, "
                         "range of that input); a weight-only simulation does not model this")
    left = linear_nodes(model)  # the float MatMuls after ORT's pass (same names)
    for m in by_bits[4]:
        act = act_qparams(*ranges[nodes[m].input[0]]) if act_bits == 8 else None
        block = _to_nbits(model, left[m], act)
        report.append(NodeQuant(m, 4, left[m].name, "MatMulNBits int4" + (" + int8 input QDQ" if act else ""), block))
    if by_bits[4]:
        _set_opsets(model)
    for m in by_bits[16]:
        _to_fp16(model, left[m])
        report.append(NodeQuant(m, 16, left[m].name, "fp16 weight + Cast"))
    onnx.save(model, str(out_path))
    order = list(nodes)
    report.sort(key=lambda r: order.index(r.module))
    return QuantizeReport(report, act_bits, fp32_path.stat().st_size, out_path.stat().st_size, INT4_BLOCK_SIZE, notes)
