"""Issue 2 numbers: the shipped MAE and classifier on Fashion-MNIST, and the training runs behind them.

    python benchmarks/mae_recipe.py [--runs runs]

Evaluates the shipped checkpoints (test top-1 of the classifier, masked-patch MSE of the MAE at mask
ratio 0.75 with a fixed seed, in normalised-pixel units and as PSNR on [0, 1] pixels) and, where the run
folders of benchmarks/train_recipe.sh exist, prints their per-epoch learning curves and wall times.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mae.checkpoints import load_own  # noqa: E402
from mae.data import FASHION_MNIST_STD, load_fashion_mnist  # noqa: E402
from mae.loaders import DEFAULT_CHECKPOINT, DEFAULT_MAE_CHECKPOINT  # noqa: E402
from mae.metrics import reconstruction_mse, top1_accuracy  # noqa: E402


def curves(run: Path) -> None:
    log = run / "log.jsonl"
    if not log.exists():
        return
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    key = "val_top1" if "val_top1" in rows[0] else "val_masked_mse"
    print(f"\n{run.name}: epoch, train loss, {key}, cumulative wall minutes")
    for r in rows:
        print(f"  {r['epoch']:3d}  {r['train_loss']:.4f}  {r[key]:.4f}  {r['wall_s'] / 60:6.1f}")
    metrics = run / "metrics.json"
    if metrics.exists():
        print(f"  final: {json.loads(metrics.read_text())}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", default="runs", help="folder with pretrain/, finetune/, baseline/ run folders")
    args = ap.parse_args()
    splits = load_fashion_mnist()
    clf, clf_meta = load_own(DEFAULT_CHECKPOINT)
    mae, _ = load_own(DEFAULT_MAE_CHECKPOINT)
    top1 = top1_accuracy(clf, splits["test"])
    mse = reconstruction_mse(mae, splits["test"], mask_ratio=0.75, seed=0)
    psnr = 10 * math.log10(1 / (mse * FASHION_MNIST_STD ** 2))
    print("| shipped checkpoint | metric on Fashion-MNIST test (10,000 images) |")
    print("|---|---|")
    print(f"| {DEFAULT_CHECKPOINT.name} | top-1 {100 * top1:.2f}% |")
    print(f"| {DEFAULT_MAE_CHECKPOINT.name} | masked-patch MSE {mse:.4f} (normalised pixels), PSNR {psnr:.2f} dB |")
    baseline = Path(args.runs) / "baseline" / "metrics.json"
    if baseline.exists():
        b = json.loads(baseline.read_text())
        print(f"| random-init baseline (same recipe, not shipped) | top-1 {100 * b['test_top1']:.2f}% |")
    for name in ("pretrain", "finetune", "baseline"):
        curves(Path(args.runs) / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
