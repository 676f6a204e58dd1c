"""Whole-model ARM measurements of plain ViTs (``evaluators/latency/data/arm_whole_model.csv``) as
fitting and validation rows for the per-operator cost model.

A row whose model is a plain ViT (DeiT, ViT, ViT-MSN at known sizes) is decomposed into the project's
own operators (``predict.ops.decompose`` of its :class:`~spaces.shape.ModelShape`), and a profile's
prediction of it is split into three term groups (:func:`term_groups`):

* ``gemm``: the compute terms of the GEMM-like operators (``ns_per_mac`` of linear, attention, conv);
* ``weights``: streaming their weights (``ns_per_weight``), the part that does not shrink with tokens;
* ``rest``: everything that scales with tokens x width or is fixed per operator -- activations, softmax
  scores, LayerNorm, GELU, adds, ``op_us`` and ``call_us``.

Fitting one non-negative scale per group (:func:`fit_group_scales`, NNLS on relative errors) keeps a
profile's per-operator structure and lets whole models say how the three trade off on a core: narrow
models (DeiT-Tiny) are dominated by ``rest`` far more than wide ones, few-token models (ViT-B/32) by
``weights``. That is the shape dependence a MAC count cannot express (DeiT-S / DeiT-T runs ~3.1x on an
A76, its MACs 3.6x).

Runtime transfer factors (:func:`runtime_factor`) come from rows where the same model ran in two
runtimes on the same device, core set and thread count; they are medians with their range, never 1 by
silence. Why our own code: the rows are the project's own CSV and the fit is three NNLS columns; no
library models ViT latency from published whole-model rows.
"""
from __future__ import annotations

import csv
import math
import re
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from evaluators.latency.fit.fit import nnls
from evaluators.latency.fit.sources import paddle_ratios
from evaluators.latency.predict.cost import FEATURES, feature_values, key_of
from evaluators.latency.predict.ops import decompose
from evaluators.latency.predict.profile import DeviceProfile
from spaces.config import CompressionConfig
from spaces.shape import BlockShape, ModelShape

DATA_CSV = Path(__file__).resolve().parents[1] / "data" / "arm_whole_model.csv"
GROUPS = ("gemm", "weights", "rest")
QED, NCNN = "qed-usc/mobile-ml-benchmark", "Tencent/ncnn"
NCNN_PAIR_MODEL = "vit-base-patch32-384"         # qed's name of ncnn's benchmarked ViT-B/32 at 384 px
SD855_PLUS_GHZ = {"prime": 2.96, "gold": 2.42}  # OnePlus 7T: 1x 2.96 + 3x 2.42 GHz (ncnn's section title)
SD855_GHZ = {"prime": 2.84, "gold": 2.32}       # Pixel 4, as qed's rows state them
GEMM_KINDS = frozenset({"linear", "attention", "conv"})

# model name in the CSV -> (width, depth, heads, patch, image size); DeiT "distilled" models carry one
# extra token (197 -> 198 at 224 px), half a percent of the work, not modelled
_VIT_SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12)}
_NAMED = {"ViT-Tiny": ("tiny", 16, 224), "ViT-B/32": ("base", 32, 384),
          "CLIP ViT-B/32 image encoder": ("base", 32, 224)}


def vit_shape(model: str, img_size: int | None = None) -> ModelShape | None:
    """The :class:`ModelShape` of a plain-ViT row's model name (ImageNet head), or None for anything
    else (hybrids, CNNs, detectors)."""
    m = re.fullmatch(r"(?:deit|vit)-(tiny|small|base)(?:-distilled)?-patch(\d+)-(\d+)(?:-in21k)?", model)
    if m:
        size, patch, img = m.group(1), int(m.group(2)), int(m.group(3))
    elif re.fullmatch(r"vit-msn-(small|base)", model):
        size, patch, img = model.rsplit("-", 1)[1], 16, 224
    elif model in _NAMED:
        size, patch, img = _NAMED[model]
        img = img_size or img
    else:
        return None
    dim, depth, heads = _VIT_SIZES[size]
    return ModelShape(name=model, img_size=img, patch_size=patch, in_chans=3, embed_dim=dim, num_classes=1000,
                      blocks=tuple(BlockShape(dim, heads, dim // heads, 4 * dim) for _ in range(depth)))


_CORE = (("Cortex-X4", "Cortex-X4"), ("Cortex-X1", "Cortex-X1"), ("Kryo 485 Prime", "Cortex-A76"), ("Kryo 485 big", "Cortex-A76"),
         ("Kryo 485 Gold", "Cortex-A76"), ("Kryo 485 Silver", "Cortex-A55"), ("Kryo 360 Gold", "Cortex-A75"),
         ("Kryo 360 Silver", "Cortex-A55"), ("Mongoose", "Samsung M4"), ("Cortex-A78AE", "Cortex-A78AE"),
         ("Cortex-A76", "Cortex-A76"), ("Cortex-A75", "Cortex-A75"), ("Cortex-A72", "Cortex-A72"),
         ("Cortex-A55", "Cortex-A55"), ("Cortex-A53", "Cortex-A53"), ("Neoverse-N2", "Neoverse-N2"))
_RUNTIME = (("PyTorch Mobile", "pytorch-mobile"), ("TorchScript", "torchscript"), ("torch.compile", "inductor"),
            ("TensorFlow Lite", "tflite"), ("TFLite", "tflite"), ("ONNX Runtime", "ort"), ("ncnn", "ncnn"),
            ("ExecuTorch", "executorch"), ("Paddle-Lite", "paddle-lite"))


def core_type(cpu_cores: str) -> str:
    """The microarchitecture a row ran on, from its ``cpu_cores`` text ("" when mixed or unknown)."""
    if len(re.findall(r"(?:^|; )\d+x ", cpu_cores)) > 1:  # several clusters in one run (1 prime + 1 gold core)
        return ""
    return next((core for key, core in _CORE if key in cpu_cores), "")


def runtime_family(runtime: str) -> str:
    return next((fam for key, fam in _RUNTIME if key in runtime), "other")


@dataclass(frozen=True)
class WholeRow:
    """One measured whole-model latency, with what the fit needs to know about it."""

    model: str
    family: str
    shape: ModelShape | None
    source: str
    device: str
    core: str
    ghz: float | None
    threads: int | None
    runtime: str
    dtype: str
    latency_ms: float
    batch: int = 1
    std_ms: float | None = None  # the source's own spread of the timed runs, where it reports one (qed)

    @property
    def setting(self) -> tuple:
        """Rows with the same setting ran on the same device, cores, threads, runtime and dtype."""
        return (self.source, self.device, self.core, self.ghz, self.threads, self.runtime, self.dtype)


def read_rows(path: Path = DATA_CSV, batches: tuple[int, ...] = (1,)) -> list[WholeRow]:
    """Every row of the CSV at one of ``batches`` (default batch 1; ``shape`` None where the model is not a
    plain ViT)."""
    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if int(r["batch"] or 1) not in batches:
                continue
            ghz = re.search(r"@\s*([\d.]+)\s*GHz", r["cpu_cores"])
            img = int(r["img_size"]) if r["img_size"].isdigit() else None
            out.append(WholeRow(
                model=r["model"], family=r["family"], shape=vit_shape(r["model"], img), source=r["source_repo"],
                device=r["device"], core=core_type(r["cpu_cores"]), ghz=float(ghz.group(1)) if ghz else None,
                threads=int(float(r["threads"])) if r["threads"] else None, runtime=runtime_family(r["runtime"]),
                dtype=r["dtype"].split(" ")[0], latency_ms=float(r["latency_ms"]), batch=int(r["batch"] or 1),
                std_ms=_std_ms(r)))
    return out


def _std_ms(r: dict) -> float | None:
    """qed's ``|std`` cell, quoted in the row's notes in the unit of its ``|mean`` cell (µs: / 1000)."""
    m = re.search(r'std column "[^"]*" = ([\d.]+)', r["notes"])
    return float(m.group(1)) / 1000 if m and r["source_repo"] == QED else None


def term_groups(profile: DeviceProfile, shape: ModelShape, config: CompressionConfig | None = None,
                split_int8: bool = False, batch: int = 1) -> np.ndarray:
    """``[gemm, weights, rest]`` ms of ``profile``'s prediction of ``shape`` at ``batch`` images per call
    (compressed by ``config``; every op at the kernel its bits ask for, no envelope), summing to it.
    ``split_int8``: ``[rest, int8 gemm, int8 weights]`` instead, where the last two are the int8 Linears'
    ``ns_per_mac`` / ``ns_per_weight`` terms and the first is everything else."""
    g = np.zeros(3)
    for op in decompose(shape, config, batch=batch):
        key = key_of(op)
        coefs = profile.core[key]
        int8 = key.startswith("linear/w8")
        for f, v in zip(FEATURES[op.kind], feature_values(op)):
            t = coefs.get(f, 0.0) * v * 1e-6
            if split_int8:
                g[1 if (int8 and f == "ns_per_mac") else 2 if (int8 and f == "ns_per_weight") else 0] += t
            else:
                g[0 if (op.kind in GEMM_KINDS and f == "ns_per_mac") else
                  1 if (op.kind in GEMM_KINDS and f == "ns_per_weight") else 2] += t
        g[0 if split_int8 else 2] += profile.overhead["op_us"].get(key, 0.0) * 1e-3
    g[0 if split_int8 else 2] += profile.overhead["call_us"] * 1e-3
    return g


def fit_group_scales(profile: DeviceProfile, rows: list[WholeRow], factors: list[float] | None = None,
                     weights: list[float] | None = None) -> np.ndarray:
    """Non-negative ``[gemm, weights, rest]`` scales so that ``profile`` scaled by them predicts each row's
    latency times its factor (runtime, clock) with the least squared relative error (each row's residual times
    its entry of ``weights``, default 1: see :func:`spread_weights`).

    Rows of a single embedding width cannot tell the groups apart along the width (how narrow models run is
    the question the groups answer): then one common scale is fitted and ``profile``'s own split between the
    groups is kept. Three free scales on 768-wide rows alone put DeiT-S / DeiT-T 16-30% off on four cores
    (``benchmarks/latency_arm_validation.py``, section 3), one scale within 15%."""
    if not rows:
        raise ValueError("no rows to fit group scales on")
    x = np.array([term_groups(profile, r.shape, batch=r.batch) for r in rows])
    y = np.array([r.latency_ms for r in rows]) * np.array(factors if factors is not None else [1.0] * len(rows))
    w = np.array(weights if weights is not None else [1.0] * len(rows))
    if len({r.shape.embed_dim for r in rows}) < 2:
        return np.full(3, float(nnls(x.sum(axis=1, keepdims=True) / y[:, None] * w[:, None], w)[0]))
    return nnls(x / y[:, None] * w[:, None], w)


def spread_weights(rows: list[WholeRow], floor: float) -> list[float]:
    """``1 / max(std / mean, floor)`` per row (residuals enter squared: inverse variance), 1 / ``floor`` where the
    source reports no spread. ``floor``: no row is trusted beyond the model's own error. Not used by the shipped
    fits; ``benchmarks/latency_arm_validation.py`` prints what it would change."""
    return [1.0 / max(r.std_ms / r.latency_ms if r.std_ms is not None else 0.0, floor) for r in rows]


def fit_int8_scales(profile: DeviceProfile, rows: list[WholeRow], config_of, factors: list[float]) -> np.ndarray:
    """Non-negative scales of the int8 Linears' compute and weight terms so that ``profile`` (its other
    terms fixed) predicts each int8 row's latency times its factor with the least squared relative error;
    ``config_of(shape)`` is the int8 config each row's model ran as."""
    if not rows:
        raise ValueError("no int8 rows to fit on")
    x = np.array([term_groups(profile, r.shape, config_of(r.shape), split_int8=True) for r in rows])
    y = np.array([r.latency_ms for r in rows]) * np.array(factors)
    return nnls(x[:, 1:] / y[:, None], 1.0 - x[:, 0] / y)


def scale_int8(profile: DeviceProfile, mac: float, weight: float, **fields) -> DeviceProfile:
    """``profile`` with the int8 Linears' (``linear/w8*``) ``ns_per_mac`` x ``mac`` and ``ns_per_weight`` x ``weight``."""
    core = {k: ({f: v * (mac if f == "ns_per_mac" else weight if f == "ns_per_weight" else 1.0) for f, v in c.items()}
                if k.startswith("linear/w8") else c) for k, c in profile.core.items()}
    return replace(profile, core=core, **fields)


def scale_profile(profile: DeviceProfile, scales: np.ndarray, **fields) -> DeviceProfile:
    """``profile`` with every term of group g multiplied by ``scales[g]`` (other fields from ``fields``)."""
    s_gemm, s_w, s_rest = (float(v) for v in scales)
    core = {}
    for key, coefs in profile.core.items():
        gemm = key.split("/")[0] in GEMM_KINDS
        core[key] = {f: v * (s_gemm if gemm and f == "ns_per_mac" else s_w if gemm and f == "ns_per_weight" else s_rest)
                     for f, v in coefs.items()}
    overhead = {**profile.overhead, "op_us": {k: v * s_rest for k, v in profile.overhead["op_us"].items()},
                "call_us": profile.overhead["call_us"] * s_rest}
    return replace(profile, core=core, overhead=overhead, **fields)


@dataclass(frozen=True)
class RuntimeFactor:
    """``a`` over ``b``: the median latency ratio of the same model in two runtimes, its range and the
    pairs it came from."""

    a: str
    b: str
    median: float
    low: float
    high: float
    n: int
    models: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"runtimes": f"{self.a} / {self.b}", "median": round(self.median, 4), "range": [round(self.low, 4),
                round(self.high, 4)], "pairs": self.n, "models": list(self.models)}


def runtime_factor(rows: list[WholeRow], a: str, b: str, *, models: re.Pattern | None = None,
                   dtype: str = "fp32") -> RuntimeFactor:
    """Latency in runtime ``a`` over runtime ``b`` for the same model on the same device, cores and
    threads (``models``: only model names it matches)."""
    by: dict[tuple, dict[str, float]] = {}
    for r in rows:
        if r.dtype == dtype and r.runtime in (a, b) and (models is None or models.search(r.model)):
            key = (r.source, r.device, r.core, r.ghz, r.threads, r.model)
            # the first row of each runtime in CSV order (ORT C++ and Python API rows of a model agree within 2%)
            by.setdefault(key, {}).setdefault(r.runtime, r.latency_ms)
    pairs = [(k[-1], d[a] / d[b]) for k, d in by.items() if a in d and b in d]
    if not pairs:
        raise ValueError(f"no model ran in both {a} and {b}")
    ratios = [p for _, p in pairs]
    return RuntimeFactor(a, b, statistics.median(ratios), min(ratios), max(ratios), len(pairs),
                         tuple(sorted({m for m, _ in pairs})))


def ncnn_runtime_factor(rows: list[WholeRow], ort_over_tfl: float, root: Path | None = None) -> dict:
    """ncnn's time over ONNX Runtime's for the same model on the same core, fp16 (ARMv8.2) and fp32 (A72), from
    the one same-model pair in the data: ViT-B/32 at 384 px in TFLite fp32 on a Pixel 4's Snapdragon 855 (qed,
    one prime or one gold core) and in ncnn on a OnePlus 7T's Snapdragon 855+ (one thread on the big cores, which
    of them not stated). Time x GHz gives ncnn (fp16 arithmetic on that ARMv8.2 core) / TFLite fp32 for either
    reading; the factor is their geometric mean, the readings its range. ncnn fp32 (cores without fp16
    arithmetic) = that x the fp32 / fp16 time of one runtime on an A76 (Paddle-Lite, CNNs: the only measured fp16
    speed-up of an ARM core in the data). ``ort_over_tfl``: ONNX Runtime over TFLite for the same model."""
    ncnn = next(r for r in rows if r.source == NCNN and r.shape is not None and "Snapdragon 855+" in r.device
                and r.threads == 1)
    tfl = {g: next(r for r in rows if r.source == QED and r.model == NCNN_PAIR_MODEL and r.runtime == "tflite"
                   and r.dtype == "fp32" and r.threads == 1 and r.ghz == SD855_GHZ[g])
           for g in ("prime", "gold")}
    readings = {g: ncnn.latency_ms * SD855_PLUS_GHZ[g] / (tfl[g].latency_ms * SD855_GHZ[g]) for g in tfl}
    fp16_over_tfl = math.sqrt(readings["prime"] * readings["gold"])
    p = paddle_ratios("Cortex-A76", root)["fp16"]
    fp32_over_fp16 = 1.0 / p["ratio"]
    lo, hi = min(readings.values()), max(readings.values())
    return {
        "ncnn_fp16_over_tflite_fp32": round(fp16_over_tfl, 4),
        "readings": {g: round(v, 4) for g, v in readings.items()},
        "fp32_over_fp16": round(fp32_over_fp16, 4), "fp16_pairs": p["n"],
        "ort_over_tflite": round(ort_over_tfl, 4),
        "over_ort": {"fp16": fp16_over_tfl / ort_over_tfl, "fp32": fp16_over_tfl * fp32_over_fp16 / ort_over_tfl},
        "over_ort_range": {"fp16": (lo / ort_over_tfl, hi / ort_over_tfl),
                           "fp32": (lo * fp32_over_fp16 / ort_over_tfl, hi * fp32_over_fp16 / ort_over_tfl)},
        "pair": (f"ViT-B/32 @ 384: ncnn {ncnn.latency_ms} ms (OnePlus 7T, Snapdragon 855+, 1 thread, big cores) vs "
                 f"TFLite fp32 {tfl['prime'].latency_ms:.1f} ms (prime {SD855_GHZ['prime']} GHz) / "
                 f"{tfl['gold'].latency_ms:.1f} ms (gold {SD855_GHZ['gold']} GHz) on a Pixel 4 (Snapdragon 855, qed)"),
    }


def ncnn_factor_fields(predicted_ms: float, measured_ms: float, factor: dict, dtype: str) -> dict:
    """What a profile's ncnn cross-check adds: ncnn / ORT for ``dtype`` ('fp16' on ARMv8.2 cores, 'fp32' on
    the A72) with its range, and predicted x that / measured."""
    x = factor["over_ort"][dtype]
    return {"ncnn_over_ort": round(x, 4), "ncnn_over_ort_range": [round(v, 4) for v in factor["over_ort_range"][dtype]],
            "ncnn_dtype": dtype, "ratio_after_ncnn_factor": round(predicted_ms * x / measured_ms, 4),
            "ncnn_factor_pair": factor["pair"]}
