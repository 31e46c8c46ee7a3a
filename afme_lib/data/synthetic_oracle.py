"""The rule oracle of a synthetic graph: how well a model that knows the generator's rules can rank.

For a query ``(h, r, ?)`` the generator's rules (``metadata.json``) say the tail lies in the
*cell* of entities whose community is ``community_map[comm[h]]`` and, for an attribute relation,
whose attribute value is ``value_map[attr[h]]`` (for a structural relation: whose type is one of
``tail_types``). Within its cell the configuration model links at random, so the oracle ties
every candidate of the cell. Every true triple obeys the rules, so all known answers lie in the
cell; after filtering, the true tail ties with the ``cell - known + 1`` remaining candidates and
its realistic rank is ``(cell - known + 2) / 2``. Head queries use the inverse maps.

The oracle is a ceiling for what *features plus communities* explain, not for memorisation: a
model that memorises which tails a cell's heads actually share (N-N pools) can beat it on
structural relations. It puts a model's MRR in context ("x% of what the rules allow").
"""

from __future__ import annotations

import numpy as np
import torch

from afme_lib.data.dataset import KGDataset
from afme_lib.data.filters import FilterIndex


def _cell_keys(meta: dict, relation: dict, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(key of each entity's own cell, key of the cell its answers lie in) for one relation and side.

    ``side="tail"`` answers tail queries: an entity as head points to the cell of its tails.
    """
    comm = np.asarray(meta["entity_communities"])
    c_map = np.asarray(relation["community_map"])
    if side == "head":
        c_map = np.argsort(c_map)  # inverse of a permutation
    if relation["kind"] == "attribute":
        value = np.asarray(meta["entity_attributes"][relation["attribute"]])
        v_map = np.asarray(relation["value_map"])
        if side == "head":
            v_map = np.argsort(v_map)
        return comm * len(v_map) + value, c_map[comm] * len(v_map) + v_map[value]
    types = np.asarray(meta["entity_types"])
    allowed = relation["head_types"] if side == "head" else relation["tail_types"]
    ok = np.isin(types, allowed)
    own = np.where(ok, comm, -1)  # entities of other types are in no answer cell
    return own, c_map[comm]


def oracle_ranks(dataset: KGDataset, meta: dict, split: str = "test", filter_index: FilterIndex | None = None) -> dict:
    """Realistic filtered rank of every query of ``split`` under the rule oracle.

    Returns ``{"tail": ndarray[n], "head": ndarray[n]}`` in the split's order (same layout as
    :func:`afme_lib.evaluate.evaluate`'s ``ranks``).
    """
    triples = dataset.split(split)
    index = filter_index or FilterIndex.from_dataset(dataset)
    out = {}
    for side in ("tail", "head"):
        ranks = np.zeros(len(triples))
        query_col = 0 if side == "tail" else 2
        for rel in meta["relations"]:  # loops over relations, never triples
            rows = np.flatnonzero(triples[:, 1].numpy() == rel["id"])
            if not len(rows):
                continue
            own, target = _cell_keys(meta, rel, side)
            cells, sizes = np.unique(own[own >= 0], return_counts=True)
            size_of = dict(zip(cells.tolist(), sizes.tolist()))
            queries = triples[rows, query_col].numpy()
            cell = np.array([size_of.get(k, 0) for k in target[queries]])
            known = _known_counts(index, torch.from_numpy(queries), rel["id"], side)
            ranks[rows] = (cell - known + 2) / 2
        out[side] = ranks
    return out


def _known_counts(index: FilterIndex, entities: torch.Tensor, relation: int, side: str) -> np.ndarray:
    rel = torch.full_like(entities, relation)
    rows, _ = index.known_answers(entities, rel, side)
    return np.bincount(rows.numpy(), minlength=len(entities))


def mrr_by_kind(ranks: dict, kinds: np.ndarray) -> dict[str, float]:
    """MRR (fraction) over both sides for ``all`` queries and per relation kind present.

    ``ranks`` is ``{"tail": [n], "head": [n]}`` (an evaluation's or the oracle's), ``kinds`` [n]
    the kind ("attribute" / "structural") of each triple's relation.
    """
    rr = {s: 1.0 / np.asarray(ranks[s]) for s in ("tail", "head")}
    out = {"all": float(np.mean(np.concatenate(list(rr.values()))))}
    for kind in ("attribute", "structural"):
        sel = kinds == kind
        if sel.any():
            out[kind] = float(np.mean(np.concatenate([v[sel] for v in rr.values()])))
    return out


def relation_kinds(dataset: KGDataset, meta: dict, split: str = "test") -> np.ndarray:
    """The relation kind of every triple of ``split`` [n]."""
    return np.array([r["kind"] for r in meta["relations"]])[dataset.split(split)[:, 1].numpy()]


def oracle_mrr_by_kind(dataset: KGDataset, meta: dict, split: str = "test") -> dict[str, float]:
    """Oracle MRR (fraction) over both sides, for ``all`` queries and per relation kind."""
    return mrr_by_kind(oracle_ranks(dataset, meta, split), relation_kinds(dataset, meta, split))
