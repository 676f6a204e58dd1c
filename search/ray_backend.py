"""The Ray Tune backend (``--backend ray``): the same :class:`Objective`, run as Ray Tune trials in
parallel (up to ``--jobs``) on a local Ray that this module starts, or on a cluster (``--ray-address``).

How a Ray trial reaches the study that :func:`search.engine.search` opened, so that ``results/<study>/``
and ``winner.json`` come out exactly as with the Optuna backend:

* Ray's ``OptunaSearch`` takes an Optuna ``storage``, ``study_name`` and ``sampler`` and opens its study
  with ``load_if_exists=True``. We hand it *our* study's storage, name and (constraint-aware) sampler,
  so every suggestion is an ``ask()`` on our study: the trial exists in our storage with its number from
  the moment Ray schedules it (a kill leaves it RUNNING, and ``--resume`` marks it failed as usual).
  The alternative, copying finished Ray trials into the study with ``add_trial(create_trial(...))``,
  would hide running trials from the storage, renumber trials and double the bookkeeping.
* The search space is a define-by-run function that calls ``setup.space.sample(trial)`` on the Optuna
  trial that ``OptunaSearch`` asked for: the same conditional space, the same parameter names.
* Workers never touch the storage: the driver (where the searcher runs) does all writes. So a SQLite or
  journal file on the driver's disk is enough even on a multi-machine cluster, and there are no
  concurrent writers. A worker runs the objective on a ``FixedTrial`` holding the suggested params and
  reports the values together with the user attrs and constraints the objective set (as JSON).
* Constraints: ``OptunaSearch.on_trial_complete`` only calls ``study.tell(values)``; it has no way to
  carry ``set_constraint``. :class:`StudySearch` overrides it to copy the worker's user attrs and
  constraint onto the Optuna trial *before* ``tell`` (as ``Trial.set_constraint`` would have), so the
  sampler (TPE/NSGA-II read ``constraints:*`` system attrs of finished trials), the dashboard and the
  winner selection see exactly what they see with the Optuna backend. No ``constraints_func`` is needed.
* A failing objective is caught in the worker and reported as ``fail_reason``; the driver records the
  trial as FAIL with that reason (Ray's own wrapper would record a reported NaN as COMPLETE-and-warn,
  and an error without its message).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import ray
import torch
from ray import tune
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from evaluators.latency.predict.predictor import LatencyPredictor
from evaluators.latency.predict.profile import DeviceProfile
from search.objective import (
    OBJECTIVE_NAMES,
    Objective,
    check_finite,
    fail_reason,
    set_constraint,
)
from search.progress import TrialProgress
from search.settings import SearchSettings, SettingsError
from search.setup import SearchSetup
from spaces.config import CompressionConfig
from spaces.shape import ModelShape

# keys the define-by-run function adds to a Ray trial's config next to the sampled params
NUMBER_KEY = "__optuna_trial_number"
RECORD_KEY = "trial_record"  # the reported JSON: values or fail_reason, user attrs, constraints
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class _Predictor:
    """``setup.predict_ms`` for a worker: the profile is plain data; the predictor (with its price
    cache, which does not pickle) is rebuilt in the worker."""

    profile: DeviceProfile
    shape: ModelShape

    @property
    def task(self) -> str:
        return "reconstruct" if self.shape.is_mae else "classify"

    @property
    def predictor(self) -> LatencyPredictor:
        if self.profile.name not in _PREDICTORS:
            _PREDICTORS[self.profile.name] = LatencyPredictor(self.profile)
        return _PREDICTORS[self.profile.name]

    def __call__(self, config: CompressionConfig | None) -> float:
        return self.predictor.predict_ms(self.shape, config, task=self.task)

    def deployable(self, config: CompressionConfig) -> CompressionConfig:
        return self.predictor.deployable_config(self.shape, config, task=self.task)


_PREDICTORS: dict[str, LatencyPredictor] = {}  # per worker process (actors are reused across trials)


def run_trial(config: dict, *, objective: Objective, threads: int, metric_names: tuple[str, str]) -> None:
    """The Ray Tune trainable: one trial of ``objective``; reports values (NaN when it failed) and the
    record the driver writes into the study."""
    torch.set_num_threads(threads)  # the CPUs Ray reserved for this trial
    params = {k: v for k, v in config.items() if k != NUMBER_KEY}
    trial = optuna.trial.FixedTrial(params, config[NUMBER_KEY])
    record: dict = {}
    values = (math.nan, math.nan)
    try:
        values = check_finite(objective(trial))
        record["values"] = list(values)
    except optuna.TrialPruned:  # far over budget: the driver records it as pruned, without values
        record["pruned"] = True
    except Exception as e:  # noqa: BLE001 - any failure is the trial's, recorded with its reason
        record["fail_reason"] = fail_reason(e)
    record["user_attrs"], record["constraints"] = trial.user_attrs, trial.constraints
    # both metrics are always reported: Tune refuses a first result without the searcher's metrics
    tune.report({metric_names[0]: values[0], metric_names[1]: values[1],
                 RECORD_KEY: json.dumps(record, default=str)})


class StudySearch(OptunaSearch):
    """``OptunaSearch`` on our study, writing user attrs, constraints and failures the way
    :mod:`search.engine`'s Optuna backend does; stops suggesting after ``deadline`` (``--timeout``:
    running trials finish, as ``study.optimize(timeout=...)`` does)."""

    def __init__(self, study: optuna.Study, setup: SearchSetup, metric_names: tuple[str, str],
                 deadline: float | None, on_trial_end):
        self._study, self._deadline, self._on_trial_end = study, deadline, on_trial_end
        space = setup.space

        def define(trial) -> dict:  # runs in the driver, on the Optuna trial OptunaSearch asked for
            space.sample(trial)
            return {NUMBER_KEY: trial.number}

        super().__init__(space=define, metric=list(metric_names), mode=["max", "min"], sampler=study.sampler,
                         study_name=study.study_name, storage=study._storage)

    def suggest(self, trial_id: str):
        if self._deadline is not None and time.monotonic() > self._deadline:
            return Searcher.FINISHED
        return super().suggest(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial: optuna.Trial = self._ot_trials[trial_id]
        record = json.loads(result[RECORD_KEY]) if result and RECORD_KEY in result else {
            "fail_reason": "the Ray worker died before it reported (see the Ray logs)" if error
            else "stopped by Ray before it reported"}
        try:
            for key, value in record.get("user_attrs", {}).items():
                ot_trial.set_user_attr(key, value)
            for key, value in record.get("constraints", {}).items():
                set_constraint(ot_trial, key, value)
            if record.get("pruned"):
                frozen = self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
            elif "fail_reason" not in record:
                frozen = self._ot_study.tell(ot_trial, record["values"])
        except Exception as e:  # noqa: BLE001 - a record the study refuses fails its trial, not the search
            record["fail_reason"] = fail_reason(e)
        if "fail_reason" in record:
            ot_trial.set_user_attr("fail_reason", record["fail_reason"])
            frozen = self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
        self._completed_trials.add(trial_id)
        self._on_trial_end(self._study, frozen)

    def fail_unfinished(self, reason: str) -> None:
        """Trials that were asked but never reported (Ray stopped first) are marked FAIL, not left RUNNING."""
        for trial_id, ot_trial in self._ot_trials.items():
            if trial_id not in self._completed_trials:
                ot_trial.set_user_attr("fail_reason", reason)
                self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
                self._completed_trials.add(trial_id)

    # Tune pickles its searcher with the experiment (tuner.pkl) and checkpoints it now and then, for
    # its own experiment restore. This engine resumes from the study (--resume) instead, and storages,
    # samplers and the progress bar do not pickle: only plain settings go into those pickles.
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k in ("_metric", "_mode", "_study_name", "_seed")}

    def save(self, checkpoint_path: str) -> None:
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass


def _start_ray(settings: SearchSettings) -> bool:
    """Connect to ``--ray-address`` or start a local Ray with this machine's cores; True when this call
    started it (and so must shut it down). An already initialised Ray (a notebook, a test) is used."""
    if ray.is_initialized():
        return False
    common = {"log_to_driver": False, "configure_logging": False}
    if settings.ray_address:
        import evaluators
        import mae
        import search
        import spaces
        import toolkit

        # cluster nodes get this exact code (their Python needs the dependencies: pip install '.[ray]')
        try:
            ray.init(address=settings.ray_address, runtime_env={"py_modules": [spaces, mae, toolkit, evaluators, search]},
                     **common)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise SettingsError(f"--ray-address {settings.ray_address}: cannot connect ({str(e).splitlines()[0]})") from None
    else:
        # local workers import this code from where the driver does (the project may not be installed)
        path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        ray.init(num_cpus=max(os.cpu_count() or 1, settings.jobs), include_dashboard=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}}, **common)
    return True


def cpus_per_trial(jobs: int) -> int:
    """An even share of the cluster's CPUs for ``jobs`` parallel trials, at most one node's worth."""
    nodes = [n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    total = sum(nodes) or 1
    return max(1, int(min(max(nodes, default=1), total // jobs)))


def run_ray(settings: SearchSettings, setup: SearchSetup, study: optuna.Study, n_trials: int) -> None:
    """Run ``n_trials`` trials of the objective through Ray Tune; they land in ``study``."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no Tune tables; our bar reports
    # Tune's CSV/JSON/TensorBoard result files would go to a scratch folder that is deleted anyway
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    started = _start_ray(settings)
    try:
        threads = cpus_per_trial(settings.jobs)
        metric_names = OBJECTIVE_NAMES[setup.evaluator.metric_name]
        predictor = _Predictor(setup.predictor.device, setup.shape)
        objective = Objective(settings=settings, space=setup.space, evaluator=setup.evaluator,
                              predict_ms=predictor, deployable=predictor.deployable)
        # with_parameters: the teacher and the data go to Ray's object store once, not with every trial
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, objective=objective, threads=threads, metric_names=metric_names),
            {"cpu": threads})
        deadline = time.monotonic() + settings.timeout_s if settings.timeout_s else None
        with TrialProgress(n_trials, settings.progress) as on_trial_end, \
                tempfile.TemporaryDirectory(prefix="ray-tune-") as ray_dir:
            searcher = StudySearch(study, setup, metric_names, deadline, on_trial_end)
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(search_alg=searcher, num_samples=n_trials,
                                            max_concurrent_trials=settings.jobs, reuse_actors=True),
                # Ray's experiment folder is scratch: the study and results/<study>/ hold the results
                run_config=tune.RunConfig(name=study.study_name, storage_path=ray_dir, verbose=0))
            try:
                tuner.fit()
            finally:
                searcher.fail_unfinished("interrupted: the Ray experiment ended before this trial reported")
    finally:
        if started:
            ray.shutdown()
