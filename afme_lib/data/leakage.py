"""Split hygiene: what lets a model score on a benchmark without generalising.

Link prediction is meant to infer *unseen* triples. A split falls short of that when
- a split repeats rows (duplicates weigh some triples twice in training or in the metric);
- valid or test triples are also training triples (exact leakage: the answer is memorised,
  and checkpoint selection on such a validation split rewards memorisation);
- a test triple's (head, tail) pair occurs in train under another relation, or reversed as
  (tail, head): the answer is a neighbour already linked to the query entity (the shortcut
  FB15k-237 removed from FB15k, Toutanova & Chen 2015);
- two relations share most of their (h, t) pairs (near-duplicates) or of their (t, h) pairs
  (inverses), which makes those shortcuts systematic.

The report also counts valid / test rows with an entity absent from train, which structure alone
cannot place: once leaked rows are removed, such rows may be most of what is left.

Everything is computed on int64 keys with numpy set operations, never a loop over triples::

    triple key  (h * R + r) * N + t        (afme_lib.data.dataset.triple_keys)
    pair key     h * N + t                 (the (head, tail) pair, relation ignored)

The memorisation rule (:func:`memorisation_ranks`) turns the shortcuts into one number: the MRR a
"model" gets that only looks up who co-occurred with the query entity in train.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from afme_lib.core.ranking import compute_metrics
from afme_lib.data.dataset import KGDataset, triple_keys
from afme_lib.data.filters import FilterIndex

EVAL_SPLITS = ("valid", "test")
RELATION_OVERLAP_THRESHOLD = 0.8  # share of the smaller relation's pairs the other one also holds
RELATION_OVERLAP_MIN_PAIRS = 10  # fewer shared pairs than this is anecdote, not a pattern
_QUERY_BATCH = 4096  # queries per filter look-up in the memorisation rule (bounds its memory)


class SplitLeakageWarning(UserWarning):
    """Valid or test triples are also training triples."""


def _np(triples: torch.Tensor) -> np.ndarray:
    return triples.detach().cpu().numpy().astype(np.int64, copy=False)


def pair_keys(triples: torch.Tensor, num_entities: int, reverse: bool = False) -> np.ndarray:
    """``h * N + t`` per row (``t * N + h`` with ``reverse``): the (head, tail) pair, relation ignored."""
    t = _np(triples)
    head, tail = (t[:, 2], t[:, 0]) if reverse else (t[:, 0], t[:, 2])
    return head * num_entities + tail


def neighbour_keys(train: torch.Tensor, num_entities: int) -> np.ndarray:
    """Sorted distinct ``u * N + v`` for every u, v that co-occur in a training row (both orders)."""
    return np.unique(np.concatenate([pair_keys(train, num_entities), pair_keys(train, num_entities, reverse=True)]))


def _count_of(sorted_keys: np.ndarray, counts: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``counts[i]`` for each key equal to ``sorted_keys[i]``, 0 for keys not there (binary search)."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=np.int64)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.where(sorted_keys[at] == keys, counts[at], 0)


def _member(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``np.isin(keys, sorted_keys)`` by binary search: no sort of ``keys`` (millions of filter answers)."""
    return _count_of(sorted_keys, np.ones(len(sorted_keys), dtype=np.int64), keys) > 0


def later_copies(keys: np.ndarray) -> np.ndarray:
    """Bool mask of the rows whose key already occurred on an earlier row (the first copy is kept)."""
    first = np.zeros(len(keys), dtype=bool)
    first[np.unique(keys, return_index=True)[1]] = True
    return ~first


def overlap(keys: np.ndarray, other: np.ndarray) -> dict[str, int]:
    """``triples``: distinct keys in both; ``rows``: rows of ``keys`` whose key is in ``other``."""
    return {"triples": len(np.intersect1d(keys, other)), "rows": int(np.isin(keys, other).sum())}


def pair_shortcuts(split: torch.Tensor, train: torch.Tensor, num_entities: int, num_relations: int) -> dict[str, int]:
    """Rows of ``split`` whose answer a neighbour lookup in train would give (counts of rows).

    - ``pair_in_train``: the row's (h, t) pair occurs in train under any relation (exact
      copies of training triples included);
    - ``pair_other_relation``: (h, t) occurs in train under a relation other than the row's;
    - ``reversed_pair``: (t, h) occurs in train under any relation.
    """
    n = num_entities
    pairs, train_pairs = pair_keys(split, n), pair_keys(train, n)
    pair_rel = np.unique(train_pairs * num_relations + _np(train)[:, 1])  # distinct (pair, relation)
    uniq, n_rel = np.unique(pair_rel // num_relations, return_counts=True)
    relations_of_pair = _count_of(uniq, n_rel, pairs)
    own = _member(pair_rel, pairs * num_relations + _np(split)[:, 1])  # the row's own relation is one of them
    return {
        "rows": len(pairs),
        "pair_in_train": int((relations_of_pair > 0).sum()),
        "pair_other_relation": int((relations_of_pair - own > 0).sum()),
        "reversed_pair": int(np.isin(pair_keys(split, n, reverse=True), train_pairs).sum()),
    }


def unseen_entity_rows(split: torch.Tensor, train: torch.Tensor, num_entities: int) -> int:
    """Rows of ``split`` with a head or tail that occurs in no training row: structure alone
    cannot place that entity (only its features could)."""
    seen = np.zeros(num_entities, dtype=bool)
    seen[_np(train)[:, [0, 2]].ravel()] = True
    return int((~seen[_np(split)[:, [0, 2]]]).any(1).sum())


def _cooccurrence(
    key_a: np.ndarray, rel_a: np.ndarray, key_b: np.ndarray, rel_b: np.ndarray, num_relations: int
) -> np.ndarray:
    """[R, R] counts ``C[r1, r2] = #{k : (k, r1) in A and (k, r2) in B}`` (A, B hold distinct rows):
    a sort-merge join on the key, every matching (A row, B row) expanded with repeat / arange."""
    order = np.argsort(key_b, kind="stable")
    key_b, rel_b = key_b[order], rel_b[order]
    lo, hi = np.searchsorted(key_b, key_a, "left"), np.searchsorted(key_b, key_a, "right")
    count = hi - lo
    a_row = np.repeat(np.arange(len(key_a)), count)
    within = np.arange(len(a_row)) - np.repeat(np.cumsum(count) - count, count)
    b_row = np.repeat(lo, count) + within
    cell = rel_a[a_row] * num_relations + rel_b[b_row]
    return np.bincount(cell, minlength=num_relations * num_relations).reshape(num_relations, num_relations)


def relation_overlaps(
    train: torch.Tensor,
    num_entities: int,
    num_relations: int,
    threshold: float = RELATION_OVERLAP_THRESHOLD,
    min_pairs: int = RELATION_OVERLAP_MIN_PAIRS,
) -> list[dict]:
    """Relation pairs (r1 < r2) whose training pairs largely coincide, forward or reversed.

    With P_r the distinct (h, t) pairs of relation r in train and, for a relation pair,
    ``shared`` = |P_r1 ∩ P_r2| ("duplicate") or |P_r1 ∩ reverse(P_r2)| ("inverse")::

        share   = shared / min(|P_r1|, |P_r2|)     (how much of the smaller relation the other predicts)
        jaccard = shared / (|P_r1| + |P_r2| - shared)

    A pair is listed when ``share >= threshold`` and ``shared >= min_pairs``. A relation paired
    with itself is never listed (a symmetric relation is its own inverse; that is a pattern,
    not a copy). Both counts are symmetric in (r1, r2) (for inverses substitute (h, t) -> (t, h)).
    """
    n, big_r = num_entities, num_relations
    tri = np.unique(_np(train)[:, [1, 0, 2]], axis=0)  # distinct (r, h, t)
    rel, fwd, rev = tri[:, 0], tri[:, 1] * n + tri[:, 2], tri[:, 2] * n + tri[:, 1]
    count = np.bincount(rel, minlength=big_r).astype(np.float64)
    smaller = np.maximum(np.minimum(count[:, None], count[None, :]), 1)
    upper = np.triu(np.ones((big_r, big_r), dtype=bool), k=1)
    out = []
    for kind, other in (("duplicate", fwd), ("inverse", rev)):
        shared = _cooccurrence(fwd, rel, other, rel, big_r).astype(np.float64)
        share = shared / smaller
        jaccard = shared / np.maximum(count[:, None] + count[None, :] - shared, 1)
        for r1, r2 in np.argwhere(upper & (share >= threshold) & (shared >= min_pairs)).tolist():
            out.append(
                {
                    "kind": kind,
                    "relations": [r1, r2],
                    "pairs": [int(count[r1]), int(count[r2])],
                    "shared": int(shared[r1, r2]),
                    "share": round(float(share[r1, r2]), 4),
                    "jaccard": round(float(jaccard[r1, r2]), 4),
                }
            )
    return sorted(out, key=lambda row: (-row["share"], -row["shared"], row["kind"]))


def memorisation_ranks(
    dataset: KGDataset, split: str, filter_index: FilterIndex | None = None
) -> dict[str, np.ndarray]:
    """Filtered realistic ranks of the memorisation rule, ``{"tail": [n], "head": [n]}`` (float64).

    The rule scores a candidate 1 when it co-occurred with the query entity ``e`` in train
    (as head or tail of any row, any relation) and 0 otherwise: the neighbours C_e tie at the
    top, everything else ties below. Filtering as in :mod:`afme_lib.engine.evaluation`: the query's other
    true answers (train + valid + test) are removed, the target stays. With k = |C_e| after
    filtering and M the candidates left (target included)::

        target in C_e:      rank = (1 + k) / 2                  (optimistic 1, pessimistic k)
        target not in C_e:  rank = (1 + k + M) / 2              (optimistic k + 1, pessimistic M)

    ``filter_index`` (default: every true triple of ``dataset``) must hold the split's triples.
    """
    n = dataset.num_entities
    index = filter_index if filter_index is not None else FilterIndex.from_dataset(dataset)
    nbr = neighbour_keys(dataset.train, n)
    degree = np.bincount(nbr // n, minlength=n)
    triples = dataset.split(split).long().cpu()
    out = {}
    for side, (known_col, target_col) in (("tail", (0, 2)), ("head", (2, 0))):
        known, rel, target = (triples[:, c].numpy() for c in (known_col, 1, target_col))
        # Queries sharing (entity, relation) share their filter set F: count |F| and |F ∩ C_e| once
        # per distinct query (hub entities have thousands of answers), then take the target out.
        query, which = np.unique(known * dataset.num_relations + rel, return_inverse=True)
        q_ent, q_rel = query // dataset.num_relations, query % dataset.num_relations
        answers_all, in_nbr_all = np.zeros(len(query)), np.zeros(len(query))
        for lo in range(0, len(query), _QUERY_BATCH):
            ent = q_ent[lo : lo + _QUERY_BATCH]
            rows, answers = (
                x.numpy()
                for x in index.known_answers(
                    torch.from_numpy(ent), torch.from_numpy(q_rel[lo : lo + _QUERY_BATCH]), side
                )
            )
            answers_all[lo : lo + len(ent)] = np.bincount(rows, minlength=len(ent))
            in_nbr_all[lo : lo + len(ent)] = np.bincount(
                rows, weights=_member(nbr, ent[rows] * n + answers), minlength=len(ent)
            )
        hit = _member(nbr, known * n + target)
        # F always holds the target (a true triple): the other known answers are F minus it
        filtered = answers_all[which] - 1
        k = degree[known] - (in_nbr_all[which] - hit)
        out[side] = np.where(hit, (1 + k) / 2, (1 + k + n - filtered) / 2)
    return out


def memorisation_metrics(dataset: KGDataset, split: str, filter_index: FilterIndex | None = None) -> dict:
    """MRR / MR / Hits@k of the memorisation rule on ``split`` (tail and head queries pooled),
    plus ``answer_is_neighbour``: the share of queries whose answer co-occurred with the query
    entity in train."""
    if len(dataset.split(split)) == 0:
        return {}
    ranks = memorisation_ranks(dataset, split, filter_index)
    pooled = np.concatenate([ranks["tail"], ranks["head"]])
    n = dataset.num_entities
    hit = _member(neighbour_keys(dataset.train, n), pair_keys(dataset.split(split), n))  # the same for both sides
    return {**compute_metrics(torch.from_numpy(pooled)), "answer_is_neighbour": round(float(hit.mean()), 6)}


def leakage_counts(dataset: KGDataset) -> dict[str, dict[str, int]]:
    """Exact overlaps of the splits: {"valid_in_train", "test_in_train", "valid_in_test"} each
    ``{"triples": distinct, "rows": rows of the first split}`` (cheap: three np.isin)."""
    n, r = dataset.num_entities, dataset.num_relations
    keys = {s: triple_keys(dataset.split(s), n, r) for s in ("train", *EVAL_SPLITS)}
    return {
        "valid_in_train": overlap(keys["valid"], keys["train"]),
        "test_in_train": overlap(keys["test"], keys["train"]),
        "valid_in_test": overlap(keys["valid"], keys["test"]),
    }


def hygiene_report(
    dataset: KGDataset,
    threshold: float = RELATION_OVERLAP_THRESHOLD,
    min_pairs: int = RELATION_OVERLAP_MIN_PAIRS,
    memorisation: bool = True,
) -> dict:
    """Every hygiene figure of a dataset, as a JSON-ready dict (see the module docstring).

    ``rows`` / ``distinct`` / ``duplicate_rows`` per split; ``overlap`` (:func:`leakage_counts`);
    ``pair_shortcuts`` and ``unseen_entity_rows`` per eval split (:func:`pair_shortcuts`,
    :func:`unseen_entity_rows`); ``relation_overlaps``
    (:func:`relation_overlaps`, relation names added); ``memorisation`` per eval split
    (:func:`memorisation_metrics`; skipped with ``memorisation=False``).
    """
    n, r = dataset.num_entities, dataset.num_relations
    keys = {s: triple_keys(dataset.split(s), n, r) for s in ("train", *EVAL_SPLITS)}
    distinct = {s: len(np.unique(k)) for s, k in keys.items()}
    report = {
        "rows": {s: len(k) for s, k in keys.items()},
        "distinct": distinct,
        "duplicate_rows": {s: len(k) - distinct[s] for s, k in keys.items()},
        "overlap": leakage_counts(dataset),
        "pair_shortcuts": {s: pair_shortcuts(dataset.split(s), dataset.train, n, r) for s in EVAL_SPLITS},
        "unseen_entity_rows": {s: unseen_entity_rows(dataset.split(s), dataset.train, n) for s in EVAL_SPLITS},
        "relation_overlaps": {
            "threshold": threshold,
            "min_pairs": min_pairs,
            "pairs": [
                {**row, "names": [dataset.relation_names[i] for i in row["relations"]]}
                for row in relation_overlaps(dataset.train, n, r, threshold, min_pairs)
            ],
        },
    }
    if memorisation:
        index = FilterIndex.from_dataset(dataset)
        report["memorisation"] = {s: memorisation_metrics(dataset, s, index) for s in EVAL_SPLITS}
    return report


def leakage_message(dataset: KGDataset) -> str | None:
    """One line naming the valid/test rows that are training triples and the fix, or None."""
    counts = leakage_counts(dataset)
    parts = []
    for split in EVAL_SPLITS:
        rows, total = counts[f"{split}_in_train"]["rows"], len(dataset.split(split))
        if rows:
            parts.append(f"{rows} of {total} {split} rows ({100 * rows / total:.1f}%)")
    if not parts:
        return None
    source = dataset.path if dataset.path is not None else dataset.name
    return (
        f"{dataset.name}: {' and '.join(parts)} are training triples, so best-valid checkpoints and test "
        f"MRR reward memorisation; train on a cleaned copy: afme data clean {source} --out {dataset.name}-clean"
    )


def warn_split_leakage(dataset: KGDataset) -> None:
    """Warn (:class:`SplitLeakageWarning`, one line) when valid or test overlaps train."""
    message = leakage_message(dataset)
    if message:
        warnings.warn(message, SplitLeakageWarning, stacklevel=2)
