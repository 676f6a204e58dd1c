"""Task scores of a compressed candidate at a chosen fidelity.

``classify``: top-1 accuracy in [0, 1]. ``reconstruct``: masked-patch PSNR in dB on pixel values in
[0, 1] (higher is better, so both tasks are maximised), with a fixed seeded mask.

A fidelity is how much is spent on a candidate: how many validation images, and how many
distillation steps of recovery before scoring (0 = the compressed model as it comes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mae.data import ImageSplit
from mae.metrics import reconstruction_mse, top1_accuracy
from mae.model import MaskedAutoencoder
from spaces.config import CompressionConfig
from toolkit.compress import CompressionReport, compress

CALIBRATION_IMAGES = 256  # from the train split: int8 ranges and Taylor importance


@dataclass(frozen=True)
class Fidelity:
    val_images: int | None  # None: the whole split
    recover_steps: int


def psnr_db(mse_pixels: float) -> float:
    """PSNR of a mean squared error measured on pixels in [0, 1]."""
    return 10.0 * math.log10(1.0 / max(mse_pixels, 1e-12))


class TaskEvaluator:
    """Compresses the teacher with a config and scores the result on a split."""

    def __init__(self, teacher: nn.Module, splits: dict[str, ImageSplit], *, bf16: bool = True, seed: int = 0,
                 progress: bool = False, device: str = "cpu", batch_size: int = 128):
        self.teacher = teacher.eval()
        self.splits = splits
        self.bf16, self.seed, self.progress, self.device = bf16, seed, progress, device
        self.batch_size = batch_size  # recovery images per step
        self.is_reconstruction = isinstance(teacher, MaskedAutoencoder)
        self.metric_name = "psnr_db" if self.is_reconstruction else "accuracy"

    def score(self, model: nn.Module, split: str = "val", images: int | None = None) -> float:
        """The task metric of ``model`` on the first ``images`` of ``split``."""
        data = self.splits[split].head(images)
        if self.is_reconstruction:
            # the MAE's loss is in normalised units; std^2 turns it into pixel units (no norm_pix_loss)
            mse = reconstruction_mse(model, data, seed=self.seed, bf16=self.bf16, device=self.device)
            # normalised units -> pixel units: times std^2 (per-channel statistics: their mean square)
            pixel_var = float(torch.tensor(data.std, dtype=torch.float64).pow(2).mean())
            return psnr_db(mse * pixel_var)
        return top1_accuracy(model, data, bf16=self.bf16, device=self.device)

    def compress(self, config: CompressionConfig, recover_steps: int,
                 time_limit_s: float | None = None) -> tuple[nn.Module, CompressionReport]:
        train = self.splits["train"]
        return compress(self.teacher, config, calib=train.head(CALIBRATION_IMAGES), train=train,
                        recover_steps=recover_steps, bf16=self.bf16, seed=self.seed, progress=self.progress,
                        time_limit_s=time_limit_s, device=self.device, batch_size=self.batch_size)

    def evaluate(self, config: CompressionConfig, fidelity: Fidelity) -> tuple[float, nn.Module, CompressionReport]:
        """``(score on val, compressed model, report)`` at ``fidelity``."""
        student, report = self.compress(config, fidelity.recover_steps)
        return self.score(student, "val", fidelity.val_images), student, report
