"""Parallel workers with plain Optuna: threads in one process (``--jobs``) and processes sharing one
storage (``--join``) lose and duplicate no trial."""
from __future__ import annotations

import optuna
import pytest
import torch
from searchkit import load, quick_args, quick_settings, start_cli

from search.engine import search
from search.storage import dashboard_command, journal_path, make_storage, repair_journal, sqlite_path

Done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_processes_on_one_storage_lose_and_duplicate_nothing(tmp_path, tiny_ckpt, kind):
    url = f"sqlite:///{tmp_path}/study.db" if kind == "sqlite" else f"journal:{tmp_path}/study.log"
    args = quick_args(tmp_path / "results", tiny_ckpt, "--storage", url, "--join")
    workers = [start_cli([*args, "--trials", str(n)]) for n in (2, 3)]  # started together: both race to create
    for w in workers:
        _, err = w.communicate(timeout=300)
        assert w.returncode in (0, 1), err  # 1: no trial met the budget, which is fine here
    trials = load(url).trials
    assert sorted(t.number for t in trials) == list(range(5))  # 2 + 3, numbered once each
    assert all(t.state in Done for t in trials)
    # the workers' samplers are seeded apart: they did not both draw the same configs
    configs = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(configs)) == len(configs)


def test_jobs_run_trials_in_threads_and_give_torch_threads_back(tmp_path, tiny_ckpt):
    torch.set_num_threads(2)
    outcome = search(quick_settings(tmp_path, tiny_ckpt, trials=4, jobs=2))
    assert torch.get_num_threads() == 2
    trials = outcome.study.trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3] and all(t.state in Done for t in trials)
    assert (tmp_path / "quick" / "trials.csv").read_text().count("\n") == 5


def test_storage_urls():
    assert journal_path("journal:///abs/s.log").as_posix() == "/abs/s.log"
    assert journal_path("journal:rel/s.log").as_posix() == "rel/s.log"
    assert journal_path("sqlite:///x.db") is None
    assert sqlite_path("sqlite:////abs/x.db").as_posix() == "/abs/x.db"
    assert sqlite_path("sqlite:///rel/x.db").as_posix() == "rel/x.db"
    assert sqlite_path("postgresql://u@h/db") is None
    assert dashboard_command("journal:/a/s.log") == "optuna-dashboard /a/s.log"
    assert dashboard_command("sqlite:///x.db") == "optuna-dashboard sqlite:///x.db"
    with pytest.raises(ValueError, match="names no file"):
        make_storage("journal:")
    with pytest.raises(ValueError, match="cannot open storage|driver"):
        make_storage("nosuchdb://host/x")


def test_a_half_written_journal_line_is_cut(tmp_path):
    """A worker killed inside its append leaves a line without newline; the next worker would glue its
    record to it and break the study for every later reader."""
    url = f"journal:{tmp_path}/s.log"
    study = optuna.create_study(study_name="s", storage=make_storage(url))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    path = journal_path(url)
    with open(path, "ab") as f:
        f.write(b'{"op_code": 4, "worker_id": "dead", "stud')
    study = optuna.load_study(study_name="s", storage=make_storage(url))  # repairs
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert len(optuna.load_study(study_name="s", storage=make_storage(url)).trials) == 3
    assert not repair_journal(path, optuna.storages.journal.JournalFileSymlinkLock(str(path)))
