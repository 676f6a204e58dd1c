"""``maec apply CONFIG --model M --out DIR``: compress, recover, export, measure, report.

Writes ``DIR/model.safetensors`` + ``DIR/compression.json`` (reload with ``maec eval --model DIR``),
``DIR/model.onnx`` (int8/int4 where the config says so, run by ONNX Runtime), ``DIR/original.onnx``
and ``DIR/report.json``. The folder is written under a temporary name and renamed at the end, so a
failure leaves nothing half-written.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from cli.commands.eval import load_split
from core.errors import UsageError
from core.files import file_sha256, write_text_atomic
from evaluators.latency.measure.host import compare_latency_ms, onnx_top1
from evaluators.latency.measure.ort_timing import machine_summary
from mae.accelerator import ACCELERATORS, resolve_accelerator
from mae.data import iterate_batches
from mae.metrics import reconstruction_mse, top1_accuracy
from mae.model import MaskedAutoencoder, describe
from spaces.config import CompressionConfig
from toolkit.artifacts import read_config_file, save_compressed
from toolkit.compress import compress
from toolkit.export import export_onnx, linear_bits_for, quantize_onnx
from toolkit.model_spec import resolve_model
from toolkit.stats import count_macs, weight_bytes


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("apply", help="compress a model with a config and export it")
    p.add_argument("config", help="CompressionConfig JSON, or a winner.json from run_search.py")
    p.add_argument("--model", default=None, help="'default', a checkpoint, timm:NAME (default: the winner's model)")
    p.add_argument("--out", required=True, help="output folder (must not exist, or use --force)")
    p.add_argument("--recover-steps", type=int, default=None, help="distillation steps (default: the config's)")
    p.add_argument("--recover-batch-size", type=int, default=None,
                   help="images per distillation step (default: a winner.json's search setting, else 128)")
    p.add_argument("--recover-time-limit", type=float, default=None, help="stop recovery after this many seconds")
    p.add_argument("--data", default=None, help="'fashion-mnist' or an image folder (default: a winner.json's data, "
                                                 "else fashion-mnist)")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX folder (default: a winner.json's)")
    p.add_argument("--split", choices=["val", "test"], default="test", help="split for accuracy before/after")
    p.add_argument("--limit", type=int, default=None, help="score on the first N images of the split")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for the latency measurement")
    p.add_argument("--rounds", type=int, default=3,
                   help="timing passes, original and compressed interleaved; each keeps its lowest pass median")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of calibration and recovery (default: a winner.json's search seed, else 0)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--accelerator", choices=ACCELERATORS, default="auto",
                   help="where recovery and scoring run (default auto: a CUDA GPU when torch sees one)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast during recovery (default: where the device runs it fast; --no-bf16: fp32)")
    p.set_defaults(run=run)


def _score(model, split, is_mae: bool, device: str = "cpu") -> dict:
    if is_mae:
        return {"masked_mse": reconstruction_mse(model, split, device=device)}
    return {"top1": top1_accuracy(model, split, device=device)}


def run(args: argparse.Namespace) -> int:
    config, meta = read_config_file(args.config)
    model_spec = args.model or meta.get("model") or "default"
    recorded_data = meta.get("data") or {}  # a winner.json says what its search scored on
    args.data = args.data or recorded_data.get("data") or "fashion-mnist"
    args.data_dir = args.data_dir or recorded_data.get("data_dir")
    if args.seed is None:  # a winner is reproduced with the seed its search re-built it with
        args.seed = int((meta.get("provenance") or {}).get("seed", 0))
    if args.recover_batch_size is None:  # ... and with its recovery batch size
        args.recover_batch_size = int((meta.get("provenance") or {}).get("recover_batch_size", 128))
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; choose another --out or pass --force")
    if (args.recover_steps or 0) < 0 or (args.limit is not None and args.limit < 1) or args.recover_batch_size < 1:
        raise UsageError("--recover-steps must be >= 0, --limit and --recover-batch-size >= 1")
    if args.threads < 1 or args.rounds < 1:
        raise UsageError("--threads and --rounds must be at least 1")
    torch.manual_seed(args.seed)
    resolved = resolve_model(model_spec)
    teacher = resolved.model
    searched_sha = (meta.get("provenance") or {}).get("model_sha256")
    if searched_sha and resolved.path is not None and resolved.path.is_file() and file_sha256(resolved.path) != searched_sha:
        raise UsageError(f"{resolved.path} is not the model this winner was searched on (its SHA-256 differs from "
                         f"the {searched_sha[:12]}... in {args.config}): pass that model with --model")
    shape = describe(teacher)
    config.validate_for(shape)
    is_mae = isinstance(teacher, MaskedAutoencoder)
    train = load_split(args.data, args.data_dir, "train", teacher)
    evaluation = load_split(args.data, args.data_dir, args.split, teacher).head(args.limit)

    accel = resolve_accelerator(args.accelerator, args.bf16)  # AcceleratorError: one sentence, exit 2
    bf16 = accel.bf16
    t0 = time.perf_counter()
    student, report = compress(teacher, config, calib=train.head(256), train=train,
                               recover_steps=args.recover_steps, seed=args.seed,
                               bf16=bf16, device=accel.device, batch_size=args.recover_batch_size,
                               progress=True, time_limit_s=args.recover_time_limit)
    compress_s = time.perf_counter() - t0

    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_compressed(student, config, tmp, extra={"model": model_spec})
        export_onnx(teacher, tmp / "original.onnx")
        export_onnx(student, tmp / "model.fp32.onnx")
        calib = [x.numpy() for x, _ in iterate_batches(train.head(256), 32, shuffle=False)]
        qrep = quantize_onnx(tmp / "model.fp32.onnx", tmp / "model.onnx", linear_bits=linear_bits_for(student, config),
                             act_bits=config.act_bits, calib_batches=calib)
        (tmp / "model.fp32.onnx").unlink()
        result = {
            "model": model_spec, "config": str(args.config), "split": args.split, "n": len(evaluation),
            "params": {"original": report.params_before, "compressed": report.params_after},
            "macs": {"original": count_macs(teacher), "compressed": count_macs(student)},
            "weights_mb": {"original": round(weight_bytes(teacher, CompressionConfig.identity(shape)) / 2**20, 3),
                           "compressed": round(weight_bytes(student, config) / 2**20, 3)},
            "size_on_disk_mb": {k: round((tmp / f).stat().st_size / 2**20, 3) for k, f in
                                (("original_onnx", "original.onnx"), ("compressed_onnx", "model.onnx"),
                                 ("compressed_safetensors", "model.safetensors"))},
            "before": _score(teacher, evaluation, is_mae, accel.device),
            "after": _score(student, evaluation, is_mae, accel.device),
            "onnx_latency_ms": {**{k: v.to_dict() for k, v in compare_latency_ms(
                                    {"original": tmp / "original.onnx", "compressed": tmp / "model.onnx"},
                                    threads=args.threads, rounds=args.rounds).items()},
                                "threads": args.threads, "batch": 1, "rounds": args.rounds,
                                "machine": machine_summary()},
            "onnx_quantization": qrep.to_dict(), "compression": report.to_dict(), "compress_s": round(compress_s, 1),
            "bf16": bf16, "accelerator": accel.describe(),
        }
        if not is_mae:
            batches = ((x.numpy(), y.numpy()) for x, y in iterate_batches(evaluation, 1, shuffle=False))
            result["after"]["onnx_top1"] = onnx_top1(tmp / "model.onnx", batches, threads=args.threads)
        lat = result["onnx_latency_ms"]
        lat["speedup"] = round(lat["original"]["median_ms"] / lat["compressed"]["median_ms"], 3)
        write_text_atomic(tmp / "report.json", json.dumps(result, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _print_summary(result, out)
    return 0


def _print_summary(r: dict, out: Path) -> None:
    key = "masked_mse" if "masked_mse" in r["before"] else "top1"
    lat = r["onnx_latency_ms"]
    print(f"wrote {out}/ (model.safetensors, compression.json, model.onnx, original.onnx, report.json)")
    print(f"  params   {r['params']['original']:,} -> {r['params']['compressed']:,}")
    print(f"  MACs     {r['macs']['original']:,} -> {r['macs']['compressed']:,}")
    print(f"  {key:8} {r['before'][key]:.4f} -> {r['after'][key]:.4f} on {r['n']} {r['split']} images"
          + (f" (ONNX: {r['after']['onnx_top1']:.4f})" if "onnx_top1" in r["after"] else ""))
    print(f"  ONNX Runtime here, {lat['threads']} thread, batch 1, lowest of {lat['rounds']} interleaved pass medians: "
          f"{lat['original']['median_ms']:.3f} ms -> {lat['compressed']['median_ms']:.3f} ms ({lat['speedup']}x)")
