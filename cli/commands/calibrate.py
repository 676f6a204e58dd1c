"""``maec calibrate FILE.csv --name NAME``: fit a device latency profile to measurements."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evaluators.latency.fit.calibrate import FIT_ON, calibrate_file
from evaluators.latency.predict.profile import user_profile_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit a latency profile to a `maec measure` CSV (or a HAT dataset)",
                       description="Reads operator and/or whole-model rows, fits the per-operator cost model on a "
                                   "seeded split and reports held-out MAPE and the share within ±10%%.")
    p.add_argument("csv", help="CSV written by `maec measure` / an export kit's run_kit.py, or a HAT latency CSV")
    p.add_argument("--name", required=True, help="profile name (use it with --device NAME)")
    p.add_argument("--out", default=None, help=f"profile file to write (default: {user_profile_dir()}/NAME.json)")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out split (default 0)")
    p.add_argument("--heldout", type=float, default=0.2, help="share of rows held out (default 0.2)")
    p.add_argument("--fit-on", choices=FIT_ON, default="all",
                   help="'ops': fit on operator rows only and validate on every whole-model row")
    p.add_argument("--base", default=None, help="profile that fills what the rows do not cover (default: the default)")
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    prof = calibrate_file(args.csv, name=args.name, seed=args.seed, heldout_frac=args.heldout, fit_on=args.fit_on,
                          base=args.base)
    out = Path(args.out) if args.out else user_profile_dir() / f"{args.name}.json"
    prof.save(out)
    if args.json:
        sys.stdout.write(prof.to_json())
        return 0
    print(prof.summary())
    for key in ("heldout_ops", "heldout_models"):
        m = prof.validation.get(key)
        if m:
            print(f"  {key.replace('_', ' ')}: MAPE {100 * m['mape']:.1f}%, {100 * m['within_10pct']:.0f}% within "
                  f"±10% (n={m['n']})")
    for a in prof.assumptions:
        print(f"  assumption: {a}")
    print(f"wrote {out}")
    return 0
