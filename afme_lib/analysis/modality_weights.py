"""Which modality does each relation rely on? AFME's gates and fusion weights, per relation.

For a trained AFME, :meth:`AFME.introspect` gives, for an (entity, relation) pair, the fusion
weights ``w`` over the tokens [structure, modality_1 .. modality_M] (they sum to 1) and the mean
gate of each modality (its share of the feature the relation lets through). Aggregated over the
occurrences of relation r in a split (the head and the tail of each of its triples, so an
entity counts as often as it appears)::

    W[r, k] = mean over occurrences (e, r) of w_k(e, r)               (every occurrence)
    G[r, m] = mean over occurrences with modality m measured of gate_m(e, r)

Weights are averaged over all occurrences because a missing modality really gets weight 0
(without the GAN) and that is what the model uses; a gate on a missing row gates a zero vector,
so gates are averaged over the rows where the modality was measured.

Ground truth (synthetic data): ``metadata.json`` lists each relation's informative modalities.
:func:`truth_agreement` scores the learned weights against it per relation, over the
modality tokens only (structure is not a modality):

    AUC   = P(w_i > w_u) + P(w_i = w_u) / 2   over pairs (informative i, uninformative u)
    gap   = mean_i w_i - mean_u w_u
    top-1 = share of the highest-weighted modalities (ties shared) that are informative

AUC is 1 when every informative modality outweighs every uninformative one, 0 for the
reverse, 0.5 for uniform weights or chance. Relations whose modalities are all informative or
all uninformative (structural relations) cannot be scored this way; their structure weight is
reported instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from afme_lib.data.dataset import KGDataset

POSITIONS = {"head": 0, "tail": 2}


def _require_introspection(model) -> None:
    if not hasattr(model, "introspect") or not hasattr(model, "token_names"):
        raise TypeError(f"{type(model).__name__} has no modality weights to show; train an AFME model (model='afme')")
    if len(model.token_names) < 2:
        raise ValueError("this AFME model was trained without any modality (no feature store): no weights to show")


@torch.no_grad()
def introspect(
    model, entities: torch.Tensor, relations: torch.Tensor, batch_size: int = 4096
) -> dict[str, torch.Tensor]:
    """``model.introspect`` over flat aligned ``entities`` / ``relations`` in batches, in eval
    mode (deterministic: no generator noise), results on the CPU: ``weights`` [n, M+1],
    ``gates`` [n, M], ``measured`` [n, M] (bool)."""
    _require_introspection(model)
    device = model.device
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {"weights": [], "gates": [], "measured": []}
    try:
        for lo in range(0, len(entities), batch_size):
            out = model.introspect(
                entities[lo : lo + batch_size].to(device), relations[lo : lo + batch_size].to(device)
            )
            for key in parts:
                parts[key].append(out[key].float().cpu() if key != "measured" else out[key].bool().cpu())
    finally:
        model.train(was_training)
    m = len(model.token_names) - 1
    empty = {
        "weights": torch.zeros(0, m + 1),
        "gates": torch.zeros(0, m),
        "measured": torch.zeros(0, m, dtype=torch.bool),
    }
    return {k: torch.cat(v) if v else empty[k] for k, v in parts.items()}


@dataclass
class ModalityProfile:
    """Per-relation aggregates (index: relation names)."""

    weights: pd.DataFrame  # [R, M+1] mean fusion weight, columns "structure", modalities
    gates: pd.DataFrame  # [R, M] mean gate over measured occurrences (NaN: none measured)
    occurrences: pd.Series  # [R] occurrences averaged (0: relation absent from the split -> NaN rows)
    measured: pd.DataFrame  # [R, M] share of occurrences whose modality was measured


def occurrences(
    dataset: KGDataset, split: str = "train", positions=("head", "tail")
) -> tuple[torch.Tensor, torch.Tensor]:
    """(entities, relations) of every head and/or tail occurrence in ``split``."""
    triples = dataset.split(split)
    unknown = set(positions) - set(POSITIONS)
    if unknown or not positions:
        raise ValueError(f"positions must be a non-empty subset of {tuple(POSITIONS)}, got {tuple(positions)}")
    ents = torch.cat([triples[:, POSITIONS[p]] for p in positions])
    rels = torch.cat([triples[:, 1] for _ in positions])
    return ents, rels


def relation_profile(
    model, dataset: KGDataset, split: str = "train", positions=("head", "tail"), batch_size: int = 4096
) -> ModalityProfile:
    """W and G of the module docstring for every relation of ``dataset``."""
    ents, rels = occurrences(dataset, split, positions)
    out = introspect(model, ents, rels, batch_size)
    r_count = dataset.num_relations
    count = torch.bincount(rels, minlength=r_count).double()
    w_sum = torch.zeros(r_count, out["weights"].shape[1], dtype=torch.float64).index_add_(
        0, rels, out["weights"].double()
    )
    measured = out["measured"].double()
    g_sum = torch.zeros(r_count, measured.shape[1], dtype=torch.float64).index_add_(
        0, rels, out["gates"].double() * measured
    )
    m_count = torch.zeros_like(g_sum).index_add_(0, rels, measured)
    nan = float("nan")
    weights = torch.where(count[:, None] > 0, w_sum / count.clamp(min=1)[:, None], nan)
    gates = torch.where(m_count > 0, g_sum / m_count.clamp(min=1), nan)
    share = torch.where(count[:, None] > 0, m_count / count.clamp(min=1)[:, None], nan)
    index = pd.Index(dataset.relation_names, name="relation")
    mods = list(model.token_names[1:])
    return ModalityProfile(
        weights=pd.DataFrame(weights.numpy(), index=index, columns=list(model.token_names)),
        gates=pd.DataFrame(gates.numpy(), index=index, columns=mods),
        occurrences=pd.Series(count.long().numpy(), index=index, name="occurrences"),
        measured=pd.DataFrame(share.numpy(), index=index, columns=mods),
    )


def entity_weights(model, entity: int, relation: int) -> pd.DataFrame:
    """One (entity, relation) pair: weight of each token, gate and measured flag of each modality."""
    out = introspect(model, torch.tensor([int(entity)]), torch.tensor([int(relation)]))
    names = list(model.token_names)
    gates = [float("nan")] + out["gates"][0].tolist()
    measured = [True] + out["measured"][0].tolist()
    return pd.DataFrame(
        {"token": names, "weight": out["weights"][0].tolist(), "gate": gates, "measured": measured}
    ).set_index("token")


# --- ground truth ---------------------------------------------------------------------------------
def truth_matrix(metadata: dict, relation_names: list[str], modalities: list[str]) -> pd.DataFrame:
    """Boolean [R, M]: does modality m inform relation r (synthetic ``metadata.json``).

    Relations are matched by name and must be exactly the dataset's, in its order; a modality
    the generator does not know is a ValueError (the model was trained on other features).
    """
    records = metadata["relations"]
    names = [rec["name"] for rec in records]
    if names != list(relation_names):
        raise ValueError(
            "metadata.json describes other relations than the dataset's "
            f"(first metadata names {names[:3]}, dataset {list(relation_names)[:3]})"
        )
    known = set(metadata.get("modalities", {}))
    unknown = [m for m in modalities if m not in known]
    if unknown:
        raise ValueError(f"modalities {unknown} are not in metadata.json (it knows {sorted(known)})")
    values = np.array(
        [[m in (rec.get("informative_modalities") or []) for m in modalities] for rec in records], dtype=bool
    )
    return pd.DataFrame(values, index=pd.Index(list(relation_names), name="relation"), columns=list(modalities))


def truth_agreement(weights: pd.DataFrame, truth: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Per-relation AUC / gap / top-1 of the module docstring, and their means.

    ``weights`` has one column per modality (extra columns such as "structure" are used only
    for the structure-weight summary); ``truth`` is :func:`truth_matrix`. Returns the
    per-relation table (column ``kind``: "scored" or "not scored"; relations with NaN weights
    are left out) and a summary dict: ``relations_scored``, ``auc``, ``gap``, ``top1`` (means over
    scored relations) and ``structure_weight_scored`` / ``structure_weight_unscored``.
    """
    mods = list(truth.columns)
    rows = []
    for rel in truth.index:
        w = weights.loc[rel, mods].to_numpy(dtype=float)
        if np.isnan(w).any():
            continue
        inf = truth.loc[rel].to_numpy(dtype=bool)
        row = {
            "relation": rel,
            "informative": ", ".join(np.array(mods)[inf]) or "-",
            "structure weight": float(weights.loc[rel, "structure"]) if "structure" in weights else float("nan"),
        }
        if inf.any() and (~inf).any():
            wi, wu = w[inf][:, None], w[~inf][None, :]
            top = np.isclose(w, w.max(), rtol=0, atol=1e-9)
            row.update(
                kind="scored",
                auc=float(((wi > wu) + 0.5 * (wi == wu)).mean()),
                gap=float(w[inf].mean() - w[~inf].mean()),
                top1=float(inf[top].mean()),
            )
        else:
            row.update(kind="not scored", auc=float("nan"), gap=float("nan"), top1=float("nan"))
        rows.append(row)
    table = pd.DataFrame(rows, columns=["relation", "informative", "kind", "auc", "gap", "top1", "structure weight"])
    table = table.set_index("relation")
    scored = table[table["kind"] == "scored"]
    unscored = table[table["kind"] == "not scored"]
    summary = {
        "relations_scored": int(len(scored)),
        "auc": float(scored["auc"].mean()) if len(scored) else float("nan"),
        "gap": float(scored["gap"].mean()) if len(scored) else float("nan"),
        "top1": float(scored["top1"].mean()) if len(scored) else float("nan"),
        "structure_weight_scored": float(scored["structure weight"].mean()) if len(scored) else float("nan"),
        "structure_weight_unscored": float(unscored["structure weight"].mean()) if len(unscored) else float("nan"),
    }
    return table, summary


def agreement_line(summary: dict) -> str:
    """One sentence of :func:`truth_agreement`'s summary (what notebook 04 and the main job print)."""
    return (
        f"over {summary['relations_scored']} scored relations: mean AUC {summary['auc']:.2f}, mean gap "
        f"{summary['gap']:+.3f}, top-1 informative {summary['top1']:.0%}; structure weight "
        f"{summary['structure_weight_scored']:.2f} on scored vs {summary['structure_weight_unscored']:.2f} "
        "on structural relations"
    )


def truth_long(weights: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Long table (relation, modality, weight, informative) for plotting weights against truth."""
    mods = list(truth.columns)
    long = weights[mods].reset_index().melt(id_vars="relation", var_name="modality", value_name="weight")
    flags = truth.reset_index().melt(id_vars="relation", var_name="modality", value_name="informative")
    out = long.merge(flags, on=["relation", "modality"])
    out["informative"] = np.where(out["informative"], "informative", "uninformative")
    return out.dropna(subset=["weight"])


# --- figures ----------------------------------------------------------------------------------------
def heatmap(
    values: pd.DataFrame, title: str, truth: pd.DataFrame | None = None, zmax: float | None = None, colorbar: str = ""
):
    """Relations x tokens heatmap with the value written in each cell; with ``truth``, the
    informative (relation, modality) cells are outlined."""
    import plotly.graph_objects as go

    z = values.to_numpy(dtype=float)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(values.columns),
            y=list(values.index),
            colorscale="Viridis",
            zmin=0,
            zmax=zmax if zmax is not None else (np.nanmax(z) if np.isfinite(z).any() else 1.0),
            text=np.where(np.isnan(z), "", np.char.mod("%.2f", np.nan_to_num(z))),
            texttemplate="%{text}",
            colorbar={"title": colorbar},
            hovertemplate="relation %{y}<br>%{x}: %{z:.3f}<extra></extra>",
        )
    )
    if truth is not None:
        cells = truth.reset_index().melt(id_vars="relation", var_name="modality", value_name="informative")
        cells = cells[cells["informative"] & cells["modality"].isin(values.columns)]
        fig.add_trace(
            go.Scatter(
                x=cells["modality"],
                y=cells["relation"],
                mode="markers",
                name="informative (truth)",
                marker={"symbol": "square-open", "size": 26, "color": "red", "line": {"width": 2}},
                hoverinfo="skip",
            )
        )
        fig.update_layout(legend={"orientation": "h", "y": -0.15})
    fig.update_layout(
        title=title,
        yaxis={"autorange": "reversed", "type": "category"},
        xaxis={"type": "category"},
        height=max(350, 28 * len(values) + 150),
    )
    return fig


def weight_heatmap(profile: ModalityProfile, truth: pd.DataFrame | None = None):
    return heatmap(
        profile.weights, "Mean fusion weight per relation (rows sum to 1)", truth, zmax=1.0, colorbar="weight"
    )


def gate_heatmap(profile: ModalityProfile, truth: pd.DataFrame | None = None):
    return heatmap(
        profile.gates,
        "Mean gate per relation and modality (share of the feature let through)",
        truth,
        zmax=1.0,
        colorbar="gate",
    )


def truth_figure(weights: pd.DataFrame, truth: pd.DataFrame):
    """Weights of informative vs uninformative (relation, modality) pairs: box + points."""
    import plotly.express as px

    long = truth_long(weights, truth)
    fig = px.box(
        long,
        x="informative",
        y="weight",
        points="all",
        color="informative",
        hover_data=["relation", "modality"],
        category_orders={"informative": ["informative", "uninformative"]},
        title="Learned modality weights: where the ground truth says the modality informs the relation, and where not",
    )
    fig.update_layout(showlegend=False)
    return fig
