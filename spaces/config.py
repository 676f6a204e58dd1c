"""``CompressionConfig``: the contract between the search, the toolkit and the latency predictor.

Plain data keyed by block index and Linear name, never by module objects; JSON with a
``schema_version``. ``from_dict`` accepts only what ``to_dict`` writes and raises :class:`ConfigError`
whose message names the offending field (``blocks[3].weight_bits.fc1``), nothing else.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from core.errors import UserError
from spaces.shape import LINEARS, BlockShape, ModelShape, mergeable_tokens

SCHEMA_VERSION = 1
WEIGHT_BITS = (32, 16, 8, 4)
ACT_BITS = (32, 8)
IMPORTANCE = ("magnitude", "taylor")


class ConfigError(UserError, ValueError):
    """A config is malformed or does not fit the model; the message is one sentence."""


@dataclass(frozen=True, kw_only=True)
class BlockConfig:
    """One transformer block after compression.

    ``heads`` / ``mlp_hidden`` kept (0 removes the sub-layer; the residual passes through);
    ``ranks[linear]`` an SVD rank or None (dense); ``weight_bits[linear]`` 32, 16, 8 or 4;
    ``merge_tokens``: tokens merged after this block's attention (ToMe's ``r``, ``mae.tome``; encoder
    blocks only), so its MLP and every later block see that many fewer.
    """

    heads: int
    mlp_hidden: int
    ranks: Mapping[str, int | None] = field(default_factory=lambda: {k: None for k in LINEARS})
    weight_bits: Mapping[str, int] = field(default_factory=lambda: {k: 32 for k in LINEARS})
    merge_tokens: int = 0

    def to_dict(self) -> dict:
        d = {"heads": self.heads, "mlp_hidden": self.mlp_hidden,
             "ranks": {k: self.ranks[k] for k in LINEARS},
             "weight_bits": {k: self.weight_bits[k] for k in LINEARS}}
        if self.merge_tokens:  # written only when used: configs without merging read as before
            d["merge_tokens"] = self.merge_tokens
        return d

    def live_linears(self) -> tuple[str, ...]:
        """Linears that still exist: attention ones when heads > 0, MLP ones when units > 0."""
        return tuple(k for k in LINEARS if (self.heads if k in ("qkv", "proj") else self.mlp_hidden) > 0)


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """Recovery by distillation: KL at ``temperature`` (x T^2) + ``alpha`` x cross-entropy
    + ``feature_weight`` x token-feature MSE, for ``steps`` optimizer steps (0: no recovery) at peak
    learning rate ``lr`` (AdamW, warm-up + cosine)."""

    temperature: float = 4.0
    alpha: float = 0.5
    feature_weight: float = 0.0
    steps: int = 0
    lr: float = 1e-4

    def to_dict(self) -> dict:
        return {"temperature": self.temperature, "alpha": self.alpha, "feature_weight": self.feature_weight,
                "steps": self.steps, "lr": self.lr}


@dataclass(frozen=True, kw_only=True)
class CompressionConfig:
    """Per-block settings for the encoder (and, for a full MAE, the decoder), plus global ones."""

    blocks: tuple[BlockConfig, ...]
    distill: DistillConfig = DistillConfig()
    act_bits: int = 32
    importance: str = "magnitude"
    decoder_blocks: tuple[BlockConfig, ...] = ()
    schema_version: int = SCHEMA_VERSION

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def identity(cls, shape: ModelShape) -> "CompressionConfig":
        """The config that changes nothing: every head and unit kept, dense fp32."""
        return cls(blocks=tuple(BlockConfig(heads=b.heads, mlp_hidden=b.mlp_hidden) for b in shape.blocks),
                   decoder_blocks=tuple(BlockConfig(heads=b.heads, mlp_hidden=b.mlp_hidden)
                                        for b in shape.decoder_blocks))

    # ---- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d: dict[str, Any] = {
            "schema_version": self.schema_version,
            "blocks": [b.to_dict() for b in self.blocks],
            "distill": self.distill.to_dict(),
            "act_bits": self.act_bits,
            "importance": self.importance,
        }
        if self.decoder_blocks:
            d["decoder_blocks"] = [b.to_dict() for b in self.decoder_blocks]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: Any) -> "CompressionConfig":
        """Parse and check types and ranges; raises ConfigError naming the field."""
        _require_mapping(d, "config")
        _no_unknown(d, {"schema_version", "blocks", "distill", "act_bits", "importance", "decoder_blocks"}, "config")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ConfigError(f"schema_version: expected {SCHEMA_VERSION}, got {version!r}")
        blocks = _parse_blocks(d.get("blocks"), "blocks", allow_empty=False)
        dec = _parse_blocks(d.get("decoder_blocks", []), "decoder_blocks", allow_empty=True)
        distill = _parse_distill(d.get("distill", {}))
        act_bits = d.get("act_bits", 32)
        if not _is_int(act_bits) or act_bits not in ACT_BITS:
            raise ConfigError(f"act_bits: {act_bits!r} is not one of {', '.join(map(str, ACT_BITS))}")
        importance = d.get("importance", "magnitude")
        if importance not in IMPORTANCE:
            raise ConfigError(f"importance: {importance!r} is not one of {', '.join(IMPORTANCE)}")
        return cls(blocks=blocks, distill=distill, act_bits=act_bits, importance=importance, decoder_blocks=dec)

    @classmethod
    def from_json(cls, text: str) -> "CompressionConfig":
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise ConfigError(f"config is not valid JSON ({e})") from None
        return cls.from_dict(d)

    # ---- checks against a model -----------------------------------------------------------------
    def validate_for(self, shape: ModelShape) -> None:
        """Raise ConfigError when this config does not fit ``shape`` (block count, kept heads and units
        not above the original, ranks not above min(in, out) of the pruned Linear)."""
        _check_blocks(self.blocks, shape.blocks, "blocks")
        tokens = 1 + shape.num_patches  # the most the encoder sees (classification); fewer clamp at run time
        for i, b in enumerate(self.blocks):
            if b.merge_tokens > mergeable_tokens(tokens):
                raise ConfigError(f"blocks[{i}].merge_tokens: {b.merge_tokens} merged, but a block that sees "
                                  f"{tokens} tokens can merge at most {mergeable_tokens(tokens)} (the class token "
                                  f"is kept and at most half of the others merge)")
            tokens -= b.merge_tokens
        for i, b in enumerate(self.decoder_blocks):
            if b.merge_tokens:
                raise ConfigError(f"decoder_blocks[{i}].merge_tokens: token merging applies to the encoder only")
        if self.decoder_blocks or shape.decoder_blocks:
            if not shape.is_mae:
                raise ConfigError("decoder_blocks: the model has no decoder (it is not a full MAE)")
            if self.decoder_blocks:
                _check_blocks(self.decoder_blocks, shape.decoder_blocks, "decoder_blocks")

    def is_identity(self, shape: ModelShape) -> bool:
        """True when applying this config changes no weight (distillation settings aside)."""
        ident = CompressionConfig.identity(shape)
        return (self.blocks == ident.blocks and self.decoder_blocks in ((), ident.decoder_blocks)
                and self.act_bits == 32)

    def summary(self) -> str:
        """One short line: kept heads/units per block, and which ranks and bits are in use."""
        parts = []
        for i, b in enumerate(self.blocks):
            ranks = [f"{k}:{b.ranks[k]}" for k in b.live_linears() if b.ranks[k] is not None]
            bits = sorted({b.weight_bits[k] for k in b.live_linears()})
            parts.append(f"b{i}:h{b.heads}/m{b.mlp_hidden}/w{','.join(map(str, bits)) or '-'}"
                         + (f"/r[{' '.join(ranks)}]" if ranks else "") + (f"/t-{b.merge_tokens}" if b.merge_tokens else ""))
        return " ".join(parts) + f" a{self.act_bits}"


# ---- parsing helpers (every failure names its field) ---------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _require_mapping(v: Any, where: str) -> None:
    if not isinstance(v, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(v).__name__}")


def _no_unknown(d: Mapping, known: set[str], where: str) -> None:
    extra = sorted(str(k) for k in d if k not in known)
    if extra:
        raise ConfigError(f"{where}: unknown field {extra[0]!r}")


def _parse_blocks(v: Any, where: str, allow_empty: bool) -> tuple[BlockConfig, ...]:
    if not isinstance(v, list) or (not v and not allow_empty):
        raise ConfigError(f"{where}: expected a non-empty list of blocks")
    return tuple(_parse_block(b, f"{where}[{i}]") for i, b in enumerate(v))


def _parse_block(b: Any, where: str) -> BlockConfig:
    _require_mapping(b, where)
    _no_unknown(b, {"heads", "mlp_hidden", "ranks", "weight_bits", "merge_tokens"}, where)
    for key in ("heads", "mlp_hidden", "merge_tokens"):
        v = b.get(key, 0 if key == "merge_tokens" else None)  # merge_tokens is optional
        if not _is_int(v) or v < 0:
            raise ConfigError(f"{where}.{key}: expected a whole number >= 0, got {v!r}")
    ranks = _parse_per_linear(b.get("ranks", {}), f"{where}.ranks", None)
    for k, r in ranks.items():
        if r is not None and (not _is_int(r) or r < 1):
            raise ConfigError(f"{where}.ranks.{k}: expected null or a whole number >= 1, got {r!r}")
    bits = _parse_per_linear(b.get("weight_bits", {}), f"{where}.weight_bits", 32)
    for k, w in bits.items():
        if not _is_int(w) or w not in WEIGHT_BITS:
            raise ConfigError(f"{where}.weight_bits.{k}: {w!r} is not one of {', '.join(map(str, WEIGHT_BITS))}")
    return BlockConfig(heads=b["heads"], mlp_hidden=b["mlp_hidden"], ranks=ranks, weight_bits=bits,
                       merge_tokens=b.get("merge_tokens", 0))


def _parse_per_linear(v: Any, where: str, default: Any) -> dict[str, Any]:
    _require_mapping(v, where)
    _no_unknown(v, set(LINEARS), where)
    return {k: v.get(k, default) for k in LINEARS}


def _parse_distill(v: Any) -> DistillConfig:
    _require_mapping(v, "distill")
    _no_unknown(v, {"temperature", "alpha", "feature_weight", "steps", "lr"}, "distill")
    d = DistillConfig()
    t, a, f, s, lr = (v.get(k, getattr(d, k)) for k in ("temperature", "alpha", "feature_weight", "steps", "lr"))
    for name, val in (("temperature", t), ("alpha", a), ("feature_weight", f), ("lr", lr)):
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val) or val < 0:
            raise ConfigError(f"distill.{name}: expected a finite number >= 0, got {val!r}")
    if t == 0 or lr == 0:
        raise ConfigError(f"distill.{'temperature' if t == 0 else 'lr'}: must be above 0")
    if a > 1:
        raise ConfigError(f"distill.alpha: expected a number in [0, 1], got {a!r}")
    if not _is_int(s) or s < 0:
        raise ConfigError(f"distill.steps: expected a whole number >= 0, got {s!r}")
    return DistillConfig(temperature=float(t), alpha=float(a), feature_weight=float(f), steps=s, lr=float(lr))


def _check_blocks(blocks: tuple[BlockConfig, ...], shapes: tuple[BlockShape, ...], where: str) -> None:
    if len(blocks) != len(shapes):
        raise ConfigError(f"{where}: the config has {len(blocks)} blocks, the model has {len(shapes)}")
    for i, (b, s) in enumerate(zip(blocks, shapes)):
        at = f"{where}[{i}]"
        if b.heads > s.heads:
            raise ConfigError(f"{at}.heads: {b.heads} kept, but the model has only {s.heads}")
        if b.mlp_hidden > s.mlp_hidden:
            raise ConfigError(f"{at}.mlp_hidden: {b.mlp_hidden} kept, but the model has only {s.mlp_hidden}")
        dims = s.linear_dims(b.heads, b.mlp_hidden)
        for k in b.live_linears():
            r = b.ranks[k]
            if r is not None and r > min(dims[k]):
                raise ConfigError(f"{at}.ranks.{k}: rank {r} is above min(in, out) = {min(dims[k])} of that Linear")
