"""``maec sensitivity --model M [--data D]``: the per-layer sensitivity table of a model -- the damage
of each knob level applied alone (KL to the teacher's outputs for a classifier, the increase of the
masked-patch loss for a full MAE) on a seeded calibration batch of training images.

Built once and cached under ``--cache-dir`` (``results/sensitivity``, where the search looks too),
keyed by the weights, data and calibration batch; later calls print the cached table. Writes
``<key>.csv`` (+ ``<key>.json``, provenance) and a plotly heat map ``<key>.html`` into ``--out``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from evaluators.sensitivity import DEFAULT_CACHE_DIR, DEFAULT_IMAGES

    p = sub.add_parser("sensitivity", help="per-layer damage of each knob level (table, CSV and heat map)")
    p.add_argument("--model", default="default", help="'default', 'default-mae', a checkpoint path, timm:NAME or a preset")
    p.add_argument("--kind", choices=("classifier", "mae"), default="classifier", help="for a preset name")
    p.add_argument("--data", default="fashion-mnist", help="'fashion-mnist' or an image folder")
    p.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--images", type=int, default=DEFAULT_IMAGES,
                   help=f"calibration images drawn from the train split (default {DEFAULT_IMAGES})")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration draw (and of the MAE's mask)")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR), help="where tables are cached and reused")
    p.add_argument("--out", default=None, help="folder for the CSV and the heat map (default: the cache folder)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; 1 is faster on a machine shared with other jobs)")
    p.add_argument("--tokens", action="store_true",
                   help="also measure token merging (merge rows per encoder block, as a search with 'tokens' does)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table on stdout")
    p.set_defaults(run=run)


def _print_table(table) -> None:
    """One line per block and knob: ``level:damage`` for each level."""
    by_knob: dict[tuple[str, str], list[str]] = {}
    for r in table.rows:
        level = f"{r.level:g}"
        by_knob.setdefault((r.block, r.knob), []).append(f"{level}:{r.damage:.3g}")
    print(f"{'block':5s} {'knob':9s} level:damage ({table.meta.get('metric', 'damage')})")
    for (block, knob), cells in by_knob.items():
        print(f"{block:5s} {knob:9s} " + "  ".join(cells))


def run(args: argparse.Namespace) -> int:
    import torch

    from evaluators.sensitivity import build_table, table_key, write_heatmap
    from mae.data import load_dataset
    from toolkit.model_spec import resolve_model

    if args.images < 1:
        raise UsageError(f"--images must be at least 1, got {args.images}")
    if args.seed < 0:
        raise UsageError(f"--seed must be 0 or more, got {args.seed}")
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = resolve_model(args.model, kind=args.kind).model
    arch = model.arch
    splits = load_dataset(args.data, data_dir=args.data_dir, **arch.data_kwargs(),
                          only="train")
    if "train" not in splits:
        raise UsageError("the dataset has no 'train' split to draw calibration images from")
    train = splits["train"]
    if args.images > len(train):
        raise UsageError(f"--images {args.images} is more than the {len(train)} training images")
    data_name = args.data  # a folder is keyed by its absolute path (evaluators.sensitivity.table_key)
    cache = Path(args.cache_dir)
    key = table_key(model, train, images=args.images, seed=args.seed, data_name=data_name, tokens=args.tokens)
    cached = (cache / f"{key}.csv").is_file()
    table = build_table(model, train, images=args.images, seed=args.seed, data_name=data_name, cache_dir=cache,
                        progress=not args.quiet, tokens=args.tokens)
    out = Path(args.out) if args.out else cache
    csv_path = out / f"{key}.csv"
    if csv_path.resolve() != (cache / f"{key}.csv").resolve():
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(csv_path)
    html_path = out / f"{key}.html"
    write_heatmap(table, html_path, title=f"Sensitivity of {args.model} ({table.meta.get('metric', 'damage')}, "
                                          f"{args.images} images, seed {args.seed})")
    if not args.quiet:
        _print_table(table)
    how = "read from the cache" if cached else f"built in {table.meta.get('build_s', '?')} s"
    print(f"{len(table.rows)} rows ({how}); table {csv_path}, heat map {html_path}")
    return 0
