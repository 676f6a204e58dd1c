"""Issue 13, item 5 (second half): do cheap scores rank configs as recovered scores do?

Samples configs from the search's own joint space (seeded, the kernels the predictor prices, predicted
latency within ``--max-ms``), scores each as the search does at both fidelities -- *cheap*: compressed,
no recovery, the first ``--cheap-images`` validation images; *recovered*: ``--recover-steps`` of
distillation, the whole validation split -- and prints the Spearman rank correlation (scipy) between them.
Each finished config is appended to a JSON file, so a killed run resumes where it stopped.

    python benchmarks/search_fidelity_rank.py [--configs 10] [--recover-steps 150] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from evaluators.latency.measure.ort_timing import machine_summary  # noqa: E402
from search.settings import settings_from_args  # noqa: E402
from search.setup import build_setup  # noqa: E402
from spaces.config import CompressionConfig  # noqa: E402


def sample_configs(setup, n: int, seed: int, max_ms: float) -> list[tuple[CompressionConfig, float]]:
    """``n`` deployable configs from the joint space with predicted latency <= ``max_ms`` (rejection
    sampling with Optuna's RandomSampler, as a random search would draw them)."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed))
    out = []
    for _ in range(200 * n):
        config = setup.deployable(setup.space.sample(study.ask()))
        latency_ms = setup.predict_ms(config)
        if latency_ms <= max_ms:
            out.append((config, latency_ms))
            if len(out) == n:
                break
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", default="20ms", help="the search's budget (configs up to 1.5x of it are drawn)")
    ap.add_argument("--recover-steps", type=int, default=150, help="the search's default recovery")
    ap.add_argument("--cheap-images", type=int, default=1000, help="the search's default cheap subset")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="results/bench-fidelity/fidelity_rank.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    settings = settings_from_args(["--budget", args.budget, "--seed", str(args.seed), "--no-progress",
                                   "--strategy", "joint"])  # configs drawn from the raw joint space
    setup = build_setup(settings)
    configs = sample_configs(setup, args.configs, args.seed, 1.5 * settings.budget_ms)
    out = Path(args.out)
    done = json.loads(out.read_text()) if out.exists() else []
    for i, (config, latency_ms) in enumerate(configs):
        if i < len(done):
            continue
        t0 = time.perf_counter()
        student, _ = setup.evaluator.compress(config, recover_steps=0)
        cheap = setup.evaluator.score(student, "val", args.cheap_images)
        recovering = replace(config, distill=replace(config.distill, steps=args.recover_steps))
        recovered_model, _ = setup.evaluator.compress(recovering, recover_steps=args.recover_steps)
        recovered = setup.evaluator.score(recovered_model, "val")
        done.append({"config": config.summary(), "latency_ms": latency_ms, "cheap": cheap, "recovered": recovered,
                     "seconds": round(time.perf_counter() - t0, 1)})
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(done, indent=1))
        print(f"[{i + 1}/{len(configs)}] {latency_ms:6.2f} ms  cheap {cheap:.4f}  recovered {recovered:.4f}  "
              f"({done[-1]['seconds']} s)", file=sys.stderr, flush=True)
    rho, p = spearmanr([d["cheap"] for d in done], [d["recovered"] for d in done])
    print(f"\nmachine: {machine_summary()}; bf16 {settings.bf16}, {args.threads} torch thread(s)")
    print(f"{len(done)} configs from the joint space, predicted {min(d['latency_ms'] for d in done):.1f}-"
          f"{max(d['latency_ms'] for d in done):.1f} ms on {settings.device}")
    print("| config | predicted ms | cheap val top-1 | recovered val top-1 |")
    print("|---|---|---|---|")
    for d in sorted(done, key=lambda d: -d["recovered"]):
        print(f"| {d['config'][:60]} | {d['latency_ms']:.2f} | {100 * d['cheap']:.2f} | {100 * d['recovered']:.2f} |")
    print(f"Spearman rho (cheap vs recovered) = {rho:.3f} (p = {p:.3g}, n = {len(done)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
