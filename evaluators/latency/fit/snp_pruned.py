"""SNP's structurally pruned DeiTs as operator lists: real Pi 4 latencies of pruned ViTs, held out.

Nota-NetsPresso/SNP (ECCV 2024) times DeiT-T/S/B and their SNP-pruned versions on a Raspberry Pi 4B in
``.onnx`` at batch 1 (``data/PROVENANCE.md`` section 10). The pruned models keep every head but cut, per
block, the query/key width (``matmul_{2i}``: ``q k^T``), the value/output width (``matmul_{2i+1}``:
``attn v``) and the MLP units (``blocks_i_mlp_fc1``), and the residual stream for all blocks at once
(``add_24``, the last residual add; every block's width follows it). Each value in
``SNP_compression/compress_ratio/DeiT_*.json`` is the fraction of that layer's channels removed; the
extraction (:func:`extract`) copies them into ``data/snp_pruned_ratios.csv`` with their keys, and
:func:`block_widths` turns them into widths. The reading is checked against SNP's own MAC count: the
widths give 0.638 / 2.037 / 1.265 / 6.380 GMACs where the README prints 0.6 / 2.0 / 1.3 / 6.4 "GFLOPs"
(timm's MAC count); reading the values as fractions *kept*, or leaving the residual unpruned, misses
those counts (test).

The project's :class:`~spaces.shape.ModelShape` has one head width per block, so the models are priced as
operator lists (:func:`pruned_ops`): ``decompose`` of the pruned shape with the fused ``qkv`` Linear's
outputs set to ``h (2 d_qk + d_v)``, ``proj``'s inputs to ``h d_v`` and the attention core's ``head_dim``
to ``(d_qk + d_v) / 2`` -- which gives the attention's MACs ``m T h (d_qk + d_v)`` and its split/merge
traffic ``2 m h (d_qk + d_v)`` exactly (``predict.cost``). DeiT-B's ratios (0.7, 0.6, ...) do not give
whole channels per head, and NetsPresso's rounding is not stated: the channels removed are rounded to whole
channels and then down to whole channels per head, which gives 6.38 GMACs (README 6.4); rounding each head's
kept width to the nearest is printed beside it by ``benchmarks/latency_arm_validation.py`` (the DeiT-T/S files
give whole channels).

Why our own code: the ratios are a cloud service's input (NetsPresso's compressor), with no library that
reads them; the arithmetic is the few lines below.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

from evaluators.latency.predict.ops import Op, decompose
from spaces.shape import BlockShape, ModelShape

RATIOS_CSV = Path(__file__).resolve().parents[1] / "data" / "snp_pruned_ratios.csv"
SNP_REPO = "Nota-NetsPresso/SNP"
SNP_COMMIT = "168603352a65064d271d074be6ca63178bf74d7a"
DEPTH = 12
# name in arm_whole_model.csv -> (ratio file in SNP_compression/compress_ratio/, base model, width, heads)
PRUNED = {
    "deit-tiny-patch16-224+snp-0.6g": ("DeiT_t.json", "deit-tiny-patch16-224", 192, 3),
    "deit-small-patch16-224+snp-2.0g": ("DeiT_s.json", "deit-small-patch16-224", 384, 6),
    "deit-small-patch16-224+snp-1.3g": ("DeiT_s_small.json", "deit-small-patch16-224", 384, 6),
    "deit-base-patch16-224+snp-6.4g": ("DeiT_b.json", "deit-base-patch16-224", 768, 12),
}
FIELDS = ("model", "ratio_file", "key", "removed_fraction", "source_repo", "source_commit")


def ratio_keys(block: int) -> tuple[str, str, str]:
    """The fx node names SNP's ratio files use for block ``block``'s q/k width, v/out width and MLP units."""
    qk = "matmul" if block == 0 else f"matmul_{2 * block}"
    return qk, f"matmul_{2 * block + 1}", f"blocks_{block}_mlp_fc1"


def block_widths(ratios: dict[str, float], width: int, heads: int,
                 per_head: str = "down") -> tuple[int, list[tuple[int, int, int]]]:
    """``(residual width, [(q/k per head, v per head, MLP units)] per block)`` kept by removed ``ratios``.
    ``per_head``: ``"down"`` (the channels removed rounded to whole channels, then down to whole channels per
    head: what the README's MAC count supports) or ``"nearest"`` (each head's kept width rounded)."""
    head_dim = width // heads

    def kept(frac: float) -> int:
        if per_head == "nearest":
            return round(head_dim * (1 - frac))
        return head_dim - round(width * frac) // heads  # every head keeps the same width

    out = []
    for i in range(DEPTH):
        qk, v, mlp = (ratios[k] for k in ratio_keys(i))
        out.append((kept(qk), kept(v), 4 * width - round(4 * width * mlp)))
    return width - round(width * ratios["add_24"]), out


def read_ratios(path: Path = RATIOS_CSV) -> dict[str, dict[str, float]]:
    """``{model: {key: removed fraction}}`` from the extracted CSV."""
    out: dict[str, dict[str, float]] = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            out.setdefault(r["model"], {})[r["key"]] = float(r["removed_fraction"])
    return out


def pruned_ops(model: str, ratios: dict[str, float] | None = None, batch: int = 1, per_head: str = "down") -> list[Op]:
    """Operators of SNP's pruned ``model`` (a key of :data:`PRUNED`) at ``batch`` images, token pooling
    (timm's DeiT), in ``decompose``'s order; ``per_head`` as in :func:`block_widths`."""
    _, _, width, heads = PRUNED[model]
    res, widths = block_widths(ratios or read_ratios()[model], width, heads, per_head)
    shape = ModelShape(name=model, img_size=224, patch_size=16, in_chans=3, embed_dim=res, num_classes=1000,
                       blocks=tuple(BlockShape(res, heads, 1, mlp) for _, _, mlp in widths))
    ops = []
    for op in decompose(shape, batch=batch, global_pool="token"):
        if op.name.startswith("blocks."):
            qk, v, _ = widths[int(op.name.split(".")[1])]
            if op.name.endswith(".attn.qkv"):
                op = op._replace(n=heads * (2 * qk + v))
            elif op.name.endswith(".attn.proj"):
                op = op._replace(k=heads * v)
            elif op.name.endswith(".attn.core"):
                op = op._replace(head_dim=(qk + v) / 2)
        ops.append(op)
    return ops


def row_ops(model: str, shape: ModelShape | None = None) -> list[Op]:
    """Operators of one of SNP's rows: a pruned one (a key of :data:`PRUNED`) from its per-layer widths, a plain
    DeiT from its ``shape``; timm's DeiT pools the class token."""
    return pruned_ops(model) if model in PRUNED else decompose(shape, global_pool="token")


def base_shape(model: str) -> ModelShape:
    """The unpruned DeiT that ``model`` was pruned from."""
    _, _, width, heads = PRUNED[model]
    return ModelShape(name=PRUNED[model][1], img_size=224, patch_size=16, in_chans=3, embed_dim=width,
                      num_classes=1000, blocks=tuple(BlockShape(width, heads, width // heads, 4 * width)
                                                     for _ in range(DEPTH)))


def extract(git_dir: Path, commit: str = SNP_COMMIT) -> list[dict]:
    """The CSV rows, read with ``git show`` from a snapshot of SNP (``fetch github:Nota-NetsPresso/SNP``)."""
    rows = []
    for model, (fname, *_rest) in PRUNED.items():
        text = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{commit}:SNP_compression/compress_ratio/{fname}"],
                              check=True, capture_output=True, text=True).stdout
        for key, value in json.loads(text).items():
            rows.append({"model": model, "ratio_file": f"SNP_compression/compress_ratio/{fname}", "key": key,
                         "removed_fraction": value, "source_repo": SNP_REPO, "source_commit": commit})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Extract SNP's per-layer pruning ratios into data/snp_pruned_ratios.csv.")
    p.add_argument("git_dir", type=Path, help="git directory of a Nota-NetsPresso/SNP snapshot")
    p.add_argument("--check", action="store_true", help="compare with the shipped CSV instead of writing it")
    args = p.parse_args(argv)
    if not (args.git_dir / "HEAD").is_file():
        print(f"error: {args.git_dir} is not a git directory", file=sys.stderr)
        return 2
    rows = extract(args.git_dir)
    if args.check:
        same = read_ratios() == {m: {r["key"]: float(r["removed_fraction"]) for r in rows if r["model"] == m} for m in PRUNED}
        print("same" if same else f"DIFFERS: {RATIOS_CSV}")
        return 0 if same else 1
    tmp = RATIOS_CSV.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(RATIOS_CSV)
    print(f"wrote {len(rows)} rows to {RATIOS_CSV}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
