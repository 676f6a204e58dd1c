"""Token merging from a config: ``apply_token_merging(model, config)`` sets each encoder block's
``merge_r`` (ToMe's ``r``, see :mod:`mae.tome`, which does the merging in the model's forward).

No weights change, so it composes with pruning, low-rank factors, quantization and distillation in
any order; a compressed model on disk (``toolkit.artifacts``) gets it back from its config.
"""
from __future__ import annotations

from torch import nn

from mae.tome import MergingBlock
from spaces.config import CompressionConfig


def apply_token_merging(model: nn.Module, config: CompressionConfig) -> list[int]:
    """Set ``merge_r`` on ``model.blocks`` from ``config.blocks[i].merge_tokens``; returns the list set.
    Decoder blocks never merge (``CompressionConfig.validate_for`` refuses it)."""
    merges = [b.merge_tokens for b in config.blocks]
    if len(merges) != len(model.blocks):
        raise ValueError(f"config has {len(merges)} blocks, the model {len(model.blocks)}")
    for i, (blk, r) in enumerate(zip(model.blocks, merges)):
        if r and not isinstance(blk, MergingBlock):
            raise ValueError(f"blocks.{i} is a {type(blk).__name__}, not mae.tome.MergingBlock: it cannot merge tokens")
        blk.merge_r = int(r)
    return merges
