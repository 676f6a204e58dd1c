"""Latency of a (compressed) ViT or MAE on an ARM device, predicted from its config in microseconds.

    from evaluators.latency import LatencyPredictor
    ms = LatencyPredictor("rpi4-a72-ort-1t").predict_ms(shape, config)   # shape: spaces.shape.ModelShape

Pieces: :mod:`ops` (decomposition into runtime operators), :mod:`cost` (the per-operator cost model),
:mod:`profile` (device profiles as JSON), :mod:`predictor`, :mod:`fit` / :mod:`calibrate` (fitting
profiles to measurements), :mod:`harness` / :mod:`bench_models` / :mod:`kit_runner` (``maec measure``),
:mod:`sources` / :mod:`hat_fit` / :mod:`shipped` / :mod:`priors` (the shipped profiles from public
ARM measurements).
"""
from evaluators.latency.errors import CalibrationError, ProfileError
from evaluators.latency.ops import Op, decompose, total_macs
from evaluators.latency.predictor import LatencyPredictor, OpCost
from evaluators.latency.profile import DEFAULT_PROFILE, DeviceProfile, load_profile, profile_names

__all__ = [
           "DEFAULT_PROFILE",
           "CalibrationError",
           "DeviceProfile",
           "LatencyPredictor",
           "Op",
           "OpCost",
           "ProfileError",
           "decompose",
           "load_profile",
           "profile_names",
           "total_macs",
]
