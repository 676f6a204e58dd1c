"""Shared fixtures: seeded RNGs, one thread (tests run beside each other on 2 cores), real data, the
shared ARM measurements, and no user-calibrated profiles."""
from __future__ import annotations

import os

import pytest
import torch

from evaluators.latency.fit.sources import arm_latency_dir
from mae.data import DEFAULT_FASHION_MNIST_DIR, load_fashion_mnist


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def fashion_mnist():
    """The real Fashion-MNIST splits (CI installs Debian's dataset-fashion-mnist)."""
    return load_fashion_mnist(os.environ.get("MAE_FASHION_MNIST_DIR", DEFAULT_FASHION_MNIST_DIR))


@pytest.fixture(scope="session")
def arm_dir():
    """``$MAE_ARM_LATENCY_DIR`` or ``../shared/arm-latency`` (CI has it there)."""
    d = arm_latency_dir()
    if not (d / "hat-raspberrypi").is_dir():
        pytest.skip(f"shared ARM measurements not found at {d} (set MAE_ARM_LATENCY_DIR)")
    return d


@pytest.fixture(autouse=True)
def _no_user_profiles(tmp_path_factory, monkeypatch):
    """Profiles a user calibrated into ~/.config/maec/profiles must not change what the tests see."""
    monkeypatch.setenv("MAE_LATENCY_PROFILES", str(tmp_path_factory.mktemp("user_profiles")))
