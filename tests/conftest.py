"""Shared fixtures: seeded RNGs, one thread (tests run beside each other on 2 cores), real data."""
from __future__ import annotations

import os

import pytest
import torch

from mae.data import DEFAULT_FASHION_MNIST_DIR, load_fashion_mnist


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def fashion_mnist():
    """The real Fashion-MNIST splits (CI installs Debian's dataset-fashion-mnist)."""
    return load_fashion_mnist(os.environ.get("MAE_FASHION_MNIST_DIR", DEFAULT_FASHION_MNIST_DIR))
