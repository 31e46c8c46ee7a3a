"""A train / valid / test split without leaks, for a graph that ships without one.

Link prediction should be scored on triples a model has to infer. A random split of a graph's
triples does not ensure that: a test triple (h, r, t) may be a copy of a training row, or its
pair may be linked in train under another relation ((h, r', t): near-duplicate relations) or
reversed ((t, r', h): inverse relations), and then a model recalls the answer instead of
inferring it (the shortcut FB15k-237 and WN18RR removed from FB15k and WN18; see
afme_lib/data/leakage.py, which counts all of these). Here:

1. duplicate rows are dropped (the first copy is kept);
2. triples are grouped by their *unordered* entity pair {h, t}, and a group goes to one split
   whole: no valid or test pair is linked in train in either direction, under any relation;
3. groups are drawn in a seeded random order and held out while every entity and every
   relation keeps at least one training triple, until the valid + test share is reached; the
   first held-out triples (in that order) make up test, the rest valid.

Step 3 runs in two passes. A vectorised one holds out group g when, for each entity and relation
it touches, the triples of g and of every group drawn before g (held out or not) leave one in
train: conservative, since groups it refused are counted too. An exact greedy pass over the
groups left then tops the split up. A graph where few groups can leave (most entities of degree
1, rare relations) gives smaller valid / test splits than asked; a warning says so.
"""

from __future__ import annotations

import warnings

import numpy as np

SHORTFALL_WARNING = 0.9  # warn when valid + test hold less than this share of what was asked


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.8/0.1/0.1"`` -> (0.8, 0.1, 0.1): three positive shares summing to 1."""
    parts = text.split("/")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 < v < 1 for v in values) or abs(sum(values) - 1) > 1e-6:
        raise ValueError(
            f"split {text!r}: expected TRAIN/VALID/TEST shares, each in (0, 1), summing to 1 (e.g. 0.8/0.1/0.1)"
        )
    return values


def _usage(keys: np.ndarray, groups: np.ndarray, weights: np.ndarray, num_groups: int):
    """Distinct (key, group) entries, sorted by key then group, with summed weights."""
    combined, inverse = np.unique(keys * num_groups + groups, return_inverse=True)
    return combined // num_groups, combined % num_groups, np.bincount(inverse, weights=weights).astype(np.int64)


def _conservative_pass(order: np.ndarray, entries: list[tuple], num_groups: int) -> np.ndarray:
    """Bool [groups]: g may leave train even if every group drawn before it left too."""
    rank = np.empty(num_groups, dtype=np.int64)
    rank[order] = np.arange(num_groups)
    refused = np.zeros(num_groups, dtype=bool)
    for keys, groups, used, capacity in entries:
        by = np.lexsort((rank[groups], keys))  # per key, in drawing order
        k, g, u = keys[by], groups[by], used[by]
        total = np.cumsum(u)
        start = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        before = np.repeat(total[start] - u[start], np.diff(np.r_[start, len(k)]))
        refused[g[total - before > capacity[k]]] = True
    return ~refused


def _greedy_top_up(
    order: np.ndarray, held: np.ndarray, entries: list[tuple], size: np.ndarray, count: int, target: int
) -> int:
    """Hold out more groups, in drawing order, while each leaves every entity and relation a
    training triple given the groups held so far (exact; a loop over the groups left, usually
    few). Updates ``held``; returns the triples held out."""
    per_group, caps = [], []
    for keys, groups, used, capacity in entries:
        by = np.argsort(groups, kind="stable")
        bounds = np.searchsorted(groups[by], np.arange(len(held) + 1))
        per_group.append((keys[by].tolist(), used[by].tolist(), bounds.tolist()))
        cap = capacity.copy()
        np.subtract.at(cap, keys[held[groups]], used[held[groups]])
        caps.append(cap.tolist())
    for g in order[~held[order]].tolist():
        if count >= target:
            break
        spans = [(k[b[g] : b[g + 1]], u[b[g] : b[g + 1]]) for k, u, b in per_group]
        if all(cap[key] >= use for (ks, us), cap in zip(spans, caps) for key, use in zip(ks, us)):
            for (ks, us), cap in zip(spans, caps):
                for key, use in zip(ks, us):
                    cap[key] -= use
            held[g] = True
            count += int(size[g])
    return count


def split_triples(
    triples: np.ndarray,
    num_entities: int,
    num_relations: int,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict]:
    """``({"train", "valid", "test"}: [n, 3] (h, r, t) ids, report)`` by the rules of the module
    docstring. ``report``: rows read, duplicates dropped, entity pairs, valid / test asked and held."""
    triples = np.asarray(triples, dtype=np.int64)
    keys = (triples[:, 0] * num_relations + triples[:, 1]) * num_entities + triples[:, 2]
    first = np.sort(np.unique(keys, return_index=True)[1])  # the first copy of each row, in file order
    unique = triples[first]
    n = len(unique)
    head, rel, tail = unique[:, 0], unique[:, 1], unique[:, 2]
    pair_groups, group = np.unique(np.minimum(head, tail) * num_entities + np.maximum(head, tail), return_inverse=True)
    num_groups = len(pair_groups)
    size = np.bincount(group, minlength=num_groups)
    lo, hi = pair_groups // num_entities, pair_groups % num_entities
    loop = lo == hi  # (e, r, e) rows touch one entity
    ent_keys = np.r_[lo, hi[~loop]]
    ent_groups = np.r_[np.arange(num_groups), np.flatnonzero(~loop)]
    ent_used = np.r_[size, size[~loop]]
    degree = np.bincount(ent_keys, weights=ent_used, minlength=num_entities).astype(np.int64)
    rel_count = np.bincount(rel, minlength=num_relations)
    # How many triples each entity / relation may lose and still keep one in train.
    entries = [
        (ent_keys, ent_groups, ent_used, degree - 1),
        (*_usage(rel, group, np.ones(n), num_groups), rel_count - 1),
    ]
    asked = {"valid": round(fractions[1] * n), "test": round(fractions[2] * n)}
    target = asked["valid"] + asked["test"]

    order = np.random.default_rng(seed).permutation(num_groups)
    ok = _conservative_pass(order, entries, num_groups)[order]
    held = np.zeros(num_groups, dtype=bool)
    taken = order[ok][np.cumsum(size[order[ok]]) - size[order[ok]] < target]
    held[taken] = True
    count = int(size[held].sum())
    if count < target:
        count = _greedy_top_up(order, held, entries, size, count, target)

    drawn = order[held[order]]  # held-out groups in drawing order: test first, then valid
    in_test = np.zeros(num_groups, dtype=bool)
    in_test[drawn[np.cumsum(size[drawn]) - size[drawn] < asked["test"]]] = True
    split_of = np.where(held, np.where(in_test, 2, 1), 0)[group]
    splits = {name: unique[split_of == i] for i, name in enumerate(("train", "valid", "test"))}
    report = {
        "rows": len(triples),
        "duplicates_dropped": len(triples) - n,
        "entity_pairs": num_groups,
        "asked": asked,
        "held_out": {s: len(splits[s]) for s in ("valid", "test")},
        "seed": seed,
    }
    if count < SHORTFALL_WARNING * target:
        warnings.warn(
            f"only {count} of {n} triples ({100 * count / max(n, 1):.1f}%) could be held out for valid and test "
            f"(asked {target}): the other entity pairs hold the last training triple of an entity or relation",
            stacklevel=2,
        )
    return splits, report
