"""Latency and accuracy of an ONNX model measured on this machine with ONNX Runtime (CPU).

This is the host measurement (x86 here); the search uses the ARM latency predictor. Sessions run
sequentially with ``intra_op_num_threads=threads``, ``inter_op_num_threads=1`` and all graph
optimizations, which is also what fuses ORT's QDQ patterns into integer kernels.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock time of one ``session.run`` in milliseconds, over ``repeats`` runs after warm-up."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    repeats: int
    threads: int
    batch: int

    def to_dict(self) -> dict:
        return asdict(self)


def make_session(onnx_path: str | Path, *, threads: int = 1) -> ort.InferenceSession:
    """A CPU session: ``threads`` intra-op threads, one inter-op thread, sequential, full optimization."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


def _input_feed(sess: ort.InferenceSession, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 input with the model's shape and ``batch`` as the (dynamic) first dim."""
    inp = sess.get_inputs()[0]
    dims = [batch] + [d if isinstance(d, int) else 1 for d in inp.shape[1:]]
    return {inp.name: np.random.default_rng(seed).standard_normal(dims).astype(np.float32)}


def measure_latency_ms(onnx_path: str | Path, *, threads: int = 1, batch: int = 1, repeats: int = 50,
                       warmup: int = 10) -> LatencyStats:
    """Median, 10th / 90th percentile and mean time of ``repeats`` runs on a random ``[batch, C, H, W]``."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    sess = make_session(onnx_path, threads=threads)
    feed = _input_feed(sess, batch)
    for _ in range(warmup):
        sess.run(None, feed)
    times = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times[i] = (time.perf_counter() - t0) * 1e3
    p10, med, p90 = np.percentile(times, [10, 50, 90])
    return LatencyStats(float(med), float(p10), float(p90), float(times.mean()), repeats, threads, batch)


def onnx_top1(onnx_path: str | Path, split_batches: Iterable, *, threads: int = 1) -> float:
    """Top-1 accuracy in [0, 1] of an ONNX classifier over batches of ``(images [N, C, H, W] float32,
    labels [N] int64)`` (tensors or arrays)."""
    sess = make_session(onnx_path, threads=threads)
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
