"""Shipped profiles: complete, lossless on disk, and rebuilt exactly from the shared ARM data."""
from __future__ import annotations

import json

import pytest

from evaluators.latency.derive.build import build_all, default_model_ms, same_profile
from evaluators.latency.errors import ProfileError
from evaluators.latency.fit.calibrate import expected_keys
from evaluators.latency.predict.predictor import LatencyPredictor
from evaluators.latency.predict.profile import DEFAULT_PROFILE, SHIPPED_DIR, DeviceProfile, load_profile, profile_names


def test_every_shipped_profile_is_complete_and_documented():
    names = profile_names()
    assert DEFAULT_PROFILE in names and len(names) >= 6
    for name in names:
        p = load_profile(name)
        assert set(expected_keys()) <= set(p.core), name
        assert p.provenance and all("use" in x for x in p.provenance), name
        assert p.assumptions, name


def test_save_and_load_are_exact(tmp_path):
    p = load_profile(DEFAULT_PROFILE)
    # awkward floats survive the round trip bit for bit
    p = DeviceProfile(**{**p.to_dict(), "core": {**p.core, "add/fp32": {"ns_per_elem": 0.1 + 0.2}}})
    back = DeviceProfile.load(p.save(tmp_path / "x.json"))
    assert back == p
    assert back.to_json() == p.to_json()
    assert back.core["add/fp32"]["ns_per_elem"] == 0.1 + 0.2


def test_unknown_or_broken_profiles_raise_profile_error(tmp_path):
    with pytest.raises(ProfileError, match="unknown device 'nope'"):
        load_profile("nope")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ProfileError, match="not readable JSON"):
        load_profile(bad)
    d = load_profile(DEFAULT_PROFILE).to_dict()
    d["core"]["linear/fp32"]["ns_per_mac"] = -1.0
    bad.write_text(json.dumps(d))
    with pytest.raises(ProfileError, match="ns_per_mac"):
        DeviceProfile.load(bad)


def test_default_model_is_a_real_trade_off_at_20_ms():
    """The issue asks for >= 1.5 x 20 ms uncompressed on the default profile (honestly, see notes)."""
    ms = default_model_ms(load_profile(DEFAULT_PROFILE))
    assert ms >= 30.0
    assert load_profile(DEFAULT_PROFILE).validation["default_model"]["predicted_ms"] == round(ms, 3)


def test_recalibrating_from_the_shared_data_reproduces_the_shipped_profiles(arm_dir):
    rebuilt = {p.name: p for p in build_all(arm_dir)}
    shipped = {p.stem: DeviceProfile.load(p) for p in SHIPPED_DIR.glob("*.json")}
    assert set(rebuilt) == set(shipped)
    for name, p in rebuilt.items():
        assert same_profile(p, shipped[name]), name  # up to the BLAS-dependent last bits


def test_ours_beats_the_flops_baselines_on_the_hat_rows():
    v = load_profile(DEFAULT_PROFILE).validation
    ours, base = v["heldout"], v["hat"]["baselines_encoder"]
    assert ours["n"] == base["flops_proportional"]["n"] > 500
    assert ours["mape"] < base["flops_proportional"]["mape"] and ours["mape"] < base["flops_affine"]["mape"]
    assert ours["within_10pct"] > base["flops_proportional"]["within_10pct"]


def test_predictions_are_positive_on_every_profile():
    from mae.model import create_model, describe

    shape = describe(create_model("mae_vit_test_p7_28"))
    for name in profile_names():
        assert LatencyPredictor(name).predict_ms(shape) > 0
