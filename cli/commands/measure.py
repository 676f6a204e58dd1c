"""``maec measure``: time operator micro-benchmarks and sampled compressed models with ONNX Runtime.

    maec measure --out host.csv --threads 1          # measure here
    maec measure --export-kit kit/                   # ONNX files + run_kit.py for a Pi or a phone
    maec measure --sweep reference --export-kit refkit/   # whole DeiT-T/S/B, ViT-B/16, B/32 for `maec validate`
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from core.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("measure", help="measure operator and model latencies with ONNX Runtime (CSV for calibrate)")
    p.add_argument("--out", default=None, help="CSV to write (rows for `maec calibrate`)")
    p.add_argument("--export-kit", default=None, metavar="DIR",
                   help="write the ONNX files, manifest and run_kit.py (numpy + onnxruntime only) instead of timing")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    p.add_argument("--sweep", default="standard",
                   help="quick, standard (default), proof, or reference: whole published ViTs (DeiT-T/S/B, ViT-B/16, "
                        "B/32) for `maec validate`")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled shapes and models")
    p.add_argument("--what", choices=("all", "ops", "models"), default="all", help="operator rows, model rows or both")
    p.add_argument("--repeats", type=int, default=30, help="timed runs per benchmark (median reported)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3,
                   help="passes over all benchmarks, minutes apart; each row keeps its lowest pass median (default 3)")
    p.add_argument("--device", default="", help="device name for the rows (default: board model or host name)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from evaluators.latency.measure.kit import SWEEPS, build_kit, measure, sweep_items
    from evaluators.latency.measure.op_items import SPAN_BYTES, l2_bytes

    if (args.out is None) == (args.export_kit is None):
        raise UsageError("give exactly one of --out FILE.csv (measure here) or --export-kit DIR")
    if args.sweep not in SWEEPS:  # checked here, not by argparse choices: the kit module imports torch
        raise UsageError(f"--sweep must be one of {', '.join(SWEEPS)}, got {args.sweep!r}")
    if args.sweep == "reference" and args.what != "all":
        raise UsageError("the reference sweep is whole models only; leave --what out")
    if args.threads < 1 or args.repeats < 1 or args.rounds < 1 or args.warmup < 0:
        raise UsageError("--threads, --repeats and --rounds must be at least 1 and --warmup at least 0")
    # before building hundreds of ONNX files: a place we cannot write to is refused now, not at the end
    _check_writable(Path(args.export_kit) if args.export_kit else Path(args.out).parent or Path("."),
                    "--export-kit" if args.export_kit else "--out")
    # rows stream >= 4x this machine's L2 of weights (a kit: 4 MB, fine for Pi-class boards)
    span = SPAN_BYTES if args.export_kit else max(SPAN_BYTES, 4 * l2_bytes())
    items = sweep_items(args.sweep, args.seed, ops=args.what != "models", models=args.what != "ops", span=span)
    if args.export_kit:
        folder = build_kit(items, Path(args.export_kit), progress=not args.quiet)
        then = "maec validate device.csv --device PROFILE" if args.sweep == "reference" else "maec calibrate device.csv --name NAME"
        # the reference kit's models take seconds a run on a Pi: fewer repeats (its README.txt says the same)
        runs = "--repeats 10 --warmup 2" if args.sweep == "reference" else f"--rounds {args.rounds}"
        print(f"wrote {len(items)} ONNX files, manifest.json and run_kit.py to {folder}; on the device run "
              f"`python3 run_kit.py --threads {args.threads} {runs} --out device.csv`, then `{then}`")
        return 0
    n = measure(items, Path(args.out), threads=args.threads, repeats=args.repeats, warmup=args.warmup,
                device=args.device, rounds=args.rounds, progress=not args.quiet)
    then = f"maec validate {args.out} --device PROFILE" if args.sweep == "reference" else f"maec calibrate {args.out} --name NAME"
    print(f"wrote {n} rows to {args.out}; next: `{then}`")
    return 0


def _check_writable(folder: Path, option: str) -> None:
    """UsageError (one sentence) unless ``folder`` exists or can be made, and a file can be created in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".maec-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"{option}: cannot write to {folder} ({e.strerror or type(e).__name__}); "
                         "choose a writable place") from None

