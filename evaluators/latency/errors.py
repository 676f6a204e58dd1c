"""Input errors of the latency predictor; both are :class:`core.errors.UserError`, so every entry
point turns them into one sentence and exit status 2."""
from __future__ import annotations

from core.errors import UserError


class ProfileError(UserError):
    """An unknown device name, or a profile file that is missing, unreadable or malformed."""


class CalibrationError(UserError):
    """A measurement CSV that cannot be read or does not hold enough usable rows to fit a profile."""
