"""The same kit's rows timed in two runs: how much longer in one than the other (no timing here).

Prints, over the rows both CSVs have (``bench``), the median and range of ``latency_ms`` in A over B. Used for
section 6 of ``benchmarks/README.md``: run 15's model files timed in the process that had just built them (A)
against the same files timed 30 minutes later by ``latency_host_proof.py --rounds 5 --reuse-kits --reuse-ops``
in a process that built nothing (B): a median 5.1% (3.1-9.4%) longer. Copy each run's
``results/latency/host-ort-1t-models.csv`` aside before the next run overwrites it.

    .venv/bin/python benchmarks/latency_run_compare.py run15/host-ort-1t-models.csv run15b/host-ort-1t-models.csv
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path


def latencies(path: Path) -> dict[str, float]:
    """``{bench: latency_ms}`` of a measurement CSV."""
    csv.field_size_limit(1 << 27)  # model rows carry their whole config in ``spec``
    with open(path, newline="") as f:
        return {r["bench"]: float(r["latency_ms"]) for r in csv.DictReader(f)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    args = p.parse_args()
    for path in (args.a, args.b):
        if not path.is_file():
            print(f"{path} is not a file", file=sys.stderr)
            return 2
    a, b = latencies(args.a), latencies(args.b)
    common = sorted(set(a) & set(b))
    if not common:
        print(f"{args.a} and {args.b} have no row in common", file=sys.stderr)
        return 2
    ratios = [a[k] / b[k] for k in common]
    print(f"{len(common)} rows in both: A / B median {statistics.median(ratios):.3f}, range {min(ratios):.3f}-"
          f"{max(ratios):.3f} ({100 * (statistics.median(ratios) - 1):+.1f}% median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
