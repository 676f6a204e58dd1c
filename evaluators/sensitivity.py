"""Per-layer sensitivity: how much each knob, at each level, applied ALONE to the teacher, damages it.

For every block and every level of every knob (all other knobs at identity), the student is built with
:func:`toolkit.compress.apply` (no recovery) and its damage measured on a fixed, seeded calibration
batch of real training images:

* classifier: ``KL(teacher || student)`` of the softmax outputs (temperature 1, batchmean), in nats;
* full MAE: the increase of the masked-patch reconstruction loss (normalised pixels) over the
  teacher's, with one shared mask (as :mod:`toolkit.distill` shares it); it may be slightly negative.

Rows are ``(block, knob, level, damage)``. ``block`` is ``b{i}`` (encoder) or ``d{i}`` (decoder of a
full MAE) and ``knob`` is ``heads``, ``mlp``, ``{linear}.bits`` or ``{linear}.rank`` -- so
``f"{block}.{knob}"`` is the search space's parameter name. Levels are the search space's own
(:mod:`spaces.space`): heads kept 0..H, MLP units ``mlp_levels``, ``WEIGHT_BIT_CHOICES``, and
``RANK_FRACTIONS`` of the full-width Linear (``rank_for``); a fraction whose rank would not save compute
at full width has no row (the toolkit would keep that Linear dense, so it cannot be measured alone).
With token merging searched (``tokens=True``), encoder blocks also get ``merge`` rows: ToMe merging
``MERGE_FRACTIONS`` of the patch tokens the block sees in the unmerged teacher (``merge_for``); a whole
config's merges are looked up by the fraction they are of the tokens that config's flow brings to each
block (``token_flow``), so a merge schedule's damage is the sum of its blocks' rows.
Identity levels are not built: their damage is 0 by definition (``compress`` returns an untouched copy).

Tables are cached in ``results/sensitivity/<key>.csv`` (+ ``<key>.json``, the provenance), the key a hash
of the weights' bytes, the data name, the calibration indices, images, seed, task and the level lists.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from core.errors import UserError
from core.files import write_atomic, write_text_atomic
from mae.data import ImageSplit, normalise
from mae.model import MaskedAutoencoder, describe, masked_patch_loss
from mae.tome import merges_any, run_merging_blocks
from spaces.config import BlockConfig, CompressionConfig
from spaces.shape import LINEARS, BlockShape, ModelShape, token_flow
from spaces.space import MERGE_FRACTIONS, RANK_FRACTIONS, WEIGHT_BIT_CHOICES, merge_for, mlp_levels, rank_for
from toolkit.compress import apply

# 64 images: the default model's 210 evaluations in ~35 s on 2 cores (fp32); its damages rank like a
# 256-image table's (Spearman 0.993; 32 images: 0.991) at a quarter of the time.
DEFAULT_IMAGES = 64
DEFAULT_CACHE_DIR = Path("results") / "sensitivity"
MASK_RATIO = 0.75
# Bump when the damage definition or the level lists change meaning: old cache entries are then ignored.
TABLE_VERSION = 1
KNOB_TYPES = ("heads", "mlp", "bits", "rank")
MERGE = "merge"  # the token-merging knob: measured only when the search merges tokens
CSV_COLUMNS = ("block", "knob", "level", "damage")


class SensitivityError(UserError):
    """A sensitivity table file is missing or malformed; one sentence."""


def knob_type(knob: str) -> str:
    """``heads``, ``mlp``, ``bits`` or ``rank`` of a knob name (``qkv.bits`` -> ``bits``)."""
    return knob.rsplit(".", 1)[-1]


def knob_levels(s: BlockShape, tokens: int = 0) -> dict[str, tuple[float, ...]]:
    """Every knob of a block with its levels (identity included), in the search space's order;
    ``tokens`` > 0 (the tokens an encoder block sees unmerged) adds the ``merge`` fractions that merge
    at least one token there."""
    levels: dict[str, tuple[float, ...]] = {"heads": tuple(range(s.heads + 1)), "mlp": mlp_levels(s.mlp_hidden)}
    for k in LINEARS:
        levels[f"{k}.bits"] = WEIGHT_BIT_CHOICES
    dims = s.linear_dims()
    for k in LINEARS:
        levels[f"{k}.rank"] = tuple(f for f in RANK_FRACTIONS if f == 0.0 or rank_for(f, *dims[k]) is not None)
    if tokens:
        levels[MERGE] = tuple(f for f in MERGE_FRACTIONS if f == 0.0 or merge_for(f, tokens) > 0)
    return levels


def identity_level(s: BlockShape, knob: str) -> float:
    return {"heads": s.heads, "mlp": s.mlp_hidden, "bits": 32, "rank": 0.0, MERGE: 0.0}[knob_type(knob)]


def with_knob(b: BlockConfig, s: BlockShape, knob: str, level: float, tokens: int = 0) -> BlockConfig:
    """``b`` with one knob set to ``level`` (a rank fraction is resolved against ``b``'s kept shape, a
    merge fraction against the ``tokens`` the block sees)."""
    kind = knob_type(knob)
    if kind == MERGE:
        return replace(b, merge_tokens=merge_for(float(level), tokens))
    if kind == "heads":
        return replace(b, heads=int(level))
    if kind == "mlp":
        return replace(b, mlp_hidden=int(level))
    linear = knob.split(".")[0]
    if kind == "bits":
        return replace(b, weight_bits={**b.weight_bits, linear: int(level)})
    dims = s.linear_dims(b.heads, b.mlp_hidden)[linear]
    return replace(b, ranks={**b.ranks, linear: rank_for(float(level), *dims)})


def merge_tokens_in(shape: ModelShape, task: str) -> int:
    """Tokens the encoder's blocks see unmerged (class token included)."""
    return shape.encoder_tokens(task, MASK_RATIO)


def block_labels(shape: ModelShape, task: str) -> list[tuple[str, BlockShape]]:
    """``(label, shape)`` of the blocks a task runs: encoder, plus the decoder when reconstructing."""
    out = [(f"b{i}", s) for i, s in enumerate(shape.blocks)]
    if task == "reconstruct":
        out += [(f"d{i}", s) for i, s in enumerate(shape.decoder_blocks)]
    return out


def single_knob_config(shape: ModelShape, block: str, knob: str, level: float,
                       task: str = "classify") -> CompressionConfig:
    """The identity config with one knob of one block (``b3``, ``d0``) set to ``level``."""
    ident = CompressionConfig.identity(shape)
    field_name = "decoder_blocks" if block.startswith("d") else "blocks"
    i = int(block[1:])
    blocks = list(getattr(ident, field_name))
    shapes = shape.decoder_blocks if field_name == "decoder_blocks" else shape.blocks
    blocks[i] = with_knob(blocks[i], shapes[i], knob, level, merge_tokens_in(shape, task))
    return replace(ident, **{field_name: tuple(blocks)})


@dataclass(frozen=True)
class SensitivityRow:
    block: str
    knob: str
    level: float
    damage: float


@dataclass(frozen=True)
class SensitivityTable:
    """Rows of single-knob damages; ``task`` is ``classify`` or ``reconstruct``; ``meta`` the provenance."""

    rows: tuple[SensitivityRow, ...]
    task: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def _lookup(self) -> dict[tuple[str, str, float], float]:
        return {(r.block, r.knob, round(r.level, 6)): r.damage for r in self.rows}

    def damage(self, block: str, knob: str, level: float) -> float | None:
        """Measured damage of one knob level, or None when the table has no such row."""
        return self._lookup.get((block, knob, round(float(level), 6)))

    def blocks(self) -> list[str]:
        return list(dict.fromkeys(r.block for r in self.rows))

    def knobs(self) -> list[tuple[str, float]]:
        """``(knob, level)`` columns in first-seen order (the heat map's x axis)."""
        return list(dict.fromkeys((r.knob, r.level) for r in self.rows))

    # ---- files ----------------------------------------------------------------------------------
    def to_csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for r in self.rows:
            w.writerow([r.block, r.knob, _level_text(r.knob, r.level), repr(r.damage)])
        return buf.getvalue()

    def to_csv(self, path: str | Path) -> None:
        """Write the rows to ``path`` and the task and provenance to ``path`` with suffix ``.json``."""
        path = Path(path)
        write_text_atomic(path, self.to_csv_text())
        write_text_atomic(path.with_suffix(".json"), json.dumps({"task": self.task, **self.meta}, indent=1))

    @classmethod
    def from_csv(cls, path: str | Path) -> SensitivityTable:
        path = Path(path)
        try:
            text = path.read_text()
            meta_path = path.with_suffix(".json")
            meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
            reader = csv.DictReader(io.StringIO(text))
            if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
                raise ValueError(f"columns {reader.fieldnames} are not {', '.join(CSV_COLUMNS)}")
            rows = tuple(SensitivityRow(r["block"], r["knob"], float(r["level"]), float(r["damage"])) for r in reader)
        except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError) as e:
            raise SensitivityError(f"cannot read the sensitivity table {path}: {e}") from None
        task = meta.pop("task", "reconstruct" if any(r.block.startswith("d") for r in rows) else "classify")
        return cls(rows=rows, task=task, meta=meta)


def _level_text(knob: str, level: float) -> str:
    return repr(float(level)) if knob_type(knob) in ("rank", MERGE) else str(int(level))


# ---- the additive damage model ----------------------------------------------------------------------
def check_weights(weights: Mapping[str, float] | None, blocks: list[str]) -> None:
    """Damage weights are keyed by knob type (``heads``, ``mlp``, ``bits``, ``rank``), block (``b0``) or
    both (``b0.bits``), each a finite number >= 0; anything else is a caller's bug (ValueError)."""
    types = (*KNOB_TYPES, MERGE)
    known = set(types) | set(blocks) | {f"{b}.{t}" for b in blocks for t in types}
    for key, w in (weights or {}).items():
        if key not in known:
            raise ValueError(f"unknown damage weight {key!r}; keys are knob types, blocks or block.type")
        if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
            raise ValueError(f"damage weight {key!r} must be a finite number >= 0, got {w!r}")


def damage_weight(weights: Mapping[str, float] | None, block: str, knob: str) -> float:
    """The multiplier of one row: weight of its knob type x of its block x of ``block.type``."""
    if not weights:
        return 1.0
    t = knob_type(knob)
    return float(weights.get(t, 1.0) * weights.get(block, 1.0) * weights.get(f"{block}.{t}", 1.0))


def rank_fraction(rank: int, in_features: int, out_features: int) -> float | None:
    """The search's rank fraction that gives ``rank`` on a Linear of that shape, or None."""
    return next((f for f in RANK_FRACTIONS if f and rank_for(f, in_features, out_features) == rank), None)


def config_levels(shape: ModelShape, config: CompressionConfig, task: str,
                  merges: bool = True) -> Iterator[tuple[str, str, float]]:
    """``(block, knob, level)`` of every knob ``config`` moves away from identity (ranks as fractions of
    the kept Linear, as the search draws them; a rank that saves no compute stays dense and is skipped;
    ``merges``: token merges as fractions of the tokens each block sees, see the module doc)."""
    decoder = config.decoder_blocks or CompressionConfig.identity(shape).decoder_blocks
    cfgs = dict(zip([f"b{i}" for i in range(len(config.blocks))], config.blocks))
    cfgs.update({f"d{i}": b for i, b in enumerate(decoder)})
    flow = dict(zip(cfgs, token_flow(merge_tokens_in(shape, task), [b.merge_tokens for b in config.blocks])))
    for label, s in block_labels(shape, task):
        b = cfgs[label]
        if merges and label in flow and flow[label][1]:
            tokens, r = flow[label]
            f = next((f for f in MERGE_FRACTIONS if f and merge_for(f, tokens) == r), None)
            if f is None:
                raise ValueError(f"{label}.merge_tokens: {r} of {tokens} tokens is not one of the search's merge fractions")
            yield label, MERGE, f
        if b.heads != s.heads:
            yield label, "heads", float(b.heads)
        if b.mlp_hidden != s.mlp_hidden:
            yield label, "mlp", float(b.mlp_hidden)
        dims = s.linear_dims(b.heads, b.mlp_hidden)
        for k in b.live_linears():
            if b.weight_bits[k] != 32:
                yield label, f"{k}.bits", float(b.weight_bits[k])
            r = b.ranks[k]
            if r is not None and r * sum(dims[k]) < dims[k][0] * dims[k][1]:
                f = rank_fraction(r, *dims[k])
                if f is None:
                    raise ValueError(f"{label}.{k}: rank {r} is not one of the search's rank fractions")
                yield label, f"{k}.rank", f


def additive_damage(table: SensitivityTable, shape: ModelShape, config: CompressionConfig,
                    weights: Mapping[str, float] | None = None) -> float:
    """The table's prediction of ``config``'s damage: the (weighted) sum of its single-knob damages.
    The linear knobs of a removed sub-layer do not count (the sub-layer is gone). ValueError when the
    table has no row for a level the config uses. A table measured without ``merge`` rows counts no
    damage for merging (under the allocate strategy the merge schedule is fixed per trial, so the
    allocation does not depend on it)."""
    total = 0.0
    with_merge = any(r.knob == MERGE for r in table.rows)
    for block, knob, level in config_levels(shape, config, table.task, merges=with_merge):
        d = table.damage(block, knob, level)
        if d is None:
            raise ValueError(f"the sensitivity table has no row for {block}.{knob} = {level:g}")
        total += damage_weight(weights, block, knob) * d
    return total


# ---- calibration batch and cache key -----------------------------------------------------------------
def calibration_batch(split: ImageSplit, images: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x float32 [N, C, H, W] normalised, indices int64 [N])``: ``images`` drawn without replacement
    from ``split`` by a generator seeded with ``seed`` (sorted, so the batch is a set, not an order)."""
    if images < 1 or images > len(split):
        raise SensitivityError(f"the calibration batch needs 1 to {len(split)} images, got {images}")
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:images].sort().values
    return normalise(split.images[idx], split.mean, split.std), idx


def weights_checksum(model: nn.Module) -> str:
    """SHA-256 of every state_dict tensor's name, dtype, shape and bytes (sorted by name)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def table_levels(shape: ModelShape, task: str, tokens: bool = False) -> dict[str, dict[str, tuple[float, ...]]]:
    """``{block: {knob: levels}}`` of a table; ``tokens``: with the encoder blocks' ``merge`` rows."""
    merge_at = merge_tokens_in(shape, task) if tokens else 0
    return {label: knob_levels(s, merge_at if label.startswith("b") else 0) for label, s in block_labels(shape, task)}


def table_key(model: nn.Module, split: ImageSplit, *, images: int, seed: int, data_name: str,
              tokens: bool = False) -> str:
    """The cache key: 24 hex digits of a hash of everything the table depends on (a table without
    ``merge`` rows keeps the key it had before merging existed)."""
    task = task_of(model)
    _, idx = calibration_batch(split, images, seed)
    levels = table_levels(describe(model), task, tokens)
    # a folder is keyed by its absolute path, so `maec sensitivity` and the search share cache entries
    data_id = str(Path(data_name).resolve()) if Path(data_name).is_dir() else data_name
    parts = {"version": TABLE_VERSION, "weights": weights_checksum(model), "data": data_id, "task": task,
             "images": images, "seed": seed, "split_size": len(split), "mask_ratio": MASK_RATIO,
             "indices": hashlib.sha256(idx.numpy().tobytes()).hexdigest(),
             "pixels": hashlib.sha256(split.images[idx].contiguous().numpy().tobytes()).hexdigest(),
             "levels": {b: {k: list(v) for k, v in lv.items()} for b, lv in levels.items()}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def task_of(model: nn.Module) -> str:
    return "reconstruct" if isinstance(model, MaskedAutoencoder) else "classify"


# ---- measurement --------------------------------------------------------------------------------------
class _Probe:
    """The teacher's outputs and every block's input on the calibration batch.

    A student that differs from the teacher in block ``i`` only computes what the teacher computed up
    to that block, so each evaluation starts from the cached input of block ``i`` and runs the rest of
    the network: about half the work of a full forward pass."""

    def __init__(self, teacher: nn.Module, x: torch.Tensor, seed: int):
        self.is_mae = isinstance(teacher, MaskedAutoencoder)
        self.inputs: dict[str, torch.Tensor] = {}
        handles = []
        groups = [("b", teacher.blocks)] + ([("d", teacher.decoder_blocks)] if self.is_mae else [])
        for prefix, blocks in groups:
            for i, blk in enumerate(blocks):
                handles.append(blk.register_forward_pre_hook(self._saver(f"{prefix}{i}")))
        try:
            with torch.inference_mode():
                if self.is_mae:
                    # one seeded mask for teacher and every student: the same question to all of them
                    latent, self.mask, self.ids_restore = teacher.forward_encoder(
                        x, MASK_RATIO, torch.Generator().manual_seed(seed))
                    self.target = teacher.target(x)
                    pred = teacher.forward_decoder(latent, self.ids_restore)
                    self.teacher_loss = float(masked_patch_loss(pred, self.target, self.mask))
                else:
                    self.teacher_logp = F.log_softmax(teacher(x).float(), dim=-1)
        finally:
            for h in handles:  # removed before any student is deep-copied from the teacher
                h.remove()

    def _saver(self, label: str):
        def hook(_module: nn.Module, args: tuple) -> None:
            self.inputs[label] = args[0].detach()
        return hook

    @torch.inference_mode()
    def damage(self, student: nn.Module, block: str) -> float:
        """Damage of ``student`` (equal to the teacher before ``block``) on the calibration batch."""
        i, x = int(block[1:]), self.inputs[block]
        if block.startswith("d"):  # the tail of MaskedAutoencoder.forward_decoder
            for blk in student.decoder_blocks[i:]:
                x = blk(x)
            pred = student.decoder_pred(student.decoder_norm(x))[:, 1:]
        else:
            if merges_any(student.blocks[i:]):
                x = run_merging_blocks(student.blocks[i:], x)  # merged, then unmerged: same [N, T, D]
            else:
                for blk in student.blocks[i:]:
                    x = blk(x)
            if not self.is_mae:
                logp = F.log_softmax(student.head(student.pool(student.norm(x))).float(), dim=-1)
                # KL >= 0; a rounding error below 0 would only confuse a table of damages
                return max(0.0, float(F.kl_div(logp, self.teacher_logp, reduction="batchmean", log_target=True)))
            pred = student.forward_decoder(student.norm(x), self.ids_restore)
        return float(masked_patch_loss(pred, self.target, self.mask)) - self.teacher_loss


def config_damages(teacher: nn.Module, x: torch.Tensor, configs: Iterable[CompressionConfig], *,
                   seed: int = 0) -> list[float]:
    """Measured damage of each whole ``config`` (every knob at once) on the batch ``x: [N, C, H, W]``,
    in the table's unit: what :func:`additive_damage` predicts from single-knob rows (issue 13, item 5)."""
    teacher = teacher.eval()
    probe = _Probe(teacher, x, seed)
    first = block_labels(describe(teacher), task_of(teacher))[0][0]
    return [probe.damage(apply(teacher, c), first) for c in configs]


def _plan(shape: ModelShape, task: str, kinds: Collection[str]) -> Iterator[tuple[str, str, float, bool]]:
    """``(block, knob, level, is_identity)`` of every row of the knob types ``kinds`` (``merge`` among
    them for token-merging rows), in table order."""
    all_levels = table_levels(shape, task, MERGE in kinds)
    for label, s in block_labels(shape, task):
        for knob, levels in all_levels[label].items():
            if knob_type(knob) not in kinds:
                continue
            for level in levels:
                yield label, knob, float(level), level == identity_level(s, knob)


def measure_table(teacher: nn.Module, x: torch.Tensor, *, seed: int = 0, progress: bool = True,
                  meta: Mapping[str, Any] | None = None, kinds: Collection[str] = KNOB_TYPES) -> SensitivityTable:
    """Measure every row (of the knob types ``kinds``) on the calibration batch ``x: [N, C, H, W]``
    (normalised); no cache."""
    teacher = teacher.eval()
    task = task_of(teacher)
    shape = describe(teacher)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    probe = _Probe(teacher, x, seed)
    plan = list(_plan(shape, task, kinds))
    rows = []
    with tqdm(total=sum(not ident for *_, ident in plan), desc="sensitivity", disable=not progress) as bar:
        for block, knob, level, ident in plan:
            damage = 0.0
            if not ident:
                damage = probe.damage(apply(teacher, single_knob_config(shape, block, knob, level, task)), block)
                bar.set_postfix_str(f"{block}.{knob}={level:g}", refresh=False)
                bar.update(1)
            if not math.isfinite(damage):
                damage = float("inf")  # NaN would break sorting and the allocator; inf says "never"
            rows.append(SensitivityRow(block, knob, level, damage))
    info = {**(meta or {}), "model": shape.name, "images": int(x.shape[0]), "seed": seed,
            "metric": "kl_nats" if task == "classify" else "loss_increase",
            "build_s": round(time.perf_counter() - t0, 2)}
    return SensitivityTable(rows=tuple(rows), task=task, meta=info)


def build_table(teacher: nn.Module, split: ImageSplit, *, images: int = DEFAULT_IMAGES, seed: int = 0,
                data_name: str = "fashion-mnist", cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
                progress: bool = True, tokens: bool = False) -> SensitivityTable:
    """The table of ``teacher`` on ``images`` images of ``split`` drawn with ``seed``: read from
    ``cache_dir/<key>.csv`` when a previous call built it, else measured and written there
    (``cache_dir=None``: no cache). ``meta["cache"]`` is the CSV's path when cached. ``tokens``: with
    ``merge`` rows (the search merges tokens)."""
    key = table_key(teacher, split, images=images, seed=seed, data_name=data_name, tokens=tokens)
    path = Path(cache_dir) / f"{key}.csv" if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            return SensitivityTable.from_csv(path)
        except SensitivityError:
            pass  # a damaged cache entry is rebuilt, not an error
    x, _ = calibration_batch(split, images, seed)
    table = measure_table(teacher, x, seed=seed, progress=progress, kinds=KNOB_TYPES + ((MERGE,) if tokens else ()),
                          meta={"key": key, "data": data_name, **({"cache": str(path)} if path else {})})
    if path is not None:
        table.to_csv(path)
    return table


# ---- plot ---------------------------------------------------------------------------------------------
def write_heatmap(table: SensitivityTable, path: str | Path, title: str = "") -> None:
    """A plotly heat map (block x knob level), colour = log10 of the damage, hover = the damage."""
    import plotly.graph_objects as go  # only the command and the report need plotly

    blocks, cols = table.blocks(), table.knobs()
    z, text = [], []
    for b in blocks:
        vals = [table.damage(b, k, lv) for k, lv in cols]
        # damages span ~10 orders of magnitude (fp16 vs. a removed attention): colour by log10
        z.append([None if v is None else math.log10(max(v, 1e-9)) for v in vals])
        text.append(["no row" if v is None else f"{v:.3g}" for v in vals])
    labels = [f"{k}={_level_text(k, lv)}" for k, lv in cols]
    metric = table.meta.get("metric", "damage")
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=blocks, text=text, colorscale="Viridis",
                               hovertemplate="%{y} %{x}<br>" + metric + " %{text}<extra></extra>",
                               colorbar={"title": f"log10 {metric}"}))
    fig.update_layout(title=title or f"Sensitivity ({metric}, one knob at a time)",
                      xaxis_title="knob = level", yaxis_title="block", yaxis_autorange="reversed",
                      height=260 + 28 * len(blocks))
    write_atomic(path, lambda tmp: fig.write_html(tmp, include_plotlyjs=True))
