"""A profile against whole reference ViTs timed on a device (``maec measure --sweep reference``; ``maec validate``).

The checks are issue 14's, applied to one board's own runs: each model predicted / measured (target: within
±25%), and the size-scaling ratios of :data:`SCALING_PAIRS` -- two models on the same device, runtime and
threads -- predicted / measured (target: within ±15%). Nothing is fitted: a profile is judged on runs it
never saw.

:func:`whole_rows` turns the runs into rows of the project's own board data
(``evaluators/latency/data/reference_kit_runs.csv``, the columns of ``arm_whole_model.csv`` with their
provenance), which ``benchmarks/latency_arm_validation.py`` prints against the shipped profiles. Only runs
on ARM are accepted there: the file is ARM ground truth. Our own code: ratios of a handful of predictions
against the project's own CSV and profile format; no library has either.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

from evaluators.latency.fit.calibrate import Sample
from evaluators.latency.fit.whole_model import WholeRow, core_type, read_rows
from evaluators.latency.measure.reference_items import PREFIX
from evaluators.latency.predict.predictor import LatencyPredictor
from evaluators.latency.predict.profile import DeviceProfile, load_profile

RUNS_CSV = Path(__file__).resolve().parents[1] / "data" / "reference_kit_runs.csv"
SOURCE = "maec measure --sweep reference (this project's kit)"
# (larger, smaller): the ratios issue 14 checks (DeiT-S / DeiT-T is the one it quoted)
SCALING_PAIRS = (("deit-small-patch16-224", "deit-tiny-patch16-224"),
                 ("deit-base-patch16-224", "deit-small-patch16-224"),
                 ("vit-base-patch16-224", "vit-base-patch32-224"))
# DeiT-B and ViT-B/16 are one graph (same shapes; only the weights' values differ): their measured ratio is
# the run's own noise gauge, 1 when the timing is steady
SAME_GRAPH = ("deit-base-patch16-224", "vit-base-patch16-224")
WITHIN_MODEL, WITHIN_RATIO = 0.25, 0.15
WHOLE_COLUMNS = ("model", "family", "arch_type", "img_size", "params_m", "gmacs", "device", "soc", "cpu_cores",
                 "threads", "batch", "dtype", "runtime", "runtime_version", "latency_ms", "statistic", "source_repo",
                 "source_commit", "source_file", "source_url", "licence", "notes")
ARM_MACHINES = ("aarch64", "arm64", "armv7l", "armv8l")
# (core, threads) of a board run -> the shipped profile that claims it
BOARD_PROFILES = {("Cortex-A72", 1): "rpi4-a72-ort-1t", ("Cortex-A72", 4): "rpi4-a72-ort-4t",
                  ("Cortex-A76", 1): "rpi5-a76-ort-1t", ("Cortex-A76", 4): "rpi5-a76-ort-4t"}


@dataclass(frozen=True)
class ModelCheck:
    model: str
    measured_ms: float
    predicted_ms: float

    @property
    def error(self) -> float:
        """predicted / measured - 1."""
        return self.predicted_ms / self.measured_ms - 1


@dataclass(frozen=True)
class RatioCheck:
    larger: str
    smaller: str
    measured: float
    predicted: float

    @property
    def error(self) -> float:
        return self.predicted / self.measured - 1


def reference_samples(samples: list[Sample]) -> list[Sample]:
    """The rows of a ``maec measure`` CSV that are reference models (``ref_<model>``)."""
    return [s for s in samples if s.meta["bench"].startswith(PREFIX)]


def check_models(profile: DeviceProfile, samples: list[Sample]) -> list[ModelCheck]:
    """Every reference row priced by ``profile`` as the search prices a model (envelope included)."""
    predictor = LatencyPredictor(profile)
    return [ModelCheck(s.meta["bench"].removeprefix(PREFIX), s.latency_ms,
                       predictor.predict_ops_ms([op for op, _ in s.terms])) for s in reference_samples(samples)]


def board_runs(path: Path = RUNS_CSV) -> dict[tuple, list[WholeRow]]:
    """The data file's runs grouped by setting (device, core, clock, threads, runtime): one run of the kit each."""
    groups: dict[tuple, list[WholeRow]] = {}
    for r in read_rows(path) if path.is_file() else []:
        groups.setdefault(r.setting, []).append(r)
    return groups


def check_whole_rows(profile: DeviceProfile, rows: list[WholeRow]) -> list[ModelCheck]:
    """Board runs (data rows of reference models) priced by ``profile``, as :func:`check_models` prices a CSV."""
    predictor = LatencyPredictor(profile)
    return [ModelCheck(r.model, r.latency_ms, predictor.predict_ms(r.shape, global_pool="token")) for r in rows if r.shape]


def board_checks(path: Path = RUNS_CSV) -> list[dict]:
    """Each run of the data file (:func:`board_runs`) with the shipped profile that claims its core and threads
    (:data:`BOARD_PROFILES`; None when none does) and that profile's checks of it: ``{"setting", "profile",
    "models", "ratios", "summary"}`` -- what ``maec devices`` and ``latency_arm_validation.py`` section 6 print."""
    out = []
    for setting, rows in board_runs(path).items():
        name = BOARD_PROFILES.get((setting[2], setting[4]))
        models = check_whole_rows(load_profile(name), rows) if name else []
        ratios = check_ratios(models)
        out.append({"setting": setting, "profile": name, "models": models, "ratios": ratios,
                    "summary": summary(models, ratios)})
    return out


def board_status(profile_name: str, path: Path = RUNS_CSV) -> str | None:
    """One line for ``maec devices``: the reference-kit runs whose core and threads ``profile_name`` claims
    (:data:`BOARD_PROFILES`), each with validate's figures, or how to make the first; None for a profile no
    board run can check."""
    if profile_name not in BOARD_PROFILES.values():
        return None
    runs = [c for c in board_checks(path) if c["profile"] == profile_name]
    if not runs:
        return (f"board runs of the reference kit: none yet (`maec measure --sweep reference --export-kit DIR`, "
                f"`run_kit.py` on the board, `maec validate RUN.csv --device {profile_name} --add-to-data`)")
    return "board runs of the reference kit: " + "; ".join(
        f"{c['setting'][1]}: {100 * c['summary']['within_25pct']:.0f}% of {c['summary']['models']} within ±25%, worst "
        f"size ratio {100 * c['summary']['worst_ratio_error']:.0f}%" for c in runs)


def check_ratios(models: list[ModelCheck]) -> list[RatioCheck]:
    """The :data:`SCALING_PAIRS` whose two models were both timed."""
    by = {m.model: m for m in models}
    return [RatioCheck(a, b, by[a].measured_ms / by[b].measured_ms, by[a].predicted_ms / by[b].predicted_ms)
            for a, b in SCALING_PAIRS if a in by and b in by]


def summary(models: list[ModelCheck], ratios: list[RatioCheck]) -> dict:
    """Share of models within ±25%, the worst size-scaling error and whether both targets hold."""
    within = sum(abs(m.error) <= WITHIN_MODEL for m in models) / len(models) if models else 0.0
    worst = max((abs(r.error) for r in ratios), default=0.0)
    by = {m.model: m.measured_ms for m in models}
    same = by[SAME_GRAPH[0]] / by[SAME_GRAPH[1]] if all(n in by for n in SAME_GRAPH) else None
    return {"models": len(models), "within_25pct": within, "ratios": len(ratios), "worst_ratio_error": worst,
            "targets_met": bool(models) and within >= 0.8 and worst <= WITHIN_RATIO, "same_graph_ratio": same}


def machine_of(row: dict) -> str:
    """The machine type (``uname -m``) a ``maec measure`` row was timed on: the last word of its ``os``."""
    return (row.get("os") or "").rsplit(" ", 1)[-1]


def whole_rows(rows: list[dict], *, source_file: str, source_commit: str, cpu_cores: str = "",
               soc: str = "", device: str = "") -> list[dict]:
    """``maec measure`` CSV rows of reference models -> rows with :data:`WHOLE_COLUMNS` (the data CSV's
    format); ``cpu_cores`` defaults to the rows' CPU model text (it must name the core type the threads ran
    on: :func:`core_type` reads it). ValueError with one sentence for rows not timed on ARM."""
    out = []
    for r in rows:
        if not r["bench"].startswith(PREFIX):
            continue
        if machine_of(r) not in ARM_MACHINES:
            raise ValueError(f"{source_file} was timed on {machine_of(r) or 'an unknown machine'}, not on ARM; "
                             "only ARM runs go into the board data")
        spec = json.loads(r["spec"])
        name = r["bench"].removeprefix(PREFIX)
        cores = cpu_cores or r["cpu_model"]
        clock = f" @{int(r['max_mhz']) / 1000:g} GHz (cpufreq max)" if r.get("max_mhz", "").isdigit() else ""
        out.append({
            "model": name, "family": "DeiT" if name.startswith("deit") else "ViT", "arch_type": "transformer",
            "img_size": spec["shape"]["img_size"], "params_m": "", "gmacs": "", "device": device or r["device"],
            "soc": soc, "cpu_cores": cores + ("" if "GHz" in cores else clock), "threads": r["threads"], "batch": 1,
            "dtype": "fp32", "runtime": "ONNX Runtime (Python API, CPUExecutionProvider)",
            "runtime_version": r["runtime_version"], "latency_ms": f"{float(r['latency_ms']):.3f}",
            "statistic": f"lowest of {r['rounds']} interleaved pass medians",
            "source_repo": SOURCE, "source_commit": source_commit, "source_file": source_file, "source_url": "",
            "licence": "MIT (this project)",
            "notes": (f"timed by run_kit.py, {r['repeats']} runs over {r['rounds']} passes (pass medians "
                      f"{r['round_ms']} ms), {r['warmup']} warm-up runs; cpu_model {r['cpu_model']!r}; "
                      f"governor {r['governor']}; {r['os']}; measured_at {r['measured_at']}; random weights, "
                      "timm's architecture exported by toolkit.export (the graph maec apply deploys)"),
        })
    return out


def mixed_cores(cpu_cores: str) -> bool:
    """True when ``cpu_cores`` names more than one core type (a big.LITTLE SoC): the user must say which
    cores the threads ran on."""
    return core_type(cpu_cores) == "" or len(set(re.findall(r"Cortex-[AX]\d+", cpu_cores))) > 1


def append_rows(rows: list[dict], path: Path = RUNS_CSV) -> int:
    """Append ``rows`` to ``path`` (header written when the file is new or empty); returns rows written."""
    new = not path.is_file() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=WHOLE_COLUMNS)
        if new:
            w.writeheader()
        w.writerows(rows)
    return len(rows)
