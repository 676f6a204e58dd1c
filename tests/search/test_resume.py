"""Resume: ``kill -9`` in the middle of a trial, then the same command with ``--resume``; and
``--resume`` adding trials to a finished study."""
from __future__ import annotations

import signal
import time

import optuna
from searchkit import load, quick_args, run_cli, start_cli

from search.engine import INTERRUPTED

State = optuna.trial.TrialState


def _trials_or_none(url: str):
    try:
        return load(url).get_trials(deepcopy=False)
    except KeyError:  # the study is not created yet
        return None


def _kill_mid_trial(args: list[str], url: str, timeout_s: float = 150) -> list[optuna.trial.FrozenTrial]:
    """Start the search, wait until a trial finished and a later one is being trained (its latency is
    recorded, its recovery is running), SIGKILL it; returns the trials as the kill left them."""
    proc = start_cli(args)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            assert proc.poll() is None, f"the search ended before the kill: {proc.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "no trial finished in time"
            trials = _trials_or_none(url) or []
            done = [t for t in trials if t.state == State.COMPLETE]
            training = [t for t in trials if t.state == State.RUNNING and "latency_ms" in t.user_attrs]
            if done and training:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return load(url).get_trials()


def test_kill_9_mid_trial_then_resume_keeps_finished_trials_and_fails_the_interrupted(tmp_path, tiny_ckpt):
    url = f"sqlite:///{tmp_path}/study.db"
    # every trial recovered, with enough steps that it trains for a while (the kill lands inside one); a
    # budget above the teacher's latency makes every trial feasible, so each one is trained
    args = quick_args(tmp_path / "results", tiny_ckpt, "--storage", url, "--trials", "3", "--recover-steps", "60",
                      "--budget", "1ms", "--fidelity", "recovered")
    before = None
    for _ in range(3):  # the kill can land between two trials (tell -> next ask): then kill the resumed run
        before = _kill_mid_trial(args if before is None else [*args, "--resume"], url)
        if any(t.state == State.RUNNING for t in before):
            break
    finished = {t.number: (t.state, t.values, t.params) for t in before if t.state.is_finished()}
    running = [t.number for t in before if t.state == State.RUNNING]
    assert finished and running

    r = run_cli([*args, "--resume"], timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "interrupted by a kill" in r.stdout
    after = {t.number: t for t in load(url).get_trials()}
    for number, (state, values, params) in finished.items():  # every finished trial kept as it was
        assert (after[number].state, after[number].values, after[number].params) == (state, values, params)
    for number in running:  # the interrupted one: failed, with the reason
        assert after[number].state == State.FAIL and after[number].user_attrs["fail_reason"] == INTERRUPTED
    assert sorted(after) == list(range(len(after)))
    counted = [t for t in after.values() if t.user_attrs.get("fail_reason") != INTERRUPTED]
    assert len(counted) == 3 and all(t.state.is_finished() for t in counted)  # continued to --trials 3


def test_resume_adds_to_the_same_study(tmp_path, tiny_ckpt, capsys):
    from run_search import main

    args = quick_args(tmp_path, tiny_ckpt)
    assert main([*args, "--trials", "2"]) in (0, 1)
    first = {t.number: t.values for t in load(f"sqlite:///{tmp_path}/quick/study.db").trials}
    # a second run without --resume refuses to mix into the existing study
    assert main([*args, "--trials", "2"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main([*args, "--trials", "3", "--resume"]) in (0, 1)  # --trials with --resume: the study's total
    study = load(f"sqlite:///{tmp_path}/quick/study.db")
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert {n: study.trials[n].values for n in first} == first
    assert "3 trials" in capsys.readouterr().out
    # the same command again: nothing left to do
    assert main([*args, "--trials", "3", "--resume"]) in (0, 1)
    assert "already holds 3 finished trials" in capsys.readouterr().out
    assert len(load(f"sqlite:///{tmp_path}/quick/study.db").trials) == 3
