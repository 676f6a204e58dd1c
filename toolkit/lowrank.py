"""Low-rank factorisation of the block Linears by truncated SVD.

A Linear ``W: [out, in]`` becomes two thinner ones, ``first: [r, in]`` (no bias) and
``second: [out, r]`` (the original bias), so ``y = second(first(x))``. That costs ``r (in + out)``
multiply-adds per token instead of ``in * out``; a rank that does not save compute is skipped and
the reason recorded, because the search may propose it and a slower "compressed" layer helps nobody.

Order in the toolkit: prune -> low-rank -> quantize. Shapes are read from the live (pruned) modules,
and quantization gives ``first`` and ``second`` the bits of the Linear they replace.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn

from spaces.config import BlockConfig, CompressionConfig, ConfigError
from spaces.shape import LINEARS

# Where each configured Linear lives inside a timm ``Block``: (sub-module, attribute).
LINEAR_PATHS: dict[str, tuple[str, str]] = {
    "qkv": ("attn", "qkv"), "proj": ("attn", "proj"), "fc1": ("mlp", "fc1"), "fc2": ("mlp", "fc2"),
}


class LowRankLinear(nn.Module):
    """``y = second(first(x))`` with ``first: in -> rank`` (no bias) and ``second: rank -> out``.

    The attribute names ``first`` / ``second`` are part of the contract: the ONNX exporter and the
    quantizer address ``<linear>.first`` and ``<linear>.second``.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True,
                 device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if not 1 <= rank <= min(in_features, out_features):
            raise ValueError(f"rank {rank} must be in [1, min(in, out) = {min(in_features, out_features)}]")
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.first = nn.Linear(in_features, rank, bias=False, device=device, dtype=dtype)
        self.second = nn.Linear(rank, out_features, bias=bias, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [..., in]`` -> ``[..., out]`` via ``[..., rank]``."""
        return self.second(self.first(x))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


def saves_compute(in_f: int, out_f: int, rank: int) -> bool:
    """True when ``rank * (in + out) < in * out``: the two factors cost fewer multiply-adds."""
    return rank * (in_f + out_f) < in_f * out_f


@torch.no_grad()
def factorize(linear: nn.Linear, rank: int) -> tuple[LowRankLinear, float]:
    """Truncated SVD of ``linear.weight: [out, in]`` at ``rank``.

    ``W = U S V^T``; ``first.weight = sqrt(S_r) V_r^T: [r, in]``, ``second.weight = U_r sqrt(S_r): [out, r]``
    (splitting ``sqrt(S)`` keeps both factors on the same scale, which helps later quantization and
    fine-tuning). Returns the module and the retained energy ``sum(S[:r]^2) / sum(S^2)`` in [0, 1].
    """
    out_f, in_f = linear.weight.shape
    if not 1 <= rank <= min(in_f, out_f):
        raise ValueError(f"rank {rank} is not in [1, min(in, out) = {min(in_f, out_f)}] "
                         f"for a Linear {in_f} -> {out_f}")
    w = linear.weight.detach()
    # float64 SVD: the factors are cast back, but a full-rank split then reproduces the layer to ~1e-7.
    u, s, vh = torch.linalg.svd(w.double(), full_matrices=False)  # [out, k], [k], [k, in]
    root = s[:rank].sqrt()
    lr = LowRankLinear(in_f, out_f, rank, bias=linear.bias is not None, device=w.device, dtype=w.dtype)
    lr.first.weight.copy_((root[:, None] * vh[:rank]).to(w.dtype))
    lr.second.weight.copy_((u[:, :rank] * root[None, :]).to(w.dtype))
    if linear.bias is not None:
        lr.second.bias.copy_(linear.bias.detach())
    for p in lr.parameters():
        p.requires_grad_(linear.weight.requires_grad)
    total = float((s ** 2).sum())
    energy = float((s[:rank] ** 2).sum()) / total if total > 0 else 1.0  # a zero matrix loses nothing
    return lr, min(energy, 1.0)


@dataclass(frozen=True)
class LinearSite:
    """One configured Linear of one block: ``blocks.3.attn.qkv`` is (parent=attn, attr="qkv").

    ``module`` is None when pruning removed it: the config keeps 0 heads (qkv, proj) or 0 units
    (fc1, fc2), the block has no such sub-layer or attribute, or the Linear has a zero dimension.
    """

    name: str
    parent: nn.Module | None
    attr: str
    key: str
    block: BlockConfig
    pruned: bool = False

    @property
    def module(self) -> nn.Module | None:
        m = None if self.pruned or self.parent is None else getattr(self.parent, self.attr, None)
        if isinstance(m, nn.Linear) and 0 in (m.in_features, m.out_features):
            return None
        return m if isinstance(m, (nn.Linear, LowRankLinear)) else None


def linear_sites(model: nn.Module, config: CompressionConfig) -> Iterator[LinearSite]:
    """Every (block, Linear) the config speaks of, encoder then decoder, in ``LINEARS`` order.

    Removed Linears are yielded too (``module`` None) so callers can record why they skipped them.
    """
    groups = [("blocks", config.blocks)]
    if config.decoder_blocks:
        groups.append(("decoder_blocks", config.decoder_blocks))
    for prefix, cfg_blocks in groups:
        blocks = getattr(model, prefix, None)
        if not isinstance(blocks, nn.ModuleList):
            raise ConfigError(f"{prefix}: the config has {prefix} but the model has none")
        if len(blocks) != len(cfg_blocks):
            raise ConfigError(f"{prefix}: the config has {len(cfg_blocks)} blocks, the model has {len(blocks)}")
        for i, (blk, bc) in enumerate(zip(blocks, cfg_blocks)):
            live = bc.live_linears()
            for key in LINEARS:
                sub, attr = LINEAR_PATHS[key]
                yield LinearSite(f"{prefix}.{i}.{sub}.{attr}", getattr(blk, sub, None), attr, key, bc,
                                 pruned=key not in live)


@dataclass(frozen=True)
class LowRankEntry:
    """What ``apply_lowrank`` did to one Linear (plain data, for reports and JSON)."""

    module: str
    rank: int
    in_features: int | None
    out_features: int | None
    retained_energy: float | None
    applied: bool
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def apply_lowrank(model: nn.Module, config: CompressionConfig) -> list[LowRankEntry]:
    """Replace each block Linear that has a rank in ``config`` by its :func:`factorize` (in place).

    Run after pruning: ``in``/``out`` come from the live modules, and a rank above ``min(in, out)``
    raises :class:`~spaces.config.ConfigError` (a ``ValueError``). Skipped, with the reason in the
    entry: Linears removed by pruning, ranks that do not save compute, Linears already low-rank.
    """
    entries: list[LowRankEntry] = []
    for site in linear_sites(model, config):
        rank = site.block.ranks.get(site.key)
        if rank is None:
            continue
        m = site.module
        if m is None:
            entries.append(LowRankEntry(site.name, rank, None, None, None, False, "removed by pruning"))
            continue
        in_f, out_f = m.in_features, m.out_features
        if isinstance(m, LowRankLinear):
            entries.append(LowRankEntry(site.name, rank, in_f, out_f, None, False,
                                        f"already low-rank (rank {m.rank})"))
            continue
        if rank > min(in_f, out_f):
            raise ConfigError(f"{site.name}: rank {rank} is above min(in, out) = {min(in_f, out_f)} "
                              f"of the live Linear {in_f} -> {out_f}")
        if not saves_compute(in_f, out_f, rank):
            entries.append(LowRankEntry(
                site.name, rank, in_f, out_f, None, False,
                f"does not save compute: rank x (in + out) = {rank * (in_f + out_f)} >= in x out = {in_f * out_f}"))
            continue
        lr, energy = factorize(m, rank)
        lr.train(m.training)
        setattr(site.parent, site.attr, lr)
        entries.append(LowRankEntry(site.name, rank, in_f, out_f, energy, True))
    return entries
