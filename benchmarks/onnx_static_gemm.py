"""Why a token-merging export gives its Linears' biases the shape [1, 1, N]: ONNX Runtime's MatMulAddFusion.

A merging model is exported at a static shape (``toolkit.export.export_onnx``: against a symbolic batch the
merges' index arithmetic would stay in the graph). With every shape known, ONNX Runtime's ``MatMulAddFusion``
rewrites a Linear's MatMul + Add on ``[1, T, K]`` as Reshape + Gemm + Reshape, and it runs before the QDQ
fusions, so a static-int8 (``act_bits`` 8) Linear keeps its weight ``DequantizeLinear``: the weight is
dequantized on every call and multiplied in fp32. ``toolkit.onnx_quant`` (static int8 on a static-shape graph)
now gives those Linears' biases the shape ``[1, 1, N]`` (``toolkit.onnx_static.keep_bias_adds``), which the
fusion does not take; the MatMuls stay and become integer kernels, as in the dynamic-batch graphs and the
operator rows the predictor is fitted on. Other Linears keep ORT's Gemm (as fast or a few per cent faster). This script prints what that changes,
on this machine, for the merging classifiers the host proof samples (``sample_configs(..., seed=3)`` with
token merging):

1. as sampled (5 of the 12 with ``act_bits`` 8);
2. as the default profile deploys them (``LatencyPredictor.deployable_config``: every one at ``act_bits`` 32);
3. merging only, fp32 (ToMe's constant schedule).

Each model is exported twice, now and as before (the same code without ``keep_bias_adds``; session 16 first
applied it to every Linear of a merging model, and fp32 and fp16 Linears ran a little slower that way); the table gives
the lowest pass medians (one core, one ONNX Runtime thread, interleaved passes: the multi-pass rule) and how
many ``DequantizeLinear`` / ``Gemm`` nodes ONNX Runtime runs.

    .venv/bin/python benchmarks/onnx_static_gemm.py            # ~4 min
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

import toolkit.onnx_quant as oq
from evaluators.latency.measure.model_items import model_item, sample_configs
from evaluators.latency.measure.ort_timing import machine_summary, pin_to_core, time_interleaved_ms
from evaluators.latency.predict.predictor import LatencyPredictor
from mae.model import create_model, describe
from spaces.config import CompressionConfig
from spaces.space import merge_schedule
from toolkit.onnx_static import ran_op_types

PRESET = "mae_vit_tiny_p4_28"
MERGING = frozenset({"prune", "quant", "lowrank", "tokens"})


def models() -> dict[str, CompressionConfig]:
    shape = describe(create_model(PRESET), name=PRESET)
    sampled = sample_configs(shape, 12, seed=3, techniques=MERGING)
    predictor = LatencyPredictor()
    out = {f"sampled {i} (act_bits {c.act_bits})": c for i, c in enumerate(sampled)}
    out.update({f"deployed {i}": predictor.deployable_config(shape, c, task="classify") for i, c in enumerate(sampled)})
    ident = CompressionConfig.identity(shape)
    out["merging only 1/4, fp32"] = replace(ident, blocks=merge_schedule(ident.blocks, 0.25, 1 + shape.num_patches))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last one)")
    args = p.parse_args()
    pin_to_core(args.cpu)
    print(f"# {machine_summary()}; 1 thread\n")
    files, ops = {}, {}
    keep = oq.keep_bias_adds
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, cfg) in enumerate(models().items()):
            for tag, fix in (("now", keep), ("before", lambda model, matmuls: 0)):
                oq.keep_bias_adds = fix
                try:
                    path = Path(tmp) / f"m{i}_{tag}.onnx"
                    inputs = model_item(PRESET, "classifier", cfg, f"m{i}").build(path)
                finally:
                    oq.keep_bias_adds = keep
                files[(name, tag)] = (path, inputs)
                ops[(name, tag)] = ran_op_types(path)
        timed = time_interleaved_ms(files, rounds=args.rounds, repeats=200, warmup=20, progress=True)
    print("| merging classifier | before: ms (DequantizeLinear, Gemm run) | now: ms (DequantizeLinear, Gemm run) | "
          "now / before |")
    print("|---|---|---|---|")
    ratios: dict[str, list[float]] = {}
    for name in dict.fromkeys(n for n, _ in files):
        b, n = timed[(name, "before")]["latency_ms"], timed[(name, "now")]["latency_ms"]
        ob, on = ops[(name, "before")], ops[(name, "now")]
        print(f"| {name} | {b:.3f} ({ob['DequantizeLinear']}, {ob['Gemm']}) | {n:.3f} ({on['DequantizeLinear']}, "
              f"{on['Gemm']}) | {n / b:.3f} |")
        group = ("act_bits 8" if "act_bits 8" in name else "sampled, act_bits 32" if name.startswith("sampled")
                 else "deployed" if name.startswith("deployed") else "merging only")
        ratios.setdefault(group, []).append(n / b)
    print()
    for group, r in ratios.items():
        print(f"{group}: now / before median {np.median(r):.3f}, range {min(r):.3f}-{max(r):.3f} (n={len(r)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
