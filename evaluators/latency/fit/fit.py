"""Fitting cost-model coefficients to measurements: samples, design matrix, NNLS, split, metrics.

Every measurement row becomes a :class:`Sample`: the operators it ran (with multiplicities), the
measured latency, and optional framework terms (``extra``) for data whose runtime does more than run
operators (HAT's fairseq beam search). The model is linear in its coefficients, so fitting is a
non-negative least-squares problem on relative errors (rows divided by the measured latency: a 2 ms
op and a 200 ms model weigh the same, which is what MAPE and the ±10% share score).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from evaluators.latency.predict.cost import FEATURES, feature_values, key_of
from evaluators.latency.predict.ops import Op

Column = tuple[str, ...]  # ("op_us", key) | (key, feature) | ("call_us",) | ("io_us",) | ("extra", name)


@dataclass(frozen=True)
class Sample:
    """One measured row: ``terms`` = ((op, count), ...) run in ``calls`` inference calls.

    ``io``: graph inputs + outputs beyond one each (micro-benchmarks feed R parallel branches);
    ``extra``: framework columns ``(name, value)`` fitted as free non-negative coefficients (ms/unit).
    """

    terms: tuple[tuple[Op, float], ...]
    latency_ms: float
    group: str
    calls: float = 1.0
    io: float = 0.0
    extra: tuple[tuple[str, float], ...] = ()
    row: int = -1
    meta: dict = field(default_factory=dict, compare=False, hash=False)


def sample_columns(s: Sample) -> dict[Column, float]:
    """Column values of one sample, in ms per unit of each coefficient."""
    cols: dict[Column, float] = {}

    def add(c: Column, v: float) -> None:
        cols[c] = cols.get(c, 0.0) + v

    for op, count in s.terms:
        key = key_of(op)
        add(("op_us", key), count * 1e-3)
        for f, v in zip(FEATURES[op.kind], feature_values(op)):
            add((key, f), count * v * 1e-6)
    add(("call_us",), s.calls * 1e-3)
    if s.io:
        add(("io_us",), s.io * 1e-3)
    for name, v in s.extra:
        add(("extra", name), v)
    return cols


def design(samples: list[Sample], columns: list[Column] | None = None) -> tuple[np.ndarray, list[Column]]:
    """``A [rows, columns]`` (ms per coefficient unit); columns default to all that appear."""
    per_row = [sample_columns(s) for s in samples]
    if columns is None:
        seen: dict[Column, None] = {}
        for r in per_row:
            seen.update(dict.fromkeys(r))
        columns = sorted(seen)
    A = np.array([[r.get(c, 0.0) for c in columns] for r in per_row], dtype=np.float64).reshape(len(samples), len(columns))
    return A, columns


def nnls(A: np.ndarray, b: np.ndarray, tol: float = 1e-10, max_iter: int = 500) -> np.ndarray:
    """``argmin ||A x - b||`` subject to ``x >= 0`` (Lawson & Hanson's active-set method).

    ~30 lines instead of a scipy dependency; columns are scaled to unit norm first for conditioning.
    """
    norms = np.linalg.norm(A, axis=0)
    norms[norms == 0] = 1.0
    An = A / norms
    n = An.shape[1]
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    w = An.T @ (b - An @ x)
    for _ in range(max_iter):
        if passive.all() or w[~passive].max(initial=-np.inf) <= tol:
            break
        passive[np.argmax(np.where(passive, -np.inf, w))] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(An[:, passive], b, rcond=None)[0]
            if (z[passive] > tol).all():
                break
            neg = passive & (z <= tol)
            alpha = np.min(x[neg] / np.maximum(x[neg] - z[neg], 1e-300))
            x = x + alpha * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
        x = z
        w = An.T @ (b - An @ x)
    return x / norms


def fit_coefficients(samples: list[Sample], *, fixed: dict[Column, float] | None = None,
                     exclude: set[Column] | None = None, robust: bool = True) -> dict[Column, float]:
    """Non-negative coefficients minimising squared relative error over ``samples``.

    ``fixed`` columns keep the given value (their contribution is subtracted); ``exclude``d columns
    are 0. ``robust``: a few Huber reweighting rounds (relative residuals beyond 10% count linearly),
    so the odd disturbed measurement that outlier rules miss cannot pull the fit.
    """
    fixed, exclude = fixed or {}, exclude or set()
    A, cols = design(samples)
    y = np.array([s.latency_ms for s in samples])
    offset = sum(A[:, cols.index(c)] * v for c, v in fixed.items() if c in cols) if fixed else 0.0
    free = [i for i, c in enumerate(cols) if c not in fixed and c not in exclude]
    Af, target = A[:, free] / y[:, None], (y - offset) / y
    wts = np.ones(len(y))
    for _ in range(6 if robust else 1):
        coef = nnls(Af * wts[:, None], target * wts)
        r = np.abs(Af @ coef - target)
        new = np.where(r <= 0.1, 1.0, np.sqrt(0.1 / np.maximum(r, 1e-12)))  # sqrt: weights enter squared
        if np.allclose(new, wts):
            break
        wts = new
    out = {c: 0.0 for c in cols if c in exclude}
    out.update({cols[i]: float(v) for i, v in zip(free, coef)})
    out.update(fixed)
    return out


def predict_samples(samples: list[Sample], coefs: dict[Column, float]) -> np.ndarray:
    """Predicted latency (ms) of each sample with coefficients ``coefs`` (missing columns count 0)."""
    out = np.empty(len(samples))
    for i, s in enumerate(samples):
        out[i] = sum(v * coefs.get(c, 0.0) for c, v in sample_columns(s).items())
    return out


def metrics(pred: np.ndarray, meas: np.ndarray) -> dict:
    """``mape``, ``within_10pct`` and ``within_25pct`` as fractions, ``n`` rows, ``median_ratio`` predicted /
    measured."""
    pred, meas = np.asarray(pred, float), np.asarray(meas, float)
    if len(meas) == 0:
        return {"mape": float("nan"), "within_10pct": float("nan"), "within_25pct": float("nan"), "n": 0,
                "median_ratio": float("nan")}
    ape = np.abs(pred - meas) / meas
    return {"mape": round(float(ape.mean()), 6), "within_10pct": round(float((ape <= 0.10).mean()), 6),
            "within_25pct": round(float((ape <= 0.25).mean()), 6),
            "n": len(meas), "median_ratio": round(float(np.median(pred / meas)), 6)}


def proportional_baseline(train: list[Sample], test: list[Sample],
                          size: Callable[[Sample], float]) -> tuple[dict, float]:
    """Baseline latency = k x ``size(sample)`` (MACs, parameters, ...), k fitted on ``train`` by least
    squares on relative error like the cost model (``argmin_k sum((k x / y - 1)^2)``): ``(metrics on
    test, k in ms per unit)``."""
    x = np.array([size(s) for s in train], dtype=np.float64)
    y = np.array([s.latency_ms for s in train], dtype=np.float64)
    k = float(np.sum(x / y) / np.sum((x / y) ** 2))
    return metrics(k * np.array([size(s) for s in test], dtype=np.float64), np.array([s.latency_ms for s in test])), k


def split(samples: list[Sample], *, seed: int, heldout_frac: float) -> tuple[list[int], list[int]]:
    """Seeded train / held-out indices, split within each ``group`` so each appears in both."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.group, []).append(i)
    train: list[int] = []
    test: list[int] = []
    for g in sorted(groups):
        idx = np.array(groups[g])
        rng.shuffle(idx)
        k = round(len(idx) * heldout_frac) if len(idx) > 1 else 0
        test += idx[:k].tolist()
        train += idx[k:].tolist()
    return sorted(train), sorted(test)


def coefs_to_profile_parts(coefs: dict[Column, float]) -> tuple[dict[str, dict[str, float]], dict[str, float], float]:
    """``(core, op_us, call_us)`` from fitted columns (extra / io columns are returned by the caller)."""
    core: dict[str, dict[str, float]] = {}
    op_us: dict[str, float] = {}
    call_us = 0.0
    for c, v in sorted(coefs.items()):
        if c[0] == "op_us":
            op_us[c[1]] = v
        elif c[0] == "call_us":
            call_us = v
        elif c[0] not in ("extra", "io_us"):
            core.setdefault(c[0], {})[c[1]] = v
    return core, op_us, call_us


def profile_parts_to_coefs(core: dict, op_us: dict, call_us: float) -> dict[Column, float]:
    """Inverse of :func:`coefs_to_profile_parts`."""
    out: dict[Column, float] = {("call_us",): float(call_us)}
    out.update({("op_us", k): float(v) for k, v in op_us.items()})
    for key, d in core.items():
        out.update({(key, f): float(v) for f, v in d.items()})
    return out
