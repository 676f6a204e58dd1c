"""``SearchSettings``: everything a search needs, parsed and checked from the command line.

The settings are plain data, written to ``results/<study>/settings.json`` so that a run can be
reproduced and resumed.
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import UserError
from evaluators.latency.predict.profile import DEFAULT_PROFILE, load_profile
from search.budget import parse_budget_ms
from spaces.space import DEFAULT_TECHNIQUES, TECHNIQUES

SAMPLERS = ("tpe", "nsga2", "random")
TASKS = ("classify", "reconstruct")
BACKENDS = ("optuna", "ray")
SPACES = ("joint", "uniform", "allocate")
FIDELITIES = ("cheap", "recovered")


class SettingsError(UserError, ValueError):
    """A command-line value that cannot be used; one sentence."""


@dataclass(frozen=True, kw_only=True)
class SearchSettings:
    budget_ms: float
    device: str = DEFAULT_PROFILE
    model: str = "default"
    data: str = "fashion-mnist"
    data_dir: str | None = None
    task: str = "classify"
    trials: int = 40
    timeout_s: float | None = 15 * 60
    sampler: str = "tpe"
    space: str = "allocate"  # the best at 10 and 20 ms, recovered, on test (benchmarks/README.md section 11)
    sensitivity_images: int = 64
    techniques: tuple[str, ...] = DEFAULT_TECHNIQUES
    storage: str | None = None
    study_name: str | None = None
    resume: bool = False
    join: bool = False
    seed: int = 0
    results_dir: str = "results"
    backend: str = "optuna"
    jobs: int = 1
    ray_address: str | None = None
    # one fidelity per objective: "cheap" scores every trial without recovery on `cheap_val_images`
    # validation images, then the `recover_top` best feasible ones get `recover_steps` of distillation and
    # the whole validation split, and the winner is the best of those; "recovered" gives every trial the
    # recovered score (and only then are the distillation knobs searched: a cheap score cannot see them)
    fidelity: str = "cheap"
    cheap_val_images: int = 1000
    recover_steps: int = 150
    recover_batch_size: int = 128  # images per distillation step (sized for the 28 px default; smaller for ViT-B)
    recover_top: int = 3
    # the winner, re-built once at the end, gets this many distillation steps (when distill is a technique
    # and this exceeds its trial's): trials only need recovery good enough to rank configs, the shipped
    # model deserves the longer recovery; winner.json records the steps, so `maec apply` repeats them
    final_recover_steps: int = 600
    # a new joint-space study starts with the uniform heuristic's largest configs within budget
    warm_start: bool = True
    # quick runs (tests, benchmarks): use only the first N train / val images; None = the whole split.
    # The test split, scored once for the winner, is never cut.
    limit_train: int | None = None
    limit_val: int | None = None
    far_over_budget: float = 1.5
    bf16: bool = True
    accelerator: str = "cpu"  # where recovery and scoring run (resolved from --accelerator auto|cpu|cuda)
    progress: bool = True
    # before the first trial: a classifier at chance level on the validation images is refused
    check_teacher: bool = True

    @property
    def resolved_study_name(self) -> str:
        if self.study_name:
            return self.study_name
        techniques = "+".join(self.techniques) if set(self.techniques) != set(DEFAULT_TECHNIQUES) else "all"
        # a profile given as a .json path: its file name (a path would nest folders under results/)
        device = Path(self.device).stem if self.device.endswith(".json") else self.device
        # a model or data other than the embedded default: a short tag of each, so that a search of another
        # model or on other images does not collide with (or --resume) the default's study
        tags = [_tag(spec) for spec, default in ((self.model, "default"), (self.data, "fashion-mnist"))
                if spec != default]
        return "-".join([self.task, *tags, device, f"{self.budget_ms:g}ms", self.space, techniques, self.sampler,
                         f"s{self.seed}"])

    @property
    def study_dir(self) -> Path:
        return Path(self.results_dir) / self.resolved_study_name

    @property
    def resolved_storage(self) -> str:
        return self.storage or f"sqlite:///{self.study_dir / 'study.db'}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["study_name"], d["storage"] = self.resolved_study_name, self.resolved_storage
        return d


def _tag(spec: str) -> str:
    """A short, file-name-safe tag of a model or data spec: the last path part without suffix
    (``/data/imagenet/`` -> ``imagenet``, ``ckpt/vit_b.pth`` -> ``vit-b``, ``timm:deit_tiny`` -> ``deit-tiny``)."""
    name = Path(spec.removeprefix("timm:").rstrip("/\\")).stem or spec
    return (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "custom")[:24]


class _OneLineParser(argparse.ArgumentParser):
    """argparse exits with status 2 on bad arguments already; keep its message to one sentence (no usage
    block), like ``maec``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(
        prog="run_search.py",
        description="Search the best compressed MAE ViT that fits an on-device latency budget.")
    p.add_argument("--budget", required=True, help="latency budget with a unit: 20ms, 0.02s, 20000us")
    p.add_argument("--device", default=DEFAULT_PROFILE, help="device profile name or .json (see `maec devices`)")
    p.add_argument("--model", default="default", help="'default', a checkpoint path, or timm:NAME")
    p.add_argument("--data", default="fashion-mnist", help="'fashion-mnist' or an image folder")
    p.add_argument("--data-dir", default=None, help="folder holding the Fashion-MNIST IDX files")
    p.add_argument("--task", choices=TASKS, default="classify")
    p.add_argument("--trials", type=int, default=40,
                   help="number of trials to run; with --resume, the study's total (what a killed run left "
                        "undone is run; raise it to add trials)")
    p.add_argument("--timeout", default="15min", help="stop starting trials after this long: 900s, 15min, 0 = none")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe")
    p.add_argument("--strategy", "--space", dest="space", choices=SPACES, default="allocate",
                   help="allocate (default): a measured sensitivity table solved exactly under the budget, Optuna "
                        "searching the damage weights per block and knob type and the budget share; joint: "
                        "per-layer knobs sampled raw by the sampler; uniform: one ratio for every layer (a baseline)")
    p.add_argument("--sensitivity-images", type=int, default=64,
                   help="allocate: calibration images of the sensitivity table (cached on disk)")
    p.add_argument("--techniques", default=",".join(DEFAULT_TECHNIQUES),
                   help=f"comma-separated subset of {','.join(TECHNIQUES)} (default: all but tokens)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default: SQLite in results/<study>/)")
    p.add_argument("--study-name", default=None)
    p.add_argument("--resume", action="store_true",
                   help="continue an existing study after it stopped or was killed (its unfinished trials are "
                        "marked failed); not while other workers still run it: use --join for that")
    p.add_argument("--join", action="store_true",
                   help="work on the study together with other processes running it on the same --storage "
                        "(creates it if missing, leaves their running trials alone)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results-dir", default="results")
    p.add_argument("--backend", choices=BACKENDS, default="optuna")
    p.add_argument("--jobs", type=int, default=1, help="trials in parallel")
    p.add_argument("--ray-address", default=None, help="existing Ray cluster (with --backend ray)")
    p.add_argument("--cheap-val-images", type=int, default=1000)
    p.add_argument("--fidelity", choices=FIDELITIES, default="cheap",
                   help="what every trial's score is: cheap (compressed, no recovery, --cheap-val-images "
                        "validation images; the --recover-top best are recovered after the search to pick the "
                        "winner) or recovered (--recover-steps of distillation and the whole validation split, "
                        "for every trial: slow)")
    p.add_argument("--recover-steps", type=int, default=150, help="distillation steps of a recovered score")
    p.add_argument("--recover-batch-size", type=int, default=128,
                   help="images per distillation step (128 fits the 28 px default; see the README for ViT-B)")
    p.add_argument("--recover-top", type=int, default=3,
                   help="cheap fidelity: how many of the best feasible trials are recovered after the search to "
                        "choose the winner by recovered validation score (0: the best cheap score wins)")
    p.add_argument("--final-recover-steps", type=int, default=600,
                   help="distillation steps of the winner when it is re-built at the end (0: as in its trial)")
    p.add_argument("--limit-train", type=int, default=None, help="use only the first N training images (quick runs)")
    p.add_argument("--limit-val", type=int, default=None, help="use only the first N validation images (quick runs)")
    p.add_argument("--no-warm-start", action="store_true",
                   help="do not start a new joint-space study with the uniform heuristic's largest configs "
                        "that fit the budget (up to 6 enqueued trials)")
    p.add_argument("--accelerator", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where recovery and scoring run (default auto: a CUDA GPU when torch sees one, else the "
                        "CPU); the latency budget is always the --device profile's")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast for recovery and scoring (default: where the CPU runs it fast, i.e. "
                        "AVX-512/AMX; --no-bf16: fp32, bit-stable)")
    p.add_argument("--no-teacher-check", action="store_true",
                   help="search even a classifier that scores at chance level on the validation images")
    p.add_argument("--no-progress", action="store_true")
    return p


def parse_duration_s(text: str) -> float | None:
    """``900``/``900s``/``15min``/``1h`` -> seconds; ``0`` -> None (no timeout)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|min|m|h)?\s*", text)
    if not m:
        raise SettingsError(f"--timeout {text!r} is not a duration: write e.g. 900s, 15min or 1h")
    seconds = float(m.group(1)) * {"s": 1, None: 1, "min": 60, "m": 60, "h": 3600}[m.group(2)]
    return seconds or None


def _glue_negative_values(argv: list[str]) -> list[str]:
    """``--budget -5ms`` -> ``--budget=-5ms``: argparse takes ``-5ms`` for an option and would answer with
    its usage text; glued, the value reaches the budget parser, which says what is wrong in one sentence."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in ("--budget", "--timeout") and re.match(r"-\.?\d", arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def _resolve_accelerator(name: str, bf16: bool | None) -> tuple[str, bool]:
    """``(device, bf16)`` of ``--accelerator`` and ``--bf16/--no-bf16`` (mae.accelerator's rules)."""
    # torch: imported only once the arguments are known good
    from mae.accelerator import AcceleratorError, resolve_accelerator

    try:
        accel = resolve_accelerator(name, bf16)
    except AcceleratorError as e:
        raise SettingsError(str(e)) from None
    return accel.device, accel.bf16


def settings_from_args(argv: list[str] | None = None) -> SearchSettings:
    """Parse and check; raises SettingsError (or BudgetError) with one sentence."""
    a = build_parser().parse_args(_glue_negative_values(sys.argv[1:] if argv is None else list(argv)))
    techniques = tuple(t.strip() for t in a.techniques.split(",") if t.strip())
    unknown = [t for t in techniques if t not in TECHNIQUES]
    if unknown or not techniques:
        raise SettingsError(f"--techniques: {unknown[0] if unknown else 'nothing'} is not one of "
                            f"{', '.join(TECHNIQUES)}")
    if techniques == ("distill",):
        raise SettingsError("--techniques distill alone compresses nothing: add prune, quant or lowrank")
    for name, value, low in (("--trials", a.trials, 1), ("--jobs", a.jobs, 1), ("--cheap-val-images", a.cheap_val_images, 1),
                             ("--recover-steps", a.recover_steps, 0), ("--recover-batch-size", a.recover_batch_size, 1),
                             ("--recover-top", a.recover_top, 0), ("--final-recover-steps", a.final_recover_steps, 0),
                             ("--limit-train", 1 if a.limit_train is None else a.limit_train, 1),
                             ("--limit-val", 1 if a.limit_val is None else a.limit_val, 1),
                             ("--sensitivity-images", a.sensitivity_images, 1)):
        if value < low:
            raise SettingsError(f"{name} must be at least {low}, got {value}")
    if a.fidelity == "recovered" and ("distill" not in techniques or a.recover_steps == 0):
        raise SettingsError("--fidelity recovered needs distill among --techniques and --recover-steps above 0")
    if a.resume and a.join:
        raise SettingsError("--resume and --join exclude each other: --resume continues a stopped study, "
                            "--join adds a worker to a running one")
    if a.backend == "ray" and importlib.util.find_spec("ray") is None:
        raise SettingsError("--backend ray needs Ray: pip install 'mae-compress-search[ray]' (or ray[tune])")
    if a.ray_address and a.backend != "ray":
        raise SettingsError("--ray-address needs --backend ray")
    budget_ms = parse_budget_ms(a.budget)
    accelerator, bf16 = _resolve_accelerator(a.accelerator, a.bf16)
    load_profile(a.device)  # an unknown device is refused now (ProfileError), not after the model and data load
    return SearchSettings(
        budget_ms=budget_ms, device=a.device, model=a.model, data=a.data, data_dir=a.data_dir,
        task=a.task, trials=a.trials, timeout_s=parse_duration_s(a.timeout), sampler=a.sampler,
        techniques=techniques, space=a.space, sensitivity_images=a.sensitivity_images, storage=a.storage, study_name=a.study_name, resume=a.resume,
        join=a.join, seed=a.seed,
        results_dir=a.results_dir, backend=a.backend, jobs=a.jobs, ray_address=a.ray_address,
        fidelity=a.fidelity, cheap_val_images=a.cheap_val_images, recover_steps=a.recover_steps,
        recover_batch_size=a.recover_batch_size,
        recover_top=a.recover_top,
        final_recover_steps=a.final_recover_steps, limit_train=a.limit_train,
        limit_val=a.limit_val, bf16=bf16, accelerator=accelerator, warm_start=not a.no_warm_start,
        progress=not a.no_progress, check_teacher=not a.no_teacher_check,
    )
