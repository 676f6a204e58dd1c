"""Named starting configs for users to edit (``maec example-config --preset NAME``)."""
from __future__ import annotations

from typing import Callable

from spaces.config import BlockConfig, CompressionConfig, ConfigError, DistillConfig
from spaces.shape import LINEARS, BlockShape, ModelShape
from spaces.space import merge_schedule


def _half(s: BlockShape) -> BlockConfig:
    """Half the MLP units, one third of the heads removed (rounded, at least one kept), int8 weights."""
    heads = max(1, s.heads - round(s.heads / 3))
    return BlockConfig(heads=heads, mlp_hidden=s.mlp_hidden // 2, weight_bits={k: 8 for k in LINEARS})


def _int8(s: BlockShape) -> BlockConfig:
    return BlockConfig(heads=s.heads, mlp_hidden=s.mlp_hidden, weight_bits={k: 8 for k in LINEARS})


def _identity(s: BlockShape) -> BlockConfig:
    return BlockConfig(heads=s.heads, mlp_hidden=s.mlp_hidden)


# the share of each encoder block's patch tokens the ``tokens`` preset merges (ToMe's constant schedule)
TOKENS_PRESET_FRACTION = 0.125

CONFIG_PRESETS: dict[str, tuple[Callable[[BlockShape], BlockConfig], str]] = {
    "identity": (_identity, "changes nothing (a template to edit)"),
    "int8": (_int8, "int8 weights everywhere, nothing pruned"),
    "half": (_half, "half the MLP units, a third of the heads removed, int8 weights, 300 distillation steps"),
    "tokens": (_identity, "token merging only: every encoder block merges 1/8 of the patch tokens it sees "
                          "(ToMe), weights untouched"),
}


def preset_config(shape: ModelShape, name: str) -> CompressionConfig:
    """The preset ``name`` for ``shape`` (encoder and, for a full MAE, decoder blocks)."""
    if name not in CONFIG_PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(CONFIG_PRESETS)}")
    make = CONFIG_PRESETS[name][0]
    distill = DistillConfig(temperature=4.0, alpha=0.5, steps=300 if name == "half" else 0)
    blocks = tuple(make(s) for s in shape.blocks)
    if name == "tokens":  # a full MAE's encoder sees its 1 + K visible patches (mask ratio 0.75)
        tokens = shape.encoder_tokens("reconstruct" if shape.is_mae else "classify")
        blocks = merge_schedule(blocks, TOKENS_PRESET_FRACTION, tokens)
    return CompressionConfig(blocks=blocks, distill=distill, decoder_blocks=tuple(make(s) for s in shape.decoder_blocks))
