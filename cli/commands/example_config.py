"""``maec example-config``: write a valid starting config for a model, for users to edit."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.files import write_text_atomic
from mae.model import describe
from spaces.config_presets import CONFIG_PRESETS, preset_config
from toolkit.model_spec import resolve_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    presets = "; ".join(f"{k}: {v[1]}" for k, v in CONFIG_PRESETS.items())
    p = sub.add_parser("example-config", help="write a starting CompressionConfig for a model",
                       description=f"Presets: {presets}.")
    p.add_argument("--model", default="default", help="'default', a checkpoint path, or timm:NAME")
    p.add_argument("--preset", default="half", choices=sorted(CONFIG_PRESETS))
    p.add_argument("--out", default="-", help="file to write (default: standard output)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = preset_config(describe(resolve_model(args.model).model), args.preset)
    if args.out == "-":
        sys.stdout.write(cfg.to_json() + "\n")
    else:
        write_text_atomic(Path(args.out), cfg.to_json() + "\n")
        print(f"wrote {args.out} ({args.preset} preset, {len(cfg.blocks)} blocks)", file=sys.stderr)
    return 0
