#!/usr/bin/env python3
"""The project's one ONNX Runtime timing helper, and the ``maec measure`` kit runner.

Sessions (:func:`make_session`), one model's timing (:func:`time_ms`), several models timed by the
multi-pass rule (:func:`time_interleaved_ms`), the machine's facts (:func:`device_info`,
:func:`machine_summary`) and the kit runner (:func:`run_manifest`, ``python3 run_kit.py``). Everything
that times an ONNX model in the project -- ``maec measure``, ``maec apply``, the benchmarks -- comes
through here.

This file imports nothing of the project, on purpose (an import-linter contract keeps it so):
``maec measure --export-kit DIR`` copies it verbatim as ``run_kit.py`` for a Raspberry Pi or a phone's
Linux shell (Termux), which needs only numpy + onnxruntime: ``python3 run_kit.py --threads 1 --out
my_device.csv``. It reads ``manifest.json`` next to it (one entry per ONNX file: input names, shapes,
and the row's ``spec``) and writes one CSV row per model with the device metadata. For the same reason
it writes its CSV with its own temporary file + ``os.replace`` rather than ``core.files``.

The multi-pass rule: every model is timed in ``rounds`` passes over the whole set (each pass: median
of ``repeats`` runs after ``warmup``; models interleaved, so a slow window hits all of them alike), and
each keeps its lowest pass median. Why: a board's thermal throttling, a phone's background job or a
virtual machine's neighbour slows the CPU for seconds at a time, and a model timed in one go inside
such a window is slow by 10-30% (seen on this project's 2-core cloud host: 4 of 50 whole models at
+15-30%, p10 close to the true time; ``maec apply --preset half`` once reported 0.62 of the
original's latency and 0.30 in the next run). Interference only ever adds time, so the lowest of the
pass medians is the undisturbed latency; the median inside a pass still ignores single slow runs.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

CSV_COLUMNS = ("bench", "row_kind", "spec", "latency_ms", "p10_ms", "p90_ms", "repeats", "rounds", "round_ms",
               "warmup", "threads",
               "device", "cpu_model", "cores", "governor", "max_mhz", "runtime", "runtime_version", "os",
               "measured_at")
# Cortex part numbers of /proc/cpuinfo ("CPU part"), for boards whose kernels print no model name.
ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
             "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
             "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd44": "Cortex-X1", "0xd46": "Cortex-A510",
             "0xd47": "Cortex-A710", "0xd48": "Cortex-X2", "0xd4d": "Cortex-A715", "0xd4e": "Cortex-X3",
             "0xd80": "Cortex-A520", "0xd81": "Cortex-A720", "0xd82": "Cortex-X4"}


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def device_info(device: str = "") -> dict[str, str]:
    """CPU model, core count, cpufreq governor and max clock when readable, runtime version, OS."""
    cpuinfo = _read("/proc/cpuinfo")
    model = ""
    parts: dict[str, int] = {}
    for line in cpuinfo.splitlines():
        key, _, val = line.partition(":")
        key, val = key.strip().lower(), val.strip()
        if key in ("model name", "hardware") and not model:
            model = val
        if key == "cpu part":
            name = ARM_PARTS.get(val.lower(), f"ARM part {val}")
            parts[name] = parts.get(name, 0) + 1
    if parts:  # ARM: the cores tell more than the SoC string
        cores = " + ".join(f"{n}x {p}" for p, n in sorted(parts.items()))
        model = f"{model} ({cores})" if model else cores
    board = _read("/proc/device-tree/model").replace("\x00", "")
    khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    return {"device": device or board or platform.node(), "cpu_model": model or platform.processor() or "unknown",
            "cores": str(os.cpu_count() or ""),
            "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") or "unreadable",
            "max_mhz": str(int(khz) // 1000) if khz.isdigit() else "", "runtime": "onnxruntime-cpu",
            "runtime_version": ort.__version__, "os": f"{platform.system()} {platform.release()} {platform.machine()}"}


def machine_summary() -> str:
    """One line for a benchmark's report: CPU model, logical cores (and how many this process may use),
    OS and Python -- the machine a printed number was measured on."""
    info = device_info()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{info['cpu_model']}; {info['cores']} logical cores ({usable} usable); {info['os']}; "
            f"Python {platform.python_version()}; onnxruntime {info['runtime_version']}")


def pin_to_core(cpu: int | None = None) -> int:
    """Pin this process to one core (default: the last one this process may use), as ``taskset -c``: a
    timing benchmark runs its one ONNX Runtime thread there and leaves the other cores to the rest of the
    machine. Returns the core."""
    core = cpu if cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def make_session(path: str | Path, threads: int) -> ort.InferenceSession:
    """CPU session as deployed: ``threads`` intra-op threads, sequential, all graph optimizations
    (the same settings as ``evaluators.latency.measure.host.make_session``)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def random_feed(inputs: list[dict], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded standard-normal float32 arrays for ``[{"name", "shape"}]`` (values do not change timing)."""
    rng = np.random.default_rng(seed)
    return {i["name"]: rng.standard_normal(i["shape"]).astype(np.float32) for i in inputs}


def time_ms(path: str | Path, inputs: list[dict], *, threads: int = 1, repeats: int = 30, warmup: int = 5,
            min_seconds: float = 0.0, keep_times: list[float] | None = None) -> dict[str, float]:
    """Median, 10th and 90th percentile wall time of one ``run`` in ms, after ``warmup`` runs.

    ``min_seconds``: keep repeating past ``repeats`` until that much time was spent timing, so short
    models get enough samples for a stable median. ``keep_times``: a list the run times are appended to.
    """
    sess = make_session(path, threads)
    feed = random_feed(inputs)
    for _ in range(warmup):
        sess.run(None, feed)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < min_seconds and len(times) < 50 * repeats):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    if keep_times is not None:
        keep_times.extend(times)
    p10, med, p90 = np.percentile(times, [10, 50, 90])
    return {"latency_ms": float(med), "p10_ms": float(p10), "p90_ms": float(p90), "repeats": len(times)}


def time_interleaved_ms(models: dict[str, tuple[str | Path, list[dict]]], *, threads: int = 1, rounds: int = 3,
                        repeats: int = 30, warmup: int = 5, min_seconds: float = 0.0,
                        progress: bool = False) -> dict[str, dict]:
    """Time several models by the multi-pass rule (module doc): ``{name: (onnx path, inputs)}`` ->
    ``{name: {"latency_ms": lowest pass median, "p10_ms", "p90_ms", "mean_ms" (over all runs), "repeats" (all
    runs), "rounds", "round_ms": [pass medians]}}``. ``inputs``: ``[{"name", "shape"}]``."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    medians: dict[str, list[float]] = {name: [] for name in models}
    runs: dict[str, list[float]] = {name: [] for name in models}
    for r in range(rounds):
        for name, (path, inputs) in models.items():
            t = time_ms(path, inputs, threads=threads, repeats=repeats, warmup=warmup, min_seconds=min_seconds,
                        keep_times=runs[name])
            medians[name].append(t["latency_ms"])
            if progress:
                print(f"[pass {r + 1}/{rounds}] {name}: {t['latency_ms']:.3f} ms", file=sys.stderr)
    out = {}
    for name in models:
        p10, p90 = np.percentile(runs[name], [10, 90])
        out[name] = {"latency_ms": min(medians[name]), "p10_ms": float(p10), "p90_ms": float(p90),
                     "mean_ms": float(np.mean(runs[name])),
                     "repeats": len(runs[name]), "rounds": rounds, "round_ms": medians[name]}
    return out


def run_manifest(folder: Path, out: Path, *, threads: int, repeats: int, warmup: int, device: str = "",
                 min_seconds: float = 0.2, rounds: int = 3, progress: bool = True) -> int:
    """Time every entry of ``folder/manifest.json`` in ``rounds`` passes; write the CSV to ``out``.

    ``latency_ms`` is the lowest pass median (module doc), ``round_ms`` every pass median ("a;b;c"),
    ``p10_ms``/``p90_ms`` over all runs of all passes. Returns rows written; ``out`` appears only
    when every row is timed (written to a hidden temporary file first).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    entries = json.loads((folder / "manifest.json").read_text())["entries"]
    info = device_info(device)
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    keys = [f"{i + 1}/{len(entries)} {e['bench']}" for i, e in enumerate(entries)]  # unique, and what progress shows
    timed = time_interleaved_ms({k: (folder / e["file"], e["inputs"]) for k, e in zip(keys, entries)},
                                threads=threads, rounds=rounds, repeats=repeats, warmup=warmup,
                                min_seconds=min_seconds, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # unique per process, as core.files does
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for k, e in zip(keys, entries):
            t = timed[k]
            w.writerow({"bench": e["bench"], "row_kind": e["row_kind"], "spec": json.dumps(e["spec"]),
                        "latency_ms": f"{t['latency_ms']:.6f}", "p10_ms": f"{t['p10_ms']:.6f}",
                        "p90_ms": f"{t['p90_ms']:.6f}", "repeats": t["repeats"], "rounds": rounds,
                        "round_ms": ";".join(f"{m:.6f}" for m in t["round_ms"]),
                        "warmup": warmup, "threads": threads, "measured_at": stamp, **info})
    os.replace(tmp, out)
    return len(entries)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Time the ONNX files of this kit with ONNX Runtime; write a CSV "
                                            "for `maec calibrate FILE.csv --name NAME`.")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    p.add_argument("--out", default="measurements.csv", help="CSV to write")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3, help="passes over the kit; each row keeps its lowest pass median")
    p.add_argument("--device", default="", help="device name for the rows (default: board model or host name)")
    p.add_argument("--min-seconds", type=float, default=0.2, help="time each row for at least this long per pass")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.rounds < 1 or args.warmup < 0 or args.min_seconds < 0:
        p.error("--threads, --repeats and --rounds must be >= 1, --warmup and --min-seconds >= 0")
    n = run_manifest(Path(__file__).resolve().parent, Path(args.out), threads=args.threads, repeats=args.repeats,
                     warmup=args.warmup, device=args.device, rounds=args.rounds, min_seconds=args.min_seconds,
                     progress=not args.quiet)
    print(f"wrote {n} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
