"""Issue 16 diagnostic: what ONNX Runtime runs for a token-merging model (benchmarks/README.md section 13).

Prints, for the shipped classifier plain and merging 1/16 of its tokens per block, the nodes of block 1 in
ONNX Runtime's optimised graph, against the nodes of one ``merge_item`` micro-benchmark copy (what the
predictor's merge operator is fitted on); and the token dimension ONNX shape inference (data propagation
on) gives the MLP of block 2: a number when the export writes token counts as constants
(``mae.tome.static_dim``), a symbol when they are shape arithmetic; and the whole optimised graph of the
1/4 schedule as exported (batch 1, ``toolkit.export``) against the same model with a dynamic batch axis.

    python benchmarks/tome_graph.py            # seconds
"""
from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from evaluators.latency.measure.bench_modules import Merges, export_module  # noqa: E402
from mae.model import create_model, describe  # noqa: E402
from spaces.config import CompressionConfig  # noqa: E402
from spaces.space import merge_schedule  # noqa: E402
from toolkit.export import export_onnx  # noqa: E402
from toolkit.tokens import apply_token_merging  # noqa: E402


def optimised(path: Path) -> onnx.GraphProto:
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(path.with_suffix(".opt.onnx"))
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return onnx.load(so.optimized_model_filepath).graph


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = create_model("mae_vit_tiny_p4_28").eval()
        ident = CompressionConfig.identity(describe(model))
        export_onnx(model, tmp / "plain.onnx")
        apply_token_merging(model, replace(ident, blocks=merge_schedule(ident.blocks, 0.0625, 50)))
        export_onnx(model, tmp / "merge.onnx")
        export_module(Merges(1, 50, 3), (torch.randn(1, 50, 192), torch.randn(1, 3, 50, 64)), tmp / "item.onnx",
                      ["x0", "k0"], static=True)  # as op_items.merge_item builds it
        export_module(Merges(1, 50, 3), (torch.randn(1, 50, 192), torch.randn(1, 3, 50, 64)), tmp / "item_dyn.onnx",
                      ["x0", "k0"])
        counts = {}
        for name in ("plain", "merge", "item", "item_dyn"):
            graph = optimised(tmp / f"{name}.onnx")
            counts[name] = len(graph.node) if name.startswith("item") else sum(n.name.startswith("/blocks.1/") for n in graph.node)
        print(f"ONNX Runtime's optimised graph: block 1 plain {counts['plain']} nodes, merging {counts['merge']} "
              f"(+{counts['merge'] - counts['plain']}); one merge_item copy {counts['item']} nodes as timed (static "
              f"batch), {counts['item_dyn']} with a dynamic batch axis (how it was timed up to run 9)")
        inferred = onnx.shape_inference.infer_shapes(onnx.load(str(tmp / "merge.onnx")), data_prop=True)
        dims = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
        fc1 = next(n for n in inferred.graph.node if n.name.startswith("/blocks.2/mlp/fc1/MatMul"))
        print(f"token dimension of block 2's MLP input after two merges, as shape inference sees it: "
              f"{dims[fc1.output[0]][1]} (expected 41)")
        quarter = create_model("mae_vit_tiny_p4_28").eval()
        apply_token_merging(quarter, replace(ident, blocks=merge_schedule(ident.blocks, 0.25, 50)))
        export_onnx(quarter, tmp / "quarter.onnx")
        real_export = torch.onnx.export

        def dynamic_batch(*a, **k):  # what the export did before merging models got a static batch
            return real_export(*a, **{**k, "dynamic_axes": {"images": {0: "batch"}, "logits": {0: "batch"}}})

        with mock.patch("torch.onnx.export", dynamic_batch):
            export_onnx(quarter, tmp / "quarter_dyn.onnx")
        n = {k: optimised(tmp / f"{k}.onnx").node for k in ("quarter", "quarter_dyn")}
        print(f"merge 1/4, whole optimised graph: {len(n['quarter'])} nodes as exported (static batch 1, "
              f"{sum(x.op_type == 'Shape' for x in n['quarter'])} Shape), {len(n['quarter_dyn'])} with a dynamic batch axis "
              f"({sum(x.op_type == 'Shape' for x in n['quarter_dyn'])} Shape)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
