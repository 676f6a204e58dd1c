"""Shapes of an uncompressed model, as plain data: what configs are validated against and what the
latency predictor decomposes. ``mae`` builds one from a model (``mae.describe``); nothing here imports
torch, so the search space and the predictor work without building a model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

LINEARS = ("qkv", "proj", "fc1", "fc2")


def mergeable_tokens(tokens: int) -> int:
    """Most tokens one block can merge (ToMe's bipartite matching, ``mae.tome``): the A set (even
    positions, ``ceil(tokens / 2)``) without the protected class token, i.e. ``(tokens - 1) // 2``. A
    block therefore keeps at least ``(tokens + 1) // 2`` tokens, and never fewer than 2 from 3 or more."""
    return max(0, (tokens - 1) // 2)


def token_flow(tokens: int, merges: "list[int] | tuple[int, ...]") -> list[tuple[int, int]]:
    """``[(tokens in, tokens merged)]`` per block for ``merges`` asked per block, each clamped to
    :func:`mergeable_tokens` exactly as the model clamps it; ``tokens`` entering the first block."""
    flow = []
    for r in merges:
        r_eff = min(r, mergeable_tokens(tokens))
        flow.append((tokens, r_eff))
        tokens -= r_eff
    return flow


@dataclass(frozen=True)
class BlockShape:
    """One transformer block: width ``dim``, ``heads`` x ``head_dim`` attention, ``mlp_hidden`` units."""

    dim: int
    heads: int
    head_dim: int
    mlp_hidden: int

    def linear_dims(self, heads: int | None = None, mlp_hidden: int | None = None) -> dict[str, tuple[int, int]]:
        """``{linear: (in_features, out_features)}`` with ``heads``/``mlp_hidden`` kept (default: all)."""
        h = self.heads if heads is None else heads
        m = self.mlp_hidden if mlp_hidden is None else mlp_hidden
        attn = h * self.head_dim
        return {"qkv": (self.dim, 3 * attn), "proj": (attn, self.dim), "fc1": (self.dim, m), "fc2": (m, self.dim)}


@dataclass(frozen=True)
class ModelShape:
    """A ViT classifier or a full MAE (decoder fields set), before compression.

    ``num_patches`` L = (img_size / patch_size)^2; the encoder sees 1 + L tokens when classifying and
    1 + L(1 - mask_ratio) when reconstructing; the decoder sees 1 + L.
    """

    name: str
    img_size: int
    patch_size: int
    in_chans: int
    embed_dim: int
    num_classes: int
    blocks: tuple[BlockShape, ...]
    decoder_dim: int = 0
    decoder_blocks: tuple[BlockShape, ...] = ()

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    def encoder_tokens(self, task: str = "classify", mask_ratio: float = 0.75) -> int:
        """Tokens entering the encoder: 1 + L when classifying, 1 + int(L (1 - mask_ratio)) visible
        patches when reconstructing (``mae.model.random_masking``)."""
        return 1 + (int(self.num_patches * (1 - mask_ratio)) if task == "reconstruct" else self.num_patches)

    @property
    def is_mae(self) -> bool:
        return self.decoder_dim > 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelShape":
        blocks = tuple(BlockShape(**b) for b in d["blocks"])
        dec = tuple(BlockShape(**b) for b in d.get("decoder_blocks", ()))
        rest = {k: v for k, v in d.items() if k not in ("blocks", "decoder_blocks")}
        return cls(blocks=blocks, decoder_blocks=dec, **rest)
