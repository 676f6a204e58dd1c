"""Issue 16 benchmark: token merging alone against head/MLP pruning alone at equal predicted latency.

On the shipped classifier (Fashion-MNIST): for each merge share (the fraction of its patch tokens every
block merges, ToMe's constant schedule), the merging config and the uniform pruning config (heads and
MLP units kept in eighths) whose predicted latency is the largest at or below the merging one's. For
each: predicted latency (default profile), host-measured ONNX Runtime latency (1 thread, batch 1,
multi-pass rule) against the host profile's prediction, test top-1 without recovery (cheap) and after
``--recover-steps`` of distillation (default settings, lr 3e-4), on the whole test split.

On a timm ViT at 224 px (``--timm``, random weights: there is nothing to score) only latency: the
merging configs exported and timed against the host profile's prediction.

    python benchmarks/tome_tradeoff.py [--recover-steps 100] [--shares 0.0625,0.125,0.25]
                                       [--timm vit_tiny_patch16_224] [--host-profile results/latency/host-ort-1t.json]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402

from evaluators.accuracy import TaskEvaluator  # noqa: E402
from evaluators.latency.measure.host import compare_latency_ms  # noqa: E402
from evaluators.latency.measure.items import spec_ops  # noqa: E402
from evaluators.latency.measure.op_items import block_item, merging_block_item  # noqa: E402
from evaluators.latency.measure.ort_timing import machine_summary, time_interleaved_ms  # noqa: E402
from evaluators.latency.predict.predictor import LatencyPredictor  # noqa: E402
from mae.data import load_dataset  # noqa: E402
from mae.model import describe  # noqa: E402
from spaces.config import CompressionConfig, DistillConfig  # noqa: E402
from spaces.space import SEARCH_RECOVERY_LR, UniformSpace, merge_schedule  # noqa: E402
from toolkit.export import export_onnx  # noqa: E402
from toolkit.model_spec import resolve_model  # noqa: E402

KEEP = tuple(i / 8 for i in range(1, 9))


def merging(shape, share: float) -> CompressionConfig:
    ident = CompressionConfig.identity(shape)
    return replace(ident, blocks=merge_schedule(ident.blocks, share, 1 + shape.num_patches))


def pruning_at(shape, predictor: LatencyPredictor, target_ms: float) -> CompressionConfig | None:
    """The uniform head/MLP pruning config with the largest predicted latency <= ``target_ms``."""
    space = UniformSpace(shape=shape, techniques=frozenset({"prune"}))
    best = None
    for h in KEEP:
        for m in KEEP:
            cfg = space.sample(optuna.trial.FixedTrial({"keep_heads": h, "keep_mlp": m}))
            ms = predictor.predict_ms(shape, cfg)
            if ms <= target_ms and (best is None or ms > best[0]):
                best = (ms, cfg)
    return None if best is None else best[1]


def host_times(models: dict, host: LatencyPredictor, shape, configs: dict) -> dict[str, tuple[float, float]]:
    """``{name: (measured ms, host-predicted ms)}`` of exported models (interleaved, multi-pass rule)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = {n: export_onnx(m, Path(tmp) / f"{i}.onnx") for i, (n, m) in enumerate(models.items())}
        stats = compare_latency_ms(paths, threads=1, rounds=5, repeats=100)
    return {n: (stats[n].median_ms, host.predict_ms(shape, configs[n])) for n in models}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recover-steps", type=int, default=100)
    ap.add_argument("--latency-only", action="store_true",
                    help="skip the accuracy columns (they do not depend on the ONNX export): time and predict only")
    ap.add_argument("--context", action="store_true",
                    help="also time merging blocks in their block context, without a model around them (~1 min)")
    ap.add_argument("--shares", default="0.0625,0.125,0.25")
    ap.add_argument("--timm", default="vit_tiny_patch16_224")
    ap.add_argument("--host-profile", default="results/latency/host-ort-1t.json",
                    help="this machine's profile (benchmarks/latency_host_proof.py writes it)")
    args = ap.parse_args()
    shares = [float(s) for s in args.shares.split(",")]
    device, host = LatencyPredictor(None), LatencyPredictor(args.host_profile)
    print(f"machine: {machine_summary()}; device profile {device.device.name}; host profile {args.host_profile}")

    teacher = resolve_model("default").model.eval()
    shape = describe(teacher)
    arch = teacher.arch
    splits = load_dataset("fashion-mnist", data_dir=None, **arch.data_kwargs())
    ev = TaskEvaluator(teacher, splits, bf16=False, seed=0)
    configs: dict[str, CompressionConfig] = {"teacher": CompressionConfig.identity(shape)}
    for share in shares:
        m = merging(shape, share)
        configs[f"merge {share:g}"] = m
        p = pruning_at(shape, device, device.predict_ms(shape, m))
        if p is not None:
            configs[f"prune at merge {share:g}"] = p
    rows, students = [], {}
    for name, cfg in configs.items():
        cheap_model, _ = ev.compress(cfg, recover_steps=0)
        students[name] = cheap_model
        if args.latency_only:
            rows.append((name, cfg, float("nan"), float("nan")))
            continue
        cheap = ev.score(cheap_model, "test")
        rec = cheap
        if name != "teacher" and args.recover_steps:
            rec_cfg = replace(cfg, distill=DistillConfig(steps=args.recover_steps, lr=SEARCH_RECOVERY_LR))
            rec = ev.score(ev.compress(rec_cfg, recover_steps=args.recover_steps)[0], "test")
        rows.append((name, cfg, cheap, rec))
        print(f"  {name}: cheap {100 * cheap:.2f}, recovered {100 * rec:.2f}", file=sys.stderr, flush=True)
    timed = host_times(students, host, shape, configs)
    print(f"\nembedded default ({shape.name}, {1 + shape.num_patches} tokens), Fashion-MNIST test (10,000 images), "
          f"recovery {args.recover_steps} steps:")
    print("| config | tokens per block | predicted ms (device) | host measured ms | host predicted ms | error "
          "| test top-1 cheap | test top-1 recovered |")
    print("|---|---|---|---|---|---|---|---|")
    for name, cfg, cheap, rec in rows:
        meas, pred = timed[name]
        toks = "/".join(str(1 + shape.num_patches - sum(b.merge_tokens for b in cfg.blocks[:i + 1]))
                        for i in range(len(cfg.blocks)))
        print(f"| {name} | {toks} | {device.predict_ms(shape, cfg):.2f} | {meas:.3f} | {pred:.3f} | "
              f"{100 * (pred / meas - 1):+.1f}% | {100 * cheap:.2f} | {100 * rec:.2f} |")

    if args.timm:
        model = resolve_model(f"timm:{args.timm}").model.eval()
        tshape = describe(model)
        tconfigs = {"identity": CompressionConfig.identity(tshape)}
        tconfigs.update({f"merge {s:g}": merging(tshape, s) for s in shares})
        from toolkit.tokens import apply_token_merging

        tmodels = {}
        for name, cfg in tconfigs.items():
            m = resolve_model(f"timm:{args.timm}").model.eval()
            apply_token_merging(m, cfg)
            tmodels[name] = m
        ttimed = host_times(tmodels, host, tshape, tconfigs)
        print(f"\ntimm:{args.timm} ({1 + tshape.num_patches} tokens, random weights: latency only):")
        print("| config | predicted ms (device) | host measured ms | host predicted ms | error |")
        print("|---|---|---|---|---|")
        for name, cfg in tconfigs.items():
            meas, pred = ttimed[name]
            print(f"| {name} | {device.predict_ms(tshape, cfg):.1f} | {meas:.2f} | {pred:.2f} | "
                  f"{100 * (pred / meas - 1):+.1f}% |")
    if args.context:
        context_table(host)
    return 0


CONTEXT_CHAINS = ((50, 192, 3, 768, (6, 12)), (197, 192, 3, 768, (24, 48)), (65, 128, 4, 512, (16,)))


def context_table(host: LatencyPredictor, blocks: int = 4) -> None:
    """Merging in its block context, without the rest of a model: ``blocks`` chained timm blocks against
    the same blocks merging r tokens each (``op_items.merging_block_item``), timed interleaved and
    predicted by the host profile from the predictor's own decomposition of each chain."""
    items = []
    for t, d, h, m, merges in CONTEXT_CHAINS:
        items += [block_item(t, d, h, m, r=blocks)] + [merging_block_item(t, d, h, m, r, r=blocks) for r in merges]
    with tempfile.TemporaryDirectory() as tmp:
        models = {it.bench: (Path(tmp) / f"{i}.onnx", it.build(Path(tmp) / f"{i}.onnx")) for i, it in enumerate(items)}
        timed = time_interleaved_ms(models, threads=1, rounds=5, repeats=60, warmup=10)
    print(f"\nmerging in block context ({blocks} chained blocks, no stem or head; host profile):")
    print("| chain | host measured ms | host predicted ms | error |")
    print("|---|---|---|---|")
    for it in items:
        pred = host.call_ms + sum(host.op_ms(op) * n for op, n in spec_ops(it.spec))
        meas = timed[it.bench]["latency_ms"]
        print(f"| {it.bench} | {meas:.3f} | {pred:.3f} | {100 * (pred / meas - 1):+.1f}% |")


if __name__ == "__main__":
    sys.exit(main())
