"""Our own checkpoint format: safetensors with the architecture and metrics in the metadata.

Loading never executes anything from a file: safetensors, or ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from core.errors import UserError
from core.files import write_atomic
from mae.model import MAEClassifier, MaskedAutoencoder, ViTArch

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"


class CheckpointError(UserError):
    """A checkpoint is corrupt, of an unknown layout or does not fit the model; one sentence."""


def save_model(model: nn.Module, path: str | Path, extra: dict | None = None) -> None:
    """Write ``model``'s weights and ``ViTArch`` to ``path`` (safetensors), atomically."""
    path = Path(path)
    kind = "mae" if isinstance(model, MaskedAutoencoder) else "classifier"
    meta = {"format": "mae-compress-search", "kind": kind, "arch": json.dumps(model.arch.to_dict())}
    if extra:
        meta["extra"] = json.dumps(extra)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file, or CheckpointError."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return load_file(str(path)), meta
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {path} as safetensors ({e})") from None


def load_own(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild a model saved by :func:`save_model`; returns ``(model in eval mode, extra metadata)``."""
    tensors, meta = read_safetensors(path)
    if meta.get("format") != "mae-compress-search":
        raise CheckpointError(f"{path} was not written by this project (no architecture in its metadata)")
    arch = ViTArch.from_dict(json.loads(meta["arch"]))
    model: nn.Module = MaskedAutoencoder(arch) if meta.get("kind") == "mae" else MAEClassifier(arch)
    load_weights_strict(model, tensors, f"{path} does not match its recorded architecture")
    return model.eval(), json.loads(meta.get("extra", "{}"))


def load_weights_strict(model: nn.Module, tensors: dict[str, torch.Tensor], failure: str) -> None:
    """``model.load_state_dict(tensors)`` (strict), or CheckpointError ``"{failure}: {first problem}"``.

    Checked before loading so that the sentence names one missing, unexpected, mis-shaped or
    non-float tensor instead of torch's list of every key.
    """
    own = model.state_dict()
    problems = [f"it lacks {k}" for k in own if k not in tensors]
    problems += [f"it has an unexpected {k}" for k in tensors if k not in own]
    problems += [
        f"{k} has shape {tuple(tensors[k].shape)} where {tuple(v.shape)} is expected"
        for k, v in own.items() if k in tensors and tensors[k].shape != v.shape
    ]
    problems += [f"{k} is {tensors[k].dtype}, not floating point"
                 for k in own if k in tensors and not tensors[k].is_floating_point()]
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise CheckpointError(f"{failure}: {problems[0]}{more}")
    model.load_state_dict(tensors)


ENCODER_SKIP = ("mask_token", "decoder_", "norm.", "fc_norm.", "head.")  # what fine-tuning makes new


def load_encoder_state(classifier: MAEClassifier, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy the encoder weights in ``tensors`` (an MAE's or a classifier's state dict, any key layout
    :mod:`mae.loaders` produces) into ``classifier``; its head and norms stay new.

    Raises CheckpointError, naming ``source``, when keys or shapes do not match the classifier's encoder.
    """
    encoder = {k: v for k, v in tensors.items() if not k.startswith(ENCODER_SKIP)}
    own = classifier.state_dict()
    missing = [k for k in own if not k.startswith(ENCODER_SKIP) and k not in encoder]
    wrong = [k for k, v in encoder.items() if k in own and own[k].shape != v.shape]
    if missing or wrong:
        what = f"lacks {missing[0]}" if missing else f"has {wrong[0]} of another shape"
        raise CheckpointError(f"{source} does not fit this model's encoder: it {what}")
    classifier.load_state_dict(encoder, strict=False)


def load_encoder_into(classifier: MAEClassifier, path: str | Path) -> None:
    """Copy the encoder of our MAE checkpoint at ``path`` into ``classifier`` (:func:`load_encoder_state`)."""
    load_encoder_state(classifier, read_safetensors(path)[0], str(path))
