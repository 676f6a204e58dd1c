"""The one optimizer step shared by every training loop: MAE pre-training / fine-tuning
(:func:`mae.train.train`) and distillation recovery (:func:`toolkit.distill.recover`).

Each loop keeps its own schedule, loss and bookkeeping; what they share lives here, so that a fix to
the step (the finiteness check, clipping, the order of operations) reaches both. The order is part of
the contract: resumed runs and the search's recorded results are compared bit for bit, so changing
it changes every number downstream.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every param group's learning rate to ``lr * group["lr_scale"]`` (scale 1.0 when absent).

    ``lr`` is the scheduled rate (base rate times the schedule's multiplier); ``lr_scale`` is the
    layer-wise decay of :func:`mae.train.param_groups`. Groups without it (a plain
    ``AdamW(params)``) get ``lr`` itself: ``x * 1.0 == x`` exactly, so this is bit-identical to
    assigning ``lr`` directly.
    """
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)


def optimizer_step(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, params: Iterable[torch.Tensor], *,
    clip_grad_norm: float | None, step: int,
) -> float:
    """One update from ``loss`` (a scalar tensor, shape ``[]``); returns ``float(loss)``.

    In this order: refuse a non-finite loss (before any gradient is touched, so the model and the
    optimizer state stay as they were), ``zero_grad(set_to_none=True)``, ``backward``, clip the
    total L2 norm of the gradients of ``params`` to ``clip_grad_norm`` (``None`` or 0 turns clipping
    off), ``optimizer.step()``.

    ``params`` are the tensors whose gradients are clipped, normally the trained parameters in model
    order. Parameters whose ``.grad`` is None are skipped by ``clip_grad_norm_``, so frozen ones may
    be included or not; their order does enter the floating-point sum of the norm, so keep it fixed.
    ``step`` (0-based) only names the step in the error.

    Raises FloatingPointError when the loss is NaN or infinite.
    """
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"the loss became {float(loss.detach())} at step {step}: training diverged; lower the learning rate "
            f"(or clip the gradients) and run again"
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_grad_norm:  # None or 0: off (0 would zero every gradient, never what was meant)
        nn.utils.clip_grad_norm_(params, clip_grad_norm)
    optimizer.step()
    return float(loss.detach())
