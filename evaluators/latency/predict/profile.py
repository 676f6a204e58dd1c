"""Device profiles: the fitted parameters of the per-operator cost model, as a JSON file.

A profile keeps the *core* terms (compute and memory cost of each operator kind and dtype on one
CPU at one thread count: ``ns_per_mac``, ``ns_per_weight``, ...) apart from the *overhead* terms of
the runtime that dispatches the operators (``op_us`` per operator, ``call_us`` per inference), so
that a core measured through one framework can be paired with another runtime's overhead.

Where profiles come from: shipped ones in ``evaluators/latency/profiles/`` (built from public ARM
measurements by :mod:`evaluators.latency.derive.build`), and user ones written by ``maec calibrate`` into
``$MAE_LATENCY_PROFILES`` (default ``~/.config/maec/profiles``). ``--device`` takes a name from
either place or a path to a ``.json`` file.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evaluators.latency.errors import ProfileError

SCHEMA_VERSION = 1
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "profiles"  # evaluators/latency/profiles
DEFAULT_PROFILE = "rpi4-a72-ort-1t"
CONFIDENCE = ("high", "medium", "low")


def user_profile_dir() -> Path:
    """Where ``maec calibrate`` writes profiles: ``$MAE_LATENCY_PROFILES`` or ``~/.config/maec/profiles``."""
    env = os.environ.get("MAE_LATENCY_PROFILES")
    return Path(env) if env else Path.home() / ".config" / "maec" / "profiles"


@dataclass(frozen=True)
class DeviceProfile:
    """Everything needed to price an operator list on one device, runtime and thread count.

    ``core["linear/w8a8"] = {"ns_per_mac": .., "ns_per_weight": .., "ns_per_act": ..}`` (see
    :data:`evaluators.latency.predict.cost.FEATURES` for each kind's terms); ``overhead = {"runtime": str,
    "op_us": {"linear/fp32": .., ...}, "call_us": .., "footprint": {"cache_bytes": .., "ns_per_byte": ..}}``
    (``footprint`` optional: :func:`evaluators.latency.predict.cost.footprint_ms`). ``validation`` holds held-out metrics
    (``mape``, ``within_10pct``, ``n``) and cross-checks; ``provenance`` one entry per data source
    (``repo``, ``commit``, ``file``, ``rows_used``, ``use``).
    """

    name: str
    device: str
    cpu: str
    runtime: str
    threads: int
    confidence: str
    core: dict[str, dict[str, float]]
    overhead: dict[str, Any]
    provenance: list[dict[str, Any]] = field(default_factory=list)
    validation: dict[str, Any] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)
    notes: str = ""
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        # json writes floats with repr(), which round-trips exactly: save/load is lossless.
        return json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: Any, source: str = "profile") -> DeviceProfile:
        """Parse and check a profile; ProfileError names the file and the field."""
        if not isinstance(d, dict):
            raise ProfileError(f"{source} is not a JSON object")
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ProfileError(f"{source}: schema_version {d.get('schema_version')!r} is not {SCHEMA_VERSION}")
        required = ("name", "device", "cpu", "runtime", "threads", "confidence", "core", "overhead")
        missing = [k for k in required if k not in d]
        if missing:
            raise ProfileError(f"{source} lacks the field {missing[0]!r}")
        known = {f for f in cls.__dataclass_fields__}
        extra = sorted(set(d) - known)
        if extra:
            raise ProfileError(f"{source} has an unknown field {extra[0]!r}")
        if d["confidence"] not in CONFIDENCE:
            raise ProfileError(f"{source}: confidence {d['confidence']!r} is not one of {', '.join(CONFIDENCE)}")
        if not isinstance(d["threads"], int) or d["threads"] < 1:
            raise ProfileError(f"{source}: threads must be a whole number >= 1")
        _check_numbers(d["core"], f"{source}: core")
        overhead = d["overhead"]
        if not isinstance(overhead, dict) or not isinstance(overhead.get("op_us"), dict) or "call_us" not in overhead:
            raise ProfileError(f"{source}: overhead needs 'op_us' (per operator) and 'call_us'")
        _check_numbers({"op_us": overhead["op_us"]}, f"{source}: overhead")
        _check_number(overhead["call_us"], f"{source}: overhead.call_us")
        if "footprint" in overhead:
            fp = overhead["footprint"]
            if not isinstance(fp, dict) or set(fp) != {"cache_bytes", "ns_per_byte"}:
                raise ProfileError(f"{source}: overhead.footprint needs exactly 'cache_bytes' and 'ns_per_byte'")
            _check_numbers(fp, f"{source}: overhead.footprint")
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> DeviceProfile:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise ProfileError(f"profile file {path} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ProfileError(f"profile file {path} is not readable JSON ({type(e).__name__})") from None
        return cls.from_dict(d, source=f"profile file {path}")

    def save(self, path: str | Path) -> Path:
        from core.files import write_text_atomic

        path = Path(path)
        write_text_atomic(path, self.to_json())
        return path

    def summary(self) -> str:
        """One line: name, device, runtime, threads, held-out MAPE / ±10% share."""
        h = self.validation.get("heldout", {})
        fig = (f"held-out MAPE {100 * h['mape']:.1f}%, {100 * h['within_10pct']:.0f}% within ±10% (n={h['n']})"
               if h else "no held-out figures")
        return f"{self.name}: {self.device}, {self.runtime}, {self.threads} thread(s), {self.confidence} confidence, {fig}"


def _check_number(v: Any, where: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ProfileError(f"{where} must be a finite number >= 0, got {v!r}")


def _check_numbers(d: Any, where: str) -> None:
    if not isinstance(d, dict):
        raise ProfileError(f"{where} must be an object")
    for k, v in d.items():
        if isinstance(v, dict):
            _check_numbers(v, f"{where}.{k}")
        else:
            _check_number(v, f"{where}.{k}")


# ---- registry -------------------------------------------------------------------------------------
def _profile_files() -> dict[str, Path]:
    """``{name: path}``: shipped first, user profiles override a shipped name."""
    out: dict[str, Path] = {}
    for folder in (SHIPPED_DIR, user_profile_dir()):
        if folder.is_dir():
            for p in sorted(folder.glob("*.json")):
                out[p.stem] = p
    return out


def profile_names() -> list[str]:
    return sorted(_profile_files())


_CACHE: dict[tuple[str, float], DeviceProfile] = {}


def load_profile(name_or_path: str | Path | None = None) -> DeviceProfile:
    """A profile by name (shipped or user), or from a ``.json`` path; None gives the default."""
    spec = str(name_or_path or DEFAULT_PROFILE)
    path = Path(spec)
    if not (spec.endswith(".json") or path.is_file()):
        files = _profile_files()
        if spec not in files:
            raise ProfileError(f"unknown device {spec!r}; known: {', '.join(sorted(files)) or 'none'} "
                               "(or pass a profile .json path)")
        path = files[spec]
    key = (str(path.resolve()), path.stat().st_mtime if path.exists() else 0.0)
    if key not in _CACHE:
        _CACHE[key] = DeviceProfile.load(path)
    return _CACHE[key]


def all_profiles() -> list[DeviceProfile]:
    return [load_profile(p) for p in _profile_files().values()]
