"""ONNX export of a (compressed) classifier or MAE, with Linears addressable by their module names.

``export_onnx`` uses the classic TorchScript exporter (``dynamo=False``): on torch 2.14 it takes
~0.2 s for the test model against ~5 s for the dynamo exporter, and it names every node after the
module scope it came from (``/blocks.0/attn/qkv/MatMul``, ``/blocks.0/attn/qkv/first/MatMul``),
which is how :mod:`toolkit.onnx_quant` finds the MatMul of each ``nn.Linear``. After export:

* every ``Gemm`` with a constant weight (the head, whose input is 2-D) is rewritten as
  ``MatMul`` + ``Add``, so every Linear is a ``MatMul`` (ORT's dynamic quantizer and MatMulNBits
  handle MatMul only);
* each ``nn.Linear`` of the model is checked to map to exactly one MatMul whose constant weight
  equals ``weight.T``: the naming contract is verified, not assumed.

A full MAE (``MaskedAutoencoder``) is exported as *images -> pixel predictions* with one fixed mask
pattern baked in as constants (``mask_ratio``, ``mask_seed``): the graph embeds all patches, gathers
the K visible ones, runs the encoder on 1 + K tokens and the decoder on 1 + L tokens, and returns
``pred: [N, L, p*p*C]``. The cost does not depend on which patches are visible, so this is what a
latency measurement needs; accuracy of reconstruction is scored in PyTorch.

Fake-quantized Linears (``toolkit.quant.FakeQuantLinear``) are exported as plain Linears holding
their quantized weight values; the integer graph is made by :func:`toolkit.onnx_quant.quantize_onnx`.
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from mae.model import MaskedAutoencoder
from mae.tome import merges_any
from spaces.config import CompressionConfig
from toolkit.lowrank import LowRankLinear, linear_sites
from toolkit.onnx_quant import (  # noqa: F401
    INT4_BLOCK_SIZE,
    NodeQuant,
    QuantizeReport,
    int4_block_size,
    linear_nodes,
    module_of,
    quantize_onnx,
)

OPSET = 17  # LayerNormalization is a single op from 17; QDQ per-channel needs >= 13.


class _FixedMaskMAE(MaskedAutoencoder):
    """A view of a MaskedAutoencoder (shares its modules) whose forward uses a fixed mask pattern."""

    ids_keep: torch.Tensor     # [K] visible patch indices
    ids_restore: torch.Tensor  # [L] position of each patch in the (visible, masked) order

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """``imgs: [N, C, H, W]`` -> ``pred: [N, L, p*p*C]``."""
        x = self.embed_patches(imgs)[:, self.ids_keep]                    # [N, K, D]
        latent = self.norm(self.run_blocks(self.prepend_cls(x)))          # [N, 1 + K, D]
        ids = self.ids_restore.unsqueeze(0).expand(imgs.shape[0], -1)     # [N, L]
        return self.forward_decoder(latent, ids)


def _fixed_mask_view(mae: MaskedAutoencoder, mask_ratio: float, seed: int) -> nn.Module:
    """Shallow copy with the class swapped: same module names (``blocks.0.attn.qkv``), no wrapper
    prefix in the exported node names. ``ids_keep`` / ``ids_restore`` become graph constants."""
    length = mae.arch.num_patches
    keep = int(length * (1 - mask_ratio))
    perm = torch.randperm(length, generator=torch.Generator().manual_seed(seed))
    view = copy.copy(mae)
    view.__class__ = _FixedMaskMAE
    object.__setattr__(view, "ids_keep", perm[:keep].clone())
    object.__setattr__(view, "ids_restore", torch.argsort(perm))
    return view


def _plain_linears_(model: nn.Module) -> None:
    """Replace fake-quantized Linears by plain ``nn.Linear``s holding their quantized values, in
    place (their input quantizers are the ONNX quantizer's job, from the same calibration data)."""
    try:
        from toolkit.quant import FakeQuantLinear, fake_quant_weight
    except ImportError:  # quant.py absent: nothing to convert
        return
    for name, m in list(model.named_modules()):
        if isinstance(m, FakeQuantLinear):
            plain = nn.Linear(m.in_features, m.out_features, m.bias is not None)
            with torch.no_grad():
                plain.weight.copy_(fake_quant_weight(m.weight, m.weight_bits))
                if m.bias is not None:
                    plain.bias.copy_(m.bias)
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, plain)


def gemm_to_matmul(model: onnx.ModelProto) -> None:
    """Rewrite ``Gemm(A, B[, C])`` with constant B, alpha = beta = 1, no transA as MatMul (+ Add),
    in place. ``/head/Gemm`` becomes ``/head/MatMul`` and ``/head/Add`` (same scope)."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != "Gemm" or node.input[1] not in inits or attrs.get("transA", 0)
                or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
            nodes.append(node)
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        w = w.T if attrs.get("transB", 0) else w                              # [in, out]
        w_name = node.input[1] + "_matmul"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w), w_name))
        scope = node.name.rsplit("/", 1)[0]
        has_bias = len(node.input) > 2 and node.input[2] != ""
        mm_out = node.output[0] + "_matmul" if has_bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], w_name], [mm_out], name=f"{scope}/MatMul"))
        if has_bias:
            nodes.append(helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=f"{scope}/Add"))
    graph.ClearField("node")
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    keep = [i for i in graph.initializer if i.name in used]  # drop the now unused [out, in] copies
    graph.ClearField("initializer")
    graph.initializer.extend(keep)


def _check_linears(model: onnx.ModelProto, torch_model: nn.Module) -> None:
    """Every ``nn.Linear`` must map to one MatMul whose weight is its ``weight.T`` ([in, out])."""
    nodes = linear_nodes(model)
    inits = {i.name: i for i in model.graph.initializer}
    for name, m in torch_model.named_modules():
        if not isinstance(m, nn.Linear):
            continue
        if name not in nodes:
            raise RuntimeError(f"exported graph has no MatMul for Linear {name!r}")
        w = numpy_helper.to_array(inits[nodes[name].input[1]])
        if w.shape != (m.in_features, m.out_features) or not np.allclose(w, m.weight.detach().T.numpy(), atol=1e-6):
            raise RuntimeError(f"the MatMul named after {name!r} does not hold that Linear's weight")


def export_onnx(model: nn.Module, path: str | Path, *, input_shape: tuple[int, ...] | None = None,
                opset: int = OPSET, mask_ratio: float = 0.75, mask_seed: int = 0) -> Path:
    """Export ``model`` (CPU, eval) to ``path``; batch dimension dynamic (static for a token-merging model,
    see below). Returns the path.

    Classifier: input ``images: [N, C, H, W]`` float32 -> ``logits: [N, num_classes]``.
    ``MaskedAutoencoder``: ``images`` -> ``pred: [N, L, p*p*C]`` with a fixed mask (module doc).
    ``input_shape`` defaults to ``(1, in_chans, img_size, img_size)`` from ``model.arch``.

    A model that merges tokens (``mae.tome``) is exported at the batch of ``input_shape`` (edge deployment:
    1): against a symbolic batch, each merge's index arithmetic (shape, gather, concat, expand) is graph
    nodes ONNX Runtime cannot fold -- 637 nodes instead of 369 at a 1/4 schedule on the default model
    (``benchmarks/tome_graph.py``) -- and the predictor's merge rows are static exports too.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arch = model.arch
    shape = input_shape or (1, arch.in_chans, arch.img_size, arch.img_size)
    # A float32 CPU copy: .cpu() / .float() / eval() would otherwise change the caller's model.
    src = copy.deepcopy(model).cpu().float().eval()
    _plain_linears_(src)
    is_mae = isinstance(src, MaskedAutoencoder)
    traced = _fixed_mask_view(src, mask_ratio, mask_seed) if is_mae else src
    out_name = "pred" if is_mae else "logits"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(traced, (torch.zeros(shape),), str(path), dynamo=False, opset_version=opset,
                          input_names=["images"], output_names=[out_name],
                          dynamic_axes=None if merges_any(getattr(src, "blocks", [])) else
                          {"images": {0: "batch"}, out_name: {0: "batch"}})
    proto = onnx.load(str(path))
    gemm_to_matmul(proto)
    _check_linears(proto, src)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def linear_bits_for(model: nn.Module, config: CompressionConfig) -> dict[str, int]:
    """``{module name: weight bits}`` for :func:`quantize_onnx`, for a model compressed by ``config``.

    Low-rank Linears give their bits to ``<name>.first`` and ``<name>.second``; Linears removed by
    pruning are left out, and so are Linears outside the blocks (head, decoder_embed: fp32).
    """
    out: dict[str, int] = {}
    for site in linear_sites(model, config):
        if site.module is None or site.pruned:
            continue
        bits = site.block.weight_bits[site.key]
        names = [f"{site.name}.first", f"{site.name}.second"] if isinstance(site.module, LowRankLinear) else [site.name]
        out.update({n: bits for n in names})
    return out
