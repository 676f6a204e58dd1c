"""``maec devices``: the latency profiles available, with provenance and validation figures."""
from __future__ import annotations

import argparse
import json

from evaluators.latency.fit.reference_check import board_status
from evaluators.latency.predict.profile import DEFAULT_PROFILE, all_profiles, user_profile_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list device latency profiles (shipped and calibrated)")
    p.add_argument("--json", action="store_true", help="print the profiles as one JSON list")
    p.add_argument("-v", "--verbose", action="store_true", help="also print every source row set used")
    p.set_defaults(run=run)


def _figures(v: dict) -> str:
    parts = []
    h = v.get("heldout")
    if h:
        parts.append(f"held-out MAPE {100 * h['mape']:.1f}%, {100 * h['within_10pct']:.0f}% within ±10% (n={h['n']})")
    base = v.get("hat", {}).get("baselines_encoder")
    if base:
        parts.append("FLOPs baselines on the same rows: " + ", ".join(
            f"{k.replace('flops_', '')} MAPE {100 * m['mape']:.1f}% / {100 * m['within_10pct']:.0f}%" for k, m in base.items()))
    x = v.get("ncnn_cross_check")
    if x:
        after = x.get("ratio_after_ncnn_factor")
        parts.append(f"ncnn ViT-B/32 cross-check: predicted {x['predicted_ms']:.0f} ms / measured "
                     f"{x['ncnn_measured_ms']:.0f} ms = {x['ratio_predicted_over_ncnn']:.2f}"
                     + (f", x ncnn {x['ncnn_dtype']} / ORT {x['ncnn_over_ort']:.2f} (measured pair; "
                        f"{x['ncnn_over_ort_range'][0]:.2f}-{x['ncnn_over_ort_range'][1]:.2f}) = {after:.2f}" if after else "")
                     + ("" if x.get("independent", True) else
                        f" (not independent: {x.get('not_independent_because', 'the profile is built from that row')})"))
    fam = v.get("heldout_family")
    if fam:
        parts.append(f"whole ViTs, each model family held out: MAPE {100 * fam['mape']:.1f}%, "
                     f"{100 * fam['within_25pct']:.0f}% within ±25% (n={fam['n']})")
    i8 = v.get("int8", {}).get("heldout_family")
    if i8:
        parts.append(f"int8 ViTs held out: MAPE {100 * i8['mape']:.1f}%, {100 * i8['within_25pct']:.0f}% within ±25%")
    if v.get("size_scaling"):
        parts.append("size scaling " + ", ".join(f"{100 * c['error']:+.0f}%" for c in v["size_scaling"]))
    pi4 = v.get("whole_vit_pi4")
    if pi4:
        h = pi4["heldout_size"]
        parts.append(f"whole DeiT/ViT on a Pi 4 (batch 16), each size held out: MAPE {100 * h['mape']:.1f}%, "
                     f"{100 * h['within_25pct']:.0f}% within ±25% (n={h['n']}); size scaling "
                     + ", ".join(f"{100 * c['error']:+.0f}%" for c in pi4["size_scaling"]))
    onnx = v.get("heldout_onnx_pi4")
    if onnx and onnx.get("rows"):
        parts.append(f"held-out DeiT-T/S/B and {len(onnx.get('pruning_speedup', []))} pruned ones, batch 1, ONNX on a Pi 4 "
                     f"({onnx['source']}): predicted / measured "
                     + ", ".join(f"{m.replace('-patch16-224', '').replace('deit-', 'DeiT-')} {r:.2f}"
                                 for m, r in onnx["ratio_predicted_over_measured"].items())
                     + "; size scaling " + ", ".join(f"{100 * c['error']:+.0f}%" for c in onnx["size_scaling"])
                     + "; pruning speed-ups " + ", ".join(f"{100 * c['error']:+.0f}%" for c in onnx.get("pruning_speedup", [])))
    t = v.get("thread_model_checks")
    if t:
        parts.append(f"its thread model on the A76's own 2-3-thread rows (held out): {100 * t['within_15pct']:.0f}% of "
                     f"{t['n']} size-scaling checks within ±15%, worst {100 * t['worst_abs_error']:.0f}%")
    if v.get("anchor_only"):
        parts.append("relative to the Pi 5 by ncnn ViT-B/32 times only, no held-out rows")
    d = v.get("default_model")
    if d:
        parts.append(f"default model {d['predicted_ms']:.1f} ms")
    return "; ".join(parts) or "no validation figures"


def run(args: argparse.Namespace) -> int:
    profiles = sorted(all_profiles(), key=lambda p: (p.name != DEFAULT_PROFILE, p.name))
    if args.json:
        print(json.dumps([{**p.to_dict(), "default": p.name == DEFAULT_PROFILE} for p in profiles], indent=1))
        return 0
    for p in profiles:
        mark = " (default)" if p.name == DEFAULT_PROFILE else ""
        print(f"{p.name}{mark}: {p.device}; {p.cpu}")
        print(f"    runtime: {p.runtime}; {p.threads} thread(s); confidence {p.confidence}")
        print(f"    {_figures(p.validation)}")
        board = board_status(p.name)
        if board:
            print(f"    {board}")
        srcs = sorted({x.get("repo") or x.get("source", "") for x in p.provenance})
        print(f"    sources: {', '.join(s for s in srcs if s)}")
        for a in p.assumptions:  # the priors (int8 / fp16 from CNN data, int4 assumed) are part of the figures
            print(f"    assumption: {a}")
        if args.verbose:
            for c in p.validation.get("size_scaling", []):
                print(f"    size scaling (held-out fits): {c['models']}: predicted {c['predicted']}, measured "
                      f"{c['measured']} ({100 * c['error']:+.1f}%)")
            pi4 = p.validation.get("whole_vit_pi4")
            if pi4:
                for c in pi4["size_scaling"]:
                    print(f"    size scaling on a Pi 4 (batch 16, larger model held out): {c['pair']}: predicted "
                          f"{c['heldout']}, measured {c['measured']} ({100 * c['error']:+.1f}%; before the refit "
                          f"{c['before_refit']})")
                g, d = pi4["group_scales"], pi4["default_model_ms"]
                print(f"    refit on whole ViTs: gemm x {g['gemm']}, rest x {g['rest']}, weights x {g['weights']}; ORT / PyTorch "
                      f"eager {pi4['runtime_factor_ort_over_pytorch']} ({pi4['runtime_factor_note']}); default model "
                      f"{d['before_refit']} -> {d['refit']} ms (at factor 1: {d['refit_at_factor_1']} ms)")
            for c in (p.validation.get("heldout_onnx_pi4") or {}).get("pruning_speedup", []):
                print(f"    structured-pruning speed-up on a Pi 4 (held out): {c['pair']}: predicted {c['predicted']}x, "
                      f"measured {c['measured']}x ({100 * c['error']:+.1f}%)")
            for c in (p.validation.get("thread_model_checks") or {}).get("checks", []):
                print(f"    thread model, {c['device']} A76 @ {c['ghz']} GHz, {c['runtime']}, {c['threads']} threads (k "
                      f"{c['k']} from ViT-B/32's {c['anchor_speedup']}x): {c['models']}: predicted {c['predicted']}, "
                      f"measured {c['measured']} ({100 * c['error']:+.1f}%)")
            for name, f in p.validation.get("runtime_factors", {}).items():
                print(f"    runtime factor {name}: {f['median']} (range {f['range'][0]}-{f['range'][1]}, "
                      f"{f['pairs']} same-model pairs, {f['source']})")
            for x in p.provenance:
                where = "@".join(s for s in (x.get("repo", x.get("source", "")), x.get("commit", "")[:12]) if s)
                print(f"    source: {where} {x.get('file', '')}: {x.get('rows_used', '')} -> {x.get('use', '')}")
        if p.notes:
            print(f"    note: {p.notes}")
    print(f"(your calibrated profiles go to {user_profile_dir()}; `maec calibrate FILE.csv --name NAME`)")
    return 0
