"""Training recipes: MAE pre-training and classifier fine-tuning. Reproducible and resumable.

    python -m mae.train pretrain --out runs/pretrain --epochs 12
    python -m mae.train finetune --out runs/finetune --init runs/pretrain/model.safetensors --epochs 12
    python -m mae.train finetune --out runs/baseline --init random --epochs 12
    maec finetune --init mae_pretrain_vit_base.pth --data my_images/ --out runs/vitb   # any MAE, any folder

Fine-tuning starts from an MAE checkpoint (ours, facebookresearch/mae's with or without decoder, or a
timm ``*.mae`` state dict): the classifier takes the checkpoint's architecture and input config (or
``--preset``'s when given, which the encoder must then fit) and a new head for the data's classes.

Every epoch appends a line to ``log.jsonl`` (loss, validation metric, wall time) and rewrites
``last.pt`` (model, optimizer, schedule, RNG state) atomically; running the same command again resumes
from it. The finished model is written as ``model.safetensors`` with its architecture in the metadata.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from core.errors import UserError
from core.files import write_atomic
from mae.accelerator import ACCELERATORS, autocast, put, resolve_accelerator
from mae.checkpoints import load_encoder_into, load_encoder_state, save_model
from mae.data import describe_splits, iterate_batches, load_dataset
from mae.loaders import load_checkpoint
from mae.metrics import reconstruction_mse, top1_accuracy
from mae.model import MAEClassifier, MaskedAutoencoder, ViTArch, create_model
from mae.optim import optimizer_step, set_lr
from mae.schedule import cosine_with_warmup


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float) -> list[dict]:
    """AdamW groups: no decay on biases, norms and tokens; layer-wise lr decay as in MAE fine-tuning
    (``lr_scale = layer_decay ** (depth + 1 - layer)``; 1.0 turns it off)."""
    depth = len(model.blocks)
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith(("patch_embed", "cls_token", "pos_embed", "mask_token")):
            layer = 0
        elif name.startswith("blocks."):
            layer = int(name.split(".")[1]) + 1
        else:
            layer = depth + 1
        no_decay = p.ndim == 1 or name.endswith("token")
        g = groups.setdefault((layer, no_decay), {
            "params": [], "weight_decay": 0.0 if no_decay else weight_decay,
            "lr_scale": layer_decay ** (depth + 1 - layer),
        })
        g["params"].append(p)
    return list(groups.values())


DEFAULT_PRESET = "mae_vit_tiny_p4_28"


def classifier_from_checkpoint(source: nn.Module, num_classes: int, drop_path: float, name: str) -> MAEClassifier:
    """A classifier with the architecture and input config of ``source`` (an MAE or classifier loaded by
    :func:`mae.loaders.load_checkpoint` from ``name``), its encoder weights, average pooling with
    ``fc_norm`` (MAE's fine-tuning recipe) and a new head for ``num_classes``."""
    arch: ViTArch = source.arch.with_(num_classes=num_classes, global_pool="avg")
    model = MAEClassifier(arch, drop_path=drop_path)
    load_encoder_state(model, source.state_dict(), name)  # head and fc_norm keep their fresh init
    return model


def _model_and_data(args: argparse.Namespace) -> tuple[nn.Module, dict]:
    """The model a recipe trains and the data splits fitted to its input (size, statistics, crop)."""
    pretrain = args.recipe == "pretrain"
    # an --init checkpoint without --preset decides the architecture and how the images are prepared
    source = None if pretrain or args.init == "random" or args.preset else load_checkpoint(args.init)
    base = source.arch if source is not None else create_model(args.preset or DEFAULT_PRESET).arch
    splits = load_dataset(args.data, data_dir=args.data_dir, **base.data_kwargs())
    classes = len(splits["train"].classes)
    if pretrain:
        return create_model(args.preset or DEFAULT_PRESET, kind="mae", norm_pix_loss=args.norm_pix_loss), splits
    if source is not None:
        return classifier_from_checkpoint(source, classes, args.drop_path, args.init), splits
    model = create_model(args.preset or DEFAULT_PRESET, kind="classifier", drop_path=args.drop_path,
                         num_classes=classes)
    if args.init != "random":
        load_encoder_into(model, args.init)
    return model, splits


def train(args: argparse.Namespace) -> dict:
    """Run (or resume) one recipe; returns the final metrics written to ``metrics.json``."""
    torch.manual_seed(args.seed)
    accel = resolve_accelerator(args.accelerator, args.bf16)  # resolved before settings.json records the run
    args.bf16, device = accel.bf16, accel.device
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, splits = _model_and_data(args)
    if not args.no_progress:
        print(f"data {args.data}: {describe_splits(splits)}; training on {accel.describe()}", file=sys.stderr)
    train_split = splits["train"].head(args.limit_train)
    pretrain = args.recipe == "pretrain"
    if pretrain:
        layer_decay = 1.0
    else:
        layer_decay = args.layer_decay if args.layer_decay is not None else (1.0 if args.init == "random" else 0.75)
    model = put(model, device)

    groups = param_groups(model, args.weight_decay, layer_decay)
    # Clipped in model order, as before the shared step: the order enters the norm's float sum. Frozen
    # parameters (the fixed pos_embed) never have a gradient, so leaving them out changes nothing.
    trained = [p for p in model.parameters() if p.requires_grad]
    lr = args.lr * args.batch_size / 256
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95 if pretrain else 0.999))
    steps_per_epoch = len(train_split) // args.batch_size
    total_steps = steps_per_epoch * args.epochs
    warmup = int(args.warmup_epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)  # batch order and augmentation (CPU)
    mask_gen = gen if device == "cpu" else torch.Generator(device=device).manual_seed(args.seed)
    start_epoch, step, wall_s = 0, 0, 0.0
    max_steps = args.max_steps or total_steps

    ckpt_path = out / "last.pt"
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, weights_only=True, map_location=device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"].cpu())
        if "mask_generator" in ck and mask_gen is not gen:
            mask_gen.set_state(ck["mask_generator"].cpu())
        torch.set_rng_state(ck["torch_rng"])
        start_epoch, step, wall_s = ck["epoch"], ck["step"], ck["wall_s"]
        print(f"resuming {args.recipe} from epoch {start_epoch} ({ckpt_path})", file=sys.stderr)

    (out / "settings.json").write_text(json.dumps(vars(args), indent=2, default=str))
    for epoch in range(start_epoch, args.epochs):
        if step >= max_steps:
            break
        t0 = time.time()
        model.train()
        running, seen = 0.0, 0
        batches = iterate_batches(train_split, args.batch_size, shuffle=True, generator=gen,
                                  augment_images=not pretrain or args.augment_pretrain, drop_last=True)
        bar = tqdm(batches, total=steps_per_epoch, desc=f"{args.recipe} {epoch + 1}/{args.epochs}",
                   disable=args.no_progress)
        for x, y in bar:
            mult = cosine_with_warmup(step, total_steps, warmup)
            set_lr(opt, lr * mult)
            x, y = put(x, device), put(y, device)
            with autocast(args.bf16, device):
                if pretrain:
                    loss, _, _ = model(x, mask_ratio=args.mask_ratio, generator=mask_gen)
                else:
                    loss = F.cross_entropy(model(x).float(), y, label_smoothing=args.label_smoothing)
            loss_value = optimizer_step(loss, opt, trained, clip_grad_norm=args.clip_grad, step=step)
            step += 1
            running += loss_value * x.shape[0]
            seen += x.shape[0]
            bar.set_postfix(loss=f"{running / seen:.4f}")
            if step >= max_steps:  # --max-steps: a short run (the schedule still spans --epochs)
                break
        bar.close()
        wall_s += time.time() - t0
        row = {"epoch": epoch + 1, "train_loss": running / max(1, seen), "lr": lr * mult, "wall_s": round(wall_s, 1)}
        if pretrain:
            row["val_masked_mse"] = reconstruction_mse(model, splits["val"], mask_ratio=args.mask_ratio, bf16=args.bf16,
                                                       device=device)
        else:
            row["val_top1"] = top1_accuracy(model, splits["val"], bf16=args.bf16, device=device)
        print(json.dumps(row), file=sys.stderr)
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                 "torch_rng": torch.get_rng_state(), "epoch": epoch + 1, "step": step, "wall_s": wall_s}
        if mask_gen is not gen:
            state["mask_generator"] = mask_gen.get_state()
        write_atomic(ckpt_path, functools.partial(torch.save, state))  # torch.save(state, tmp), then rename
        if args.stop_after and epoch + 1 - start_epoch >= args.stop_after and epoch + 1 < args.epochs:
            print(f"stopping after {args.stop_after} epochs; run the same command to resume", file=sys.stderr)
            return {"stopped_at_epoch": epoch + 1}

    metrics = {"recipe": args.recipe, "epochs": args.epochs, "wall_s": round(wall_s, 1), "bf16": args.bf16,
               "threads": torch.get_num_threads(), "init": None if pretrain else args.init}
    if pretrain:
        assert isinstance(model, MaskedAutoencoder)
        metrics["val_masked_mse"] = reconstruction_mse(model, splits["val"], mask_ratio=args.mask_ratio, device=device)
        metrics["test_masked_mse"] = reconstruction_mse(model, splits["test"], mask_ratio=args.mask_ratio, device=device)
    else:
        assert isinstance(model, MAEClassifier)
        metrics["val_top1"] = top1_accuracy(model, splits["val"], device=device)
        metrics["test_top1"] = top1_accuracy(model, splits["test"], device=device)
    save_model(model.cpu(), out / "model.safetensors", extra={"metrics": metrics})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics))
    return metrics


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """The options of a recipe (shared by ``python -m mae.train`` and ``maec finetune``)."""
    p.add_argument("--out", required=True, help="run folder (checkpoints, log.jsonl, model.safetensors)")
    p.add_argument("--preset", default=None,
                   help=f"architecture (default: the --init checkpoint's, else {DEFAULT_PRESET})")
    p.add_argument("--data", default="fashion-mnist", help="'fashion-mnist' or an image folder")
    p.add_argument("--accelerator", choices=ACCELERATORS, default="auto",
                   help="where to train (default auto: a CUDA GPU when torch sees one)")
    p.add_argument("--max-steps", type=int, default=0,
                   help="stop after N optimizer steps (0: the whole schedule); the model is saved then")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3, help="base lr per 256 images")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--layer-decay", type=float, default=None, help="default 0.75 from MAE, 1.0 from random")
    p.add_argument("--drop-path", type=float, default=0.1)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--clip-grad", type=float, default=None)
    p.add_argument("--mask-ratio", type=float, default=0.75)
    p.add_argument("--norm-pix-loss", action="store_true")
    p.add_argument("--augment-pretrain", action="store_true", help="shift/flip during pre-training too")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: where the device runs it fast, see mae.accelerator)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--limit-train", type=int, default=None, help="use the first N training images (tests)")
    p.add_argument("--stop-after", type=int, default=0,
                   help="stop after N epochs of this run (resume later with the same command)")
    p.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mae.train", description=__doc__.split("\n")[0])
    p.add_argument("recipe", choices=["pretrain", "finetune"])
    add_training_arguments(p)
    p.add_argument("--init", default="random", help="finetune: MAE checkpoint to start from, or 'random'")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        train(args)
    except UserError as e:  # DatasetError, CheckpointError, AcceleratorError: one sentence
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
