"""Turn a model and a ``CompressionConfig`` into a compressed model: ``compress(model, config, ...)``
(with optional distillation recovery; returns the student and a report) and ``apply(model, config)``
(DESIGN.md's interface: the same without recovery, the student only).

Order (each step needs the previous one's shapes):

1. **prune** heads and MLP units (importance from ``config.importance``; Taylor uses a calibration
   batch), physically shrinking the Linears;
2. **low-rank**: SVD-factorise the surviving Linears that have a rank; **token merging** per encoder
   block (``toolkit.tokens``: no weights, the model merges in its forward);
3. **quantize**: per-Linear weight bits (fake-quantized values baked into the weights, or kept in the
   loop as QAT during recovery), then MinMax calibration of int8 activations;
4. **recover** (optional, ``config.distill.steps`` or ``recover_steps``): distillation from the
   uncompressed model, with quantization in the loop, before the weights are baked.

The input model is never modified; the identity config returns a model whose outputs are allclose
to the original's (exactly equal, in fact: nothing is touched).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from mae.data import ImageSplit, iterate_batches
from mae.model import MaskedAutoencoder, describe
from spaces.config import CompressionConfig
from toolkit.distill import recover
from toolkit.lowrank import apply_lowrank
from toolkit.prune import prune_model
from toolkit.quant import bake_fake_quant_, calibrate_activations_, prepare_fake_quant_
from toolkit.tokens import apply_token_merging


@dataclass
class CompressionReport:
    """What each step did, as plain data (goes into ``report.json`` and the study's user attributes)."""

    params_before: int
    params_after: int = 0
    prune: dict = field(default_factory=dict)
    lowrank: list[dict] = field(default_factory=list)
    quant: list[dict] = field(default_factory=list)
    merge_tokens: list[int] = field(default_factory=list)
    recovery: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def calibration_batches(split: ImageSplit | None, images: int = 256, batch_size: int = 128) -> list:
    """The first ``images`` of ``split`` as normalised ``(x [B, C, H, W], y [B])`` batches."""
    if split is None:
        return []
    return list(iterate_batches(split.head(images), batch_size, shuffle=False))


def _task_loss(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    if isinstance(model, MaskedAutoencoder):
        return model(x, generator=torch.Generator().manual_seed(0))[0]
    return F.cross_entropy(model(x), y)


def compress(
    model: nn.Module, config: CompressionConfig, *, calib: ImageSplit | None = None,
    train: ImageSplit | None = None, recover_steps: int | None = None, bf16: bool = True, seed: int = 0,
    progress: bool = False, recovery_lr: float | None = None, time_limit_s: float | None = None,
    device: str = "cpu", batch_size: int = 128,
) -> tuple[nn.Module, CompressionReport]:
    """Compressed copy of ``model`` and a report. ``calib`` feeds Taylor importance and int8
    activation ranges; ``train`` (with steps > 0) feeds distillation recovery from ``model`` at
    ``config.distill.lr`` (``recovery_lr`` overrides it) on ``device`` (the student comes back on the CPU),
    ``batch_size`` images per step."""
    config.validate_for(describe(model))
    steps = config.distill.steps if recover_steps is None else recover_steps
    batches = calibration_batches(calib)
    if config.importance == "taylor" and not batches:
        raise ValueError("Taylor importance needs calibration images (calib=...)")
    if config.act_bits == 8 and not batches:
        raise ValueError("int8 activations need calibration images (calib=...)")

    torch.manual_seed(seed)
    student = copy.deepcopy(model).eval()
    report = CompressionReport(params_before=count_params(model))
    if config.is_identity(describe(model)):
        report.params_after = report.params_before
        return student, report

    pr = prune_model(student, config, importance=config.importance, calib_batches=batches, loss_fn=_task_loss)
    report.prune = pr.to_dict()
    report.lowrank = [e.to_dict() for e in apply_lowrank(student, config)]
    report.merge_tokens = apply_token_merging(student, config)
    prepare_fake_quant_(student, config)
    calibrate_activations_(student, (x for x, _ in batches))
    if steps > 0 and train is not None:
        rec = recover(student, model, train, replace(config.distill, steps=steps), bf16=bf16, seed=seed,
                      progress=progress, lr=config.distill.lr if recovery_lr is None else recovery_lr,
                      time_limit_s=time_limit_s, device=device, batch_size=batch_size)
        report.recovery = rec.to_dict()
        # Recovery moved the weights: re-observe activation ranges on the recovered model.
        calibrate_activations_(student, (x for x, _ in batches))
    report.quant = [e.to_dict() for e in bake_fake_quant_(student)]
    report.params_after = count_params(student)
    for p in student.parameters():
        p.requires_grad_(False)
    return student.eval(), report


def apply(model: nn.Module, config: CompressionConfig, *, calib: ImageSplit | None = None) -> nn.Module:
    """The compressed model without recovery (see :func:`compress` for recovery and the report)."""
    return compress(model, config, calib=calib, recover_steps=0)[0]
