"""Whole-model benchmarks of ``maec measure``: compressed models sampled from the project's own search
space (``spaces.space.JointSpace``), built by the toolkit exactly as ``maec apply`` builds them (prune,
low-rank, ``export_onnx``, ``quantize_onnx``). Their rows carry the shape and the config, and are
decomposed again at calibration time; the host proof predicts them without fitting on them.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from evaluators.latency.measure.items import BenchItem, onnx_inputs
from mae.model import create_model, describe
from spaces.config import CompressionConfig
from spaces.space import DEFAULT_TECHNIQUES, JointSpace
from toolkit.export import export_onnx, linear_bits_for, quantize_onnx
from toolkit.lowrank import apply_lowrank
from toolkit.prune import prune_model
from toolkit.tokens import apply_token_merging


class _RngTrial:
    """Answers a search space's ``suggest_*`` calls from a seeded generator (like optuna's RandomSampler)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return int(low + step * self.rng.integers(0, (high - low) // step + 1))

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        return float(self.rng.uniform(low, high))

    def suggest_categorical(self, name: str, choices):
        return choices[int(self.rng.integers(0, len(choices)))]


def sample_configs(shape, n: int, seed: int, techniques: frozenset[str] | None = None):
    """``n`` seeded configs from the project's joint search space for ``shape``."""
    space = JointSpace(shape=shape, techniques=techniques or frozenset(DEFAULT_TECHNIQUES) - {"distill"})
    rng = np.random.default_rng(seed)
    return [space.sample(_RngTrial(rng)) for _ in range(n)]


def model_item(preset: str, kind: str, config, tag: str, mask_ratio: float = 0.75) -> BenchItem:
    """A whole model compressed by ``config`` with the toolkit and exported as ``maec apply`` does."""
    shape = describe(create_model(preset, kind=kind), name=preset)
    task = "reconstruct" if kind == "mae" else "classify"
    spec = {"shape": shape.to_dict(), "config": config.to_dict(), "task": task, "mask_ratio": mask_ratio,
            "global_pool": "avg", "preset": preset}

    def build(path: Path) -> list[dict]:
        torch.manual_seed(0)
        model = create_model(preset, kind=kind).eval()
        prune_model(model, config, importance="magnitude")
        apply_lowrank(model, config)
        apply_token_merging(model, config)
        arch = model.arch
        img = (1, arch.in_chans, arch.img_size, arch.img_size)
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", mask_ratio=mask_ratio)
            bits = linear_bits_for(model, config)
            if any(b != 32 for b in bits.values()):
                calib = [np.random.default_rng(s).standard_normal(img).astype(np.float32) for s in range(2)]
                quantize_onnx(fp32, path, linear_bits=bits, act_bits=config.act_bits,
                                calib_batches=calib if config.act_bits == 8 else None)
            else:
                shutil.copyfile(fp32, path)
        return onnx_inputs(["images"], [img])

    return BenchItem(f"model_{preset}_{kind}_{tag}", "model", spec, build)


def model_items(sweep: str, seed: int = 0) -> list[BenchItem]:
    """Sampled compressed models of the embedded default (classifier, and a few full-MAE ones)."""
    n_cls, n_mae = {"quick": (1, 0), "standard": (12, 3), "proof": (40, 8)}[sweep]
    preset = "mae_vit_tiny_p4_28"
    cls_shape = describe(create_model(preset), name=preset)
    items = [model_item(preset, "classifier", CompressionConfig.identity(cls_shape), "identity")]
    for i, cfg in enumerate(sample_configs(cls_shape, n_cls - 1, seed + 1)):
        items.append(model_item(preset, "classifier", cfg, f"s{seed}_{i}"))
    if n_mae:
        mae_shape = describe(create_model(preset, kind="mae"), name=preset)
        items.append(model_item(preset, "mae", CompressionConfig.identity(mae_shape), "identity"))
        for i, cfg in enumerate(sample_configs(mae_shape, n_mae - 1, seed + 2)):
            items.append(model_item(preset, "mae", cfg, f"s{seed}_{i}"))
    return items
