"""Profiles of the Cortex-A76 devices and of the faster phone cores, anchored on measured whole ViTs.

1. **The A76 core at one thread.** The Pi 4 one-thread profile's per-operator structure, its three term
   groups (``gemm``, ``weights``, ``rest``: :mod:`evaluators.latency.fit.whole_model`) scaled by NNLS on
   qed-usc/mobile-ml-benchmark's one-core A76 rows (Pixel 4, Kryo 485 prime 2.84 GHz and gold 2.32 GHz:
   DeiT-T/S/B, ViT-B/16 and ViT-B/32 at 224 and 384 px, ViT-MSN-S/B; TFLite 2.15 and PyTorch Mobile 2.0,
   fp32). Every row is brought to ONNX Runtime by a measured runtime factor (ORT over TFLite: LeViT rows
   of EdgeTransformerPerf on a Jetson Orin, the Linear/attention models there; PyTorch Mobile over
   TFLite: the qed rows themselves) and to a reference clock (time x GHz, an assumption the Pixel 4's
   two A76 clusters check: ``clock_check`` in the validation).
2. **Per device.** The clock of the core one thread runs on; at 4 threads the ``gemm`` and ``weights``
   groups are divided by the ncnn ViT-B/32 one-thread / four-thread ratio measured on that device (or
   its SoC), the ``rest`` is not sped up (as for the Pi 4).
3. **Faster cores without such rows** (Cortex-X3 / X4 phones): the Pi 5 profile of the same thread count
   x that device's ncnn ViT-B/32 time over the Pi 5's (same model, same runtime, both ARMv8.2 with
   ncnn's fp16 arithmetic, so the fp16 factor cancels; the cores differ, so the A76's group shares are
   an assumption there).
4. **Validation** (in each profile, printed by ``benchmarks/latency_arm_validation.py``): every model
   family left out of the fit in turn (DeiT / ViT / ViT-MSN) and predicted; the size-scaling ratios
   (DeiT-S / DeiT-T, DeiT-B / DeiT-S, ViT-B/32 / ViT-B/16) from those held-out fits against the measured
   ones; the device's own ncnn ViT-B/32 rows (another runtime: a ratio, no factor known); at 4 threads also
   the thread model on the A76's own 2-3-thread rows (:func:`thread_checks`; a check past 15% makes the
   profile low confidence).
"""
from __future__ import annotations

import re
import statistics
from pathlib import Path

import numpy as np

from evaluators.latency.fit.fit import metrics
from evaluators.latency.fit.sources import NCNN_COMMIT, NCNN_FILE, NCNN_REPO, ncnn_vit_rows
from evaluators.latency.fit.whole_model import (
    DATA_CSV,
    GROUPS,
    QED,
    WholeRow,
    fit_group_scales,
    fit_int8_scales,
    ncnn_factor_fields,
    ncnn_runtime_factor,
    read_rows,
    runtime_factor,
    scale_int8,
    scale_profile,
    spread_weights,
    term_groups,
)
from evaluators.latency.predict.profile import DeviceProfile
from spaces.config_presets import preset_config

ETP = "YingkunZhou/EdgeTransformerPerf"
REF_GHZ = 2.4  # the scales are fitted at this clock (the Pi 5's / RK3588's A76)
FAMILIES = {"DeiT": re.compile(r"^deit-"), "ViT": re.compile(r"^vit-base"), "ViT-MSN": re.compile(r"^vit-msn")}
SCALING = (("deit-small-distilled-patch16-224", "deit-tiny-distilled-patch16-224"),
           ("deit-base-distilled-patch16-224", "deit-small-distilled-patch16-224"),
           ("vit-base-patch32-224-in21k", "vit-base-patch16-224-in21k"))

# (stem, device, cpu, 1-thread GHz, ncnn section for 1 thread, ncnn section(s) for 4 threads, extra stated)
A76_DEVICES = (
    ("rpi5-a76", "Raspberry Pi 5", "4x Cortex-A76 @ 2.4 GHz (BCM2712)", 2.4,
     "Raspberry Pi 5 Broadcom BCM2712, Cortex-A76", ("Raspberry Pi 5 Broadcom BCM2712, Cortex-A76",)),
    ("snapdragon-855plus", "Snapdragon 855+ phone (OnePlus 7T), big cores",
     "1x Kryo 485 Gold 2.96 GHz + 3x 2.42 GHz (Cortex-A76 class)", 2.96, "Snapdragon 855+", ("Snapdragon 855+",)),
    ("rk3588-a76", "Rockchip RK3588 / RK3588S boards, A76 cluster", "4x Cortex-A76 @ 2.4 GHz", 2.4,
     "RK3588S", ("RK3588",)),
)
# (stem, device, cpu, ncnn section): ncnn relative to the Pi 5 at the same thread count
FAST_DEVICES = (
    ("snapdragon-8gen2", "Snapdragon 8 Gen 2 phone, big cores", "Cortex-X3 3.2 GHz + 2x A715 + 2x A710 2.8 GHz",
     "Snapdragon 8 Gen 2"),
    ("dimensity-9300", "MediaTek Dimensity 9300 phone, big cores", "Cortex-X4 3.25 GHz + 3x X4 2.85 GHz",
     "Dimensity 9300"),
)


def qed_rows(rows: list[WholeRow], core: str = "Cortex-A76", dtype: str = "fp32",
             runtimes: tuple[str, ...] = ("tflite", "pytorch-mobile"), threads: int | None = 1) -> list[WholeRow]:
    """qed's rows of plain ViTs on ``core`` at ``dtype`` in ``runtimes`` and ``threads`` (None: every thread
    count; default one core)."""
    return [r for r in rows if r.source == QED and r.core == core and r.threads is not None
            and (threads is None or r.threads == threads) and r.shape is not None
            and r.dtype == dtype and r.runtime in runtimes and r.ghz]


def fit_rows(rows: list[WholeRow]) -> list[WholeRow]:
    """The rows the A76 profiles are fitted on: one-core A76, fp32, TFLite or PyTorch Mobile."""
    return qed_rows(rows)


def runtime_factors(rows: list[WholeRow]) -> dict[str, dict]:
    """Measured factors that bring a TFLite or PyTorch Mobile time to ONNX Runtime."""
    ort_tfl = runtime_factor(rows, "ort", "tflite", models=re.compile("LeViT"))
    ort_tfl_all = runtime_factor(rows, "ort", "tflite")
    pt_tfl = runtime_factor([r for r in rows if r.source == QED], "pytorch-mobile", "tflite")
    return {"ort/tflite": {**ort_tfl.to_dict(), "source": ETP, "spread_all_models": ort_tfl_all.to_dict()},
            "pytorch-mobile/tflite": {**pt_tfl.to_dict(), "source": QED}}


def ncnn_factor(rows: list[WholeRow], root: Path | None = None) -> dict:
    """ncnn's time over ONNX Runtime's for the same model and core
    (:func:`~evaluators.latency.fit.whole_model.ncnn_runtime_factor` at the measured ORT / TFLite factor)."""
    return ncnn_runtime_factor(rows, runtime_factors(rows)["ort/tflite"]["median"], root)


def to_ort_at_ref(r: WholeRow, f: dict[str, dict]) -> float:
    """The factor that turns a row's time into ONNX Runtime's at ``REF_GHZ``."""
    rt = f["ort/tflite"]["median"] / (f["pytorch-mobile/tflite"]["median"] if r.runtime == "pytorch-mobile" else 1.0)
    return rt * r.ghz / REF_GHZ


def family_splits(rows: list[WholeRow]):
    """``(train, test)`` per model family present in ``rows``: that family held out, the others to fit on."""
    for pat in FAMILIES.values():
        test = [r for r in rows if pat.search(r.model)]
        train = [r for r in rows if not pat.search(r.model)]
        if test and train:
            yield train, test


def heldout_family(base: DeviceProfile, rows: list[WholeRow], f: dict,
                   spread_floor: float | None = None) -> tuple[dict, dict]:
    """Each family predicted by scales fitted without it: ``(metrics, {model: (pred, target)})``; with
    ``spread_floor``, the fits weight rows by their reported spread (:func:`~evaluators.latency.fit.whole_model.
    spread_weights`; a sensitivity, not what the shipped profiles use)."""
    pred, meas, per_model = [], [], {}
    for train, test in family_splits(rows):
        w = spread_weights(train, spread_floor) if spread_floor else None
        s = fit_group_scales(base, train, [to_ort_at_ref(r, f) for r in train], w)
        for r in test:
            p, y = float(term_groups(base, r.shape) @ s), r.latency_ms * to_ort_at_ref(r, f)
            pred.append(p)
            meas.append(y)
            per_model.setdefault(r.model, []).append((p, y))
    return metrics(np.array(pred), np.array(meas)), per_model


def scaling_checks(per_model: dict) -> list[dict]:
    """Held-out predicted vs measured latency ratios of two models (medians over the rows' settings)."""
    out = []
    for a, b in SCALING:
        if a in per_model and b in per_model:
            pa, ya = (statistics.median(x[i] for x in per_model[a]) for i in (0, 1))
            pb, yb = (statistics.median(x[i] for x in per_model[b]) for i in (0, 1))
            out.append({"models": f"{a} / {b}", "predicted": round(pa / pb, 3), "measured": round(ya / yb, 3),
                        "error": round((pa / pb) / (ya / yb) - 1, 4)})
    return out


THREAD_ANCHOR = "vit-base-patch32-224-in21k"  # its measured speed-up sets k, as ncnn's ViT-B/32 does per device


def thread_checks(base: DeviceProfile, rows: list[WholeRow], f: dict, core: str) -> list[dict]:
    """The shipped multi-thread model (``gemm`` and ``weights`` / k, ``rest`` not sped up; k from one ViT-B/32's
    measured one / N-thread ratio, as ncnn's ViT-B/32 sets it per device) on qed's 2-4-thread rows of ``core``.
    The one-thread groups are the shipped kind of fit: ``base``'s groups scaled by NNLS on every one-thread fp32
    row of ``core`` (both runtimes; for the A76 exactly the shipped profiles' scales). Per device, clock, runtime
    and thread count, k comes from :data:`THREAD_ANCHOR`'s measured speed-up there, and every :data:`SCALING`
    pair without the anchor is predicted at N threads against its measured ratio. No multi-thread row is fitted
    on; the one-thread rows of the pairs are (the one-thread checks hold families out)."""
    fit = qed_rows(rows, core)
    scales = fit_group_scales(base, fit, [to_ort_at_ref(r, f) for r in fit])
    groups = {r.model: term_groups(base, r.shape) * scales for r in fit}
    qed = qed_rows(rows, core, threads=None)
    out = []
    for dev, ghz, rt, n in sorted({(r.device, r.ghz, r.runtime, r.threads) for r in qed if r.threads > 1}):
        ms = {r.model: r.latency_ms for r in qed if (r.device, r.ghz, r.runtime, r.threads) == (dev, ghz, rt, n)}
        t1 = {r.model: r.latency_ms for r in qed if (r.device, r.ghz, r.runtime, r.threads) == (dev, ghz, rt, 1)}
        if THREAD_ANCHOR not in ms or THREAD_ANCHOR not in t1:
            continue
        speedup = t1[THREAD_ANCHOR] / ms[THREAD_ANCHOR]
        g = groups[THREAD_ANCHOR]
        # predicted N-thread time = (gemm + weights) / k + rest, equal to the anchor's measured 1 / N ratio
        left = g.sum() / speedup - g[2]
        k = float((g[0] + g[1]) / left) if left > 0 else float("inf")

        def at_n(m: str, k: float = k) -> float:
            return float((groups[m][0] + groups[m][1]) / k + groups[m][2])

        for a, b in SCALING:
            if THREAD_ANCHOR in (a, b) or not {a, b} <= ms.keys():
                continue
            pred, meas = at_n(a) / at_n(b), ms[a] / ms[b]
            out.append({"device": dev, "ghz": ghz, "runtime": rt, "threads": n, "anchor_speedup": round(speedup, 3),
                        "k": round(k, 3), "models": f"{a} / {b}", "predicted": round(pred, 3),
                        "one_thread_predicted": round(float(groups[a].sum() / groups[b].sum()), 3),
                        "measured": round(meas, 3), "error": round(pred / meas - 1, 4)})
    return out


def thread_summary(checks: list[dict]) -> dict:
    """``n``, share within ±15% and the worst |error| of :func:`thread_checks`' checks."""
    err = [abs(c["error"]) for c in checks]
    return {"n": len(err), "within_15pct": round(float(np.mean([e <= 0.15 for e in err])), 4) if err else None,
            "worst_abs_error": round(max(err), 4) if err else None}


def int8_rows(rows: list[WholeRow]) -> list[WholeRow]:
    """qed's one-core A76 rows of the TFLite int8 ("quant") plain ViTs."""
    return qed_rows(rows, dtype="int8", runtimes=("tflite",))


def _int8_config(shape):
    return preset_config(shape, "int8")


def fit_int8(a76_ref: DeviceProfile, rows8: list[WholeRow], f: dict) -> tuple[np.ndarray, dict]:
    """Scales of the int8 Linears' compute and weight terms on ``a76_ref`` (the fp32-fitted A76 profile at
    ``REF_GHZ``) from the int8 rows, and their validation: in-sample, and each model family held out."""
    factors = [to_ort_at_ref(r, f) for r in rows8]
    k8 = fit_int8_scales(a76_ref, rows8, _int8_config, factors)

    def predict(k: np.ndarray, r: WholeRow) -> float:
        return float(term_groups(a76_ref, r.shape, _int8_config(r.shape), split_int8=True) @ np.r_[1.0, k])

    target = [r.latency_ms * x for r, x in zip(rows8, factors)]
    pred_held, meas_held = [], []
    for train, test in family_splits(rows8):
        k = fit_int8_scales(a76_ref, train, _int8_config, [to_ort_at_ref(r, f) for r in train])
        pred_held += [predict(k, r) for r in test]
        meas_held += [r.latency_ms * to_ort_at_ref(r, f) for r in test]
    return k8, {"fit_rows": metrics([predict(k8, r) for r in rows8], target),
                "heldout_family": metrics(pred_held, meas_held),
                "scales_of_int8_terms": {"ns_per_mac": round(float(k8[0]), 4), "ns_per_weight": round(float(k8[1]), 4)}}


def ncnn_big_core_rows(section: str, threads: int, root: Path | None) -> list:
    """ncnn's ViT-B/32 rows of a device on its big cores: benchncnn's ``powersave`` 2 (big cores only) where
    the board has such a run, else 0 (no pinning; the A76-only boards); never 1 (little cores)."""
    rows = ncnn_vit_rows(section, threads, exclude="Overclock", root=root)
    big = [r for r in rows if r.powersave == 2]
    return big or [r for r in rows if r.powersave == 0]


def _thread_ratio(one: str, four: tuple[str, ...], root: Path | None) -> tuple[float, str]:
    r1 = ncnn_big_core_rows(one, 1, root)
    r4 = [r for s in four for r in ncnn_big_core_rows(s, 4, root)]
    t1, t4 = statistics.median(r.avg_ms for r in r1), statistics.median(r.avg_ms for r in r4)
    lines = ", ".join(f"line {r.line}" for r in r1 + r4)
    return t1 / t4, f"ncnn ViT-B/32 1 thread {t1} ms / 4 threads {t4} ms ({lines})"


def build_vit_anchored(rpi4_1t: DeviceProfile, root: Path | None = None, csv: Path = DATA_CSV) -> list[DeviceProfile]:
    """The A76 and fast-core profiles (module docstring), each with its validation figures."""
    rows = read_rows(csv)
    fit = fit_rows(rows)
    f = runtime_factors(rows)
    factors = [to_ort_at_ref(r, f) for r in fit]
    scales = fit_group_scales(rpi4_1t, fit, factors)
    pred = np.array([term_groups(rpi4_1t, r.shape) @ scales for r in fit])
    target = np.array([r.latency_ms for r in fit]) * np.array(factors)
    held, per_model = heldout_family(rpi4_1t, fit, f)
    checks = scaling_checks(per_model)
    clock = _clock_check(fit)
    a76_validation = {"fit_rows": metrics(pred, target), "heldout_family": held, "size_scaling": checks,
                      "clock_check": clock, "runtime_factors": f,
                      "group_scales_vs_rpi4_1t": dict(zip(GROUPS, (round(float(s), 4) for s in scales)))}
    k8, int8_validation = fit_int8(scale_profile(rpi4_1t, scales), int8_rows(rows), f)
    a76_validation["int8"] = int8_validation
    nf = ncnn_runtime_factor(rows, f["ort/tflite"]["median"], root)
    ok = held["within_25pct"] >= 0.8 and all(abs(c["error"]) <= 0.15 for c in checks)
    threaded = thread_checks(rpi4_1t, rows, f, "Cortex-A76")
    thread_validation = {"core": "Cortex-A76", **thread_summary(threaded), "checks": threaded,
                         "note": "the 4-thread model (gemm and weights / k, rest not sped up, k from one ViT-B/32's "
                                 "measured speed-up) on qed's 2- and 3-thread rows of the Pixel 4's A76 gold cluster; "
                                 "one-thread groups from the shipped one-thread A76 fit; no multi-thread row is fitted on"}
    ok_threaded = ok and all(abs(c["error"]) <= 0.15 for c in threaded)
    provenance = [
        {"repo": QED, "commit": "40ba833a9ca560a3035a76a5c3da504082dec001", "file": "dataset/*_transformer_e2e.csv",
         "rows_used": f"{len(fit)} one-core Cortex-A76 rows (Pixel 4 prime 2.84 / gold 2.32 GHz; "
                      f"{', '.join(sorted({r.model for r in fit}))}) via {csv.name}",
         "use": "NNLS scales of the gemm / weights / rest term groups; size-scaling checks"},
        {"repo": QED, "commit": "40ba833a9ca560a3035a76a5c3da504082dec001", "file": "dataset/tflite_transformer_e2e.csv",
         "rows_used": f"{int8_validation['fit_rows']['n']} one-core Cortex-A76 TFLite int8 ('quant') rows of the "
                      f"same models via {csv.name}",
         "use": "scales of the int8 Linears' compute and weight terms"},
        {"repo": ETP, "commit": "d17739efe50ac8d6bda4271eabfffcc13fdde6d5", "file": ".log/orin-cpu-*.log",
         "rows_used": f"LeViT-128S/128/192/256 in ONNX Runtime and TFLite on one Orin core via {csv.name}",
         "use": f"ORT / TFLite = {f['ort/tflite']['median']:.4f}"},
        {"source": f"profile {rpi4_1t.name}", "use": "per-operator structure (term shares within each group)"}]
    out = []
    for stem, device, cpu, ghz, one, four in A76_DEVICES:
        for threads in (4,) if stem == "rk3588-a76" else (1, 4):  # no one-thread ncnn row of an RK3588 board
            s = scales * (REF_GHZ / ghz)
            extra = []
            if threads == 4:
                ratio, rows_txt = _thread_ratio(one, four, root)
                s = s / np.array([ratio, ratio, 1.0])
                extra.append(f"4 threads: gemm and weights / {ratio:.4f} ({rows_txt}); rest not sped up")
            mine = [r for sec in ((one,) if threads == 1 else four) for r in ncnn_big_core_rows(sec, threads, root)]
            val = {**a76_validation, "thread_model_checks": thread_validation} if threads > 1 else a76_validation
            out.append(_profile(rpi4_1t, s, k8, stem, device, cpu, threads, ghz, provenance, extra,
                                ok_threaded if threads > 1 else ok, val, mine, nf))
    pi5 = {p.threads: p for p in out if p.name.startswith("rpi5-a76")}
    for stem, device, cpu, section in FAST_DEVICES:
        for threads, base in sorted(pi5.items()):
            mine, ref = ncnn_big_core_rows(section, threads, root), ncnn_big_core_rows("Raspberry Pi 5 Broadcom BCM2712, Cortex-A76", threads, root)
            if not mine or not ref:
                continue
            k = statistics.median(r.avg_ms for r in mine) / statistics.median(r.avg_ms for r in ref)
            prof = scale_profile(base, np.array([k, k, k]), name=f"{stem}-ort-{threads}t", device=device, cpu=cpu,
                                 confidence="low")
            val = {"anchor_only": True, "ncnn_ratio_to_rpi5": round(k, 4),
                   "ncnn_rows": [{"ms": r.avg_ms, "line": r.line} for r in mine]}
            out.append(_with(prof, provenance=[
                {"repo": NCNN_REPO, "commit": NCNN_COMMIT, "file": NCNN_FILE,
                 "rows_used": "; ".join(f"'{r.device[:50]}' {r.avg_ms} ms (line {r.line})" for r in mine + ref),
                 "use": f"{device} / Raspberry Pi 5 at {threads} thread(s) = {k:.4f}"},
                {"source": f"profile {base.name}", "use": f"every term x {k:.4f}"}],
                assumptions=[(f"every term = {base.name} x {k:.4f}, the ncnn ViT-B/32 time ratio of the two devices "
                              "(same model and runtime, both with ncnn's fp16 arithmetic): the A76's term shares are "
                              "assumed for this core"), *(a for a in base.assumptions if not a.startswith("time scales with"))],
                validation=val, notes="Low confidence: calibrate with `maec measure --export-kit` on the device."))
    return out


def _clock_check(fit: list[WholeRow]) -> dict:
    """Time x GHz on the Pixel 4's prime (2.84) and gold (2.32) A76 for the same model and runtime."""
    by = {}
    for r in fit:
        by.setdefault((r.model, r.runtime), {})[r.ghz] = r.latency_ms
    ratios = [d[2.32] * 2.32 / (d[2.84] * 2.84) for d in by.values() if 2.32 in d and 2.84 in d]
    return {"gold_over_prime_time_x_ghz_median": round(statistics.median(ratios), 4),
            "range": [round(min(ratios), 4), round(max(ratios), 4)], "pairs": len(ratios)}


def _with(prof: DeviceProfile, **fields) -> DeviceProfile:
    return DeviceProfile(**{**prof.to_dict(), **fields})


def _profile(base: DeviceProfile, s: np.ndarray, k8: np.ndarray, stem: str, device: str, cpu: str, threads: int,
             ghz: float, provenance: list, extra: list[str], ok: bool, a76_validation: dict,
             ncnn_rows: list, ncnn_factor: dict) -> DeviceProfile:
    prof = scale_int8(scale_profile(base, s), float(k8[0]), float(k8[1]), name=f"{stem}-ort-{threads}t", device=device,
                      cpu=cpu, threads=threads, runtime=f"ONNX Runtime CPU EP, exported model, {threads} intra-op thread(s)",
                      confidence="medium" if ok else "low")
    f = a76_validation["runtime_factors"]
    assumptions = [
        (f"the A76 core fitted on whole ViTs in TFLite / PyTorch Mobile, moved to ONNX Runtime by measured factors "
         f"(ORT / TFLite {f['ort/tflite']['median']:.3f} on LeViT, range over all 29 Orin models "
         f"{f['ort/tflite']['spread_all_models']['range'][0]:.2f}-{f['ort/tflite']['spread_all_models']['range'][1]:.2f}; "
         f"PyTorch Mobile / TFLite {f['pytorch-mobile/tflite']['median']:.3f})"),
        f"time scales with 1 / clock: fitted at {REF_GHZ} GHz, this device's core {ghz} GHz",
        (f"int8 Linears: compute x {k8[0]:.4f} and weights x {k8[1]:.4f} of the fp32-fitted profile's int8 terms, "
         f"fitted on {a76_validation['int8']['fit_rows']['n']} one-core TFLite int8 rows (quantization method not "
         "stated, most likely dynamic-range: int8 weights, activations quantized per call, as w8a32 here); ORT / "
         "TFLite for int8 assumed equal to the fp32 factor; static int8 (w8a8) scaled the same (assumed); int4 and "
         "fp16 keep the Pi 4 profile's ratios"),
        *extra]
    val = dict(a76_validation)
    if ncnn_rows:
        from evaluators.latency.fit.sources import ncnn_vit_ops
        from evaluators.latency.predict.predictor import LatencyPredictor

        pred = LatencyPredictor(prof).predict_ops_ms(ncnn_vit_ops())
        meas = statistics.median(r.avg_ms for r in ncnn_rows)
        # independent only where no part of this profile comes from that row: the 4-thread speed-up is ncnn's
        # 1 / 4-thread ratio, and the Snapdragon 855+ one-thread row measures the ncnn factor itself
        anchor = threads == 4 or stem == "snapdragon-855plus"
        val["ncnn_cross_check"] = {"model": "ViT-B/32 @ 384 (145 tokens)", "threads": threads, "predicted_ms": round(pred, 2),
                                   "ncnn_measured_ms": meas, "ratio_predicted_over_ncnn": round(pred / meas, 4),
                                   **ncnn_factor_fields(pred, meas, ncnn_factor, "fp16"),
                                   "independent": not anchor, "lines": [r.line for r in ncnn_rows],
                                   **({"not_independent_because": "its 4-thread speed-up is ncnn's 1 / 4-thread ratio"
                                       if threads == 4 else "that row measures the ncnn factor"} if anchor else {}),
                                   "note": "ncnn runs fp16 arithmetic here; ncnn / ORT from the one same-model pair "
                                           "(ncnn_factor_pair)"}
    return _with(prof, provenance=provenance, assumptions=assumptions, validation=val,
                 notes="Fitted on whole-ViT rows of a phone A76 (Pixel 4); validation: leave one model family out.")
