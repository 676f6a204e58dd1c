"""The reference sweep (``maec measure --sweep reference``): whole, uncompressed plain ViTs that published
ARM measurements also timed -- DeiT-Tiny / Small / Base and ViT-B/16 / B/32 at 224 px, batch 1, fp32 --
built into a kit that runs on a board (``run_kit.py``, numpy + onnxruntime only).

Why: the whole-model checks of issue 14 that this project cannot close from public rows need these models
timed *in ONNX Runtime* on the boards the shipped profiles describe (one thread on a Pi 4, several threads on
an A76). With this kit anyone holding such a board times them in minutes; ``maec validate`` then compares
them with a profile (per model and as size-scaling ratios) and turns them into rows of the project's data
CSV with their provenance.

Each model is timm's architecture with random weights (latency does not depend on the values), converted
to the project's modules by :func:`mae.loaders.load_timm` and exported by :func:`toolkit.export.export_onnx`,
the graph ``maec apply`` deploys. Rows are model rows (``spec``: shape, identity config, class-token
pooling), named ``ref_<model>`` after the data CSV's model names, so :func:`spec_ops` prices them.
"""
from __future__ import annotations

from pathlib import Path

from evaluators.latency.measure.items import BenchItem, onnx_inputs
from spaces.config import CompressionConfig

# the data CSV's model name -> timm's architecture name
REFERENCE_MODELS = {
    "deit-tiny-patch16-224": "deit_tiny_patch16_224",
    "deit-small-patch16-224": "deit_small_patch16_224",
    "deit-base-patch16-224": "deit_base_patch16_224",
    "vit-base-patch32-224": "vit_base_patch32_224",
    "vit-base-patch16-224": "vit_base_patch16_224",
}
PREFIX = "ref_"


def reference_item(name: str) -> BenchItem:
    """One reference model (a key of :data:`REFERENCE_MODELS`) as a kit entry; ValueError for other names."""
    if name not in REFERENCE_MODELS:
        raise ValueError(f"unknown reference model {name!r}; choose from {', '.join(REFERENCE_MODELS)}")
    # torch and timm only here: `maec validate` / `maec devices` read the names above without them
    from mae.loaders import load_timm
    from mae.model import describe

    model = load_timm(REFERENCE_MODELS[name])
    shape = describe(model, name=name)
    spec = {"shape": shape.to_dict(), "config": CompressionConfig.identity(shape).to_dict(), "task": "classify",
            "global_pool": model.arch.global_pool, "reference": name}

    def build(path: Path) -> list[dict]:
        import torch

        from toolkit.export import export_onnx  # torch.onnx: only when a kit is built

        torch.manual_seed(0)
        built = load_timm(REFERENCE_MODELS[name])
        export_onnx(built, path)
        arch = built.arch
        return onnx_inputs(["images"], [(1, arch.in_chans, arch.img_size, arch.img_size)])

    return BenchItem(f"{PREFIX}{name}", "model", spec, build)


def reference_items(names: list[str] | None = None) -> list[BenchItem]:
    """The reference models (default: all of :data:`REFERENCE_MODELS`, smallest first)."""
    return [reference_item(n) for n in (names or list(REFERENCE_MODELS))]
