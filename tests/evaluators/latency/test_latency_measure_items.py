"""Benchmark items of the measurement harness: what a row says it runs is what its ONNX graph runs."""
from __future__ import annotations

import pytest

from evaluators.latency.measure.items import spec_ops
from evaluators.latency.measure.op_items import block_item, call_item, linear_chain_item, merging_block_item, op_items
from evaluators.latency.measure.ort_timing import time_ms


@pytest.mark.parametrize("bits", [32, 8])
def test_block_item_lists_every_operator_of_its_blocks_and_runs(tmp_path, bits):
    item = block_item(tokens=5, dim=16, heads=2, mlp=32, bits=bits, r=3)
    counts: dict[str, float] = {}
    for op, n in spec_ops(item.spec):
        key = op.name.split(".")[-1] if op.kind == "linear" else op.kind
        counts[key] = counts.get(key, 0) + n
    # per block: 2 LayerNorms, qkv/proj/fc1/fc2, one attention core, one GELU, 2 residual adds
    assert counts == {"layernorm": 6, "qkv": 3, "proj": 3, "fc1": 3, "fc2": 3, "attention": 3, "gelu": 3, "add": 6}
    ops = {op.name.split(".")[-1]: op for op, _ in spec_ops(item.spec) if op.kind == "linear"}
    assert (ops["qkv"].m, ops["qkv"].k, ops["qkv"].n) == (5, 16, 48) and (ops["fc2"].k, ops["fc2"].n) == (32, 16)
    inputs = item.build(tmp_path / "b.onnx")
    assert inputs == [{"name": "x", "shape": [1, 5, 16]}]
    if bits == 8:  # the Linears really are dynamic int8 in the graph
        import onnx

        kinds = {n.op_type for n in onnx.load(str(tmp_path / "b.onnx")).graph.node}
        assert "MatMulInteger" in kinds or "DynamicQuantizeMatMul" in kinds
    assert time_ms(tmp_path / "b.onnx", inputs, repeats=2, warmup=1)["latency_ms"] > 0
    assert item.bench == f"block_t5_d16_h2_m32_w{bits}_r3"


def test_block_item_refuses_a_width_that_heads_do_not_divide():
    with pytest.raises(ValueError, match="not a multiple of heads"):
        block_item(tokens=5, dim=16, heads=3, mlp=32)


def test_merging_block_item_lists_the_token_flow_and_its_graph_unmerges(tmp_path):
    import numpy as np
    import onnxruntime as ort

    item = merging_block_item(tokens=9, dim=16, heads=2, mlp=32, merge=3, r=3)
    ops = [(op, n) for op, n in spec_ops(item.spec)]
    merges = sorted((op.m for op, _ in ops if op.kind == "merge"), reverse=True)
    assert merges == [9, 6, 4]  # 9 -> 6 -> 4 -> 3: merges after the first are clamped as the model clamps them
    fc1 = sorted((op.m for op, _ in ops if op.name.endswith("fc1")), reverse=True)
    assert fc1 == [6, 4, 3]  # each MLP runs on the tokens left after its block's merge
    assert len([op for op, _ in ops if op.name.endswith("size_bias")]) == 2  # the blocks after a merge
    assert [op.elems for op, _ in ops if op.name == "unmerge"] == [9 * 16]
    inputs = item.build(tmp_path / "m.onnx")
    out = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": np.ones((1, 9, 16), np.float32)})[0]
    assert out.shape == (1, 9, 16)  # unmerged to every original token
    assert inputs == [{"name": "x", "shape": [1, 9, 16]}]


def test_call_item_runs_no_operator_and_leads_both_sweeps(tmp_path):
    item = call_item(values=12)
    assert item.bench == "call_v12" and list(spec_ops(item.spec)) == []
    inputs = item.build(tmp_path / "c.onnx")
    assert inputs == [{"name": "x", "shape": [1, 12]}]
    assert time_ms(tmp_path / "c.onnx", inputs, repeats=2, warmup=1)["latency_ms"] > 0
    assert [s[0].bench for s in (op_items("quick"), op_items("standard"))] == ["call_v784", "call_v784"]


@pytest.mark.parametrize("bits, act_bits", [(32, 32), (8, 32)])
def test_linear_chain_item_runs_its_linears_in_sequence_on_one_input(tmp_path, bits, act_bits):
    import onnx

    item = linear_chain_item(13, 32, 8, bits, act_bits, span=4 * 2 * 32 * 8 * 3)  # 3 pairs of weights
    assert item.bench == f"linchain_t13_32x8_w{bits}a{act_bits}" and item.spec["io"] == 0
    ops = list(spec_ops(item.spec))
    assert [(op.k, op.n, op.bits, n) for op, n in ops] == [(32, 8, bits, 3), (8, 32, bits, 3)]
    inputs = item.build(tmp_path / "c.onnx")
    assert inputs == [{"name": "x", "shape": [1, 13, 32]}]
    graph = onnx.load(str(tmp_path / "c.onnx")).graph
    assert len(graph.input) == 1 and len(graph.output) == 1
    matmuls = [n for n in graph.node if n.op_type in ("Gemm", "MatMul", "MatMulInteger", "DynamicQuantizeMatMul")]
    assert len(matmuls) == 6
    assert time_ms(tmp_path / "c.onnx", inputs, repeats=2, warmup=1)["latency_ms"] > 0
    assert sum(i.bench.startswith("linchain_") for i in op_items("standard")) == 22
