"""A grid's report folder: ``results.csv``, the summary table, ``README.md`` and the figure.

``results.csv`` has one row per cell: ``cell``, ``variant`` ("" when the grid has none), every
notebook parameter, ``status`` (ok / failed / pending), ``error`` (one line), ``seconds`` (the
notebook's wall time), the test metrics ``mrr mr hits@1 hits@3 hits@10`` (fractions, MR a rank),
``self_answer`` (the share of test queries answered with the asked entity), ``valid_mrr`` and
``valid_self_answer``, ``epochs_run``, ``best_epoch``, ``train_seconds``, ``device_used`` (metrics.json's
``device``, e.g. cuda:0 for ``device=auto``), the paths of the executed ``notebook`` ("" for a
train grid) and of the ``run_dir``, and ``random_mrr`` ... ``random_hits@10``: what a random
ranking scores on the same test split (:func:`afme_lib.engine.evaluation.random_baseline`), the yardstick
each table states. ``README.md`` is regenerated on every run; a ``## Reading`` section written by
hand below the tables is carried over (:func:`afme_lib.experiments.pages.writer.write_page`).

:func:`summarize` groups the ``ok`` rows and gives, per group and metric, the mean and the sample
standard deviation over the replicate axis (``seed``):

    mean = (1/n) sum_i x_i,    std = sqrt( sum_i (x_i - mean)^2 / (n - 1) )   (NaN when n = 1)
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pandas as pd

from afme_lib.analysis.figures import save_figure
from afme_lib.analysis.tables import mean_std_figure
from afme_lib.core import atomic
from afme_lib.core.console import display_path
from afme_lib.core.errors import AfmeError
from afme_lib.core.metric_names import PERCENT, RANK_METRICS, TABLE_METRICS, label
from afme_lib.experiments.grid.spec import DEFAULT_METRICS, RESULT_COLUMNS, Cell, Grid
from afme_lib.experiments.pages.writer import write_page

RESULTS = "results.csv"
README = "README.md"
FIGURE = "test-metrics"


# --- rows -------------------------------------------------------------------------------------
def _cell_value(value):
    """Scalars as they are; lists and dicts as compact JSON (one CSV field)."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return value


def cell_row(
    cell: Cell,
    grid: Grid,
    status: str,
    error: str | None,
    seconds,
    metrics: dict | None,
    notebook: Path | None,
    run_dir: Path,
) -> dict:
    """The results.csv row of one cell (metrics None for pending / failed cells)."""
    ordered = list(cell.axes) + [k for k in cell.params if k not in cell.axes]
    row = {"cell": cell.id, "variant": cell.variant or ""}
    row.update({k: _cell_value(cell.params[k]) for k in ordered})
    metrics = metrics or {}
    test, valid = metrics.get("test") or {}, metrics.get("valid") or {}
    row.update(status=status, error=error or "", seconds=seconds)
    row.update({m: test.get(m, math.nan) for m in TABLE_METRICS})
    row.update(
        valid_mrr=valid.get("mrr", math.nan),
        valid_self_answer=valid.get("self_answer", math.nan),
        epochs_run=metrics.get("epochs_run"),
        best_epoch=metrics.get("best_epoch"),
        train_seconds=metrics.get("train_seconds"),
        device_used=metrics.get("device", ""),
        notebook=display_path(notebook) if notebook else "",
        run_dir=display_path(run_dir),
    )
    random = test.get("random") or {}
    row.update({f"random_{m}": random.get(m, math.nan) for m in RANK_METRICS})
    return row


def write_results(report_dir: Path, rows: list[dict]) -> Path:
    path = Path(report_dir) / RESULTS
    frame = pd.DataFrame(rows)
    for col in ("epochs_run", "best_epoch"):  # integers with gaps, not 3.0
        frame[col] = pd.to_numeric(frame[col]).astype("Int64")
    with atomic.replacing(path) as tmp:  # a reader (or a kill) never sees half a file
        frame.to_csv(tmp, index=False)
    return path


def read_results(report_dir: str | Path) -> pd.DataFrame:
    """``<report_dir>/results.csv`` as a DataFrame (``variant`` and ``error`` "" where empty)."""
    path = Path(report_dir) / RESULTS
    if not path.is_file():
        raise AfmeError(f"{path} not found: run the grid first (`afme grid run GRID.yaml`)")
    text_columns = ("variant", "error", "device_used", "notebook")
    frame = pd.read_csv(path, dtype={c: str for c in text_columns})
    for col in text_columns:
        if col in frame:
            frame[col] = frame[col].fillna("")
    return frame


# --- summary ----------------------------------------------------------------------------------
def parameter_columns(results: pd.DataFrame) -> list[str]:
    return [c for c in results.columns if c not in RESULT_COLUMNS]


def default_group_columns(results: pd.DataFrame, over: str = "seed") -> list[str]:
    """``variant`` (when it varies) then each parameter that still varies inside the groups so far.

    A parameter that a variant fixes (``model`` in a grid of model variants) is constant within
    the variant groups and is left out, so groups are neither split twice nor labelled twice.
    """
    by: list[str] = []
    for col in ["variant"] + parameter_columns(results):
        if col == over or col not in results:
            continue
        values = results[col].astype(str)
        varies = values.nunique() > 1 if not by else (values.groupby([results[b] for b in by]).nunique() > 1).any()
        if varies:
            by.append(col)
    return by


def summarize(results: pd.DataFrame, by=None, metrics=None, over: str = "seed") -> pd.DataFrame:
    """Mean and sample std of each metric per group, over the ``ok`` rows (fractions as stored).

    ``by``: grouping columns; None chooses them (:func:`default_group_columns`): ``variant`` and
    the varying parameters except ``over``. ``metrics``: default the grid's usual three.
    Returns one row per group in first-appearance (grid) order, indexed by ``by`` (a single row
    ``all`` when nothing varies), with columns ``n`` (finished cells), ``cells`` (all cells),
    ``<metric>_mean`` / ``<metric>_std`` and ``random_<metric>`` (the random-ranking baseline of
    the group's test split; NaN when its runs did not record it).
    """
    metrics = list(metrics or [m for m in DEFAULT_METRICS if m in results])
    unknown = [m for m in metrics if m not in results]
    if unknown:
        raise ValueError(
            f"results have no column {unknown}; metric columns: {[m for m in TABLE_METRICS if m in results]}"
        )
    by = default_group_columns(results, over) if by is None else list(by)
    missing = [b for b in by if b not in results]
    if missing:
        raise ValueError(f"results have no column {missing} to group by; columns: {list(results.columns)}")
    groups = results.groupby(by, sort=False, dropna=False) if by else [("all", results)]
    rows = []
    for key, group in groups:
        ok = group[group["status"] == "ok"]
        row = dict(zip(by, key if isinstance(key, tuple) else (key,))) if by else {"group": "all"}
        row.update(n=len(ok), cells=len(group))
        for m in metrics:
            values = pd.to_numeric(ok[m], errors="coerce")
            row[f"{m}_mean"] = values.mean() if len(ok) else math.nan
            row[f"{m}_std"] = values.std(ddof=1) if len(ok) > 1 else math.nan
            random = pd.to_numeric(ok[f"random_{m}"], errors="coerce") if f"random_{m}" in ok else None
            row[f"random_{m}"] = random.mean() if random is not None and random.notna().any() else math.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index(by or ["group"])


def mean_std_text(metric: str, mean: float, std: float) -> str:
    """``mean ± std`` as the tables show ``metric``: in % with 2 decimals (MR a rank, 1 decimal);
    no ``± std`` when std is NaN (one value), "–" when the mean is (no value)."""
    if mean != mean:  # NaN: no finished cell in the group
        return "–"
    scale, digits = (100, 2) if metric in PERCENT else (1, 1)
    text = f"{scale * mean:.{digits}f}"
    return text if std != std else f"{text} ± {scale * std:.{digits}f}"


def mean_std_of(values, metric: str = "mrr") -> str:
    """:func:`mean_std_text` of a run column (or any values): their mean and sample std over seeds."""
    values = pd.Series(list(values), dtype=float)
    return mean_std_text(metric, values.mean(), values.std(ddof=1))


def markdown_table(summary: pd.DataFrame, metrics, over: str = "seed") -> list[str]:
    """Mean ± std per group, in % (MR as a rank); the count column shows ok/all when some failed.

    Below the groups, the random-ranking baseline (:func:`random_rows`)."""
    names = [n for n in summary.index.names]
    count = "seeds" if over == "seed" else "cells ok"
    header = names + [count] + [label(m) + (" (%)" if m in PERCENT else "") for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, row in summary.iterrows():
        keys = key if isinstance(key, tuple) else (key,)
        n = f"{int(row['n'])}" if row["n"] == row["cells"] else f"{int(row['n'])}/{int(row['cells'])}"
        cells = [str(k).replace("|", "\\|") for k in keys] + [n]
        cells += [mean_std_text(m, row[f"{m}_mean"], row[f"{m}_std"]) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + random_rows(summary, metrics)


def random_rows(summary: pd.DataFrame, metrics) -> list[str]:
    """Table rows of the random-ranking baseline: one ``random ranking`` row when every group
    ranks the same test split, else one per group (``random ranking (group)``); none when no
    run recorded it."""
    columns = [f"random_{m}" for m in metrics]
    if not all(c in summary for c in columns):
        return []
    known = summary[columns].dropna()
    if known.empty:
        return []
    width = len(summary.index.names)
    pad = [""] * (width - 1) + ["–"]
    if len(known.drop_duplicates()) == 1:
        labelled = [("random ranking", known.iloc[0])]
    else:
        labelled = [
            (f"random ranking ({', '.join(map(str, key if isinstance(key, tuple) else (key,)))})", row)
            for key, row in known.iterrows()
        ]
    return [
        "| " + " | ".join([name, *pad] + [mean_std_text(m, row[f"random_{m}"], math.nan) for m in metrics]) + " |"
        for name, row in labelled
    ]


# --- figure -----------------------------------------------------------------------------------
def write_figure(summary: pd.DataFrame, metrics, folder: Path, title: str) -> list[Path]:
    """Grouped bars of the summary (mean, error bar = std, in %), MR left out (another scale).

    Drawn by :func:`afme_lib.analysis.tables.mean_std_figure` and written by
    :func:`afme_lib.analysis.figures.save_figure` (the notebooks' own helpers):
    ``<folder>/test-metrics.html`` (plotly.js shared once under ``reports/assets/``), plus a PNG
    when kaleido works. Nothing (and no error) without plotly.
    """
    shown = [m for m in metrics if m != "mr"]
    if not shown or summary.empty:
        return []
    if importlib.util.find_spec("plotly") is None:
        return []
    return save_figure(mean_std_figure(summary, shown, title=title), Path(folder) / FIGURE)


# --- README -----------------------------------------------------------------------------------
def write_readme(
    report_dir: Path,
    grid: Grid,
    results: pd.DataFrame,
    command: str | None,
    runs_dir: Path | None = None,
    figures: list[Path] | None = None,
) -> Path:
    """``<report_dir>/README.md``: how it was made, the spec, the mean ± std table, failures."""
    report_dir = Path(report_dir)
    metrics = [m for m in grid.metrics if m in results]
    counts = results["status"].value_counts()
    lines = [f"# Grid `{grid.name}`", ""]
    if grid.description:
        lines += [grid.description, ""]
    if grid.runs_notebooks:
        what = (
            f"Each cell executes `{display_path(grid.notebook)}` with papermill; the executed copies are in "
            "`notebooks/`, one row per cell is in `results.csv`"
        )
    else:
        what = "Each cell is one training run (`target: train`, afme_lib/experiments/grid/target.py); one row per cell is in `results.csv`"
    lines += [
        f"Made by `{command or f'afme grid run GRID.yaml  # {grid.name}'}` (rerun it to resume: finished cells are "
        f"skipped, failed ones retried). {what}, the spec is in `grid.yaml`"
        + (f", the run folders are under `{display_path(runs_dir)}/`." if runs_dir else "."),
        "",
    ]
    # values as Python literals (as papermill injects them into a notebook)
    fixed = ", ".join(f"`{k}={v!r}`" for k, v in grid.parameters.items()) or "none"
    lines.append(f"- fixed parameters: {fixed}")
    if grid.grid:
        axes = "; ".join(f"`{k}` in {{{', '.join(repr(v) for v in vals)}}}" for k, vals in grid.grid.items())
        lines.append(f"- grid: {axes}")
    if grid.variants:
        parts = [
            f"{name} ({', '.join(f'`{k}={v!r}`' for k, v in o.items()) or 'as fixed'})"
            for name, o in grid.variants.items()
        ]
        lines.append(f"- variants: {'; '.join(parts)}")
    status = ", ".join(f"{int(counts.get(s, 0))} {s}" for s in ("ok", "failed", "pending"))
    lines += [f"- cells: {len(results)} ({status})", ""]

    lines += ["## Test metrics: mean ± std over seeds", ""]
    if counts.get("ok", 0):
        summary = summarize(results, metrics=metrics)
        lines += markdown_table(summary, metrics)
        lines += [
            "",
            "Filtered ranking on the test split with each run's best-valid checkpoint, realistic ties; "
            "metrics in % except MR; std is the sample standard deviation (n-1) over the finished cells "
            "of a group (n/m in the count column when only n of its m cells finished). *Random ranking*: "
            "what a model scores when it puts each query's answer at a uniformly random place among its "
            "filtered candidates (expected value, exact; `afme_lib.engine.evaluation.random_baseline`).",
        ]
    else:
        lines.append("No cell has finished yet.")
    for fig in figures or []:
        rel = fig.relative_to(report_dir)
        if fig.suffix == ".png":
            lines += ["", f"![test metrics]({rel})"]
        else:
            lines += [
                "",
                f"Figure: [`{rel}`]({rel}) (interactive; opens offline with the shared `reports/assets/plotly.min.js`).",
            ]

    failed = results[results["status"] == "failed"]
    if len(failed):
        lines += ["", "## Failed cells", "", "| cell | error | notebook |", "|---|---|---|"]
        for _, row in failed.iterrows():
            nb = Path(row["notebook"]).name
            link = f"[{nb}](notebooks/{nb})" if (report_dir / "notebooks" / nb).is_file() else "–"
            error = str(row["error"]).replace("|", "\\|")
            lines.append(f"| `{row['cell']}` | {error} | {link} |")
    pending = results[results["status"] == "pending"]
    if len(pending):
        lines += [
            "",
            f"## Pending cells ({len(pending)})",
            "",
            "Not run yet (interrupted or not selected): " + ", ".join(f"`{c}`" for c in pending["cell"]),
        ]
    return write_page(report_dir / README, lines)  # keeps the page's hand-written reading
