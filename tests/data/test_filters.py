"""FilterIndex, relation / triple categories and degree statistics against brute-force references."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

from afme_lib.data.dataset import KGDataset, load_dataset
from afme_lib.data.filters import CATEGORIES, FilterIndex, degree_stats, relation_categories, triple_categories


def _random_triples(gen: torch.Generator, n: int, n_ent: int, n_rel: int) -> torch.Tensor:
    return torch.stack(
        [
            torch.randint(0, n_ent, (n,), generator=gen),
            torch.randint(0, n_rel, (n,), generator=gen),
            torch.randint(0, n_ent, (n,), generator=gen),
        ],
        1,
    )


def _dataset(train, valid=None, test=None, n_ent=None, n_rel=None, shipped=None) -> KGDataset:
    empty = torch.zeros(0, 3, dtype=torch.long)
    train = torch.as_tensor(train, dtype=torch.long)
    valid = empty if valid is None else torch.as_tensor(valid, dtype=torch.long).reshape(-1, 3)
    test = empty if test is None else torch.as_tensor(test, dtype=torch.long).reshape(-1, 3)
    every = torch.cat([train, valid, test])
    n_ent = n_ent if n_ent is not None else int(every[:, [0, 2]].max()) + 1
    n_rel = n_rel if n_rel is not None else int(every[:, 1].max()) + 1
    return KGDataset(
        "toy", None, [f"e{i}" for i in range(n_ent)], [f"r{i}" for i in range(n_rel)], train, valid, test, shipped or {}
    )


# ---------------------------------------------------------------- FilterIndex


def _brute_force(triples: torch.Tensor) -> dict[str, dict[tuple[int, int], set[int]]]:
    answers = {"tail": defaultdict(set), "head": defaultdict(set)}
    for h, r, t in triples.tolist():
        answers["tail"][(h, r)].add(t)
        answers["head"][(t, r)].add(h)
    return answers


def _check_against_brute_force(index: FilterIndex, truth, entity, relation, side):
    rows, answers = index.known_answers(entity, relation, side)
    assert rows.dtype == answers.dtype == torch.int64
    # rows ascending, answers ascending within a row, hence no pair listed twice
    pairs = list(zip(rows.tolist(), answers.tolist()))
    assert pairs == sorted(set(pairs))
    got = defaultdict(set)
    for row, ans in pairs:
        got[row].add(ans)
    for q, (e, r) in enumerate(zip(entity.tolist(), relation.tolist())):
        assert got.get(q, set()) == truth[side].get((e, r), set()), (side, q, e, r)
    return rows, answers


@pytest.mark.parametrize("seed", range(5))
def test_filter_index_matches_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    n_ent, n_rel = 12 + seed, 1 + seed
    splits = [_random_triples(gen, n, n_ent, n_rel) for n in (60, 15, 15)]
    every = torch.cat(splits + [splits[0][:10], splits[2][:5]])  # the same triple in several splits
    index = FilterIndex(every, n_rel)
    truth = _brute_force(every)
    for side in ("head", "tail"):
        # known queries, random queries (many with no answer), and a query repeated in the batch
        known = every[:, [2, 1]] if side == "head" else every[:, [0, 1]]
        entity = torch.cat([known[:20, 0], torch.randint(0, n_ent, (40,), generator=gen), known[:1, 0].repeat(3)])
        relation = torch.cat([known[:20, 1], torch.randint(0, n_rel, (40,), generator=gen), known[:1, 1].repeat(3)])
        _check_against_brute_force(index, truth, entity, relation, side)


def test_filter_index_queries_without_answers_return_nothing():
    index = FilterIndex(torch.tensor([[0, 0, 1], [2, 1, 3]]), num_relations=2)
    for side in ("head", "tail"):
        rows, answers = index.known_answers(torch.tensor([4, 1, 0]), torch.tensor([1, 1, 1]), side)
        assert rows.tolist() == [] and answers.tolist() == []
    rows, answers = index.known_answers(torch.tensor([5, 2]), torch.tensor([0, 1]), "tail")
    assert rows.tolist() == [1] and answers.tolist() == [3]  # only the second query is known
    rows, answers = index.known_answers(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), "head")
    assert rows.shape == answers.shape == (0,)


def test_filter_index_duplicates_across_splits_listed_once():
    ds = _dataset(train=[[0, 0, 1], [0, 0, 2]], valid=[[0, 0, 1]], test=[[0, 0, 1], [0, 0, 2]])
    index = FilterIndex.from_dataset(ds)
    rows, answers = index.known_answers(torch.tensor([0]), torch.tensor([0]), "tail")
    assert rows.tolist() == [0, 0] and answers.tolist() == [1, 2]
    rows, answers = index.known_answers(torch.tensor([1, 2]), torch.tensor([0, 0]), "head")
    assert rows.tolist() == [0, 1] and answers.tolist() == [0, 0]


def test_filter_index_on_moved_device_and_int32_queries():
    gen = torch.Generator().manual_seed(7)
    every = _random_triples(gen, 80, 10, 3)
    index = FilterIndex(every, 3).to("cpu")
    truth = _brute_force(every)
    entity = torch.randint(0, 10, (30,), generator=gen)
    relation = torch.randint(0, 3, (30,), generator=gen)
    for side in ("head", "tail"):
        expect = _check_against_brute_force(index, truth, entity, relation, side)
        got = index.known_answers(entity.int(), relation.int(), side)
        assert all(torch.equal(a, b) for a, b in zip(got, expect))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_filter_index_on_cuda():
    gen = torch.Generator().manual_seed(8)
    every = _random_triples(gen, 80, 10, 3)
    cpu, gpu = FilterIndex(every, 3), FilterIndex(every, 3).to("cuda")
    entity, relation = torch.randint(0, 10, (30,), generator=gen), torch.randint(0, 3, (30,), generator=gen)
    for side in ("head", "tail"):
        rows, answers = gpu.known_answers(entity.cuda(), relation.cuda(), side)
        assert rows.is_cuda and answers.is_cuda
        expect = cpu.known_answers(entity, relation, side)
        assert torch.equal(rows.cpu(), expect[0]) and torch.equal(answers.cpu(), expect[1])


def test_filter_index_empty():
    index = FilterIndex(torch.zeros(0, 3, dtype=torch.long), num_relations=2)
    rows, answers = index.known_answers(torch.tensor([0, 1]), torch.tensor([1, 0]), "tail")
    assert rows.tolist() == [] and answers.tolist() == []


def test_filter_index_refuses_bad_input():
    with pytest.raises(ValueError, match=r"relation ids must lie in \[0, 2\), got \[0, 2\]"):
        FilterIndex(torch.tensor([[0, 0, 1], [1, 2, 0]]), num_relations=2)  # r=2 would alias entity 1, r=0
    with pytest.raises(ValueError, match=r"negative entity id -1 in the true triples"):
        FilterIndex(torch.tensor([[0, 0, -1]]), num_relations=2)
    with pytest.raises(ValueError, match=r"expected \(h, r, t\) triples of shape \[n, 3\], got \(2, 2\)"):
        FilterIndex(torch.zeros(2, 2, dtype=torch.long), num_relations=2)
    index = FilterIndex(torch.tensor([[0, 0, 1]]), num_relations=1)
    with pytest.raises(ValueError, match=r"unknown side 'left'; expected 'head' or 'tail'"):
        index.known_answers(torch.tensor([0]), torch.tensor([0]), "left")


# ---------------------------------------------------------------- relation categories

# One relation per case; the comment gives (tails per head, heads per tail).
HAND_MADE = [
    (0, 0, 1),
    (2, 0, 3),
    (0, 0, 1),
    (0, 0, 1),  # r0 1-1 (1, 1); the repeats must not count
    (0, 1, 1),
    (0, 1, 2),
    (0, 1, 3),  # r1 1-N (3, 1)
    (1, 2, 0),
    (2, 2, 0),
    (3, 2, 0),  # r2 N-1 (1, 3)
    (0, 3, 2),
    (0, 3, 3),
    (1, 3, 2),
    (1, 3, 3),  # r3 N-N (2, 2)
    (4, 4, 5),
    (4, 4, 6),
    (7, 4, 8),  # r4 (1.5, 1): exactly at the threshold -> 1-N
    (5, 5, 4),
    (6, 5, 4),
    (8, 5, 7),  # r5 (1, 1.5) -> N-1
    (4, 6, 5),
    (4, 6, 6),
    (7, 6, 8),
    (9, 6, 1),  # r6 (4/3, 1): below the threshold -> 1-1
    (4, 7, 5),
    (4, 7, 6),
    (7, 7, 5),
    (7, 7, 6),
    (9, 7, 1),
    (9, 7, 2),  # r7 (2, 1.5) -> N-N
]  # r8 has no training triple -> 1-1


def _brute_force_categories(triples, num_relations, threshold=1.5):
    out = []
    for r in range(num_relations):
        rows = {(h, t) for h, rr, t in triples if rr == r}
        if not rows:
            out.append("1-1")
            continue
        tph = len(rows) / len({h for h, _ in rows})
        hpt = len(rows) / len({t for _, t in rows})
        out.append(("N" if hpt >= threshold else "1") + "-" + ("N" if tph >= threshold else "1"))
    return out


def test_relation_categories_hand_made():
    cats = relation_categories(torch.tensor(HAND_MADE), num_relations=9)
    assert cats == ["1-1", "1-N", "N-1", "N-N", "1-N", "N-1", "1-1", "N-N", "1-1"]
    assert set(cats) <= set(CATEGORIES)
    # a higher threshold: only means of at least 2 count as "N"
    assert relation_categories(torch.tensor(HAND_MADE), 9, threshold=2.0) == [
        "1-1",
        "1-N",
        "N-1",
        "N-N",
        "1-1",
        "1-1",
        "1-1",
        "1-N",
        "1-1",
    ]


@pytest.mark.parametrize("seed", range(4))
def test_relation_categories_match_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    train = _random_triples(gen, 40 + 20 * seed, 6 + 3 * seed, 5)
    assert relation_categories(train, 6) == _brute_force_categories(train.tolist(), 6)


# ---------------------------------------------------------------- triple categories


def test_triple_categories_from_training_without_shipped_files():
    test = [[0, 1, 9], [4, 4, 5], [0, 8, 1]]
    ds = _dataset(train=HAND_MADE, valid=[[0, 2, 0], [0, 3, 1]], test=test, n_ent=10, n_rel=9)
    assert triple_categories(ds, "test").tolist() == ["1-N", "1-N", "1-1"]
    assert triple_categories(ds, "valid").tolist() == ["N-1", "N-N"]
    assert triple_categories(ds, "train").tolist() == [
        _brute_force_categories(HAND_MADE, 9)[r] for _, r, _ in HAND_MADE
    ]


def test_triple_categories_prefer_shipped_files_for_test_only():
    test = torch.tensor([[0, 1, 9], [4, 4, 5], [0, 8, 1], [2, 0, 3]])
    shipped = {"N-N": test[[0]], "1-1": test[[1, 3]]}  # the files leave out the third test triple
    ds = _dataset(train=HAND_MADE, valid=test, test=test, n_ent=10, n_rel=9, shipped=shipped)
    assert triple_categories(ds, "test").tolist() == ["N-N", "1-1", "1-1", "1-1"]
    # valid is never categorised by the test files, even with the very same triples
    assert triple_categories(ds, "valid").tolist() == ["1-N", "1-N", "1-1", "1-1"]


def test_triple_categories_mkg_w_uses_shipped_files(shared_datasets):
    ds = load_dataset(shared_datasets / "MKG-W")
    assert Counter(triple_categories(ds, "test").tolist()) == {"1-1": 247, "1-N": 18, "N-1": 2991, "N-N": 1018}
    # without the files the training-based categories decide (they differ on MKG-W)
    ds.shipped_test_categories = {}
    by_relation = np.array(relation_categories(ds.train, ds.num_relations))
    fallback = triple_categories(ds, "test")
    assert fallback.tolist() == by_relation[ds.test[:, 1].numpy()].tolist()
    assert Counter(fallback.tolist()) != {"1-1": 247, "1-N": 18, "N-1": 2991, "N-N": 1018}


# ---------------------------------------------------------------- degree statistics


@pytest.mark.parametrize("seed", range(3))
def test_degree_stats_match_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    n_ent, n_rel = 20, 4  # an even entity count: the median is the mean of the two middle degrees
    train = _random_triples(gen, 25, n_ent - 3, n_rel)  # the last 3 entities never occur in training
    train = torch.cat([train, torch.tensor([[1, 0, 1]])])  # a self-loop counts twice
    valid = torch.tensor([[0, 0, 18], [1, 1, 2]])
    test = torch.tensor([[19, 2, 17], [1, 1, 2], [3, 0, 4]])
    stats = degree_stats(_dataset(train, valid, test, n_ent=n_ent, n_rel=n_rel))

    degree = [0] * n_ent
    freq = [0] * n_rel
    for h, r, t in train.tolist():
        degree[h] += 1
        degree[t] += 1
        freq[r] += 1
    assert stats["degree"].tolist() == degree
    assert stats["relation_frequency"].tolist() == freq
    assert stats["mean_degree"] == pytest.approx(sum(degree) / n_ent)
    assert stats["median_degree"] == statistics.median(degree)
    assert stats["max_degree"] == max(degree)
    assert stats["isolated_entities"] == sum(d == 0 for d in degree)
    unseen = {
        name: sum(degree[h] == 0 or degree[t] == 0 for h, _, t in rows.tolist())
        for name, rows in (("valid", valid), ("test", test))
    }
    assert stats["unseen_in_train"] == unseen


def test_degree_median_of_even_count_is_the_middle_mean():
    # degrees 1, 1, 2, 2 -> median 1.5 (torch.median would say 1)
    stats = degree_stats(_dataset(train=[[0, 0, 2], [1, 0, 3], [2, 0, 3]], n_ent=4, n_rel=1))
    assert stats["degree"].tolist() == [1, 1, 2, 2]
    assert stats["median_degree"] == 1.5
