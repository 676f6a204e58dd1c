"""Structured pruning of whole attention heads and MLP hidden units in timm ``Block``s.

The modules really shrink: ``attn.qkv`` loses the q, k and v rows of every removed head, ``attn.proj``
the matching columns, ``mlp.fc1`` rows and ``mlp.fc2`` columns of removed units, and
``attn.num_heads`` / ``attn.attn_dim`` follow (timm's ``Attention.forward`` reshapes with both;
``head_dim`` is unchanged). A sub-layer pruned to zero is replaced by :class:`RemovedBranch`.

Why not Torch-Pruning (installed, 1.6; tried on our blocks): ``MetaPruner(prune_num_heads=True,
prune_head_dims=False)`` removes whole heads, but (1) per-block targets are ratios in dicts keyed by
module objects (``head_pruning_ratio_dict`` *and* a matching ``pruning_ratio_dict`` for ``qkv``;
with only the former it removed no head at all), turned into counts with ``math.ceil``; (2) a ratio
of 1.0 (0 heads / 0 units) silently pruned nothing while its own head count said 0: it cannot drop a
sub-layer; (3) it leaves ``attn.num_heads`` / ``attn_dim`` stale, so the forward fails until patched;
(4) its head score is the mean of channel-group scores, so our criteria need a custom ``Importance``,
and it traces the whole model (MAE random masking, pos-embeds) to build its graph. Slicing ~60 lines.

Order of use: prune first, then low-rank and quantization (they expect plain ``nn.Linear``s).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from spaces.config import IMPORTANCE, BlockConfig, CompressionConfig, ConfigError

LossFn = Callable[[nn.Module, object], torch.Tensor]


class RemovedBranch(nn.Module):
    """Stands in for a block's attention (0 heads) or MLP (0 units): no parameters, returns a 0-dim
    zero of the input's dtype and device, so ``x + branch(x)`` is exactly ``x`` (broadcast add; a
    0-dim tensor never changes the residual's dtype under autocast). Traces to a constant + Add.

    ``forward(x: [N, T, D], attn_mask=None, is_causal=False) -> []`` (timm passes the mask keywords
    to ``attn``). The block's norm, LayerScale and DropPath of that branch become ``nn.Identity``:
    they would only cost time, and DropPath cannot index the batch dim of a 0-dim tensor.
    """

    def __init__(self, what: str):
        super().__init__()
        self.what = what  # "attn" or "mlp", for repr only

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        return x.new_zeros(())

    def extra_repr(self) -> str:
        return f"removed {self.what}"


@dataclass(frozen=True)
class BlockPruneReport:
    """One block: original counts and the original indices kept (ascending, so order is preserved)."""

    heads_before: int
    units_before: int
    heads_kept: list[int] = field(default_factory=list)
    units_kept: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class PruneReport:
    """What :func:`prune_model` did, as plain data (``to_dict`` is JSON-ready)."""

    importance: str
    params_before: int
    params_after: int
    blocks: list[BlockPruneReport]
    decoder_blocks: list[BlockPruneReport] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# ---- importance ---------------------------------------------------------------------------------
def _has_attn(block: nn.Module) -> bool:
    return not isinstance(block.attn, RemovedBranch)


def _has_mlp(block: nn.Module) -> bool:
    return not isinstance(block.mlp, RemovedBranch)


def _attn_params(block: nn.Module) -> list[torch.Tensor | None]:
    return [block.attn.qkv.weight, block.attn.qkv.bias, block.attn.proj.weight]


def _mlp_params(block: nn.Module) -> list[torch.Tensor | None]:
    return [block.mlp.fc1.weight, block.mlp.fc1.bias, block.mlp.fc2.weight]


def _element_scores(criterion: str, params: list, grads: list) -> list[torch.Tensor | None]:
    """``w^2`` for magnitude (sqrt taken after the per-group sum), ``|w * dL/dw|`` for Taylor."""
    if criterion == "magnitude":
        return [None if p is None else p.detach().float() ** 2 for p in params]
    if criterion == "taylor":
        if any(p is not None and g is None for p, g in zip(params, grads)):
            raise ValueError("taylor importance needs gradients: run a backward pass or use collect_taylor_scores")
        return [None if p is None else (p.detach().float() * g.float()).abs() for p, g in zip(params, grads)]
    raise ValueError(f"unknown importance criterion {criterion!r}; known: {', '.join(IMPORTANCE)}")


def _head_scores(block: nn.Module, criterion: str, grads: list) -> torch.Tensor:
    """``[H]``: element scores of ``qkv_w [3*H*d, D]``, ``qkv_b [3*H*d]``, ``proj_w [D, H*d]`` summed per
    head; qkv output rows are laid out ``[3, H, d]`` (timm reshapes to ``(B, N, 3, H, d)``)."""
    qkv_w, qkv_b, proj_w = _element_scores(criterion, _attn_params(block), grads)
    heads = block.attn.num_heads
    rows = qkv_w.sum(1) + (qkv_b if qkv_b is not None else 0)
    s = rows.view(3, heads, -1).sum((0, 2)) + proj_w.sum(0).view(heads, -1).sum(1)
    return s.sqrt() if criterion == "magnitude" else s


def _unit_scores(block: nn.Module, criterion: str, grads: list) -> torch.Tensor:
    """``[M]``: element scores of ``fc1_w [M, D]``, ``fc1_b [M]`` and ``fc2_w [D, M]`` summed per unit."""
    fc1_w, fc1_b, fc2_w = _element_scores(criterion, _mlp_params(block), grads)
    s = fc1_w.sum(1) + (fc1_b if fc1_b is not None else 0) + fc2_w.sum(0)
    return s.sqrt() if criterion == "magnitude" else s


def _grads_of(params: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
    return [None if p is None else p.grad for p in params]


def head_importance(block: nn.Module, criterion: str) -> torch.Tensor:
    """Score each head of ``block.attn``; returns ``[heads]`` (higher = keep).

    ``magnitude``: L2 norm of the head's q, k, v rows of ``qkv`` (weights and bias) and its ``proj``
    columns. ``taylor``: sum of ``|w * w.grad|`` over the same weights; needs ``.grad`` filled by a
    backward pass (:func:`collect_taylor_scores` does this for a whole model without touching ``.grad``).
    """
    return _head_scores(block, criterion, _grads_of(_attn_params(block)))


def unit_importance(block: nn.Module, criterion: str) -> torch.Tensor:
    """Score each MLP hidden unit; returns ``[mlp_hidden]``: ``fc1`` row (+ bias) and ``fc2`` column,
    L2 norm (``magnitude``) or summed ``|w * w.grad|`` (``taylor``, needs ``.grad``)."""
    return _unit_scores(block, criterion, _grads_of(_mlp_params(block)))


def _named_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``[("blocks.0", block), ..., ("decoder_blocks.0", block), ...]`` (decoder only for a full MAE)."""
    out = [(f"blocks.{i}", b) for i, b in enumerate(model.blocks)]
    return out + [(f"decoder_blocks.{i}", b) for i, b in enumerate(getattr(model, "decoder_blocks", ()))]


def collect_taylor_scores(model: nn.Module, batches: Iterable, loss_fn: LossFn) -> dict[str, torch.Tensor]:
    """First-order Taylor scores ``sum |w * dL/dw|`` per head and unit, summed over ``batches``.

    ``loss_fn(model, batch) -> []`` scalar loss (e.g. cross-entropy of ``model(x)``, or the MAE loss
    ``model(x)[0]``). Runs in eval mode (no dropout / drop-path noise in the scores), restores the
    mode and ``requires_grad`` afterwards and leaves ``.grad`` untouched (uses ``torch.autograd.grad``).
    Returns ``{"blocks.3.attn": [heads], "blocks.3.mlp": [units], "decoder_blocks.0.attn": ...}``.
    """
    groups = [(f"{name}.attn", blk, _head_scores, _attn_params(blk)) for name, blk in _named_blocks(model)
              if _has_attn(blk)]
    groups += [(f"{name}.mlp", blk, _unit_scores, _mlp_params(blk)) for name, blk in _named_blocks(model)
               if _has_mlp(blk)]
    params = [p for *_, ps in groups for p in ps if p is not None]
    was_training, flags = model.training, [p.requires_grad for p in params]
    scores: dict[str, torch.Tensor] = {}
    model.eval()
    try:
        for p in params:
            p.requires_grad_(True)
        for batch in batches:
            with torch.enable_grad():
                found = torch.autograd.grad(loss_fn(model, batch), params, allow_unused=True)
            # a weight the loss never reaches (e.g. the decoder under an encoder-only loss) scores zero
            grads = {id(p): torch.zeros_like(p) if g is None else g for p, g in zip(params, found)}
            for key, blk, score_fn, ps in groups:
                s = score_fn(blk, "taylor", [None if p is None else grads[id(p)] for p in ps])
                scores[key] = scores[key] + s if key in scores else s
    finally:
        model.train(was_training)
        for p, f in zip(params, flags):
            p.requires_grad_(f)
    if not scores:
        raise ValueError("collect_taylor_scores got no calibration batches")
    return scores


# ---- slicing --------------------------------------------------------------------------------------
def _sliced_linear(lin: nn.Linear, out_idx: torch.Tensor | None = None, in_idx: torch.Tensor | None = None) -> nn.Linear:
    """A new, smaller ``nn.Linear`` with the rows ``out_idx`` and columns ``in_idx`` of ``lin``."""
    w = lin.weight.detach()
    w = w if out_idx is None else w[out_idx]
    w = w if in_idx is None else w[:, in_idx]
    new = nn.Linear(w.shape[1], w.shape[0], bias=lin.bias is not None, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if lin.bias is not None:
            new.bias.copy_(lin.bias.detach() if out_idx is None else lin.bias.detach()[out_idx])
    new.requires_grad_(lin.weight.requires_grad)
    return new


def _remove_branch(block: nn.Module, branch: str) -> None:
    """Make ``x + drop_path(ls(branch(norm(x))))`` exactly ``x`` at no cost (see RemovedBranch)."""
    n = "1" if branch == "attn" else "2"
    setattr(block, branch, RemovedBranch(branch))
    for name in (f"norm{n}", f"ls{n}", f"drop_path{n}"):
        setattr(block, name, nn.Identity())


def _check_block(block: nn.Module, cfg: BlockConfig, where: str) -> None:
    """Refuse (before anything is cut) counts above the model's and sub-layers this slicing can't handle."""
    heads, units = _counts(block)
    if cfg.heads > heads or cfg.mlp_hidden > units:
        raise ConfigError(f"{where}: {cfg.heads} heads / {cfg.mlp_hidden} units kept, "
                          f"but the model has only {heads} / {units}")
    attn, mlp = block.attn, block.mlp
    # A gate or a LayerNorm over all heads / all units mixes them, so slicing would change the outputs.
    if cfg.heads < heads and (getattr(attn, "gate", None) is not None
                              or not isinstance(getattr(attn, "norm", nn.Identity()), nn.Identity)):
        raise ConfigError(f"{where}.heads: gated or scale-normed attention cannot be pruned by heads")
    if cfg.mlp_hidden < units and (not isinstance(getattr(mlp, "norm", nn.Identity()), nn.Identity)
                                   or mlp.fc1.out_features != mlp.fc2.in_features):
        raise ConfigError(f"{where}.mlp_hidden: only a plain fc1 -> act -> fc2 MLP can be pruned by units")


def _prune_heads(block: nn.Module, keep: torch.Tensor) -> None:
    """Keep heads ``keep`` (ascending original indices) of ``block.attn``; head_dim unchanged."""
    if len(keep) == 0:
        return _remove_branch(block, "attn")
    attn = block.attn
    h, d = attn.num_heads, attn.head_dim
    dims = torch.arange(d, device=keep.device)
    head_cols = (keep[:, None] * d + dims).reshape(-1)  # [k*d] columns of proj = rows of q (or k, v)
    qkv_rows = (torch.arange(3, device=keep.device)[:, None] * h * d + head_cols).reshape(-1)  # [3*k*d]
    attn.qkv = _sliced_linear(attn.qkv, out_idx=qkv_rows)
    attn.proj = _sliced_linear(attn.proj, in_idx=head_cols)
    attn.num_heads, attn.attn_dim = len(keep), len(keep) * d


def _prune_units(block: nn.Module, keep: torch.Tensor) -> None:
    """Keep hidden units ``keep`` of a plain timm ``Mlp`` (fc1 -> act -> fc2)."""
    if len(keep) == 0:
        return _remove_branch(block, "mlp")
    block.mlp.fc1 = _sliced_linear(block.mlp.fc1, out_idx=keep)
    block.mlp.fc2 = _sliced_linear(block.mlp.fc2, in_idx=keep)


def _top(scores: torch.Tensor | None, k: int) -> torch.Tensor:
    """Indices of the ``k`` highest scores in ascending index order (ties: lower index wins)."""
    if scores is None:  # branch already removed (k is 0, checked)
        return torch.arange(0)
    return torch.argsort(scores, descending=True, stable=True)[:k].sort().values


def _counts(block: nn.Module) -> tuple[int, int]:
    heads = block.attn.num_heads if _has_attn(block) else 0
    return heads, block.mlp.fc1.out_features if _has_mlp(block) else 0


def _prune_block(block: nn.Module, cfg: BlockConfig, head_s: torch.Tensor | None,
                 unit_s: torch.Tensor | None) -> BlockPruneReport:
    heads, units = _counts(block)
    keep_h, keep_u = _top(head_s, cfg.heads), _top(unit_s, cfg.mlp_hidden)
    if cfg.heads < heads:  # keeping all changes nothing: skip, so the modules stay the same objects
        _prune_heads(block, keep_h)
    if cfg.mlp_hidden < units:
        _prune_units(block, keep_u)
    return BlockPruneReport(heads, units, keep_h.tolist(), keep_u.tolist())


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def prune_model(model: nn.Module, config: CompressionConfig, *, importance: str | None = None,
                calib_batches: Iterable | None = None, loss_fn: LossFn | None = None) -> PruneReport:
    """Prune ``model`` in place to the heads / units of ``config`` and return what was kept.

    ``model`` has ``blocks`` (and, for a full MAE, ``decoder_blocks``, pruned when
    ``config.decoder_blocks`` is set). ``importance`` defaults to ``config.importance``; ``taylor``
    needs ``calib_batches`` and ``loss_fn(model, batch) -> []`` (see :func:`collect_taylor_scores`).
    Everything is checked and scored on the unpruned model before any block is cut, so a refused
    config leaves the model untouched.
    """
    criterion = importance or config.importance
    if criterion not in IMPORTANCE:
        raise ConfigError(f"importance: {criterion!r} is not one of {', '.join(IMPORTANCE)}")
    decoder = list(getattr(model, "decoder_blocks", ()))
    if len(config.blocks) != len(model.blocks):
        raise ConfigError(f"blocks: the config has {len(config.blocks)} blocks, the model has {len(model.blocks)}")
    if config.decoder_blocks and len(config.decoder_blocks) != len(decoder):
        raise ConfigError(f"decoder_blocks: the config has {len(config.decoder_blocks)} blocks, "
                          f"the model has {len(decoder)}")
    # zip stops after the encoder when config.decoder_blocks is empty: the decoder stays as it is
    todo = [(name, b, c) for (name, b), c in zip(_named_blocks(model), config.blocks + config.decoder_blocks)]
    for name, b, c in todo:
        _check_block(b, c, name.replace(".", "[") + "]")  # "blocks[3]", as ConfigError names fields

    if criterion == "taylor":
        if calib_batches is None or loss_fn is None:
            raise ConfigError("importance 'taylor' needs calibration batches and a loss function")
        taylor = collect_taylor_scores(model, calib_batches, loss_fn)

    def scores(name: str, block: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if criterion == "taylor":
            return taylor.get(f"{name}.attn"), taylor.get(f"{name}.mlp")
        return (head_importance(block, criterion) if _has_attn(block) else None,
                unit_importance(block, criterion) if _has_mlp(block) else None)

    before = _num_params(model)
    planned = [(b, c, *scores(name, b)) for name, b, c in todo]
    reports = [_prune_block(*p) for p in planned]
    n_enc = len(config.blocks)
    return PruneReport(criterion, before, _num_params(model), reports[:n_enc], reports[n_enc:])
