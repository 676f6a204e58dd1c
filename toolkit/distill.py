"""Recovery of a compressed student from its uncompressed teacher by knowledge distillation.

Classification: ``T^2 * KL(softmax(t/T) || softmax(s/T)) + alpha * CE(s, y)
+ feature_weight * MSE(student tokens, teacher tokens)`` (Hinton et al. 2015; the T^2 keeps the
gradient scale independent of T). Reconstruction (full MAE): MSE between the student's and the
teacher's predicted pixels on the masked patches of one shared mask, ``+ alpha *`` the student's own
masked-patch loss, + the same token-feature term on the encoder's visible tokens.

Pruning keeps the embedding width, so student and teacher tokens always have the same shape.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from mae.data import ImageSplit, iterate_batches
from mae.accelerator import autocast, put
from mae.model import MAEClassifier, MaskedAutoencoder, masked_patch_loss
from mae.optim import optimizer_step, set_lr
from mae.schedule import cosine_with_warmup
from spaces.config import DistillConfig


@dataclass(frozen=True)
class RecoveryReport:
    steps: int
    first_loss: float
    last_loss: float
    wall_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def kd_classification_loss(
    s_logits: torch.Tensor, t_logits: torch.Tensor, labels: torch.Tensor, cfg: DistillConfig,
    s_tokens: torch.Tensor | None = None, t_tokens: torch.Tensor | None = None,
) -> torch.Tensor:
    """``s_logits, t_logits: [N, classes]``, ``labels: [N]``, tokens ``[N, 1 + L, D]`` -> scalar loss."""
    t = cfg.temperature
    kl = F.kl_div(F.log_softmax(s_logits.float() / t, dim=-1), F.log_softmax(t_logits.float() / t, dim=-1),
                  reduction="batchmean", log_target=True)
    loss = kl * t * t + cfg.alpha * F.cross_entropy(s_logits.float(), labels)
    if cfg.feature_weight and s_tokens is not None and t_tokens is not None:
        loss = loss + cfg.feature_weight * F.mse_loss(s_tokens.float(), t_tokens.float())
    return loss


def _classification_step(student: MAEClassifier, teacher: MAEClassifier, x, y, cfg: DistillConfig):
    with torch.no_grad():
        t_tokens = teacher.forward_features(x)
        t_logits = teacher.head(teacher.pool(t_tokens))
    s_tokens = student.forward_features(x)
    s_logits = student.head(student.pool(s_tokens))
    return kd_classification_loss(s_logits, t_logits, y, cfg, s_tokens, t_tokens)


def _reconstruction_step(student: MaskedAutoencoder, teacher: MaskedAutoencoder, x, cfg: DistillConfig,
                         gen: torch.Generator, mask_ratio: float):
    # One mask for both so that the student learns the teacher's answer to the same question.
    state = gen.get_state()
    s_latent, mask, ids_restore = student.forward_encoder(x, mask_ratio, gen)
    gen_t = torch.Generator(device=gen.device).set_state(state)
    with torch.no_grad():
        t_latent, _, _ = teacher.forward_encoder(x, mask_ratio, gen_t)
        t_pred = teacher.forward_decoder(t_latent, ids_restore)
    s_pred = student.forward_decoder(s_latent, ids_restore)
    loss = masked_patch_loss(s_pred, t_pred, mask)
    if cfg.alpha:
        loss = loss + cfg.alpha * masked_patch_loss(s_pred, student.target(x), mask)
    if cfg.feature_weight:
        loss = loss + cfg.feature_weight * F.mse_loss(s_latent.float(), t_latent.float())
    return loss


def _lr_multiplier(step: int, steps: int, elapsed_s: float, time_limit_s: float | None) -> float:
    """Warm-up over the first 5% then cosine to zero, over whichever budget runs out first: the steps,
    or the time limit (a time-limited recovery with a huge step count still gets the whole schedule)."""
    progress = step / max(1, steps)
    if time_limit_s:
        progress = max(progress, elapsed_s / time_limit_s)
    total = 10_000
    return cosine_with_warmup(int(progress * total), total, total // 20)


def recover(
    student: nn.Module, teacher: nn.Module, train: ImageSplit, cfg: DistillConfig, *, batch_size: int = 128,
    lr: float = 1e-4, weight_decay: float = 0.0, bf16: bool = True, seed: int = 0, mask_ratio: float = 0.75,
    progress: bool = True, time_limit_s: float | None = None, device: str = "cpu",
) -> RecoveryReport:
    """Train ``student`` in place for ``cfg.steps`` steps (or until ``time_limit_s``) against ``teacher``.

    Works for classifiers and full MAEs (``mask_ratio`` applies to the latter). The teacher runs in
    eval mode under no_grad and is not modified; the student ends in eval mode. Both run on ``device``
    and are back where they were (the CPU, for every caller) when it returns.
    """
    if cfg.steps <= 0:
        return RecoveryReport(0, float("nan"), float("nan"), 0.0)
    if len(train) == 0:
        raise ValueError("recovery needs training images: the train split is empty")
    # full batches only (drop_last), but never more than the split holds: a split smaller than one batch
    # would otherwise yield no batch at all and the step loop would never end
    batch_size = min(batch_size, len(train))
    teacher_was_training = teacher.training
    homes = (next(student.parameters()).device, next(teacher.parameters()).device)
    put(teacher, device).eval()  # its forward runs under no_grad; its parameters are left as the caller had them
    put(student, device).train()
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)  # batch order and augmentation (on the CPU)
    mask_gen = gen if device == "cpu" else torch.Generator(device=device).manual_seed(seed)  # MAE masks
    is_mae = isinstance(student, MaskedAutoencoder)
    t0, step, first, last = time.perf_counter(), 0, float("nan"), float("nan")
    bar = tqdm(total=cfg.steps, desc="distill", disable=not progress, leave=False)
    while step < cfg.steps:
        for x, y in iterate_batches(train, batch_size, shuffle=True, generator=gen, augment_images=not is_mae,
                                    drop_last=True):
            set_lr(opt, lr * _lr_multiplier(step, cfg.steps, time.perf_counter() - t0, time_limit_s))
            x, y = put(x, device), put(y, device)
            with autocast(bf16, device):
                if is_mae:
                    loss = _reconstruction_step(student, teacher, x, cfg, mask_gen, mask_ratio)
                else:
                    loss = _classification_step(student, teacher, x, y, cfg)
            # Clipped over the trained params only: a frozen one may hold a .grad from earlier use that
            # zero_grad (which clears the optimizer's params only) never clears; it must not enter the norm.
            last = optimizer_step(loss, opt, params, clip_grad_norm=1.0, step=step)
            first = last if step == 0 else first
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{last:.4f}")
            if step >= cfg.steps or (time_limit_s and time.perf_counter() - t0 > time_limit_s):
                break
        if time_limit_s and time.perf_counter() - t0 > time_limit_s:
            break
    bar.close()
    student.to(homes[0]).eval()
    teacher.to(homes[1]).train(teacher_was_training)
    return RecoveryReport(step, first, last, round(time.perf_counter() - t0, 2))
