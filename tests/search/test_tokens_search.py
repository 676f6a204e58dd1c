"""Token merging as a searched technique: the joint and allocate strategies sample merge schedules,
price them and score them; the default techniques leave tokens alone."""
from __future__ import annotations

import optuna
from searchkit import quick_settings

from search.engine import search
from search.settings import settings_from_args
from spaces.config import CompressionConfig


def test_tokens_is_a_technique_and_off_by_default():
    assert "tokens" not in settings_from_args(["--budget", "20ms"]).techniques
    assert "tokens" in settings_from_args(["--budget", "20ms", "--techniques", "prune,tokens"]).techniques


def test_a_joint_search_with_tokens_samples_and_scores_merging_configs(tmp_path, tiny_ckpt):
    # merging's fixed cost (the matching: ~0.45 ms per block on the A72 profile) is more than the whole
    # tiny model costs (~0.07 ms at its floor): a budget that a merging config can fit
    settings = quick_settings(tmp_path, tiny_ckpt, techniques=("prune", "quant", "tokens", "distill"), trials=6,
                              warm_start=False, budget_ms=1.5)
    outcome = search(settings)
    done = [t for t in outcome.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done and all("b0.merge" in t.params for t in done)
    merged = [t for t in done if any(b.merge_tokens for b in CompressionConfig.from_dict(t.user_attrs["config"]).blocks)]
    assert merged, "6 random trials should merge somewhere"
    assert outcome.winner is not None


def test_the_allocate_strategy_solves_under_a_sampled_merge_schedule(tmp_path, tiny_ckpt, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from search.setup import build_setup

    settings = quick_settings(tmp_path, tiny_ckpt, space="allocate", sensitivity_images=16, budget_ms=3.5,
                              techniques=("prune", "quant", "lowrank", "tokens", "distill"))
    setup = build_setup(settings)
    params = {"merge": 0.25, "budget_share": 1.0, "act_bits": 32}
    params |= {f"w_{t}": 1.0 for t in setup.space.knob_types()} | {f"w_{b}": 1.0 for b in setup.space.table.blocks()}
    trial = optuna.trial.FixedTrial(params)
    config = setup.space.sample(trial)
    assert [b.merge_tokens for b in config.blocks] == [4, 3]  # 1/4 of 16, then of 12 patch tokens
    assert setup.predict_ms(config) <= settings.budget_ms + 1e-9 and "merge_used" not in trial.user_attrs
    # under a budget that no merging config fits, the trial falls back to fewer merges and says so
    setup.space.budget_ms = 0.3
    trial = optuna.trial.FixedTrial(params)
    config = setup.space.sample(trial)
    assert [b.merge_tokens for b in config.blocks] == [0, 0] and trial.user_attrs["merge_used"] == 0.0
    assert setup.predict_ms(config) <= 0.3 + 1e-9
