"""Fitting the cost model to HAT's Raspberry Pi 4 transformer rows, with the FLOPs baselines.

What the rows can tell (and what they cannot): the encoder always runs 6 layers on 30 tokens, so any
per-operator overhead is one constant (it joins the fixed cost); attention MACs are constant (the
q/k/v width is fixed at 512), so only the per-score softmax term varies, with the head count; the
decoder runs 5 beams x 30 steps, i.e. Linears on 5 rows, while the encoder's run on 30: that
contrast is what separates the GEMM's cost per MAC from its cost per weight streamed. The fit:

* core (what the Cortex-A72 does, kept for other runtimes): ``linear/fp32`` ``ns_per_mac`` and
  ``ns_per_weight``;
* framework (what fairseq + PyTorch eager add, never transferred): a fixed cost per encoder forward
  and per decoder run, a cost per decoder layer per step, the vocabulary projection + beam search per
  step (per file: the vocabularies differ), and the per-score, LayerNorm and ReLU terms, which in
  these rows stand for PyTorch's per-head and per-width dispatch as much as for arithmetic.

Baselines on the same train / held-out rows: latency = k x MACs (FLOPs-proportional) and
latency = a + k x MACs (affine), both fitted on relative error like ours.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evaluators.latency.fit.fit import (
    Column,
    Sample,
    fit_coefficients,
    metrics,
    predict_samples,
    proportional_baseline,
    split,
)
from evaluators.latency.fit.sources import HAT_COMMIT, HAT_FILES, HAT_REPO, arm_latency_dir, hat_macs, read_hat

# Coefficients the HAT rows identify; all other columns are held at 0 in this fit.
HAT_FREE: tuple[Column, ...] = (("linear/fp32", "ns_per_mac"), ("linear/fp32", "ns_per_weight"),
                                ("attention/fp32", "ns_per_score"), ("layernorm/fp32", "ns_per_elem"),
                                ("relu/fp32", "ns_per_elem"))
TRANSFERRED: tuple[Column, ...] = (("linear/fp32", "ns_per_mac"), ("linear/fp32", "ns_per_weight"))


@dataclass
class HatFit:
    """Coefficients, held-out metrics of ours and of the baselines, and the rows used / dropped."""

    coefs: dict[Column, float]
    heldout: dict[str, dict]                  # group -> metrics of ours
    baselines: dict[str, dict]                # "flops_proportional" / "flops_affine" -> metrics (encoder)
    baseline_coefs: dict[str, list[float]]
    rows: dict[str, dict] = field(default_factory=dict)  # file -> counts and dropped row numbers
    seed: int = 0
    heldout_frac: float = 0.2
    train: list[Sample] = field(default_factory=list, repr=False)  # the split itself, for other baselines
    test: list[Sample] = field(default_factory=list, repr=False)


def _free_fit(train: list[Sample]) -> dict[Column, float]:
    from evaluators.latency.fit.fit import design

    _, cols = design(train)
    exclude = {c for c in cols if c[0] != "extra" and c not in HAT_FREE}
    return fit_coefficients(train, exclude=exclude, robust=True)


def _baselines(train: list[Sample], test: list[Sample]) -> tuple[dict[str, dict], dict[str, list[float]]]:
    prop, k = proportional_baseline(train, test, hat_macs)
    x = np.array([hat_macs(s) for s in train])
    y = np.array([s.latency_ms for s in train])
    xt = np.array([hat_macs(s) for s in test])
    yt = np.array([s.latency_ms for s in test])
    A = np.c_[np.ones_like(x), x] / y[:, None]
    a, b = np.linalg.lstsq(A, np.ones_like(y), rcond=None)[0]
    return ({"flops_proportional": prop, "flops_affine": metrics(a + b * xt, yt)},
            {"flops_proportional": [k * 1e9], "flops_affine": [float(a), float(b) * 1e9]})  # ms per GMAC


def fit_hat(paths: list[Path] | None = None, *, seed: int = 0, heldout_frac: float = 0.2) -> HatFit:
    """Fit on a seeded split of the HAT rows (default: both shared files); baselines on encoder rows."""
    paths = paths or [arm_latency_dir() / "hat-raspberrypi" / Path(f).name for f in HAT_FILES]
    files = [read_hat(p) for p in paths]
    samples = [s for f in files for s in f.encoder + f.decoder]
    tr, te = split(samples, seed=seed, heldout_frac=heldout_frac)
    train, test = [samples[i] for i in tr], [samples[i] for i in te]
    coefs = _free_fit(train)
    held = {}
    for g in ("hat-encoder", "hat-decoder"):
        t = [s for s in test if s.group == g]
        held[g] = metrics(predict_samples(t, coefs), np.array([s.latency_ms for s in t]))
    enc_tr = [s for s in train if s.group == "hat-encoder"]
    enc_te = [s for s in test if s.group == "hat-encoder"]
    base, base_coefs = _baselines(enc_tr, enc_te)
    rows = {}
    for f in files:
        used = sum(1 for i in tr if samples[i].meta["file"] == f.file)
        rows[f.file] = {"encoder_rows": len(f.encoder), "decoder_rows": len(f.decoder), "train_rows": used,
                        "dropped": {k: v for k, v in f.dropped.items()}}
    return HatFit(coefs, held, base, base_coefs, rows, seed, heldout_frac, train, test)


def hat_provenance(fit: HatFit) -> list[dict]:
    out = []
    for f in HAT_FILES:
        r = fit.rows.get(Path(f).name, {})
        d = r.get("dropped", {})
        out.append({
            "repo": HAT_REPO, "commit": HAT_COMMIT, "file": f,
            "rows_used": (f"{r.get('encoder_rows', 0)} encoder + {r.get('decoder_rows', 0)} decoder rows "
                          f"(of 2000 each; {len(d.get('startup', []))} start-up, {len(d.get('spike', []))} spike, "
                          f"{len(d.get('decoder_spike', []))} decoder-spike rows dropped); seeded split: "
                          f"{r.get('train_rows', 0)} fit, the rest held out"),
            "dropped_rows": {k: _ranges(v) for k, v in d.items()},
            "use": "core GEMM terms of the Cortex-A72 (linear/fp32 ns_per_mac, ns_per_weight) at 4 threads",
        })
    return out


def _ranges(idx: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"`` (0-based data rows), so the dropped rows are listed compactly."""
    if not idx:
        return ""
    out, start, prev = [], idx[0], idx[0]
    for i in idx[1:] + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        out.append(f"{start}-{prev}" if prev > start else f"{start}")
        if i is not None:
            start = prev = i
    return ",".join(out)
