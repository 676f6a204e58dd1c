import copy

import pytest
import torch

from mae.model import create_model
from mae.optim import optimizer_step, set_lr
from spaces.config import DistillConfig
from toolkit.distill import kd_classification_loss, recover


def test_kd_loss_is_zero_kl_for_identical_logits_and_scales_with_t_squared():
    logits, labels = torch.randn(8, 10), torch.randint(0, 10, (8,))
    same = kd_classification_loss(logits, logits, labels, DistillConfig(temperature=2.0, alpha=0.0))
    assert abs(same.item()) < 1e-6
    s, t = torch.randn(8, 10), torch.randn(8, 10)
    # at high temperature KL ~ (mean squared logit gap) / (2 T^2): the T^2 factor keeps it O(1)
    big = [kd_classification_loss(s, t, labels, DistillConfig(temperature=T, alpha=0.0)).item() for T in (20, 40)]
    assert abs(big[0] / big[1] - 1) < 0.05


def test_feature_term_adds_token_mse():
    s, t, y = torch.randn(4, 10), torch.randn(4, 10), torch.randint(0, 10, (4,))
    tok_s, tok_t = torch.zeros(4, 5, 8), torch.ones(4, 5, 8)
    base = kd_classification_loss(s, t, y, DistillConfig(feature_weight=0.0), tok_s, tok_t)
    with_feat = kd_classification_loss(s, t, y, DistillConfig(feature_weight=0.5), tok_s, tok_t)
    assert torch.allclose(with_feat - base, torch.tensor(0.5))


def _perturbed(model, scale=0.3):
    student = copy.deepcopy(model)
    with torch.no_grad():
        for p in student.parameters():
            if p.requires_grad:
                p.add_(scale * p.std().nan_to_num() * torch.randn_like(p))
    return student


def test_recovery_reduces_the_distillation_loss(fashion_mnist):
    teacher = create_model("mae_vit_test_p7_28")
    torch.nn.init.normal_(teacher.head.weight, std=0.5)  # a confident teacher: MAE's head init is ~0
    student = _perturbed(teacher, scale=1.0)
    cfg = DistillConfig(temperature=2.0, alpha=0.0, steps=40)
    x = (fashion_mnist["val"].images[:256].float() / 255 - 0.286) / 0.353

    def kd_on_fixed_batch() -> float:
        with torch.no_grad():
            return kd_classification_loss(student(x), teacher(x), torch.zeros(256, dtype=torch.long), cfg).item()

    before = kd_on_fixed_batch()
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    rep = recover(student, teacher, fashion_mnist["train"].head(2048), cfg, batch_size=64, lr=1e-3, bf16=False,
                  progress=False)
    assert rep.steps == 40 and kd_on_fixed_batch() < 0.5 * before
    assert not student.training and all(torch.equal(v, teacher.state_dict()[k]) for k, v in teacher_state.items())


def test_reconstruction_recovery_runs_on_a_full_mae(fashion_mnist):
    teacher = create_model("mae_vit_test_p7_28", kind="mae")
    student = _perturbed(teacher)
    rep = recover(student, teacher, fashion_mnist["train"].head(1024), DistillConfig(alpha=0.1, steps=20),
                  batch_size=64, lr=1e-3, bf16=False, progress=False)
    assert rep.steps == 20 and rep.last_loss < rep.first_loss


def test_zero_steps_is_a_no_op():
    teacher = create_model("mae_vit_test_p7_28")
    student = copy.deepcopy(teacher)
    rep = recover(student, teacher, None, DistillConfig(steps=0), progress=False)  # type: ignore[arg-type]
    assert rep.steps == 0
    assert all(torch.equal(a, b) for a, b in zip(student.state_dict().values(), teacher.state_dict().values()))


def test_time_limited_recovery_runs_the_whole_schedule():
    from toolkit.distill import _lr_multiplier

    # 100,000 steps asked for, 10 s allowed: the schedule follows the clock
    assert _lr_multiplier(0, 100_000, 0.0, 10.0) < 0.01
    assert _lr_multiplier(10, 100_000, 1.0, 10.0) > 0.9
    assert _lr_multiplier(20, 100_000, 9.9, 10.0) < 0.01
    # without a time limit it is the step schedule
    assert _lr_multiplier(50, 100, 0.0, None) == pytest.approx(0.5, abs=0.05)


# ---- the optimizer step shared with mae.train (mae/optim.py) -------------------------------------------
def test_set_lr_scales_each_group_by_its_lr_scale():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([{"params": [a], "lr_scale": 0.25}, {"params": [b]}], lr=1.0)
    set_lr(opt, 0.1)
    assert opt.param_groups[0]["lr"] == 0.1 * 0.25 and opt.param_groups[1]["lr"] == 0.1


def test_optimizer_step_clips_then_steps_and_returns_the_loss():
    for clip, expected in [(None, -10.0), (0.0, -10.0), (1.0, -0.5)]:
        p = torch.nn.Parameter(torch.zeros(4))
        opt = torch.optim.SGD([p], lr=1.0)
        value = optimizer_step((10 * p).sum() + 3.0, opt, [p], clip_grad_norm=clip, step=0)
        # gradient 10 per element (norm 20): clipped to norm 1 it is 0.5 per element
        assert value == 3.0 and torch.allclose(p.detach(), torch.full((4,), expected))


def test_optimizer_step_refuses_a_non_finite_loss_and_touches_nothing():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    opt = torch.optim.AdamW([p], lr=1.0)
    with pytest.raises(FloatingPointError, match=r"the loss became nan at step 7: .*lower the learning rate"):
        optimizer_step(p.sum() * float("nan"), opt, [p], clip_grad_norm=1.0, step=7)
    assert torch.equal(p.detach(), torch.ones(3)) and torch.equal(p.grad, torch.full((3,), 2.0))
    assert not opt.state


def test_recovery_from_a_diverged_teacher_stops_with_a_floating_point_error(fashion_mnist):
    teacher = create_model("mae_vit_test_p7_28")
    student = copy.deepcopy(teacher)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    with torch.no_grad():
        teacher.head.weight.fill_(float("inf"))  # inf * 0 -> NaN logits, so a NaN loss at the first step
    with pytest.raises(FloatingPointError, match="at step 0"):
        recover(student, teacher, fashion_mnist["train"].head(64), DistillConfig(steps=3), batch_size=32,
                bf16=False, progress=False)
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in before.items())


def test_a_train_split_smaller_than_one_batch_still_recovers(fashion_mnist):
    """54 images and batch 128 (a small image folder): before, drop_last left no batch and the step loop
    never ended."""
    torch.manual_seed(0)
    teacher = create_model("mae_vit_test_p7_28").eval()
    student = copy.deepcopy(teacher)
    report = recover(student, teacher, fashion_mnist["train"].head(54), DistillConfig(steps=3), bf16=False,
                     progress=False, batch_size=128)
    assert report.steps == 3
