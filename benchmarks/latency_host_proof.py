"""Proof of the per-operator method on real measurements (issue 4, item 6): on this machine, time the
operator sweep and whole compressed models with ONNX Runtime, calibrate a host profile from the
*operator rows only*, and predict every whole model (none was used for fitting). Prints the share of
models predicted within ±10% (target >= 90%), the MAPE, and the same for the operator rows held out.

    .venv/bin/python benchmarks/latency_host_proof.py                 # measure + calibrate + report (~15 min)
    .venv/bin/python benchmarks/latency_host_proof.py --reuse          # recalibrate the last CSVs only
    .venv/bin/python benchmarks/latency_host_proof.py --reuse-kits     # re-time the kept ONNX kits (no rebuild)
    .venv/bin/python benchmarks/latency_host_proof.py --reuse-ops      # keep the operator rows, time the models
                                                                       # (only within one session: the VM drifts)

Phase 1 times the operator sweep and fits the host profile on it; phase 2 samples compressed models from
the search space, exports each as the predictor's ``deployable_config`` (what the search would ship) and
times them; then every model is predicted with ``LatencyPredictor`` and compared.
    .venv/bin/python benchmarks/latency_host_proof.py --print-reference   # also print priors.HOST_REFERENCE
    .venv/bin/python benchmarks/latency_host_proof.py --reuse --without-call-row   # the fit without the call row
    .venv/bin/python benchmarks/latency_host_proof.py --reuse --without-chain-rows # ... without the Linear chains
    .venv/bin/python benchmarks/latency_host_proof.py --ops-again     # + every operator row in the models' passes

Measurements need a quiet machine: the script refuses to time while `mae.train` runs (``--force``
overrides) and pins itself to one core with one ONNX Runtime thread. Outputs go to results/latency/.
"""
from __future__ import annotations

import argparse
import csv
import os
import pprint
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

from evaluators.latency.fit.calibrate import (
    calibrate_rows,
    fit_merge_last,
    has_merge,
    predict_with_footprint,
    read_measure_csv,
    sample_weight_bytes,
)
from evaluators.latency.fit.fit import (
    coefs_to_profile_parts,
    fit_coefficients,
    metrics,
    profile_parts_to_coefs,
)
from evaluators.latency.measure.kit import build_kit, sweep_items, time_kit
from evaluators.latency.measure.op_items import SPAN_BYTES, l2_bytes
from evaluators.latency.predict.predictor import LatencyPredictor

OUT = ROOT / "results" / "latency"
DEFAULT = "mae_vit_tiny_p4_28"
ALL_CPUS = os.sched_getaffinity(0)


def _busy() -> list[str]:
    """Training processes that would disturb the timings (``pgrep -f mae.train``)."""
    try:
        res = subprocess.run(["pgrep", "-af", "mae.train"], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return []
    return [line for line in res.stdout.splitlines() if "pgrep" not in line]


def reference_block(csv_path: Path) -> str:
    """``priors.HOST_REFERENCE`` fitted on every operator row of ``csv_path`` (for evaluators/latency/derive/priors.py):
    the rows without token merges first, the merge terms last (``fit.calibrate.fit_merge_last``)."""
    ref = _reference(csv_path)
    return "HOST_REFERENCE: dict = " + pprint.pformat(ref, width=115, sort_dicts=True)


def _reference(csv_path: Path) -> dict:
    samples, _ = read_measure_csv(csv_path)
    rows = [s for s in samples if s.group != "model"]
    coefs = fit_merge_last(rows, fit_coefficients([s for s in rows if not has_merge(s)]), None)
    core, op_us, call_us = coefs_to_profile_parts(coefs)
    return {"core": {k: {f: round(v, 6) for f, v in d.items()} for k, d in core.items()},
            "op_us": {k: round(v, 4) for k, v in op_us.items()}, "call_us": round(call_us, 4)}


def merge_reference_lines(csv_path: Path) -> str:
    """The merge terms of this run moved to the machine of the shipped ``priors.HOST_REFERENCE``: x the median
    ratio (shipped / this run) of every other non-GEMM term both have (per-operator overheads, per-element
    terms), so that a merge keeps its cost relative to the rest of a block when the profiles move those terms
    to a device. What ``priors.HOST_REFERENCE["..."]["merge/fp32"]`` holds since session 10."""
    from evaluators.latency.derive.priors import HOST_REFERENCE

    run = _reference(csv_path)
    pairs = [(HOST_REFERENCE["op_us"][k], v) for k, v in run["op_us"].items()
             if k in HOST_REFERENCE["op_us"] and not k.startswith(("linear/", "merge/")) and v > 0]
    pairs += [(HOST_REFERENCE["core"][k][f], v) for k, d in run["core"].items() for f, v in d.items()
              if f in ("ns_per_elem", "ns_per_score", "ns_per_act") and not k.startswith(("linear/", "merge/"))
              and k in HOST_REFERENCE["core"] and f in HOST_REFERENCE["core"][k] and v > 0]
    ratios = np.array([a / b for a, b in pairs])
    f = float(np.median(ratios))
    core = {k: round(v * f, 6) for k, v in run["core"]["merge/fp32"].items()}
    return (f"merge terms of this run: core {run['core']['merge/fp32']}, op_us {run['op_us']['merge/fp32']}\n"
            f"shipped reference / this run over {len(ratios)} non-GEMM terms: median {f:.3f} "
            f"(range {ratios.min():.3f} .. {ratios.max():.3f})\n"
            f"merge terms for priors.HOST_REFERENCE: core 'merge/fp32': {core}, op_us 'merge/fp32': "
            f"{round(run['op_us']['merge/fp32'] * f, 4)}")


def _model_items(profile, seed: int, n_cls: int = 40, n_mae: int = 8, n_tome: int = 12) -> tuple[list, int]:
    """40 classifier + 8 full-MAE configs sampled from the search space (plus the two uncompressed models),
    12 classifiers sampled with token merging (``--techniques ...,tokens``) and 3 that only merge,
    each exported as ``LatencyPredictor.deployable_config`` -- the kernels the predictor priced (where a
    lower bit-width or a low-rank pair would be slower on this machine, the more precise kernel). Returns
    the items and how many configs that changed."""
    from evaluators.latency.measure.model_items import model_item, sample_configs
    from mae.model import create_model, describe
    from spaces.config import CompressionConfig
    from spaces.space import merge_schedule

    predictor = LatencyPredictor(profile)
    items, changed = [], 0
    for kind, n, task in (("classifier", n_cls, "classify"), ("mae", n_mae, "reconstruct")):
        shape = describe(create_model(DEFAULT, kind=kind), name=DEFAULT)
        configs = [CompressionConfig.identity(shape)] + sample_configs(shape, n, seed + (1 if kind == "classifier" else 2))
        for i, cfg in enumerate(configs):
            dep = predictor.deployable_config(shape, cfg, task=task)
            changed += dep != cfg
            items.append(model_item(DEFAULT, kind, dep, "identity" if i == 0 else f"p{seed}_{i - 1}"))
    shape = describe(create_model(DEFAULT), name=DEFAULT)
    merging = frozenset({"prune", "quant", "lowrank", "tokens"})
    for i, cfg in enumerate(sample_configs(shape, n_tome, seed + 3, techniques=merging)):
        dep = predictor.deployable_config(shape, cfg, task="classify")
        changed += dep != cfg
        items.append(model_item(DEFAULT, "classifier", dep, f"tome_p{seed}_{i}"))
    # merging alone (ToMe's constant schedule, benchmarks/tome_tradeoff.py's rows): where the merge is the
    # largest share of the time; timed here, in the same session as the operator rows they are predicted from
    ident = CompressionConfig.identity(shape)
    for share in MERGE_ONLY_SHARES:
        cfg = replace(ident, blocks=merge_schedule(ident.blocks, share, 1 + shape.num_patches))
        items.append(model_item(DEFAULT, "classifier", cfg, f"tome_only_s{share:g}"))
    return items, changed


MERGE_ONLY_SHARES = (0.0625, 0.125, 0.25)


def _time(items: list, kit: Path, csv_path: Path, args: argparse.Namespace, cpu: int) -> None:
    """Build ``items`` into ``kit`` (kept for ``--reuse-kits``) on every core, then time it pinned to
    ``cpu`` in ``args.rounds`` passes (building 50 models on one core took half of the run).

    The timing runs in a fresh process, the kit's own ``run_kit.py`` (numpy + onnxruntime, as on a board; the
    current runner is copied in first, so reused kits time the same way), never in this one. Why: the runs
    that timed the models' kit in the process that had just built it (torch export, ONNX Runtime's quantizer)
    drifted 1.017-1.073 against the operator rows (runs 13-15), the two that timed kits without building them
    1.001 and 1.006 (14b, 15b); run 15's 65 model files took a median 5.1% (3.1-9.4%) longer in its building
    process than 30 minutes later in one that built nothing (``benchmarks/README.md`` section 6)."""
    if not (args.reuse_kits and (kit / "manifest.json").exists()):
        shutil.rmtree(kit, ignore_errors=True)
        os.sched_setaffinity(0, ALL_CPUS)
        build_kit(items, kit, progress=True)
    time_kit(kit, csv_path, threads=1, repeats=args.repeats, warmup=10, min_seconds=0.5, rounds=args.rounds, cpu=cpu)


DRIFT_ROWS = 24


def _drift_items(ops: list, n: int = DRIFT_ROWS) -> list:
    """``n`` operator items spread evenly over the phase-1 sweep, renamed ``drift_*``: phase 2 times them in
    the same passes as the models, so the machine's speed *while the models are timed* is measured against
    phase 1 (this VM's speed moves 10-15% within an hour; a check after phase 2 missed a disturbed phase 2)."""
    picked = ops[:: max(1, len(ops) // n)][:n]
    deep = [it for it in ops if it.bench.startswith("block_") and it.bench.endswith(("_r6", "_r12"))]  # footprint rows
    return [replace(it, bench=f"drift_{it.bench}") for it in picked + [d for d in deep if d not in picked]]


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    """``(header, rows)`` of a ``maec measure`` CSV, rows as strings."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _write_csv(path: Path, fields: list[str], rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def _phase1_ms(ops_csv: Path) -> dict[str, float]:
    """``{bench: latency_ms}`` of the operator rows timed in phase 1."""
    return {r["bench"]: float(r["latency_ms"]) for r in _read_csv(ops_csv)[1]}


def _split_drift(models_csv: Path, ops_csv: Path, drift_csv: Path,
                 ops2_csv: Path | None = None) -> tuple[float, list[float]]:
    """Move the ``drift_*`` rows of ``models_csv`` to ``drift_csv`` (and, with ``ops2_csv`` -- ``--ops-again``:
    every operator row was re-timed in phase 2 -- write them there under their operator names: a sweep timed
    at the models' machine speed); return (median ratio of their lowest pass medians to their phase-1 times,
    the same median for each pass)."""
    fields, rows = _read_csv(models_csv)
    before = _phase1_ms(ops_csv)
    drift = [r for r in rows if r["bench"].startswith("drift_")]
    _write_csv(models_csv, fields, [r for r in rows if not r["bench"].startswith("drift_")])
    _write_csv(drift_csv, fields, drift)
    if ops2_csv is not None:
        _write_csv(ops2_csv, fields, ({**r, "bench": r["bench"].removeprefix("drift_")} for r in drift))
    deep = {r["bench"].removeprefix("drift_"): round(float(r["latency_ms"]) / before[r["bench"].removeprefix("drift_")], 3)
            for r in drift if r["bench"].startswith("drift_block_")}
    if deep:
        print(f"footprint chains re-timed in phase 2 / phase 1: {deep}")
    return _drift_ratios(drift, before)


def _drift_ratios(drift: list[dict], before: dict[str, float]) -> tuple[float, list[float]]:
    """(median of the ``drift_*`` operator rows' lowest pass medians over their phase-1 times, the same median
    for each pass); the footprint chains are left out (their own line)."""
    drift = [r for r in drift if not r["bench"].startswith("drift_block_")]
    base = [before[r["bench"].removeprefix("drift_")] for r in drift]
    overall = float(np.median([float(r["latency_ms"]) / b for r, b in zip(drift, base)]))
    passes = [float(np.median([float(r["round_ms"].split(";")[i]) / b for r, b in zip(drift, base)]))
              for i in range(len(drift[0]["round_ms"].split(";")))]
    return overall, passes


def _saved_drift(drift_csv: Path, ops_csv: Path) -> float | None:
    """The median drift of an earlier run's ``drift_csv`` (for ``--reuse``); None without one."""
    if not drift_csv.is_file():
        return None
    before = _phase1_ms(ops_csv)
    rows = [r for r in _read_csv(drift_csv)[1] if r["bench"].removeprefix("drift_") in before]
    return _drift_ratios(rows, before)[0] if rows else None


def _print_kinds(models: list, pred: np.ndarray, meas: np.ndarray) -> None:
    """One line per kind of model: plain classifiers, full MAEs, merging classifiers, merging only."""
    for kind in ("classifier", "mae", "classifier_tome", "classifier_tome_only"):
        sel = np.array([f"{DEFAULT}_{kind}_" in s.meta["bench"] for s in models])
        if kind == "classifier":  # without the merging ones, which have their own line
            sel &= np.array(["_tome_" not in s.meta["bench"] for s in models])
        if sel.any():
            km, err = metrics(pred[sel], meas[sel]), pred[sel] / meas[sel] - 1
            print(f"  of which {kind}: n={km['n']}, MAPE {100 * km['mape']:.1f}%, within ±10%: "
                  f"{100 * km['within_10pct']:.1f}%, errors {100 * err.min():+.1f}% .. {100 * err.max():+.1f}%")


def _predict_models(predictor: LatencyPredictor, models: list) -> np.ndarray:
    """Each model row's operators priced by ``predictor`` (envelope, low-rank pairing, footprint included)."""
    return np.array([predictor.predict_ops_ms([op for op, _ in s.terms]) for s in models])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reuse", action="store_true", help="do not measure; recalibrate and report the existing CSVs")
    p.add_argument("--force", action="store_true", help="measure even while mae.train runs (disturbed timings)")
    p.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3, help="passes over each kit; a row keeps its lowest pass median")
    p.add_argument("--reuse-kits", action="store_true",
                   help="time the ONNX kits built by an earlier run (results/latency/kit-*) instead of rebuilding them")
    p.add_argument("--reuse-ops", action="store_true",
                   help="keep the operator rows of an earlier run (host-ort-1t-ops.csv); measure the models only")
    p.add_argument("--print-reference", action="store_true")
    p.add_argument("--smoke", action="store_true", help="a tiny sweep (checks the script, proves nothing)")
    p.add_argument("--ops-again", action="store_true",
                   help="phase 2 re-times every operator row in the models' passes (not 28) and also reports a fit "
                        "on those: operator rows and models at one machine speed (~2x phase 2's time)")
    p.add_argument("--without-call-row", action="store_true",
                   help="fit without the sweep's empty call row (call_v784): what it changes (use with --reuse)")
    p.add_argument("--without-chain-rows", action="store_true",
                   help="what-if: fit without the Linears-in-sequence rows (op_items.linear_chain_item); saves nothing")
    args = p.parse_args()
    if args.ops_again and (args.reuse or args.reuse_kits):
        print("--ops-again times a new models' kit (every operator row in it): it cannot be combined with --reuse "
              "or --reuse-kits", file=sys.stderr)
        return 2
    ops_csv, models_csv, all_csv = (OUT / f"host-ort-1t-{x}.csv" for x in ("ops", "models", "all"))
    ops: list = []
    if not args.reuse:
        busy = _busy()
        if busy and not args.force:
            print("refusing to measure while training runs (timings would be disturbed):\n  " + "\n  ".join(busy)
                  + "\nrerun when `pgrep -f mae.train` finds nothing, or pass --force", file=sys.stderr)
            return 2
        cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
        OUT.mkdir(parents=True, exist_ok=True)
        span = max(SPAN_BYTES, 4 * l2_bytes())
        ops = sweep_items("quick" if args.smoke else "standard", args.seed, models=False, span=span)
        if not (args.reuse_ops and ops_csv.is_file()):
            print(f"phase 1: {len(ops)} operator benchmarks on cpu {cpu}, 1 ONNX Runtime thread", file=sys.stderr)
            _time(ops, OUT / "kit-ops", ops_csv, args, cpu)
    drift_csv, ops2_csv, drift = OUT / "host-ort-1t-drift.csv", OUT / "host-ort-1t-ops2.csv", None
    samples, meta = read_measure_csv(ops_csv)
    if args.without_call_row:
        samples = [s for s in samples if not s.meta["bench"].startswith("call_")]
    if args.without_chain_rows:
        samples = [s for s in samples if not s.meta["bench"].startswith("linchain_")]
    prof = calibrate_rows(samples, meta, name="host-ort-1t", source=ops_csv, seed=args.seed, fit_on="ops")
    if not args.reuse:
        items, changed = _model_items(prof, args.seed, *((2, 1, 1) if args.smoke else (40, 8, 12)))
        print(f"phase 2: {len(items)} compressed models ({changed} configs exported at the kernels the predictor "
              "chose)", file=sys.stderr)
        drift_items = _drift_items(ops, len(ops) if args.ops_again else DRIFT_ROWS)
        _time(items + drift_items, OUT / "kit-models", models_csv, args, cpu)
        ops2_csv.unlink(missing_ok=True)  # a stale one would be reported under --reuse
        drift, per_pass = _split_drift(models_csv, ops_csv, drift_csv, ops2_csv if args.ops_again else None)
        print(f"machine drift: {len(drift_items)} operator rows timed in phase 2's passes / their phase-1 times: median "
              f"{drift:.3f}, per pass {' '.join(f'{d:.3f}' for d in per_pass)} (1.000: the same machine speed)")
        lines = ops_csv.read_text().splitlines(keepends=True) + models_csv.read_text().splitlines(keepends=True)[1:]
        all_csv.write_text("".join(lines))  # `maec calibrate host-ort-1t-all.csv --fit-on ops` gives the same
    what_if = args.without_call_row or args.without_chain_rows
    if not what_if:  # a what-if: the saved profile stays the one fitted on every row
        prof.save(OUT / "host-ort-1t.json")
    models, _ = read_measure_csv(models_csv)
    predictor = LatencyPredictor(prof)  # what the search uses: envelope and low-rank pairing included
    pred = _predict_models(predictor, models)
    raw = predict_with_footprint(models, profile_parts_to_coefs(prof.core, prof.overhead["op_us"],
                                                                prof.overhead["call_us"]), prof.overhead.get("footprint"))
    meas = np.array([s.latency_ms for s in models])
    m, m_raw = metrics(pred, meas), metrics(raw, meas)
    ops_m = prof.validation.get("heldout_ops", metrics(np.array([]), np.array([])))
    print(f"host: {meta.get('cpu_model')} ({meta.get('cores')} cores, governor {meta.get('governor')}), "
          f"onnxruntime {meta.get('runtime_version')}, 1 thread")
    print(f"operator rows: {len(samples)} ({ops_m['n']} held out: MAPE {100 * ops_m['mape']:.1f}%, "
          f"{100 * ops_m['within_10pct']:.0f}% within ±10%)")
    calls = [s.latency_ms for s in samples if not s.terms]  # the sweep's empty call row (op_items.call_item)
    measured = ", ".join(f"{1e3 * ms:.2f} µs" for ms in calls) or "no call row"
    print(f"per-call cost: measured {measured}, call_us fitted {prof.overhead['call_us']:.2f} µs")
    for s, pr, me in sorted(zip(models, pred, meas), key=lambda t: abs(t[1] / t[2] - 1), reverse=True)[:8]:
        print(f"  worst: {s.meta['bench']:52s} measured {me:7.3f} ms predicted {pr:7.3f} ms ({100 * (pr / me - 1):+.1f}%)")
    print(f"whole compressed models (none used for fitting): n={m['n']}, MAPE {100 * m['mape']:.1f}%, "
          f"within ±10%: {100 * m['within_10pct']:.1f}% (target >= 90%), median predicted/measured {m['median_ratio']:.3f}"
          f"  [kernel-for-kernel: {100 * m_raw['within_10pct']:.1f}%]")
    drift = drift if drift is not None else _saved_drift(drift_csv, ops_csv)
    if drift:  # the same predictions at phase 2's machine speed: a diagnosis beside the target's figure, not it
        md = metrics(pred * drift, meas)
        print(f"  at phase 2's machine speed (predictions x drift {drift:.3f}): within ±10%: "
              f"{100 * md['within_10pct']:.1f}%, median predicted/measured {md['median_ratio']:.3f}")
    _print_kinds(models, pred, meas)
    wb = np.array([sample_weight_bytes(s) for s in models]) / 1e6
    fp = prof.overhead.get("footprint")
    print("  by weight bytes per call (footprint: "
          + (f"{fp['ns_per_byte']:.4f} ns per byte beyond {fp['cache_bytes'] / 1e6:.0f} MB" if fp else "none fitted") + "):")
    small, big = wb <= 4, wb > 4
    for lo, hi in ((0, 1), (1, 2), (2, 3), (3, 4)):
        sel = (wb > lo) & (wb <= hi)
        if sel.any():
            km, err = metrics(pred[sel], meas[sel]), pred[sel] / meas[sel] - 1
            print(f"    {lo}-{hi} MB: n={km['n']}, within ±10%: {100 * km['within_10pct']:.1f}%, median error "
                  f"{100 * np.median(err):+.1f}%, errors {100 * err.min():+.1f}% .. {100 * err.max():+.1f}%")
    if small.sum() > 2:
        e = pred[small] / meas[small] - 1
        print(f"    up to 4 MB, correlation of the error with the measured time {np.corrcoef(meas[small], e)[0, 1]:+.2f}, "
              f"with the weight bytes {np.corrcoef(wb[small], e)[0, 1]:+.2f}")
    if big.any():
        print("    > 4 MB: " + ", ".join(f"{s.meta['bench'].removeprefix(DEFAULT + '_')} {w:.1f} MB {100 * (p / y - 1):+.1f}%"
                                      for s, w, p, y, b in zip(models, wb, pred, meas, big) if b))
    if ops2_csv.is_file():  # --ops-again: the fit on the operator rows timed in the models' own passes
        samples2, meta2 = read_measure_csv(ops2_csv)
        if args.without_chain_rows:
            samples2 = [s for s in samples2 if not s.meta["bench"].startswith("linchain_")]
        prof2 = calibrate_rows(samples2, meta2, name="host-ort-1t-phase2", source=ops2_csv, seed=args.seed, fit_on="ops")
        pred2 = _predict_models(LatencyPredictor(prof2), models)
        m2, o2 = metrics(pred2, meas), prof2.validation.get("heldout_ops", metrics(np.array([]), np.array([])))
        print(f"fitted on the {len(samples2)} operator rows re-timed in phase 2's passes (held out: "
              f"{100 * o2['within_10pct']:.0f}% within ±10%): models within ±10%: {100 * m2['within_10pct']:.1f}%, "
              f"MAPE {100 * m2['mape']:.1f}%, median predicted/measured {m2['median_ratio']:.3f}")
        _print_kinds(models, pred2, meas)
    if fp:  # the same rows without the footprint term: what it bought on this run
        flat = calibrate_rows(samples, meta, name="host-ort-1t", source=ops_csv, seed=args.seed, fit_on="ops",
                              footprint=False)
        pred_f = _predict_models(LatencyPredictor(flat), models)
        mf = metrics(pred_f, meas)
        of = flat.validation.get("heldout_ops", metrics(np.array([]), np.array([])))  # none in a --smoke sweep
        print(f"  the same rows fitted without the footprint: models within ±10% {100 * mf['within_10pct']:.1f}%, "
              f"operator rows held out {100 * of['within_10pct']:.0f}%, models > 4 MB "
              + ", ".join(f"{100 * e:+.1f}%" for e in (pred_f / meas - 1)[big]))
    if not what_if:
        print(f"wrote {OUT / 'host-ort-1t.json'} ({ops_csv.name}, {models_csv.name}, {all_csv.name})")
    if args.print_reference:
        print(reference_block(ops_csv))
        print(merge_reference_lines(ops_csv))
    return 0 if m["within_10pct"] >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
