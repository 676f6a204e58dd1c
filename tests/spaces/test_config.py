import json

import pytest

from mae.model import create_model, describe
from spaces.config import BlockConfig, CompressionConfig, ConfigError, DistillConfig

SHAPE = describe(create_model("mae_vit_tiny_p4_28"))


def _example() -> CompressionConfig:
    blocks = [BlockConfig(heads=2, mlp_hidden=384, ranks={"qkv": None, "proj": 32, "fc1": 64, "fc2": None},
                          weight_bits={"qkv": 8, "proj": 4, "fc1": 16, "fc2": 32}) for _ in range(6)]
    blocks[5] = BlockConfig(heads=0, mlp_hidden=0)
    return CompressionConfig(blocks=tuple(blocks),
                             distill=DistillConfig(temperature=2.0, alpha=0.3, feature_weight=0.1, steps=50),
                             act_bits=8, importance="taylor")


def test_json_round_trip_is_exact():
    cfg = _example()
    again = CompressionConfig.from_json(cfg.to_json())
    assert again == cfg and again.to_dict() == cfg.to_dict()
    assert json.loads(cfg.to_json())["schema_version"] == 1


def test_identity_fits_and_is_identity():
    ident = CompressionConfig.identity(SHAPE)
    ident.validate_for(SHAPE)
    assert ident.is_identity(SHAPE) and not _example().is_identity(SHAPE)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(schema_version=2), "schema_version: expected 1"),
    (lambda d: d["blocks"][3]["weight_bits"].update(fc1=5), r"blocks\[3\].weight_bits.fc1: 5 is not one of"),
    (lambda d: d["blocks"][1].update(heads=-1), r"blocks\[1\].heads: expected a whole number >= 0"),
    (lambda d: d["blocks"][0]["ranks"].update(qkv=0), r"blocks\[0\].ranks.qkv: expected null or a whole number"),
    (lambda d: d["blocks"][0].update(color="red"), r"blocks\[0\]: unknown field 'color'"),
    (lambda d: d["distill"].update(alpha=2), "distill.alpha: expected a number in"),
    (lambda d: d["distill"].update(temperature=float("nan")), "distill.temperature: expected a finite number"),
    (lambda d: d.update(act_bits=4), "act_bits: 4 is not one of 32, 8"),
    (lambda d: d.update(blocks=[]), "blocks: expected a non-empty list"),
])
def test_parse_errors_name_the_field(mutate, message):
    d = _example().to_dict()
    mutate(d)
    with pytest.raises(ConfigError, match=message):
        CompressionConfig.from_dict(d)


@pytest.mark.parametrize("block, message", [
    (BlockConfig(heads=4, mlp_hidden=768), r"blocks\[2\].heads: 4 kept, but the model has only 3"),
    (BlockConfig(heads=3, mlp_hidden=800), r"blocks\[2\].mlp_hidden: 800 kept, but the model has only 768"),
    (BlockConfig(heads=1, mlp_hidden=768, ranks={"qkv": None, "proj": 65, "fc1": None, "fc2": None}),
     r"blocks\[2\].ranks.proj: rank 65 is above min\(in, out\) = 64"),
])
def test_validation_against_the_model_names_the_field(block, message):
    blocks = list(CompressionConfig.identity(SHAPE).blocks)
    blocks[2] = block
    with pytest.raises(ConfigError, match=message):
        CompressionConfig(blocks=tuple(blocks)).validate_for(SHAPE)


def test_block_count_must_match():
    with pytest.raises(ConfigError, match="the config has 5 blocks, the model has 6"):
        CompressionConfig(blocks=CompressionConfig.identity(SHAPE).blocks[:5]).validate_for(SHAPE)
    with pytest.raises(ConfigError, match="not valid JSON"):
        CompressionConfig.from_json("{")


@pytest.mark.parametrize("make", [
    lambda: BlockConfig(3, 768),
    lambda: DistillConfig(2.0),
    lambda: CompressionConfig(CompressionConfig.identity(SHAPE).blocks),
])
def test_constructors_are_keyword_only(make):
    with pytest.raises(TypeError, match="positional argument"):
        make()
