"""The one base class of the project's input errors.

Every error that bad input can cause (a budget without a unit, an unknown device, a config that does
not fit the model, a corrupt checkpoint, a missing dataset) derives from :class:`UserError`. Entry
points (``maec``, ``run_search.py``) catch it and print its one sentence with exit status 2; anything
else is a bug and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """Bad input from the user; ``str(error)`` is one sentence saying what is wrong and what to do."""


class UsageError(UserError):
    """A command-line value that parsed but makes no sense (e.g. ``--limit 0``); one sentence."""
