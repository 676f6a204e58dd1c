"""The project's input errors, collected so every entry point maps them to exit status 2."""
from __future__ import annotations

from mae.checkpoints import CheckpointError
from mae.data import DatasetError
from spaces.config import ConfigError


class UsageError(Exception):
    """A command-line value that parsed but makes no sense (e.g. ``--limit 0``); one sentence."""


USER_ERRORS: tuple[type[Exception], ...] = (CheckpointError, DatasetError, ConfigError, UsageError)
