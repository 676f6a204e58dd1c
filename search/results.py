"""Tables and plots of a study: ``results/<study>/trials.{csv,parquet}``, ``pareto.html``,
``winner_layers.{csv,html}``. Reads the study only; never changes it.

Built on Optuna's own views of a study: ``Study.trials_dataframe`` for the table, ``Study.best_trials``
for the Pareto front (with the latency constraint that :mod:`search.objective` records, Optuna keeps
only feasible trials) and ``optuna.visualization.plot_pareto_front`` for the plot. What is added here
is the project's file format: the column names of ``trials.csv`` that users and tests read, the budget
line, and short hover texts.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

import optuna
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.files import write_atomic
from evaluators.sensitivity import SensitivityTable, config_levels, knob_type
from spaces.config import CompressionConfig
from spaces.shape import ModelShape

# user attrs the objective sets that become columns of their own, under the same name
ATTR_COLUMNS = ("feasible", "stage", "cheap_score", "recovered_score", "params", "macs", "size_mb")
# the study's user attr holding the recovered scores of the top trials of a cheap-fidelity study
# ({str(trial number): score}; set by search.winner after the search, never seen by the sampler)
RECOVERED_KEY = "recovered_scores"


def recovered_scores(study: optuna.Study) -> dict[int, float]:
    """``{trial number: recovered validation score}``: trials scored at the recovered fidelity, and the
    top trials of a cheap-fidelity study recovered after the search."""
    scores = {int(k): float(v) for k, v in (study.user_attrs.get(RECOVERED_KEY) or {}).items()}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if "recovered_score" in t.user_attrs:
            scores[t.number] = float(t.user_attrs["recovered_score"])
    return scores
DATAFRAME_ATTRS = ("number", "state", "values", "params", "user_attrs", "system_attrs", "duration")


def metric_name(study: optuna.Study) -> str:
    """The score's name (first objective): ``accuracy`` or ``psnr_db``; ``score`` for an unnamed study."""
    return study.metric_names[0] if study.metric_names else "score"


def _fixed_columns(metric: str) -> list[str]:
    return ["number", "state", metric, "latency_ms", *ATTR_COLUMNS, "fail_reason", "duration_s"]


def _column_order(trials: Iterable[optuna.trial.FrozenTrial], fixed: list[str]) -> list[str]:
    """Columns in the order users know from ``trials.csv``: the fixed ones, then per trial its timings
    and knobs, each new name where it first appears (a conditional knob, or the timings of a stage
    only later trials reach, come after the names of earlier trials)."""
    names: dict[str, None] = dict.fromkeys(fixed)
    for t in trials:
        names.update(dict.fromkeys(f"time_{stage}" for stage in (t.user_attrs.get("timings") or {})))
        names.update(dict.fromkeys(t.params))
    return list(names)


def _group(raw: pd.DataFrame, group: str) -> pd.DataFrame:
    """One top-level group of ``trials_dataframe(multi_index=True)``, empty when no trial has any."""
    return raw[group] if group in raw.columns.get_level_values(0) else pd.DataFrame(index=raw.index)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _attr_column(frame: pd.DataFrame, key: str, fallback: pd.DataFrame | None = None) -> pd.Series:
    """The attribute ``key`` of every trial (``None`` where a trial has none), typed the way pandas types
    a column of plain values: Optuna's frame has NaN for a missing str or bool, and the column is re-built
    from the values so that ``trials.csv``/``.parquet`` keep their types (str, bool, float...).

    With ``fallback`` (for ``fail_reason``, a string), a trial without a non-empty value takes the one in
    ``fallback``: the objective's reason is a user attr, Optuna's own (a trial that failed outside our
    wrapper) a system attr."""
    def values(f: pd.DataFrame | None) -> list:
        if f is None or key not in f.columns:
            return [None] * len(frame)
        return [None if _is_missing(v) else v for v in f[key]]

    mine = values(frame)
    if fallback is not None:
        mine = [v if v else other for v, other in zip(mine, values(fallback))]
    return pd.Series(mine, index=frame.index)


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial, one column per knob (``b3.heads``, ``b3.fc1.bits``...), plus metrics.

    ``study.trials_dataframe`` with Optuna's grouped names (``values_accuracy``, ``user_attrs_stage``,
    ``params_b3.heads``) renamed to the columns of ``trials.csv``: the score under its metric's name,
    ``latency_ms``, the user attrs of :data:`ATTR_COLUMNS`, ``duration_s`` in seconds, one ``time_<stage>``
    per entry of the ``timings`` user attr, and the knobs under their own names."""
    raw = study.trials_dataframe(attrs=DATAFRAME_ATTRS, multi_index=True)
    if raw.empty:
        return pd.DataFrame()
    metric = metric_name(study)
    values, user, system = _group(raw, "values"), _group(raw, "user_attrs"), _group(raw, "system_attrs")
    # values by position: the second objective is the latency whatever the study named it
    columns = {"number": raw[("number", "")], "state": raw[("state", "")],
               metric: values.iloc[:, 0], "latency_ms": values.iloc[:, 1]}
    columns |= {key: _attr_column(user, key) for key in ATTR_COLUMNS}
    # a trial without values (pruned far over budget, or failed after the prediction): the latency it recorded
    columns["latency_ms"] = columns["latency_ms"].fillna(pd.to_numeric(_attr_column(user, "latency_ms"), errors="coerce"))
    recovered = recovered_scores(study)
    columns["recovered_score"] = pd.Series([recovered.get(int(n)) for n in columns["number"]], index=raw.index,
                                           dtype="float64")
    columns["fail_reason"] = _attr_column(user, "fail_reason", fallback=system)
    columns["duration_s"] = pd.to_timedelta(raw[("duration", "")]).dt.total_seconds()
    table = pd.DataFrame(columns)
    # timings is a dict per trial (one level deeper than trials_dataframe flattens)
    timings = pd.DataFrame([t if isinstance(t, dict) else {} for t in _attr_column(user, "timings")],
                           index=raw.index).add_prefix("time_")
    table = pd.concat([table, timings, _group(raw, "params")], axis=1)
    # trials_dataframe sorts the knobs by name (b10 before b2): the order of trials.csv is kept instead
    return table[_column_order(study.get_trials(deepcopy=False), _fixed_columns(metric))]


def _non_dominated_feasible(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Optuna's non-dominated trials among the feasible ones.

    ``study.best_trials`` considers only feasible trials once trials carry constraints, and the objective
    records the latency constraint (``set_constraint``) on every trial it finishes. A study where some
    complete trial has none (built by hand, or recorded before constraints were) takes ``best_trials`` of
    a scratch in-memory study holding its trials marked ``feasible``: there, filtering the study's own
    ``best_trials`` would lose a feasible trial beaten by an over-budget one (trials run under different
    budgets: ``feasible`` is per trial)."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if all(t.constraints for t in done):
        return [t for t in study.best_trials if t.user_attrs.get("feasible") is True]
    feasible = [t for t in done if t.user_attrs.get("feasible") is True]
    scratch = optuna.create_study(directions=study.directions)
    scratch.add_trials(feasible)  # numbered 0.. in this order
    return [feasible[t.number] for t in scratch.best_trials]


def pareto_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Feasible complete trials that no other feasible trial beats on both score and latency, by
    increasing latency (ties: higher score, then lower number first).

    Trials with the very same score and latency (the same config sampled twice) are one point of the
    front: Optuna keeps all of them (none dominates another), the front keeps the first."""
    front = sorted(_non_dominated_feasible(study), key=lambda t: (t.values[1], -t.values[0], t.number))
    seen: set[tuple[float, float]] = set()
    unique = []
    for t in front:
        if (key := (t.values[0], t.values[1])) not in seen:
            seen.add(key)
            unique.append(t)
    return unique


def pareto_front(study: optuna.Study, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows of :func:`pareto_trials` in ``table`` (default: :func:`trials_table`), in that order."""
    table = trials_table(study) if table is None else table
    numbers = [t.number for t in pareto_trials(study)]
    if not numbers:
        return table.iloc[0:0]
    return table.set_index("number", drop=False).loc[numbers].reset_index(drop=True)


# Optuna's hover text is the trial as JSON (number first, then values, params, all user attrs); only
# the number is read from it, to put the trial's short hover in its place
_HOVER_NUMBER = re.compile(r'^\{<br>\s*"number": (\d+),')
# Optuna names its traces only in the hover's <extra> part: what each of them shows
# ("Trial"/"Best Trial" without "Infeasible Trial": a study without constraints, all trials in one)
_TRACE_NAMES = {"Infeasible Trial": "over budget", "Feasible Trial": "feasible", "Trial": "trials",
                "Best Trial": "Pareto-optimal"}


def _short_hover(trace: go.Scatter, stages: dict[int, str | None]) -> None:
    """Name the trace, and make its hover the trial number, latency, score and stage (which fidelity
    the score has) instead of Optuna's dump of every user attr (the whole config of each trial)."""
    label = re.search(r"<extra>(.*)</extra>", trace.hovertemplate or "")
    name = _TRACE_NAMES.get(label.group(1) if label else "", "trials")
    matches = [_HOVER_NUMBER.match(text) for text in trace.text or ()]
    trace.update(name=name, showlegend=True)
    if name == "over budget":
        trace.marker.symbol = "x"
    if not matches or not all(matches):  # an Optuna whose hover differs: keep its hover
        return
    numbers = [int(m.group(1)) for m in matches]
    trace.update(text=[f"trial {n}" for n in numbers], customdata=[[stages.get(n) or ""] for n in numbers],
                 hovertemplate="%{text}<br>%{x:.2f} ms<br>%{y:.4f}<br>%{customdata[0]}" f"<extra>{name}</extra>")


def fidelity_of(study: optuna.Study) -> str:
    """The fidelity of the study's values (its settings say; "cheap" for a study without settings)."""
    return str((study.user_attrs.get("settings") or {}).get("fidelity", "cheap"))


def pareto_figure(study: optuna.Study, budget_ms: float, title: str) -> go.Figure:
    """Score against predicted latency: infeasible, feasible and Pareto-optimal trials, the front as a
    staircase, the budget line.

    ``plot_pareto_front`` classifies the complete trials by the constraint each one recorded
    (``trial.constraints``; the deprecated ``constraints_func`` is not needed for that) and colours
    them by trial number; ``targets`` puts the latency on x as before."""
    metric = metric_name(study)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # "no feasible trials": the summary says so
    try:
        fig = optuna.visualization.plot_pareto_front(
            study, targets=lambda t: (t.values[1], t.values[0]),
            target_names=["predicted latency (ms)", f"validation {metric} ({fidelity_of(study)} fidelity)"])
    finally:
        optuna.logging.set_verbosity(verbosity)
    stages = {t.number: t.user_attrs.get("stage") for t in study.get_trials(deepcopy=False)}
    for trace in fig.data:
        _short_hover(trace, stages)
    front = pareto_trials(study)
    fig.add_trace(go.Scatter(x=[t.values[1] for t in front], y=[t.values[0] for t in front], mode="lines",
                             name="Pareto front", line={"shape": "hv", "color": "firebrick"}, hoverinfo="skip"))
    recovered = recovered_scores(study)
    if recovered and fidelity_of(study) == "cheap":
        # the top trials of a cheap-fidelity study, recovered after the search: a fidelity of their own
        done = {t.number: t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
        numbers = [n for n in sorted(recovered) if n in done]
        fig.add_trace(go.Scatter(
            x=[done[n].values[1] for n in numbers], y=[recovered[n] for n in numbers], mode="markers",
            name="recovered after the search (top trials)", text=[f"trial {n}" for n in numbers],
            marker={"symbol": "diamond-open", "size": 12, "color": "black"},
            hovertemplate="%{text}<br>%{x:.2f} ms<br>%{y:.4f}<br>recovered<extra>recovered</extra>"))
    fig.add_vline(x=budget_ms, line_dash="dash", annotation_text=f"budget {budget_ms:g} ms")
    # legend above the plot: Optuna's colour bars (trial number) take the right-hand side
    fig.update_layout(title=title, legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return fig


def pareto_plot(study: optuna.Study, budget_ms: float, path: Path, title: str) -> None:
    """:func:`pareto_figure` as a self-contained HTML file (``pareto.html``)."""
    fig = pareto_figure(study, budget_ms, title)
    write_atomic(path, lambda tmp: fig.write_html(tmp, include_plotlyjs=True))


def layer_table(config: CompressionConfig, original: CompressionConfig, *,
                sensitivity: SensitivityTable | None = None, shape: ModelShape | None = None) -> pd.DataFrame:
    """Per block of the winner: heads and units kept of the original, bits and ranks per Linear; with a
    ``sensitivity`` table (and the model's ``shape``), the measured single-knob damage of every level the
    winner chose, by knob type (``damage_heads``, ``damage_mlp``, ``damage_bits``, ``damage_rank``) and
    their sum (``damage``): why this layer got this allocation."""
    rows = []
    groups = [("encoder", config.blocks, original.blocks), ("decoder", config.decoder_blocks, original.decoder_blocks)]
    for part, blocks, orig in groups:
        for i, (b, o) in enumerate(zip(blocks, orig)):
            row = {"part": part, "block": i, "heads": b.heads, "heads_of": o.heads, "mlp_hidden": b.mlp_hidden,
                   "mlp_of": o.mlp_hidden, "merge_tokens": b.merge_tokens}
            for k in b.ranks:
                live = k in b.live_linears()
                row[f"{k}_bits"] = b.weight_bits[k] if live else None
                row[f"{k}_rank"] = b.ranks[k] if live else None
            rows.append(row)
    table = pd.DataFrame(rows)
    if sensitivity is not None and shape is not None:
        damage: dict[tuple[str, str], float] = {}
        for label, knob, level in config_levels(shape, config, sensitivity.task):
            d = sensitivity.damage(label, knob, level)
            key = (label, knob_type(knob))
            damage[key] = damage.get(key, 0.0) + (d if d is not None else math.nan)
        labels = [("b" if part == "encoder" else "d") + str(i) for part, i in zip(table["part"], table["block"])]
        for t in ("heads", "mlp", "bits", "rank"):
            table[f"damage_{t}"] = [damage.get((label, t), 0.0) for label in labels]
        table["damage"] = table[[f"damage_{t}" for t in ("heads", "mlp", "bits", "rank")]].sum(axis=1)
        if table["merge_tokens"].any():  # measured alone at the teacher's token count: shown, not summed
            table["damage_merge"] = [0.0 if r == 0 else sensitivity.damage(label, "merge", r)
                                     for label, r in zip(labels, table["merge_tokens"])]
    return table


def layer_plot(table: pd.DataFrame, path: Path, title: str) -> None:
    """Per block: share of heads and MLP units kept, weight bits and SVD rank per Linear, and (when the
    table has them) the sensitivity table's damage of the chosen levels."""
    label = table["part"].str[0] + table["block"].astype(str)
    panels = ["kept share", "weight bits", "SVD rank (empty: dense)"]
    has_damage = "damage" in table
    merging = "merge_tokens" in table and bool(table["merge_tokens"].any())
    if merging:
        panels.append("tokens merged after the attention")
    if has_damage:
        panels.append("measured single-knob damage of the chosen levels")
    fig = make_subplots(rows=len(panels), cols=1, subplot_titles=panels, vertical_spacing=0.08)
    fig.add_trace(go.Bar(x=label, y=table["heads"] / table["heads_of"], name="heads"), row=1, col=1)
    fig.add_trace(go.Bar(x=label, y=table["mlp_hidden"] / table["mlp_of"], name="MLP units"), row=1, col=1)
    for k in ("qkv", "proj", "fc1", "fc2"):
        fig.add_trace(go.Bar(x=label, y=table[f"{k}_bits"], name=f"{k} bits"), row=2, col=1)
        fig.add_trace(go.Bar(x=label, y=table[f"{k}_rank"], name=f"{k} rank"), row=3, col=1)
    if merging:
        fig.add_trace(go.Bar(x=label, y=table["merge_tokens"], name="tokens merged"), row=4, col=1)
    if has_damage:
        for t in ("heads", "mlp", "bits", "rank", "merge"):
            if f"damage_{t}" in table:
                fig.add_trace(go.Bar(x=label, y=table[f"damage_{t}"], name=f"damage: {t}"), row=len(panels), col=1)
    fig.update_layout(title=title, barmode="group", height=300 * len(panels))
    write_atomic(path, lambda tmp: fig.write_html(tmp, include_plotlyjs=True))


def write_tables(study: optuna.Study, out_dir: Path) -> pd.DataFrame:
    """``trials.csv`` and ``trials.parquet`` (all trials); returns the table."""
    df = trials_table(study)
    write_atomic(out_dir / "trials.csv", lambda tmp: df.to_csv(tmp, index=False))
    write_atomic(out_dir / "trials.parquet", lambda tmp: df.to_parquet(tmp, index=False))
    return df
