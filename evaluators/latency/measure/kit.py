"""A measurement kit: benchmarks built into ONNX files + ``manifest.json`` + ``run_kit.py`` (a copy of
:mod:`evaluators.latency.measure.ort_timing`), timed here or on a device."""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from evaluators.latency.measure.items import BenchItem
from evaluators.latency.measure.model_items import model_items
from evaluators.latency.measure.op_items import SPAN_BYTES, op_items
from evaluators.latency.measure.ort_timing import run_manifest

SWEEPS = ("quick", "standard", "proof")


def sweep_items(sweep: str = "standard", seed: int = 0, *, ops: bool = True, models: bool = True,
                span: float = SPAN_BYTES) -> list[BenchItem]:
    if sweep not in SWEEPS:
        raise ValueError(f"unknown sweep {sweep!r}; choose from {', '.join(SWEEPS)}")
    return (op_items(sweep, seed, span) if ops else []) + (model_items(sweep, seed) if models else [])

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
    shutil.copyfile(Path(__file__).with_name("ort_timing.py"), folder / "run_kit.py")
    (folder / "README.txt").write_text(
        "Latency kit for `maec calibrate`. On the device (needs python3, numpy, onnxruntime):\n"
        "    python3 run_kit.py --threads 1 --rounds 3 --out my_device.csv\n"
        "Close other programs, keep the device cool and plugged in. Then, where the project is installed:\n"
        "    maec calibrate my_device.csv --name my-device\n")
    return folder


def measure(items: list[BenchItem], out: Path, *, threads: int = 1, repeats: int = 30, warmup: int = 5,
            device: str = "", min_seconds: float = 0.2, rounds: int = 3, keep: Path | None = None,
            progress: bool = True) -> int:
    """Build every item into a kit (``keep`` or a temporary folder), time it here in ``rounds`` passes
    (``ort_timing.run_manifest``), write ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = keep or Path(tmp)
        build_kit(items, folder, progress=progress)
        return run_manifest(folder, out, threads=threads, repeats=repeats, warmup=warmup, device=device,
                            min_seconds=min_seconds, rounds=rounds, progress=progress)
