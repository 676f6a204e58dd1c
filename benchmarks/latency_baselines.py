"""Our per-operator latency model against FLOPs- and parameter-proportional baselines, per shipped profile.

    .venv/bin/python benchmarks/latency_baselines.py

For every profile in ``evaluators/latency/profiles/`` the rows and the seeded split are the ones its own
validation used, rebuilt from ../shared/arm-latency as ``python -m evaluators.latency.derive.build`` does:

* Raspberry Pi 4 profiles: HAT's encoder rows held out by the recorded seed / fraction (the fit is the
  4-thread PyTorch one, so the 1-thread profile shows the same figures), then the ncnn ViT-B/32
  cross-check (n=1; the baselines' k from the same HAT training rows, x the 1-thread factor at 1 thread).
  Baselines: latency = k x MACs and k x Linear weights, k by least squares on relative error
  (:func:`evaluators.latency.fit.fit.proportional_baseline`); the affine a + k x MACs of ``hat_fit`` in the notes.
* Cortex-A76 profiles: whole ViTs measured on a phone A76 (qed-usc/mobile-ml-benchmark), each model family
  held out in turn; the baselines k x MACs and k x Linear weights fitted on the same split.
* Cortex-X phones: the Pi 5 profile x their ncnn ViT-B/32 ratio, recomputed; nothing is held out, and a
  baseline fitted to rows of a single model has nothing to be scored on.

Cells: held-out MAPE / share within ±10% (n). "recorded" compares the recomputed figures with the
profile's ``validation``. Cheap: reads CSVs and fits a few least-squares problems (seconds).
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluators.latency.derive.build import PI4_NCNN
from evaluators.latency.derive.vit_anchored import (
    FAST_DEVICES,
    family_splits,
    fit_rows,
    heldout_family,
    ncnn_big_core_rows,
    runtime_factors,
    to_ort_at_ref,
)
from evaluators.latency.fit.fit import metrics, proportional_baseline
from evaluators.latency.fit.hat_fit import fit_hat
from evaluators.latency.fit.sources import hat_macs, hat_params, ncnn_vit_ops, ncnn_vit_rows
from evaluators.latency.fit.whole_model import read_rows
from evaluators.latency.measure.ort_timing import machine_summary
from evaluators.latency.predict.ops import total_macs
from evaluators.latency.predict.predictor import LatencyPredictor
from evaluators.latency.predict.profile import SHIPPED_DIR, DeviceProfile

Row = tuple[str, str, str, str, str, str, str]  # profile, rows, ours, recorded, k*MACs, k*params, notes


def cell(m: dict) -> str:
    return f"{100 * m['mape']:.2f}% / {100 * m['within_10pct']:.1f}% (n={m['n']})"


def same(recomputed: dict, recorded: dict | None) -> bool:
    keys = ("mape", "within_10pct", "n")
    return recorded is not None and all(recomputed[k] == recorded.get(k) for k in keys)


def pi4_rows(prof: DeviceProfile, cache: dict) -> list[Row]:
    """HAT held-out rows and the ncnn ViT-B/32 cross-check of a Raspberry Pi 4 profile."""
    v = prof.validation
    seed, frac = v["hat"]["seed"], v["hat"]["heldout_frac"]
    if (seed, frac) not in cache:
        fit = fit_hat(seed=seed, heldout_frac=frac)  # the same files and split as shipped.build_rpi4
        tr = [s for s in fit.train if s.group == "hat-encoder"]
        te = [s for s in fit.test if s.group == "hat-encoder"]
        cache[(seed, frac)] = (fit, proportional_baseline(tr, te, hat_macs), proportional_baseline(tr, te, hat_params))
    fit, (m_mac, k_mac), (m_par, k_par) = cache[(seed, frac)]
    ours = fit.heldout["hat-encoder"]
    rec_base = v["hat"]["baselines_encoder"]
    checks = [("ours", same(ours, v.get("heldout"))), ("k·MACs", same(m_mac, rec_base.get("flops_proportional"))),
              ("affine", same(fit.baselines["flops_affine"], rec_base.get("flops_affine")))]
    recorded = ("same" if all(ok for _, ok in checks)
                else "DIFFERS: " + ", ".join(n for n, ok in checks if not ok) + f" (recorded ours {cell(v['heldout'])})")
    aff = fit.baselines["flops_affine"]
    a_ms = fit.baseline_coefs["flops_affine"][0]
    hat = (prof.name, f"HAT Pi 4 encoder, PyTorch 4 threads; held out {frac:.0%} (seed {seed})", cell(ours), recorded,
           cell(m_mac) + f", k={k_mac * 1e9:.0f} ms/GMAC", cell(m_par) + f", k={k_par * 1e6:.2f} ms/M weights",
           f"affine a + k·MACs {cell(aff)}, a={a_ms:.1f} ms (framework fixed cost)"
           + ("; same HAT fit as the 4-thread profile" if prof.threads == 1 else ""))
    # ncnn ViT-B/32 @ 384 on the Pi 4 at the profile's thread count (another runtime on the same CPU)
    x = v["ncnn_cross_check"]
    t = {th: ncnn_vit_rows(PI4_NCNN, th, powersave=0)[0] for th in (1, 4)}
    meas = t[prof.threads].avg_ms
    f = t[1].avg_ms / t[4].avg_ms if prof.threads == 1 else 1.0  # shipped's 1-thread factor
    ops = ncnn_vit_ops()
    pred = LatencyPredictor(prof).predict_ops_ms(ops)
    macs, weights = total_macs(ops), sum(op.params for op in ops)
    ok = round(pred, 2) == x["predicted_ms"] and meas == x["ncnn_measured_ms"]
    recorded = "same" if ok else f"DIFFERS: recorded {x['predicted_ms']} / {x['ncnn_measured_ms']} ms"

    def one(p: float) -> str:
        return cell(metrics([p], [meas])) + f", {p:.0f} ms"

    ncnn = (prof.name, f"ncnn ViT-B/32 @384 on a Pi 4, {prof.threads} thread(s), {meas:.0f} ms (cross-check)",
            one(pred), recorded, one(k_mac * macs * f), one(k_par * weights * f),
            f"k from the HAT training rows{f' x {f:.3f} (1-thread factor)' if f != 1 else ''}; "
            f"{macs / 1e9:.2f} GMAC, {weights / 1e6:.1f} M weights"
            + ("; not independent: the 1-thread factor is this row's ratio to the 4-thread one" if prof.threads == 1
               else "; independent of every fit"))
    return [hat, ncnn]


def _lofo_baseline(rows, f, size) -> dict:
    """latency = k x size(model), k by least squares on relative error over the other families' rows, each
    family held out in turn (the split of ``vit_anchored.heldout_family``)."""
    import numpy as np

    pred, meas = [], []
    for train, test in family_splits(rows):
        x = np.array([size(r.shape) for r in train])
        y = np.array([r.latency_ms * to_ort_at_ref(r, f) for r in train])
        k = float((x / y).sum() / ((x / y) ** 2).sum())  # argmin sum (k x / y - 1)^2
        pred += [k * size(r.shape) for r in test]
        meas += [r.latency_ms * to_ort_at_ref(r, f) for r in test]
    return metrics(pred, meas)


def vit_row(prof: DeviceProfile, cache: dict) -> Row:
    """A76 profiles fitted on whole ViTs: each model family held out, recomputed, against k x MACs / params."""
    from evaluators.latency.predict.ops import decompose
    from evaluators.latency.predict.profile import load_profile

    if "vit" not in cache:
        rows = read_rows()
        fit, f = fit_rows(rows), runtime_factors(rows)
        held, _ = heldout_family(load_profile("rpi4-a72-ort-1t"), fit, f)
        macs = _lofo_baseline(fit, f, lambda sh: total_macs(decompose(sh)))
        params = _lofo_baseline(fit, f, lambda sh: sum(op.params for op in decompose(sh)))
        cache["vit"] = (len(fit), held, macs, params)
    n, held, macs, params = cache["vit"]
    recorded = "same" if same(held, prof.validation.get("heldout_family")) else "DIFFERS"
    c25 = lambda m: cell(m) + f", ±25% {100 * m['within_25pct']:.0f}%"
    return (prof.name, f"{n} whole ViTs on one A76 core (qed), each family (DeiT / ViT / ViT-MSN) held out",
            c25(held), recorded, c25(macs), c25(params),
            "times brought to ORT at 2.4 GHz (runtime factors, clock); the device's clock / threads on top")


def fast_row(prof: DeviceProfile) -> Row:
    """Phones with Cortex-X cores: the Pi 5 profile x their ncnn ViT-B/32 ratio, recomputed."""
    v = prof.validation
    stem = prof.name.rsplit("-ort-", 1)[0]
    section = next(sec for st, _, _, sec in FAST_DEVICES if st == stem)
    mine = ncnn_big_core_rows(section, prof.threads, None)
    ref = ncnn_big_core_rows("Raspberry Pi 5 Broadcom BCM2712, Cortex-A76", prof.threads, None)
    k = statistics.median(r.avg_ms for r in mine) / statistics.median(r.avg_ms for r in ref)
    recorded = "same" if round(k, 4) == v.get("ncnn_ratio_to_rpi5") else f"DIFFERS: recorded {v.get('ncnn_ratio_to_rpi5')}"
    why = "not fitted (*): one model"
    return (prof.name, f"ncnn ViT-B/32 @384, {prof.threads} thread(s): " + ", ".join(f"{r.avg_ms:.0f} ms" for r in mine),
            f"ratio to the Pi 5 {k:.3f}, n={len(mine)}: nothing held out", recorded, why, why,
            "the A76's term shares assumed for this core")


def table(rows: list[Row]) -> str:
    head = ("profile", "rows (the profile's own validation)", "ours: MAPE / ±10% (n)", "recorded vs recomputed",
            "k·MACs", "k·params (Linear weights)", "notes")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    cmd = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    print(f"command: `{cmd}`  \nmachine: {machine_summary()}\n")
    cache: dict = {}
    rows: list[Row] = []
    profiles = [DeviceProfile.load(p) for p in sorted(SHIPPED_DIR.glob("*.json"))]
    for prof in sorted(profiles, key=lambda q: ("hat" not in q.validation, q.name)):  # held-out rows first
        v = prof.validation
        if "hat" in v and "ncnn_cross_check" in v:
            rows += pi4_rows(prof, cache)
        elif "heldout_family" in v:
            rows.append(vit_row(prof, cache))
        elif v.get("anchor_only"):
            rows.append(fast_row(prof))
        else:
            rows.append((prof.name, "?", "unknown validation layout: not recomputed", "", "", "", ""))
    print(table(rows))
    print("\n(*) Cortex-X profiles: every row is ViT-B/32 @384 under ncnn, so k·MACs and k·params are one scale "
          "factor, as ours is, fitted to the anchor itself; no row is left to score any of them on.")
    return 1 if any(r[3].startswith("DIFFERS") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
