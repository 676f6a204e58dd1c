"""``maec eval``: top-1 (classifier) or masked-patch MSE (full MAE) of a model on a data split."""
from __future__ import annotations

import argparse
import json
import time

import torch

from core.errors import UsageError
from mae.accelerator import ACCELERATORS, resolve_accelerator
from mae.data import load_dataset
from mae.metrics import reconstruction_mse, top1_accuracy
from mae.model import MaskedAutoencoder
from toolkit.model_spec import resolve_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model on a data split")
    p.add_argument("--model", default="default", help="'default', 'default-mae', a checkpoint path, timm:NAME, or a folder written by maec apply")
    p.add_argument("--data", default="fashion-mnist", help="'fashion-mnist' or an image folder")
    p.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--split", choices=["train", "val", "test"], default="test")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N images only")
    p.add_argument("--accelerator", choices=ACCELERATORS, default="auto",
                   help="where to evaluate (default auto: a CUDA GPU when torch sees one)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (faster, slightly different)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def load_split(data: str, data_dir: str | None, split: str, model: torch.nn.Module):
    """The requested split, resized to what ``model`` takes."""
    arch = model.arch
    splits = load_dataset(data, data_dir=data_dir, **arch.data_kwargs(), only=split)
    if split not in splits:
        raise UsageError(f"the dataset has no {split!r} split")
    return splits[split]


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    torch.manual_seed(0)
    model = resolve_model(args.model).model
    split = load_split(args.data, args.data_dir, args.split, model).head(args.limit)
    device = resolve_accelerator(args.accelerator, args.bf16).device  # AcceleratorError: exit 2
    t0 = time.perf_counter()
    result: dict = {"model": args.model, "split": args.split, "n": len(split)}
    if isinstance(model, MaskedAutoencoder):
        result["masked_mse"] = reconstruction_mse(model, split, bf16=args.bf16, device=device)
    else:
        result["top1"] = top1_accuracy(model, split, bf16=args.bf16, progress=not args.json, device=device)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    if args.json:
        print(json.dumps(result))
    else:
        metric = "masked MSE" if "masked_mse" in result else "top-1"
        value = result.get("masked_mse", result.get("top1"))
        print(f"{args.model}: {metric} {value:.4f} on {result['n']} {args.split} images ({result['seconds']} s)")
    return 0
