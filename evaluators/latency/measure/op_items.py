"""Operator micro-benchmarks of ``maec measure``: Linear shapes x dtypes (incl. int8 and int4),
attention at several token and head counts, LayerNorm, GELU, add, the stem and pooling ops, and timm
blocks in a row. Each is an :class:`~evaluators.latency.measure.items.BenchItem` (row format there).

The sweep is seeded: the same ``--sweep`` and ``--seed`` give the same benchmarks on every machine.
"""
from __future__ import annotations

import functools
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from timm.models.vision_transformer import Block
from torch import nn

from evaluators.latency.measure import bench_modules
from evaluators.latency.measure.items import BenchItem, onnx_inputs
from evaluators.latency.predict.ops import Op, block_ops
from spaces.config import LINEARS, BlockConfig
from spaces.shape import BlockShape, token_flow
from toolkit.export import quantize_onnx

SPAN_BYTES = 4e6  # default weight span of a row: above the L2 of Pi-class boards (1 MB) and most phones


def l2_bytes() -> int:
    """This machine's per-core L2 size from sysfs (0 when unreadable)."""
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index2/size").read_text().strip().upper()
    except OSError:
        return 0
    mult = {"K": 1024, "M": 1024 ** 2}.get(text[-1:], 1)
    return int(text.rstrip("KM")) * mult if text.rstrip("KM").isdigit() else 0


def _copies(weights: float, span: float, lo: int = 2, hi: int = 48) -> int:
    """Copies R so that a row's fp32 weights span >= ``span`` bytes: in a whole model the weights of one
    layer are evicted by the others', so every call streams them from beyond L2, and so must a row."""
    return int(min(hi, max(lo, math.ceil(span / (4 * max(weights, 1.0))))))


def linear_item(tokens: int, k: int, n: int, bits: int = 32, act_bits: int = 32, bias: bool = True,
                gelu: bool = False, span: float = SPAN_BYTES) -> BenchItem:
    """R parallel Linears (optionally each followed by GELU), quantized as ``toolkit.onnx_quant`` does.

    Each branch reads its own graph input. Why: branches sharing one input let ORT share the work done
    on it -- dynamic int8's activation quantization runs once per tensor, shape arithmetic is merged by
    common-subexpression elimination -- while in a model every Linear pays for its own (measured: the
    shared-input sweep under-predicted whole compressed models by ~5%, MAEs by ~16%)."""
    r = _copies(k * n, span)
    names = [f"x{i}" for i in range(r)]
    op = Op("linear", "linear", m=tokens, k=k, n=n, bits=bits, act_bits=act_bits)
    ops = [[op.to_dict(), r]] + ([[Op("gelu", "gelu", elems=tokens * n).to_dict(), r]] if gelu else [])

    def build(path: Path) -> list[dict]:
        torch.manual_seed(0)
        _export_linears(bench_modules.ParallelLinear(k, n, r, bias, gelu), names, tokens, k, path, bits, act_bits)
        return onnx_inputs(names, [(1, tokens, k)] * r)

    name = f"linear_t{tokens}_{k}x{n}_w{bits}a{act_bits}" + ("" if bias else "_nobias") + ("_gelu" if gelu else "")
    return BenchItem(name, "op", {"ops": ops, "io": 2 * (r - 1)}, build)


def _export_linears(mod: nn.Module, names: list[str], tokens: int, k: int, path: Path, bits: int, act_bits: int) -> None:
    """Export ``mod`` (inputs ``names``, each ``[1, tokens, k]``) with every Linear in ``mod.names`` at
    ``bits`` / ``act_bits``, quantized as ``toolkit.onnx_quant`` does (static int8: two calibration batches)."""
    xs = tuple(torch.randn(1, tokens, k) for _ in names)
    if bits == 32:
        bench_modules.export_module(mod, xs, path, names)
        return
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        bench_modules.export_module(mod, xs, fp32, names)
        calib = [{nm: np.random.default_rng(s).standard_normal((1, tokens, k)).astype(np.float32) for nm in names}
                 for s in range(2)]
        quantize_onnx(fp32, path, linear_bits={nm: bits for nm in mod.names}, act_bits=act_bits,
                      calib_batches=calib if act_bits == 8 else None)


def linear_chain_item(tokens: int, k: int, n: int, bits: int = 32, act_bits: int = 32, gelu: bool = False,
                      span: float = SPAN_BYTES) -> BenchItem:
    """R pairs of Linears in sequence (``k -> n``, optionally GELU, ``n -> k``) on one graph input, quantized
    as :func:`linear_item`'s; no extra graph inputs or outputs (``io`` 0).

    Why beside the parallel rows: in those, every Linear has its own graph input and output, so a
    Linear's fixed cost and a graph input's / output's are counted together (``io`` is 2 per branch in every
    single-Linear row) and the fit cannot tell them apart; a model's Linears read the previous operator's
    output instead (a low-rank pair's factors back to back). Measured on the Xeon host
    (``benchmarks/latency_chain_rows.py``): 192 -> 24 -> 192 at 50 tokens 5.8 µs per Linear in sequence,
    8.8 µs as parallel branches; 192 -> 576 -> 192 71.7 against 75.4 µs."""
    r = _copies(2 * k * n, span, hi=24)
    ops = [[Op("in", "linear", m=tokens, k=k, n=n, bits=bits, act_bits=act_bits).to_dict(), r],
           [Op("out", "linear", m=tokens, k=n, n=k, bits=bits, act_bits=act_bits).to_dict(), r]]
    if gelu:
        ops.insert(1, [Op("gelu", "gelu", elems=tokens * n).to_dict(), r])

    def build(path: Path) -> list[dict]:
        torch.manual_seed(0)
        _export_linears(bench_modules.ChainLinear(k, n, r, True, gelu), ["x"], tokens, k, path, bits, act_bits)
        return onnx_inputs(["x"], [(1, tokens, k)])

    return BenchItem(f"linchain_t{tokens}_{k}x{n}_w{bits}a{act_bits}" + ("_gelu" if gelu else ""), "op",
                     {"ops": ops, "io": 0}, build)


def attention_item(tokens: int, dim: int, heads: int, head_dim: int, span: float = SPAN_BYTES) -> BenchItem:
    """R timm attention branches: qkv Linear + attention core + proj Linear, the core found by the fit;
    each branch on its own input (see :func:`linear_item`)."""
    a = heads * head_dim
    r = _copies(4 * dim * a, span, hi=16)
    names = [f"x{i}" for i in range(r)]
    ops = [[Op("qkv", "linear", m=tokens, k=dim, n=3 * a).to_dict(), r],
           [Op("core", "attention", m=tokens, kv=tokens, heads=heads, head_dim=head_dim).to_dict(), r],
           [Op("proj", "linear", m=tokens, k=a, n=dim).to_dict(), r]]

    def build(path: Path) -> list[dict]:

        torch.manual_seed(0)
        bench_modules.export_module(bench_modules.Attentions(dim, heads, head_dim, r), tuple(torch.randn(1, tokens, dim) for _ in names), path, names)
        return onnx_inputs(names, [(1, tokens, dim)] * r)

    return BenchItem(f"attention_t{tokens}_d{dim}_h{heads}x{head_dim}", "op", {"ops": ops, "io": 2 * (r - 1)}, build)


def block_item(tokens: int, dim: int, heads: int, mlp: int, bits: int = 32, r: int = 4) -> BenchItem:
    """R timm ``Block``s in a row (pre-norm attention and MLP, residual adds) as ``mae.model`` builds them
    (``heads`` x ``dim / heads``, ``mlp`` hidden units), Linears at ``bits`` (8: dynamic int8): operators
    in their block context, with ``R`` x the block's weights in use per call.

    In the standard sweep at several depths (:data:`FOOTPRINT_CHAINS`): how the time per block grows once a
    graph's weights outgrow the cache, which the operator rows (a fixed span) cannot show; ``maec calibrate``
    fits the profile's weight footprint on them. ``benchmarks/latency_cache_capacity.py`` prints the curve.
    The spec lists the block's operators (``ops.block_ops``), so its rows calibrate like any other."""
    if dim % heads:
        raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
    head_dim = dim // heads
    shape = BlockShape(dim, heads, head_dim, mlp)
    cfg = BlockConfig(heads=heads, mlp_hidden=mlp, weight_bits={k: bits for k in LINEARS})
    counts: dict[Op, int] = {}
    for op in block_ops("b", shape, cfg, tokens, 1, 32):
        counts[op] = counts.get(op, 0) + r
    ops = [[op.to_dict(), n] for op, n in counts.items()]

    def build(path: Path) -> list[dict]:

        torch.manual_seed(0)
        mod = nn.Sequential(*(Block(dim, heads, mlp_ratio=mlp / dim, qkv_bias=True,
                                    norm_layer=functools.partial(nn.LayerNorm, eps=1e-6)) for _ in range(r)))
        x = torch.randn(1, tokens, dim)
        if bits == 32:
            bench_modules.export_module(mod, (x,), path, ["x"])
        else:
            with tempfile.TemporaryDirectory() as tmp:
                fp32 = Path(tmp) / "fp32.onnx"
                bench_modules.export_module(mod, (x,), fp32, ["x"])
                names = {f"{i}.{n}": bits for i in range(r) for n in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")}
                quantize_onnx(fp32, path, linear_bits=names, act_bits=32)
        return onnx_inputs(["x"], [(1, tokens, dim)])

    return BenchItem(f"block_t{tokens}_d{dim}_h{heads}_m{mlp}_w{bits}_r{r}", "op", {"ops": ops, "io": 0}, build)


def chain_item(kind: str, tokens: int, dim: int, r: int = 8) -> BenchItem:
    op = Op(kind, kind, elems=tokens * dim)

    def build(path: Path) -> list[dict]:

        torch.manual_seed(0)
        bench_modules.export_module(bench_modules.Chain(kind, dim, r), (torch.randn(1, tokens, dim),), path, ["x"])
        return onnx_inputs(["x"], [(1, tokens, dim)])

    return BenchItem(f"{kind}_t{tokens}_d{dim}", "op", {"ops": [[op.to_dict(), r]], "io": 0}, build)


def stem_item(kind: str, dim: int, *, img: int = 28, patch: int = 4, chans: int = 1, tokens: int = 50,
              r: int = 4) -> BenchItem:
    """Patch embedding (``conv``), class-token ``concat``, mean ``pool``, MAE ``mask`` or ``unshuffle``."""
    if kind == "conv":
        L = (img // patch) ** 2
        op, shape = Op(kind, "conv", m=L, k=patch * patch * chans, n=dim), (1, chans, img, img)
        name = f"conv_i{img}_p{patch}_c{chans}_d{dim}"
    else:  # tokens: the input's token count (for mask / unshuffle: L patches)
        keep = max(tokens // 4, 1)
        elems, t_in = {"concat": ((tokens + 1) * dim, tokens), "pool": ((tokens - 1) * dim, tokens),
                       "mask": (keep * dim, tokens), "unshuffle": ((tokens + 1) * dim, 1 + keep)}[kind]
        op, shape, name = Op(kind, kind, elems=elems), (1, t_in, dim), f"{kind}_t{tokens}_d{dim}"
    names = ["x"] if kind == "conv" else [f"x{i}" for i in range(r)]

    def build(path: Path) -> list[dict]:

        torch.manual_seed(0)
        mod = bench_modules.Stem(kind, r, dim, img, patch, chans, tokens)
        bench_modules.export_module(mod, tuple(torch.randn(shape) for _ in names), path, names)
        return onnx_inputs(names, [shape] * len(names))

    ops = [[op.to_dict(), r]]
    if kind == "unshuffle":  # + the LayerNorm and residual add of the first decoder block
        ops += [[Op("norm1", "layernorm", elems=elems).to_dict(), r], [Op("add", "add", elems=elems).to_dict(), r]]
    return BenchItem(name, "op", {"ops": ops, "io": len(names) - 1 + r - 1}, build)


def call_item(values: int = 784) -> BenchItem:
    """One ``Identity`` on ``values`` floats (the default model's input): a call with no operator work, the
    runtime's per-call cost (``call_us``: ``session.run``, feeding the input, returning the output). Without
    it the fit can trade that cost against every operator's ``op_us`` (least squares put it at 0 on the host
    and priced each operator a little higher, which a whole model pays once per operator)."""

    def build(path: Path) -> list[dict]:
        import onnx
        from onnx import TensorProto, helper

        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, values])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, values])
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "call", [x], [y])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
        return onnx_inputs(["x"], [(1, values)])

    return BenchItem(f"call_v{values}", "op", {"ops": [], "io": 0}, build)


def merge_item(tokens: int, dim: int, heads: int, head_dim: int, merge: int, r: int = 4) -> BenchItem:
    """R token merges (``mae.tome``) on ``tokens`` x ``dim`` tokens with ``heads`` x ``head_dim`` keys, exported
    at a static batch as ``toolkit.export`` exports a merging model (a dynamic batch makes a copy 65 ORT nodes
    instead of 27: ``benchmarks/tome_graph.py``)."""
    names = [n for i in range(r) for n in (f"x{i}", f"k{i}")]
    shapes = [s for _ in range(r) for s in ((1, tokens, dim), (1, heads, tokens, head_dim))]
    op = Op("merge", "merge", m=tokens, kv=tokens, k=head_dim, n=dim)

    def build(path: Path) -> list[dict]:

        torch.manual_seed(0)
        bench_modules.export_module(bench_modules.Merges(r, tokens, merge), tuple(torch.randn(s) for s in shapes),
                                    path, names, static=True)
        return onnx_inputs(names, shapes)

    return BenchItem(f"merge_t{tokens}_d{dim}_h{heads}x{head_dim}_r{merge}", "op",
                     {"ops": [[op.to_dict(), r]], "io": (2 * r - 1) + (3 * r - 1)}, build)


def merging_block_item(tokens: int, dim: int, heads: int, mlp: int, merge: int, r: int = 4) -> BenchItem:
    """R ``mae.tome.MergingBlock``s in a row, each merging ``merge`` tokens (clamped as the model clamps
    them), then the unmerge gather: token merging in its block context. There the matching reads its keys
    off the ``qkv`` output, later attentions add ``log(size)`` to their scores and the Linears after a
    merge run on fewer tokens, none of which an isolated merge (:func:`merge_item`) sees. The spec is the
    predictor's own decomposition (``ops.block_ops`` along ``spaces.shape.token_flow``); static batch, as a
    merging model is exported (``fit.calibrate.fit_merge_last`` fits the merge terms on these rows last)."""
    shape = BlockShape(dim, heads, dim // heads, mlp)
    cfg = BlockConfig(heads=heads, mlp_hidden=mlp)
    counts: dict[Op, int] = {}
    for i, (t_in, m) in enumerate(token_flow(tokens, [merge] * r)):
        for op in block_ops(f"b{i}", shape, cfg, t_in, 1, 32, merge=m, sized=t_in < tokens):
            counts[op] = counts.get(op, 0) + 1
    unmerge = Op("unmerge", "mask", elems=tokens * dim)
    counts[unmerge] = counts.get(unmerge, 0) + 1
    ops = [[op.to_dict(), n] for op, n in counts.items()]

    def build(path: Path) -> list[dict]:

        torch.manual_seed(0)
        bench_modules.export_module(bench_modules.MergingChain(dim, heads, mlp, r, merge), (torch.randn(1, tokens, dim),),
                                    path, ["x"], static=True)
        return onnx_inputs(["x"], [(1, tokens, dim)])

    return BenchItem(f"mergeblocks_t{tokens}_d{dim}_h{heads}_m{mlp}_r{merge}x{r}", "op", {"ops": ops, "io": 0}, build)


MERGE_SHAPES = ((50, 192, 3, 64), (25, 192, 3, 64), (17, 64, 2, 32), (65, 128, 4, 32), (197, 384, 6, 64),
                (197, 768, 12, 64), (99, 768, 12, 64), (13, 192, 3, 64))


# (tokens, blocks R) of fp32 chains of the default model's block (width 192, 3 heads, 768 units: 1.77 MB of
# weights each, so R = 12 reads 21 MB per call): the rows the weight footprint is fitted on
FOOTPRINT_CHAINS = tuple((t, r) for t in (13, 50) for r in (1, 2, 4, 6, 8, 12))

# (tokens, width, heads, MLP units, merged per block): merging blocks in their block context
MERGING_BLOCK_SHAPES = ((50, 192, 3, 768, 6), (50, 192, 3, 768, 12), (197, 192, 3, 768, 24), (65, 128, 4, 512, 16),
                        (17, 64, 2, 256, 4))


def merge_items() -> list[BenchItem]:
    """Token-merge rows at the token counts and widths the sweeps use, merging a quarter of the tokens, and
    chains of merging blocks (:func:`merging_block_item`): an isolated merge misses what the merge costs
    inside its blocks (keys read off ``qkv``, ``log(size)`` added to later scores), a few percent of a block."""
    return ([merge_item(t, d, h, hd, max(1, (t - 1) // 4)) for t, d, h, hd in MERGE_SHAPES]
            + [merging_block_item(t, d, h, m, r) for t, d, h, m, r in MERGING_BLOCK_SHAPES])


def op_items(sweep: str, seed: int = 0, span: float = SPAN_BYTES) -> list[BenchItem]:
    """The operator sweep: Linear shapes x dtypes (incl. int8 and int4), attention at several token and
    head counts, LayerNorm, GELU, add, and the one-off stem/pooling ops. ``quick`` is a handful.
    ``span``: bytes of weights per row (use >= 2x the device's L2)."""
    rng = np.random.default_rng(seed)
    lin = functools.partial(linear_item, span=span)
    att = functools.partial(attention_item, span=span)

    if sweep == "quick":
        return [call_item(), lin(50, 192, 576), lin(50, 192, 576, 8, 8), att(50, 192, 3, 64),
                chain_item("layernorm", 50, 192, r=2), lin(50, 192, 768, gelu=True), chain_item("add", 50, 192, r=2)]
    tokens = (10, 13, 17, 50, 65, 197)  # 13: an MAE encoder's 1 + 12 visible patches
    widths = (64, 128, 192, 384, 768)
    shapes: list[tuple[int, int]] = []
    for d in widths:
        shapes += [(d, 3 * d), (d, d), (d, 4 * d), (4 * d, d), (d, max(8, d // 8)), (max(8, d // 8), d)]
    shapes += [(192, 24), (24, 576), (192, 48), (48, 192), (384, 96), (96, 1536), (16, 192), (192, 10)]
    items = []
    for k, n in shapes:
        for t in rng.choice(tokens, size=2, replace=False):
            items.append(lin(int(t), k, n))
    items += [lin(50, 192, 576, bias=False), lin(65, 384, 48, bias=False),
              lin(17, 768, 96, bias=False), lin(197, 192, 24, bias=False)]
    # quantized Linears: full-width and low-rank factor shapes, every dtype at two token counts each
    quant_shapes = [(192, 576), (192, 192), (192, 768), (768, 192), (384, 1152), (384, 1536), (1536, 384),
                    (768, 2304), (128, 512), (512, 128), (64, 192), (192, 24), (24, 576), (48, 192), (192, 48),
                    (96, 768), (128, 16), (16, 512)]
    for bits, act in ((16, 32), (8, 32), (8, 8), (4, 32), (4, 8)):
        for k, n in quant_shapes:
            for t in rng.choice(tokens, size=2, replace=False):
                items.append(lin(int(t), k, n, bits, act))
    # Linears in sequence (linear_chain_item): a Linear's own fixed cost apart from a graph input's / output's
    for bits, act in ((32, 32), (16, 32), (8, 32), (8, 8), (4, 32), (4, 8)):
        for t, k, n in ((50, 192, 24), (13, 192, 768), (65, 384, 48)):
            items.append(linear_chain_item(t, k, n, bits, act, span=span))
    items += [linear_chain_item(t, k, n, span=span) for t, k, n in ((17, 64, 8), (197, 768, 96), (50, 128, 512))]
    items.append(linear_chain_item(50, 192, 768, gelu=True, span=span))
    for t in (10, 13, 17, 50, 65, 197):
        for dim, h, d in ((192, 1, 64), (192, 2, 64), (192, 3, 64), (128, 4, 32), (384, 6, 64), (768, 12, 64),
                          (256, 4, 64)):
            if t * t * h <= 197 * 197 * 6:
                items.append(att(t, dim, h, d))
    for t, d, m in ((13, 192, 768), (17, 64, 256), (50, 192, 768), (65, 128, 512), (50, 192, 384), (197, 384, 1536), (13, 192, 96),
                    (50, 768, 3072), (65, 192, 192)):
        items.append(lin(t, d, m, gelu=True))
    for kind in ("layernorm", "add"):
        for t, d in ((17, 64), (50, 192), (65, 128), (50, 768), (197, 384), (197, 768), (13, 192), (10, 384)):
            items.append(chain_item(kind, t, d))
    items += [stem_item("conv", 192), stem_item("conv", 128, img=28, patch=7), stem_item("conv", 384, img=56),
              stem_item("conv", 192, img=224, patch=16, chans=3)]
    for kind in ("concat", "pool"):
        items += [stem_item(kind, d, tokens=t) for t, d in ((50, 192), (13, 192), (49, 128), (197, 384))]
    for kind in ("mask", "unshuffle"):
        items += [stem_item(kind, d, tokens=t) for t, d in ((49, 192), (49, 128), (196, 384), (196, 512), (16, 64))]
    items += [block_item(t, 192, 3, 768, 32, r=r) for t, r in FOOTPRINT_CHAINS]
    return [call_item()] + items + merge_items()
