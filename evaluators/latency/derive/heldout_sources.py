"""Held-out sources: the shipped profiles against other sources' whole-model rows on their own device.

The profiles are fitted on qed's phone rows, HAT's Pi 4 rows and a Pi 4 whole-ViT table; here every other
source's row on a shipped profile's device (ncnn's ViT-B/32 at 384 px, NetsPresso's ViT-Tiny, SNP's ONNX
DeiT-T/S/B on a Pi 4 and its four SNP-pruned DeiTs, priced from their per-layer widths) is predicted and
compared, with four rules that decide what counts:

1. **Anchors are shown, not counted.** A row a profile is built from cannot test it: ncnn's rows at the
   thread count a profile takes from ncnn's 1-thread / 4-thread ratio (the Pi 4's one thread; the 4 threads of
   the A76 boards), every ncnn row of the devices scaled from the Pi 5 by ncnn times (Snapdragon 8 Gen 2,
   Dimensity 9300), and the Snapdragon 855+ one-thread row that measures the ncnn runtime factor (2.).
2. **ncnn's runtime factor is measured, not assumed**: from the one same-model pair in the data (ViT-B/32 at
   384 px in TFLite on a Pixel 4 and in ncnn on a OnePlus 7T; :func:`~evaluators.latency.fit.whole_model.
   ncnn_runtime_factor`), brought to ONNX Runtime by the A76 profiles' ORT / TFLite factor. Its fp32 part
   (the A72) borrows Paddle-Lite's fp16 speed-up on an A76; :func:`summary` also scores without that step.
3. **int8 rows are shown, not counted**: NetsPresso's TFLite int8 (method not stated, most likely full-integer)
   is not the profiles' int8 (ONNX Runtime's dynamic w8a32 Linears), and no factor between them is measured.
4. **A row without a thread count is one check per board**: NetsPresso states none, so its row is within
   ±25% when it is within 25% of the span between the board's 4-thread and 1-thread predictions (it used to
   be counted once against each, one of them wrong by construction).

Written for ``benchmarks/latency_arm_validation.py`` (section 4) and its test; no timing here.
"""
from __future__ import annotations

import statistics

from evaluators.latency.derive.vit_anchored import ncnn_factor
from evaluators.latency.fit.snp_pruned import PRUNED, row_ops
from evaluators.latency.fit.snp_pruned import SNP_REPO as SNP
from evaluators.latency.fit.whole_model import NCNN, QED, WholeRow
from evaluators.latency.predict.predictor import LatencyPredictor
from evaluators.latency.predict.profile import DeviceProfile, load_profile
from spaces.config_presets import preset_config

NETSPRESSO = "Nota-NetsPresso/netspresso-trainer"
WITHIN = 0.25
INT8_ROLE = "shown, not counted: int8 of an unstated method (no TFLite / ORT int8 factor is measured)"

# shipped profile -> (device text in the CSV rows, threads)
DEVICE_ROWS = {"rpi4-a72-ort-1t": ("Raspberry Pi 4", 1), "rpi4-a72-ort-4t": ("Raspberry Pi 4", 4),
               "rpi5-a76-ort-1t": ("Raspberry Pi 5", 1), "rpi5-a76-ort-4t": ("Raspberry Pi 5", 4),
               "snapdragon-855plus-ort-1t": ("Snapdragon 855+", 1), "snapdragon-855plus-ort-4t": ("Snapdragon 855+", 4),
               "rk3588-a76-ort-4t": ("RK3588", 4), "snapdragon-8gen2-ort-1t": ("Snapdragon 8 Gen 2", 1),
               "snapdragon-8gen2-ort-4t": ("Snapdragon 8 Gen 2", 4), "dimensity-9300-ort-1t": ("Dimensity 9300", 1),
               "dimensity-9300-ort-4t": ("Dimensity 9300", 4)}


def _role(profile: DeviceProfile, r: WholeRow) -> str:
    """'held out', or why the row is an anchor of ``profile`` (module docstring, rule 1), as the profile's own
    validation records it (``anchor_only``; ``ncnn_cross_check``'s ``independent``)."""
    if r.source != NCNN:
        return "held out"
    v = profile.validation
    if v.get("anchor_only"):
        return "anchor: the profile is the Pi 5's x this device's ncnn time"
    x = v.get("ncnn_cross_check", {})
    return "held out" if x.get("independent", True) else f"anchor: {x['not_independent_because']}"


def source_checks(rows: list[WholeRow], factor: dict | None = None) -> list[dict]:
    """One entry per (shipped profile, other source's fp32/fp16 row on its device); rows without a thread
    count once per board against the span of its 1- and 4-thread profiles."""
    factor = factor or ncnn_factor(rows)
    out, seen = [], set()
    for name, (dev, threads) in DEVICE_ROWS.items():
        prof = load_profile(name)
        pred = LatencyPredictor(prof)
        for r in rows:
            if (r.shape is None and r.model not in PRUNED) or dev not in r.device or r.source == QED:
                continue
            if r.threads is not None and r.threads != threads:
                continue
            config = preset_config(r.shape, "int8") if r.dtype == "int8" else None
            if r.source == SNP:  # plain and pruned DeiTs (per-layer widths), timm's class-token pooling
                p = pred.predict_ops_ms(row_ops(r.model, r.shape))
            else:
                p = pred.predict_ms(r.shape, config, **({"global_pool": "token"} if r.source == NCNN else {}))
            f, stated = 1.0, "none needed (ONNX Runtime inferred, as the profile; 4 threads inferred)"
            if r.source == NCNN:
                f = factor["over_ort"][r.dtype]
                stated = f"ncnn {r.dtype} / ORT x{f:.3f} (measured pair{', fp32 / fp16 from Paddle-Lite' if r.dtype == 'fp32' else ''})"
            elif r.source == NETSPRESSO:
                stated = ("none (TFLite int8, method not stated; predicted with the int8 preset, ORT dynamic w8a32)"
                          if r.dtype == "int8" else "none (fp16-weight TFLite, taken as fp32 compute)")
            entry = {"profile": name, "model": r.model, "row": f"{r.model} {r.runtime} {r.dtype}, {r.threads or '?'} thread(s) ({r.source})",
                     "measured_ms": r.latency_ms, "predicted_ms": p * f, "factor": f, "factor_note": stated,
                     "role": _role(prof, r) if r.dtype != "int8" else INT8_ROLE, "dtype": r.dtype, "source": r.source}
            if r.threads is None:  # rule 4: one check per board, against both thread counts' predictions
                key = (r.source, r.model, r.device, r.dtype)
                if key in seen:
                    continue
                seen.add(key)
                other = next(n for n, (d, t) in DEVICE_ROWS.items() if d == dev and t != threads)
                q = LatencyPredictor(other).predict_ms(r.shape, config)
                entry["predicted_ms"] = (min(p, q), max(p, q))
                entry["profile"] = f"{name} / {other}"
            out.append(entry)
    for e in out:
        e["ratio"] = _ratio(e["predicted_ms"], e["measured_ms"])
        e["within"] = abs(e["ratio"] - 1) <= WITHIN
    return out


def _ratio(pred, meas: float) -> float:
    """predicted / measured; for a span, the ratio of its nearest end (1.0 inside it)."""
    if isinstance(pred, tuple):
        lo, hi = pred
        return lo / meas if meas < lo else hi / meas if meas > hi else 1.0
    return pred / meas


def summary(checks: list[dict], factor: dict) -> dict:
    """The held-out entries' share within ±25% at the stated ncnn factor and at either end of its range."""
    held = [c for c in checks if c["role"] == "held out"]
    shown = sum(c["role"] == INT8_ROLE for c in checks)
    shares = {}
    for end, i in (("low", 0), ("high", 1)):
        ok = 0
        for c in held:
            r = c["ratio"]
            if c["source"] == NCNN:
                r = r / c["factor"] * factor["over_ort_range"][c["dtype"]][i]
            ok += abs(r - 1) <= WITHIN
        shares[end] = ok / len(held)
    # the fp32 factor's one borrowed part is Paddle-Lite's fp16 speed-up: without it (ncnn fp32 as fast as its fp16)
    no_fp16 = sum(abs((c["ratio"] / c["factor"] * factor["over_ort"]["fp16"] if c["source"] == NCNN else c["ratio"]) - 1)
                  <= WITHIN for c in held)
    return {"n": len(held), "within_25pct": sum(c["within"] for c in held) / len(held),
            "within_25pct_factor_range": (shares["low"], shares["high"]),
            "within_25pct_without_fp16_speedup": no_fp16 / len(held),
            "median_ratio": statistics.median(c["ratio"] for c in held),
            "by_source": {src: (sum(c["within"] for c in held if c["source"] == src), sum(c["source"] == src for c in held))
                          for src in sorted({c["source"] for c in held})},
            "anchors": len(checks) - len(held) - shown, "int8_shown": shown}
