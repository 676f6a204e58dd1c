"""Token merging (ToMe: Bolya et al., "Token Merging: Your ViT but Faster", ICLR 2023) in the encoder.

A :class:`MergingBlock` (timm's ``Block``) with ``merge_r = r > 0`` (set by the toolkit) runs its
attention on all its tokens, then merges ``r`` pairs of similar tokens before its MLP, so the MLP and
every later block see ``r`` fewer tokens:

* **bipartite soft matching** on the attention keys (mean over heads, cosine similarity): tokens
  alternate into sets A (even positions) and B (odd); each A token picks its most similar B token;
  the ``r`` best-matched A tokens are merged into their partners. The class token (position 0, in A)
  is protected: it is never merged;
* **size-weighted average**: every token carries how many patches it stands for (``size``), and a
  merged token is the size-weighted mean of its parts;
* **proportional attention**: later attentions add ``log(size)`` to the scores, so a token that
  stands for s patches weighs as s tokens would.

Unlike ToMe's timm patch, the encoder's output is **unmerged**: every original token position gets
its merged token back (a gather through ``source``, the map from original position to current token),
so the output keeps its ``[N, T0, D]`` shape. Mean pooling over it is exactly the size-weighted mean
of the merged tokens, the MAE decoder finds its ``1 + K`` latents where it expects them, and the
token-feature term of distillation compares like with like. Nothing changes for a model that merges
nothing (the plain block loop runs).

Why our own code and not the ``tome`` package: it is not on PyPI (a GitHub install only), patches
timm classes globally, and its merge uses ``scatter_reduce`` with ``mean`` and in-place index tricks that
the TorchScript ONNX exporter does not write for ONNX Runtime. Here every step is a gather,
``scatter_add`` (ONNX ``ScatterElements`` with ``reduction="add"``, opset >= 16) or a matmul.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.models.vision_transformer import Block
from torch import nn

from spaces.shape import mergeable_tokens


def static_dim(x: torch.Tensor, dim: int) -> int:
    """``x.shape[dim]`` as a Python int, also while the ONNX exporter traces: token counts and widths
    are then graph constants (only the batch stays dynamic). Traced as a shape computation instead, the
    token count after a merge is unknown to ONNX Runtime's shape inference, so it could not plan the
    later blocks as it plans a plain model's."""
    return int(x.shape[dim])


def merge_r(block: nn.Module) -> int:
    """Tokens ``block`` merges after its attention (0: none)."""
    return int(getattr(block, "merge_r", 0) or 0)


def merges_any(blocks: nn.ModuleList) -> bool:
    return any(merge_r(b) > 0 for b in blocks)


def _has_attention(block: nn.Module) -> bool:
    return hasattr(block.attn, "qkv")  # a pruned-away attention is a RemovedBranch (toolkit.prune)


def size_bias(size: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Proportional attention: ``size: [N, T, 1]`` -> additive score bias ``log(size)`` ``[N, 1, 1, T]``
    (timm's ``attn_mask`` for both its fused and its explicit path); None before any merge."""
    return None if size is None else size.log().transpose(1, 2).unsqueeze(1).to(dtype)


def head_mean_keys(qkv_out: torch.Tensor, attn: nn.Module) -> torch.Tensor:
    """The matching metric from a ``qkv`` Linear's output ``[N, T, 3 * attn_dim]``: the keys (after
    ``k_norm``, as timm's attention uses them) averaged over heads, ``[N, T, head_dim]``."""
    n, t = qkv_out.shape[0], static_dim(qkv_out, 1)
    k = qkv_out.reshape(n, t, 3, attn.num_heads, attn.head_dim)[:, :, 1]     # [N, T, H, hd]
    return attn.k_norm(k).mean(dim=2)


@dataclass
class MergeState:
    """What a merging encoder carries from block to block: ``size [N, T, 1]`` (patches per token; None
    until the first merge) and ``source [N, T0]`` (original position -> current token)."""

    size: torch.Tensor | None
    source: torch.Tensor


class MergingBlock(Block):
    """timm's ``Block`` that can merge ``merge_r`` tokens between its attention and its MLP.

    Called as timm calls a block (``blk(x)``) it *is* timm's block. Called with ``state=`` (by
    :func:`run_merging_blocks`) it runs attention with proportional attention (``log(size)`` as the
    mask timm's ``Attention`` takes), reads the keys off its ``qkv`` Linear's output (a forward hook:
    the Linear may be a pruned, low-rank or fake-quantized replacement), merges, and runs the MLP on
    the fewer tokens. Everything happens inside this module's call, and the attention and MLP are
    called as modules, so the ONNX exporter names the Linears ``/blocks.i/attn/qkv/...`` as for a
    plain block (what :mod:`toolkit.export` checks and :mod:`toolkit.onnx_quant` relies on).
    Parameters and their names are timm's: checkpoints load unchanged.
    """

    merge_r: int = 0  # the toolkit sets it per block (toolkit.tokens)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False,
                state: MergeState | None = None) -> torch.Tensor:
        """``x: [N, T, D]`` -> ``[N, T, D]`` (no ``state``) or ``[N, T - r, D]`` (``state`` updated)."""
        if state is None:
            return super().forward(x, attn_mask=attn_mask, is_causal=is_causal)
        t = static_dim(x, 1)
        r = min(merge_r(self), mergeable_tokens(t))
        if _has_attention(self):
            qkv_out: list[torch.Tensor] = []
            hook = self.attn.qkv.register_forward_hook(lambda _m, _i, out: qkv_out.append(out))
            try:
                branch = self.attn(self.norm1(x), attn_mask=size_bias(state.size, x.dtype))
            finally:
                hook.remove()
            x = x + self.drop_path1(self.ls1(branch))
            keys = head_mean_keys(qkv_out[0], self.attn)
        else:
            keys = x  # no attention left in this block: match on the tokens themselves
        if r > 0:
            index = bipartite_merge_index(keys, r)
            size = torch.ones_like(x[..., :1]) if state.size is None else state.size
            x, state.size = merge_tokens(x, size, index, t - r)
            state.source = index.gather(1, state.source)
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))  # a removed MLP adds a 0-dim zero


def bipartite_merge_index(metric: torch.Tensor, r: int) -> torch.Tensor:
    """Where each token goes when ``r`` tokens are merged: ``metric: [N, T, C]`` -> ``[N, T]`` long,
    values in ``[0, T - r)``; token 0 (the class token) always maps to 0.

    Kept A tokens come first in their original order, then the B tokens in theirs; a merged A token
    maps to the position of its most similar B token.
    """
    n, t = metric.shape[0], static_dim(metric, 1)
    metric = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    a, b = metric[:, 0::2], metric[:, 1::2]                         # [N, ceil(T/2), C], [N, floor(T/2), C]
    na, nb = static_dim(a, 1), static_dim(b, 1)
    scores = a @ b.transpose(-1, -2)                                # [N, na, nb]
    # protect the class token: the lowest possible score, so it is never among the r merged
    protect = torch.zeros(na, 1, dtype=scores.dtype, device=scores.device)
    protect[0] = -torch.inf
    node_max, node_idx = (scores + protect).max(dim=-1)              # [N, na]
    order = node_max.argsort(dim=-1, descending=True)
    src_idx, unm_idx = order[:, :r], order[:, r:].sort(dim=-1).values
    kept = na - r
    pos_a = torch.zeros(n, na, dtype=torch.long, device=metric.device)
    pos_a = pos_a.scatter(1, unm_idx, torch.arange(kept, device=metric.device).expand(n, -1))
    pos_a = pos_a.scatter(1, src_idx, kept + node_idx.gather(1, src_idx))
    pos_b = kept + torch.arange(nb, device=metric.device).expand(n, -1)
    # back from the (A, B) order to token order: token i is A[i // 2] when i is even, B[i // 2] when odd
    interleave = torch.tensor([i // 2 if i % 2 == 0 else na + i // 2 for i in range(t)], device=metric.device)
    return torch.cat([pos_a, pos_b], dim=1)[:, interleave]


def merge_tokens(x: torch.Tensor, size: torch.Tensor, index: torch.Tensor, t_out: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted merge: ``x: [N, T, D]``, ``size: [N, T, 1]``, ``index: [N, T]`` -> ``x [N, t_out, D]``,
    ``size [N, t_out, 1]``."""
    n, d = x.shape[0], static_dim(x, 2)
    new_size = size.new_zeros(n, t_out, 1).scatter_add(1, index.unsqueeze(-1), size)
    summed = x.new_zeros(n, t_out, d).scatter_add(1, index.unsqueeze(-1).expand(-1, -1, d), x * size)
    return summed / new_size, new_size


def run_merging_blocks(blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """The encoder's blocks (:class:`MergingBlock`) on ``x: [N, T0, D]`` with token merging; returns
    the unmerged ``[N, T0, D]``."""
    n, t0 = x.shape[0], static_dim(x, 1)
    state = MergeState(size=None, source=torch.arange(t0, device=x.device).expand(n, -1))
    for blk in blocks:
        x = blk(x, state=state)
    return x.gather(1, state.source.unsqueeze(-1).expand(-1, -1, static_dim(x, 2)))
