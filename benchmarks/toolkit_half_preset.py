"""Issue 3 benchmark: the `half` preset on the shipped classifier.

Prints host ONNX Runtime latency (1 thread, batch 1, median) of the original and the compressed
model, and test top-1 of the teacher, of the compressed model after at most `--recover-seconds` of
distillation on this machine, and of its int8 ONNX export.

    python benchmarks/toolkit_half_preset.py [--recover-seconds 120] [--importance magnitude|taylor]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.main import main as maec  # noqa: E402
from evaluators.latency.measure.ort_timing import machine_summary  # noqa: E402
from mae.model import describe  # noqa: E402
from spaces.config_presets import preset_config  # noqa: E402
from toolkit.model_spec import resolve_model  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recover-seconds", type=float, default=120.0)
    ap.add_argument("--importance", choices=["magnitude", "taylor"], default="taylor")
    ap.add_argument("--limit", type=int, default=None, help="test images (default: all 10,000)")
    args = ap.parse_args()
    cfg = preset_config(describe(resolve_model("default").model), "half")
    cfg = replace(cfg, importance=args.importance, distill=replace(cfg.distill, steps=100_000))
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "half.json"
        cfg_path.write_text(cfg.to_json())
        out = Path(tmp) / "out"
        argv = ["apply", str(cfg_path), "--model", "default", "--out", str(out),
                "--recover-time-limit", str(args.recover_seconds)]
        if args.limit:
            argv += ["--limit", str(args.limit)]
        if maec(argv) != 0:
            return 1
        r = json.loads((out / "report.json").read_text())
    lat = r["onnx_latency_ms"]
    rec = r["compression"]["recovery"]
    print(f"\nmachine: {machine_summary()}; ONNX Runtime 1 thread, batch 1, lowest of 3 interleaved pass medians")
    print(f"preset half ({args.importance} importance): {rec['steps']} distillation steps in {rec['wall_s']:.0f} s")
    print("| model | params | MACs | ONNX MB | host latency ms | test top-1 |")
    print("|---|---|---|---|---|---|")
    print(f"| original | {r['params']['original']:,} | {r['macs']['original']:,} | "
          f"{r['size_on_disk_mb']['original_onnx']:.2f} | {lat['original']['median_ms']:.3f} | "
          f"{100 * r['before']['top1']:.2f} |")
    print(f"| half, int8 ONNX | {r['params']['compressed']:,} | {r['macs']['compressed']:,} | "
          f"{r['size_on_disk_mb']['compressed_onnx']:.2f} | {lat['compressed']['median_ms']:.3f} | "
          f"{100 * r['after']['top1']:.2f} (ONNX {100 * r['after']['onnx_top1']:.2f}) |")
    ratio = lat["compressed"]["median_ms"] / lat["original"]["median_ms"]
    gap = 100 * (r["before"]["top1"] - r["after"]["top1"])
    print(f"latency ratio {ratio:.3f} (target <= 0.5); top-1 gap {gap:.2f} points (target <= 2); "
          f"ONNX vs simulated {100 * abs(r['after']['onnx_top1'] - r['after']['top1']):.2f} points (target <= 0.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
