"""Decompose a (compressed) ViT classifier or full MAE into the operators a runtime executes.

Built from the uncompressed :class:`~spaces.shape.ModelShape` and a
:class:`~spaces.config.CompressionConfig` alone: no model is built, no torch is imported, so the
search can price a config in microseconds before it pays for pruning and distillation.

The operator list follows the graph that :func:`toolkit.export.export_onnx` writes and ONNX Runtime
runs (one entry per kernel group, glue such as Reshape/Transpose folded into the op it serves):

* ``conv``: the patch embedding (a stride-p convolution = a Linear over L patches of p*p*C pixels);
* ``add``: position embeddings and the residual adds of the branches kept;
* ``concat``: the class token; ``mask``: the MAE's gather of the visible patches; ``unshuffle``: the
  decoder input (mask tokens appended, patch order restored, class token, position embedding) --
  with the shape arithmetic a dynamic batch adds, which on small models is a visible share;
* ``layernorm``, ``gelu``, ``pool`` (mean over patch tokens); ``relu`` only in third-party rows (HAT);
* ``linear``: every Linear with its weight and activation bits; a low-rank Linear is two Linears
  (``.first`` in -> r without bias, ``.second`` r -> out) when the rank saves compute, otherwise
  the toolkit keeps it dense (same rule as ``toolkit.lowrank.saves_compute``);
* ``attention``: the core of one self-attention (split into heads, ``q k^T``, softmax, ``attn v``,
  merge heads) for the heads kept;
* ``merge``: token merging after a block's attention (``mae.tome``: keys averaged over heads,
  bipartite matching ``ceil(T/2) x floor(T/2)`` cosine scores, max / sort, size-weighted scatter-add);
  ``m`` rows (B T) in, ``kv`` tokens T per sequence, ``k`` metric width, ``n`` model width (the cost does
  not depend on how many merge: every A token is matched and sorted either way). The blocks after it see
  fewer tokens, and their attention adds ``log(size)`` to the scores (an ``add`` of ``h T^2`` values);
  the encoder's output is unmerged to every original position (a token gather, priced as ``mask``).

Shapes: T tokens per image, B batch, so a Linear sees ``m = B*T`` rows.
MAE reconstruction: the encoder sees ``1 + K`` tokens with ``K = int(L (1 - mask_ratio))`` visible
patches, the decoder ``1 + L``.
"""
from __future__ import annotations

from typing import Literal, NamedTuple

from spaces.config import BlockConfig, CompressionConfig
from spaces.shape import BlockShape, ModelShape, token_flow

Task = Literal["classify", "reconstruct"]
KINDS = ("conv", "linear", "attention", "layernorm", "gelu", "relu", "add", "concat", "pool", "mask", "unshuffle",
         "merge")
LINEAR_KINDS = ("conv", "linear")
ELEMENTWISE_KINDS = ("layernorm", "gelu", "relu", "add", "concat", "pool", "mask", "unshuffle")


class Op(NamedTuple):
    """One operator with its shape (a NamedTuple: the predictor builds ~100 per call, cheaply).

    ``linear``/``conv``: ``m`` rows x ``k`` inputs -> ``n`` outputs, ``bits`` weight bits, ``act_bits``.
    ``attention``: ``m`` query rows (B*T), ``kv`` keys per sequence, ``heads`` x ``head_dim``.
    Elementwise kinds: ``elems`` values touched (output size).
    Fields may be fractional only for measurement rows that record per-layer averages (HAT).
    """

    name: str
    kind: str
    m: float = 0
    k: float = 0
    n: float = 0
    heads: float = 0
    head_dim: float = 0
    kv: float = 0
    elems: float = 0
    bits: int = 32
    act_bits: int = 32

    @property
    def macs(self) -> float:
        """Multiply-accumulates (what torch's FlopCounter counts, halved)."""
        if self.kind in LINEAR_KINDS:
            return self.m * self.k * self.n
        if self.kind == "attention":
            return 2.0 * self.m * self.kv * self.heads * self.head_dim  # q k^T and attn v
        if self.kind == "merge":
            return (self.m / max(self.kv, 1)) * merge_score_macs(self.kv, self.k)
        return 0.0

    @property
    def params(self) -> float:
        """Weights stored for this op (Linear/conv weight matrix; biases and norms left out)."""
        return self.k * self.n if self.kind in LINEAR_KINDS else 0.0

    def to_dict(self) -> dict:
        """Only the fields that differ from the defaults (compact CSV / JSON cells)."""
        defaults = self._field_defaults
        return {k: v for k, v in self._asdict().items() if k in ("name", "kind") or v != defaults[k]}

    @classmethod
    def from_dict(cls, d: dict) -> Op:
        known = set(cls._fields)
        extra = sorted(set(d) - known)
        if extra:
            raise ValueError(f"unknown op field {extra[0]!r}")
        if d.get("kind") not in KINDS:
            raise ValueError(f"unknown op kind {d.get('kind')!r}; known: {', '.join(KINDS)}")
        return cls(**d)


def merge_score_macs(tokens: float, width: float) -> float:
    """MACs of one sequence's bipartite similarity scores: ``ceil(T/2) x floor(T/2)`` dot products of
    ``width``."""
    t = int(tokens)
    return ((t + 1) // 2) * (t // 2) * width


def saves_compute(in_f: int, out_f: int, rank: int) -> bool:
    """``rank * (in + out) < in * out`` -- the rule of ``toolkit.lowrank.saves_compute`` (a test keeps
    the two equal); repeated here so that pricing a config needs no torch import."""
    return rank * (in_f + out_f) < in_f * out_f


def visible_tokens(shape: ModelShape, mask_ratio: float) -> int:
    """Patches the MAE encoder sees: ``int(L * (1 - mask_ratio))`` as in ``mae.model.random_masking``."""
    return shape.encoder_tokens("reconstruct", mask_ratio) - 1


def _linear(name: str, m: int, k: int, n: int, rank: int | None, bits: int, act_bits: int) -> list[Op]:
    """A Linear ``[m, k] -> [m, n]``, or its two low-rank factors when the rank saves compute."""
    if rank is not None and saves_compute(k, n, rank):
        return [Op(f"{name}.first", "linear", m=m, k=k, n=rank, bits=bits, act_bits=act_bits),
                Op(f"{name}.second", "linear", m=m, k=rank, n=n, bits=bits, act_bits=act_bits)]
    return [Op(name, "linear", m=m, k=k, n=n, bits=bits, act_bits=act_bits)]


def block_ops(prefix: str, s: BlockShape, c: BlockConfig, tokens: int, batch: int, act_bits: int,
              merge: int = 0, sized: bool = False) -> list[Op]:
    """One pre-norm timm ``Block`` on ``tokens`` tokens: ``x + attn(norm1(x))``, ``x + mlp(norm2(x))``.

    A branch with 0 heads / 0 units is a ``RemovedBranch`` (toolkit.prune): no norm, no Linears, and
    no add either -- the exported ``x + 0`` (a 0-dim zero) is removed by ONNX Runtime's optimizer.
    ``merge``: tokens merged after the attention (already clamped, ``spaces.shape.token_flow``); the MLP
    then runs on ``tokens - merge``. ``sized``: an earlier block merged, so the attention adds ``log(size)``.
    """
    m = batch * tokens
    ops: list[Op] = []
    dims = s.linear_dims(c.heads, c.mlp_hidden)
    if c.heads > 0:
        ops.append(Op(f"{prefix}.norm1", "layernorm", elems=m * s.dim))
        ops += _linear(f"{prefix}.attn.qkv", m, *dims["qkv"], c.ranks["qkv"], c.weight_bits["qkv"], act_bits)
        if sized:  # proportional attention: log(size) added to every score
            ops.append(Op(f"{prefix}.attn.size_bias", "add", elems=m * tokens * c.heads))
        ops.append(Op(f"{prefix}.attn.core", "attention", m=m, kv=tokens, heads=c.heads, head_dim=s.head_dim))
        ops += _linear(f"{prefix}.attn.proj", m, *dims["proj"], c.ranks["proj"], c.weight_bits["proj"], act_bits)
        ops.append(Op(f"{prefix}.add1", "add", elems=m * s.dim))
    if merge > 0:  # matched on the keys (head_dim wide) or, without attention, on the tokens (dim wide)
        ops.append(Op(f"{prefix}.merge", "merge", m=m, kv=tokens, k=s.head_dim if c.heads > 0 else s.dim, n=s.dim))
        tokens -= merge
        m = batch * tokens
    if c.mlp_hidden > 0:
        ops.append(Op(f"{prefix}.norm2", "layernorm", elems=m * s.dim))
        ops += _linear(f"{prefix}.mlp.fc1", m, *dims["fc1"], c.ranks["fc1"], c.weight_bits["fc1"], act_bits)
        ops.append(Op(f"{prefix}.mlp.act", "gelu", elems=m * c.mlp_hidden))
        ops += _linear(f"{prefix}.mlp.fc2", m, *dims["fc2"], c.ranks["fc2"], c.weight_bits["fc2"], act_bits)
        ops.append(Op(f"{prefix}.add2", "add", elems=m * s.dim))
    return ops


def decompose(shape: ModelShape, config: CompressionConfig | None = None, *, task: Task | None = None,
              mask_ratio: float = 0.75, batch: int = 1, global_pool: Literal["avg", "token"] = "avg") -> list[Op]:
    """Operators of ``shape`` compressed by ``config`` (None: uncompressed), in execution order.

    ``task``: ``"classify"`` (encoder on 1 + L tokens, pooling, head) or ``"reconstruct"`` (full MAE:
    encoder on 1 + K visible tokens, decoder on 1 + L); default: reconstruct for a full MAE shape.
    ``global_pool``: ``"avg"`` (mean of patch tokens, then ``fc_norm``; our classifier) or ``"token"``
    (``norm`` on all tokens, class token; timm's default). Raises ConfigError when the config does not fit.
    """
    config = config or CompressionConfig.identity(shape)
    config.validate_for(shape)
    task = task or ("reconstruct" if shape.is_mae else "classify")
    if task == "reconstruct" and not shape.is_mae:
        from spaces.config import ConfigError
        raise ConfigError(f"{shape.name} has no decoder, so it cannot be priced for reconstruction")
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    B, L, D, p = batch, shape.num_patches, shape.embed_dim, shape.patch_size
    a = config.act_bits
    ops = [Op("patch_embed", "conv", m=B * L, k=p * p * shape.in_chans, n=D),  # fp32: not in the config
           Op("pos_add", "add", elems=B * L * D)]
    tokens = 1 + (visible_tokens(shape, mask_ratio) if task == "reconstruct" else L)
    if task == "reconstruct":
        ops.append(Op("mask", "mask", elems=B * (tokens - 1) * D))
    ops.append(Op("cls_concat", "concat", elems=B * tokens * D))
    flow = token_flow(tokens, [c.merge_tokens for c in config.blocks])
    for i, (s, c, (t_in, r)) in enumerate(zip(shape.blocks, config.blocks, flow)):
        ops += block_ops(f"blocks.{i}", s, c, t_in, B, a, merge=r, sized=t_in < tokens)
    if any(r for _, r in flow):  # mae.tome: the encoder's output is unmerged (one gather of T0 tokens)
        ops.append(Op("unmerge", "mask", elems=B * tokens * D))
    if task == "classify":
        if global_pool == "avg":
            ops += [Op("pool", "pool", elems=B * (tokens - 1) * D), Op("fc_norm", "layernorm", elems=B * D)]
        else:
            ops += [Op("norm", "layernorm", elems=B * tokens * D)]
        if shape.num_classes:
            ops.append(Op("head", "linear", m=B, k=D, n=shape.num_classes))
        return ops
    dd, full = shape.decoder_dim, 1 + L
    dec_cfg = config.decoder_blocks or CompressionConfig.identity(shape).decoder_blocks
    ops += [Op("norm", "layernorm", elems=B * tokens * D),
            Op("decoder_embed", "linear", m=B * tokens, k=D, n=dd),
            Op("unshuffle", "unshuffle", elems=B * full * dd)]
    for i, (s, c) in enumerate(zip(shape.decoder_blocks, dec_cfg)):
        ops += block_ops(f"decoder_blocks.{i}", s, c, full, B, a)
    ops += [Op("decoder_norm", "layernorm", elems=B * full * dd),
            Op("decoder_pred", "linear", m=B * full, k=dd, n=p * p * shape.in_chans)]
    return ops


def total_macs(ops: list[Op]) -> float:
    """Sum of multiply-accumulates (patch embedding, Linears, attention matmuls)."""
    return sum(op.macs for op in ops)
