"""Fuzzing the config loader: whatever a user's file holds, ``CompressionConfig.from_dict``/``from_json``,
``validate_for`` and ``read_config_file`` end in a config or in ``ConfigError`` with one line, never in
another exception."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mae.model import create_model, describe
from spaces.config import CompressionConfig, ConfigError
from toolkit.artifacts import read_config_file

SHAPE = describe(create_model("mae_vit_test_p7_28"))
VALID = CompressionConfig.identity(SHAPE).to_dict()
FAST = settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=8) | st.sampled_from([0, 1, 4, 8, 16, 32, -1, 1.5, "8", "magnitude"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12) | st.sampled_from(list(VALID)), inner, max_size=4),
                           max_leaves=12)


@st.composite
def mutated_configs(draw) -> object:
    """A valid config with a few fields replaced, deleted or added anywhere in it: reaches the checks
    deep inside a block, which random JSON almost never does."""
    config = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(1, 3))):
        node, path = config, []
        for _ in range(draw(st.integers(1, 5))):  # how deep the change goes
            if not isinstance(node, (dict, list)) or not node:
                break
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
            path.append((node, key))
            node = node[key]
        parent, key = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace" or (action == "delete" and isinstance(parent, list)):
            parent[key] = draw(json_values)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return config


def _parse(load) -> None:
    try:
        config = load()
    except ConfigError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        return
    try:
        config.validate_for(SHAPE)
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)


@FAST
@given(json_values | mutated_configs())
def test_from_dict_raises_only_config_error(data):
    _parse(lambda: CompressionConfig.from_dict(data))


@FAST
@given(st.text(max_size=200) | mutated_configs().map(json.dumps)
       | mutated_configs().map(json.dumps).flatmap(lambda s: st.integers(0, len(s)).map(lambda n: s[:n])))
def test_from_json_raises_only_config_error(text):
    _parse(lambda: CompressionConfig.from_json(text))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300) | mutated_configs().map(lambda c: json.dumps({"config": c, "model": "x"}).encode())
       | st.just(b"[" * 100_000))
def test_read_config_file_raises_only_config_error(content):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "winner.json"
        path.write_bytes(content)
        _parse(lambda: read_config_file(path)[0])


def test_a_mutation_can_still_be_valid_and_round_trips():
    assert CompressionConfig.from_dict(VALID).to_dict() == VALID
