"""Robustness curves: filtered MRR as modality noise or missingness rises.

Two settings (features are per entity, so there is no separate "test" copy of a feature row):

- **test time**: a model trained on the clean features is evaluated with corrupted ones
  (:func:`curve_test_time`): a shift the model never saw. Its weights are untouched
  (:func:`~afme_lib.analysis.corruption.with_features`).
- **train time**: the features are corrupted before training and stay so for evaluation
  (:func:`afme_lib.experiments.comparisons.curve_train_time`, which trains, so it lives above analysis; it writes
  the corrupted features with :func:`corrupted_feature_folder`): can the model learn to discount
  a degraded modality?

Levels: for ``noise``, the noise std in units of each feature's own std (0 = clean); for
``missing``, the share of measured rows dropped (0 = clean, 1 = modality gone).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from afme_lib.analysis.corruption import corrupt, with_features
from afme_lib.core import atomic
from afme_lib.core.metric_names import RANK_METRICS
from afme_lib.data.dataset import KGDataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.filters import FilterIndex
from afme_lib.engine.evaluation import evaluate

COLUMNS = ["kind", "level", "seed", *RANK_METRICS]


def curve_test_time(
    model,
    dataset: KGDataset,
    store: FeatureStore,
    kind: str,
    levels,
    modalities=None,
    seeds=(0,),
    split: str = "test",
    filter_index: FilterIndex | None = None,
    batch_size: int = 256,
) -> pd.DataFrame:
    """One row per (level, corruption seed): the trained ``model`` evaluated on ``split`` with
    ``corrupt(store, kind, level, modalities, seed)`` in place of its features."""
    index = filter_index if filter_index is not None else FilterIndex.from_dataset(dataset)
    rows = []
    for level in levels:
        for seed in seeds if level > 0 else seeds[:1]:  # level 0 is the clean store: one evaluation
            probe = with_features(model, corrupt(store, kind, level, modalities, seed))
            result = evaluate(probe, dataset, split, filter_index=index, batch_size=batch_size)
            rows.append({"kind": kind, "level": float(level), "seed": seed, **{k: result[k] for k in RANK_METRICS}})
            del probe
    return pd.DataFrame(rows, columns=COLUMNS)


def corrupted_feature_folder(
    store: FeatureStore,
    root: str | Path,
    dataset_name: str,
    kind: str,
    level: float,
    modalities=None,
    seed: int = 0,
    source: str = "",
) -> Path:
    """Write ``corrupt(store, ...)`` as a feature folder under ``root`` (named by a hash of its
    inputs, written once, reused after) and return it. ``source`` (the clean feature folder)
    enters the hash so two datasets never share a folder."""
    key = json.dumps(
        {
            "source": source,
            "name": dataset_name,
            "kind": kind,
            "level": float(level),
            "modalities": modalities,
            "seed": seed,
        },
        sort_keys=True,
    )
    folder = Path(root) / f"{kind}-{level:g}-seed{seed}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"

    def write(tmp: Path) -> None:
        corrupt(store, kind, level, modalities, seed).save(tmp, dataset_name)
        (tmp / "corruption.json").write_text(key + "\n")  # written last: marks the folder complete

    return atomic.publish_folder(folder, write, lambda path: (path / "corruption.json").is_file())


def summarize_curves(curves: pd.DataFrame, by=("variant", "phase", "kind", "level")) -> pd.DataFrame:
    """Mean and sample std (ddof 1; NaN for a single seed) of MRR and Hits@10 per curve point."""
    keys = [k for k in by if k in curves.columns]
    grouped = curves.groupby(keys, sort=False)
    return grouped.agg(
        mrr=("mrr", "mean"), mrr_std=("mrr", "std"), hits10=("hits@10", "mean"), runs=("mrr", "size")
    ).reset_index()


def robustness_figure(curves: pd.DataFrame):
    """MRR (%) against corruption level: one panel per kind, a colour per variant, solid lines
    for test-time and dashed for train-time corruption; error bars are the std over seeds."""
    import plotly.express as px

    summary = summarize_curves(curves)
    summary["MRR (%)"] = 100 * summary["mrr"]
    summary["std (%)"] = 100 * summary["mrr_std"].fillna(0.0)
    fig = px.line(
        summary,
        x="level",
        y="MRR (%)",
        error_y="std (%)",
        color="variant" if "variant" in summary else None,
        line_dash="phase" if "phase" in summary else None,
        facet_col="kind" if "kind" in summary else None,
        markers=True,
        title="Filtered test MRR as modality features degrade",
        labels={"level": "corruption level (noise: x feature std; missing: share of measured rows dropped)"},
    )
    fig.update_xaxes(matches=None)
    fig.for_each_annotation(lambda a: a.update(text=a.text.replace("kind=", "")))
    return fig


def degradation(curves: pd.DataFrame) -> pd.DataFrame:
    """Per (phase, kind, variant): MRR (%) at level 0, at the highest level, and the change in
    points (highest minus clean; negative = the model lost accuracy). Means over seeds."""
    keys = [k for k in ("phase", "kind", "variant") if k in curves.columns]
    means = curves.groupby([*keys, "level"], sort=False)["mrr"].mean().reset_index()
    top = means.loc[means.groupby(keys, sort=False)["level"].idxmax()].set_index(keys)
    clean = means[means["level"] == 0].set_index(keys)
    out = pd.DataFrame(
        {"clean MRR %": 100 * clean["mrr"], "highest level": top["level"], "MRR % there": 100 * top["mrr"]}
    )
    out["change (points)"] = out["MRR % there"] - out["clean MRR %"]
    # rows grouped by phase, then kind, then variant, each in order of first appearance
    rank = {k: {v: i for i, v in enumerate(pd.unique(curves[k]))} for k in keys}
    order = sorted(out.index, key=lambda key: tuple(rank[k][v] for k, v in zip(keys, key if len(keys) > 1 else (key,))))
    return out.loc[order]


def mrr_table(curves: pd.DataFrame) -> pd.DataFrame:
    """MRR (%) per (phase, kind, level) row and variant column, means over the corruption seeds."""
    table = summarize_curves(curves)
    table = table.assign(**{"MRR %": (100 * table["mrr"]).round(2)})
    keys = [k for k in ("phase", "kind", "level") if k in table]
    return table.pivot_table(index=keys, columns="variant", values="MRR %", sort=False)
