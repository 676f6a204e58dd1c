"""A measurement kit: benchmarks built into ONNX files + ``manifest.json`` + ``run_kit.py`` (a copy of
:mod:`evaluators.latency.measure.ort_timing`), timed here or on a device."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from evaluators.latency.measure.items import BenchItem
from evaluators.latency.measure.model_items import model_items
from evaluators.latency.measure.op_items import SPAN_BYTES, op_items
from evaluators.latency.measure.ort_timing import pin_to_core
from evaluators.latency.measure.reference_items import PREFIX, reference_items

SWEEPS = ("quick", "standard", "proof", "reference")


def sweep_items(sweep: str = "standard", seed: int = 0, *, ops: bool = True, models: bool = True,
                span: float = SPAN_BYTES) -> list[BenchItem]:
    """The benchmarks of a sweep; ``reference`` is whole published ViTs only (:mod:`reference_items`: no
    operator rows, nothing sampled, so ``ops`` / ``models`` / ``seed`` do not apply)."""
    if sweep not in SWEEPS:
        raise ValueError(f"unknown sweep {sweep!r}; choose from {', '.join(SWEEPS)}")
    if sweep == "reference":
        return reference_items()
    return (op_items(sweep, seed, span) if ops else []) + (model_items(sweep, seed) if models else [])


_README = ("Latency kit for `maec calibrate`. On the device (needs python3, numpy, onnxruntime):\n"
           "    python3 run_kit.py --threads 1 --rounds 3 --out my_device.csv\n"
           "Close other programs, keep the device cool and plugged in. Then, where the project is installed:\n"
           "    maec calibrate my_device.csv --name my-device\n")
_REFERENCE_README = (
    "Reference kit for `maec validate`: whole DeiT-T/S/B, ViT-B/16, ViT-B/32 (224 px, fp32). On the device (needs\n"
    "python3, numpy, onnxruntime; ~7 min at one thread on a Raspberry Pi 4):\n"
    "    python3 run_kit.py --threads 1 --repeats 10 --warmup 2 --out my_device-1t.csv\n"
    "Close other programs, keep the device cool and plugged in. Then, where the project is installed:\n"
    "    maec validate my_device-1t.csv --device PROFILE [--add-to-data --cpu-cores '4x Cortex-A72 @1.8 GHz']\n")


def build_kit(items: list[BenchItem], folder: Path, *, progress: bool = False) -> Path:
    """Write each item's ONNX file, ``manifest.json`` and ``run_kit.py`` (the numpy + onnxruntime runner)."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, item in enumerate(items):
        file = f"{i:04d}_{item.bench}.onnx"
        inputs = item.build(folder / file)
        entries.append({"bench": item.bench, "row_kind": item.row_kind, "file": file, "inputs": inputs, "spec": item.spec})
        if progress:
            print(f"built [{i + 1}/{len(items)}] {item.bench}", file=sys.stderr)
    (folder / "manifest.json").write_text(json.dumps({"format": "maec-measure-kit/1", "entries": entries}, indent=1))
    _write_runner(folder)
    reference = bool(items) and all(item.bench.startswith(PREFIX) for item in items)
    (folder / "README.txt").write_text(_REFERENCE_README if reference else _README)
    return folder


def _write_runner(folder: Path) -> None:
    """``folder/run_kit.py``: a verbatim copy of :mod:`ort_timing` (numpy + onnxruntime only)."""
    shutil.copyfile(Path(__file__).with_name("ort_timing.py"), folder / "run_kit.py")


def time_kit(folder: Path, out: Path, *, threads: int = 1, repeats: int = 30, warmup: int = 5, device: str = "",
             min_seconds: float = 0.2, rounds: int = 3, progress: bool = True, cpu: int | None = None) -> int:
    """Time ``folder``'s kit in a fresh process -- its ``run_kit.py`` (numpy + onnxruntime), refreshed from
    :mod:`ort_timing` first -- pinned to core ``cpu`` (None: this process's cores); write ``out``; rows written.

    Never in the process that built the kit: model files took a median 5.1% longer in the process that had just
    exported and quantized them than in a fresh one (``benchmarks/README.md`` section 6, runs 15 / 15b), and a
    board runs ``run_kit.py`` alone too."""
    _write_runner(folder)
    cmd = [sys.executable, str(folder / "run_kit.py"), "--threads", str(threads), "--out", str(Path(out).resolve()),
           "--repeats", str(repeats), "--warmup", str(warmup), "--min-seconds", str(min_seconds),
           "--rounds", str(rounds), "--device", device] + ([] if progress else ["--quiet"])
    pin = (lambda: pin_to_core(cpu)) if cpu is not None else None  # in the child, as `taskset -c CPU`
    done = subprocess.run(cmd, preexec_fn=pin, stdout=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"timing the kit in {folder} failed: run_kit.py exited with status {done.returncode}")
    return len(json.loads((folder / "manifest.json").read_text())["entries"])


def measure(items: list[BenchItem], out: Path, *, threads: int = 1, repeats: int = 30, warmup: int = 5,
            device: str = "", min_seconds: float = 0.2, rounds: int = 3, keep: Path | None = None,
            progress: bool = True) -> int:
    """Build every item into a kit (``keep`` or a temporary folder), time it here in ``rounds`` passes in a
    fresh process (:func:`time_kit`), write ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = keep or Path(tmp)
        build_kit(items, folder, progress=progress)
        return time_kit(folder, out, threads=threads, repeats=repeats, warmup=warmup, device=device,
                        min_seconds=min_seconds, rounds=rounds, progress=progress)
