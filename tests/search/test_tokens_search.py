"""Token merging as a searched technique: the joint and allocate strategies sample merge schedules,
price them and score them; the default techniques leave tokens alone."""
from __future__ import annotations

import optuna
import pytest
from searchkit import quick_settings

from search.engine import search
from search.settings import settings_from_args
from spaces.config import CompressionConfig


def test_tokens_is_a_technique_and_off_by_default():
    assert "tokens" not in settings_from_args(["--budget", "20ms"]).techniques
    assert "tokens" in settings_from_args(["--budget", "20ms", "--techniques", "prune,tokens"]).techniques


@pytest.mark.xfail(strict=True, reason="open (issue 16): on the tiny model the merge operator's fixed cost (host-fitted "
                   "85 us x 5 on the A72) puts every merging config over the 0.3 ms budget, so all are pruned")
def test_a_joint_search_with_tokens_samples_and_scores_merging_configs(tmp_path, tiny_ckpt):
    settings = quick_settings(tmp_path, tiny_ckpt, techniques=("prune", "quant", "tokens", "distill"), trials=6,
                              warm_start=False)
    outcome = search(settings)
    done = [t for t in outcome.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done and all("b0.merge" in t.params for t in done)
    merged = [t for t in done if any(b.merge_tokens for b in CompressionConfig.from_dict(t.user_attrs["config"]).blocks)]
    assert merged, "6 random trials should merge somewhere"
    assert outcome.winner is not None


@pytest.mark.xfail(strict=True, reason="open (issue 16): a merge schedule whose fixed cost exceeds the budget is "
                   "still solved at the floor and returned over budget")
def test_the_allocate_strategy_solves_under_a_sampled_merge_schedule(tmp_path, tiny_ckpt, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from search.setup import build_setup

    settings = quick_settings(tmp_path, tiny_ckpt, space="allocate", sensitivity_images=16,
                              techniques=("prune", "quant", "lowrank", "tokens", "distill"))
    setup = build_setup(settings)
    params = {"merge": 0.25, "budget_share": 1.0, "act_bits": 32}
    params |= {f"w_{t}": 1.0 for t in setup.space.knob_types()} | {f"w_{b}": 1.0 for b in setup.space.table.blocks()}
    config = setup.space.sample(optuna.trial.FixedTrial(params))
    assert [b.merge_tokens for b in config.blocks] == [4, 3]  # 1/4 of 16, then of 12 patch tokens
    assert setup.predict_ms(config) <= settings.budget_ms + 1e-9
