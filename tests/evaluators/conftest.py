"""Fixtures of the latency tests: the shared ARM data folder (skip where it is absent)."""
from __future__ import annotations

import pytest

from evaluators.latency.sources import arm_latency_dir


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
