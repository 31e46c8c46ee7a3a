"""What filtered evaluation needs: the known-answer index, relation categories, degrees.

The filter index is a CSR table per prediction side. For tail queries the key is
``h * R + r`` and the row lists every true tail of that key over train + valid + test; head
queries use ``t * R + r``. Looking up a batch of queries is a handful of vectorised tensor ops
(searchsorted + repeat_interleave), so no Python loop ever touches a query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from afme_lib.data.dataset import KGDataset, triple_keys

CATEGORIES = ("1-1", "1-N", "N-1", "N-N")
CATEGORY_THRESHOLD = 1.5  # mean tails-per-head / heads-per-tail above which a side is "N"


@dataclass
class _SideIndex:
    keys: torch.Tensor  # sorted unique query keys [Q]
    offsets: torch.Tensor  # [Q + 1] CSR offsets into answers
    answers: torch.Tensor  # [nnz] answer entity ids, grouped by key

    def to(self, device) -> _SideIndex:
        return _SideIndex(self.keys.to(device), self.offsets.to(device), self.answers.to(device))


def _build_side(query_ent: torch.Tensor, rel: torch.Tensor, answer: torch.Tensor, num_relations: int) -> _SideIndex:
    key = query_ent * num_relations + rel
    # Two stable sorts: by answer, then by key, so each key's answers come out ascending.
    order = torch.argsort(answer, stable=True)
    order = order[torch.argsort(key[order], stable=True)]
    key, answer = key[order], answer[order]
    uniq, counts = torch.unique_consecutive(key, return_counts=True)
    offsets = torch.zeros(len(uniq) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(counts, 0)
    return _SideIndex(uniq, offsets, answer)


class FilterIndex:
    """All true answers of every (entity, relation, side) query, for filtered ranking."""

    def __init__(self, true_triples: torch.Tensor, num_relations: int):
        triples = true_triples.long().cpu()
        if triples.ndim != 2 or triples.shape[1] != 3:
            raise ValueError(f"expected (h, r, t) triples of shape [n, 3], got {tuple(triples.shape)}")
        # Keys are entity * R + relation: an id outside its range would alias another query's key.
        if len(triples):
            low, high = int(triples[:, 1].min()), int(triples[:, 1].max())
            if low < 0 or high >= num_relations:
                raise ValueError(f"relation ids must lie in [0, {num_relations}), got [{low}, {high}]")
        if len(triples) and int(triples[:, [0, 2]].min()) < 0:
            raise ValueError(f"negative entity id {int(triples[:, [0, 2]].min())} in the true triples")
        # Deduplicate: a triple in two splits must not be listed twice.
        triples = torch.unique(triples, dim=0)
        h, r, t = triples.unbind(1)
        self.num_relations = num_relations
        self.sides = {"tail": _build_side(h, r, t, num_relations), "head": _build_side(t, r, h, num_relations)}

    @classmethod
    def from_dataset(cls, dataset: KGDataset) -> FilterIndex:
        return cls(dataset.all_true, dataset.num_relations)

    def to(self, device) -> FilterIndex:
        new = object.__new__(FilterIndex)
        new.num_relations = self.num_relations
        new.sides = {k: v.to(device) for k, v in self.sides.items()}
        return new

    def known_answers(
        self, entity: torch.Tensor, relation: torch.Tensor, side: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For a batch of queries return (row, answer) pairs: every true answer of query ``row``.

        ``side="tail"`` answers (entity=h, relation=r, ?); ``side="head"`` answers (?, r, entity=t).
        Rows come out ascending, and each row's answers ascending. Ids are not range-checked here
        (that would cost a device sync per batch): a relation outside [0, R) gives wrong answers.
        """
        if side not in self.sides:
            raise ValueError(f"unknown side {side!r}; expected 'head' or 'tail'")
        idx = self.sides[side]
        key = entity.long() * self.num_relations + relation.long()
        if len(idx.keys) == 0:  # nothing is known: searchsorted below would index an empty table
            empty = torch.zeros(0, dtype=torch.long, device=key.device)
            return empty, empty.clone()
        pos = torch.searchsorted(idx.keys, key).clamp_(max=len(idx.keys) - 1)
        found = idx.keys[pos] == key
        start = idx.offsets[pos]
        counts = torch.where(found, idx.offsets[pos + 1] - start, torch.zeros_like(start))
        rows = torch.repeat_interleave(torch.arange(len(key), device=key.device), counts)
        # position of each answer inside its CSR row: global arange minus the row's first slot
        first_slot = torch.cumsum(counts, 0) - counts
        within = torch.arange(len(rows), device=key.device) - torch.repeat_interleave(first_slot, counts)
        return rows, idx.answers[torch.repeat_interleave(start, counts) + within]


def relation_categories(train: torch.Tensor, num_relations: int, threshold: float = CATEGORY_THRESHOLD) -> list[str]:
    """Category of each relation from its distinct training triples (Bordes et al., 2013).

    For relation r with n_r distinct triples, ``tails_per_head = n_r / #distinct heads`` and
    ``heads_per_tail = n_r / #distinct tails``; a side is "N" when its mean is >= ``threshold``
    (1.5): 1-N has many tails per head, N-1 many heads per tail. A relation absent from
    training is "1-1" (nothing says it is many-valued).
    """
    tri = torch.unique(train.long().cpu(), dim=0)
    r = tri[:, 1]
    n_triples = torch.bincount(r, minlength=num_relations).double()
    heads = torch.bincount(torch.unique(tri[:, :2], dim=0)[:, 1], minlength=num_relations).double()
    tails = torch.bincount(torch.unique(tri[:, 1:], dim=0)[:, 0], minlength=num_relations).double()
    many_tails = n_triples / heads.clamp(min=1) >= threshold
    many_heads = n_triples / tails.clamp(min=1) >= threshold
    code = many_tails.long() + 2 * many_heads.long()  # 0: 1-1, 1: 1-N, 2: N-1, 3: N-N
    return [CATEGORIES[c] for c in code.tolist()]


def triple_categories(dataset: KGDataset, split: str) -> np.ndarray:
    """Category name of each triple of a split.

    For the test split, the shipped ``1-1.txt`` ... files decide when they cover it (the
    convention the published tables use); otherwise the relation's category from training does.
    """
    triples = dataset.split(split)
    rel_cat = np.array(relation_categories(dataset.train, dataset.num_relations))
    cats = rel_cat[triples[:, 1].numpy()]
    if split == "test" and dataset.shipped_test_categories:
        n, m = dataset.num_entities, dataset.num_relations
        keys = triple_keys(triples, n, m)
        # Triples the files leave out keep their training-based category.
        for cat, part in dataset.shipped_test_categories.items():
            cats = np.where(np.isin(keys, triple_keys(part, n, m)), cat, cats)
    return cats


def degree_stats(dataset: KGDataset) -> dict[str, object]:
    """Entity degrees in the training graph and relation frequencies.

    ``degree[e]`` = #train rows with head e + #train rows with tail e (rows as stored, a self-loop
    counts twice); ``unseen_in_train[split]`` = #rows of that split with an entity of degree 0.
    """
    train = dataset.train
    degree = torch.bincount(train[:, 0], minlength=dataset.num_entities) + torch.bincount(
        train[:, 2], minlength=dataset.num_entities
    )
    rel_freq = torch.bincount(train[:, 1], minlength=dataset.num_relations)
    deg = degree.double()
    return {
        "degree": degree,
        "relation_frequency": rel_freq,
        "mean_degree": float(deg.mean()),
        "median_degree": float(np.median(deg.cpu().numpy())),  # torch's median takes the lower middle value
        "max_degree": int(degree.max()),
        "isolated_entities": int((degree == 0).sum()),
        "unseen_in_train": {s: int((degree[dataset.split(s)[:, [0, 2]]] == 0).any(1).sum()) for s in ("valid", "test")},
    }
