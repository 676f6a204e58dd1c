"""Readers for the public ARM measurements in ``../shared/arm-latency`` (see its PROVENANCE files).

They turn third-party rows into :class:`~evaluators.latency.fit.fit.Sample`s of our operator vocabulary;
the data files themselves are never copied into the project. ``MAE_ARM_LATENCY_DIR`` points at the
folder (default ``../shared/arm-latency`` next to the repository).

* HAT (Raspberry Pi 4, PyTorch eager, fairseq SuperTransformer): an NLP encoder on 30 tokens and a
  30-step beam-5 incremental decoder. Both are decomposed into our operators; what fairseq adds on
  top (a fixed cost per forward, a cost per decoder layer per step, the vocabulary projection and
  beam search per step) becomes ``extra`` framework columns that stay with that runtime.
* ncnn benchncnn: ViT-B/32 at 384 px (145 tokens) whole-model latencies per device and threads.
* Paddle-Lite: per-core fp32 / fp16 / int8 CNN latencies (dtype speed ratios).
"""
from __future__ import annotations

import csv
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from evaluators.latency.errors import CalibrationError
from evaluators.latency.fit.fit import Sample
from evaluators.latency.predict.ops import Op

REPO_ROOT = Path(__file__).resolve().parents[3]

HAT_REPO = "mit-han-lab/hardware-aware-transformers"
HAT_COMMIT = "70e5a279d080670208249fdd98ed731fa9bcc466"
HAT_FILES = ("latency_dataset/wmt14ende_cpu_raspberrypi_all.csv", "latency_dataset/wmt14enfr_cpu_raspberrypi_all.csv")
NCNN_REPO, NCNN_COMMIT, NCNN_FILE = "Tencent/ncnn", "a4d2ea1d4422c9e849f166fd7a4aefb52f942f6a", "benchmark/README.md"
PADDLE_REPO, PADDLE_COMMIT, PADDLE_FILE = ("PaddlePaddle/Paddle-Lite", "07b851a839dabc1a7f8fa63fccff4824329ed5f2",
                                           "docs/performance/benchmark.md")

HAT_TOKENS = 30      # dummy sentence length of HAT's latency measurement
HAT_QKV_DIM = 512    # fixed in the sampling space: fewer heads widen each head, the projections stay
HAT_STEPS = 30       # incremental decoder steps
HAT_BEAM = 5         # fairseq's default beam (the yml does not override it)
HAT_ENCODER_LAYERS = 6


def arm_latency_dir() -> Path:
    """``$MAE_ARM_LATENCY_DIR`` or ``../shared/arm-latency`` relative to the repository root."""
    env = os.environ.get("MAE_ARM_LATENCY_DIR")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "arm-latency")


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        raise CalibrationError(f"{path} does not exist (set MAE_ARM_LATENCY_DIR to the shared arm-latency folder)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CalibrationError(f"{path} is not a readable CSV ({type(e).__name__})") from None


# ---- HAT -------------------------------------------------------------------------------------------
HAT_COLUMNS = ("encoder_embed_dim", "encoder_ffn_embed_dim_avg", "encoder_self_attention_heads_avg",
               "decoder_embed_dim", "decoder_layer_num", "decoder_ffn_embed_dim_avg",
               "decoder_self_attention_heads_avg", "decoder_ende_attention_heads_avg",
               "decoder_arbitrary_ende_attn_avg", "latency_mean_encoder", "latency_mean_decoder",
               "latency_std_encoder", "latency_std_decoder")


def is_hat_csv(header: list[str]) -> bool:
    return all(c in header for c in HAT_COLUMNS)


def _attn(name: str, m: float, kv: float, heads: float) -> Op:
    # HAT keeps qkv_dim at 512: per-layer average heads h means head_dim 512 / h; the features we use
    # (h * head_dim and h * m * kv) are linear in h, so the per-layer average gives the exact sum.
    return Op(name, "attention", m=m, kv=kv, heads=heads, head_dim=HAT_QKV_DIM / heads)


def hat_encoder_ops(d: float, ffn: float, heads: float) -> list[Op]:
    """fairseq ``TransformerEncoderLayer`` x 6 on 30 tokens (post-norm, ReLU), batch 1."""
    # the embedding lookup and position add are the same for every row: part of the fixed cost
    T, ops = HAT_TOKENS, []
    for i in range(HAT_ENCODER_LAYERS):
        p = f"layers.{i}"
        ops += [Op(f"{p}.qkv", "linear", m=T, k=d, n=3 * HAT_QKV_DIM), _attn(f"{p}.attn", T, T, heads),
                Op(f"{p}.out", "linear", m=T, k=HAT_QKV_DIM, n=d), Op(f"{p}.add1", "add", elems=T * d),
                Op(f"{p}.ln1", "layernorm", elems=T * d), Op(f"{p}.fc1", "linear", m=T, k=d, n=ffn),
                Op(f"{p}.relu", "relu", elems=T * ffn), Op(f"{p}.fc2", "linear", m=T, k=ffn, n=d),
                Op(f"{p}.add2", "add", elems=T * d), Op(f"{p}.ln2", "layernorm", elems=T * d)]
    return ops


def hat_decoder_terms(d: float, layers: float, ffn: float, h_self: float, h_ende: float, ende_layers: float,
                      enc_d: float) -> list[tuple[Op, float]]:
    """(op, count) of the 30-step beam-5 incremental decoder: per step and layer, self-attention over
    the cached keys (1..30, mean 15.5), encoder-decoder attention over 30 tokens of each attended
    encoder layer, FFN; once per layer, the key/value projections of the encoder output (cached)."""
    B, S = HAT_BEAM, HAT_STEPS
    kv_self = (S + 1) / 2.0
    per_step = [Op("self.qkv", "linear", m=B, k=d, n=3 * HAT_QKV_DIM), _attn("self.attn", B, kv_self, h_self),
                Op("self.out", "linear", m=B, k=HAT_QKV_DIM, n=d), Op("add1", "add", elems=B * d),
                Op("ln1", "layernorm", elems=B * d),
                Op("ende.q", "linear", m=B, k=d, n=HAT_QKV_DIM), _attn("ende.attn", B, HAT_TOKENS * ende_layers, h_ende),
                Op("ende.out", "linear", m=B, k=HAT_QKV_DIM, n=d), Op("add2", "add", elems=B * d),
                Op("ln2", "layernorm", elems=B * d), Op("fc1", "linear", m=B, k=d, n=ffn),
                Op("relu", "relu", elems=B * ffn), Op("fc2", "linear", m=B, k=ffn, n=d),
                Op("add3", "add", elems=B * d), Op("ln3", "layernorm", elems=B * d)]
    once = [Op("ende.kv", "linear", m=B * HAT_TOKENS * ende_layers, k=enc_d, n=2 * HAT_QKV_DIM)]
    return [(op, S * layers) for op in per_step] + [(op, layers) for op in once]


@dataclass(frozen=True)
class HatRows:
    """HAT samples of one file plus what the outlier rules removed (row numbers are 0-based data rows)."""

    file: str
    encoder: list[Sample]
    decoder: list[Sample]
    dropped: dict[str, list[int]]


def hat_outliers(enc_ms: list[float], enc_std: list[float], *, run_len: int = 20) -> dict[str, list[int]]:
    """The two documented kinds of disturbed encoder rows, by rules that do not look at the config.

    ``startup``: the leading run of rows measured while the board was disturbed (the en-de file starts
    with ~120 rows at ~2 s, ten times the rest): every row up to the last one whose trailing window of
    ``run_len`` rows has a median above 2x the file median. ``spike``: any other row above 2x the file
    median (no configuration of the space costs that: the largest is ~1.5x the median) or with a
    standard deviation above 25% of its mean (the repeats themselves disagree).
    """
    med = statistics.median(enc_ms)
    n = len(enc_ms)
    last_bad_window = -1
    for i in range(run_len, n + 1):
        if statistics.median(enc_ms[i - run_len:i]) > 2 * med:
            last_bad_window = i
    startup = list(range(last_bad_window)) if last_bad_window > 0 else []
    spike = [i for i in range(max(0, last_bad_window), n)
             if enc_ms[i] > 2 * med or enc_std[i] > 0.25 * enc_ms[i]]
    return {"startup": startup, "spike": spike}


def read_hat(path: Path) -> HatRows:
    """Encoder and decoder samples of one HAT CSV with the outlier rules applied (to both)."""
    rows = _read_csv(path)
    if not rows or not is_hat_csv(list(rows[0])):
        raise CalibrationError(f"{path} is not a HAT latency dataset (columns {', '.join(HAT_COLUMNS[:3])}, ...)")
    try:
        vals = [{c: float(r[c]) for c in HAT_COLUMNS} for r in rows]
    except (TypeError, ValueError):
        raise CalibrationError(f"{path} has a non-numeric value in a HAT column") from None
    dropped = hat_outliers([v["latency_mean_encoder"] for v in vals], [v["latency_std_encoder"] for v in vals])
    bad = set(dropped["startup"]) | set(dropped["spike"])
    # The decoder was timed right after the encoder of the same row: a disturbed row is dropped whole,
    # and a decoder row whose repeats disagree by more than 25% too.
    dec_bad = sorted(i for i, v in enumerate(vals) if i not in bad
                     and v["latency_std_decoder"] > 0.25 * v["latency_mean_decoder"])
    dropped["decoder_spike"] = dec_bad
    tag = path.stem.split("_")[0]  # "wmt14ende"
    enc, dec = [], []
    for i, v in enumerate(vals):
        if i in bad:
            continue
        d, dd, L = v["encoder_embed_dim"], v["decoder_embed_dim"], v["decoder_layer_num"]
        ops = hat_encoder_ops(d, v["encoder_ffn_embed_dim_avg"], v["encoder_self_attention_heads_avg"])
        enc.append(Sample(tuple((op, 1.0) for op in ops), v["latency_mean_encoder"], "hat-encoder",
                          calls=0.0, extra=((f"hat_encoder_fixed[{tag}]", 1.0),), row=i, meta={"file": path.name}))
        if i in dec_bad:
            continue
        terms = hat_decoder_terms(dd, L, v["decoder_ffn_embed_dim_avg"], v["decoder_self_attention_heads_avg"],
                                  v["decoder_ende_attention_heads_avg"], v["decoder_arbitrary_ende_attn_avg"], d)
        # The vocabulary differs between the two files (en-de, en-fr): output projection + beam
        # search per step get a column per file.
        extra = ((f"hat_decoder_fixed[{tag}]", 1.0), ("hat_decoder_layer_step", L * HAT_STEPS),
                 (f"hat_decoder_vocab_step[{tag}]", dd * HAT_STEPS / 1000.0))
        dec.append(Sample(tuple(terms), v["latency_mean_decoder"], "hat-decoder", calls=0.0, extra=extra, row=i,
                          meta={"file": path.name}))
    return HatRows(path.name, enc, dec, dropped)


def hat_macs(sample: Sample) -> float:
    """Multiply-accumulates of a HAT sample (what a FLOPs-proportional baseline sees)."""
    return sum(op.macs * c for op, c in sample.terms)


def hat_params(sample: Sample) -> float:
    """Linear weights of a HAT *encoder* sample (what a parameter-proportional baseline sees; embedding
    tables, biases and norms left out, as in :attr:`Op.params`). Encoder ops run once each, so every
    weight counts once; decoder counts are steps x layers, hence the refusal."""
    if sample.group != "hat-encoder":
        raise ValueError(f"hat_params needs a hat-encoder sample, got {sample.group!r}")
    return sum(op.params * c for op, c in sample.terms)


# ---- ncnn ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NcnnVitRow:
    """One ViT-B/32@384 benchncnn row on an ARM CPU."""

    device: str
    threads: int
    powersave: int
    avg_ms: float
    min_ms: float
    line: int


def read_ncnn_vit(root: Path | None = None) -> list[NcnnVitRow]:
    """CPU rows of the ViT-B/32 model (``gpu_device == -1``) from the parsed benchncnn README."""
    path = (root or arm_latency_dir()) / "ncnn-benchncnn" / "ncnn_vision_transformer_only.csv"
    out = []
    for r in _read_csv(path):
        if r.get("model") != "vision_transformer" or r.get("gpu_device") != "-1":
            continue
        out.append(NcnnVitRow(r["device_section"], int(r["num_threads"]), int(r["powersave"]),
                              float(r["avg_ms"]), float(r["min_ms"]), int(r["readme_line"])))
    return out


def ncnn_vit_rows(section: str, threads: int, *, powersave: int | None = None, exclude: str = "",
                  root: Path | None = None) -> list[NcnnVitRow]:
    """The ViT-B/32 rows of the device sections containing ``section`` (and not ``exclude``) at ``threads``
    threads, at one benchncnn ``powersave`` setting (None: any)."""
    return [r for r in read_ncnn_vit(root) if section in r.device and (not exclude or exclude not in r.device)
            and (powersave is None or r.powersave == powersave) and r.threads == threads]


def ncnn_vit_ops() -> list[Op]:
    """The benchmarked ncnn graph as our operators: ViT-B/32 at 384 x 384 (144 patches + class token,
    width 768, 12 heads of 64, MLP 3072, 12 blocks, token pooling, 1000 classes); shapes from
    ``vision_transformer.param`` (12 MultiHeadAttention, 25 Gemm, 25 LayerNorm, 12 GELU)."""
    from evaluators.latency.predict.ops import decompose
    from spaces.shape import BlockShape, ModelShape

    blocks = tuple(BlockShape(dim=768, heads=12, head_dim=64, mlp_hidden=3072) for _ in range(12))
    shape = ModelShape(name="ncnn_vit_b32_384", img_size=384, patch_size=32, in_chans=3, embed_dim=768,
                       num_classes=1000, blocks=blocks)
    return decompose(shape, global_pool="token")


# ---- Paddle-Lite -----------------------------------------------------------------------------------
def paddle_ratios(core: str, root: Path | None = None) -> dict[str, dict]:
    """Median fp16/fp32 and int8/fp32 latency ratios over the CNNs measured on ``core`` (e.g.
    ``"Cortex-A72"``), with the models used: ``{"int8": {"ratio": r, "models": [...]}, ...}``."""
    path = (root or arm_latency_dir()) / "paddle-lite-benchmark" / "paddle_lite_arm_cpu_fp32_fp16_int8.csv"
    by: dict[tuple[str, str, str], float] = {}
    for r in _read_csv(path):
        if r["big_core"].startswith(core) and r["abi"] == "armv8" and r["threads"] == "1":
            by[(r["big_core"], r["model"], r["precision"])] = float(r["latency_ms"])
    out: dict[str, dict] = {}
    for prec in ("fp16", "int8"):
        pairs = sorted((m, by[(c, m, prec)] / by[(c, m, "fp32")]) for (c, m, p) in by
                       if p == prec and (c, m, "fp32") in by)
        if pairs:
            out[prec] = {"ratio": round(statistics.median(v for _, v in pairs), 4),
                         "models": [m for m, _ in pairs], "n": len(pairs)}
    return out
