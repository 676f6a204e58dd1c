"""Search spaces: define-by-run samplers of ``CompressionConfig`` from an Optuna trial.

They work with ``optuna.Trial``, ``optuna.trial.FixedTrial`` and Ray Tune's ``OptunaSearch`` (which
hands over a define-by-run trial) and only yield configs valid for the model: ranks are drawn as a
fraction of the *pruned* Linear's min(in, out) and dropped when they would not save compute, and the
knobs of a removed sub-layer are not asked for (conditional parameters).

Parameter names (what the dashboard and the trials table show): ``b{i}.heads``, ``b{i}.mlp``,
``b{i}.{linear}.bits``, ``b{i}.{linear}.rank``, ``b{i}.merge`` (token merging: the fraction of the
block's patch tokens merged); ``d{i}.*`` for decoder blocks of a full MAE; ``act_bits``,
``distill.temperature``, ``distill.alpha``, ``distill.feature_weight``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

from spaces.config import BlockConfig, CompressionConfig, DistillConfig
from spaces.shape import LINEARS, BlockShape, ModelShape, mergeable_tokens

TECHNIQUES = ("prune", "quant", "lowrank", "distill", "tokens")
# What a search uses unless --techniques says otherwise. Token merging is opt-in: on the embedded
# default (49 patches) the search with it did not beat the search without it (benchmarks/README.md).
DEFAULT_TECHNIQUES = ("prune", "quant", "lowrank", "distill")
# Peak learning rate of a searched config's recovery. Why not the toolkit's 1e-4: searched configs are
# far smaller than the half preset and recover in ~150 steps; on the default search's winner config,
# 150 steps reached val top-1 87.46% at 1e-4 and 88.60% at 3e-4 (same seed, this 2-core machine).
SEARCH_RECOVERY_LR = 3e-4
RANK_FRACTIONS = (0.0, 0.125, 0.25, 0.5)  # 0.0 = keep the Linear dense
WEIGHT_BIT_CHOICES = (32, 16, 8, 4)
# Token merging: the fraction of a block's patch tokens (class token excluded) merged after its
# attention; 0.5 is the most bipartite matching can merge (spaces.shape.mergeable_tokens).
MERGE_FRACTIONS = (0.0, 0.0625, 0.125, 0.25)


def merge_for(fraction: float, tokens: int) -> int:
    """Tokens merged in a block that sees ``tokens`` (class token included) at ``fraction`` of its
    patch tokens, within what the matching can merge."""
    return min(round(fraction * (tokens - 1)), mergeable_tokens(tokens))


class TrialLike(Protocol):
    """What a space needs from a trial (optuna's BaseTrial has these)."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float: ...
    def suggest_categorical(self, name: str, choices): ...


class SearchSpace(Protocol):
    def sample(self, trial: TrialLike) -> CompressionConfig: ...


def rank_for(fraction: float, in_features: int, out_features: int) -> int | None:
    """The rank ``fraction * min(in, out)`` (at least 1), or None when dense or when factorising would
    not save compute (``r (in + out) >= in * out``)."""
    if fraction <= 0 or in_features == 0 or out_features == 0:
        return None
    r = max(1, round(fraction * min(in_features, out_features)))
    return r if r * (in_features + out_features) < in_features * out_features else None


def sample_distill(trial: TrialLike, techniques: frozenset[str], steps: int, lr: float) -> DistillConfig:
    """The distillation knobs every space searches the same way (temperature, alpha, feature weight);
    no recovery when ``distill`` is not searched or ``steps`` is 0."""
    if "distill" not in techniques or steps <= 0:
        return DistillConfig(steps=0)
    return DistillConfig(
        temperature=trial.suggest_float("distill.temperature", 1.0, 8.0, log=True),
        alpha=trial.suggest_float("distill.alpha", 0.0, 1.0),
        feature_weight=trial.suggest_categorical("distill.feature_weight", (0.0, 0.1, 1.0)),
        steps=steps, lr=lr,
    )


def _mlp_step(units: int) -> int:
    """Granularity of MLP pruning: eighths of the original width (at least 1 unit)."""
    return max(1, units // 8)


def mlp_levels(units: int) -> tuple[int, ...]:
    """MLP units the joint space can keep in a block of ``units``: 0, one step, ..., ``units``
    (what ``suggest_int(0, units, step=_mlp_step(units))`` draws, plus the full width; shared with the
    sensitivity table so that the table and the search agree)."""
    return tuple(range(0, units, _mlp_step(units))) + (units,) if units else (0,)


@dataclass(frozen=True, kw_only=True)
class JointSpace:
    """Per-layer joint space: heads, MLP units, per-Linear bits and ranks, activation bits, distillation."""

    shape: ModelShape
    techniques: frozenset[str] = frozenset(DEFAULT_TECHNIQUES)
    weight_bits: tuple[int, ...] = WEIGHT_BIT_CHOICES
    rank_fractions: tuple[float, ...] = RANK_FRACTIONS
    merge_fractions: tuple[float, ...] = MERGE_FRACTIONS
    distill_steps: int = 0
    distill_lr: float = SEARCH_RECOVERY_LR
    include_decoder: bool = field(default=True)
    tokens: int = 0  # tokens entering the encoder (0: 1 + all patches; an MAE reconstructing sees 1 + K)

    def __post_init__(self) -> None:
        unknown = set(self.techniques) - set(TECHNIQUES)
        if unknown:
            raise ValueError(f"unknown technique {sorted(unknown)[0]!r}; choose from {', '.join(TECHNIQUES)}")
        if not self.techniques:
            raise ValueError("at least one technique is needed")

    def _block(self, trial: TrialLike, prefix: str, s: BlockShape, tokens: int = 0) -> BlockConfig:
        heads, units = s.heads, s.mlp_hidden
        if "prune" in self.techniques:
            heads = trial.suggest_int(f"{prefix}.heads", 0, s.heads)
            units = trial.suggest_int(f"{prefix}.mlp", 0, s.mlp_hidden, step=_mlp_step(s.mlp_hidden))
        dims = s.linear_dims(heads, units)
        block = BlockConfig(heads=heads, mlp_hidden=units)
        ranks = dict(block.ranks)
        bits = dict(block.weight_bits)
        for name in block.live_linears():
            if "quant" in self.techniques:
                bits[name] = trial.suggest_categorical(f"{prefix}.{name}.bits", self.weight_bits)
            if "lowrank" in self.techniques:
                frac = trial.suggest_categorical(f"{prefix}.{name}.rank", self.rank_fractions)
                ranks[name] = rank_for(frac, *dims[name])
        merge = 0
        if "tokens" in self.techniques and tokens:
            merge = merge_for(trial.suggest_categorical(f"{prefix}.merge", self.merge_fractions), tokens)
        return BlockConfig(heads=heads, mlp_hidden=units, ranks=ranks, weight_bits=bits, merge_tokens=merge)

    def sample(self, trial: TrialLike) -> CompressionConfig:
        blocks, tokens = [], self.tokens or 1 + self.shape.num_patches
        for i, s in enumerate(self.shape.blocks):
            blocks.append(self._block(trial, f"b{i}", s, tokens))
            tokens -= blocks[-1].merge_tokens
        blocks = tuple(blocks)
        decoder = ()
        if self.include_decoder and self.shape.decoder_blocks:
            decoder = tuple(self._block(trial, f"d{i}", s) for i, s in enumerate(self.shape.decoder_blocks))
        act_bits = trial.suggest_categorical("act_bits", (32, 8)) if "quant" in self.techniques else 32
        return CompressionConfig(blocks=blocks, distill=self._distill(trial), act_bits=act_bits,
                                 decoder_blocks=decoder)

    def _distill(self, trial: TrialLike) -> DistillConfig:
        return sample_distill(trial, self.techniques, self.distill_steps, self.distill_lr)


@dataclass(frozen=True, kw_only=True)
class UniformSpace:
    """The obvious heuristic: one ratio for every layer (heads kept, MLP kept, bits, rank fraction)."""

    shape: ModelShape
    techniques: frozenset[str] = frozenset(DEFAULT_TECHNIQUES)
    distill_steps: int = 0
    distill_lr: float = SEARCH_RECOVERY_LR
    tokens: int = 0  # as in JointSpace

    def sample(self, trial: TrialLike) -> CompressionConfig:
        t = self.techniques
        merge_frac = trial.suggest_categorical("merge", MERGE_FRACTIONS) if "tokens" in t else 0.0
        head_keep = trial.suggest_float("keep_heads", 0.0, 1.0, step=0.125) if "prune" in t else 1.0
        mlp_keep = trial.suggest_float("keep_mlp", 0.0, 1.0, step=0.125) if "prune" in t else 1.0
        bits = trial.suggest_categorical("bits", WEIGHT_BIT_CHOICES) if "quant" in t else 32
        frac = trial.suggest_categorical("rank", RANK_FRACTIONS) if "lowrank" in t else 0.0

        def block(s: BlockShape) -> BlockConfig:
            heads = round(head_keep * s.heads)
            step = _mlp_step(s.mlp_hidden)
            units = round(mlp_keep * s.mlp_hidden / step) * step
            dims = s.linear_dims(heads, units)
            base = BlockConfig(heads=heads, mlp_hidden=units)
            ranks = {k: (rank_for(frac, *dims[k]) if k in base.live_linears() else None) for k in LINEARS}
            return BlockConfig(heads=heads, mlp_hidden=units, ranks=ranks, weight_bits={k: bits for k in LINEARS})

        distill = DistillConfig(steps=self.distill_steps if "distill" in t else 0, lr=self.distill_lr)
        return CompressionConfig(blocks=merge_schedule(tuple(block(s) for s in self.shape.blocks), merge_frac,
                                                       self.tokens or 1 + self.shape.num_patches),
                                 distill=distill, decoder_blocks=tuple(block(s) for s in self.shape.decoder_blocks))


def merge_schedule(blocks: tuple[BlockConfig, ...], fraction: float, tokens: int) -> tuple[BlockConfig, ...]:
    """``blocks`` with every one merging ``fraction`` of the patch tokens it sees (ToMe's schedule:
    the same share per block, so fewer tokens each time); ``tokens`` enter the first block."""
    out = []
    for b in blocks:
        r = merge_for(fraction, tokens)
        out.append(replace(b, merge_tokens=r))
        tokens -= r
    return tuple(out)
