"""Issue 14: the latency profiles against measured whole-model ARM latencies (evaluators/latency/data).

Prints, from the project's CSV of published measurements (no timing here; seconds):

1. the runtime transfer factors, from rows where the same model ran in two runtimes on one device;
2. the Cortex-A76 fit behind the shipped A76 profiles: every model family left out in turn (DeiT / ViT /
   ViT-MSN) and predicted from the others, MAPE and the shares within ±10% / ±25%, and the size-scaling
   checks (latency ratio of two models on the same core, runtime and threads) from those held-out fits;
3. the same method per core and runtime on every core class in the data (A76, A75, Samsung M4, A55, A53;
   only the A76 is shipped), so that the model form is judged on cores it was not built for;
4. held-out sources: every shipped profile against the rows of other sources on its own device (ncnn's
   ViT-B/32 at 384 px, NetsPresso's ViT-Tiny), predicted / measured, with the runtime factor stated;
5. the default profile (Raspberry Pi 4) against the whole-ViT rows that exist for the A72, and its
   size-scaling against the nearest core class with multi-size rows (A75).

    .venv/bin/python benchmarks/latency_arm_validation.py
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from evaluators.latency.derive.build import default_model_ms, default_model_shape
from evaluators.latency.derive.vit_anchored import (
    QED,
    REF_GHZ,
    SCALING,
    fit_rows,
    heldout_family,
    qed_rows,
    runtime_factors,
    scaling_checks,
    to_ort_at_ref,
)
from evaluators.latency.fit.whole_model import fit_group_scales, read_rows, scale_profile, term_groups
from evaluators.latency.predict.predictor import LatencyPredictor
from evaluators.latency.predict.profile import DEFAULT_PROFILE, load_profile

BIG_CORES = ("Cortex-A76", "Cortex-A75", "Samsung M4")  # out-of-order: the bound on the A72's groups

# shipped profile -> (device text in the CSV rows, threads)
DEVICE_ROWS = {"rpi4-a72-ort-1t": ("Raspberry Pi 4", 1), "rpi4-a72-ort-4t": ("Raspberry Pi 4", 4),
               "rpi5-a76-ort-1t": ("Raspberry Pi 5", 1), "rpi5-a76-ort-4t": ("Raspberry Pi 5", 4),
               "snapdragon-855plus-ort-1t": ("Snapdragon 855+", 1), "snapdragon-855plus-ort-4t": ("Snapdragon 855+", 4),
               "rk3588-a76-ort-4t": ("RK3588", 4), "snapdragon-8gen2-ort-1t": ("Snapdragon 8 Gen 2", 1),
               "snapdragon-8gen2-ort-4t": ("Snapdragon 8 Gen 2", 4), "dimensity-9300-ort-1t": ("Dimensity 9300", 1),
               "dimensity-9300-ort-4t": ("Dimensity 9300", 4)}


def fmt(m: dict) -> str:
    return (f"MAPE {100 * m['mape']:5.1f}%, within ±10% {100 * m['within_10pct']:5.1f}%, within ±25% "
            f"{100 * m['within_25pct']:5.1f}% (n={m['n']}), median predicted/measured {m['median_ratio']:.3f}")


def main() -> int:
    rows = read_rows()
    base = load_profile("rpi4-a72-ort-1t")
    f = runtime_factors(rows)
    print("## 1. Runtime transfer factors (same model, device, cores and threads)\n")
    for name, d in f.items():
        print(f"- {name}: median {d['median']:.3f}, range {d['range'][0]:.3f}-{d['range'][1]:.3f}, {d['pairs']} pairs "
              f"({', '.join(d['models'][:4])}{'...' if len(d['models']) > 4 else ''}; {d['source']})")
        if "spread_all_models" in d:
            s = d["spread_all_models"]
            print(f"  over all {s['pairs']} models on that device: median {s['median']:.3f}, range "
                  f"{s['range'][0]:.3f}-{s['range'][1]:.3f} (CNNs and conv-heavy hybrids run relatively faster in ORT)")

    print(f"\n## 2-3. Leave one model family out, per core class (one core, fp32, qed; times to ORT at {REF_GHZ} GHz)\n")
    print("| core class | rows | group scales (gemm, weights, rest) x Pi 4 profile | held out by family | "
          "size scaling, held-out fits: predicted / measured (error) |")
    print("|---|---|---|---|---|")
    worst_scaling, held_all = 0.0, []
    settings = [("Cortex-A76, both runtimes (shipped)", fit_rows(rows))]
    for core in ("Cortex-A76", "Cortex-A75", "Samsung M4", "Cortex-A55", "Cortex-A53"):
        for rt in ("tflite", "pytorch-mobile"):
            settings.append((f"{core}, {rt}", [r for r in qed_rows(rows, core) if r.runtime == rt]))
    fitted: dict[str, np.ndarray] = {}  # label -> group scales, reused for the default profile's bounds (section 5)
    for label, cr in settings:
        scales = fitted[label] = fit_group_scales(base, cr, [to_ort_at_ref(r, f) for r in cr])
        held, per_model = heldout_family(base, cr, f)
        checks = scaling_checks(per_model)
        if "shipped" not in label:  # the pooled A76 rows are the union of the two A76 settings below it
            held_all.append(held)
            worst_scaling = max([worst_scaling] + [abs(c["error"]) for c in checks])
        sc = "; ".join(f"{_short(c['models'])} {c['predicted']:.2f} / {c['measured']:.2f} ({100 * c['error']:+.0f}%)"
                       for c in checks)
        print(f"| {label} | {len(cr)} | {', '.join(f'{s:.3f}' for s in scales)} | {fmt(held)} | {sc} |")
    i8 = load_profile("rpi5-a76-ort-1t").validation["int8"]
    print(f"\nint8 Linears on the A76 (TFLite int8 rows, {i8['fit_rows']['n']}; fitted on the fp32 A76 fit, two scales "
          f"{i8['scales_of_int8_terms']['ns_per_mac']:.3f} x compute, {i8['scales_of_int8_terms']['ns_per_weight']:.3f} x "
          f"weights): each family held out {fmt(i8['heldout_family'])}")
    n = sum(h["n"] for h in held_all)
    share25 = sum(h["within_25pct"] * h["n"] for h in held_all) / n
    print(f"\nall core x runtime settings: {n} held-out rows, {100 * share25:.1f}% within ±25% (target >= 80%); "
          f"worst size-scaling error {100 * worst_scaling:.1f}% (target <= 15%)")

    print("\n## 4. Shipped profiles against other sources' rows on their own device (held-out sources)\n")
    print("| profile | source row | measured ms | predicted ms | predicted / measured | runtime factor |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for name, (dev, threads) in DEVICE_ROWS.items():
        pred = LatencyPredictor(name)
        for r in rows:
            if r.shape is None or dev not in r.device or r.source == QED:
                continue
            if r.threads is not None and r.threads != threads:
                continue
            if r.dtype == "int8":
                continue
            p = pred.predict_ms(r.shape, global_pool="token") if r.source == "Tencent/ncnn" else pred.predict_ms(r.shape)
            stated = {"ncnn": "none known (ncnn fp16, own attention)",
                      "tflite": "none (fp16-weight TFLite, threads not stated)"}.get(r.runtime, "none")
            ratios.append(p / r.latency_ms)
            print(f"| {name} | {r.model} {r.runtime} {r.dtype}, {r.threads or '?'} thread(s) ({r.source}) | "
                  f"{r.latency_ms:.1f} | {p:.1f} | {p / r.latency_ms:.3f} | {stated} |")
    rr = np.array(ratios)
    print(f"\n{len(rr)} rows: within ±25% {100 * np.mean(np.abs(rr - 1) <= 0.25):.0f}%, median predicted/measured "
          f"{np.median(rr):.3f} (no runtime factor applied: none is measured for these runtimes)")

    print(f"\n## 5. The default profile ({DEFAULT_PROFILE}) and the A72\n")
    pred = LatencyPredictor(DEFAULT_PROFILE)
    a75 = qed_rows(rows, "Cortex-A75")
    top = max(r.ghz for r in a75)
    for rt in ("tflite", "pytorch-mobile"):
        meas = {r.model: r.latency_ms for r in a75 if r.ghz == top and r.runtime == rt}
        for a, b in SCALING:
            pa, pb = (pred.predict_ms(next(r.shape for r in a75 if r.model == m)) for m in (a, b))
            err = (pa / pb) / (meas[a] / meas[b]) - 1
            print(f"- size scaling {_short(a + ' / ' + b)}: default profile {pa / pb:.2f}, measured on an A75 @ {top} GHz "
                  f"({rt}) {meas[a] / meas[b]:.2f}: {100 * err:+.0f}%")
    # what the weight-streaming term (HAT's PyTorch eager, where ORT prepacks) is worth for the default model
    big = np.array([sc for label, sc in fitted.items() if label.split(",")[0] in BIG_CORES and "shipped" not in label])
    (lo, r_lo), (hi, r_hi) = big[:, 1:].min(axis=0), big[:, 1:].max(axis=0)
    print(f"- the embedded default model: {default_model_ms(base):.1f} ms now; with the weight-streaming group scaled as "
          f"the fitted big cores scale it ({lo:.3f}-{hi:.3f} of the Pi 4 profile's, section 2-3) "
          f"{default_model_ms(scale_profile(base, np.array([1, lo, 1]))):.1f}"
          f"-{default_model_ms(scale_profile(base, np.array([1, hi, 1]))):.1f} ms: the bound on what the unverified term moves")
    g = term_groups(base, default_model_shape())
    print(f"- its term groups (gemm, weights, rest): {', '.join(f'{x:.1f}' for x in g)} ms; the rest is the host "
          f"reference x 5 (an assumption); the big cores' fits put their rest at {r_lo:.2f}-{r_hi:.2f}x it (at 2.4 GHz, "
          f"ORT-equivalent), which would make the default model {g[0] + g[1] + r_lo * g[2]:.1f}-{g[0] + g[1] + r_hi * g[2]:.1f} ms "
          f"with the other groups as they are")
    return 0


def _short(pair: str) -> str:
    """'deit-small-distilled-patch16-224 / deit-tiny-...' -> 'DeiT-S/T'-style labels."""
    names = {"deit-tiny": "DeiT-T", "deit-small": "DeiT-S", "deit-base": "DeiT-B", "vit-base-patch32": "ViT-B/32",
             "vit-base-patch16": "ViT-B/16"}
    out = []
    for m in pair.split(" / "):
        out.append(next((v for k, v in names.items() if m.startswith(k)), m))
    return " / ".join(out)


if __name__ == "__main__":
    sys.exit(main())
