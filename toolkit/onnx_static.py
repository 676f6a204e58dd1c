"""Rewrites for ONNX graphs exported at a static shape (token-merging models, ``toolkit.export``).

Own code, not a library's: ONNX Runtime exposes no export-side switch for its session-time fusions, and
the model a user deploys must run fast under default session options. Each rewrite keeps the graph's values
exactly (tests compare ONNX Runtime's outputs) and says which fusion it steers and why.
"""
from __future__ import annotations

import collections
import tempfile
from pathlib import Path

import onnx
from onnx import numpy_helper


def ran_op_types(path: str | Path) -> collections.Counter:
    """Op types ONNX Runtime's CPU provider runs for the model at ``path`` (its fully optimized graph)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        opts.log_severity_level = 3
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return collections.Counter(n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node)


def is_static(model: onnx.ModelProto) -> bool:
    """Every graph input has a fixed size in every dimension."""
    return all(d.HasField("dim_value") for i in model.graph.input for d in i.type.tensor_type.shape.dim)


def dequantized_matmuls(model: onnx.ModelProto) -> set[str]:
    """Names of the MatMuls whose weight input is a ``DequantizeLinear`` output (static-int8 QDQ Linears)."""
    dq = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return {n.name for n in model.graph.node if n.op_type == "MatMul" and len(n.input) > 1 and n.input[1] in dq}


def keep_bias_adds(model: onnx.ModelProto, matmuls: set[str]) -> int:
    """Give the rank-1 bias of each ``Add`` after a MatMul named in ``matmuls`` on a
    rank-3 activation the shape ``[1, 1, N]`` (same values, same broadcast), in place; returns how many.

    Why: with every shape known, ONNX Runtime's ``MatMulAddFusion`` rewrites MatMul + Add on a ``[B, T, K]``
    input as Reshape + Gemm + Reshape, and it runs before the QDQ fusions: a static-int8 Linear's weight
    ``DequantizeLinear`` then stays in the graph and dequantizes the whole weight on every call before an fp32
    Gemm (token-merging models with static-int8 Linears ran up to 1.9x slower, ``benchmarks/onnx_static_gemm.py``).
    The fusion only takes a bias of shape ``[N]`` for such inputs (onnxruntime
    ``core/optimizer/matmul_add_fusion.cc``), so a ``[1, 1, N]`` bias keeps the MatMul, which the
    QDQ fusions then turn into an integer kernel, as in the dynamic-batch graphs and the operator rows the
    predictor is fitted on. Only those: fp32 and fp16 Linears ran a little slower without ORT's Gemm (session
    16), and dynamic int8 never goes through the fusion."""
    inferred = onnx.shape_inference.infer_shapes(model)
    rank = {v.name: len(v.type.tensor_type.shape.dim)
            for v in list(inferred.graph.value_info) + list(inferred.graph.output) if v.type.tensor_type.HasField("shape")}
    inits = {i.name: i for i in model.graph.initializer}
    matmul_out = {n.output[0] for n in model.graph.node if n.op_type == "MatMul" and n.name in matmuls}
    # the exporter shares equal parameters (zero biases of a fresh model) through Identity nodes: follow them to
    # the initializer and give each Add its own [1, 1, N] copy, leaving the shared tensor as it was
    identity = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Identity"}
    changed = 0
    for n in model.graph.node:
        if n.op_type != "Add" or len(n.input) != 2 or rank.get(n.output[0]) != 3:
            continue
        slot = 1 if n.input[0] in matmul_out else 0
        if n.input[1 - slot] not in matmul_out:
            continue
        src = n.input[slot]
        while src in identity:
            src = identity[src]
        if src not in inits or len(inits[src].dims) != 1:
            continue
        b = numpy_helper.to_array(inits[src]).reshape(1, 1, -1)
        name = f"{n.name or n.output[0]}/bias_1x1xN"
        model.graph.initializer.append(numpy_helper.from_array(b, name))
        n.input[slot] = name
        changed += 1
    used = {i for n in model.graph.node for i in n.input}
    keep = [i for i in model.graph.initializer if i.name in used]  # the [N] originals no node reads any more
    model.graph.ClearField("initializer")
    model.graph.initializer.extend(keep)
    return changed
