"""Build the shipped device profiles from the shared ARM measurements (never copied into the project).

    python -m evaluators.latency.derive.build            # rewrite evaluators/latency/profiles/*.json
    python -m evaluators.latency.derive.build --check    # rebuild in memory, compare with the shipped files

Raspberry Pi 4 (default, ``rpi4-a72-ort-1t``; and ``rpi4-a72-ort-4t``): the exported model under
ONNX Runtime on the Pi 4's Cortex-A72 cores.

1. Core GEMM terms (``linear/fp32`` ``ns_per_mac``, ``ns_per_weight``) from the HAT fit at 4 threads
   (PyTorch's default on the 4-core Pi), held-out figures and FLOPs baselines on the same rows. The
   framework's fixed ~60-80 ms and its per-layer / per-step costs stay in the HAT fit: they are not
   part of either profile.
2. One thread: every GEMM term x the ncnn ViT-B/32 1-thread / 4-thread time ratio measured on a
   Raspberry Pi 4 (the only thread-scaling measurement of a ViT on an A72).
3. ONNX Runtime's per-operator and per-call overhead and the non-GEMM terms from the host reference
   (:mod:`evaluators.latency.derive.priors`), moved to the A72 as stated there.
4. Quantized Linears: int8 x Paddle-Lite's median int8/fp32 ratio on the A72 (CNN prior), fp16 exact
   (runs as fp32), int4 assumed (priors).
5. Cross-check: the ncnn ViT-B/32 at 384 px on the Pi 4, predicted / measured (another runtime on
   the same CPU model, at 1.8 GHz where HAT's board clock is not recorded).
6. The shipped Pi 4 profiles: steps 1-4 with their GEMM-compute, weight-streaming and other term groups
   rescaled on whole DeiT/ViT Tiny/Small/Base timed on a Pi 4 (:mod:`evaluators.latency.derive.rpi4_whole`,
   each size held out); ``build_rpi4_profiles`` returns both.

Other devices: :mod:`evaluators.latency.derive.vit_anchored` -- the Cortex-A76 boards and phones fitted on
measured whole ViTs of a phone A76 (three term groups of the Pi 4 profile rescaled, held out by model
family), the Cortex-X phones relative to the Pi 5 by their ncnn ViT-B/32 times.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from evaluators.latency.derive import priors
from evaluators.latency.derive.rpi4_whole import refit_rpi4
from evaluators.latency.derive.vit_anchored import build_vit_anchored, ncnn_factor
from evaluators.latency.fit.hat_fit import TRANSFERRED, HatFit, fit_hat, hat_provenance
from evaluators.latency.fit.snp_pruned import PRUNED, SNP_REPO, row_ops
from evaluators.latency.fit.sources import (
    NCNN_COMMIT,
    NCNN_FILE,
    NCNN_REPO,
    PADDLE_COMMIT,
    PADDLE_FILE,
    PADDLE_REPO,
    arm_latency_dir,
    ncnn_vit_ops,
    ncnn_vit_rows,
    paddle_ratios,
)
from evaluators.latency.fit.whole_model import DATA_CSV, ncnn_factor_fields, read_rows
from evaluators.latency.predict.profile import SHIPPED_DIR, DeviceProfile

GEMM_KINDS = ("linear", "conv", "attention")
PI4_NCNN = "Raspberry Pi 4 Model B"
DEFAULT_MODEL = "mae_vit_tiny_p4_28"

def _ref() -> dict:
    if not priors.HOST_REFERENCE:
        raise RuntimeError("priors.HOST_REFERENCE is empty: run benchmarks/latency_host_proof.py --print-reference")
    return priors.HOST_REFERENCE


def ort_parts(c_mac: float, c_w: float, int8_ratio: float) -> tuple[dict, dict, float]:
    """``(core, op_us, call_us)`` of ONNX Runtime on an A72 whose fp32 GEMM costs ``c_mac`` ns per MAC
    and ``c_w`` ns per weight (see the module docstring and :mod:`priors` for every other term)."""
    ref = _ref()
    slow = priors.A72_SLOWDOWN_NON_GEMM
    host_lin = ref["core"]["linear/fp32"]
    core: dict[str, dict[str, float]] = {}
    for key, d in ref["core"].items():
        kind, dtype = key.split("/")
        out = {f: v * slow for f, v in d.items()}  # non-GEMM terms by default
        if kind == "linear":
            mac_f, w_f = {"fp32": (1.0, 1.0), "fp16": (priors.FP16_FACTOR, priors.FP16_FACTOR),
                          "w8a32": (int8_ratio, 8 / 32), "w8a8": (int8_ratio, 8 / 32),
                          "w4a32": (priors.INT4_COMPUTE_FACTOR, priors.INT4_WEIGHT_FACTOR),
                          "w4a8": (priors.INT4_COMPUTE_FACTOR, priors.INT4_WEIGHT_FACTOR)}[dtype]
            out["ns_per_mac"], out["ns_per_weight"] = c_mac * mac_f, c_w * w_f
        elif kind in ("conv", "attention"):
            out["ns_per_mac"] = c_mac * d["ns_per_mac"] / host_lin["ns_per_mac"]
            if "ns_per_weight" in d:
                out["ns_per_weight"] = c_w * d["ns_per_weight"] / max(host_lin["ns_per_weight"], 1e-12)
        core[key] = out
    op_us = {k: v * slow for k, v in ref["op_us"].items()}
    # fp16 weights run the fp32 kernels after ORT folds the Cast (priors.FP16_FACTOR = 1): identical, not
    # a separately measured (noisy) host row
    core["linear/fp16"] = {f: v * priors.FP16_FACTOR for f, v in core["linear/fp32"].items()}
    op_us["linear/fp16"] = op_us["linear/fp32"]
    return core, op_us, ref["call_us"] * slow


def _predict_ms(profile: DeviceProfile, ops) -> float:
    from evaluators.latency.predict.predictor import LatencyPredictor

    return LatencyPredictor(profile).predict_ops_ms(ops)


def default_model_shape():
    """``mae.model.MODEL_PRESETS["mae_vit_tiny_p4_28"]``'s classifier as plain data (no torch import here)."""
    from spaces.shape import BlockShape, ModelShape

    return ModelShape(name=DEFAULT_MODEL, img_size=28, patch_size=4, in_chans=1, embed_dim=192, num_classes=10,
                      blocks=tuple(BlockShape(192, 3, 64, 768) for _ in range(6)))


def default_model_ms(profile: DeviceProfile) -> float:
    from evaluators.latency.predict.predictor import LatencyPredictor

    return LatencyPredictor(profile).predict_ms(default_model_shape())


def build_rpi4(root: Path | None = None, *, seed: int = 0, heldout_frac: float = 0.2) -> tuple[list[DeviceProfile], HatFit]:
    fit = fit_hat([(root or arm_latency_dir()) / "hat-raspberrypi" / Path(f).name for f in
                   ("wmt14ende_cpu_raspberrypi_all.csv", "wmt14enfr_cpu_raspberrypi_all.csv")],
                  seed=seed, heldout_frac=heldout_frac)
    c_mac, c_w = (fit.coefs[c] for c in TRANSFERRED)
    t4 = ncnn_vit_rows(PI4_NCNN, 4, powersave=0, root=root)[0]
    t1 = ncnn_vit_rows(PI4_NCNN, 1, powersave=0, root=root)[0]
    thread_f = t1.avg_ms / t4.avg_ms
    p8 = paddle_ratios("Cortex-A72", root)["int8"]
    hat_fig = {"heldout_encoder": fit.heldout["hat-encoder"], "heldout_decoder": fit.heldout["hat-decoder"],
               "baselines_encoder": fit.baselines, "baseline_coefficients": {
                   "flops_proportional_ms_per_gmac": fit.baseline_coefs["flops_proportional"],
                   "flops_affine_ms_and_ms_per_gmac": fit.baseline_coefs["flops_affine"]},
               "framework_terms_ms": {c[1]: round(v, 4) for c, v in fit.coefs.items() if c[0] == "extra"},
               "seed": seed, "heldout_frac": heldout_frac}
    out = []
    for threads, f in ((1, thread_f), (4, 1.0)):
        core, op_us, call_us = ort_parts(c_mac * f, c_w * f, p8["ratio"])
        prof = DeviceProfile(
            name=f"rpi4-a72-ort-{threads}t", device="Raspberry Pi 4 Model B",
            cpu="4x Arm Cortex-A72 (BCM2711), 1.5 GHz (1.8 GHz on boards from 2020)",
            runtime=f"ONNX Runtime CPU EP, exported model (toolkit.export), {threads} intra-op thread(s)",
            threads=threads, confidence="medium", core=core,
            overhead={"runtime": "ONNX Runtime CPU EP (host reference x A72 slowdown)", "op_us": op_us, "call_us": call_us},
            provenance=hat_provenance(fit) + [
                {"repo": NCNN_REPO, "commit": NCNN_COMMIT, "file": NCNN_FILE,
                 "rows_used": f"ViT-B/32 on '{t4.device[:60]}': 4 threads {t4.avg_ms} ms (line {t4.line}), "
                              f"1 thread {t1.avg_ms} ms (line {t1.line})",
                 "use": f"1-thread factor {thread_f:.4f} on the GEMM terms; cross-check"},
                {"repo": PADDLE_REPO, "commit": PADDLE_COMMIT, "file": PADDLE_FILE,
                 "rows_used": f"RK3399 (Cortex-A72), 1 thread, fp32 and int8 of {', '.join(p8['models'])}",
                 "use": f"int8/fp32 = {p8['ratio']} (median, CNN prior) on linear int8 ns_per_mac"},
                {"source": "host reference (priors.HOST_REFERENCE)", "rows_used": priors.HOST_REFERENCE_SOURCE,
                 "use": "ONNX Runtime per-operator / per-call overhead, non-GEMM terms, attention / conv GEMM ratios"}],
            validation={}, assumptions=_assumptions(threads, thread_f, p8["ratio"]),
            notes="")
        dflt = default_model_ms(prof)
        validation = {
            "heldout": fit.heldout["hat-encoder"],
            "heldout_note": "HAT encoder rows held out (seeded split) predicted by the same core terms plus the "
                            "fitted PyTorch framework terms; ONNX Runtime overheads and non-GEMM terms are priors",
            "hat": hat_fig,
            "ncnn_cross_check": ncnn_cross_check(prof, root),
            "default_model": {"model": f"{DEFAULT_MODEL} classifier, uncompressed", "predicted_ms": round(dflt, 3),
                              "ratio_to_20ms_budget": round(dflt / 20.0, 3)}}
        dropped = {f: {k: len(v) for k, v in r["dropped"].items()} for f, r in fit.rows.items()}
        notes = ("HAT outliers dropped by rule, not by fit: the disturbed start-up run of a file (rows up to the last "
                 "20-row window with a median > 2x the file median), rows > 2x the file median or with std > 25% of "
                 f"the mean ({dropped}). HAT's PyTorch super-network fixed cost (~57 ms per forward) and "
                 "per-step costs are fitted as framework terms and excluded here. "
                 f"Default-model prediction {dflt:.1f} ms ({dflt / 20:.2f}x a 20 ms budget). "
                 + ("The default profile is 1 thread: at 4 threads the honest prediction is below 30 ms "
                    "(see rpi4-a72-ort-4t), and one core is what an app gets on a busy board."
                    if threads == 1 else "Four threads: the whole CPU of the board."))
        out.append(DeviceProfile(**{**prof.to_dict(), "validation": validation, "notes": notes}))
    return out, fit


def ncnn_cross_check(prof: DeviceProfile, root: Path | None = None) -> dict:
    """``prof`` (a Pi 4 profile) against ncnn's ViT-B/32 at 384 px on a Pi 4 at its thread count."""
    meas = ncnn_vit_rows(PI4_NCNN, prof.threads, powersave=0, root=root)[0].avg_ms
    pred = _predict_ms(prof, ncnn_vit_ops())
    nf = ncnn_factor(read_rows(), root)
    return {"model": "ViT-B/32 @ 384 (145 tokens)", "threads": prof.threads, "predicted_ms": round(pred, 2),
            "ncnn_measured_ms": meas, "ratio_predicted_over_ncnn": round(pred / meas, 4),
            **ncnn_factor_fields(pred, meas, nf, "fp32"),  # the A72 has no fp16 arithmetic: ncnn runs fp32
            "independent": prof.threads == 4,
            **({} if prof.threads == 4 else {"not_independent_because": "its 1-thread factor is ncnn's 1 / 4-thread ratio"})}


SNP = SNP_REPO  # DeiT-T/S/B and 4 SNP-pruned ones, batch 1, `.onnx` on a Pi 4 (PROVENANCE.md 10): held out


def onnx_pi4_check(prof: DeviceProfile, csv: Path = DATA_CSV) -> dict:
    """``prof`` (a Pi 4 profile) against SNP's batch-1 ONNX rows on a Pi 4 (threads inferred: 4), which no profile
    is fitted on: DeiT-T/S/B and their SNP-pruned versions (per-layer q/k, v/out, MLP and residual widths).
    Predicted / measured per model, the two size-scaling checks and the four pruning speed-ups (unpruned over
    pruned time, the same device, runtime and threads). The 1-thread profile has no rows of its own there; its
    entry says so (its GEMM terms are the 4-thread ones x the ncnn thread ratio)."""
    if prof.threads != 4:
        return {"source": SNP, "rows": 0, "note": "the rows ran on 4 threads (inferred): see rpi4-a72-ort-4t, whose "
                "refit this profile shares (GEMM terms x the ncnn 1-thread / 4-thread ratio)"}
    rows = {r.model: r for r in read_rows(csv) if r.source == SNP and (r.shape is not None or r.model in PRUNED)}
    pred = {m: _predict_ms(prof, row_ops(m, r.shape)) for m, r in rows.items()}
    ratio = np.array([pred[m] / r.latency_ms for m, r in rows.items()])

    def check(a: str, b: str) -> dict:
        pr, me = pred[a] / pred[b], rows[a].latency_ms / rows[b].latency_ms
        return {"pair": f"{a} / {b}", "predicted": round(pr, 3), "measured": round(me, 3), "error": round(pr / me - 1, 4)}

    return {"source": SNP, "rows": len(rows), "setting": "batch 1, ONNX (runtime and 4 threads inferred), fp32, 224 px",
            "ratio_predicted_over_measured": {m: round(float(v), 4) for m, v in zip(rows, ratio)},
            "within_25pct": round(float(np.mean(np.abs(ratio - 1) <= 0.25)), 4),
            "size_scaling": [check("deit-small-patch16-224", "deit-tiny-patch16-224"),
                             check("deit-base-patch16-224", "deit-small-patch16-224")],
            "pruning_speedup": [check(PRUNED[m][1], m) for m in PRUNED if m in rows]}


def _assumptions(threads: int, thread_f: float, int8_ratio: float) -> list[str]:
    a = [
        ("GEMM core terms measured through PyTorch eager (HAT) transfer to ONNX Runtime's MLAS kernels on the same "
         "core; ns_per_weight is taken at face value although ORT prepacks constant weights (likely conservative)"),
        f"non-GEMM terms and ORT overheads: host reference x {priors.A72_SLOWDOWN_NON_GEMM} (priors.py)",
        (f"int8 Linears: compute x {int8_ratio} (Paddle-Lite RK3399 CNN median, a prior from CNN data), weights 1/4 "
         "of the fp32 bytes; int8 activation quantization cost from the host reference"),
        (f"int4 Linears (MatMulNBits without accuracy_level): compute x {priors.INT4_COMPUTE_FACTOR}, weight streaming "
         f"x {priors.INT4_WEIGHT_FACTOR:.3f} -- an assumption until measured on an ARM CPU"),
        "fp16 Linears run as fp32 (the export folds the Cast; the A72 has no fp16 arithmetic): factor 1, exact",
        "a lower bit-width predicted slower than a more precise kernel is priced at the faster kernel (envelope)",
    ]
    if threads == 1:
        a.insert(1, f"1 thread = 4-thread GEMM terms x {thread_f:.4f}, the ncnn ViT-B/32 1-thread/4-thread ratio "
                    "on a Pi 4; non-GEMM terms are not assumed to speed up with threads")
    return a


def build_rpi4_profiles(root: Path | None = None, *, seed: int = 0,
                        heldout_frac: float = 0.2) -> tuple[list[DeviceProfile], list[DeviceProfile], HatFit]:
    """``(shipped Pi 4 profiles, the HAT-based ones before the whole-ViT refit, the HAT fit)``."""
    hat, fit = build_rpi4(root, seed=seed, heldout_frac=heldout_frac)
    refit = [replace(p, validation={**p.validation, "ncnn_cross_check": ncnn_cross_check(p, root),
                                    "heldout_onnx_pi4": onnx_pi4_check(p)})
             for p in refit_rpi4(hat, default_model_ms)]
    return refit, hat, fit


def build_all(root: Path | None = None) -> list[DeviceProfile]:
    rpi4, hat, _ = build_rpi4_profiles(root)
    # the A76 profiles take the HAT-based structure: their own group fit makes them the same either way
    return rpi4 + build_vit_anchored(next(p for p in hat if p.threads == 1), root)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    p.add_argument("--out", type=Path, default=SHIPPED_DIR)
    args = p.parse_args(argv)
    profiles = build_all()
    bad = 0
    for prof in profiles:
        path = args.out / f"{prof.name}.json"
        same = path.is_file() and same_profile(DeviceProfile.load(path), prof)
        if args.check:
            bad += not same
            print(f"{'same' if same else 'DIFFERS'}: {path}")
        elif same:  # not rewritten: a rebuild on another CPU would only move the last bits
            print(f"unchanged: {path}")
        else:
            prof.save(path)
            print(f"wrote {path}: {prof.summary()}")
    return 1 if bad else 0


def rounded(obj, digits: int = 12):
    """``obj`` with every float rounded to ``digits`` significant digits (nested dicts and lists)."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [rounded(v, digits) for v in obj]
    return obj


def same_profile(a: DeviceProfile, b: DeviceProfile) -> bool:
    """Equal up to the last bits of the least-squares fits, which depend on the CPU's BLAS kernels (AVX2
    and AVX-512 hosts differ in the 16th digit); everything else exactly."""
    return rounded(a.to_dict()) == rounded(b.to_dict())


if __name__ == "__main__":
    sys.exit(main())
