"""``maec calibrate``: a device profile from a measurement CSV.

Two CSV layouts are understood, told apart by their header:

* ``maec measure`` / export-kit CSVs (``bench, row_kind, spec, latency_ms, threads, ...``): operator
  rows, whole-model rows, or both. With operator rows every coefficient is fitted (non-negative
  least squares on relative error, seeded held-out split); with whole-model rows only, the data
  cannot separate operators, so one factor scales a base profile's core terms (lower confidence).
* HAT latency datasets (``latency_mean_encoder, ...``): the PyTorch-eager fit of
  :mod:`evaluators.latency.fit.hat_fit`; the profile keeps the Cortex-A72 core terms and the framework
  costs, and takes the terms HAT cannot identify (GELU, patch embedding, ...) from the base profile.

Token-merge terms are fitted last (:func:`fit_merge_last`): a merging model is exported at a static batch
(``toolkit.export``), every other one with a dynamic batch, and a static export drops shape arithmetic from
the plain operators too, so rows of merging blocks must not move the plain operators' terms; the merge
terms take what a merge changes in a static merging model.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from evaluators.latency.errors import CalibrationError
from evaluators.latency.fit.fit import (
    Sample,
    coefs_to_profile_parts,
    fit_coefficients,
    metrics,
    predict_samples,
    profile_parts_to_coefs,
    split,
)
from evaluators.latency.predict.profile import DeviceProfile, load_profile

MEASURE_COLUMNS = ("bench", "row_kind", "spec", "latency_ms", "threads")
FIT_ON = ("all", "ops")
FOOTPRINT_GRID_MB = tuple(range(1, 33))  # effective cache sizes tried (MB); one per MB


def sample_weight_bytes(s: Sample) -> float:
    """Weight bytes one call of sample ``s`` reads (its kernels' own dtypes)."""
    from evaluators.latency.predict.cost import weight_bytes

    return sum(count * weight_bytes(op) for op, count in s.terms) / s.calls


def footprint_column_ms(samples: list[Sample], footprint: dict, weights: np.ndarray | None = None) -> np.ndarray:
    """``[samples]`` each sample's weight footprint beyond the cache in ms: its calls x ``cost.footprint_ms`` of
    its weight bytes (``weights``, when the caller has them already)."""
    from evaluators.latency.predict.cost import footprint_ms

    w = weights if weights is not None else [sample_weight_bytes(s) for s in samples]
    return np.array([s.calls * footprint_ms(x, footprint) for s, x in zip(samples, w)])


def _with_footprint_column(samples: list[Sample], column_ms: np.ndarray) -> list[Sample]:
    """``samples`` with ``column_ms`` as their ``footprint`` framework column (a free or fixed coefficient)."""
    return [replace(s, extra=s.extra + (("footprint", float(v)),)) for s, v in zip(samples, column_ms)]


def predict_with_footprint(samples: list[Sample], coefs: dict, footprint: dict | None) -> np.ndarray:
    """:func:`predict_samples` plus each sample's weight footprint beyond the cache (``cost.footprint_ms``)."""
    pred = predict_samples(samples, coefs)
    return pred + footprint_column_ms(samples, footprint) if footprint else pred


def fit_with_footprint(train: list[Sample]) -> tuple[dict, dict | None]:
    """Per-operator coefficients and the weight footprint (``cost.footprint_ms``), fitted jointly: for each
    effective cache size of :data:`FOOTPRINT_GRID_MB` a column of the bytes each row reads beyond it joins
    the design (its coefficient: ns per byte), and the size whose fit leaves the least squared relative error
    wins -- if it beats the plain fit by more than BIC's price of its two extra parameters (cache size and cost:
    n log(loss ratio) < -2 log n), so noise cannot buy a footprint. Rows that read more weights than a cache
    size (the sweep's chains of up to 12 blocks, 21 MB) are what can show it; without them, or when no cost
    beyond a cache shows, the footprint is None and the coefficients are the plain fit."""
    y = np.array([s.latency_ms for s in train])
    w = np.array([sample_weight_bytes(s) for s in train])
    plain = fit_coefficients(train, robust=True)
    plain_loss = float(np.sum((predict_samples(train, plain) / y - 1) ** 2))
    best = (plain_loss, plain, None)
    for mb in FOOTPRINT_GRID_MB:
        if not np.any(w > mb * 1e6):
            break
        per_byte = {"cache_bytes": mb * 1e6, "ns_per_byte": 1.0}  # the column: ms per (ns per byte)
        rows = _with_footprint_column(train, footprint_column_ms(train, per_byte, w))
        coefs = fit_coefficients(rows, robust=True)
        k = coefs.get(("extra", "footprint"), 0.0)
        loss = float(np.sum((predict_samples(rows, coefs) / y - 1) ** 2))
        if k > 0 and loss < best[0]:
            best = (loss, {c: v for c, v in coefs.items() if c != ("extra", "footprint")},
                    {"cache_bytes": mb * 1e6, "ns_per_byte": k})
    n = len(train)
    if best[2] is None or n * math.log(max(best[0], 1e-300) / max(plain_loss, 1e-300)) >= -2 * math.log(n):
        return plain, None
    return best[1], best[2]


def fp16_as_fp32(samples: list[Sample]) -> list[Sample]:
    """``samples`` with every fp16-weight Linear priced as an fp32 one: ``toolkit.onnx_quant`` stores fp16
    weights behind a ``Cast`` that ONNX Runtime folds at session start, so the kernel is the fp32 one (same-shape
    fp16 / fp32 rows of the host sweep: median 1.03, 9 pairs per run) and a separate fit of its terms only adds
    noise -- in runs 9 and 10 of the host proof the models' errors grew with their share of fp16 Linears (r =
    +0.42 / +0.48). The shipped ARM profiles tie the two the same way (``derive.build.ort_parts``)."""
    def as32(op):
        return op._replace(bits=32, act_bits=32) if op.kind == "linear" and op.bits == 16 else op

    return [replace(s, terms=tuple((as32(op), n) for op, n in s.terms)) for s in samples]


def has_merge(s: Sample) -> bool:
    """Whether sample ``s`` runs a token merge (``mae.tome``: a static export, see the module doc)."""
    return any(op.kind == "merge" for op, _ in s.terms)


def fit_merge_last(train: list[Sample], coefs: dict, footprint: dict | None) -> dict:
    """``coefs`` (fitted on the rows without merges) plus the ``merge`` terms, fitted on the merge rows of
    ``train`` with every other term and the footprint held fixed. Those rows are static exports (module doc):
    their plain operators run a few percent faster than in a dynamic-batch row, and a joint fit would let 13
    merge rows pull the Linears' per-operator overhead of every other model down (1.2 us of 2.9 on the host);
    fitted last, the merge terms absorb that difference, which a merging model -- always static -- has."""
    rows = [s for s in train if has_merge(s)]
    if not rows:
        return coefs
    fixed = {c: v for c, v in coefs.items() if "merge/fp32" not in c}
    if footprint:
        rows = _with_footprint_column(rows, footprint_column_ms(rows, footprint))
        fixed[("extra", "footprint")] = 1.0
    merged = fit_coefficients(rows, fixed=fixed, robust=True)
    return coefs | {c: v for c, v in merged.items() if "merge/fp32" in c}


def expected_keys() -> list[str]:
    """Cost keys a complete profile has: every operator kind of ``decompose`` in fp32, every Linear dtype."""
    from evaluators.latency.predict.cost import LINEAR_DTYPES
    from evaluators.latency.predict.ops import KINDS

    return [f"{k}/fp32" for k in KINDS if k not in ("linear", "relu")] + [f"linear/{d}" for d in LINEAR_DTYPES]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_measure_csv(path: Path) -> tuple[list[Sample], dict[str, str]]:
    """Samples of a ``maec measure`` CSV and the device metadata of its first row."""
    from evaluators.latency.measure.items import spec_ops

    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise CalibrationError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CalibrationError(f"{path} is not a readable CSV ({type(e).__name__})") from None
    if not rows:
        raise CalibrationError(f"{path} has no data rows")
    missing = [c for c in MEASURE_COLUMNS if c not in rows[0]]
    if missing:
        raise CalibrationError(f"{path} is not a `maec measure` CSV: column {missing[0]!r} is missing")
    threads = {r["threads"] for r in rows}
    if len(threads) > 1:
        raise CalibrationError(f"{path} mixes thread counts ({', '.join(sorted(threads))}); a profile is for one count")
    samples = []
    for i, r in enumerate(rows):
        where = f"{path} row {i + 2}"
        try:
            ms = float(r["latency_ms"])
            spec = json.loads(r["spec"])
            terms = tuple(spec_ops(spec))
        except (ValueError, TypeError, KeyError, json.JSONDecodeError) as e:
            raise CalibrationError(f"{where} ({r.get('bench', '?')}) cannot be read: {e}") from None
        if not math.isfinite(ms) or ms <= 0:
            raise CalibrationError(f"{where}: latency_ms must be a positive number, got {r['latency_ms']!r}")
        if r["row_kind"] not in ("op", "model"):
            raise CalibrationError(f"{where}: row_kind must be 'op' or 'model', got {r['row_kind']!r}")
        kinds = [op.kind for op, _ in terms]
        main = next((k for k in kinds if k != "linear"), kinds[0] if kinds else "none")  # attention rows hold Linears too
        group = f"op:{main}" if r["row_kind"] == "op" else "model"
        samples.append(Sample(terms, ms, group, calls=1.0, io=float(spec.get("io", 0)), row=i,
                              meta={"bench": r["bench"]}))
    return samples, rows[0]


def _fill_from_base(core: dict, op_us: dict, base: DeviceProfile, scale: float) -> tuple[dict, dict, list[str]]:
    """Kinds the data did not cover, taken from ``base`` with its core terms times ``scale``."""
    filled = []
    core, op_us = dict(core), dict(op_us)
    for key, d in base.core.items():
        if key not in core:
            core[key] = {f: v * scale for f, v in d.items()}
            op_us.setdefault(key, base.overhead["op_us"].get(key, 0.0))
            filled.append(key)
    return core, op_us, filled


def _scale_to(base: DeviceProfile, samples: list[Sample]) -> float:
    """Least-squares (relative error) factor s with latency ~ s * core + overhead of ``base``."""
    zero_core = profile_parts_to_coefs({k: {f: 0.0 for f in d} for k, d in base.core.items()},
                                       base.overhead["op_us"], base.overhead["call_us"])
    full = profile_parts_to_coefs(base.core, base.overhead["op_us"], base.overhead["call_us"])
    y = np.array([s.latency_ms for s in samples])
    over = predict_samples(samples, zero_core)
    core = predict_samples(samples, full) - over
    c, t = core / y, (y - over) / y
    return float(np.sum(c * t) / np.sum(c * c))


def calibrate_rows(samples: list[Sample], meta: dict[str, str], *, name: str, source: Path, seed: int = 0,
                   heldout_frac: float = 0.2, fit_on: str = "all", base: DeviceProfile | None = None,
                   footprint: bool = True) -> DeviceProfile:
    """Fit a profile to measurement samples; see the module docstring for the two modes. ``footprint``:
    also fit the weight footprint (:func:`fit_with_footprint`; False: the per-operator terms alone)."""
    if fit_on not in FIT_ON:
        raise CalibrationError(f"--fit-on must be one of {', '.join(FIT_ON)}, got {fit_on!r}")
    op_rows = [s for s in samples if s.group != "model"]
    kinds_measured = {op.kind for s in op_rows for op, _ in s.terms}
    model_rows = [s for s in samples if s.group == "model"]
    pool = op_rows if fit_on == "ops" else samples
    if len(pool) < 3:
        raise CalibrationError(f"{source} has {len(pool)} usable rows to fit; at least 3 are needed")
    tr, te = split(pool, seed=seed, heldout_frac=heldout_frac)
    train = [pool[i] for i in tr]
    test = [pool[i] for i in te] + (model_rows if fit_on == "ops" else [])
    assumptions: list[str] = []
    fp = None
    if {"linear", "attention"} <= kinds_measured:
        # the sweep's chains of 1-12 blocks price the weights beyond the cache, which no operator row can
        tied = fp16_as_fp32(train)
        plain = [s for s in tied if not has_merge(s)]
        coefs, fp = fit_with_footprint(plain) if footprint else (fit_coefficients(plain, robust=True), None)
        coefs = fit_merge_last(tied, coefs, fp)
        core, op_us, call_us = coefs_to_profile_parts(coefs)
        if "linear/fp32" in core and any(op.kind == "linear" and op.bits == 16 for s in train for op, _ in s.terms):
            core["linear/fp16"], op_us["linear/fp16"] = dict(core["linear/fp32"]), op_us.get("linear/fp32", 0.0)
        filled: list[str] = []
        if not set(expected_keys()) <= set(core):
            base = base or load_profile(None)
            lin = core.get("linear/fp32", {}).get("ns_per_mac")
            ref = base.core.get("linear/fp32", {}).get("ns_per_mac")
            scale = lin / ref if lin and ref else 1.0
            core, op_us, filled = _fill_from_base(core, op_us, base, scale)
        if filled:
            assumptions.append(f"not measured, taken from {base.name} with core terms x {scale:.3g} "
                               f"(ratio of linear/fp32 ns_per_mac): {', '.join(sorted(filled))}")
        confidence = "high"
        mode = "per-operator fit"
    else:
        base = base or load_profile(None)
        if not model_rows:
            raise CalibrationError(f"{source} has neither linear + attention operator rows nor whole-model rows")
        s = _scale_to(base, [pool[i] for i in tr])
        core = {k: {f: v * s for f, v in d.items()} for k, d in base.core.items()}
        op_us, call_us = dict(base.overhead["op_us"]), float(base.overhead["call_us"])
        assumptions.append(f"whole-model rows only: {base.name}'s core terms scaled by {s:.4g}, its runtime "
                           "overheads kept")
        confidence = "low"
        mode = f"scaled {base.name}"
    full = profile_parts_to_coefs(core, op_us, call_us)
    # io_us prices the extra graph inputs / outputs of the micro-benchmarks (a harness artifact, not part
    # of the profile): held-out operator rows are scored with it, model rows have none
    scored = full | ({("io_us",): coefs.get(("io_us",), 0.0)} if confidence != "low" else {})
    # Held-out rows are priced with the kernels they ran (no envelope: that is a deployment choice,
    # see LatencyPredictor.deployable_config), so these figures measure the cost model itself.
    validation = {"heldout": metrics(predict_with_footprint(test, scored, fp),
                                     np.array([s.latency_ms for s in test])),
                  "seed": seed, "heldout_frac": heldout_frac, "fit_on": fit_on, "mode": mode}
    for label, rows in (("heldout_ops", [s for s in test if s.group != "model"]),
                        ("heldout_models", [s for s in test if s.group == "model"])):
        if rows:
            validation[label] = metrics(predict_with_footprint(rows, scored, fp),
                                        np.array([s.latency_ms for s in rows]))
    if confidence == "high" and validation["heldout"]["within_10pct"] < 0.8:
        confidence = "medium"
    threads = int(meta.get("threads") or 1)
    runtime = f"{meta.get('runtime', 'onnxruntime-cpu')} {meta.get('runtime_version', '')}".strip()
    prov = [{"source": "maec measure", "file": source.name, "sha256": sha256(source),
             "rows_used": f"{len(train)} fitted of {len(samples)} ({len(op_rows)} operator, {len(model_rows)} model rows)",
             "measured_at": meta.get("measured_at", ""), "governor": meta.get("governor", ""),
             "cores": meta.get("cores", ""), "max_mhz": meta.get("max_mhz", ""), "os": meta.get("os", "")}]
    return DeviceProfile(
        name=name, device=meta.get("device") or name, cpu=meta.get("cpu_model") or "unknown",
        runtime=f"{runtime} (exported model, ORT_ENABLE_ALL, sequential)", threads=threads, confidence=confidence,
        core={k: {f: float(v) for f, v in d.items()} for k, d in sorted(core.items())},
        overhead={"runtime": runtime, "op_us": {k: float(v) for k, v in sorted(op_us.items())}, "call_us": float(call_us),
                  **({"footprint": fp} if fp else {})},
        provenance=prov, validation=validation, assumptions=assumptions,
        notes=f"calibrated by `maec calibrate {source.name} --name {name}`")


def calibrate_hat_csv(path: Path, *, name: str, seed: int, heldout_frac: float, base: DeviceProfile | None = None) -> DeviceProfile:
    """A PyTorch-eager (HAT super-network) Raspberry Pi 4 profile from one or both HAT files."""
    from evaluators.latency.fit.hat_fit import fit_hat, hat_provenance

    base = base or load_profile(None)
    fit = fit_hat([path], seed=seed, heldout_frac=heldout_frac)
    core, _, _ = coefs_to_profile_parts(fit.coefs)
    extras = {c[1]: v for c, v in fit.coefs.items() if c[0] == "extra"}
    fixed = [v for k, v in extras.items() if k.startswith("hat_encoder_fixed")]
    core = {k: d for k, d in core.items() if any(v > 0 for v in d.values())}
    core, op_us, filled = _fill_from_base(core, {k: 0.0 for k in core}, base, 1.0)
    prov = [p for p in hat_provenance(fit) if Path(p["file"]).name == path.name]
    return DeviceProfile(
        name=name, device="Raspberry Pi 4 Model B", cpu="4x Cortex-A72 (BCM2711)",
        runtime="PyTorch eager, fairseq SuperTransformer (HAT), fp32", threads=4, confidence="medium",
        core={k: {f: float(v) for f, v in d.items()} for k, d in sorted(core.items())},
        overhead={"runtime": "PyTorch eager super-network (weights sliced per call); per-operator costs are in "
                             "call_us (constant op count in the encoder rows)",
                  "op_us": {k: float(v) for k, v in sorted(op_us.items())}, "call_us": 1e3 * float(np.mean(fixed)),
                  "framework_ms": {k: float(v) for k, v in sorted(extras.items())}},
        provenance=prov,
        validation={"heldout": fit.heldout["hat-encoder"], "heldout_decoder": fit.heldout["hat-decoder"],
                    "baselines": fit.baselines, "seed": seed, "heldout_frac": heldout_frac},
        assumptions=[f"not identifiable from HAT rows, taken from {base.name}: {', '.join(sorted(filled))}"],
        notes=f"calibrated by `maec calibrate {path.name} --name {name}`")


def calibrate_file(path: str | Path, *, name: str, seed: int = 0, heldout_frac: float = 0.2, fit_on: str = "all",
                   base: str | None = None) -> DeviceProfile:
    """Dispatch on the CSV header: ``maec measure`` layout or a HAT latency dataset."""
    from evaluators.latency.fit.sources import is_hat_csv

    path = Path(path)
    if not 0.0 < heldout_frac < 1.0:
        raise CalibrationError(f"--heldout must be in (0, 1), got {heldout_frac}")
    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise CalibrationError(f"--name {name!r} must be a plain file name (no spaces or slashes)")
    try:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
    except FileNotFoundError:
        raise CalibrationError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CalibrationError(f"{path} is not a readable CSV ({type(e).__name__})") from None
    base_profile = load_profile(base)
    if is_hat_csv(header):
        return calibrate_hat_csv(path, name=name, seed=seed, heldout_frac=heldout_frac, base=base_profile)
    samples, meta = read_measure_csv(path)
    return calibrate_rows(samples, meta, name=name, source=path, seed=seed, heldout_frac=heldout_frac,
                          fit_on=fit_on, base=base_profile)
