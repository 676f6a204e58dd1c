"""benchmarks/ort_nbits_context.py: the one-node model it cuts from a kit runs the kit's weights unchanged, and
without a kit it says so and exits 2."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from toolkit.onnx_quant import pack_int4

ROOT = Path(__file__).resolve().parents[3]


def _bench():
    spec = importlib.util.spec_from_file_location("ort_nbits_context", ROOT / "benchmarks" / "ort_nbits_context.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_alone_runs_the_first_factor_with_the_kits_own_weights():
    b = _bench()
    w = np.random.default_rng(0).standard_normal((128, 8)).astype(np.float32)
    packed, scales = pack_int4(w, 32)
    node = helper.make_node("MatMulNBits", ["h", "q", "s"], ["y"], name=b.FIRST + "_Q4", domain="com.microsoft",
                            K=128, N=8, bits=4, block_size=32)
    g = helper.make_graph([node], "kit", [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["B", b.TOKENS, 128])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", b.TOKENS, 8])],
                          [helper.make_tensor(n, TensorProto.UINT8 if n == "q" else TensorProto.FLOAT, a.shape,
                                              a.tobytes(), raw=True) for n, a in (("q", packed), ("s", scales))])
    kit = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    x = np.random.default_rng(1).standard_normal((1, b.TOKENS, 128)).astype(np.float32)

    def run(m):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {m.graph.input[0].name: x})[0]

    assert np.array_equal(run(b.alone(kit)), run(kit))
    assert set(b.node_times_us(b.alone(kit), runs=20)) == {b.FIRST + "_Q4"}


def test_without_the_host_proofs_kit_it_exits_2(tmp_path, monkeypatch, capsys):
    b = _bench()
    monkeypatch.setattr(b, "KIT", tmp_path)
    assert b.main() == 2
    assert "run benchmarks/latency_host_proof.py first" in capsys.readouterr().err
