"""Where training, recovery and evaluation run: ``--accelerator auto|cpu|cuda``, with the autocast dtype
that fits the device.

* ``cpu``: bf16 autocast only where oneDNN runs it fast (AVX-512/AMX; :func:`cpu_has_fast_bf16`), fp32
  elsewhere: on an AVX2-only CPU bf16 is ~17x *slower*.
* ``cuda``: bf16 autocast where the GPU supports it (Ampere and later), else fp32 (fp16 would need a
  gradient scaler in every training loop, for GPUs this project does not target).
* ``auto``: ``cuda`` when torch sees a GPU, else ``cpu``.

``--bf16/--no-bf16`` still forces bf16 on or off. The library functions take the two parts as
``bf16=`` and ``device=`` (:func:`autocast`); models and batches move with :func:`put`. What is handed
back to a caller (compressed models) may live on the GPU; ONNX export copies to the CPU itself.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from core.errors import UserError

ACCELERATORS = ("auto", "cpu", "cuda")


class AcceleratorError(UserError):
    """An accelerator that this machine does not have; one sentence."""


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


def autocast(bf16: bool, device: str = "cpu"):
    """bf16 autocast on ``device`` (about 2x throughput for small ViTs on an AVX-512 CPU) or a no-op."""
    return torch.autocast(device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def put(x, device: str):
    """``x`` (tensor or module) on ``device``; a no-op on the CPU."""
    return x if device == "cpu" else x.to(device, non_blocking=True)


@dataclass(frozen=True)
class Accelerator:
    """A device and whether autocast runs in bf16 there."""

    device: str = "cpu"
    bf16: bool = False

    def describe(self) -> str:
        name = torch.cuda.get_device_name(0) if self.device == "cuda" else "CPU"
        return f"{self.device} ({name}), {'bf16 autocast' if self.bf16 else 'fp32'}"


def resolve_accelerator(name: str = "auto", bf16: bool | None = None) -> Accelerator:
    """The accelerator ``name`` names (``auto``, ``cpu``, ``cuda``); ``bf16`` True/False forces bf16
    autocast on/off, None chooses what is fast there (module doc)."""
    if name not in ACCELERATORS:
        raise AcceleratorError(f"unknown accelerator {name!r}; choose from {', '.join(ACCELERATORS)}")
    cuda = torch.cuda.is_available()
    if name == "cuda" and not cuda:
        raise AcceleratorError("--accelerator cuda was asked for, but torch sees no CUDA GPU on this machine")
    if name == "cuda" or (name == "auto" and cuda):
        return Accelerator("cuda", torch.cuda.is_bf16_supported() if bf16 is None else bf16)
    return Accelerator("cpu", cpu_has_fast_bf16() if bf16 is None else bf16)
