"""``maec finetune``: an MAE checkpoint -> a classifier for an image folder, with a scaled-down version of
MAE's fine-tuning recipe (layer-wise lr decay 0.75, warm-up, cosine schedule, label smoothing 0.1, drop
path 0.1, AdamW, shift/flip augmentation), a progress bar, resume (run the same command again) and a
``model.safetensors`` that ``--model`` of ``run_search.py`` and every ``maec`` command accepts.

    maec finetune --init mae_pretrain_vit_base.pth --data my_images/ --out runs/vitb --epochs 5

The checkpoint may be ours, facebookresearch/mae's (with or without decoder) or a timm ``*.mae`` state
dict; the classifier keeps its architecture and input config (224 px, ImageNet statistics, crop 0.875
for the official ones) and gets a new head for the folder's classes. Mixup/CutMix are not implemented:
at the few epochs a compression search needs, label smoothing and shift/flip are what MAE's recipe
keeps that matters.
"""
from __future__ import annotations

import argparse

from core.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from mae.train import add_training_arguments

    p = sub.add_parser("finetune", help="fine-tune an MAE checkpoint into a classifier for an image folder")
    p.add_argument("--init", required=True, help="MAE checkpoint to start from (ours, official MAE, timm *.mae)")
    add_training_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mae.train import train

    if args.epochs < 1 or args.batch_size < 1 or args.max_steps < 0:
        raise UsageError("--epochs and --batch-size must be at least 1, --max-steps 0 or more")
    args.recipe = "finetune"
    metrics = train(args)
    print(f"fine-tuned {args.init} on {args.data}: val top-1 {metrics['val_top1']:.4f}, test top-1 "
          f"{metrics['test_top1']:.4f}; model {args.out}/model.safetensors (use it with --model)")
    return 0
