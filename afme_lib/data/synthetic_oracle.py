"""Oracles of a synthetic graph: how well a model that knows the generator, or reads only the
features, can rank. They put a model's MRR in context ("x% of what the data allow").

**Rule oracle** (:func:`oracle_ranks`). It knows the generator's rules (``metadata.json``): a
tail query ``(h, has_a, ?)`` is answered by the value entity of ``attr[h, a]``; a head query
``(?, has_a, v)`` by the items whose value is ``v``; a structural query by the *cell* of items
whose community is ``community_map[comm[h]]`` and whose type is allowed. Within a cell it ties
every candidate (links inside a structural cell are random). Every true triple obeys the rules,
so all known answers lie in the cell; after filtering, the target ties with the ``cell - known +
1`` remaining candidates and its realistic rank is ``(cell - known + 2) / 2``. On attribute
relations the cell is exact (rank 1): the ceiling for a model that reads an item's attribute
perfectly. Memorising which tails a structural cell's heads share can beat it on N-N relations.

**Feature oracles** (:func:`feature_oracle_ranks`): what a modality *tells* about an attribute
relation, measured rather than declared. A nearest-class-mean decoder fitted on the warm items'
rows (the training data) gives each item a posterior over the attribute's values::

    log p(v | x) = -||x - mu_v||^2 / (2 s^2) - log sum_v' exp(...)     (per modality; summed
                                                                          over modalities for "all")

with ``mu_v`` the mean row of the warm items of value ``v`` and ``s^2`` the pooled within-value
variance; a missing row gives the uniform posterior. Tail queries rank the K value entities by
``p(v | x_h)``, head queries rank the items by ``p(v | x_i)``, filtered and with realistic ties
(every other entity ranks below). Corrupted rows fool it, as they would a model.

Slices (:func:`slice_labels`): a triple's entity group (``entity2group.txt``: warm / cold /
zero-shot / value; the group of highest precedence among its endpoints) and its relation kind,
e.g. ``"cold/attribute"``. :func:`stress_labels` says whether the item's row in the relation's
informative modality is clean, corrupted or missing: the slices each AFME component is for.
"""

from __future__ import annotations

import numpy as np
import torch

from afme_lib.data.dataset import KGDataset
from afme_lib.data.filters import FilterIndex
from afme_lib.data.groups import triple_groups

SIDES = ("tail", "head")


# --- the rule oracle ------------------------------------------------------------------------
def _cell_keys(meta: dict, relation: dict, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(key of each entity's own answer cell, or -1; key of the cell its answers lie in), [N] each.

    ``side="tail"`` answers tail queries: an entity as head points to the cell of its tails.
    """
    if (
        relation["kind"] == "sibling"
    ):  # a group is a cell, the answers of its members (oracle_ranks leaves the query out)
        group = np.asarray(relation["groups"])
        return group, np.where(group >= 0, group, -2)
    if relation["kind"] == "attribute":
        value = np.asarray(meta["entity_attributes"][relation["attribute"]])
        items = np.asarray(meta["entity_communities"]) >= 0
        value_entity = (value >= 0) & ~items
        answers, queries = (value_entity, items) if side == "tail" else (items, value_entity)
        return np.where(answers, value, -1), np.where(queries, value, -2)
    comm = np.asarray(meta["entity_communities"])
    c_map = np.asarray(relation["community_map"])
    if side == "head":
        c_map = np.argsort(c_map)  # inverse of a permutation
    types = np.asarray(meta["entity_types"])
    allowed = relation["head_types"] if side == "head" else relation["tail_types"]
    own = np.where(np.isin(types, allowed) & (comm >= 0), comm, -1)  # other types are in no answer cell
    return own, np.where(comm >= 0, c_map[np.maximum(comm, 0)], -2)


def _known_counts(index: FilterIndex, entities: torch.Tensor, relation: int, side: str) -> np.ndarray:
    rel = torch.full_like(entities, relation)
    rows, _ = index.known_answers(entities, rel, side)
    return np.bincount(rows.numpy(), minlength=len(entities))


def oracle_ranks(dataset: KGDataset, meta: dict, split: str = "test", filter_index: FilterIndex | None = None) -> dict:
    """Realistic filtered rank of every query of ``split`` under the rule oracle.

    Returns ``{"tail": ndarray[n], "head": ndarray[n]}`` in the split's order (same layout as
    :func:`afme_lib.engine.evaluation.evaluate`'s ``ranks``).
    """
    triples = dataset.split(split).numpy()
    index = filter_index or FilterIndex.from_dataset(dataset)
    out = {}
    for side in SIDES:
        ranks = np.zeros(len(triples))
        query_col = 0 if side == "tail" else 2
        for rel in meta["relations"]:  # loops over relations, never triples
            rows = np.flatnonzero(triples[:, 1] == rel["id"])
            if not len(rows):
                continue
            own, target = _cell_keys(meta, rel, side)
            cells, sizes = np.unique(own[own >= 0], return_counts=True)
            size_of = np.zeros(max(int(cells.max()) + 1, 1) if len(cells) else 1, dtype=np.int64)
            size_of[cells] = sizes
            queries = triples[rows, query_col]
            keys = target[queries]
            cell = np.where((keys >= 0) & (keys < len(size_of)), size_of[np.clip(keys, 0, len(size_of) - 1)], 0)
            known = _known_counts(index, torch.from_numpy(queries), rel["id"], side)
            if rel["kind"] == "sibling":  # the rule knows that no item is its own sibling
                cell = cell - (own[queries] == keys)
            ranks[rows] = (cell - known + 2) / 2
        out[side] = ranks
    return out


# --- feature oracles ------------------------------------------------------------------------
def _value_log_posterior(x: np.ndarray, present: np.ndarray, values: np.ndarray, fit: np.ndarray, k: int) -> np.ndarray:
    """log p(v | x) [N, k] of a nearest-class-mean decoder fitted on the rows ``fit`` (bool [N])."""
    use = fit & present & (values >= 0)
    x = x.astype(np.float64)
    counts = np.bincount(values[use], minlength=k)
    means = np.zeros((k, x.shape[1]))
    np.add.at(means, values[use], x[use])
    means /= np.maximum(counts, 1)[:, None]
    resid = x[use] - means[values[use]]
    var = max(float((resid**2).mean()), 1e-12)
    dist = (x**2).sum(1)[:, None] - 2 * x @ means.T + (means**2).sum(1)[None]  # ||x - mu_v||^2
    logits = -dist / (2 * var)
    logits[~present] = 0.0  # no row: no evidence
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


def _ranks_among(scores: np.ndarray, target: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Realistic rank of ``scores[i, target[i]]`` among the True columns of ``candidates[i]``
    (the target column counted once whatever its flag): (1 + higher + at_least) / 2."""
    t = scores[np.arange(len(scores)), target][:, None]
    cand = candidates.copy()
    cand[np.arange(len(scores)), target] = True
    higher = ((scores > t) & cand).sum(1)
    at_least = ((scores >= t) & cand).sum(1)
    return (1 + higher + at_least) / 2


def feature_oracle_ranks(
    dataset: KGDataset,
    store,
    meta: dict,
    modalities: list[str] | None,
    split: str = "test",
    filter_index: FilterIndex | None = None,
) -> dict:
    """Ranks of every query of ``split`` under the decoder reading ``modalities``, their
    log-posteriors summed (None: for each relation, the modalities that encode its attribute,
    strongly or weakly -- summing uninformative ones would only add the noise of their fitted
    means). Structural triples get NaN ranks."""
    triples = dataset.split(split).numpy()
    index = filter_index or FilterIndex.from_dataset(dataset)
    warm = np.asarray(dataset.entity_groups) == "warm" if dataset.entity_groups else np.ones(dataset.num_entities, bool)
    items = np.asarray(meta["entity_communities"]) >= 0
    out = {side: np.full(len(triples), np.nan) for side in SIDES}
    for rel in meta["relations"]:
        if rel["kind"] != "attribute":
            continue
        rows = np.flatnonzero(triples[:, 1] == rel["id"])
        if not len(rows):
            continue
        value = np.asarray(meta["entity_attributes"][rel["attribute"]])
        k = int(meta["attribute_values"][rel["attribute"]])
        post = np.zeros((dataset.num_entities, k))
        names = [*rel["informative_modalities"], *rel.get("weak_modalities", [])] if modalities is None else modalities
        for m in names:
            x, present = store.features[m].numpy(), store.masks[m].numpy().astype(bool)
            post += _value_log_posterior(x, present & items, np.where(items, value, -1), warm & items, k)
        value_ids = np.flatnonzero(~items & (value >= 0))
        value_ids = value_ids[np.argsort(value[value_ids])]  # column v <-> value entity of value v
        h, t = triples[rows, 0], triples[rows, 2]
        # Tail queries: the K value entities, by the head's posterior (no other answer is known).
        out["tail"][rows] = _ranks_among(post[h], value[t], np.ones((len(rows), k), bool))
        # Head queries: every item by its posterior of the tail's value, known answers filtered.
        v = value[t]
        scores = post[:, v].T  # [q, N]
        candidates = np.broadcast_to(items, scores.shape).copy()
        known_rows, known_cols = index.known_answers(torch.from_numpy(t), torch.full((len(t),), rel["id"]), "head")
        candidates[known_rows.numpy(), known_cols.numpy()] = False
        out["head"][rows] = _ranks_among(scores, h, candidates)
    return out


# --- slices and summaries -------------------------------------------------------------------
def relation_kinds(dataset: KGDataset, meta: dict, split: str = "test") -> np.ndarray:
    """The relation kind of every triple of ``split`` [n]."""
    return np.array([r["kind"] for r in meta["relations"]])[dataset.split(split)[:, 1].numpy()]


def slice_labels(dataset: KGDataset, meta: dict, split: str = "test") -> np.ndarray:
    """``"<group>/<kind>"`` of every triple of ``split`` (``"all/<kind>"`` without groups)."""
    kinds = relation_kinds(dataset, meta, split)
    if dataset.entity_groups is None:
        return np.array([f"all/{k}" for k in kinds], dtype=object)
    groups = triple_groups(dataset.split(split).numpy(), dataset.entity_groups)
    return np.array([f"{g}/{k}" for g, k in zip(groups, kinds)], dtype=object)


def stress_labels(dataset: KGDataset, meta: dict, split: str = "test") -> np.ndarray:
    """What the item's row in the relation's informative modality looks like, per triple of
    ``split``: ``"clean"``, ``"corrupted"`` (degraded content: the slice denoising exists for) or
    ``"missing"`` (the slice MoIEn's completion exists for); ``""`` for structural relations.
    The item is the triple's head (attribute relations point from items to value entities)."""
    triples = dataset.split(split).numpy()
    out = np.full(len(triples), "", dtype=object)
    for rel in meta["relations"]:
        if rel["kind"] != "attribute" or not rel["informative_modalities"]:
            continue
        rows = np.flatnonzero(triples[:, 1] == rel["id"])
        record = meta["modalities"][rel["informative_modalities"][0]]
        heads = triples[rows, 0]
        state = np.full(len(rows), "clean", dtype=object)
        state[np.isin(heads, record["corrupted"]["ids"])] = "corrupted"
        state[np.isin(heads, record["missing"]["ids"])] = "missing"
        out[rows] = state
    return out


def mrr_by_label(ranks: dict, labels: np.ndarray) -> dict[str, float]:
    """MRR (fraction) over both sides for ``all`` queries and per label present (NaN ranks skipped)."""
    rr = {s: 1.0 / np.asarray(ranks[s], dtype=np.float64) for s in SIDES}

    def mean(sel):
        values = np.concatenate([v[sel] for v in rr.values()])
        values = values[~np.isnan(values)]
        return float(values.mean()) if len(values) else float("nan")

    out = {"all": mean(np.ones(len(labels), bool))}
    for label in sorted(set(labels.tolist())):
        out[label] = mean(labels == label)
    return out


def mrr_by_kind(ranks: dict, kinds: np.ndarray) -> dict[str, float]:
    """MRR (fraction) over both sides for ``all`` queries and per relation kind present."""
    return mrr_by_label(ranks, np.asarray(kinds, dtype=object))


def oracle_mrr_by_kind(dataset: KGDataset, meta: dict, split: str = "test") -> dict[str, float]:
    """Rule-oracle MRR (fraction) over both sides, for ``all`` queries and per relation kind."""
    return mrr_by_kind(oracle_ranks(dataset, meta, split), relation_kinds(dataset, meta, split))


def oracle_summary(dataset: KGDataset, store, meta: dict, split: str = "test") -> dict:
    """The oracles a report puts beside a model, on ``split``.

    ``{"rule": {slice: MRR}, "features": {"all": {slice: MRR}, modality: {...}},
    "features_by_relation": {relation name: {modality or "all": MRR on its cold queries}}}``;
    ``"all"`` reads every modality that encodes the relation's attribute.
    """
    index = FilterIndex.from_dataset(dataset)
    labels = slice_labels(dataset, meta, split)
    rel_ids = dataset.split(split)[:, 1].numpy()
    summary = {
        "rule": mrr_by_label(oracle_ranks(dataset, meta, split, index), labels),
        "features": {},
        "features_by_relation": {},
    }
    cold = np.array([lab.startswith("cold/") for lab in labels])
    for m in [None, *store.modalities]:
        ranks = feature_oracle_ranks(dataset, store, meta, None if m is None else [m], split, index)
        key = "all" if m is None else m
        summary["features"][key] = mrr_by_label(ranks, labels)
        for rel in meta["relations"]:
            if rel["kind"] == "attribute":
                sel = cold & (rel_ids == rel["id"])
                if sel.any():
                    rr = np.concatenate([1.0 / ranks[s][sel] for s in SIDES])
                    summary["features_by_relation"].setdefault(rel["name"], {})[key] = float(rr.mean())
    return summary
