"""Which compression the host profile mis-prices: uniform configs of the embedded default, one knob each.

Times the uncompressed model and variants that change one thing in every encoder block -- attention removed
(3 or 6 blocks), 1 head, 384 MLP units, MLP removed (3 blocks), every Linear at dynamic int8 / fp16 / low rank
24 or 48, low rank 24 and int8 together; for the full MAE also the decoder's Linears alone -- and prints each one's error against the host profile that ``benchmarks/latency_host_proof.py``
fitted on operator rows (``results/latency/host-ort-1t.json``), also relative to the uncompressed model's
error (what the knob itself adds, whatever the machine's speed since the profile was fitted).
``--kind mae`` does the same on the full MAE (encoder at 13 visible tokens). One core, one ONNX Runtime
thread, ``--rounds`` interleaved passes, lowest pass median.

    .venv/bin/python benchmarks/latency_config_dissect.py --kind classifier    # ~2 min; run the host proof first
    .venv/bin/python benchmarks/latency_config_dissect.py --kind mae
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latency_mae_dissect import pinned_host_predictor  # noqa: E402 (benchmarks/ is the script's own folder)

from evaluators.latency.measure.model_items import model_item
from evaluators.latency.measure.ort_timing import time_interleaved_ms
from mae.model import create_model, describe
from spaces.config import CompressionConfig

PRESET = "mae_vit_tiny_p4_28"


def variants(identity: CompressionConfig) -> dict[str, CompressionConfig]:
    """The uncompressed config, one-knob variants of its encoder blocks, low rank and int8 together, and (full
    MAE) the decoder's Linears alone at int8 or low rank."""
    def each(change, first: int | None = None, part: str = "blocks") -> CompressionConfig:
        d = identity.to_dict()
        for i, b in enumerate(d[part]):
            if first is None or i < first:
                change(b)
        return CompressionConfig.from_dict(d)

    def linears(key: str, value):
        return lambda b: b.update({key: {n: value for n in b[key]}})

    def both(b):  # low rank and dynamic int8 in the same Linears, as the sampled configs mix them
        linears("ranks", 24)(b)
        linears("weight_bits", 8)(b)

    mixed = {"rank 24 + dynamic int8": each(both)}
    if identity.decoder_blocks:
        mixed["decoder only: dynamic int8"] = each(linears("weight_bits", 8), part="decoder_blocks")
        mixed["decoder only: rank 24"] = each(linears("ranks", 24), part="decoder_blocks")
    return {"uncompressed": identity,
            "attention removed x3": each(lambda b: b.update(heads=0), 3),
            "attention removed x6": each(lambda b: b.update(heads=0)),
            "1 head": each(lambda b: b.update(heads=1)),
            "384 MLP units": each(lambda b: b.update(mlp_hidden=384)),
            "MLP removed x3": each(lambda b: b.update(mlp_hidden=0), 3),
            "dynamic int8": each(linears("weight_bits", 8)),
            "fp16": each(linears("weight_bits", 16)),
            "rank 24": each(linears("ranks", 24)),
            "rank 48": each(linears("ranks", 48)), **mixed}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=("classifier", "mae"), default="classifier")
    p.add_argument("--profile", default=str(ROOT / "results" / "latency" / "host-ort-1t.json"))
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--mask-ratio", type=float, default=0.75, help="full MAE: 0.75, the encoder sees 1 + 12 tokens; 0: all 50")
    p.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last one)")
    args = p.parse_args()
    predictor = pinned_host_predictor(args.profile, args.cpu)
    if predictor is None:
        return 2
    task = "reconstruct" if args.kind == "mae" else "classify"
    shape = describe(create_model(PRESET, kind=args.kind), name=PRESET)
    # exported as the predictor's deployable_config, as the host proof and the search do (the kernels it priced)
    configs = {n: predictor.deployable_config(shape, c, task=task, mask_ratio=args.mask_ratio)
               for n, c in variants(CompressionConfig.identity(shape)).items()}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for i, (name, cfg) in enumerate(configs.items()):
            path = Path(tmp) / f"v{i}.onnx"
            files[name] = (path, model_item(PRESET, args.kind, cfg, f"v{i}", mask_ratio=args.mask_ratio).build(path))
        # interleaved passes, lowest pass median: a disturbed window hits one pass of each
        timed = time_interleaved_ms(files, rounds=args.rounds, repeats=300, warmup=20, progress=True)
    print(f"{args.kind} ({task}{f', mask ratio {args.mask_ratio}' if args.kind == 'mae' else ''}), profile {args.profile}")
    print("| variant (every encoder block) | measured ms | predicted ms | error | relative to the uncompressed |")
    print("|---|---|---|---|---|")
    base = None
    for name, cfg in configs.items():
        meas, pred = timed[name]["latency_ms"], predictor.predict_ms(shape, cfg, task=task, mask_ratio=args.mask_ratio)
        ratio = pred / meas
        base = ratio if base is None else base
        print(f"| {name} | {meas:.3f} | {pred:.3f} | {100 * (ratio - 1):+.1f}% | {100 * (ratio / base - 1):+.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
