"""Why a quantized export keeps no inferred shapes: ONNX Runtime's ``SkipLayerNormalization`` on the CPU.

ORT's quantizer (``quantize_dynamic`` / ``quantize_static``) runs shape inference and used to leave every
inferred shape in the graph (``value_info``). With them ONNX Runtime fuses a residual Add and the
LayerNormalization after it into the contrib op ``SkipLayerNormalization``: in the full MAE the encoder's
last Add + ``norm`` and the decoder's last Add + ``decoder_norm`` (the classifier pools before its norm, so
it has no such pair). ``toolkit.onnx_quant`` now gives the quantized graph the float export's shapes
(none), so it is optimized as the float graph is. This script prints what that changes, on this machine:

1. the fused kernel against Add + LayerNormalization, alone (inputs with declared shapes fuse, inputs
   without do not; each row says what ORT ran);
2. whole dynamic-int8 models of the embedded default: as ``toolkit.onnx_quant`` exports them now, and as it
   exported them before (the same code with the shapes ORT's quantizer left in the graph).

One core, one ONNX Runtime thread, interleaved passes, lowest pass median (the multi-pass rule).

    .venv/bin/python benchmarks/onnx_skip_layernorm.py            # ~3 min
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from evaluators.latency.measure.model_items import model_item, sample_configs
from evaluators.latency.measure.ort_timing import machine_summary, pin_to_core, time_interleaved_ms
from mae.model import create_model, describe
from spaces.config import CompressionConfig
from toolkit import onnx_quant
from toolkit.onnx_static import ran_op_types

PRESET = "mae_vit_tiny_p4_28"
ROWS = ((13, 192), (50, 128), (50, 192), (197, 192), (197, 768))


def add_layernorm(tokens: int, dim: int, shaped: bool, path: Path) -> list[dict]:
    """``LayerNorm(a + b)`` on ``[1, tokens, dim]``; ``shaped``: the inputs declare their shape (ORT fuses)."""
    dims = ["batch", tokens, dim] if shaped else None
    a, b = (helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n in ("a", "b"))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)
    gamma = numpy_helper.from_array(np.ones(dim, np.float32), "gamma")
    beta = numpy_helper.from_array(np.zeros(dim, np.float32), "beta")
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-6)]
    graph = helper.make_graph(nodes, "add_layernorm", [a, b], [y], [gamma, beta])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return [{"name": n, "shape": [1, tokens, dim]} for n in ("a", "b")]


def int8_models() -> dict[str, tuple[str, CompressionConfig]]:
    """Dynamic-int8 variants of the embedded default: uniform ones and three of the search space's samples."""
    out, shapes = {}, {kind: describe(create_model(PRESET, kind=kind), name=PRESET) for kind in ("mae", "classifier")}
    for kind, shape in shapes.items():
        d = CompressionConfig.identity(shape).to_dict()
        for b in d["blocks"] + (d.get("decoder_blocks") or []):
            b["weight_bits"] = {k: 8 for k in b["weight_bits"]}
        out[f"{kind}: every Linear dynamic int8"] = (kind, CompressionConfig.from_dict(d))
    picked = [c for c in sample_configs(shapes["mae"], 12, seed=2)
              if any(8 in b.weight_bits.values() for b in c.blocks)][:3]
    out.update({f"mae: sampled config {i}": ("mae", c) for i, c in enumerate(picked)})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last one)")
    args = p.parse_args()
    pin_to_core(args.cpu)
    print(f"# {machine_summary()}; 1 thread\n")
    with tempfile.TemporaryDirectory() as tmp:
        rows, ran = {}, {}
        for t, d in ROWS:
            for shaped in (True, False):
                path = Path(tmp) / f"row_{t}_{d}_{int(shaped)}.onnx"
                rows[(t, d, shaped)] = (path, add_layernorm(t, d, shaped, path))
                ran[(t, d, shaped)] = "+".join(sorted(ran_op_types(path)))
        timed = time_interleaved_ms(rows, rounds=args.rounds, repeats=2000, warmup=100, progress=False)
        print("## 1. LayerNorm(a + b) alone\n")
        print("| tokens x width | shapes declared: ORT runs | µs | no shapes: ORT runs | µs | fused / unfused |")
        print("|---|---|---|---|---|---|")
        for t, d in ROWS:
            fused, plain = timed[(t, d, True)]["latency_ms"], timed[(t, d, False)]["latency_ms"]
            print(f"| {t} x {d} | {ran[(t, d, True)]} | {1e3 * fused:.1f} | {ran[(t, d, False)]} | {1e3 * plain:.1f} | "
                  f"{fused / plain:.2f} |")

        files, sln = {}, {}
        for i, (name, (kind, cfg)) in enumerate(int8_models().items()):
            now = Path(tmp) / f"m{i}.onnx"
            inputs = model_item(PRESET, kind, cfg, f"m{i}").build(now)
            old = Path(tmp) / f"m{i}_shapes.onnx"
            keep = onnx_quant._same_value_info
            onnx_quant._same_value_info = lambda quantized, source: quantized  # the export before the fix
            try:
                model_item(PRESET, kind, cfg, f"m{i}").build(old)
            finally:
                onnx_quant._same_value_info = keep
            for tag, path in (("as exported", now), ("before", old)):
                files[(name, tag)] = (path, inputs)
                sln[(name, tag)] = ran_op_types(path)["SkipLayerNormalization"]
        timed = time_interleaved_ms(files, rounds=args.rounds, repeats=300, warmup=20, progress=True)
        print("\n## 2. Whole dynamic-int8 models (the embedded default)\n")
        print("| model | before (the quantizer's shapes kept): SkipLayerNorms, ms | now: SkipLayerNorms, ms | change |")
        print("|---|---|---|---|")
        for name in dict.fromkeys(n for n, _ in files):
            old, now = timed[(name, "before")]["latency_ms"], timed[(name, "as exported")]["latency_ms"]
            print(f"| {name} | {sln[(name, 'before')]}, {old:.3f} | {sln[(name, 'as exported')]}, "
                  f"{now:.3f} | {100 * (now / old - 1):+.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
