"""Latency budgets as the user writes them: ``20ms``, ``0.02s``, ``20000us`` -> milliseconds."""
from __future__ import annotations

import math
import re

from core.errors import UserError

_UNITS_TO_MS = {"ms": 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3}
_BUDGET = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(ms|s|us|µs)\s*$")


class BudgetError(UserError, ValueError):
    """A budget that cannot be read; the message is one sentence with a hint."""


def parse_budget_ms(text: str) -> float:
    """``"20ms"`` -> 20.0. A bare number, an unknown unit, or a value <= 0 raises BudgetError."""
    m = _BUDGET.match(text)
    if not m:
        if re.fullmatch(r"\s*[-+]?[\d.eE+-]+\s*", text):
            raise BudgetError(f"--budget {text!r} has no unit: write it with one, e.g. {text.strip()}ms")
        raise BudgetError(f"--budget {text!r} is not a latency: write e.g. 20ms, 0.02s or 20000us")
    value_ms = float(m.group(1)) * _UNITS_TO_MS[m.group(2)]
    if not math.isfinite(value_ms) or value_ms <= 0:
        raise BudgetError(f"--budget {text!r} must be a positive latency, e.g. 20ms")
    return value_ms
