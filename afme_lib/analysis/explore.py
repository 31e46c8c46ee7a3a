"""Dataset exploration: split, relation, entity and modality-coverage tables, and their figures.

Every count is taken from the tensors with vectorised ops (bincount over ``entity * R + r``
keys), never a loop over triples. Relation categories follow
:func:`afme_lib.data.filters.relation_categories` (from the training split).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from afme_lib.data.dataset import SPLITS, KGDataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.filters import CATEGORIES, relation_categories
from afme_lib.data.summary import hygiene_table


def split_table(dataset: KGDataset) -> pd.DataFrame:
    """Per split: triples, distinct entities and relations used, and entities unseen in train."""
    seen = torch.zeros(dataset.num_entities, dtype=torch.bool)
    seen[dataset.train[:, [0, 2]].reshape(-1)] = True
    rows = []
    for split in SPLITS:
        t = dataset.split(split)
        ents = torch.unique(t[:, [0, 2]].reshape(-1))
        rows.append(
            {
                "split": split,
                "triples": len(t),
                "entities": len(ents),
                "relations": len(torch.unique(t[:, 1])),
                "entities unseen in train": int((~seen[ents]).sum()),
            }
        )
    return pd.DataFrame(rows).set_index("split")


def hygiene_frame(report: dict) -> pd.DataFrame:
    """The split-hygiene report (:func:`afme_lib.data.leakage.hygiene_report`) as a figures x splits table."""
    return pd.DataFrame(hygiene_table(report)).set_index("figure")


def relation_table(dataset: KGDataset) -> pd.DataFrame:
    """Per relation: triples per split, category, distinct heads/tails and the mean fan-outs.

    ``tails per head`` = distinct train triples / distinct heads (and the converse), the
    quantities :func:`relation_categories` thresholds.
    """
    r_count = dataset.num_relations
    train = torch.unique(dataset.train, dim=0)
    n = torch.bincount(train[:, 1], minlength=r_count)
    heads = torch.bincount(torch.unique(train[:, :2], dim=0)[:, 1], minlength=r_count)
    tails = torch.bincount(torch.unique(train[:, 1:], dim=0)[:, 0], minlength=r_count)
    frame = pd.DataFrame(
        {
            "relation": dataset.relation_names,
            "category": relation_categories(dataset.train, r_count),
            **{split: torch.bincount(dataset.split(split)[:, 1], minlength=r_count).numpy() for split in SPLITS},
            "distinct heads": heads.numpy(),
            "distinct tails": tails.numpy(),
            "tails per head": (n / heads.clamp(min=1)).numpy().round(2),
            "heads per tail": (n / tails.clamp(min=1)).numpy().round(2),
        }
    )
    frame.index.name = "id"
    return frame


def entity_table(dataset: KGDataset, store: FeatureStore | None = None, metadata: dict | None = None) -> pd.DataFrame:
    """One row per entity: degree (train), in/out degree, the relation it appears in most often
    ("-" when isolated), which modalities it has, and the ground-truth type when ``metadata``
    (a synthetic folder's ``metadata.json``) is given."""
    n, r_count = dataset.num_entities, dataset.num_relations
    h, r, t = dataset.train.unbind(1)
    out_deg = torch.bincount(h, minlength=n)
    in_deg = torch.bincount(t, minlength=n)
    # [N, R] participation counts from one bincount over entity * R + relation keys
    per_rel = torch.bincount(torch.cat([h, t]) * r_count + torch.cat([r, r]), minlength=n * r_count).view(n, r_count)
    top = per_rel.argmax(1).numpy()
    names = np.asarray(dataset.relation_names, dtype=object)
    degree = (out_deg + in_deg).numpy()
    frame = pd.DataFrame(
        {
            "entity": dataset.entity_names,
            "degree": degree,
            "out degree": out_deg.numpy(),
            "in degree": in_deg.numpy(),
            "top relation": np.where(degree > 0, names[top], "-"),
        }
    )
    if store is not None:
        for m in store.modalities:
            frame[f"has {m}"] = store.masks[m].cpu().numpy()
        missing = sum((~store.masks[m].cpu()).long() for m in store.modalities) if store.modalities else torch.zeros(n)
        frame["missing modalities"] = np.asarray(missing, dtype=np.int64)
    if metadata is not None and "entity_types" in metadata:
        frame["type"] = [f"type {v}" for v in metadata["entity_types"]]
    frame.index.name = "id"
    return frame


def coverage_table(store: FeatureStore, metadata: dict | None = None) -> pd.DataFrame:
    """Per modality: feature size, rows present / missing, coverage (present / N) and, on
    synthetic data, how many present rows the generator degraded to pure noise."""
    rows = []
    for m in store.modalities:
        mask = store.masks[m].cpu()
        row = {
            "modality": m,
            "dim": int(store.features[m].shape[1]),
            "present": int(mask.sum()),
            "missing": int((~mask).sum()),
            "coverage": round(float(mask.sum()) / store.num_entities, 4),
        }
        if metadata is not None and m in metadata.get("modalities", {}):
            row["degraded (truth)"] = int(metadata["modalities"][m]["corrupted"]["count"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("modality")


def missingness_patterns(store: FeatureStore) -> pd.DataFrame:
    """How many entities have each combination of modalities ("text+image", "none", ...)."""
    if not store.modalities:
        return pd.DataFrame({"entities": [store.num_entities]}, index=pd.Index(["none"], name="modalities present"))
    present = torch.stack([store.masks[m].cpu() for m in store.modalities], 1)
    codes = (present.long() * (2 ** torch.arange(present.shape[1]))).sum(1)
    values, counts = torch.unique(codes, return_counts=True)
    labels = ["+".join(m for i, m in enumerate(store.modalities) if int(v) >> i & 1) or "none" for v in values.tolist()]
    frame = pd.DataFrame(
        {
            "modalities present": labels,
            "entities": counts.numpy(),
            "share": (counts.double() / store.num_entities).numpy().round(4),
        }
    )
    return frame.sort_values("entities", ascending=False).set_index("modalities present")


# --- figures ------------------------------------------------------------------------------------
def degree_figure(entities: pd.DataFrame):
    import plotly.express as px

    fig = px.histogram(
        entities,
        x="degree",
        nbins=min(60, max(10, int(entities["degree"].max()) + 1)),
        title="Entity degree in the training graph",
        log_y=True,
    )
    fig.update_layout(yaxis_title="entities (log scale)", bargap=0.05)
    return fig


def relation_frequency_figure(relations: pd.DataFrame):
    import plotly.express as px

    long = relations.reset_index().melt(
        id_vars=["id", "relation", "category"], value_vars=list(SPLITS), var_name="split", value_name="triples"
    )
    order = relations.sort_values("train", ascending=False)["relation"].tolist()
    fig = px.bar(
        long,
        x="relation",
        y="triples",
        color="split",
        title="Triples per relation and split",
        hover_data=["category"],
        category_orders={"relation": order, "split": list(SPLITS)},
    )
    fig.update_layout(xaxis_tickangle=-45)
    return fig


def category_figure(relations: pd.DataFrame):
    import plotly.express as px

    counts = relations.groupby("category").agg(relations=("relation", "size"), train_triples=("train", "sum"))
    counts = counts.reindex([c for c in CATEGORIES if c in counts.index]).reset_index()
    long = counts.melt(id_vars="category", var_name="count of", value_name="n")
    fig = px.bar(long, x="category", y="n", facet_col="count of", title="Relation categories (from train)")
    fig.update_yaxes(matches=None, showticklabels=True)
    return fig


def coverage_figure(coverage: pd.DataFrame):
    import plotly.express as px

    frame = coverage.reset_index()
    value_vars = ["present", "missing"] + (["degraded (truth)"] if "degraded (truth)" in frame else [])
    long = frame.melt(id_vars="modality", value_vars=value_vars, var_name="rows", value_name="entities")
    return px.bar(
        long,
        x="modality",
        y="entities",
        color="rows",
        barmode="group",
        title="Modality coverage (degraded rows are a subset of the present ones)",
    )


def missingness_figure(patterns: pd.DataFrame):
    import plotly.express as px

    frame = patterns.reset_index()
    return px.bar(
        frame,
        x="modalities present",
        y="entities",
        title="Which modalities entities have together",
        hover_data=["share"],
    )
