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

``--proof-model NAME`` takes one model of the host proof instead (its config from
``results/latency/host-ort-1t-models.csv``) and undoes one of its choices at a time: every dynamic-int8
Linear back to fp32 (all, encoder only, decoder only), every low-rank pair dense, and each int4 Linear at int8
or fp32 -- so a model the proof misses shows which of its kernels the profile mis-prices.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
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
from spaces.shape import ModelShape

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


def proof_variants(config: dict) -> dict[str, CompressionConfig]:
    """A host-proof model's config (``to_dict`` form) and variants that undo one of its choices each."""
    def each(change, parts=("blocks", "decoder_blocks")) -> CompressionConfig:
        d = copy.deepcopy(config)
        for part in parts:
            for b in d.get(part) or []:
                change(b)
        return CompressionConfig.from_dict(d)

    def int8_to_fp32(b):
        b["weight_bits"] = {k: 32 if v == 8 else v for k, v in b["weight_bits"].items()}

    out = {"as sampled": CompressionConfig.from_dict(config),
           "dynamic int8 -> fp32": each(int8_to_fp32),
           "dynamic int8 -> fp32, encoder": each(int8_to_fp32, ("blocks",))}
    if config.get("decoder_blocks"):
        out["dynamic int8 -> fp32, decoder"] = each(int8_to_fp32, ("decoder_blocks",))
    out["low rank -> dense"] = each(lambda b: b.update(ranks={k: None for k in b["ranks"]}))
    for part in ("blocks", "decoder_blocks"):
        for i, b in enumerate(config.get(part) or []):
            for key in (k for k, v in b["weight_bits"].items() if v == 4):
                for bits in (8, 32):
                    d = copy.deepcopy(config)
                    d[part][i]["weight_bits"][key] = bits
                    out[f"{part}.{i}.{key}: int4 -> {'int8' if bits == 8 else 'fp32'}"] = CompressionConfig.from_dict(d)
    return out


def proof_model(name: str) -> tuple[dict, dict] | None:
    """``(spec, config dict)`` of the host proof's model ``name``, or None after saying why."""
    path = ROOT / "results" / "latency" / "host-ort-1t-models.csv"
    csv.field_size_limit(1 << 27)
    rows = {r["bench"]: r for r in csv.DictReader(path.open())} if path.exists() else {}
    if name not in rows:
        print(f"--proof-model: no model {name!r} in {path} (run benchmarks/latency_host_proof.py first)",
              file=sys.stderr)
        return None
    spec = json.loads(rows[name]["spec"])
    return spec, spec["config"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=("classifier", "mae"), default="classifier")
    p.add_argument("--profile", default=str(ROOT / "results" / "latency" / "host-ort-1t.json"))
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--mask-ratio", type=float, default=0.75, help="full MAE: 0.75, the encoder sees 1 + 12 tokens; 0: all 50")
    p.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last one)")
    p.add_argument("--proof-model", default=None, help="a model of the host proof (its bench name), see above")
    args = p.parse_args()
    predictor = pinned_host_predictor(args.profile, args.cpu)
    if predictor is None:
        return 2
    if args.proof_model:
        found = proof_model(args.proof_model)
        if found is None:
            return 2
        spec, config = found
        args.kind, args.mask_ratio = ("mae" if spec["task"] == "reconstruct" else "classifier"), spec["mask_ratio"]
        shape = ModelShape.from_dict(spec["shape"])
        candidates = proof_variants(config)
    else:
        shape = describe(create_model(PRESET, kind=args.kind), name=PRESET)
        candidates = variants(CompressionConfig.identity(shape))
    task = "reconstruct" if args.kind == "mae" else "classify"
    # exported as the predictor's deployable_config, as the host proof and the search do (the kernels it priced)
    configs = {n: predictor.deployable_config(shape, c, task=task, mask_ratio=args.mask_ratio)
               for n, c in candidates.items()}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for i, (name, cfg) in enumerate(configs.items()):
            path = Path(tmp) / f"v{i}.onnx"
            files[name] = (path, model_item(PRESET, args.kind, cfg, f"v{i}", mask_ratio=args.mask_ratio).build(path))
        # interleaved passes, lowest pass median: a disturbed window hits one pass of each
        timed = time_interleaved_ms(files, rounds=args.rounds, repeats=300, warmup=20, progress=True)
    what = args.proof_model or args.kind
    print(f"{what} ({task}{f', mask ratio {args.mask_ratio}' if args.kind == 'mae' else ''}), profile {args.profile}")
    first = "the host proof's model" if args.proof_model else "the uncompressed"
    print(f"| variant{'' if args.proof_model else ' (every encoder block)'} | measured ms | predicted ms | error | "
          f"relative to {first} | measured - predicted, µs |")
    print("|---|---|---|---|---|---|")
    base = None
    for name, cfg in configs.items():
        meas, pred = timed[name]["latency_ms"], predictor.predict_ms(shape, cfg, task=task, mask_ratio=args.mask_ratio)
        ratio = pred / meas
        base = ratio if base is None else base
        print(f"| {name} | {meas:.3f} | {pred:.3f} | {100 * (ratio - 1):+.1f}% | {100 * (ratio / base - 1):+.1f}% | "
              f"{1e3 * (meas - pred):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
