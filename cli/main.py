"""``maec``: the command-line toolkit. Each command lives in ``cli/commands/<name>.py`` and
registers itself with ``add_parser(subparsers)``; this file only dispatches and turns the project's
input errors into one sentence and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from core.errors import UserError

# Commands in the order ``maec --help`` lists them; modules are imported lazily so that
# ``maec --help`` stays fast.
COMMANDS = ("eval", "finetune", "apply", "example-config", "inspect", "sensitivity", "devices", "measure", "calibrate",
            "validate")


class _Parser(argparse.ArgumentParser):
    """argparse exits with status 2 on usage errors already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="maec", description="Compress MAE Vision Transformers for ARM devices.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"cli.commands.{name.replace('-', '_')}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UserError as e:
        print(f"maec {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
