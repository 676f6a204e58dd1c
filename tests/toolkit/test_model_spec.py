"""The one model-spec resolver (toolkit/model_spec.py): every kind of ``--model`` the CLIs accept."""
from __future__ import annotations

import pytest
import torch

from mae import loaders
from mae.checkpoints import CheckpointError, save_model
from mae.model import MAEClassifier, MaskedAutoencoder, ViTArch, create_model, describe
from spaces.config_presets import preset_config
from toolkit.artifacts import save_compressed
from toolkit.compress import compress
from toolkit.model_spec import resolve_model

ARCH = ViTArch(img_size=28, patch_size=7, in_chans=1, embed_dim=64, depth=2, num_heads=2, num_classes=4)


def _imgs(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_default_reads_the_shipped_file_and_names_a_missing_one(tmp_path, monkeypatch):
    ref = MAEClassifier(ARCH)
    path = tmp_path / "clf.safetensors"
    save_model(ref, path)
    monkeypatch.setattr(loaders, "DEFAULT_CHECKPOINT", path)
    resolved = resolve_model("default")
    assert resolved.path == path and resolved.config is None and not resolved.model.training
    with torch.no_grad():
        assert torch.equal(resolved.model(_imgs()), ref.eval()(_imgs()))
    missing = tmp_path / "nowhere.safetensors"
    monkeypatch.setattr(loaders, "DEFAULT_CHECKPOINT", missing)
    with pytest.raises(CheckpointError, match="nowhere.safetensors is missing"):
        resolve_model("default")


def test_presets_timm_names_and_checkpoint_paths():
    assert isinstance(resolve_model("mae_vit_test_p7_28", kind="mae").model, MaskedAutoencoder)
    assert resolve_model("mae_vit_test_p7_28").model.arch == create_model("mae_vit_test_p7_28").arch
    assert resolve_model("timm:vit_tiny_patch16_224").model.arch.embed_dim == 192
    with pytest.raises(CheckpointError, match="timm:nope names no timm model"):
        resolve_model("timm:nope")
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_model("no/such/file.pth")


def test_apply_folder_with_and_without_weights(tmp_path):
    teacher = create_model("mae_vit_test_p7_28").eval()
    config = preset_config(describe(teacher), "half")
    student, _ = compress(teacher, config, recover_steps=0, bf16=False, seed=0, progress=False)
    save_compressed(student, config, tmp_path / "out")
    full = resolve_model(tmp_path / "out")
    assert full.config == config and full.path == tmp_path / "out" / "model.safetensors"
    with torch.no_grad():
        assert torch.equal(full.model(_imgs()), student(_imgs()))
    shapes = resolve_model(tmp_path / "out", weights=False)  # base architecture + config, for prediction
    assert shapes.config == config and describe(shapes.model).blocks == describe(teacher).blocks
