"""The progress bar of a search, shared by the Optuna and Ray backends: one tick per finished trial,
with the best feasible trial so far and the stage (or state) of the last one."""
from __future__ import annotations

import sys
from collections.abc import Callable

import optuna
from tqdm.auto import tqdm

from search.winner import best_feasible


class TrialProgress:
    """``with TrialProgress(total, enabled) as on_trial_end: ...``; ``on_trial_end(study, frozen_trial)``
    is an Optuna callback (the Ray backend calls it from its searcher)."""

    def __init__(self, total: int, enabled: bool = True):
        self.bar = tqdm(total=total, desc="trials", disable=not enabled, file=sys.stderr)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        best = best_feasible(study)
        self.bar.update(1)
        self.bar.set_postfix(best=f"{best.values[0]:.4f}@{best.values[1]:.1f}ms" if best else "none feasible",
                             last=trial.user_attrs.get("stage", trial.state.name))

    def __enter__(self) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
