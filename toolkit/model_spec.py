"""The one resolver of a model named on a command line (``--model``), for ``maec`` and ``run_search.py``.

A spec is one of

* ``default`` / ``default-mae``: the shipped fine-tuned classifier / pretrained MAE (encoder + decoder);
* a preset name of :data:`mae.model.MODEL_PRESETS` (the architecture, random weights; ``kind`` says
  classifier or full MAE);
* ``timm:NAME``: timm's architecture with random weights, converted to our modules;
* a checkpoint path: our own safetensors, an official MAE checkpoint or a timm state dict (told apart
  by metadata and keys, not by the file name; see :mod:`mae.loaders`);
* a folder written by ``maec apply`` (``model.safetensors`` + ``compression.json``).

It lives in ``toolkit`` because the last kind needs the toolkit to rebuild a compressed model; the
loaders of each file format stay in :mod:`mae.loaders`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch.nn as nn

from mae.checkpoints import CheckpointError, load_own, read_safetensors
from mae.loaders import load_checkpoint, load_timm, shipped_checkpoints
from mae.model import MODEL_PRESETS, MAEClassifier, MaskedAutoencoder, ViTArch, create_model
from spaces.config import CompressionConfig
from toolkit.artifacts import CONFIG, WEIGHTS, is_compressed_folder, load_compressed, read_config_file


@dataclass(frozen=True)
class ResolvedModel:
    """``model`` in eval mode; ``config`` the compression of a ``maec apply`` folder (else None);
    ``path`` the file the weights came from (None for presets and ``timm:`` names)."""

    model: nn.Module
    config: CompressionConfig | None = None
    path: Path | None = None


def _base_of_folder(folder: Path) -> nn.Module:
    """The uncompressed architecture a ``maec apply`` folder was compressed from (random weights)."""
    _, meta = read_safetensors(folder / WEIGHTS)
    arch = ViTArch.from_dict(json.loads(meta.get("arch", "{}")))
    return MaskedAutoencoder(arch) if meta.get("kind") == "mae" else MAEClassifier(arch)


def resolve_model(spec: str | Path, *, weights: bool = True,
                  kind: Literal["classifier", "mae"] = "classifier") -> ResolvedModel:
    """Resolve ``spec`` (module doc); raises CheckpointError with one sentence when it names nothing.

    ``weights=False`` asks for shapes only (what latency prediction needs): a ``maec apply`` folder then
    gives its *base* architecture plus its config (the predictor applies the config itself), and
    ``default`` the architecture of the shipped classifier without reading the file.
    """
    text = str(spec)
    shipped = shipped_checkpoints()
    if not weights and text == "default":  # the shipped classifier's preset: no need to read 7 MB
        return ResolvedModel(create_model("mae_vit_tiny_p4_28", kind=kind).eval())
    if text in shipped:
        path = shipped[text]
        if not path.is_file():
            raise CheckpointError(f"the shipped model {path} is missing; train it with mae.train or pass a "
                                  "checkpoint path")
        return ResolvedModel(load_own(path)[0], path=path)
    if text in MODEL_PRESETS:
        return ResolvedModel(create_model(text, kind=kind).eval())
    if text.startswith("timm:"):
        return ResolvedModel(load_timm(text[len("timm:"):]))
    path = Path(text)
    if is_compressed_folder(path):
        if not weights:
            return ResolvedModel(_base_of_folder(path).eval(), read_config_file(path / CONFIG)[0], path / WEIGHTS)
        model, config = load_compressed(path)
        return ResolvedModel(model, config, path / WEIGHTS)
    return ResolvedModel(load_checkpoint(path), path=path)
