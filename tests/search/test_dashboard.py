"""A study written by the engine is readable in optuna-dashboard: started on 127.0.0.1 on a free port
against the study's SQLite storage, its HTTP API gives the objective names, the user attributes and the
Pareto-optimal trials; then it is stopped."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from searchkit import quick_settings

from search.engine import search


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _pareto_numbers(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """Complete trials no other complete trial beats on accuracy (max) and latency (min)."""
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]

    def dominates(a, b):
        return a.values[0] >= b.values[0] and a.values[1] <= b.values[1] and a.values != b.values

    return {t.number for t in done if not any(dominates(o, t) for o in done)}


@pytest.fixture
def dashboard(tmp_path, tiny_ckpt):
    outcome = search(quick_settings(tmp_path, tiny_ckpt, trials=5, study_name="dash"))
    exe = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) or "optuna-dashboard"
    port = _free_port()
    server = subprocess.Popen([exe, f"sqlite:///{tmp_path}/dash/study.db", "--host", "127.0.0.1",
                               "--port", str(port), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[1].decode()[-2000:]
            try:
                _get(f"{base}/api/meta")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "optuna-dashboard did not answer"
                time.sleep(0.2)
        yield base, outcome.study
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert server.returncode is not None


def test_dashboard_serves_the_study_and_its_pareto_front(dashboard):
    base, study = dashboard
    (summary,) = [s for s in _get(f"{base}/api/studies")["study_summaries"] if s["study_name"] == "dash"]
    assert summary["directions"] == ["maximize", "minimize"]
    detail = _get(f"{base}/api/studies/{summary['study_id']}")
    assert detail["objective_names"] == ["accuracy", "latency_ms"]
    assert [t["number"] for t in detail["trials"]] == [t.number for t in study.trials]
    keys = {a["key"] for a in detail["union_user_attrs"]}
    assert {"summary", "macs", "params", "size_mb", "feasible", "stage", "config"} <= keys
    best = {t["number"] for t in detail["best_trials"]}
    assert best and best == _pareto_numbers(study.trials)
    for t in detail["best_trials"]:
        assert t["state"] == "Complete" and len(t["values"]) == 2


def test_dashboard_shows_the_latency_constraint(dashboard):
    base, study = dashboard
    (summary,) = [s for s in _get(f"{base}/api/studies")["study_summaries"] if s["study_name"] == "dash"]
    trials = {t["number"]: t for t in _get(f"{base}/api/studies/{summary['study_id']}")["trials"]}
    for t in study.trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            shown = trials[t.number]["constraints"]
            assert shown == [pytest.approx(t.values[1] - t.user_attrs["budget_ms"])]
