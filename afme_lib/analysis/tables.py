"""Metric tables in percent, aggregation over seeds, and bar charts.

Metrics arrive as fractions (:func:`afme_lib.engine.evaluation.evaluate`, ``metrics.json``); tables show
MRR and Hits@k in % (x100) and MR as a rank. Aggregation over seeds uses the sample standard
deviation (ddof = 1), so a group with one run has std NaN rather than a misleading 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from afme_lib.core.metric_names import LABELS, PERCENT, label


def _row(values: Mapping, percent: bool) -> dict:
    row = {}
    for key, shown in LABELS.items():
        if key in values:
            value = values[key]
            row[shown] = (
                round(100 * value, 2) if percent and key in PERCENT else (round(value, 2) if key == "mr" else value)
            )
    return row


def metrics_table(metrics: Mapping, split: str = "test", percent: bool = True) -> pd.DataFrame:
    """Rows "all", "tail", "head" and each relation category of one split; columns MRR, MR,
    Hits@1/3/10 (in % when ``percent``) and the number of queries.

    ``metrics`` is a run's ``metrics.json`` (with "valid" / "test") or one evaluate() result.
    """
    result = metrics[split] if split in metrics else metrics
    rows = [{"group": "all", "part": "all", **_row(result, percent)}]
    rows += [{"group": "side", "part": side, **_row(v, percent)} for side, v in result.get("by_side", {}).items()]
    rows += [{"group": "category", "part": cat, **_row(v, percent)} for cat, v in result.get("by_category", {}).items()]
    return pd.DataFrame(rows).set_index(["group", "part"])


def models_table(metrics: Mapping[str, Mapping], split: str = "test", percent: bool = True) -> pd.DataFrame:
    """One row per model (``{name: metrics.json}``: pooled head and tail queries of ``split``) and
    a last row, ``random ranking``, with the expected metrics of a uniformly random ranking of
    the same queries (every run of one dataset and split shares it)."""
    rows = {name: _row(m[split], percent) for name, m in metrics.items()}
    if metrics:
        rows["random ranking"] = _row(next(iter(metrics.values()))[split]["random"], percent)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def models_figure(table: pd.DataFrame, title: str = ""):
    """Grouped bars of a :func:`models_table`: one group per metric in %, one bar per model."""
    import plotly.graph_objects as go

    shown = [label(m) for m in PERCENT if m != "self_answer" and label(m) in table]
    fig = go.Figure([go.Bar(name=str(name), x=shown, y=row[shown].tolist()) for name, row in table.iterrows()])
    return fig.update_layout(barmode="group", title=title or "test metrics by model", yaxis_title="%")


def mean_std(results: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per group of ``by``: ``n`` (rows) and ``<metric>_mean`` / ``<metric>_std`` of each metric
    column -- the layout of :func:`afme_lib.experiments.grid.summarize`, so both feed the two functions below.

    The groups keep their first-appearance order (a grid's variants stay in the order written).
    """
    by = list(by)
    grouped = results.groupby(by, sort=False)
    out = pd.DataFrame({"n": grouped.size()})
    for metric in metrics:
        out[f"{metric}_mean"] = grouped[metric].mean()
        out[f"{metric}_std"] = grouped[metric].std(ddof=1)
    return out


def format_mean_std(
    summary: pd.DataFrame, metrics: Sequence[str], percent: bool = True, digits: int = 2
) -> pd.DataFrame:
    """``"mean ± std"`` strings per metric (x100 for MRR / Hits@k when ``percent``; "± n/a" for
    one run) from a :func:`mean_std` / ``grid.summarize`` table."""
    out = pd.DataFrame(index=summary.index)
    if "n" in summary:
        out["runs"] = summary["n"]
    for metric in metrics:
        scale = 100.0 if percent and metric in PERCENT else 1.0
        mean, std = summary[f"{metric}_mean"] * scale, summary[f"{metric}_std"] * scale
        out[label(metric)] = [
            f"{m:.{digits}f} ± {s:.{digits}f}" if pd.notna(s) else f"{m:.{digits}f} ± n/a" for m, s in zip(mean, std)
        ]
    return out


def mean_std_figure(summary: pd.DataFrame, metrics: Sequence[str], percent: bool = True, title: str = ""):
    """Grouped bars: one group per metric, one bar per row of ``summary`` (error bars: std)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    labels = [label(m) for m in metrics]
    for key, row in summary.iterrows():
        name = " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)
        scale = [100.0 if percent and m in PERCENT else 1.0 for m in metrics]
        fig.add_trace(
            go.Bar(
                name=name,
                x=labels,
                y=[row[f"{m}_mean"] * s for m, s in zip(metrics, scale)],
                error_y={
                    "type": "data",
                    "array": [
                        (row[f"{m}_std"] if pd.notna(row[f"{m}_std"]) else 0.0) * s for m, s in zip(metrics, scale)
                    ],
                },
            )
        )
    fig.update_layout(
        barmode="group",
        title=title or "mean ± std over seeds",
        yaxis_title="%" if percent and any(m in PERCENT for m in metrics) else "",
    )
    return fig
