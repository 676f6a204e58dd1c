"""Models by name with their weights: ``create_model(name, checkpoint=...)`` (timm's pattern).

The names are :data:`mae.model.MODEL_PRESETS` (the embedded models, the official MAE ViT-B/16 and
ViT-L/16); each preset's ``ViTArch`` carries its input config (size, channels, per-channel mean/std,
crop, classes). A ``checkpoint`` -- ours, facebookresearch/mae's layout with or without decoder, or a
timm state dict (:func:`mae.loaders.load_checkpoint`) -- must have the preset's architecture (input
config, head and pooling aside). ``timm:NAME`` names timm's ViTs (converted to our modules, with timm's
``pretrained_cfg`` as input config); a checkpoint then holds the weights. A module of its own because the
loaders build on :mod:`mae.model`.
"""
from __future__ import annotations

from typing import Literal

from torch import nn

from mae.checkpoints import CheckpointError, load_weights_strict
from mae.loaders import load_checkpoint, load_timm
from mae.model import MODEL_PRESETS, MaskedAutoencoder, ViTArch
from mae.model import create_model as create_preset

# fields that may differ between a checkpoint and its preset: input config, head, pooling, loss, epsilon
NOT_ARCHITECTURE = {"mean", "std", "crop_pct", "num_classes", "global_pool", "norm_pix_loss", "layer_norm_eps"}


def create_model(name: str, kind: Literal["classifier", "mae"] = "classifier", *, checkpoint: str | None = None,
                 **overrides) -> nn.Module:
    """The preset ``name`` (random weights), or with ``checkpoint``'s weights (eval mode; a full MAE
    when the checkpoint has a decoder). CheckpointError names the first field that differs."""
    if name.startswith("timm:"):
        model = load_timm(name[len("timm:"):])
        if checkpoint is not None:
            load_weights_strict(model, load_checkpoint(checkpoint).state_dict(), f"{checkpoint} is not a {name}")
        return model
    if checkpoint is None:
        return create_preset(name, kind, **overrides)
    if name not in MODEL_PRESETS:
        raise KeyError(f"unknown model preset {name!r}; known: {', '.join(sorted(MODEL_PRESETS))}")
    arch = MODEL_PRESETS[name].with_(**{k: v for k, v in overrides.items() if k != "drop_path"})
    loaded = load_checkpoint(checkpoint)
    has_decoder = isinstance(loaded, MaskedAutoencoder)
    for k in ViTArch.__dataclass_fields__:
        if k in NOT_ARCHITECTURE or (k.startswith("decoder_") and not has_decoder):
            continue
        if getattr(loaded.arch, k) != getattr(arch, k):
            raise CheckpointError(f"{checkpoint} is not a {name}: its {k} is {getattr(loaded.arch, k)}, "
                                  f"the preset's {getattr(arch, k)}")
    return loaded
