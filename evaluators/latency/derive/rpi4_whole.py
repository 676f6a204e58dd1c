"""The Raspberry Pi 4 profiles' compute and non-GEMM terms refitted on whole ViTs measured on a Pi 4.

HAT's Pi 4 rows identify the A72's GEMM cost on 5-30 token rows (:mod:`evaluators.latency.fit.hat_fit`);
the rest of the Pi 4 profiles (attention softmax, LayerNorm, GELU, adds, ONNX Runtime's per-operator
overhead) is the host reference x an assumed 5 (``priors.A72_SLOWDOWN_NON_GEMM``). Whole ViTs of three
sizes timed on a Pi 4 (Flower's federated-embedded-vision benchmark: DeiT and ViT Tiny / Small / Base,
224 px, batch 16, PyTorch 1.13 eager, 4 threads) test both: they run 2.69x (Small / Tiny) and 3.25x
(Base / Small) where the HAT-based profile said 3.29x and 3.57x.

The refit keeps the profile's per-operator structure and scales its three term groups
(:func:`~evaluators.latency.fit.whole_model.term_groups`):

* ``weights`` (``ns_per_weight``, a cost per weight per call): batch-16 rows stream a weight matrix once
  per 16 images and cannot see it. HAT's value is a PyTorch-eager cost, not memory traffic: on the
  default model it implies 0.29 GB/s at one thread, ten times below what any LPDDR4 board streams (the
  Pi 4's 32-bit LPDDR4-3200 peaks at 12.8 GB/s), and runtimes that prepack weights (TFLite, PyTorch
  Mobile, ONNX Runtime) do not pay it. Every out-of-order core with whole-ViT rows of several sizes
  (A76, A75, Samsung M4; :func:`big_core_weight_scales`) puts this group at 0-10% of HAT's; the refit
  takes the largest of those scales (the conservative end: 2.8 GB/s effective at one thread);
* ``gemm`` (every ``ns_per_mac``) and ``rest`` (everything that is not a GEMM's compute or weight
  streaming): NNLS on relative errors of the six rows, the weights held at that scale.

The scales go to both thread counts (the one-thread profile is the four-thread one with its GEMM terms
x the ncnn thread ratio, its rest not sped up, so group scales carry over unchanged).

Runtime: the rows are PyTorch eager; no same-model pair of PyTorch eager and ONNX Runtime on an ARM
core exists in the project's data. The factor used is the measured chain through TFLite (ORT / TFLite
on LeViT over PyTorch Mobile / TFLite on the qed rows, PyTorch Mobile standing in for eager: the same
ATen operators), stated in the profile, with the fit at factor 1 shown beside it as the bound.
Validation: each size left out in turn (fit on the other two, predict it), and the size ratios from
those held-out predictions. Why our own code: three NNLS columns on the project's own CSV; no library
fits these rows.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from evaluators.latency.fit.fit import metrics, nnls
from evaluators.latency.fit.whole_model import DATA_CSV, GROUPS, WholeRow, read_rows, scale_profile, term_groups
from evaluators.latency.predict.profile import DeviceProfile

FLOWER = "jafermarq/federated-embedded-vision"
FLOWER_COMMIT = "17ecd8b098384d365b2749cd42b1e63dc557da29"
SIZES = ("tiny", "small", "base")


def pi4_rows(rows: list[WholeRow]) -> list[WholeRow]:
    """The plain DeiT / ViT rows of a Pi 4 (Cortex-A72) that a profile can price (a known ViT shape)."""
    return [r for r in rows if r.source == FLOWER and r.core == "Cortex-A72" and r.shape is not None]


def _size(r: WholeRow) -> str:
    return next(s for s in SIZES if f"-{s}-" in r.model)


BIG_CORES = ("Cortex-A76", "Cortex-A75", "Samsung M4")  # out-of-order cores with multi-size whole-ViT rows


def big_core_weight_scales(profile: DeviceProfile, rows: list[WholeRow], f: dict) -> dict[str, float]:
    """``{"core, runtime": weights-group scale}`` of each big core's one-core whole-ViT fit (qed rows, ORT at
    the reference clock by the runtime factors ``f``) relative to ``profile``."""
    from evaluators.latency.derive.vit_anchored import qed_rows, to_ort_at_ref
    from evaluators.latency.fit.whole_model import fit_group_scales

    out = {}
    for core in BIG_CORES:
        for rt in ("tflite", "pytorch-mobile"):
            cr = qed_rows(rows, core, runtimes=(rt,))
            out[f"{core}, {rt}"] = float(fit_group_scales(profile, cr, [to_ort_at_ref(r, f) for r in cr])[1])
    return out


def fit_gemm_rest(profile: DeviceProfile, rows: list[WholeRow], factor: float, weights: float = 1.0) -> np.ndarray:
    """``[gemm, weights, rest]`` scales: gemm and rest by NNLS on relative errors of ``rows`` (each latency x
    ``factor``), weights fixed at ``weights``."""
    x = np.array([term_groups(profile, r.shape, batch=r.batch) for r in rows])
    y = np.array([r.latency_ms for r in rows]) * factor
    s = nnls(x[:, [0, 2]] / y[:, None], 1.0 - weights * x[:, 1] / y)
    return np.array([s[0], weights, s[1]])


def _predict(profile: DeviceProfile, r: WholeRow, scales: np.ndarray) -> float:
    return float(term_groups(profile, r.shape, batch=r.batch) @ scales)


def heldout_sizes(profile: DeviceProfile, rows: list[WholeRow], factor: float,
                  weights: float = 1.0) -> tuple[dict, dict[str, float]]:
    """Each size predicted by the scales fitted on the other two: (metrics over all rows, mean predicted /
    measured ms per size)."""
    pred, meas, per_size = [], [], {}
    for s in SIZES:
        train = [r for r in rows if _size(r) != s]
        test = [r for r in rows if _size(r) == s]
        scales = fit_gemm_rest(profile, train, factor, weights)
        p = [_predict(profile, r, scales) for r in test]
        pred += p
        meas += [r.latency_ms * factor for r in test]
        per_size[s] = float(np.mean(p)) / float(np.mean([r.latency_ms * factor for r in test]))
    return metrics(np.array(pred), np.array(meas)), per_size


def size_checks(profile: DeviceProfile, rows: list[WholeRow], factor: float, weights: float = 1.0) -> list[dict]:
    """Small / Tiny and Base / Small: measured, predicted by the full fit, and predicted with the larger
    model held out (its scales fitted on the other two sizes)."""
    mean = {s: float(np.mean([r.latency_ms for r in rows if _size(r) == s])) for s in SIZES}
    full = fit_gemm_rest(profile, rows, factor, weights)
    out = []
    for big, small in (("small", "tiny"), ("base", "small")):
        rb = next(r for r in rows if _size(r) == big)
        rs = next(r for r in rows if _size(r) == small)
        held = fit_gemm_rest(profile, [r for r in rows if _size(r) != big], factor, weights)
        measured = mean[big] / mean[small]
        fitted = _predict(profile, rb, full) / _predict(profile, rs, full)
        heldout = _predict(profile, rb, held) / _predict(profile, rs, held)
        out.append({"pair": f"{big} / {small}", "measured": round(measured, 4), "fitted": round(fitted, 4),
                    "heldout": round(heldout, 4), "error": round(heldout / measured - 1, 4),
                    "before_refit": round(_predict(profile, rb, np.ones(3)) / _predict(profile, rs, np.ones(3)), 4)})
    return out


def refit_rpi4(profiles: list[DeviceProfile], default_ms, csv=DATA_CSV) -> list[DeviceProfile]:
    """``profiles`` (the HAT-based Pi 4 ones) with their term groups scaled (module doc) by the fit on the
    4-thread profile; ``default_ms(profile)`` prices the embedded default model for the notes and the bounds."""
    from evaluators.latency.derive.vit_anchored import runtime_factors

    every = read_rows(csv, batches=(1, 16))
    batch1 = [r for r in every if r.batch == 1]
    rows = pi4_rows([r for r in every if r.batch == 16])
    f = runtime_factors(batch1)
    factor = f["ort/tflite"]["median"] / f["pytorch-mobile/tflite"]["median"]
    factor_text = (f"ORT / TFLite {f['ort/tflite']['median']:.3f} over PyTorch Mobile / TFLite "
                   f"{f['pytorch-mobile/tflite']['median']:.3f}; PyTorch Mobile stands in for eager")
    base1 = next(p for p in profiles if p.threads == 1)
    big = big_core_weight_scales(base1, batch1, f)
    w = max(big.values())
    base4 = next(p for p in profiles if p.threads == 4)
    scales = fit_gemm_rest(base4, rows, factor, w)
    scales_f1 = fit_gemm_rest(base4, rows, 1.0, w)
    held, per_size = heldout_sizes(base4, rows, factor, w)
    checks = size_checks(base4, rows, factor, w)
    fitted = np.array([_predict(base4, r, scales) for r in rows])
    out = []
    for p in profiles:
        new = scale_profile(p, scales)
        bound = scale_profile(p, scales_f1)
        before, after, at_f1 = default_ms(p), default_ms(new), default_ms(bound)
        hat_weights = default_ms(scale_profile(p, np.array([scales[0], 1.0, scales[2]])))
        validation = {**p.validation, "whole_vit_pi4": {
            "rows": f"{len(rows)} rows: {', '.join(sorted({r.model for r in rows}))}, batch 16, 4 threads, PyTorch eager",
            "runtime_factor_ort_over_pytorch": round(factor, 4), "runtime_factor_note": factor_text,
            "group_scales": dict(zip(GROUPS, (round(float(s), 4) for s in scales))),
            "group_scales_at_factor_1": dict(zip(GROUPS, (round(float(s), 4) for s in scales_f1))),
            "weights_scale_source": {"big_core_fits": {k: round(v, 4) for k, v in big.items()}, "taken": round(w, 4)},
            "fit_rows": metrics(fitted, np.array([r.latency_ms * factor for r in rows])),
            "heldout_size": held, "heldout_size_ratio_pred_over_meas": {k: round(v, 4) for k, v in per_size.items()},
            "size_scaling": checks,
            "default_model_ms": {"before_refit": round(before, 3), "refit": round(after, 3),
                                 "refit_at_factor_1": round(at_f1, 3), "refit_with_hat_weights": round(hat_weights, 3)}}}
        if "default_model" in validation:
            validation["default_model"] = {**validation["default_model"], "predicted_ms": round(after, 3),
                                           "ratio_to_20ms_budget": round(after / 20.0, 3)}
        provenance = [*p.provenance, {
            "repo": FLOWER, "commit": FLOWER_COMMIT, "file": "results/blog/rpi4_bench_results.pkl",
            "rows_used": f"{len(rows)} rows via {csv.name}: {', '.join(sorted({r.model for r in rows}))} on a "
                         "Raspberry Pi 4, batch 16 (the 'finetune' step: frozen backbone, forward only)",
            "use": "NNLS scales of the gemm and rest term groups; held-out size checks"}]
        assumptions = [a for a in p.assumptions if not a.startswith(("non-GEMM terms and ORT overheads",
                                                                      "GEMM core terms measured through"))] + [
            (f"gemm terms x {scales[0]:.4f} and every non-GEMM term and ORT overhead (host reference x "
             f"A72 slowdown) x {scales[2]:.4f}, fitted on whole DeiT/ViT Tiny/Small/Base timed on a Pi 4 in "
             f"PyTorch eager at batch 16 and 4 threads; ORT / PyTorch eager = {factor:.3f} ({factor_text}); "
             f"at factor 1 the default model is {at_f1:.1f} ms instead of {after:.1f} ms"),
            (f"weight streaming x {w:.4f} of HAT's PyTorch-eager term: the largest weights-group scale of the big "
             f"cores' whole-ViT fits ({min(big.values()):.3f}-{w:.3f}; ORT prepacks weights); no A72 row tests it; "
             f"with HAT's term kept the default model is {hat_weights:.1f} ms")]
        notes = p.notes.replace(f"Default-model prediction {before:.1f} ms ({before / 20:.2f}x",
                                f"Default-model prediction {after:.1f} ms ({after / 20:.2f}x")
        out.append(replace(new, validation=validation, provenance=provenance, assumptions=assumptions, notes=notes))
    return out
