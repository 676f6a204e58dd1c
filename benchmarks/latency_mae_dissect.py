"""Where the host profile under-predicts a full MAE (issue 4, what remains after the host proof).

Times the uncompressed full MAE of the embedded default four ways -- whole; encoder blocks removed;
decoder blocks removed; both removed (patch embedding, masking, decoder embedding, unshuffle and
prediction head only) -- and compares each with the host profile that
``benchmarks/latency_host_proof.py`` fitted on operator rows (``results/latency/host-ort-1t.json``).
Differences give the encoder blocks (13 tokens), the decoder blocks (50 tokens) and the glue apart,
and the interaction: whole - (decoder removed) - (encoder removed) + glue, which an additive per-operator
model predicts as 0. Last, the two halves are timed back to back (one run of each in turn, as one
"model" whose weights are both halves'), to see whether the interaction is the halves evicting each
other's weights from the cache between runs.
Timing: one core, one ONNX Runtime thread, ``--rounds`` interleaved passes, lowest pass median.

    .venv/bin/python benchmarks/latency_mae_dissect.py          # ~2 min; run the host proof first
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluators.latency.measure.model_items import model_item
from evaluators.latency.measure.ort_timing import make_session, pin_to_core, random_feed, time_ms
from evaluators.latency.predict.predictor import LatencyPredictor
from evaluators.latency.predict.profile import DeviceProfile
from mae.model import create_model, describe
from spaces.config import CompressionConfig

PRESET = "mae_vit_tiny_p4_28"
VARIANTS = {"whole MAE": (True, True), "encoder blocks removed": (False, True),
            "decoder blocks removed": (True, False), "both removed (glue only)": (False, False)}


def variant(identity: CompressionConfig, encoder: bool, decoder: bool) -> CompressionConfig:
    """The uncompressed config with every block of the encoder / decoder removed (0 heads, 0 units)."""
    d = identity.to_dict()
    for key, keep in (("blocks", encoder), ("decoder_blocks", decoder)):
        if not keep:
            for b in d[key]:
                b["heads"], b["mlp_hidden"] = 0, 0
    return CompressionConfig.from_dict(d)


def back_to_back_ms(files: list[tuple[Path, list[dict]]], repeats: int = 300, warmup: int = 20) -> float:
    """Median time of running every model once, in turn (ms)."""
    runs = [(make_session(path, 1), random_feed(inputs)) for path, inputs in files]
    for _ in range(warmup):
        for sess, feed in runs:
            sess.run(None, feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for sess, feed in runs:
            sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def pinned_host_predictor(profile: str, cpu: int | None) -> LatencyPredictor | None:
    """The predictor of the host proof's ``profile`` with this process pinned to ``cpu`` (default: the last
    core); None, after saying why, when the host proof has not been run."""
    if not Path(profile).exists():
        print(f"no host profile at {profile}: run benchmarks/latency_host_proof.py first", file=sys.stderr)
        return None
    pin_to_core(cpu)
    return LatencyPredictor(DeviceProfile.load(profile))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default=str(ROOT / "results" / "latency" / "host-ort-1t.json"))
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--mask-ratio", type=float, default=0.75, help="0.75: the encoder sees 1 + 12 tokens; 0: all 50")
    p.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last one)")
    args = p.parse_args()
    predictor = pinned_host_predictor(args.profile, args.cpu)
    if predictor is None:
        return 2
    shape = describe(create_model(PRESET, kind="mae"), name=PRESET)
    identity = CompressionConfig.identity(shape)
    configs = {name: variant(identity, *keep) for name, keep in VARIANTS.items()}
    measured: dict[str, list[float]] = {name: [] for name in configs}
    pair: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for i, (name, cfg) in enumerate(configs.items()):
            item = model_item(PRESET, "mae", cfg, f"v{i}", mask_ratio=args.mask_ratio)
            path = Path(tmp) / f"v{i}.onnx"
            files[name] = (path, item.build(path))
        for r in range(args.rounds):  # interleaved passes: a disturbed window hits one pass of each
            for name, (path, inputs) in files.items():
                measured[name].append(time_ms(path, inputs, repeats=300, warmup=20)["latency_ms"])
            pair.append(back_to_back_ms([files[n] for n in list(VARIANTS)[1:3]]))
            print(f"pass {r + 1}/{args.rounds} done", file=sys.stderr)
    meas = {n: min(v) for n, v in measured.items()}
    pred = {n: predictor.predict_ms(shape, c, task="reconstruct", mask_ratio=args.mask_ratio) for n, c in configs.items()}
    print(f"{'variant':28s} {'measured ms':>11s} {'predicted ms':>12s} {'error':>7s}")
    for n in configs:
        print(f"{n:28s} {meas[n]:11.3f} {pred[n]:12.3f} {100 * (pred[n] / meas[n] - 1):+6.1f}%")
    w, e, d, g = (list(VARIANTS)[i] for i in range(4))
    enc_tokens = 1 + int(shape.num_patches * (1 - args.mask_ratio))
    for part, a, b in ((f"encoder blocks ({enc_tokens} tokens)", w, e), ("decoder blocks (50 tokens)", w, d)):
        pm, pp = meas[a] - meas[b], pred[a] - pred[b]
        print(f"{part:28s} {pm:11.3f} {pp:12.3f} {100 * (pp / pm - 1):+6.1f}%")
    inter = meas[w] - meas[e] - meas[d] + meas[g]
    print(f"{'interaction (additive: 0)':28s} {inter:11.3f} {pred[w] - pred[e] - pred[d] + pred[g]:12.3f}")
    b2b = min(pair) - meas[e] - meas[d]
    print(f"the two halves back to back: {min(pair):.3f} ms, {b2b:+.3f} ms against their sum")
    return 0


if __name__ == "__main__":
    sys.exit(main())
