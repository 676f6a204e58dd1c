"""The numbers behind the default Raspberry Pi 4 profile, rebuilt from ../shared/arm-latency:
held-out MAPE and ±10% share on HAT's rows (ours vs FLOPs-proportional and affine baselines on the
same split), the ncnn ViT-B/32 cross-check, the default model's predicted latency at 1 and 4 threads (HAT-based, and
as shipped after the refit on whole ViTs of a Pi 4: ``latency_arm_validation.py`` section 5), and whether
the rebuilt profiles equal the shipped files.

    .venv/bin/python benchmarks/latency_default_profile.py [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluators.latency.derive.build import build_rpi4_profiles, same_profile
from evaluators.latency.derive.vit_anchored import build_vit_anchored
from evaluators.latency.predict.profile import SHIPPED_DIR, DeviceProfile


def _fmt(m: dict) -> str:
    return f"MAPE {100 * m['mape']:5.2f}%  within ±10% {100 * m['within_10pct']:5.1f}%  n={m['n']}"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0, help="split seed (the shipped profiles use 0)")
    args = p.parse_args()
    profiles, hat, fit = build_rpi4_profiles(seed=args.seed)
    print("HAT Raspberry Pi 4 rows (seeded 80/20 split, outliers removed by rule; see PROVENANCE / sources.py)")
    for f, r in fit.rows.items():
        d = r["dropped"]
        print(f"  {f}: {r['encoder_rows']} encoder rows kept; dropped start-up {len(d['startup'])}, "
              f"spikes {len(d['spike'])}, decoder spikes {len(d['decoder_spike'])}")
    print(f"  ours, encoder held out:        {_fmt(fit.heldout['hat-encoder'])}")
    print(f"  ours, decoder held out:        {_fmt(fit.heldout['hat-decoder'])}")
    print(f"  FLOPs-proportional, encoder:   {_fmt(fit.baselines['flops_proportional'])}")
    print(f"  FLOPs affine (a + k MACs):     {_fmt(fit.baselines['flops_affine'])}  "
          f"(a = {fit.baseline_coefs['flops_affine'][0]:.1f} ms: the framework's fixed cost)")
    print("  framework terms kept out of the ONNX Runtime profiles (ms):",
          ", ".join(f"{c[1]} {v:.1f}" for c, v in fit.coefs.items() if c[0] == "extra"))
    for prof in hat + profiles:
        x, d = prof.validation["ncnn_cross_check"], prof.validation["default_model"]
        print(f"{prof.name}{' (shipped, refitted on whole ViTs of a Pi 4)' if prof in profiles else ' (HAT-based, before the refit)'}: default model {d['predicted_ms']:.2f} ms ({d['ratio_to_20ms_budget']:.2f}x 20 ms); "
              f"ncnn ViT-B/32 predicted {x['predicted_ms']:.0f} ms vs measured {x['ncnn_measured_ms']:.0f} ms: "
              f"ratio {x['ratio_predicted_over_ncnn']:.3f}"
              + (f", x ncnn fp32 / ORT {x['ncnn_over_ort']:.3f} (measured pair): {x['ratio_after_ncnn_factor']:.3f}"
                 if "ncnn_over_ort" in x else "")
              + ("" if x["independent"] else " (not independent)"))
    if args.seed == 0:
        rebuilt = profiles + build_vit_anchored(next(p for p in hat if p.threads == 1))
        same = all((SHIPPED_DIR / f"{q.name}.json").is_file() and same_profile(DeviceProfile.load(SHIPPED_DIR / f"{q.name}.json"), q)
                   for q in rebuilt)
        print(f"rebuilt profiles {'equal' if same else 'DIFFER FROM'} the shipped files ({len(rebuilt)} profiles)")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
