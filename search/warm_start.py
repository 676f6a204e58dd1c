"""Warm start of a joint-space study: the uniform heuristic's largest configs that fit the budget,
enqueued (``Study.enqueue_trial``) as its first trials.

Why: the joint per-layer space of a ViT has dozens of knobs; TPE's random start-up trials land
anywhere in it, mostly far below the budget, and 40 trials are few. The obvious heuristic -- the same
pruning and int8 for every layer, as large as the budget allows -- costs a handful of predictions
(no training) and gives the sampler a good region to start from. The seeds are ordinary trials of
the joint space (the same parameter names), so they are scored, recorded and modelled like any other.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from spaces.config import CompressionConfig, DistillConfig
from spaces.shape import ModelShape
from spaces.space import JointSpace, UniformSpace

KEEP_STEPS = tuple(i / 8 for i in range(1, 9))  # kept share of heads and of MLP units, in eighths


def _params_of(config: CompressionConfig, space: JointSpace, distill: DistillConfig) -> dict[str, Any]:
    """The joint space's parameters that sample ``config`` (a uniform one: dense, one bit-width)."""
    params: dict[str, Any] = {}
    t = space.techniques
    named = [(f"b{i}", b) for i, b in enumerate(config.blocks)]
    if space.include_decoder:
        named += [(f"d{i}", b) for i, b in enumerate(config.decoder_blocks)]
    for prefix, b in named:
        if "prune" in t:
            params[f"{prefix}.heads"], params[f"{prefix}.mlp"] = b.heads, b.mlp_hidden
        for name in b.live_linears():
            if "quant" in t:
                params[f"{prefix}.{name}.bits"] = b.weight_bits[name]
            if "lowrank" in t:
                params[f"{prefix}.{name}.rank"] = 0.0
    if "quant" in t:
        params["act_bits"] = 32
    if "distill" in t and space.distill_steps > 0:
        params |= {"distill.temperature": distill.temperature, "distill.alpha": distill.alpha,
                   "distill.feature_weight": distill.feature_weight}
    return params


def seed_params(shape: ModelShape, space: JointSpace, predict_ms: Callable[[CompressionConfig], float],
                budget_ms: float, n: int = 3) -> list[dict[str, Any]]:
    """Up to ``n`` parameter sets of ``space``: uniform configs (int8 weights when quantization is
    searched, else fp32; dense) within ``budget_ms``, the largest (slowest) for each number of kept
    heads, then the largest of those. Empty when pruning is not searched or nothing uniform fits."""
    if "prune" not in space.techniques:
        return []
    bits = 8 if "quant" in space.techniques else 32
    uniform = UniformSpace(shape=shape, techniques=frozenset({"prune", "quant"}) if bits == 8 else frozenset({"prune"}))
    best: dict[tuple[int, ...], tuple[float, dict[str, Any]]] = {}  # kept heads per block -> largest fit
    for heads in KEEP_STEPS:
        for mlp in KEEP_STEPS:
            fixed = {"keep_heads": heads, "keep_mlp": mlp} | ({"bits": bits} if bits == 8 else {})
            config = uniform.sample(optuna.trial.FixedTrial(fixed))
            params = _params_of(config, space, DistillConfig())
            # priced as the joint space samples it: the config the trial will build and score
            ms = predict_ms(space.sample(optuna.trial.FixedTrial(params)))
            key = tuple(b.heads for b in config.blocks)
            if ms <= budget_ms and ms > best.get(key, (-1.0, params))[0]:
                best[key] = (ms, params)
    return [params for _, params in sorted(best.values(), key=lambda t: -t[0])[:n]]


def enqueue_seeds(study: optuna.Study, params: list[dict[str, Any]]) -> int:
    """Enqueue the seeds as the study's next trials (``skip_if_exists``: never twice); returns how many."""
    for p in params:
        study.enqueue_trial(p, user_attrs={"warm_start": "uniform heuristic"}, skip_if_exists=True)
    return len(params)
