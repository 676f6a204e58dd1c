"""A compressed model on disk: a folder with ``model.safetensors`` (weights), ``compression.json``
(the CompressionConfig) and the base architecture in the safetensors metadata.

Loading rebuilds the structure from the base architecture and the config (prune to the kept counts,
factorise, insert the quantizers) on random weights, then loads the saved weights strictly: shapes are
told by the config, values by the file. Nothing from the folder is executed.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import save_file

from core.files import write_atomic, write_text_atomic
from mae.checkpoints import CheckpointError, read_safetensors
from mae.model import MAEClassifier, MaskedAutoencoder, ViTArch
from spaces.config import CompressionConfig, ConfigError
from toolkit.lowrank import apply_lowrank
from toolkit.prune import prune_model
from toolkit.quant import bake_fake_quant_, prepare_fake_quant_
from toolkit.tokens import apply_token_merging

WEIGHTS, CONFIG = "model.safetensors", "compression.json"


def save_compressed(model: nn.Module, config: CompressionConfig, out_dir: Path, extra: dict | None = None) -> None:
    """Write the compressed ``model`` and its ``config`` to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    kind = "mae" if isinstance(model, MaskedAutoencoder) else "classifier"
    meta = {"format": "mae-compress-search/compressed", "kind": kind, "arch": json.dumps(model.arch.to_dict()),
            "extra": json.dumps(extra or {})}
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    # the config first: a folder with weights always has the config that gives their shapes
    write_text_atomic(out_dir / CONFIG, config.to_json() + "\n")
    write_atomic(out_dir / WEIGHTS, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_compressed(folder: Path) -> tuple[nn.Module, CompressionConfig]:
    """Rebuild a model written by :func:`save_compressed`; returns ``(model in eval mode, config)``."""
    if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
        raise CheckpointError(f"{folder} is not a compressed model folder (needs {WEIGHTS} and {CONFIG})")
    config = CompressionConfig.from_json((folder / CONFIG).read_text())
    tensors, meta = read_safetensors(folder / WEIGHTS)
    if meta.get("format") != "mae-compress-search/compressed":
        raise CheckpointError(f"{folder / WEIGHTS} was not written by `maec apply`")
    arch = ViTArch.from_dict(json.loads(meta["arch"]))
    torch.manual_seed(0)
    model: nn.Module = MaskedAutoencoder(arch) if meta.get("kind") == "mae" else MAEClassifier(arch)
    prune_model(model, config, importance="magnitude")
    apply_lowrank(model, config)
    apply_token_merging(model, config)
    prepare_fake_quant_(model, config)
    bake_fake_quant_(model)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise CheckpointError(f"{folder} does not match its own compression.json: "
                              f"{str(e).strip().splitlines()[-1].strip()}") from None
    return model.eval(), config


def is_compressed_folder(path: Path) -> bool:
    """Whether ``path`` is a folder written by ``maec apply`` (it holds a ``compression.json``)."""
    return path.is_dir() and (path / CONFIG).exists()


def read_config_file(path: str | Path) -> tuple[CompressionConfig, dict]:
    """A CompressionConfig JSON, or a ``winner.json`` (``{"config": ..., ...}``); returns
    ``(config, the rest of the file)``."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config {path} ({e.__class__.__name__})") from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ConfigError(f"{path} is not valid JSON ({e})") from None
    try:
        if isinstance(data, dict) and "config" in data and "blocks" not in data:
            return CompressionConfig.from_dict(data["config"]), {k: v for k, v in data.items() if k != "config"}
        return CompressionConfig.from_dict(data), {}
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
