"""Counts of a (compressed) model: parameters, multiply-accumulates, bytes of weights as deployed."""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from mae.model import MaskedAutoencoder
from spaces.config import CompressionConfig
from toolkit.lowrank import LowRankLinear, linear_sites


@torch.no_grad()
def count_macs(model: nn.Module, mask_ratio: float = 0.75) -> int:
    """Multiply-accumulates of one image (batch 1), counted by torch's FlopCounterMode (FLOPs / 2).

    A full MAE is counted as deployed for reconstruction: encoder on the visible tokens, decoder on all.
    """
    arch = model.arch
    x = torch.zeros(1, arch.in_chans, arch.img_size, arch.img_size)
    was_training = model.training
    model.eval()
    # FlopCounterMode has no formula for the fused CPU attention kernel: count the explicit matmuls
    fused = {m: m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")}
    for m in fused:
        m.fused_attn = False
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            if isinstance(model, MaskedAutoencoder):
                model(x, mask_ratio=mask_ratio, generator=torch.Generator().manual_seed(0))
            else:
                model(x)
    finally:
        for m, flag in fused.items():
            m.fused_attn = flag
        model.train(was_training)
    return counter.get_total_flops() // 2


def weight_bytes(model: nn.Module, config: CompressionConfig) -> int:
    """Bytes of all parameters as deployed: block Linear weights at their configured bits (int4 packed
    two per byte, plus one fp32 scale per output channel for 8 and 4 bits), everything else fp32."""
    total = sum(p.numel() * 4 for p in model.parameters())
    for site in linear_sites(model, config):
        m = site.module
        if m is None:
            continue
        bits = site.block.weight_bits[site.key]
        for lin in ((m.first, m.second) if isinstance(m, LowRankLinear) else (m,)):
            n = lin.weight.numel()
            scales = lin.out_features * 4 if bits in (8, 4) else 0
            total += -n * 4 + (n * bits + 7) // 8 + scales
    return total
