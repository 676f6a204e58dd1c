"""The torch modules of the operator micro-benchmarks (:mod:`evaluators.latency.measure.op_items`).

Each mirrors the code of ``mae.model`` / timm that produces the operator in a real model, so that the
exported glue (reshapes, casts, fusions) is the same. Imported only when a benchmark is built:
``maec devices`` and prediction never import torch.
"""
from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from torch import nn


class ParallelLinear(nn.Module):
    """R Linears ``k -> n`` on one input ``x: [B, T, k]`` -> R outputs ``[B, T, n]``, each optionally
    followed by GELU (ORT then fuses bias + GELU into BiasGelu, as in a real MLP)."""

    def __init__(self, k: int, n: int, r: int, bias: bool, gelu: bool = False):
        super().__init__()
        self.names = [f"l{i}" for i in range(r)]
        for name in self.names:
            setattr(self, name, nn.Linear(k, n, bias=bias))
        self.act = nn.GELU() if gelu else nn.Identity()

    def forward(self, *xs):  # one input per branch: see linear_item
        return tuple(self.act(getattr(self, n)(x)) for n, x in zip(self.names, xs))


class ChainLinear(nn.Module):
    """R pairs of Linears in sequence on one input ``x: [B, T, k]``: ``k -> n`` (optionally GELU), then
    ``n -> k``, R times; one output ``[B, T, k]``. Each Linear reads the previous one's output, as the
    Linears of a model (and a low-rank pair's two factors) do."""

    def __init__(self, k: int, n: int, r: int, bias: bool, gelu: bool = False):
        super().__init__()
        self.names = [f"l{i}" for i in range(2 * r)]
        for i, name in enumerate(self.names):
            setattr(self, name, nn.Linear(*((k, n) if i % 2 == 0 else (n, k)), bias=bias))
        self.act = nn.GELU() if gelu else nn.Identity()

    def forward(self, x):
        for i, name in enumerate(self.names):
            x = getattr(self, name)(x)
            x = self.act(x) if i % 2 == 0 else x
        return x


class Attentions(nn.Module):
    """R copies of timm's ``Attention.forward`` (qkv Linear, split heads, SDPA, merge, proj Linear)
    with ``heads`` x ``head_dim`` kept in a ``dim``-wide block, each on its own input ``[B, T, dim]``."""

    def __init__(self, dim: int, heads: int, head_dim: int, r: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.ModuleList(nn.Linear(dim, 3 * heads * head_dim) for _ in range(r))
        self.proj = nn.ModuleList(nn.Linear(heads * head_dim, dim) for _ in range(r))

    def forward(self, *xs):
        outs = []
        for qkv_l, proj, x in zip(self.qkv, self.proj, xs):
            B, N, _ = x.shape
            q, k, v = qkv_l(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            y = F.scaled_dot_product_attention(q, k, v)
            outs.append(proj(y.transpose(1, 2).reshape(B, N, self.heads * self.head_dim)))
        return tuple(outs)


class Chain(nn.Module):
    """R shape-preserving ops in a row on ``x: [B, T, D]``: LayerNorm (own weights) or residual add."""

    def __init__(self, kind: str, dim: int, r: int):
        super().__init__()
        self.kind, self.r = kind, r
        self.norms = nn.ModuleList(nn.LayerNorm(dim, eps=1e-6) for _ in range(r if kind == "layernorm" else 0))
        for m in self.norms:
            nn.init.normal_(m.weight)

    def forward(self, x):
        y = x
        for i in range(self.r):
            y = self.norms[i](y) if self.kind == "layernorm" else y + x
        return y


class Stem(nn.Module):
    """R patch embeddings (timm ``PatchEmbed``) on one image, or, on R token tensors (separate
    inputs, so none is merged), R class-token concats / mean pools as ``mae.model`` writes them, or
    R MAE masking gathers / decoder-input assemblies as ``toolkit.export``'s fixed-mask MAE runs them.
    ``tokens`` = L patches for mask / unshuffle (K = L / 4 visible)."""

    def __init__(self, kind: str, r: int, dim: int, img: int, patch: int, chans: int, tokens: int):
        super().__init__()
        self.kind = kind
        if kind == "conv":
            self.embeds = nn.ModuleList(PatchEmbed(img, patch, chans, dim) for _ in range(r))
        self.cls = nn.Parameter(torch.randn(r, 1, 1, dim))
        self.pos = nn.Parameter(torch.randn(r, 1, tokens + 1, dim))
        g = torch.Generator().manual_seed(0)
        perms = [torch.randperm(max(tokens, 1), generator=g) for _ in range(r)]
        self.register_buffer("keep", torch.stack([p[: max(tokens // 4, 1)] for p in perms]))
        self.register_buffer("restore", torch.stack([torch.argsort(p) for p in perms]))
        # the decoder's first norm1 follows the position add: ORT fuses the two (SkipLayerNorm with a
        # broadcast skip, slower than either alone), so the benchmark keeps that neighbour
        self.norms = nn.ModuleList(nn.LayerNorm(dim, eps=1e-6) for _ in range(r if kind == "unshuffle" else 0))

    def _unshuffle(self, i: int, x):  # mae.model.MaskedAutoencoder.forward_decoder, after decoder_embed
        ids = self.restore[i].unsqueeze(0).expand(x.shape[0], -1)
        n, length = ids.shape
        mask_tokens = self.cls[i].expand(n, length + 1 - x.shape[1], -1)
        patches = torch.cat([x[:, 1:], mask_tokens], dim=1)
        patches = torch.gather(patches, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        y = torch.cat([x[:, :1], patches], dim=1) + self.pos[i]
        return y + self.norms[i](y)  # the residual keeps the sum alive, as in a block

    def forward(self, *xs):
        if self.kind == "conv":
            return tuple(e(xs[0]) for e in self.embeds)
        if self.kind == "concat":
            return tuple(torch.cat([self.cls[i].expand(x.shape[0], -1, -1), x], dim=1) for i, x in enumerate(xs))
        if self.kind == "mask":
            return tuple(x[:, self.keep[i]] for i, x in enumerate(xs))
        if self.kind == "unshuffle":
            return tuple(self._unshuffle(i, x) for i, x in enumerate(xs))
        return tuple(x[:, 1:].mean(dim=1) for x in xs)  # pool


class Merges(nn.Module):
    """R token merges as ``mae.tome.run_merging_blocks`` runs one after a block's attention: keys
    ``[B, H, T, hd]`` averaged over heads, bipartite matching, size-weighted merge of ``x [B, T, D]``,
    and the source-map update; each on its own inputs. ``merge`` tokens merged."""

    def __init__(self, r: int, tokens: int, merge: int):
        super().__init__()
        self.r, self.merge = r, merge
        self.register_buffer("source", torch.arange(tokens).unsqueeze(0))

    def forward(self, *xs):
        from mae.tome import bipartite_merge_index, merge_tokens

        outs = []
        for i in range(self.r):
            x, k = xs[2 * i], xs[2 * i + 1]
            t = x.shape[1]
            index = bipartite_merge_index(k.mean(dim=1), self.merge)
            merged, size = merge_tokens(x, torch.ones_like(x[..., :1]), index, t - self.merge)
            source = index.gather(1, self.source.expand(x.shape[0], -1))
            outs += [merged, size, source]
        return tuple(outs)


class MergingChain(nn.Module):
    """``r`` ``mae.tome.MergingBlock``s (timm's block, as ``mae.model`` builds it) each merging ``merge``
    tokens, run by ``mae.tome.run_merging_blocks`` (output unmerged to ``[B, T0, D]``)."""

    def __init__(self, dim: int, heads: int, mlp: int, r: int, merge: int):
        super().__init__()
        from mae.tome import MergingBlock

        self.blocks = nn.ModuleList(MergingBlock(dim, heads, mlp_ratio=mlp / dim, qkv_bias=True,
                                                 norm_layer=functools.partial(nn.LayerNorm, eps=1e-6))
                                    for _ in range(r))
        for blk in self.blocks:
            blk.merge_r = merge

    def forward(self, x):
        from mae.tome import run_merging_blocks

        return run_merging_blocks(self.blocks, x)


def export_module(module, args: tuple, path: Path, input_names: list[str], static: bool = False) -> None:
    """TorchScript exporter, opset 17, batch dimension dynamic: the settings of ``toolkit.export`` (a
    dynamic batch keeps the shape arithmetic -- Shape, Gather, Concat, Sqrt -- that real models run).
    ``static``: batch fixed and Gemms rewritten as MatMul + Add, as ``toolkit.export`` exports a
    token-merging model (against a symbolic batch a merge's index arithmetic is 65 ORT nodes, static 27)."""
    module.eval()
    with torch.no_grad():
        out = module(*args)
    outputs = [f"y{i}" for i in range(len(out) if isinstance(out, tuple) else 1)]
    axes = None if static else {n: {0: "batch"} for n in input_names + outputs}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=17, input_names=input_names,
                          output_names=outputs, dynamic_axes=axes)
    if static:
        import onnx

        from toolkit.export import gemm_to_matmul

        proto = onnx.load(str(path))
        gemm_to_matmul(proto)
        onnx.save(proto, str(path))
