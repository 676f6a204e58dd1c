"""Input errors of the latency predictor.

They subclass :class:`toolkit.errors.UsageError`, which ``USER_ERRORS`` already lists, so every entry
point turns them into one sentence and exit status 2 without ``toolkit`` importing ``evaluators``
(the packages depend on each other in one direction only).
"""
from __future__ import annotations

from toolkit.errors import UsageError


class ProfileError(UsageError):
    """An unknown device name, or a profile file that is missing, unreadable or malformed."""


class CalibrationError(UsageError):
    """A measurement CSV that cannot be read or does not hold enough usable rows to fit a profile."""
