"""The Optuna backend: create or resume the study, run the trials, write ``results/<study>/``."""
from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import torch

from core.files import write_atomic, write_text_atomic
from search.objective import OBJECTIVE_NAMES, Objective, check_finite, fail_reason
from search.progress import TrialProgress
from search.results import layer_plot, layer_table, pareto_front, pareto_plot, write_tables
from search.settings import SearchSettings, SettingsError
from search.setup import SearchSetup, build_setup
from search.storage import dashboard_command, make_storage
from search.warm_start import enqueue_seeds, seed_params
from search.winner import choose_winner, closest_trials, export_winner, predicted_latency_ms
from spaces.config import CompressionConfig

WARM_START_TRIALS = 6


@dataclass
class SearchOutcome:
    study: optuna.Study
    out_dir: Path
    winner: dict | None
    failed: int


def sampler_seed(settings: SearchSettings, n_existing: int) -> int:
    """The sampler's seed: ``--seed`` for a new study. A resumed study offsets it by the trials it holds,
    else the resumed run would draw the same random (start-up) configs as the first run did; a joining
    worker also mixes in its process id, else workers started together would draw the same configs."""
    if settings.join:
        return int(np.random.SeedSequence([settings.seed, n_existing, os.getpid()]).generate_state(1)[0])
    return settings.seed + n_existing


def make_sampler(settings: SearchSettings, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """Constraint-aware samplers read the constraint that the objective sets with ``set_constraint``."""
    seed = settings.seed if seed is None else seed
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(8, min(20, settings.trials // 3)))
    # multivariate + group: the knobs of one block interact (and are conditional on heads/units)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                      n_startup_trials=max(5, min(10, settings.trials // 4)),
                                      constant_liar=settings.jobs > 1 or settings.join,
                                      warn_independent_sampling=False)


def open_study(settings: SearchSettings, metric: str) -> optuna.Study:
    """Create the study, or load it with ``--resume``; refuse to mix the two up. With ``--join`` either
    is fine: the first of several workers started together creates it, the others load it."""
    storage_url = settings.resolved_storage
    try:
        storage = make_storage(storage_url)
    except ValueError as e:
        raise SettingsError(f"--storage: {e}") from None
    name = settings.resolved_study_name
    existing = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    if name in existing and not (settings.resume or settings.join):
        raise SettingsError(f"study {name!r} exists in {storage_url}: pass --resume to continue it, "
                            "or --study-name NAME for a new one")
    if name not in existing and settings.resume:
        raise SettingsError(f"--resume: there is no study {name!r} in {storage_url}")
    with warnings.catch_warnings():  # "experimental"/"deprecated" notes about options chosen on purpose
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        sampler = make_sampler(settings, sampler_seed(settings, existing.get(name, 0)))
        # load_if_exists: two joining workers may both find no study and race to create it
        study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                    directions=["maximize", "minimize"], sampler=sampler)
        if study.metric_names is None:
            study.set_metric_names(list(OBJECTIVE_NAMES[metric]))
    return study


# fail_reason of trials that were running when the search died; trials with a reason starting with
# "interrupted:" (also those Ray stopped before they reported) do not count towards --trials on --resume
INTERRUPTED = "interrupted: the search was killed"


def fail_interrupted(study: optuna.Study) -> int:
    """Trials left RUNNING by a killed run are marked FAIL (their work is lost; finished ones are kept)."""
    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "fail_reason", INTERRUPTED)
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        n += 1
    return n


def trials_to_run(settings: SearchSettings, study: optuna.Study) -> int:
    """``--trials`` for a new study or a joining worker; with ``--resume`` the study's total, so that the
    same command after a kill runs what is left (trials interrupted by the kill do not count)."""
    if not settings.resume:
        return settings.trials
    done = sum(1 for t in study.get_trials(deepcopy=False)
               if t.state.is_finished() and not str(t.user_attrs.get("fail_reason", "")).startswith("interrupted:"))
    return max(0, settings.trials - done)


class _RecordFailures:
    """Wraps the objective: an exception becomes a FAIL trial with its reason in ``fail_reason`` (a pruned
    trial stays pruned)."""

    def __init__(self, objective: Objective):
        self.objective = objective

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        try:
            return check_finite(self.objective(trial))
        except optuna.TrialPruned:  # far over budget: recorded as pruned, not as a failure
            raise
        except Exception as e:
            trial.set_user_attr("fail_reason", fail_reason(e))
            raise


def run_optuna(settings: SearchSettings, setup: SearchSetup, study: optuna.Study, n_trials: int) -> None:
    objective = _RecordFailures(Objective(settings=settings, space=setup.space, evaluator=setup.evaluator,
                                          predict_ms=setup.predict_ms, deployable=setup.deployable))
    # n_jobs threads share the cores: each gets its share of torch's intra-op threads (threads that
    # Optuna starts take the value set here), restored afterwards for whatever runs next in-process
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // settings.jobs))
    try:
        with TrialProgress(n_trials, settings.progress) as on_trial_end:
            t0 = time.monotonic()
            waiting = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
            first = min(waiting, n_trials) if settings.jobs > 1 else 0
            if first:
                # enqueued (warm-start) trials one at a time: threads popping the waiting queue of one
                # SQLite study together can take the same trial twice and leave another waiting
                study.optimize(objective, n_trials=first, timeout=settings.timeout_s, n_jobs=1,
                               catch=(Exception,), callbacks=[on_trial_end], gc_after_trial=True)
            left_s = None if settings.timeout_s is None else settings.timeout_s - (time.monotonic() - t0)
            if n_trials - first > 0 and (left_s is None or left_s > 0):
                study.optimize(objective, n_trials=n_trials - first, timeout=left_s, n_jobs=settings.jobs,
                               catch=(Exception,), callbacks=[on_trial_end], gc_after_trial=True)
    finally:
        torch.set_num_threads(threads)


def search(settings: SearchSettings) -> SearchOutcome:
    """Run (or resume) a search and write its results; returns the outcome."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    setup = build_setup(settings)
    floor_ms = setup.predict_ms(setup.smallest_config())
    if floor_ms > settings.budget_ms:
        raise SettingsError(f"--budget {settings.budget_ms:g}ms cannot be met on {setup.predictor.device.name}: "
                            f"even the smallest model this search can build predicts {floor_ms:.2f} ms")
    study = open_study(settings, setup.evaluator.metric_name)
    interrupted = fail_interrupted(study) if settings.resume else 0
    out_dir = settings.study_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "settings.json", json.dumps(
        settings.to_dict() | {"teacher_latency_ms": setup.predict_ms(None), "latency_floor_ms": floor_ms},
        indent=2, default=str) + "\n")
    study.set_user_attr("settings", settings.to_dict())
    n_trials = trials_to_run(settings, study)
    if settings.warm_start and settings.space in ("joint", "allocate") and not settings.join and not study.trials \
            and n_trials:
        if settings.space == "joint":
            seeds = seed_params(setup.shape, setup.space, lambda c: setup.predict_ms(setup.deployable(c)),
                                settings.budget_ms, n=min(WARM_START_TRIALS, n_trials))
        else:  # the unweighted allocation at a few budget shares
            from search.allocation_space import seed_params as allocation_seeds

            seeds = allocation_seeds(setup.space)[:n_trials]
        enqueue_seeds(study, seeds, "uniform heuristic" if settings.space == "joint" else "unweighted allocation")
    if n_trials == 0:
        print(f"study {study.study_name} already holds {settings.trials} finished trials: "
              "raise --trials to run more")
    elif settings.backend == "ray":
        from search.ray_backend import run_ray

        run_ray(settings, setup, study, n_trials)
    else:
        run_optuna(settings, setup, study, n_trials)
    return write_results(study, setup, settings, out_dir, interrupted)


def write_results(study: optuna.Study, setup: SearchSetup, settings: SearchSettings, out_dir: Path,
                  interrupted: int = 0) -> SearchOutcome:
    metric = setup.evaluator.metric_name
    best = choose_winner(study, setup, settings)  # first: it may recover the top trials, which the tables show
    df = write_tables(study, out_dir)
    pareto_plot(study, settings.budget_ms, out_dir / "pareto.html",
                f"{study.study_name}: validation {metric} vs predicted latency on {setup.predictor.device.name}")
    failed = int((df["state"] == "FAIL").sum()) if len(df) else 0
    winner = None
    if best is not None:
        winner = export_winner(study, best, setup, settings, out_dir)
        table = layer_table(CompressionConfig.from_dict(winner["config"]), CompressionConfig.identity(setup.shape),
                            sensitivity=getattr(setup.space, "table", None), shape=setup.shape)
        write_atomic(out_dir / "winner_layers.csv", lambda tmp: table.to_csv(tmp, index=False))
        layer_plot(table, out_dir / "winner_layers.html", f"winner (trial {best.number}) per layer")
    print_summary(study, df, metric, settings, out_dir, winner, failed, interrupted)
    return SearchOutcome(study, out_dir, winner, failed)


def print_summary(study, df, metric: str, settings: SearchSettings, out_dir: Path, winner: dict | None,
                  failed: int, interrupted: int) -> None:
    count = (lambda state: int((df["state"] == state).sum()) if len(df) else 0)  # noqa: E731
    pruned = f"{count('PRUNED')} pruned far over budget, " if count("PRUNED") else ""
    print(f"\nstudy {study.study_name}: {len(df)} trials ({count('COMPLETE')} complete, {pruned}{failed} failed"
          + (f", {interrupted} interrupted by a kill" if interrupted else "") + ")")
    if winner is None:
        print(f"no trial fits the {settings.budget_ms:g} ms budget. Closest trials:")
        for t in closest_trials(study):
            score = f"{metric} {t.values[0]:.4f}" if t.values else "not scored"
            print(f"  trial {t.number}: {predicted_latency_ms(t):.2f} ms predicted, {score}  {t.user_attrs.get('summary', '')}")
        print("Raise --budget, add techniques, or run more --trials (with --resume).")
        return
    front = pareto_front(study, df)[["number", metric, "latency_ms", "stage", "recovered_score", "params", "size_mb"]]
    print(f"Pareto front (feasible; validation {metric} at the {settings.fidelity} fidelity):")
    print(front.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    m = winner["metrics"]
    recovered = m.get(f"val_{metric}_recovered")
    print(f"\nwinner: trial {winner['provenance']['trial']}, val {metric} {m[f'val_{metric}']:.4f} ({settings.fidelity})"
          + (f", {recovered:.4f} recovered" if recovered is not None and settings.fidelity == "cheap" else "") + ", "
          f"test {metric} {m[f'test_{metric}']:.4f} (teacher {m[f'teacher_test_{metric}']:.4f}), "
          f"predicted {m['latency_ms']:.2f} ms (teacher {m['teacher_latency_ms']:.2f} ms, budget {m['budget_ms']:g} ms)")
    print(f"exported: {out_dir / 'winner.json'}")
    print(f"dashboard: {dashboard_command(settings.resolved_storage)}")
    print(f"deploy: maec apply {out_dir / 'winner.json'} --out {out_dir / 'deploy'}"
          "  (model and data: as recorded in winner.json)")


def exit_code(outcome: SearchOutcome) -> int:
    """0 with a winner; 1 when no trial met the budget (the message says what to do)."""
    return 0 if outcome.winner is not None else 1
