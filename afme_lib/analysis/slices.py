"""Test MRR by slice of a synthetic graph, beside the oracles: where a model wins and where it fails.

Slices of a split's queries (both sides of every triple; a query belongs to its triple's slices):

- ``"all"``: every query;
- ``"<group>/<kind>"`` (:func:`~afme_lib.data.synthetic_oracle.slice_labels`): the triple's entity
  group (warm / cold / zero-shot) and its relation kind (attribute / structural), e.g.
  ``"cold/attribute"``: only the item's features can answer these;
- ``"cold/attribute/<state>"`` (:func:`~afme_lib.data.synthetic_oracle.stress_labels`): the cold
  attribute queries split by the item's row in the relation's informative modality, ``clean``,
  ``corrupted`` (the slice denoising exists for) or ``missing`` (the slice MoIEn exists for).

MRR of a slice S with ranks r (tail and head queries pooled)::

    MRR(S) = mean over triples i in S and sides s of 1 / r_s(i)

Reference rows (:func:`reference_rows`): the rule oracle and the feature oracle (reading every
modality that encodes the relation's attribute; NaN on structural slices, where it has no
answer) of :mod:`afme_lib.data.synthetic_oracle`, and the random ranking (:func:`random_mrr`:
each target at a uniformly random place among its filtered candidates).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from afme_lib.core.ablations import COLD_ATTRIBUTE
from afme_lib.core.ranking import expected_uniform_metrics
from afme_lib.data.dataset import KGDataset
from afme_lib.data.filters import FilterIndex
from afme_lib.data.synthetic_oracle import SIDES, feature_oracle_ranks, oracle_ranks, slice_labels, stress_labels
from afme_lib.engine.evaluation import evaluate, filtered_candidates

STATES = ("clean", "corrupted", "missing")
GROUP_ORDER = ("warm", "cold", "zero-shot")  # table order; other groups follow, alphabetically
KIND_ORDER = ("structural", "attribute")
RULE, FEATURES, RANDOM = "rule oracle", "feature oracle", "random ranking"


def slice_masks(dataset: KGDataset, meta: dict, split: str = "test") -> dict[str, np.ndarray]:
    """``{slice: bool [n] over the split's triples}`` for every slice with a triple, in table
    order: all, then group by group (structural before attribute), each cold attribute state
    right after ``cold/attribute``."""
    labels = slice_labels(dataset, meta, split)
    masks = {"all": np.ones(len(labels), dtype=bool)}
    present = set(labels.tolist())
    groups = [g for g in GROUP_ORDER if any(p.startswith(g + "/") for p in present)]
    groups += sorted({p.split("/")[0] for p in present} - set(groups))
    for group in groups:
        for kind in KIND_ORDER:
            label = f"{group}/{kind}"
            if label in present:
                masks[label] = labels == label
                if label == COLD_ATTRIBUTE:
                    states = stress_labels(dataset, meta, split)
                    for state in STATES:
                        mask = masks[label] & (states == state)
                        if mask.any():
                            masks[f"{label}/{state}"] = mask
    return masks


def slice_mrr(ranks: dict, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """MRR (a fraction) of every slice; ``ranks`` is ``{"tail": [n], "head": [n]}`` in the split's
    order (as :func:`~afme_lib.engine.evaluation.evaluate` returns them). NaN ranks (no answer from that
    ranker) are left out; a slice left empty gets NaN."""
    reciprocal = np.stack([1.0 / np.asarray(ranks[s], dtype=np.float64) for s in SIDES])  # [2, n]
    out = {}
    for label, mask in masks.items():
        values = reciprocal[:, mask].ravel()
        values = values[~np.isnan(values)]
        out[label] = float(values.mean()) if len(values) else float("nan")
    return out


def slice_counts(masks: dict[str, np.ndarray]) -> dict[str, int]:
    """Queries per slice (two per triple)."""
    return {label: 2 * int(mask.sum()) for label, mask in masks.items()}


@torch.no_grad()
def model_ranks(model, dataset: KGDataset, split: str = "test", filter_index: FilterIndex | None = None) -> dict:
    """Filtered realistic ranks of every query of ``split`` under ``model`` (``{side: ndarray}``)."""
    result = evaluate(model, dataset, split, filter_index=filter_index, return_ranks=True, progress=False)
    return result["ranks"]


def random_mrr(
    dataset: KGDataset, masks: dict[str, np.ndarray], split: str = "test", filter_index: FilterIndex | None = None
) -> dict[str, float]:
    """The MRR (a fraction) a random ranking expects on every slice: each target at a uniformly
    random rank among its filtered candidates (:func:`~afme_lib.engine.evaluation.filtered_candidates`,
    :func:`~afme_lib.core.ranking.expected_uniform_metrics`; the same as
    :func:`~afme_lib.engine.evaluation.random_baseline` with ``triples_mask`` set to the slice)."""
    candidates = filtered_candidates(dataset, split, filter_index)
    return {
        label: expected_uniform_metrics(torch.cat([candidates[s][torch.from_numpy(mask)] for s in SIDES]))["mrr"]
        for label, mask in masks.items()
    }


def reference_rows(
    dataset: KGDataset,
    store,
    meta: dict,
    masks: dict[str, np.ndarray],
    split: str = "test",
    filter_index: FilterIndex | None = None,
) -> dict[str, dict[str, float]]:
    """Slice MRRs of the rule oracle, the feature oracle (no feature store: left out) and the random ranking."""
    index = filter_index if filter_index is not None else FilterIndex.from_dataset(dataset)
    rows = {RULE: slice_mrr(oracle_ranks(dataset, meta, split, index), masks)}
    if store is not None:
        rows[FEATURES] = slice_mrr(feature_oracle_ranks(dataset, store, meta, None, split, index), masks)
    rows[RANDOM] = random_mrr(dataset, masks, split, index)
    return rows


def slice_table(rows: dict[str, dict[str, float]], counts: dict[str, int] | None = None) -> pd.DataFrame:
    """Rows (models, then references) x slices, MRR in %; with ``counts`` a last row of queries."""
    table = pd.DataFrame.from_dict(rows, orient="index") * 100
    table.index.name = "MRR %"
    if counts is not None:
        table.loc["queries"] = pd.Series(counts, dtype=float)
    return table.round(2)


def markdown(table: pd.DataFrame, digits: int = 2) -> list[str]:
    """A table as Markdown lines: numbers with ``digits`` decimals (NaN as an en dash, the
    ``queries`` row as integers), anything else as its text."""

    def cell(row, value):
        if isinstance(value, str):
            return value
        if pd.isna(value):
            return "–"
        return f"{int(value)}" if row == "queries" else f"{value:.{digits}f}"

    lines = [
        f"| {table.index.name or ''} | " + " | ".join(map(str, table.columns)) + " |",
        "|---|" + "---:|" * len(table.columns),
    ]
    lines += [f"| {row} | " + " | ".join(cell(row, v) for v in values) + " |" for row, values in table.iterrows()]
    return lines


def slice_figure(table: pd.DataFrame, title: str = "Test MRR by slice"):
    """Grouped bars: one group per slice, one bar per row of :func:`slice_table` (queries left out)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, row in table.drop(index="queries", errors="ignore").iterrows():
        fig.add_trace(go.Bar(name=str(name), x=list(table.columns), y=row.tolist()))
    fig.update_layout(barmode="group", title=title, yaxis_title="MRR (%)", legend={"orientation": "h", "y": -0.25})
    return fig


# --- ablations over seeds ------------------------------------------------------------------------
def ablation_summary(results: pd.DataFrame, judged: dict[str, str], full: str = "full") -> pd.DataFrame:
    """Each ablation on the slice it is judged on, against the full model on the same slice.

    ``results``: one row per (variant, seed) with a column per slice (MRR fractions);
    ``judged``: ``{variant: slice}``. Per variant: the slice, the number of seeds, the mean and
    sample std (ddof 1) of its MRR there and of the full model's, the difference of the means
    (variant - full), whether the variant is lower in every seed both have (``lower in every
    seed``), all in % points.
    """
    rows = []
    base = results[results["variant"] == full].set_index("seed")
    for variant, part in results.groupby("variant", sort=False):
        if variant == full:
            continue
        where = judged[variant]
        mine = part.set_index("seed")[where]
        theirs = base[where] if where in base else pd.Series(dtype=float)
        shared = mine.index.intersection(theirs.index)
        rows.append(
            {
                "variant": variant,
                "slice": where,
                "seeds": len(mine),
                "MRR %": 100 * mine.mean(),
                "std": 100 * mine.std(ddof=1),
                "full MRR %": 100 * theirs.mean() if len(theirs) else float("nan"),
                "full std": 100 * theirs.std(ddof=1) if len(theirs) else float("nan"),
                "change (points)": 100 * (mine.mean() - theirs.mean()) if len(theirs) else float("nan"),
                "lower in every seed": bool(len(shared)) and bool((mine[shared] < theirs[shared]).all()),
            }
        )
    columns = [
        "variant",
        "slice",
        "seeds",
        "MRR %",
        "std",
        "full MRR %",
        "full std",
        "change (points)",
        "lower in every seed",
    ]
    return pd.DataFrame(rows, columns=columns).set_index("variant")


def ablation_figure(summary: pd.DataFrame):
    """Bars: each ablation and the full model on the ablation's judged slice (error bars: std)."""
    import plotly.graph_objects as go

    labels = [f"{v}<br>({s})" for v, s in zip(summary.index, summary["slice"])]
    fig = go.Figure(
        [
            go.Bar(
                name="full AFME", x=labels, y=summary["full MRR %"], error_y={"array": summary["full std"].fillna(0)}
            ),
            go.Bar(name="ablation", x=labels, y=summary["MRR %"], error_y={"array": summary["std"].fillna(0)}),
        ]
    )
    fig.update_layout(
        barmode="group",
        yaxis_title="test MRR (%) on the slice",
        title="Each ablation on the slice built to need the component (mean ± std over seeds)",
    )
    return fig


def mean_std_table(results: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Per variant (first-appearance order): ``"mean ± std"`` of each slice's MRR in %, over the
    seeds (sample std; ``± n/a`` for one seed), and the number of seeds."""
    columns = [c for c in results.columns if c not in ("variant", "seed")]
    grouped = results.groupby("variant", sort=False)
    mean, std = grouped[columns].mean() * 100, grouped[columns].std(ddof=1) * 100
    out = pd.DataFrame({"seeds": grouped.size()})
    for c in columns:
        out[c] = [
            f"{m:.{digits}f} ± {s:.{digits}f}" if pd.notna(s) else f"{m:.{digits}f} ± n/a"
            for m, s in zip(mean[c], std[c])
        ]
    return out


def comparison_lines(table: pd.DataFrame, model: str, focus: str = COLD_ATTRIBUTE) -> list[str]:
    """Sentences read off a :func:`slice_table` about ``model`` on the slice ``focus``: its MRR
    there against every other row (the references as a share of the oracles), so that what a
    notebook says is what this run measured."""
    if focus not in table.columns or model not in table.index:
        return [f"No {focus} queries or no row {model!r} in this table."]
    mine = table.loc[model, focus]
    lines = [
        f"{model}: {mine:.2f} % MRR on {focus} queries ({int(table.loc['queries', focus])} queries)."
        if "queries" in table.index
        else f"{model}: {mine:.2f} % MRR on {focus} queries."
    ]
    for other, value in table[focus].drop(index=[model, "queries"], errors="ignore").items():
        if pd.isna(value):
            continue
        if other in (RULE, FEATURES) and value > 0:
            lines.append(f"- {100 * mine / value:.0f} % of the {other} ({value:.2f} %)")
        else:
            lines.append(f"- {mine - value:+.2f} points against {other} ({value:.2f} %)")
    return lines


def ablation_lines(summary: pd.DataFrame) -> list[str]:
    """One sentence per row of :func:`ablation_summary`: the ablation on its slice against the full model."""
    lines = []
    for variant, row in summary.iterrows():
        spread = "" if pd.isna(row["std"]) else f" ± {row['std']:.2f}"
        full_spread = "" if pd.isna(row["full std"]) else f" ± {row['full std']:.2f}"
        verdict = "lower in every seed" if row["lower in every seed"] else "not lower in every seed"
        lines.append(
            f"{variant} on {row['slice']}: {row['MRR %']:.2f}{spread} % against the full model's "
            f"{row['full MRR %']:.2f}{full_spread} % ({row['change (points)']:+.2f} points; {verdict}, "
            f"{row['seeds']} seed{'s' if row['seeds'] != 1 else ''})."
        )
    return lines
