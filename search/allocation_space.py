"""The ``allocate`` strategy: Optuna searches what the sensitivity table cannot know, and the exact
allocator (:mod:`search.allocate`) solves every candidate into a config that fits the budget.

A sampled trial is not ~60 raw per-layer knobs but a handful of numbers the table is blind to:

* ``w_heads``, ``w_mlp``, ``w_bits``, ``w_rank``: how much one unit of measured single-knob damage of
  that type really costs after recovery (distillation repairs pruning and quantization differently);
* ``w_b{i}`` (and ``w_d{i}`` for a full MAE's decoder): the same per block (damages of several layers
  do not add up exactly);
* ``budget_share``: the part of the budget the allocation may use (a config a little under the budget
  may recover better than one exactly at it);
* ``act_bits`` (with ``quant``) and the distillation knobs (as in the joint space);
* ``merge`` (with ``tokens``): the share of each block's patch tokens merged (ToMe's schedule,
  ``spaces.space.merge_schedule``); the allocation is then solved at the merged token counts.

The allocator then minimises the weighted damage under the budget exactly (scipy's milp), so every
trial is feasible by construction: no sample is wasted over budget and the sampler never sees an
invented score for one. Parameter names are stable, so ``enqueue_trial`` can seed the study with the
unweighted allocation at a few budget shares (:func:`seed_params`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from evaluators.latency.predict.predictor import LatencyPredictor
from evaluators.sensitivity import SensitivityTable, knob_type
from search.allocate import AllocationProblem
from spaces.config import CompressionConfig, DistillConfig
from spaces.shape import ModelShape
from spaces.space import MERGE_FRACTIONS, SEARCH_RECOVERY_LR, TrialLike, merge_schedule, sample_distill

# knob type -> the technique that moves it
KNOB_TECHNIQUE = {"heads": "prune", "mlp": "prune", "bits": "quant", "rank": "lowrank"}
TYPE_WEIGHT_RANGE = (0.1, 10.0)    # log-uniform: damage types may be off by an order of magnitude
BLOCK_WEIGHT_RANGE = (0.5, 2.0)    # log-uniform: per-block corrections are smaller
BUDGET_SHARE_RANGE = (0.8, 1.0)
SEED_SHARES = (1.0, 0.95, 0.9)


@dataclass(kw_only=True)
class AllocationSpace:
    """Define-by-run space of the ``allocate`` strategy (module doc). Works with ``optuna.Trial``,
    ``FixedTrial`` and Ray's define-by-run trials like the other spaces."""

    shape: ModelShape
    table: SensitivityTable
    predictor: LatencyPredictor
    budget_ms: float
    techniques: frozenset[str]
    task: str = "classify"
    distill_steps: int = 0
    distill_lr: float = SEARCH_RECOVERY_LR
    tokens: int = 0  # tokens entering the encoder (0: 1 + all patches)
    _problems: dict[tuple, AllocationProblem] = field(default_factory=dict, repr=False)

    def knob_types(self) -> tuple[str, ...]:
        """The knob types the table measured whose technique is searched."""
        measured = {knob_type(row.knob) for row in self.table.rows}
        return tuple(t for t, tech in KNOB_TECHNIQUE.items() if tech in self.techniques and t in measured)

    def sample(self, trial: TrialLike) -> CompressionConfig:
        weights: dict[str, float] = {}
        for t in self.knob_types():
            weights[t] = trial.suggest_float(f"w_{t}", *TYPE_WEIGHT_RANGE, log=True)
        for block in self.table.blocks():
            weights[block] = trial.suggest_float(f"w_{block}", *BLOCK_WEIGHT_RANGE, log=True)
        share = trial.suggest_float("budget_share", *BUDGET_SHARE_RANGE)
        act_bits = trial.suggest_categorical("act_bits", (32, 8)) if "quant" in self.techniques else 32
        fraction = trial.suggest_categorical("merge", MERGE_FRACTIONS) if "tokens" in self.techniques else 0.0
        distill = sample_distill(trial, self.techniques, self.distill_steps, self.distill_lr)
        problem = self._fitting_problem(weights, act_bits, fraction, trial)
        # a share below what the model can reach asks for the smallest config there is
        allocation = problem.solve(max(share * self.budget_ms, problem.floor_ms))
        return replace(allocation.config, distill=distill)

    def _merges(self, fraction: float) -> tuple[int, ...]:
        """Tokens merged per block at ``fraction`` of each block's patch tokens (() for none)."""
        if not fraction:
            return ()
        blocks = merge_schedule(CompressionConfig.identity(self.shape).blocks, fraction,
                                self.tokens or 1 + self.shape.num_patches)
        return tuple(b.merge_tokens for b in blocks)

    def _fitting_problem(self, weights: dict[str, float], act_bits: int, fraction: float,
                         trial: TrialLike) -> AllocationProblem:
        """The problem at the sampled merge share, or at the largest smaller share whose smallest
        config fits the budget: merging has a fixed cost per block (the matching), so on a small
        model under a tight budget a merge schedule alone can cost more than it saves. The share
        used is recorded as the trial's ``merge_used`` attribute when it differs."""
        shares = sorted((f for f in MERGE_FRACTIONS if f <= fraction), reverse=True) or [0.0]
        for used in shares:
            problem = self._problem(weights, act_bits, self._merges(used))
            if problem.floor_ms <= self.budget_ms + 1e-9 or used == 0.0:
                break
        if used != fraction and hasattr(trial, "set_user_attr"):
            trial.set_user_attr("merge_used", used)
        return problem

    def _problem(self, weights: dict[str, float], act_bits: int, merges: tuple[int, ...] = ()) -> AllocationProblem:
        """Options priced per (weights, act_bits, merges); repeated samples (enqueued seeds, resumed
        studies) reuse them."""
        key = (tuple(sorted(weights.items())), act_bits, merges)
        if key not in self._problems:
            self._problems[key] = AllocationProblem(self.table, self.predictor, self.shape, weights=weights,
                                                    task=self.task, techniques=self.techniques, act_bits=act_bits,
                                                    merges=merges)
        return self._problems[key]


def seed_params(space: AllocationSpace, shares: tuple[float, ...] = SEED_SHARES) -> list[dict[str, Any]]:
    """Parameters of the unweighted allocation (every weight 1, float activations, default distillation)
    at a few budget shares: enqueued first, beside the joint space's uniform seeds."""
    out = []
    for share in shares:
        params: dict[str, Any] = {f"w_{t}": 1.0 for t in space.knob_types()}
        params.update({f"w_{b}": 1.0 for b in space.table.blocks()})
        params["budget_share"] = share
        if "quant" in space.techniques:
            params["act_bits"] = 32
        if "tokens" in space.techniques:
            params["merge"] = 0.0
        if "distill" in space.techniques and space.distill_steps > 0:
            d = DistillConfig()  # the toolkit's defaults
            params.update({"distill.temperature": d.temperature, "distill.alpha": d.alpha,
                           "distill.feature_weight": d.feature_weight})
        out.append(params)
    return out
