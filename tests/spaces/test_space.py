import optuna
import pytest

from mae.model import create_model, describe
from spaces.config import CompressionConfig
from spaces.space import JointSpace, UniformSpace, rank_for

optuna.logging.set_verbosity(optuna.logging.WARNING)
SHAPE = describe(create_model("mae_vit_tiny_p4_28"))


def test_rank_for_refuses_ranks_that_do_not_save_compute():
    assert rank_for(0.0, 192, 768) is None
    assert rank_for(0.25, 192, 768) == 48 and 48 * (192 + 768) < 192 * 768
    assert rank_for(0.9, 192, 192) is None  # 173 * 384 > 192 * 192


@pytest.mark.parametrize("space_cls", [JointSpace, UniformSpace])
def test_every_sampled_config_is_valid_and_round_trips(space_cls):
    space = space_cls(shape=SHAPE, distill_steps=10)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(60):
        trial = study.ask()
        cfg = space.sample(trial)
        cfg.validate_for(SHAPE)
        assert CompressionConfig.from_dict(cfg.to_dict()) == cfg
        study.tell(trial, 0.0)


def test_removed_sublayers_ask_no_knobs():
    params = {"b0.heads": 0, "b0.mlp": 0}
    params.update({f"b{i}.heads": 3 for i in range(1, 6)})
    params.update({f"b{i}.mlp": 768 for i in range(1, 6)})
    space = JointSpace(shape=SHAPE, techniques=frozenset({"prune"}))
    cfg = space.sample(optuna.trial.FixedTrial(params))
    assert cfg.blocks[0].heads == 0 and cfg.blocks[0].live_linears() == ()


def test_single_technique_spaces_leave_other_knobs_alone():
    trial = optuna.trial.FixedTrial({f"b{i}.{k}.bits": 8 for i in range(6) for k in ("qkv", "proj", "fc1", "fc2")}
                                    | {"act_bits": 32})
    cfg = JointSpace(shape=SHAPE, techniques=frozenset({"quant"})).sample(trial)
    assert all(b.heads == 3 and b.mlp_hidden == 768 and set(b.weight_bits.values()) == {8} for b in cfg.blocks)
    assert all(r is None for b in cfg.blocks for r in b.ranks.values())


def test_unknown_technique_is_refused():
    with pytest.raises(ValueError, match="unknown technique 'sparsity'"):
        JointSpace(shape=SHAPE, techniques=frozenset({"sparsity"}))


def test_full_mae_space_covers_decoder_blocks():
    shape = describe(create_model("mae_vit_tiny_p4_28", kind="mae"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    cfg = JointSpace(shape=shape).sample(study.ask())
    assert len(cfg.decoder_blocks) == 2
    cfg.validate_for(shape)


@pytest.mark.parametrize("space_cls", [JointSpace, UniformSpace])
def test_token_merging_is_searched_only_when_asked_and_stays_valid(space_cls):
    from spaces.space import DEFAULT_TECHNIQUES, TECHNIQUES

    assert "tokens" in TECHNIQUES and "tokens" not in DEFAULT_TECHNIQUES
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    merged_any = False
    for techniques in (frozenset(DEFAULT_TECHNIQUES), frozenset(TECHNIQUES)):
        space = space_cls(shape=SHAPE, techniques=techniques)
        for _ in range(30):
            trial = study.ask()
            cfg = space.sample(trial)
            cfg.validate_for(SHAPE)
            assert CompressionConfig.from_dict(cfg.to_dict()) == cfg
            merges = [b.merge_tokens for b in cfg.blocks]
            if "tokens" not in techniques:
                assert not any(merges) and not any("merge" in p for p in trial.params)
            merged_any |= any(merges)
            study.tell(trial, 0.0)
    assert merged_any


def test_merge_schedule_takes_the_same_share_of_fewer_tokens_each_block():
    from spaces.space import merge_schedule

    blocks = merge_schedule(CompressionConfig.identity(SHAPE).blocks, 0.25, 50)
    assert [b.merge_tokens for b in blocks] == [12, 9, 7, 5, 4, 3]  # 49, 37, 28, 21, 16, 12 patch tokens
