"""Fixtures of the engine's tests (helpers are in ``searchkit.py``)."""
from __future__ import annotations

import pytest
import torch

from mae.checkpoints import save_model
from mae.model import create_model


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> str:
    """A classifier checkpoint of the test preset (random weights: the search does not care)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(create_model("mae_vit_test_p7_28"), path)
    return str(path)
