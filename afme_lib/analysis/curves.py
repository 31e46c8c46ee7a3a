"""Learning curves from a run folder's ``log.jsonl`` (one line per epoch, see :mod:`afme_lib.engine.run_folder`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from afme_lib.engine.run_folder import read_log

_NOT_LOSSES = {"epoch", "seconds", "valid", "stopped_early", "error"}


def learning_curves(run_dir: str | Path) -> pd.DataFrame:
    """One row per logged epoch: ``epoch``, every loss term (``loss``, ``kgc``, ``critic`` ...),
    ``seconds`` and ``valid <metric>`` columns (NaN on epochs without validation)."""
    records = [r for r in read_log(Path(run_dir)) if "error" not in r]
    rows = []
    for rec in records:
        row = {"epoch": rec["epoch"], "seconds": rec.get("seconds")}
        row.update({k: v for k, v in rec.items() if k not in _NOT_LOSSES and isinstance(v, (int, float))})
        for metric, value in (rec.get("valid") or {}).items():
            row[f"valid {metric}"] = value
        rows.append(row)
    return pd.DataFrame(rows)


def loss_columns(curves: pd.DataFrame) -> list[str]:
    return [c for c in curves.columns if c not in ("epoch", "seconds") and not c.startswith("valid ")]


def learning_curve_figure(curves: pd.DataFrame, title: str = "Learning curves"):
    """Two panels: the loss terms per epoch, and validation MRR / Hits@10 / self-answers (in %) when logged."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss terms", "validation (filtered, %)"))
    for column in loss_columns(curves):
        fig.add_trace(go.Scatter(x=curves["epoch"], y=curves[column], mode="lines+markers", name=column), 1, 1)
    for column, name in (
        ("valid mrr", "valid MRR"),
        ("valid hits@10", "valid Hits@10"),
        ("valid self_answer", "valid self-answers"),
    ):
        if column in curves:
            logged = curves.dropna(subset=[column])
            fig.add_trace(go.Scatter(x=logged["epoch"], y=100 * logged[column], mode="lines+markers", name=name), 1, 2)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title=title)
    return fig
