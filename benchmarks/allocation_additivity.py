"""Issue 13, item 5 (first half): does the sensitivity table's additive damage model hold?

For configs drawn at random from the search's joint space (the kernels the predictor prices, predicted
latency within ``--min-ms``..``--max-ms`` on the default profile) and for the allocator's configs at a
few budgets, compares the table's prediction (the sum of the single-knob damages,
``evaluators.sensitivity.additive_damage``) with what is measured for the whole config at once:

* the KL divergence to the teacher on the table's own calibration batch (in-sample), and on another
  batch of the training split (held out);
* the cheap score the search uses: top-1 on the first ``--cheap-images`` validation images, no recovery.

Prints each config and the Spearman rank correlations (scipy). A rank correlation near 1 means the
allocator ranks configs as the measurement would; the absolute ratio says how much interactions
between layers add beyond the sum.

    python benchmarks/allocation_additivity.py [--configs 30] [--threads 2]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from evaluators.latency import LatencyPredictor  # noqa: E402
from evaluators.latency.measure.ort_timing import machine_summary  # noqa: E402
from evaluators.sensitivity import additive_damage, build_table, calibration_batch, config_damages  # noqa: E402
from mae.data import load_dataset  # noqa: E402
from mae.metrics import top1_accuracy  # noqa: E402
from mae.model import describe  # noqa: E402
from search.allocate import allocate_front  # noqa: E402
from spaces.space import JointSpace  # noqa: E402
from toolkit.compress import apply  # noqa: E402
from toolkit.model_spec import resolve_model  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", type=int, default=30)
    ap.add_argument("--min-ms", type=float, default=6.0)
    ap.add_argument("--max-ms", type=float, default=30.0)
    ap.add_argument("--images", type=int, default=64, help="calibration images of the table")
    ap.add_argument("--cheap-images", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    teacher = resolve_model("default").model
    shape = describe(teacher, name="default")
    arch = teacher.arch
    splits = load_dataset("fashion-mnist", data_dir=None, **arch.data_kwargs())
    table = build_table(teacher, splits["train"], images=args.images, seed=args.seed, progress=False)
    predictor = LatencyPredictor(None)
    x_in, _ = calibration_batch(splits["train"], args.images, args.seed)
    x_out, _ = calibration_batch(splits["train"], args.images, args.seed + 1)

    space = JointSpace(shape=shape, techniques=frozenset({"prune", "quant", "lowrank"}))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(args.seed))
    configs: list[tuple[str, object, float]] = []
    unpriced = 0
    for _ in range(500 * args.configs):
        c = predictor.deployable_config(shape, space.sample(study.ask()))
        ms = predictor.predict_ms(shape, c)
        if not (args.min_ms <= ms <= args.max_ms and c.act_bits == 32):
            continue
        try:  # a rank the table has no row for: e.g. rank 1/2 of a pruned proj, which saves no
            additive_damage(table, shape, c)  # compute at full width and so was never measured alone
        except ValueError:
            unpriced += 1
            continue
        configs.append(("random", c, ms))
        if len(configs) == args.configs:
            break
    for a in allocate_front(table, predictor, shape, [8.0, 10.0, 15.0, 20.0, 30.0]):
        configs.append((f"allocate {a.budget_ms:g} ms", a.config, a.latency_ms))

    predicted = [additive_damage(table, shape, c) for _, c, _ in configs]
    kl_in = config_damages(teacher, x_in, [c for _, c, _ in configs], seed=args.seed)
    kl_out = config_damages(teacher, x_out, [c for _, c, _ in configs], seed=args.seed)
    cheap = [top1_accuracy(apply(teacher, c), splits["val"].head(args.cheap_images)) for _, c, _ in configs]

    print(f"machine: {machine_summary()}; {args.threads} torch thread(s); table {table.meta.get('key')} "
          f"({args.images} calibration images, seed {args.seed}); default profile {predictor.device.name}")
    print(f"{unpriced} sampled configs left out: a level the table has no single-knob row for")
    print("| config | predicted ms | table damage (sum) | measured KL, same batch | measured KL, other batch | "
          "cheap val top-1 |")
    print("|---|---|---|---|---|---|")
    for (kind, _, ms), p, a, b, acc in zip(configs, predicted, kl_in, kl_out, cheap):
        print(f"| {kind} | {ms:.2f} | {p:.4f} | {a:.4f} | {b:.4f} | {100 * acc:.2f} |")
    n = len(configs)
    for name, measured, sign in (("KL, same batch", kl_in, 1), ("KL, other batch", kl_out, 1),
                                 ("cheap top-1 (negated)", cheap, -1)):
        rho, p = spearmanr(predicted, [sign * m for m in measured])
        print(f"Spearman rho (table damage vs {name}) = {rho:.3f} (p = {p:.2g}, n = {n})")
    ratio = sorted(b / p for p, b in zip(predicted, kl_out) if p > 0)
    print(f"measured / predicted damage (other batch): median {ratio[len(ratio) // 2]:.2f}, "
          f"range {ratio[0]:.2f}..{ratio[-1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
