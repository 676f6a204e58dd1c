"""The measurement harness behind ``maec measure``: operator micro-benchmarks and whole compressed
models, exported to ONNX and timed with ONNX Runtime on the machine at hand (or on a device through
an export kit).

Every benchmark is an ONNX file plus a ``spec`` saying which of our operators it runs, so that
``maec calibrate`` can turn its time into a sample without knowing how it was built:

* operator rows: ``{"ops": [[op, R]], "io": extra inputs/outputs}``. A row runs R copies of one
  operator with distinct weights (R parallel Linears on one input, R chained LayerNorms / GELUs /
  adds, R attention cores on R inputs) so that weights stream from memory as in a whole model, and
  no copy can be merged away by ORT's common-subexpression elimination;
* model rows: ``{"shape", "config", "task", "mask_ratio", "global_pool"}``, a compressed model from
  the project's own search space (``spaces.space.JointSpace``) built by ``toolkit`` (prune, low-rank,
  ``export_onnx``, ``quantize_onnx``), decomposed again at calibration time.

The sweep is seeded: the same ``--sweep`` and ``--seed`` give the same benchmarks on every machine.
"""
from __future__ import annotations

import functools
import json
import math
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluators.latency.ops import Op, decompose

SWEEPS = ("quick", "standard", "proof")
Builder = Callable[[Path], list[dict]]  # writes the ONNX file at the path, returns its inputs


@dataclass(frozen=True)
class BenchItem:
    """One benchmark: a name, ``row_kind`` ("op" or "model"), the ``spec`` JSON and its ONNX builder."""

    bench: str
    row_kind: str
    spec: dict
    build: Builder


# ---- torch modules of the micro-benchmarks ----------------------------------------------------------
def _modules():
    """Defined lazily (``maec devices`` and prediction never import torch). Each mirrors the code of
    ``mae.model`` / timm that produces the op in a real model, so the exported glue is the same."""
    import torch
    import torch.nn.functional as F
    from timm.layers import PatchEmbed
    from torch import nn

    class ParallelLinear(nn.Module):
        """R Linears ``k -> n`` on one input ``x: [B, T, k]`` -> R outputs ``[B, T, n]``, each optionally
        followed by GELU (ORT then fuses bias + GELU into BiasGelu, as in a real MLP)."""

        def __init__(self, k: int, n: int, r: int, bias: bool, gelu: bool = False):
            super().__init__()
            self.names = [f"l{i}" for i in range(r)]
            for name in self.names:
                setattr(self, name, nn.Linear(k, n, bias=bias))
            self.act = nn.GELU() if gelu else nn.Identity()

        def forward(self, *xs):  # one input per branch: see linear_item
            return tuple(self.act(getattr(self, n)(x)) for n, x in zip(self.names, xs))

    class Attentions(nn.Module):
        """R copies of timm's ``Attention.forward`` (qkv Linear, split heads, SDPA, merge, proj Linear)
        with ``heads`` x ``head_dim`` kept in a ``dim``-wide block, each on its own input ``[B, T, dim]``."""

        def __init__(self, dim: int, heads: int, head_dim: int, r: int):
            super().__init__()
            self.heads, self.head_dim = heads, head_dim
            self.qkv = nn.ModuleList(nn.Linear(dim, 3 * heads * head_dim) for _ in range(r))
            self.proj = nn.ModuleList(nn.Linear(heads * head_dim, dim) for _ in range(r))

        def forward(self, *xs):
            outs = []
            for qkv_l, proj, x in zip(self.qkv, self.proj, xs):
                B, N, _ = x.shape
                q, k, v = qkv_l(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
                y = F.scaled_dot_product_attention(q, k, v)
                outs.append(proj(y.transpose(1, 2).reshape(B, N, self.heads * self.head_dim)))
            return tuple(outs)

    class Chain(nn.Module):
        """R shape-preserving ops in a row on ``x: [B, T, D]``: LayerNorm (own weights) or residual add."""

        def __init__(self, kind: str, dim: int, r: int):
            super().__init__()
            self.kind, self.r = kind, r
            self.norms = nn.ModuleList(nn.LayerNorm(dim, eps=1e-6) for _ in range(r if kind == "layernorm" else 0))
            for m in self.norms:
                nn.init.normal_(m.weight)

        def forward(self, x):
            y = x
            for i in range(self.r):
                y = self.norms[i](y) if self.kind == "layernorm" else y + x
            return y

    class Stem(nn.Module):
        """R patch embeddings (timm ``PatchEmbed``) on one image, or, on R token tensors (separate
        inputs, so none is merged), R class-token concats / mean pools as ``mae.model`` writes them, or
        R MAE masking gathers / decoder-input assemblies as ``toolkit.export``'s fixed-mask MAE runs them.
        ``tokens`` = L patches for mask / unshuffle (K = L / 4 visible)."""

        def __init__(self, kind: str, r: int, dim: int, img: int, patch: int, chans: int, tokens: int):
            super().__init__()
            self.kind = kind
            if kind == "conv":
                self.embeds = nn.ModuleList(PatchEmbed(img, patch, chans, dim) for _ in range(r))
            self.cls = nn.Parameter(torch.randn(r, 1, 1, dim))
            self.pos = nn.Parameter(torch.randn(r, 1, tokens + 1, dim))
            g = torch.Generator().manual_seed(0)
            perms = [torch.randperm(max(tokens, 1), generator=g) for _ in range(r)]
            self.register_buffer("keep", torch.stack([p[: max(tokens // 4, 1)] for p in perms]))
            self.register_buffer("restore", torch.stack([torch.argsort(p) for p in perms]))
            # the decoder's first norm1 follows the position add: ORT fuses the two (SkipLayerNorm with a
            # broadcast skip, slower than either alone), so the benchmark keeps that neighbour
            self.norms = nn.ModuleList(nn.LayerNorm(dim, eps=1e-6) for _ in range(r if kind == "unshuffle" else 0))

        def _unshuffle(self, i: int, x):  # mae.model.MaskedAutoencoder.forward_decoder, after decoder_embed
            ids = self.restore[i].unsqueeze(0).expand(x.shape[0], -1)
            n, length = ids.shape
            mask_tokens = self.cls[i].expand(n, length + 1 - x.shape[1], -1)
            patches = torch.cat([x[:, 1:], mask_tokens], dim=1)
            patches = torch.gather(patches, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[2]))
            y = torch.cat([x[:, :1], patches], dim=1) + self.pos[i]
            return y + self.norms[i](y)  # the residual keeps the sum alive, as in a block

        def forward(self, *xs):
            if self.kind == "conv":
                return tuple(e(xs[0]) for e in self.embeds)
            if self.kind == "concat":
                return tuple(torch.cat([self.cls[i].expand(x.shape[0], -1, -1), x], dim=1) for i, x in enumerate(xs))
            if self.kind == "mask":
                return tuple(x[:, self.keep[i]] for i, x in enumerate(xs))
            if self.kind == "unshuffle":
                return tuple(self._unshuffle(i, x) for i, x in enumerate(xs))
            return tuple(x[:, 1:].mean(dim=1) for x in xs)  # pool

    return ParallelLinear, Attentions, Chain, Stem


def _export(module, args: tuple, path: Path, input_names: list[str]) -> None:
    """TorchScript exporter, opset 17, batch dimension dynamic: the settings of ``toolkit.export`` (a
    dynamic batch keeps the shape arithmetic -- Shape, Gather, Concat, Sqrt -- that real models run)."""
    import torch

    module.eval()
    with torch.no_grad():
        out = module(*args)
    outputs = [f"y{i}" for i in range(len(out) if isinstance(out, tuple) else 1)]
    axes = {n: {0: "batch"} for n in input_names + outputs}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=17, input_names=input_names,
                          output_names=outputs, dynamic_axes=axes)


def onnx_inputs(names: list[str], shapes: list[tuple[int, ...]]) -> list[dict]:
    return [{"name": n, "shape": list(s)} for n, s in zip(names, shapes)]


def quiet_quantize(fp32: Path, path: Path, **kw) -> None:
    """``toolkit.export.quantize_onnx`` without ORT's advice to pre-process (logged at WARNING)."""
    import logging

    from toolkit.export import quantize_onnx

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_onnx(fp32, path, **kw)
    finally:
        root.setLevel(level)


# ---- operator benchmarks ----------------------------------------------------------------------------
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
        import torch

        torch.manual_seed(0)
        mod = _modules()[0](k, n, r, bias, gelu)
        xs = tuple(torch.randn(1, tokens, k) for _ in names)
        if bits == 32:
            _export(mod, xs, path, names)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                fp32 = Path(tmp) / "fp32.onnx"
                _export(mod, xs, fp32, names)
                calib = [{nm: np.random.default_rng(s).standard_normal((1, tokens, k)).astype(np.float32) for nm in names}
                         for s in range(2)]
                quiet_quantize(fp32, path, linear_bits={nm: bits for nm in mod.names}, act_bits=act_bits,
                                calib_batches=calib if act_bits == 8 else None)
        return onnx_inputs(names, [(1, tokens, k)] * r)

    name = f"linear_t{tokens}_{k}x{n}_w{bits}a{act_bits}" + ("" if bias else "_nobias") + ("_gelu" if gelu else "")
    return BenchItem(name, "op", {"ops": ops, "io": 2 * (r - 1)}, build)


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
        import torch

        torch.manual_seed(0)
        _export(_modules()[1](dim, heads, head_dim, r), tuple(torch.randn(1, tokens, dim) for _ in names), path, names)
        return onnx_inputs(names, [(1, tokens, dim)] * r)

    return BenchItem(f"attention_t{tokens}_d{dim}_h{heads}x{head_dim}", "op", {"ops": ops, "io": 2 * (r - 1)}, build)


def block_item(tokens: int, dim: int, heads: int, mlp: int, bits: int = 32, r: int = 4) -> BenchItem:
    """R timm ``Block``s in a row (pre-norm attention and MLP, residual adds) as ``mae.model`` builds them
    (``heads`` x ``dim / heads``, ``mlp`` hidden units), Linears at ``bits`` (8: dynamic int8): operators
    in their block context, with ``R`` x the block's weights in use per call.

    Not part of the sweeps: ``benchmarks/latency_cache_capacity.py`` uses it to see how the time per
    block grows once a graph's weights outgrow the cache (the operator rows stream a fixed span). The
    spec lists the block's operators (``ops.block_ops``), so its rows calibrate like any other."""
    if dim % heads:
        raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
    head_dim = dim // heads
    from spaces.config import LINEARS, BlockConfig
    from spaces.shape import BlockShape

    from evaluators.latency.ops import block_ops

    shape, cfg = BlockShape(dim, heads, head_dim, mlp), BlockConfig(heads, mlp, weight_bits={k: bits for k in LINEARS})
    counts: dict[Op, int] = {}
    for op in block_ops("b", shape, cfg, tokens, 1, 32):
        counts[op] = counts.get(op, 0) + r
    ops = [[op.to_dict(), n] for op, n in counts.items()]

    def build(path: Path) -> list[dict]:
        import torch
        from timm.models.vision_transformer import Block
        from torch import nn

        torch.manual_seed(0)
        mod = nn.Sequential(*(Block(dim, heads, mlp_ratio=mlp / dim, qkv_bias=True,
                                    norm_layer=functools.partial(nn.LayerNorm, eps=1e-6)) for _ in range(r)))
        x = torch.randn(1, tokens, dim)
        if bits == 32:
            _export(mod, (x,), path, ["x"])
        else:
            with tempfile.TemporaryDirectory() as tmp:
                fp32 = Path(tmp) / "fp32.onnx"
                _export(mod, (x,), fp32, ["x"])
                names = {f"{i}.{n}": bits for i in range(r) for n in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")}
                quiet_quantize(fp32, path, linear_bits=names, act_bits=32)
        return onnx_inputs(["x"], [(1, tokens, dim)])

    return BenchItem(f"block_t{tokens}_d{dim}_h{heads}_m{mlp}_w{bits}_r{r}", "op", {"ops": ops, "io": 0}, build)


def chain_item(kind: str, tokens: int, dim: int, r: int = 8) -> BenchItem:
    op = Op(kind, kind, elems=tokens * dim)

    def build(path: Path) -> list[dict]:
        import torch

        torch.manual_seed(0)
        _export(_modules()[2](kind, dim, r), (torch.randn(1, tokens, dim),), path, ["x"])
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
        import torch

        torch.manual_seed(0)
        mod = _modules()[3](kind, r, dim, img, patch, chans, tokens)
        _export(mod, tuple(torch.randn(shape) for _ in names), path, names)
        return onnx_inputs(names, [shape] * len(names))

    ops = [[op.to_dict(), r]]
    if kind == "unshuffle":  # + the LayerNorm and residual add of the first decoder block
        ops += [[Op("norm1", "layernorm", elems=elems).to_dict(), r], [Op("add", "add", elems=elems).to_dict(), r]]
    return BenchItem(name, "op", {"ops": ops, "io": len(names) - 1 + r - 1}, build)


def op_items(sweep: str, seed: int = 0, span: float = SPAN_BYTES) -> list[BenchItem]:
    """The operator sweep: Linear shapes x dtypes (incl. int8 and int4), attention at several token and
    head counts, LayerNorm, GELU, add, and the one-off stem/pooling ops. ``quick`` is a handful.
    ``span``: bytes of weights per row (use >= 2x the device's L2)."""
    rng = np.random.default_rng(seed)
    lin = functools.partial(linear_item, span=span)
    att = functools.partial(attention_item, span=span)

    if sweep == "quick":
        return [lin(50, 192, 576), lin(50, 192, 576, 8, 8), att(50, 192, 3, 64),
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
    return items


def sweep_items(sweep: str = "standard", seed: int = 0, *, ops: bool = True, models: bool = True,
                span: float = SPAN_BYTES) -> list[BenchItem]:
    if sweep not in SWEEPS:
        raise ValueError(f"unknown sweep {sweep!r}; choose from {', '.join(SWEEPS)}")
    from evaluators.latency.bench_models import model_items

    return (op_items(sweep, seed, span) if ops else []) + (model_items(sweep, seed) if models else [])


# ---- building and running ---------------------------------------------------------------------------------
def build_kit(items: list[BenchItem], folder: Path, *, progress: bool = False) -> Path:
    """Write each item's ONNX file, ``manifest.json`` and ``run_kit.py`` (the numpy + onnxruntime runner)."""
    import sys

    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, item in enumerate(items):
        file = f"{i:04d}_{item.bench}.onnx"
        inputs = item.build(folder / file)
        entries.append({"bench": item.bench, "row_kind": item.row_kind, "file": file, "inputs": inputs, "spec": item.spec})
        if progress:
            print(f"built [{i + 1}/{len(items)}] {item.bench}", file=sys.stderr)
    (folder / "manifest.json").write_text(json.dumps({"format": "maec-measure-kit/1", "entries": entries}, indent=1))
    shutil.copyfile(Path(__file__).with_name("kit_runner.py"), folder / "run_kit.py")
    (folder / "README.txt").write_text(
        "Latency kit for `maec calibrate`. On the device (needs python3, numpy, onnxruntime):\n"
        "    python3 run_kit.py --threads 1 --rounds 3 --out my_device.csv\n"
        "Close other programs, keep the device cool and plugged in. Then, where the project is installed:\n"
        "    maec calibrate my_device.csv --name my-device\n")
    return folder


def measure(items: list[BenchItem], out: Path, *, threads: int = 1, repeats: int = 30, warmup: int = 5,
            device: str = "", min_seconds: float = 0.2, rounds: int = 3, keep: Path | None = None,
            progress: bool = True) -> int:
    """Build every item into a kit (``keep`` or a temporary folder), time it here in ``rounds`` passes
    (``kit_runner.run_manifest``), write ``out``."""
    from evaluators.latency.kit_runner import run_manifest

    with tempfile.TemporaryDirectory() as tmp:
        folder = keep or Path(tmp)
        build_kit(items, folder, progress=progress)
        return run_manifest(folder, out, threads=threads, repeats=repeats, warmup=warmup, device=device,
                            min_seconds=min_seconds, rounds=rounds, progress=progress)


def spec_ops(spec: dict) -> Iterator[tuple[Op, float]]:
    """The (op, count) pairs a row's spec stands for (model rows decomposed from shape + config)."""
    if "ops" in spec:
        for d, count in spec["ops"]:
            yield Op.from_dict(d), float(count)
        return
    from spaces.config import CompressionConfig
    from spaces.shape import ModelShape

    shape = ModelShape.from_dict(spec["shape"])
    config = CompressionConfig.from_dict(spec["config"])
    for op in decompose(shape, config, task=spec.get("task"), mask_ratio=spec.get("mask_ratio", 0.75),
                        global_pool=spec.get("global_pool", "avg")):
        yield op, 1.0
