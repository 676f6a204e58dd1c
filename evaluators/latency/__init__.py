"""Latency of a (compressed) ViT or MAE on an ARM device, predicted from its config alone.

    from evaluators.latency import LatencyPredictor
    ms = LatencyPredictor("rpi4-a72-ort-1t").predict_ms(shape, config)   # shape: spaces.shape.ModelShape

Four sub-packages, one concept each, imported in one direction (``derive > fit > measure > predict``,
checked by import-linter):

* :mod:`~evaluators.latency.predict` -- operators of a config, their cost, device profiles, the predictor;
* :mod:`~evaluators.latency.measure` -- benchmarks timed with ONNX Runtime here or on a device (``maec measure``);
* :mod:`~evaluators.latency.fit` -- profile terms fitted to measured rows (``maec calibrate``, HAT, ncnn, Paddle-Lite);
* :mod:`~evaluators.latency.derive` -- the build of the shipped profiles from public ARM measurements.
"""
from evaluators.latency.errors import CalibrationError, ProfileError
from evaluators.latency.predict.ops import Op, decompose, total_macs
from evaluators.latency.predict.predictor import LatencyPredictor, OpCost
from evaluators.latency.predict.profile import DEFAULT_PROFILE, DeviceProfile, load_profile, profile_names

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
