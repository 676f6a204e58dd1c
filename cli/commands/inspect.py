"""``maec inspect [CONFIG] --model M --device D``: per-layer shapes, weights and MACs of a (compressed)
model, and its predicted on-device latency with a per-operator breakdown.

``M`` is ``default`` (the embedded default architecture), a preset name (``mae_vit_tiny_p4_28``),
``timm:NAME`` (architecture only, random weights), a checkpoint path or a ``maec apply`` folder.
CONFIG is a CompressionConfig JSON or a ``winner.json``; without it the model is priced uncompressed.
"""
from __future__ import annotations

import argparse
import json

from core.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="per-layer table and predicted latency of a (compressed) model on a device")
    p.add_argument("config", nargs="?", default=None, help="CompressionConfig JSON or winner.json (default: none)")
    p.add_argument("--model", default="default", help="'default', a preset, timm:NAME, a checkpoint or an apply folder")
    p.add_argument("--kind", choices=("classifier", "mae"), default="classifier", help="for a preset name")
    p.add_argument("--device", default=None, help="latency profile name or .json (see `maec devices`)")
    p.add_argument("--task", choices=("classify", "reconstruct"), default=None,
                   help="default: reconstruct for a full MAE, classify otherwise")
    p.add_argument("--mask-ratio", type=float, default=0.75, help="MAE masking ratio (reconstruct)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--json", action="store_true", help="one JSON object with latency_ms and the breakdown")
    p.set_defaults(run=run)


def _shape(args: argparse.Namespace):
    """``(ModelShape, global_pool, config of an apply folder or None)``; described from shapes only
    (latency depends on shapes), so presets and apply folders load no weights."""
    from mae.model import describe
    from toolkit.model_spec import resolve_model

    resolved = resolve_model(args.model, weights=False, kind=args.kind)
    model = resolved.model
    return describe(model, name=args.model), model.arch.global_pool, resolved.config


def _dims(op) -> str:
    if op.kind in ("linear", "conv"):
        return f"{op.m:g}x{op.k:g} -> {op.n:g}"
    if op.kind == "attention":
        return f"{op.heads:g} heads x {op.head_dim:g}, {op.m:g}x{op.kv:g}"
    if op.kind == "merge":
        return f"{op.kv:g} tokens, keys {op.k:g} wide"
    return f"{op.elems:g} values"


def _tokens_per_block(shape, config, task: str, mask_ratio: float) -> list[str]:
    """``"attention/MLP"`` token counts of each encoder block (they differ only where tokens merge)."""
    from spaces.shape import token_flow

    if config is None:
        return []
    tokens = shape.encoder_tokens(task, mask_ratio)
    return [f"{t}/{t - r}" for t, r in token_flow(tokens, [b.merge_tokens for b in config.blocks])]


def run(args: argparse.Namespace) -> int:
    from evaluators.latency.predict.ops import decompose
    from evaluators.latency.predict.predictor import LatencyPredictor

    if args.batch < 1 or not 0.0 <= args.mask_ratio < 1.0:
        raise UsageError("--batch must be at least 1 and --mask-ratio in [0, 1)")
    predictor = LatencyPredictor(args.device)  # unknown device: ProfileError before any model is built
    shape, pool, config = _shape(args)
    if args.config:
        from toolkit.artifacts import read_config_file

        config, _ = read_config_file(args.config)
    kw = {"task": args.task, "mask_ratio": args.mask_ratio, "batch": args.batch, "global_pool": pool}
    ops = decompose(shape, config, **kw)
    rows = predictor.breakdown_ms(shape, config, **kw)
    total = predictor.predict_ms(shape, config, **kw)
    dev = predictor.device
    task = args.task or ("reconstruct" if shape.is_mae else "classify")
    tokens = _tokens_per_block(shape, config, task, args.mask_ratio)
    if args.json:
        print(json.dumps({
            "model": args.model, "config": args.config, "device": dev.name, "threads": dev.threads,
            "confidence": dev.confidence, "task": task,
            "latency_ms": round(total, 4), "call_ms": round(predictor.call_ms, 4),
            "macs": sum(op.macs for op in ops), "weights": sum(op.params for op in ops),
            "tokens_per_block": tokens, "weights_beyond_cache_ms": round(sum(r.ms for r in rows[len(ops):]), 4),
            "ops": [{**r.to_dict(), "shape": _dims(op)} for r, op in zip(rows, ops)]}, indent=1))
        return 0
    print(f"{args.model}{' + ' + args.config if args.config else ' (uncompressed)'} on {dev.name} "
          f"({dev.device}, {dev.runtime}; {dev.confidence} confidence)")
    print(f"{'operator':28s} {'kind':9s} {'shape':26s} {'weights':>9s} {'MACs':>12s} {'kernel':7s} {'ms':>8s} {'%':>5s}")
    for r, op in zip(rows, ops):
        kernel = r.kernel if r.kernel == r.dtype else f"{r.kernel}*"
        print(f"{r.name:28s} {r.kind:9s} {_dims(op):26s} {op.params:9,.0f} {r.macs:12,.0f} {kernel:7s} "
              f"{r.ms:8.3f} {100 * r.ms / total:5.1f}")
    for r in rows[len(ops):]:  # the profile's weight footprint beyond the cache (host profiles)
        print(f"{'weights beyond the cache':28s} {r.kind:9s} {'':26s} {'':9s} {'':12s} {'':7s} {r.ms:8.3f} "
              f"{100 * r.ms / total:5.1f}")
    print(f"{'runtime call overhead':28s} {'':9s} {'':26s} {'':9s} {'':12s} {'':7s} {predictor.call_ms:8.3f}")
    print(f"total: {sum(op.params for op in ops):,.0f} weights in Linears, {sum(op.macs for op in ops):,.0f} MACs, "
          f"predicted latency {total:.2f} ms")
    if config is not None and any(b.merge_tokens for b in config.blocks):
        print(f"tokens per encoder block (attention / MLP): {' '.join(tokens)} -- token merging")
    if any(r.kernel != r.dtype for r in rows):
        print("* priced at another kernel: on this device the lower bit-width (or the low-rank pair, 'dense-') "
              "would not be faster, so deploying it is not worth it")
    return 0
