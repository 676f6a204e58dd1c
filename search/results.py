"""Tables and plots of a study: ``results/<study>/trials.{csv,parquet}``, ``pareto.html``,
``winner_layers.{csv,html}``. Reads the study only; never changes it."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from spaces.config import CompressionConfig


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then rename onto ``path``: workers sharing a study (``--join``) each write the
    results when they finish, and a reader never sees a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial, one column per knob (``b3.heads``, ``b3.fc1.bits``...), plus metrics."""
    metric = study.metric_names[0] if study.metric_names else "score"
    rows = []
    for t in study.get_trials(deepcopy=False):
        values = t.values or [None, None]
        row = {"number": t.number, "state": t.state.name, metric: values[0], "latency_ms": values[1],
               "feasible": t.user_attrs.get("feasible"), "stage": t.user_attrs.get("stage"),
               "cheap_score": t.user_attrs.get("cheap_score"), "params": t.user_attrs.get("params"),
               "macs": t.user_attrs.get("macs"), "size_mb": t.user_attrs.get("size_mb"),
               "fail_reason": t.user_attrs.get("fail_reason") or t.system_attrs.get("fail_reason"),
               "duration_s": t.duration.total_seconds() if t.duration else None}
        for stage, seconds in (t.user_attrs.get("timings") or {}).items():
            row[f"time_{stage}"] = seconds
        row.update(t.params)
        rows.append(row)
    return pd.DataFrame(rows)


def pareto_front(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Feasible complete trials that no other feasible trial beats on both score and latency."""
    ok = df[(df["state"] == "COMPLETE") & (df["feasible"] == True)].sort_values(["latency_ms", metric],  # noqa: E712
                                                                                 ascending=[True, False])
    best, keep = -float("inf"), []
    for idx, row in ok.iterrows():
        if row[metric] > best:
            keep.append(idx)
            best = row[metric]
    return ok.loc[keep]


def pareto_plot(df: pd.DataFrame, metric: str, budget_ms: float, path: Path, title: str) -> None:
    """Score against predicted latency; feasible, infeasible and Pareto-optimal trials; the budget line."""
    done = df[df["state"] == "COMPLETE"]
    fig = go.Figure()
    for label, part, symbol in (("feasible", done[done["feasible"] == True], "circle"),  # noqa: E712
                                ("over budget", done[done["feasible"] != True], "x")):  # noqa: E712
        fig.add_trace(go.Scatter(x=part["latency_ms"], y=part[metric], mode="markers", name=label,
                                 marker={"symbol": symbol, "size": 8}, text=part["number"].map(lambda n: f"trial {n}"),
                                 customdata=part[["stage"]], hovertemplate="%{text}<br>%{x:.2f} ms<br>%{y:.4f}"
                                 "<br>%{customdata[0]}<extra></extra>"))
    front = pareto_front(df, metric)
    fig.add_trace(go.Scatter(x=front["latency_ms"], y=front[metric], mode="lines+markers", name="Pareto front",
                             line={"shape": "hv"}, marker={"size": 11, "symbol": "star"}))
    fig.add_vline(x=budget_ms, line_dash="dash", annotation_text=f"budget {budget_ms:g} ms")
    fig.update_layout(title=title, xaxis_title="predicted latency (ms)", yaxis_title=f"validation {metric}")
    write_atomic(path, lambda tmp: fig.write_html(tmp, include_plotlyjs=True))


def layer_table(config: CompressionConfig, original: CompressionConfig) -> pd.DataFrame:
    """Per block of the winner: heads and units kept of the original, bits and ranks per Linear."""
    rows = []
    groups = [("encoder", config.blocks, original.blocks), ("decoder", config.decoder_blocks, original.decoder_blocks)]
    for part, blocks, orig in groups:
        for i, (b, o) in enumerate(zip(blocks, orig)):
            row = {"part": part, "block": i, "heads": b.heads, "heads_of": o.heads, "mlp_hidden": b.mlp_hidden,
                   "mlp_of": o.mlp_hidden}
            for k in b.ranks:
                live = k in b.live_linears()
                row[f"{k}_bits"] = b.weight_bits[k] if live else None
                row[f"{k}_rank"] = b.ranks[k] if live else None
            rows.append(row)
    return pd.DataFrame(rows)


def layer_plot(table: pd.DataFrame, path: Path, title: str) -> None:
    """Share of heads and MLP units kept per block, and the weight bits per Linear."""
    label = table["part"].str[0] + table["block"].astype(str)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("kept share", "weight bits"))
    fig.add_trace(go.Bar(x=label, y=table["heads"] / table["heads_of"], name="heads"), row=1, col=1)
    fig.add_trace(go.Bar(x=label, y=table["mlp_hidden"] / table["mlp_of"], name="MLP units"), row=1, col=1)
    for k in ("qkv", "proj", "fc1", "fc2"):
        fig.add_trace(go.Bar(x=label, y=table[f"{k}_bits"], name=f"{k} bits"), row=1, col=2)
    fig.update_layout(title=title, barmode="group")
    write_atomic(path, lambda tmp: fig.write_html(tmp, include_plotlyjs=True))


def write_tables(study: optuna.Study, out_dir: Path) -> pd.DataFrame:
    """``trials.csv`` and ``trials.parquet`` (all trials); returns the table."""
    df = trials_table(study)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "trials.csv", lambda tmp: df.to_csv(tmp, index=False))
    write_atomic(out_dir / "trials.parquet", lambda tmp: df.to_parquet(tmp, index=False))
    return df
