"""Latency and accuracy of exported ONNX models on this machine (ONNX Runtime, CPU): what ``maec apply``
reports beside the ARM prediction.

Timing goes through :mod:`evaluators.latency.measure.ort_timing`, the project's one timing helper, with
its multi-pass rule: the models being compared (original and compressed) are timed in several passes,
interleaved, and each keeps its lowest pass median, so that a slow window of a shared machine cannot
make one of them look faster than it is.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from evaluators.latency.measure.ort_timing import make_session, time_interleaved_ms


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock time of one ``session.run`` in ms: ``median_ms`` is the lowest pass median,
    ``round_ms`` every pass median, p10 / p90 / mean over all ``repeats`` runs of all passes."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    repeats: int
    rounds: int
    round_ms: tuple[float, ...]
    threads: int
    batch: int

    def to_dict(self) -> dict:
        d = asdict(self)
        d["round_ms"] = list(self.round_ms)
        return d


def model_inputs(onnx_path: str | Path, batch: int = 1) -> list[dict]:
    """``[{"name", "shape"}]`` of a model's first input with ``batch`` as its (dynamic) first dim."""
    inp = make_session(onnx_path, 1).get_inputs()[0]
    return [{"name": inp.name, "shape": [batch] + [d if isinstance(d, int) else 1 for d in inp.shape[1:]]}]


def compare_latency_ms(onnx_paths: Mapping[str, str | Path], *, threads: int = 1, batch: int = 1, rounds: int = 3,
                       repeats: int = 50, warmup: int = 10) -> dict[str, LatencyStats]:
    """``{name: onnx path}`` -> ``{name: LatencyStats}`` on a random ``[batch, C, H, W]`` input, timed
    interleaved by the multi-pass rule (module doc)."""
    if repeats < 1 or warmup < 0 or rounds < 1:
        raise ValueError(f"repeats and rounds must be >= 1 and warmup >= 0, got {repeats}, {rounds}, {warmup}")
    models = {name: (path, model_inputs(path, batch)) for name, path in onnx_paths.items()}
    timed = time_interleaved_ms(models, threads=threads, rounds=rounds, repeats=repeats, warmup=warmup)
    out = {}
    for name, t in timed.items():
        out[name] = LatencyStats(median_ms=t["latency_ms"], p10_ms=t["p10_ms"], p90_ms=t["p90_ms"],
                                 mean_ms=t["mean_ms"], repeats=t["repeats"], rounds=rounds,
                                 round_ms=tuple(t["round_ms"]), threads=threads, batch=batch)
    return out


def measure_latency_ms(onnx_path: str | Path, *, threads: int = 1, batch: int = 1, rounds: int = 3,
                       repeats: int = 50, warmup: int = 10) -> LatencyStats:
    """One model's :class:`LatencyStats` by the multi-pass rule (see :func:`compare_latency_ms`)."""
    return compare_latency_ms({"model": onnx_path}, threads=threads, batch=batch, rounds=rounds, repeats=repeats,
                              warmup=warmup)["model"]


def onnx_top1(onnx_path: str | Path, split_batches: Iterable, *, threads: int = 1) -> float:
    """Top-1 accuracy in [0, 1] of an ONNX classifier over batches of ``(images [N, C, H, W] float32,
    labels [N] int64)`` (tensors or arrays)."""
    sess = make_session(onnx_path, threads)
    name = sess.get_inputs()[0].name
    correct = total = 0
    for images, labels in split_batches:
        x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        logits = sess.run(None, {name: x.astype(np.float32)})[0]
        correct += int((logits.argmax(axis=1) == y).sum())
        total += len(y)
    if total == 0:
        raise ValueError("onnx_top1 got no samples")
    return correct / total
