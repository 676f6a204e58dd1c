"""The exact per-layer allocator: the config that minimises the sensitivity table's predicted damage
subject to predicted latency <= budget.

    problem = AllocationProblem(table, predictor, shape)          # options priced once (~1 s)
    problem.solve(20.0).config                                    # one budget: a few ms
    allocate(table, predictor, shape, 20.0)                       # the same, one call
    allocate_front(table, predictor, shape, [8, 10, 15, 20])      # a whole front in seconds

**Model.** Each block is two independent groups -- attention (heads kept, ``qkv``/``proj`` bits and
rank) and MLP (units kept, ``fc1``/``fc2`` bits and rank) -- because the predictor prices a block as
the sum of its operators and no operator of one group depends on the other group's knobs. A group's
option is one joint choice of its knobs; its latency is measured on the predictor itself as a
difference (the model with only that group at that option minus the model with every block removed,
each Linear's share as the difference to the same group with that Linear dense fp32), its damage is
the (weighted) sum of the table's single-knob damages (the additive model). Options are the kernels
``deployable_config`` would ship: a bit-width or a rank the device would run slower is priced *and
damaged* at the faster, more precise kernel it becomes. Per group only the Pareto-optimal options
are kept (none both slower and more damaging than another). The problem is a multiple-choice
knapsack: one binary per (group, option), exactly one per group, latency sum <= budget.

**Why scipy's milp (HiGHS) rather than a greedy.** Greedy allocation (drop the knob with the best
damage per millisecond, repeat) is not optimal for a multiple-choice knapsack: it stops at the first
option that crosses the budget and cannot trade a big step in one layer for two small ones in others,
and its answer depends on tie-breaking. HiGHS's branch-and-bound proves optimality (here with the
relative gap set to 0) on a few hundred binaries in milliseconds, and it is a maintained solver
rather than a hand-rolled one that tests would have to trust.

**Repair.** With float activations the predictor is exactly additive over groups, but ``act_bits=8``
is one choice per model (the predictor falls back to float activations when int8 ones would not pay),
so every solution is checked with the full ``predict_ms``; when it is over budget the budget is
tightened by the excess and the problem re-solved, a few times, else :class:`AllocationError`.

**Token merging.** ``merges`` (tokens merged per encoder block, ``mae.tome``) is a fixed schedule the
allocation is solved *under*: every option is priced at its block's merged token count (so blocks of
one part no longer price alike), and the schedule is written into the config. The schedule itself is
not allocated: merging at one block changes every later block's tokens, which a sum over groups cannot
express; the ``allocate`` strategy lets Optuna choose it (:mod:`search.allocation_space`).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

from core.errors import UserError
from evaluators.latency.predict.predictor import LatencyPredictor
from evaluators.sensitivity import (
    SensitivityTable,
    additive_damage,
    block_labels,
    check_weights,
    damage_weight,
    rank_fraction,
)
from spaces.config import BlockConfig, CompressionConfig, DistillConfig
from spaces.shape import BlockShape, ModelShape
from spaces.space import RANK_FRACTIONS, TECHNIQUES, WEIGHT_BIT_CHOICES, rank_for

GROUPS = {"attn": ("heads", ("qkv", "proj")), "mlp": ("mlp", ("fc1", "fc2"))}
MAX_REPAIRS = 5
NO_RECOVERY = DistillConfig(steps=0)


class AllocationError(UserError):
    """No config of the table's levels fits the budget; one sentence naming the smallest latency."""


@dataclass(frozen=True)
class Allocation:
    """One solved budget: the (deployable) config, its full-predictor latency and additive damage."""

    budget_ms: float
    config: CompressionConfig
    latency_ms: float
    damage: float
    repairs: int = 0


@dataclass(frozen=True)
class _Option:
    """One joint choice of a group's knobs: ``size`` heads/units, ``linears`` {name: (bits, fraction)}."""

    size: int
    linears: tuple[tuple[str, int, float], ...]
    latency_ms: float
    damage: float


def _pareto(options: list[_Option]) -> list[_Option]:
    """Options that no other option beats on both latency and damage (ties: the first kept)."""
    kept: list[_Option] = []
    for o in sorted(options, key=lambda o: (o.latency_ms, o.damage)):
        if not kept or o.damage < kept[-1].damage - 1e-15:
            kept.append(o)
    return kept


class AllocationProblem:
    """Options of every (block, group) priced once on ``predictor``; :meth:`solve` per budget."""

    def __init__(self, table: SensitivityTable, predictor: LatencyPredictor, shape: ModelShape, *,
                 weights: Mapping[str, float] | None = None, task: str | None = None,
                 techniques: Collection[str] = TECHNIQUES, act_bits: int = 32, mask_ratio: float = 0.75,
                 global_pool: str = "avg", distill: DistillConfig = NO_RECOVERY, merges: Sequence[int] = ()):
        self.task = task or table.task
        if self.task != table.task:
            raise ValueError(f"the table measures {table.task!r} damage; it cannot allocate for {self.task!r}")
        self.table, self.predictor, self.shape = table, predictor, shape
        self.weights, self.techniques = weights, frozenset(techniques)
        self.kw = {"task": self.task, "mask_ratio": mask_ratio, "global_pool": global_pool}
        labels = dict(block_labels(shape, self.task))
        unknown = sorted(set(table.blocks()) - set(labels))
        if unknown:
            raise AllocationError(f"the sensitivity table has block {unknown[0]} that the model "
                                  f"{shape.name} does not have: it was built for another model")
        check_weights(weights, list(labels))
        ident = CompressionConfig.identity(shape)
        if merges and len(merges) != len(ident.blocks):
            raise ValueError(f"merges has {len(merges)} entries, the model {len(ident.blocks)} encoder blocks")
        self.merges = {f"b{i}": int(r) for i, r in enumerate(merges) if r}
        self.base = replace(ident, act_bits=act_bits, distill=distill,
                            blocks=tuple(replace(b, merge_tokens=self._merge(f"b{i}")) for i, b in enumerate(ident.blocks)))
        removed = BlockConfig(heads=0, mlp_hidden=0)
        self._removed = replace(self.base, blocks=tuple(replace(removed, merge_tokens=self._merge(f"b{i}"))
                                                        for i in range(len(ident.blocks))),
                                decoder_blocks=tuple(removed for _ in ident.decoder_blocks))
        self._base_ms = self._predict(self._removed)
        # blocks the table does not cover stay as they are and cost a constant
        self.free = [label for label in labels if label in table.blocks()]
        fixed = {label: self._block_of(self.base, label) for label in labels if label not in self.free}
        self.fixed_ms = self._predict(self._with(self._removed, fixed)) - self._base_ms
        self._price_cache: dict[tuple, dict] = {}
        self.groups: list[tuple[str, str, list[_Option]]] = []  # (block, group, Pareto options)
        for label in self.free:
            for group in GROUPS:
                self.groups.append((label, group, _pareto(self._options(label, labels[label], group))))
        self.floor_ms = self._base_ms + self.fixed_ms + sum(min(o.latency_ms for o in opts)
                                                             for _, _, opts in self.groups)

    # ---- pricing -------------------------------------------------------------------------------------
    def _predict(self, config: CompressionConfig) -> float:
        return self.predictor.predict_ms(self.shape, config, **self.kw)

    @staticmethod
    def _block_of(config: CompressionConfig, label: str) -> BlockConfig:
        blocks = config.decoder_blocks if label.startswith("d") else config.blocks
        return blocks[int(label[1:])]

    @staticmethod
    def _with(config: CompressionConfig, blocks: Mapping[str, BlockConfig]) -> CompressionConfig:
        enc, dec = list(config.blocks), list(config.decoder_blocks)
        for label, b in blocks.items():
            (dec if label.startswith("d") else enc)[int(label[1:])] = b
        return replace(config, blocks=tuple(enc), decoder_blocks=tuple(dec))

    def _merge(self, label: str) -> int:
        """Tokens block ``label`` merges (0 for decoder blocks and without a schedule)."""
        return self.merges.get(label, 0)

    def _group_block(self, s: BlockShape, group: str, size: int, linears=(), merge: int = 0) -> BlockConfig:
        """A block with only ``group`` present, at ``size`` heads/units and the given Linear settings."""
        b = BlockConfig(heads=size, mlp_hidden=0) if group == "attn" else BlockConfig(heads=0, mlp_hidden=size)
        b = replace(b, merge_tokens=merge)
        dims = s.linear_dims(b.heads, b.mlp_hidden)
        ranks, bits = dict(b.ranks), dict(b.weight_bits)
        for name, w, f in linears:
            bits[name], ranks[name] = w, rank_for(f, *dims[name])
        return replace(b, ranks=ranks, weight_bits=bits)

    def _prices(self, label: str, s: BlockShape, group: str, size: int) -> dict:
        """``{"shell": ms, (linear, bits, frac): (ms, effective bits, effective frac)}`` of one group at
        ``size``: the group with dense fp32 Linears, and each Linear setting's extra time and the kernel
        it deploys as. Blocks of one part and shape price alike (same tokens), so this is cached; with
        token merging each block sees its own token count and is priced where it is."""
        at = label if self.merges else label[0] + "0"  # without merging every block of a part sees the same tokens
        key = (at, s, group, size)
        if key in self._price_cache:
            return self._price_cache[key]
        merge = self._merge(at)
        plain = self._group_block(s, group, size, merge=merge)
        shell_ms = self._predict(self._with(self._removed, {at: plain}))
        out: dict = {"shell": shell_ms - self._base_ms}
        for name in GROUPS[group][1]:
            for w in self._levels_of("bits"):
                for f in self._levels_of("rank"):
                    config = self._with(self._removed, {at: self._group_block(s, group, size, [(name, w, f)], merge)})
                    deployed = self._block_of(self.predictor.deployable_config(self.shape, config, **self.kw), at)
                    r = deployed.ranks[name]
                    dims = s.linear_dims(deployed.heads, deployed.mlp_hidden)[name]
                    eff_f = 0.0 if r is None else rank_fraction(r, *dims)
                    out[(name, w, f)] = (self._predict(config) - shell_ms, deployed.weight_bits[name], eff_f)
        self._price_cache[key] = out
        return out

    def _levels_of(self, kind: str) -> tuple:
        """Levels a technique may use: the search's lists, or identity only when it is switched off."""
        if kind == "bits":
            return WEIGHT_BIT_CHOICES if "quant" in self.techniques else (32,)
        return RANK_FRACTIONS if "lowrank" in self.techniques else (0.0,)

    def _damage(self, label: str, knob: str, level: float, identity: float) -> float | None:
        if level == identity:
            return 0.0
        d = self.table.damage(label, knob, level)
        return None if d is None or not math.isfinite(d) else damage_weight(self.weights, label, knob) * d

    def _options(self, label: str, s: BlockShape, group: str) -> list[_Option]:
        size_knob, linears = GROUPS[group]
        full = s.heads if group == "attn" else s.mlp_hidden
        sizes = sorted({int(r.level) for r in self.table.rows if r.block == label and r.knob == size_knob} | {full})
        if "prune" not in self.techniques:
            sizes = [full]
        options = []
        for size in sizes:
            size_damage = self._damage(label, size_knob, size, full)
            if size_damage is None:
                continue
            prices = self._prices(label, s, group, size)
            if size == 0:  # the sub-layer is gone: no Linear left to set
                options.append(_Option(0, (), prices["shell"], size_damage))
                continue
            per_linear = []
            for name in linears:
                choices = {}
                for w in self._levels_of("bits"):
                    for f in self._levels_of("rank"):
                        ms, eff_w, eff_f = prices[(name, w, f)]
                        if eff_f is None:
                            continue
                        d_bits = self._damage(label, f"{name}.bits", eff_w, 32)
                        d_rank = self._damage(label, f"{name}.rank", eff_f, 0.0)
                        if d_bits is not None and d_rank is not None:
                            # settings that deploy alike are one option
                            choices[(eff_w, eff_f)] = _Option(size, ((name, eff_w, eff_f),), ms, d_bits + d_rank)
                per_linear.append(_pareto(list(choices.values())))  # a dominated Linear setting never helps
            for combo in itertools.product(*per_linear):
                options.append(_Option(size, tuple(c.linears[0] for c in combo),
                                       prices["shell"] + sum(c.latency_ms for c in combo),
                                       size_damage + sum(c.damage for c in combo)))
        return options

    # ---- solving -------------------------------------------------------------------------------------
    def _assemble(self, chosen: Mapping[tuple[str, str], _Option]) -> CompressionConfig:
        labels = dict(block_labels(self.shape, self.task))
        blocks = {}
        for label in self.free:
            s, attn, mlp = labels[label], chosen[(label, "attn")], chosen[(label, "mlp")]
            b = BlockConfig(heads=attn.size, mlp_hidden=mlp.size, merge_tokens=self._merge(label))
            dims = s.linear_dims(attn.size, mlp.size)
            ranks, bits = dict(b.ranks), dict(b.weight_bits)
            for name, w, f in attn.linears + mlp.linears:
                bits[name], ranks[name] = w, rank_for(f, *dims[name])
            blocks[label] = replace(b, ranks=ranks, weight_bits=bits)
        return self._with(self.base, blocks)

    def _milp(self, budget_ms: float) -> dict[tuple[str, str], _Option]:
        lat = np.array([o.latency_ms for _, _, opts in self.groups for o in opts])
        dmg = np.array([o.damage for _, _, opts in self.groups for o in opts])
        rows, cols, start = [], [], 0
        for g, (_, _, opts) in enumerate(self.groups):
            rows += [g] * len(opts)
            cols += range(start, start + len(opts))
            start += len(opts)
        one_each = csr_array((np.ones(len(cols)), (rows, cols)), shape=(len(self.groups), len(lat)))
        cap = budget_ms - self._base_ms - self.fixed_ms
        res = milp(dmg, integrality=np.ones(len(lat)), bounds=Bounds(0, 1),
                   constraints=[LinearConstraint(one_each, 1, 1), LinearConstraint(lat[None, :], -np.inf, cap)],
                   options={"mip_rel_gap": 0.0, "time_limit": 60.0})
        if res.x is None:
            raise AllocationError(f"the solver found no allocation within {budget_ms:.2f} ms ({res.message})")
        chosen, start = {}, 0
        for label, group, opts in self.groups:
            chosen[(label, group)] = opts[int(np.argmax(res.x[start:start + len(opts)]))]
            start += len(opts)
        return chosen

    def solve(self, budget_ms: float) -> Allocation:
        """The least-damage config within ``budget_ms`` by the full predictor (see the module doc)."""
        if not math.isfinite(budget_ms) or budget_ms < self.floor_ms - 1e-9:
            raise AllocationError(
                f"no allocation fits {budget_ms:.2f} ms on {self.predictor.device.name}: the smallest latency "
                f"the table's levels reach is {self.floor_ms:.2f} ms")
        target = budget_ms
        for repair in range(MAX_REPAIRS + 1):
            config = self._assemble(self._milp(target))
            config = self.predictor.deployable_config(self.shape, config, **self.kw)
            latency_ms = self._predict(config)
            if latency_ms <= budget_ms + 1e-9:
                damage = additive_damage(self.table, self.shape, config, self.weights)
                return Allocation(budget_ms, config, latency_ms, damage, repair)
            # non-additive pricing (one activation setting per model): ask for that much less
            target -= max(latency_ms - budget_ms, 1e-6)
            if target < self.floor_ms - 1e-9:
                break
        raise AllocationError(f"no allocation fits {budget_ms:.2f} ms on {self.predictor.device.name} after "
                              f"{MAX_REPAIRS} repairs (the full predictor keeps pricing the solution above it)")


def allocate(table: SensitivityTable, predictor: LatencyPredictor, shape: ModelShape, budget_ms: float, *,
             weights: Mapping[str, float] | None = None, task: str | None = None, **kw) -> CompressionConfig:
    """The least-damage config of ``table``'s levels whose predicted latency is <= ``budget_ms``.

    ``weights``: damage multipliers by knob type (``heads``, ``mlp``, ``bits``, ``rank``), block
    (``b0``) or ``b0.bits``; ``task``: the predictor's task (default: the table's); other keywords go to
    :class:`AllocationProblem` (``techniques``, ``act_bits``, ``mask_ratio``, ``global_pool``,
    ``distill``). Raises :class:`AllocationError` when nothing fits."""
    return AllocationProblem(table, predictor, shape, weights=weights, task=task, **kw).solve(budget_ms).config


def allocate_front(table: SensitivityTable, predictor: LatencyPredictor, shape: ModelShape,
                   budgets_ms: Sequence[float], *, weights: Mapping[str, float] | None = None,
                   task: str | None = None, **kw) -> list[Allocation]:
    """One :class:`Allocation` per budget that something fits (in the order given; budgets below the
    smallest achievable latency are left out). Options are priced once, so a sweep takes seconds."""
    problem = AllocationProblem(table, predictor, shape, weights=weights, task=task, **kw)
    return [problem.solve(b) for b in budgets_ms if b >= problem.floor_ms - 1e-9]
