#!/usr/bin/env python
"""Search the best compressed MAE ViT that fits an on-device latency budget.

    python run_search.py --budget 20ms

Bad input ends with one sentence and exit status 2; a budget that no trial met ends with the closest
trials and exit status 1; a winner ends with exit status 0.
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    # imports inside: `--help` stays fast and an import error is not mistaken for bad input; the engine
    # (torch, timm, optuna) is imported after the arguments are checked, so bad input is refused at once
    from core.errors import UserError
    from search.settings import settings_from_args

    try:
        settings = settings_from_args(argv)
        from search.engine import exit_code, search

        return exit_code(search(settings))
    except UserError as e:
        print(f"run_search.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nrun_search.py: interrupted; finished trials are saved: rerun with --resume to continue",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
