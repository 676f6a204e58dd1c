"""Why the host proof's ``mae_p0_1`` is predicted ~20% low: one 4-bit low-rank factor, slow only in its graph.

``mae_p0_1`` (a full MAE the host proof samples) has decoder block 0's ``fc1`` as rank-8 factors at 4 bits:
``MatMulNBits`` 128 -> 8 and 8 -> 64 on 50 tokens. ``latency_config_dissect.py --proof-model`` shows that
turning that one Linear to int8 or fp32 removes most of the model's miss. This script says where the time goes,
with ONNX Runtime's own per-node profiler (kernel time, median of the later half of the runs), on the proof's
exported kit file (``results/latency/kit-models/*_mae_p0_1.onnx``):

1. the whole model, as deployed (prepacked weights, all graph optimizations);
2. the same with ``session.disable_prepacking``;
3. the two factors alone, cut out of the model (input: random values of the LayerNorm output's shape);
4. the first factor alone in a one-node model with the kit's own packed weights and scales.

One core, one ONNX Runtime thread. No prediction here: the profile has one price per kernel and shape, and
this is a cost that depends on the graph around the node (what the operator sweep, one node kind per model,
cannot see).

    .venv/bin/python benchmarks/ort_nbits_context.py      # ~1 min; run benchmarks/latency_host_proof.py first
"""
from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, shape_inference, utils

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluators.latency.measure.ort_timing import pin_to_core

KIT = ROOT / "results" / "latency" / "kit-models"
MODEL = "model_mae_vit_tiny_p4_28_mae_p0_1"
FIRST, SECOND = "/decoder_blocks.0/mlp/fc1/first/MatMul", "/decoder_blocks.0/mlp/fc1/second/MatMul"
LN = "/decoder_blocks.0/norm2/LayerNormalization_output_0"
TOKENS = 50  # the decoder's 1 + 49 patches


def node_times_us(model: onnx.ModelProto, *, prepack: bool = True, runs: int = 400) -> dict[str, float]:
    """Median kernel time (µs) of each MatMulNBits node over the later half of ``runs`` profiled runs."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(tempfile.gettempdir()) / "ort_nbits_context")
    if not prepack:
        opts.add_session_config_entry("session.disable_prepacking", "1")
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {i.name: rng.standard_normal([d.dim_value or 1 for d in i.type.tensor_type.shape.dim]).astype(np.float32)
            for i in model.graph.input}
    for _ in range(runs):
        sess.run(None, feed)
    path = sess.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    by = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["args"]["op_name"] == "MatMulNBits":
            by[e["name"].removesuffix("_kernel_time")].append(e["dur"])
    return {k: float(np.median(v[len(v) // 2:])) for k, v in by.items()}


def cut(model: onnx.ModelProto) -> onnx.ModelProto:
    """The two factors alone, from the LayerNorm output (shapes of the contrib nodes' outputs added by hand:
    ONNX shape inference does not know MatMulNBits)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.value_info.extend([helper.make_tensor_value_info(FIRST + "_output_0", TensorProto.FLOAT, ["B", TOKENS, 8]),
                               helper.make_tensor_value_info(SECOND + "_output_0", TensorProto.FLOAT, ["B", TOKENS, 64])])
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.onnx", Path(d) / "out.onnx"
        onnx.save(shape_inference.infer_shapes(m), src)
        utils.extract_model(str(src), str(dst), [LN], [SECOND + "_output_0"])
        return onnx.load(dst)


def alone(model: onnx.ModelProto) -> onnx.ModelProto:
    """The first factor as a one-node model with the kit's packed weights and scales."""
    node = next(n for n in model.graph.node if n.name == FIRST + "_Q4")
    init = {i.name: i for i in model.graph.initializer}
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    g = helper.make_graph([helper.make_node("MatMulNBits", ["x", *node.input[1:]], ["y"], name=node.name,
                                            domain="com.microsoft", **attrs)], "alone",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", TOKENS, attrs["K"]])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", TOKENS, attrs["N"]])],
                          [init[n] for n in node.input[1:]])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])


def main() -> int:
    paths = sorted(KIT.glob(f"*_{MODEL}.onnx"))
    if not paths:
        print(f"error: no {MODEL} kit under {KIT}: run benchmarks/latency_host_proof.py first", file=sys.stderr)
        return 2
    pin_to_core(None)
    model = onnx.load(paths[0])
    rows = [("whole model, prepacked (as deployed)", node_times_us(model)),
            ("whole model, prepacking disabled", node_times_us(model, prepack=False)),
            ("the two factors cut out of the model", node_times_us(cut(model))),
            ("the first factor alone, the kit's weights", node_times_us(alone(model)))]
    print(f"{MODEL}: MatMulNBits kernel time per run (µs; ONNX Runtime {ort.__version__}, 1 thread, one core)\n")
    print("| graph | fc1.first 128 -> 8 | fc1.second 8 -> 64 |")
    print("|---|---|---|")
    for label, t in rows:
        first = next((v for k, v in t.items() if k.startswith(FIRST)), float("nan"))
        second = next((v for k, v in t.items() if k.startswith(SECOND)), float("nan"))
        print(f"| {label} | {first:.1f} | {second:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
