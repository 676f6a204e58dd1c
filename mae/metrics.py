"""Scores of an uncompressed or compressed model on a split: top-1 and masked-patch reconstruction."""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from mae.data import ImageSplit, iterate_batches


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU runs bf16 autocast fast: oneDNN's bf16 kernels need AVX-512 (or AMX) on x86.

    Measured on the tiny default ViT, one training step at batch 128, one thread: an Intel Xeon with
    AVX-512 runs it about 2x faster in bf16 than in fp32; an AMD EPYC with AVX2 only, 17x *slower*
    (35 s vs 2 s), because every bf16 op falls back to a reference path. Hence the default
    "bf16 where it is fast" of ``run_search.py`` / ``maec apply`` / ``mae.train``.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: no fast bf16 either
        return False


def autocast(bf16: bool):
    """bf16 autocast on CPU (about 2x throughput for small ViTs on an AVX-512 CPU) or a no-op context."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


@torch.no_grad()
def top1_accuracy(
    model: nn.Module, split: ImageSplit, *, batch_size: int = 500, bf16: bool = False, progress: bool = False
) -> float:
    """Share of ``split`` whose arg-max logit equals the label, in [0, 1]."""
    was_training = model.training
    model.eval()
    correct = 0
    batches = iterate_batches(split, batch_size, shuffle=False)
    total = -(-len(split) // batch_size)
    for x, y in tqdm(batches, total=total, desc="eval", disable=not progress, leave=False):
        with autocast(bf16):
            logits = model(x)
        correct += int((logits.argmax(dim=-1) == y).sum())
    model.train(was_training)
    return correct / max(1, len(split))


@torch.no_grad()
def reconstruction_mse(
    mae: nn.Module, split: ImageSplit, *, mask_ratio: float = 0.75, seed: int = 0, batch_size: int = 500,
    bf16: bool = False,
) -> float:
    """Mean masked-patch MSE (in the model's target space) with a seeded, repeatable mask."""
    was_training = mae.training
    mae.eval()
    gen = torch.Generator().manual_seed(seed)
    total, n = 0.0, 0
    for x, _ in iterate_batches(split, batch_size, shuffle=False):
        with autocast(bf16):
            loss, _, _ = mae(x, mask_ratio=mask_ratio, generator=gen)
        total += float(loss) * x.shape[0]
        n += x.shape[0]
    mae.train(was_training)
    return total / max(1, n)
