"""Warm start of a joint-space study: the uniform heuristic's largest configs that fit the budget, one
per technique family, enqueued (``Study.enqueue_trial``) as its first trials.

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
from spaces.space import RANK_FRACTIONS, JointSpace, UniformSpace

KEEP_STEPS = tuple(i / 8 for i in range(1, 9))  # kept share of heads and of MLP units, in eighths


def _params_of(config: CompressionConfig, space: JointSpace, distill: DistillConfig, rank_fraction: float) -> dict[str, Any]:
    """The joint space's parameters that sample ``config`` (a uniform one: one bit-width, one rank share)."""
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
                params[f"{prefix}.{name}.rank"] = rank_fraction
        if "tokens" in t and prefix.startswith("b"):
            params[f"{prefix}.merge"] = 0.0  # the seeds merge no tokens: the sampler explores merging
    if "quant" in t:
        params["act_bits"] = 32
    if "distill" in t and space.distill_steps > 0:
        params |= {"distill.temperature": distill.temperature, "distill.alpha": distill.alpha,
                   "distill.feature_weight": distill.feature_weight}
    return params


def seed_params(shape: ModelShape, space: JointSpace, predict_ms: Callable[[CompressionConfig], float],
                budget_ms: float, n: int = 6) -> list[dict[str, Any]]:
    """Up to ``n`` parameter sets of ``space``: uniform configs within ``budget_ms``, one per family
    (weight bits int8 / fp16 when quantization is searched, else fp32; x SVD rank share 0 / 1/8 / 1/4 /
    1/2 of min(in, out) when low-rank is searched, else dense), each the largest (slowest) of its family
    over the kept shares of heads and MLP units; the largest first. Empty when nothing uniform fits.

    Why families and not just the largest config: which technique costs least accuracy is not known
    before scoring (without recovery, low-rank factors keep far more accuracy than pruning on the
    default model; with recovery, pruned int8 models catch up), so the seeds cover each technique."""
    t = space.techniques
    keep = KEEP_STEPS if "prune" in t else (1.0,)
    bit_choices = (8, 16) if "quant" in t else (32,)
    fractions = RANK_FRACTIONS if "lowrank" in t else (0.0,)
    uniform = UniformSpace(shape=shape, techniques=frozenset(t) - {"distill"} | {"prune"})
    seeds: list[tuple[float, dict[str, Any]]] = []
    for bits in bit_choices:
        for frac in fractions:
            best: tuple[float, dict[str, Any]] | None = None
            for heads in keep:
                for mlp in keep:
                    fixed = {"keep_heads": heads, "keep_mlp": mlp, "bits": bits, "rank": frac, "merge": 0.0}
                    config = uniform.sample(optuna.trial.FixedTrial(fixed))
                    params = _params_of(config, space, DistillConfig(), frac)
                    # priced as the joint space samples it: the config the trial will build and score
                    ms = predict_ms(space.sample(optuna.trial.FixedTrial(params)))
                    if ms <= budget_ms and (best is None or ms > best[0]):
                        best = (ms, params)
            if best is not None and best[1] not in [p for _, p in seeds]:
                seeds.append(best)
    return [params for _, params in sorted(seeds, key=lambda t: -t[0])[:n]]


def enqueue_seeds(study: optuna.Study, params: list[dict[str, Any]], label: str = "uniform heuristic") -> int:
    """Enqueue the seeds as the study's next trials (``skip_if_exists``: never twice), each with the user
    attribute ``warm_start = label``; returns how many."""
    for p in params:
        study.enqueue_trial(p, user_attrs={"warm_start": label}, skip_if_exists=True)
    return len(params)
