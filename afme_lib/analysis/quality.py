"""Per-row feature diagnostics: which feature rows look like noise?

Two numbers per present row ``x_i`` of a modality (rows of N entities, d features):

    norm_i       = ||x_i||_2                      (and its robust z-score within the modality,
                                                   (norm_i - median) / (1.4826 * MAD))
    agreement_i  = mean of the k largest cos(x_i, x_j), j != i, over the modality's present rows

A row whose content is real resembles the rows of entities that share its attributes, so its
agreement is high; a degraded row (pure noise) resembles nothing. The norm alone catches
only rows whose *scale* is off: the synthetic generator gives degraded rows the same spread as
clean ones on purpose, so there the norm histogram shows no outliers and the agreement does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from afme_lib.data.feature_store import FeatureStore

CHUNK = 512  # rows per similarity block: a [CHUNK, n] float64 matrix at a time (60 MB at n = 15k)


def neighbour_agreement(x: torch.Tensor, k: int = 10) -> torch.Tensor:
    """Mean cosine similarity of each row to its ``k`` most similar other rows, [n] float64.

    Computed in row blocks (memory ``CHUNK * n``); ``k`` is capped at ``n - 1``. Fewer than two
    rows give NaN (no neighbour to agree with).
    """
    n = x.shape[0]
    if n < 2:
        return torch.full((n,), float("nan"), dtype=torch.float64)
    k = max(1, min(int(k), n - 1))
    unit = torch.nn.functional.normalize(x.double(), dim=1)
    out = torch.empty(n, dtype=torch.float64)
    for start in range(0, n, CHUNK):
        sims = unit[start : start + CHUNK] @ unit.T
        rows = torch.arange(start, min(start + CHUNK, n))
        sims[rows - start, rows] = -float("inf")  # a row is not its own neighbour
        out[start : start + CHUNK] = sims.topk(k, dim=1).values.mean(1)
    return out


def _robust_z(values: torch.Tensor) -> torch.Tensor:
    median = values.median()  # fine for a z-score: lower middle value on even n
    mad = (values - median).abs().median() * 1.4826
    return (values - median) / mad if float(mad) > 0 else torch.zeros_like(values)


def feature_quality(store: FeatureStore, k: int = 10, metadata: dict | None = None) -> pd.DataFrame:
    """One row per (modality, present entity): norm, norm z-score, neighbour agreement, and the
    generator's label ("degraded" / "clean") when ``metadata`` of a synthetic folder is given."""
    frames = []
    for m in store.modalities:
        ids = store.masks[m].cpu().nonzero().flatten()
        x = store.features[m].cpu()[ids].double()
        norm = x.norm(dim=1)
        frame = pd.DataFrame(
            {
                "modality": m,
                "entity": ids.numpy(),
                "norm": norm.numpy(),
                "norm z": _robust_z(norm).numpy() if len(ids) else np.zeros(0),
                "agreement": neighbour_agreement(x, k).numpy(),
            }
        )
        if metadata is not None and m in metadata.get("modalities", {}):
            degraded = np.asarray(metadata["modalities"][m]["corrupted"]["ids"], dtype=np.int64)
            frame["truth"] = np.where(np.isin(frame["entity"].to_numpy(), degraded), "degraded", "clean")
        frames.append(frame)
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["modality", "entity", "norm", "norm z", "agreement"])
    )


def quality_summary(quality: pd.DataFrame) -> pd.DataFrame:
    """Median norm and agreement per modality (and per ground-truth label when known)."""
    keys = ["modality"] + (["truth"] if "truth" in quality else [])
    return (
        quality.groupby(keys)
        .agg(rows=("entity", "size"), median_norm=("norm", "median"), median_agreement=("agreement", "median"))
        .round(4)
    )


def quality_figure(quality: pd.DataFrame, value: str = "agreement"):
    """Histogram of ``value`` ("norm", "norm z" or "agreement") per modality, coloured by truth."""
    import plotly.express as px

    color = "truth" if "truth" in quality else None
    title = {
        "agreement": "Neighbour agreement of feature rows (noise resembles nothing)",
        "norm": "Feature row norms",
        "norm z": "Feature row norms, robust z-score",
    }.get(value, value)
    fig = px.histogram(
        quality,
        x=value,
        color=color,
        facet_col="modality",
        barmode="overlay",
        nbins=40,
        title=title,
        category_orders={"truth": ["clean", "degraded"]},
    )
    fig.update_xaxes(matches=None)
    fig.update_yaxes(matches=None, showticklabels=True)
    return fig
