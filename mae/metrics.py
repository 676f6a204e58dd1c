"""Scores of an uncompressed or compressed model on a split: top-1 and masked-patch reconstruction."""
from __future__ import annotations

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from mae.accelerator import autocast, put
from mae.data import ImageSplit, iterate_batches


@torch.no_grad()
def top1_accuracy(
    model: nn.Module, split: ImageSplit, *, batch_size: int = 500, bf16: bool = False, progress: bool = False,
    device: str = "cpu",
) -> float:
    """Share of ``split`` whose arg-max logit equals the label, in [0, 1]; run on ``device`` (the model is
    back where it was afterwards)."""
    was_training, home = model.training, next(model.parameters()).device
    model = put(model, device).eval()
    correct = 0
    batches = iterate_batches(split, batch_size, shuffle=False)
    total = -(-len(split) // batch_size)
    for x, y in tqdm(batches, total=total, desc="eval", disable=not progress, leave=False):
        with autocast(bf16, device):
            logits = model(put(x, device))
        correct += int((logits.argmax(dim=-1).cpu() == y).sum())
    model.to(home).train(was_training)
    return correct / max(1, len(split))


@torch.no_grad()
def reconstruction_mse(
    mae: nn.Module, split: ImageSplit, *, mask_ratio: float = 0.75, seed: int = 0, batch_size: int = 500,
    bf16: bool = False, device: str = "cpu",
) -> float:
    """Mean masked-patch MSE (in the model's target space) with a seeded, repeatable mask."""
    was_training, home = mae.training, next(mae.parameters()).device
    mae = put(mae, device).eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    total, n = 0.0, 0
    for x, _ in iterate_batches(split, batch_size, shuffle=False):
        with autocast(bf16, device):
            loss, _, _ = mae(put(x, device), mask_ratio=mask_ratio, generator=gen)
        total += float(loss) * x.shape[0]
        n += x.shape[0]
    mae.to(home).train(was_training)
    return total / max(1, n)
