"""Filtered link-prediction evaluation against brute-force per-query references.

The models here are small fakes (integer embeddings, so scores are exact integers with many ties)
with a plain distance scorer; the real scorers live elsewhere and are tested there.
"""

from __future__ import annotations

import io
import math
import random
import sys

import numpy as np
import pytest
import torch
from torch import nn

from afme_lib.core.config import ModelConfig
from afme_lib.core.metric_names import METRIC_KEYS
from afme_lib.core.ranking import compute_metrics, rank_targets, self_answers
from afme_lib.data.dataset import KGDataset
from afme_lib.data.filters import FilterIndex, triple_categories
from afme_lib.engine.evaluation import default_chunk_size, evaluate, random_baseline
from afme_lib.models.base import KGModel

N_ENT, N_REL = 30, 4


# --- fixtures: a tiny graph with every relation category ------------------------------------
def make_dataset(seed: int = 0) -> KGDataset:
    rng = random.Random(seed)
    triples = set()
    perm = list(range(N_ENT))
    rng.shuffle(perm)
    for h in range(0, N_ENT, 2):  # relation 0: one-to-one
        triples.add((h, 0, perm[h]))
    for h in range(5):  # relation 1: one head, many tails
        for t in rng.sample(range(N_ENT), 5):
            triples.add((h, 1, t))
    for t in range(5):  # relation 2: many heads, one tail
        for h in rng.sample(range(N_ENT), 5):
            triples.add((h, 2, t))
    for _ in range(40):  # relation 3: dense block, many to many
        triples.add((rng.randrange(10), 3, rng.randrange(10)))
    triples = sorted(triples)
    rng.shuffle(triples)
    t = torch.tensor(triples, dtype=torch.long)
    n_train, n_valid = int(0.6 * len(t)), int(0.2 * len(t))
    return KGDataset(
        "toy",
        None,
        [f"e{i}" for i in range(N_ENT)],
        [f"r{i}" for i in range(N_REL)],
        t[:n_train],
        t[n_train : n_train + n_valid],
        t[n_train + n_valid :],
    )


@pytest.fixture(scope="module")
def dataset() -> KGDataset:
    return make_dataset()


class L1Scorer:
    """score(h, r, t) = -||h + r - t||_1, chunked over candidates like a real scorer."""

    def __init__(self):
        self.chunks = []

    def score(self, h, r, t):
        return -(h + r - t).abs().sum(-1)

    def score_all(self, q, r, table, side, chunk_size=None):
        self.chunks.append(chunk_size)
        step = chunk_size or len(table)
        parts = []
        for lo in range(0, len(table), step):
            cand = table[lo : lo + step][None]
            if side == "tail":
                parts.append(self.score(q[:, None], r[:, None], cand))
            else:
                parts.append(self.score(cand, r[:, None], q[:, None]))
        return torch.cat(parts, 1)


class ConstantScorer(L1Scorer):
    def score_all(self, q, r, table, side, chunk_size=None):
        return torch.zeros(len(q), len(table), device=q.device)


class FakeModel(KGModel):
    """Integer embeddings; when conditioned, an entity's vector shifts with the relation."""

    def __init__(self, conditioned=False, scorer=None, dim=4, seed=0):
        super().__init__(ModelConfig(dim=dim), N_ENT, N_REL)
        g = torch.Generator().manual_seed(seed)
        ints = lambda n: nn.Parameter(torch.randint(-2, 3, (n, dim), generator=g).float(), requires_grad=False)  # noqa: E731
        self.ent, self.rel, self.shift = ints(N_ENT), ints(N_REL), ints(N_REL)
        self.relation_conditioned = conditioned
        self.scorer = scorer or L1Scorer()
        self.table_calls, self.modes = [], []

    def entity_repr(self, entities, relations=None):
        x = self.ent[entities]
        if self.relation_conditioned and relations is not None:
            x = x + self.shift[relations] * (entities % 3).unsqueeze(-1).float()
        return x

    def relation_repr(self, relations):
        return self.rel[relations]

    def entity_table(self, relation=None):
        self.table_calls.append(relation)
        self.modes.append(self.training)
        return super().entity_table(relation)


class OracleScorer:
    """1 for every known true triple, 0 otherwise: a perfect model once filtering is applied."""

    def __init__(self, true_triples):
        self.truth = torch.zeros(N_REL, N_ENT, N_ENT)
        h, r, t = true_triples.unbind(1)
        self.truth[r, h, t] = 1.0

    def score_all(self, q, r, table, side, chunk_size=None):
        ent = q.argmax(1)  # the oracle's entity rows are one-hot
        return self.truth[r, ent, :] if side == "tail" else self.truth[r, :, ent]


class OracleModel(KGModel):
    def __init__(self, true_triples):
        super().__init__(ModelConfig(), N_ENT, N_REL)
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the model a device
        self.scorer = OracleScorer(true_triples)

    def entity_repr(self, entities, relations=None):
        return torch.eye(N_ENT)[entities]

    def relation_repr(self, relations):
        return relations


# --- brute-force references --------------------------------------------------------------------
def brute_rank(row_scores: list, target: int, excluded: set) -> float:
    cands = [c for c in range(len(row_scores)) if c == target or c not in excluded]
    s = row_scores[target]
    return (1 + sum(row_scores[c] > s for c in cands) + sum(row_scores[c] >= s for c in cands)) / 2


def brute_force_ranks(model, dataset, split, true_triples=None):
    """Per triple, per side: score each candidate through model.score and rank by hand."""
    true = set(map(tuple, (dataset.all_true if true_triples is None else true_triples).tolist()))
    full = lambda v: torch.full((N_ENT,), v)  # noqa: E731
    every = torch.arange(N_ENT)
    ranks = {"tail": [], "head": []}
    with torch.no_grad():
        for h, r, t in dataset.split(split).tolist():
            s = model.score(full(h), full(r), every).tolist()
            ranks["tail"].append(brute_rank(s, t, {e for e in range(N_ENT) if (h, r, e) in true}))
            s = model.score(every, full(r), full(t)).tolist()
            ranks["head"].append(brute_rank(s, h, {e for e in range(N_ENT) if (e, r, t) in true}))
    return {k: np.array(v) for k, v in ranks.items()}


def assert_metrics_close(got: dict, ranks: np.ndarray):
    want = compute_metrics(torch.from_numpy(ranks))
    assert got["count"] == want["count"]
    for key in ("mrr", "mr", "hits@1", "hits@3", "hits@10"):
        assert got[key] == pytest.approx(want[key], rel=1e-12), key


# --- rank_targets --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_rank_targets_matches_brute_force_raw_and_filtered(dtype):
    g = torch.Generator().manual_seed(1)
    B, N = 40, 25
    scores = torch.randint(0, 4, (B, N), generator=g).to(dtype)  # four values: ties everywhere
    targets = torch.randint(0, N, (B,), generator=g)
    rows = torch.randint(0, B, (300,), generator=g)
    cols = torch.randint(0, N, (300,), generator=g)
    rows = torch.cat([rows, torch.arange(B), rows[:20]])  # targets listed, and repeated pairs
    cols = torch.cat([cols, targets, cols[:20]])

    raw = rank_targets(scores, targets)
    filtered = rank_targets(scores, targets, rows, cols)
    assert raw.dtype == torch.float64 and raw.shape == (B,)
    excluded = [set() for _ in range(B)]
    for r, c in zip(rows.tolist(), cols.tolist()):
        excluded[r].add(c)
    s = scores.float().tolist()
    for i in range(B):
        assert raw[i].item() == brute_rank(s[i], targets[i].item(), set())
        assert filtered[i].item() == brute_rank(s[i], targets[i].item(), excluded[i])
    assert (filtered <= raw).all() and (filtered < raw).any()


def test_rank_targets_ties_use_the_middle_rank():
    scores = torch.tensor([[5.0, 5.0, 5.0, 5.0], [1.0, 9.0, 9.0, 0.0], [3.0, 2.0, 1.0, 0.0]])
    ranks = rank_targets(scores, torch.tensor([0, 1, 0]))
    # all tied: (1 + 4) / 2; tied for first with one other: (1 + 2) / 2; strict best: 1
    assert ranks.tolist() == [2.5, 1.5, 1.0]


def test_rank_targets_keeps_a_target_listed_in_the_filter():
    scores = torch.tensor([[0.0, 3.0, 2.0, 1.0]])
    target = torch.tensor([2])
    # the filter names the target and the one better candidate: only the latter goes
    ranks = rank_targets(scores, target, torch.tensor([0, 0]), torch.tensor([2, 1]))
    assert ranks.tolist() == [1.0]
    assert rank_targets(scores, target, torch.tensor([0]), torch.tensor([2])).tolist() == [2.0]


def test_rank_targets_target_scoring_minus_inf_is_not_tied_with_filtered_candidates():
    inf = float("inf")
    scores = torch.tensor([[-inf, -inf, -inf, 0.0]])
    # candidates 1 and 2 are filtered: only candidate 3 (better) and the target remain
    ranks = rank_targets(scores, torch.tensor([0]), torch.tensor([0, 0]), torch.tensor([1, 2]))
    assert ranks.tolist() == [2.0]


def test_rank_targets_rejects_nan():
    scores = torch.zeros(3, 5)
    scores[1, 4] = float("nan")
    with pytest.raises(ValueError, match=r"^scores hold NaN in 1 of 3 rows \(first: row 1\); cannot rank them$"):
        rank_targets(scores, torch.zeros(3, dtype=torch.long))


def test_rank_targets_needs_both_filter_halves():
    with pytest.raises(ValueError, match="filter_rows and filter_cols must be given together"):
        rank_targets(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.tensor([0]), None)


# --- compute_metrics -------------------------------------------------------------------------------
def test_compute_metrics_exact_values():
    m = compute_metrics(torch.tensor([1.0, 2.0, 3.5, 10.0, 11.0]))
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3.5 + 1 / 10 + 1 / 11) / 5)
    assert m["mr"] == pytest.approx(5.5)
    assert (m["hits@1"], m["hits@3"], m["hits@10"], m["count"]) == (0.2, 0.4, 0.8, 5)
    assert tuple(m) == METRIC_KEYS  # the vocabulary every table, log and grid uses


def test_compute_metrics_rejects_empty_and_impossible_ranks():
    with pytest.raises(ValueError, match="no ranks to summarise"):
        compute_metrics(torch.tensor([]))
    with pytest.raises(ValueError, match=r"ranks must be >= 1, got minimum 0.5"):
        compute_metrics(torch.tensor([0.5, 2.0]))


# --- evaluate --------------------------------------------------------------------------------------
@pytest.mark.parametrize("conditioned", [False, True])
@pytest.mark.parametrize("split", ["valid", "test"])
def test_evaluate_matches_brute_force(dataset, conditioned, split):
    model = FakeModel(conditioned=conditioned)
    result = evaluate(model, dataset, split, batch_size=7, chunk_size=11, return_ranks=True)
    want = brute_force_ranks(model, dataset, split)
    for side in ("tail", "head"):
        np.testing.assert_array_equal(result["ranks"][side], want[side])
        assert_metrics_close(result["by_side"][side], want[side])
    assert_metrics_close(result, np.concatenate([want["tail"], want["head"]]))
    assert result["count"] == 2 * len(dataset.split(split))


def brute_self_answer(row_scores: list, asked: int, target: int, excluded: set) -> bool:
    """The asked entity is a candidate (not the target, not another known answer) and scores
    strictly above every other candidate, the target included."""
    if asked == target or asked in excluded:
        return False
    others = [c for c in range(len(row_scores)) if c != asked and (c == target or c not in excluded)]
    return all(row_scores[asked] > row_scores[c] for c in others)


@pytest.mark.parametrize("seed", range(5))
def test_self_answers_match_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    b, n = 40, 9
    scores = torch.randint(0, 6, (b, n), generator=g).double()  # ties, and strict tops
    asked, targets = torch.randint(0, n, (b,), generator=g), torch.randint(0, n, (b,), generator=g)
    scores[torch.arange(0, b, 3), asked[::3]] = 9.0  # every third row: the asked entity on top
    pairs = torch.randint(0, n, (60, 2), generator=g)
    rows, cols = pairs[:, 0] % b, pairs[:, 1]
    want = [
        brute_self_answer(
            scores[i].tolist(),
            int(asked[i]),
            int(targets[i]),
            {int(c) for r, c in zip(rows.tolist(), cols.tolist()) if r == i and c != targets[i]},
        )
        for i in range(b)
    ]
    assert self_answers(scores, asked, targets, rows, cols).tolist() == want
    assert any(want) and not all(want)  # the draw exercises both outcomes


def test_self_answers_ignore_ties_at_the_top_and_an_asked_target():
    scores = torch.tensor([[5.0, 5.0, 1.0], [5.0, 2.0, 1.0], [5.0, 2.0, 1.0], [5.0, 2.0, 1.0]])
    asked, targets = torch.tensor([0, 0, 0, 0]), torch.tensor([1, 1, 0, 2])
    rows, cols = torch.tensor([3]), torch.tensor([0])  # row 3: the asked entity is another known answer
    assert self_answers(scores, asked, targets, rows, cols).tolist() == [False, True, False, False]


@pytest.mark.parametrize("conditioned", [False, True])
def test_evaluate_self_answer_share_matches_brute_force(dataset, conditioned):
    model = FakeModel(conditioned=conditioned, seed=3)
    result = evaluate(model, dataset, "test", batch_size=5, chunk_size=7)
    true = set(map(tuple, dataset.all_true.tolist()))
    full, every = (lambda v: torch.full((N_ENT,), v)), torch.arange(N_ENT)  # noqa: E731
    flags = {"tail": [], "head": []}
    with torch.no_grad():
        for h, r, t in dataset.split("test").tolist():
            s = model.score(full(h), full(r), every).tolist()
            flags["tail"].append(brute_self_answer(s, h, t, {e for e in range(N_ENT) if (h, r, e) in true}))
            s = model.score(every, full(r), full(t)).tolist()
            flags["head"].append(brute_self_answer(s, t, h, {e for e in range(N_ENT) if (e, r, t) in true}))
    for side in ("tail", "head"):
        assert result["by_side"][side]["self_answer"] == pytest.approx(np.mean(flags[side]), rel=1e-12)
    assert result["self_answer"] == pytest.approx(np.mean(flags["tail"] + flags["head"]), rel=1e-12)
    assert 0 < result["self_answer"] < 1
    for part in ("by_category", "by_relation"):
        counts = sum(m["count"] * m["self_answer"] for m in result[part].values())
        assert counts == pytest.approx(result["count"] * result["self_answer"])


def test_self_answer_warning_names_the_relations_with_a_high_share():
    from afme_lib.engine.evaluation import self_answer_warning

    result = {
        "self_answer": 0.3,
        "by_relation": {
            "sym": {"self_answer": 0.9, "count": 40},
            "rare": {"self_answer": 1.0, "count": 2},
            "fine": {"self_answer": 0.02, "count": 80},
        },
    }
    message = self_answer_warning(result, "test")
    assert "sym 90%" in message and "rare" not in message and "fine" not in message
    assert "--self-negatives 1" in message  # a run without them is told to use them
    assert "weight 1:" in self_answer_warning(result, "test", self_negatives=1.0)  # one with them, to raise them
    assert (
        self_answer_warning({"self_answer": 0.0, "by_relation": {"fine": {"self_answer": 0.02, "count": 80}}}, "test")
        is None
    )


def test_evaluate_relation_conditioned_builds_one_table_per_relation(dataset):
    model = FakeModel(conditioned=True)
    result = evaluate(model, dataset, "test", batch_size=3)
    relations = sorted(set(dataset.test[:, 1].tolist()))
    assert len(relations) > 1
    assert sorted(model.table_calls) == relations  # each distinct relation once, for both sides
    # ... and the same numbers as scoring every query on its own through the base class
    one_by_one = {"tail": [], "head": []}
    index = FilterIndex.from_dataset(dataset)
    for h, r, t in dataset.test.tolist():
        for side, known, target in (("tail", h, t), ("head", t, h)):
            scores = KGModel.score_all(model, torch.tensor([known]), torch.tensor([r]), side)
            rows, cols = index.known_answers(torch.tensor([known]), torch.tensor([r]), side)
            one_by_one[side].append(rank_targets(scores, torch.tensor([target]), rows, cols).item())
    for side in ("tail", "head"):
        assert_metrics_close(result["by_side"][side], np.array(one_by_one[side]))


def test_evaluate_builds_one_table_for_an_unconditioned_model(dataset):
    model = FakeModel(conditioned=False)
    evaluate(model, dataset, "test", batch_size=4)
    assert model.table_calls == [None]


def test_evaluate_uses_the_given_filter_index(dataset):
    model = FakeModel()
    full = evaluate(model, dataset, "test", return_ranks=True)
    train_only = evaluate(model, dataset, "test", filter_index=FilterIndex(dataset.train, N_REL), return_ranks=True)
    # only training triples are filtered now (other valid / test answers stay as candidates)
    want = brute_force_ranks(model, dataset, "test", true_triples=dataset.train)
    for side in ("tail", "head"):
        np.testing.assert_array_equal(train_only["ranks"][side], want[side])
        # filtering more true answers can only lift a rank
        assert (full["ranks"][side] <= train_only["ranks"][side]).all()
    assert full["mrr"] > train_only["mrr"]


def test_constant_model_gets_the_middle_of_the_filtered_candidates(dataset):
    model = FakeModel(scorer=ConstantScorer())
    result = evaluate(model, dataset, "test", batch_size=5, return_ranks=True)
    true = set(map(tuple, dataset.all_true.tolist()))
    for i, (h, r, t) in enumerate(dataset.test.tolist()):
        other_tails = sum((h, r, e) in true for e in range(N_ENT)) - 1
        other_heads = sum((e, r, t) in true for e in range(N_ENT)) - 1
        assert result["ranks"]["tail"][i] == (N_ENT - other_tails + 1) / 2
        assert result["ranks"]["head"][i] == (N_ENT - other_heads + 1) / 2
    assert result["mr"] < (N_ENT + 1) / 2  # filtering shrank some candidate sets


def test_perfect_model_gets_mrr_one(dataset):
    result = evaluate(OracleModel(dataset.all_true), dataset, "test", batch_size=8)
    for metrics in [result, *result["by_side"].values(), *result["by_category"].values()]:
        assert (metrics["mrr"], metrics["mr"], metrics["hits@1"], metrics["hits@10"]) == (1.0, 1.0, 1.0, 1.0)


def test_by_side_and_by_category_add_up(dataset):
    result = evaluate(FakeModel(), dataset, "test", return_ranks=True)
    n = len(dataset.test)
    assert result["count"] == 2 * n
    assert [result["by_side"][s]["count"] for s in ("tail", "head")] == [n, n]
    categories = triple_categories(dataset, "test")
    assert list(result["by_category"]) == [c for c in ("1-1", "1-N", "N-1", "N-N") if (categories == c).any()]
    assert len(result["by_category"]) > 1
    assert sum(m["count"] for m in result["by_category"].values()) == 2 * n
    for cat, metrics in result["by_category"].items():
        mask = categories == cat
        assert_metrics_close(metrics, np.concatenate([result["ranks"]["tail"][mask], result["ranks"]["head"][mask]]))
    mrr_by_cat = sum(m["mrr"] * m["count"] for m in result["by_category"].values()) / (2 * n)
    assert mrr_by_cat == pytest.approx(result["mrr"])


def test_by_category_lists_only_the_categories_present():
    data = make_dataset()
    data.shipped_test_categories = {"N-N": data.test.clone()}  # the shipped files call every test triple N-N
    result = evaluate(FakeModel(), data, "test")
    assert list(result["by_category"]) == ["N-N"]
    assert result["by_category"]["N-N"]["count"] == 2 * len(data.test)


@pytest.mark.parametrize("conditioned", [False, True])
def test_result_does_not_depend_on_batch_or_chunk_size(dataset, conditioned):
    model = FakeModel(conditioned=conditioned, seed=3)
    reference = evaluate(model, dataset, "valid", return_ranks=True)
    for batch_size, chunk_size in [(1, 1), (4, 7), (1000, 0), (3, None), (256, 1024)]:
        result = evaluate(model, dataset, "valid", batch_size=batch_size, chunk_size=chunk_size, return_ranks=True)
        for side in ("tail", "head"):
            np.testing.assert_array_equal(result["ranks"][side], reference["ranks"][side])
        without_ranks = lambda r: {k: v for k, v in r.items() if k != "ranks"}  # noqa: E731
        assert without_ranks(result) == without_ranks(reference)


def test_nan_score_raises_naming_the_split(dataset):
    model = FakeModel()
    model.ent.data[7] = float("nan")  # every query now scores candidate 7 as NaN
    model.train()
    with pytest.raises(
        ValueError,
        match=r"^NaN score while evaluating split 'valid' of dataset 'toy': "
        r"\d+ of \d+ queries affected, first the tail query of triple #0 ",
    ):
        evaluate(model, dataset, "valid")
    assert model.training  # the mode is restored even when evaluation fails


def test_eval_mode_during_scoring_and_previous_mode_restored(dataset):
    model = FakeModel(conditioned=True)
    model.train()
    evaluate(model, dataset, "test")
    assert model.modes and not any(model.modes) and model.training
    model.eval()
    evaluate(model, dataset, "test")
    assert not model.training


def test_default_chunk_is_passed_to_the_scorer(dataset):
    model = FakeModel()
    for chunk in (None, 0):
        model.scorer.chunks.clear()
        evaluate(model, dataset, "test", chunk_size=chunk)
        assert set(model.scorer.chunks) == {N_ENT}  # small graph: the clamp takes every entity
    model.scorer.chunks.clear()
    evaluate(model, dataset, "test", chunk_size=9)
    assert set(model.scorer.chunks) == {9}


def test_progress_bar_on_a_terminal_only(dataset, capsys, monkeypatch):
    result = evaluate(FakeModel(), dataset, "test", batch_size=4, progress=True)
    assert result["count"] == 2 * len(dataset.test)
    assert capsys.readouterr().err == ""  # captured output is no terminal: no bar (afme_lib.core.console)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    evaluate(FakeModel(), dataset, "test", batch_size=4, progress=True)
    assert "eval test" in sys.stderr.getvalue()


def test_evaluate_rejects_bad_inputs(dataset):
    empty = KGDataset(
        "empty", None, dataset.entity_names, dataset.relation_names, dataset.train, dataset.valid, dataset.test[:0]
    )
    with pytest.raises(ValueError, match=r"^split 'test' of dataset 'empty' has no triples to evaluate$"):
        evaluate(FakeModel(), empty, "test")
    bigger = KGDataset(
        "bigger",
        None,
        dataset.entity_names + ["extra"],
        dataset.relation_names,
        dataset.train,
        dataset.valid,
        dataset.test,
    )
    with pytest.raises(ValueError, match=r"^model scores 30 entities but dataset 'bigger' has 31$"):
        evaluate(FakeModel(), bigger, "test")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        evaluate(FakeModel(), dataset, "test", batch_size=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_evaluate_on_cuda_matches_cpu(dataset):
    model = FakeModel(conditioned=True)
    on_cpu = evaluate(model, dataset, "test", return_ranks=True)
    on_gpu = evaluate(model.cuda(), dataset, "test", return_ranks=True)
    for side in ("tail", "head"):
        np.testing.assert_array_equal(on_gpu["ranks"][side], on_cpu["ranks"][side])
    assert on_gpu["mrr"] == on_cpu["mrr"]


# --- default_chunk_size ------------------------------------------------------------------------
def test_default_chunk_size_on_cpu():
    budget = 256 * 2**20
    assert default_chunk_size(100, 64, 256, "cpu") == 100  # never more than the entities
    assert default_chunk_size(10**7, 64, 256, "cpu") == budget // (2 * 4 * 256 * 64)  # 2048
    assert default_chunk_size(10**7, 4096, 512, "cpu") == 1024  # the floor
    assert default_chunk_size(10**7, 8, 1, "cpu") == budget // 64


def test_default_chunk_size_on_cuda_reads_free_memory(monkeypatch):
    seen = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: seen.append(device) or (8 * 2**30, 80 * 2**30))
    assert default_chunk_size(10**7, 64, 256, "cuda:0") == (8 * 2**30 // 4) // (2 * 4 * 256 * 64)
    assert seen == [torch.device("cuda:0")]
    assert default_chunk_size(5000, 64, 256, "cuda") == 5000
    assert math.isclose(default_chunk_size(10**9, 1, 1, "cuda"), 2 * 2**30 // 8)


# --- the random-ranking baseline ------------------------------------------------------------------
def brute_random_baseline(dataset, split, true_triples=None, keep=None) -> dict:
    """Expected metrics of uniform ranks, by enumerating every rank 1..c of every query."""
    true = set(map(tuple, (dataset.all_true if true_triples is None else true_triples).tolist()))
    per_query = []  # (E[1/rank], E[rank], P(rank <= 1), P(<= 3), P(<= 10)) of each query
    for i, (h, r, t) in enumerate(dataset.split(split).tolist()):
        if keep is not None and not keep[i]:
            continue
        for target, is_true in ((t, lambda e, h=h, r=r: (h, r, e) in true), (h, lambda e, r=r, t=t: (e, r, t) in true)):
            c = sum(1 for e in range(N_ENT) if e == target or not is_true(e))
            ranks = range(1, c + 1)
            per_query.append(
                [
                    sum(1 / k for k in ranks) / c,
                    sum(ranks) / c,
                    *(sum(k <= cut for k in ranks) / c for cut in (1, 3, 10)),
                ]
            )
    mean = np.mean(per_query, axis=0)
    return {
        "mrr": mean[0],
        "mr": mean[1],
        "hits@1": mean[2],
        "hits@3": mean[3],
        "hits@10": mean[4],
        "count": len(per_query),
    }


@pytest.mark.parametrize("split", ["valid", "test"])
def test_random_baseline_matches_brute_force(dataset, split):
    got = random_baseline(dataset, split)
    want = brute_random_baseline(dataset, split)
    assert got["count"] == want["count"] == 2 * len(dataset.split(split))
    for key in ("mrr", "mr", "hits@1", "hits@3", "hits@10"):
        assert got[key] == pytest.approx(want[key], rel=1e-12), key
    assert got["mrr"] >= sum(1 / k for k in range(1, N_ENT + 1)) / N_ENT  # filtering only shrinks c


def test_random_baseline_with_another_filter_and_a_mask(dataset):
    train_only = FilterIndex(dataset.train, N_REL)  # test targets are not in it: c counts them once
    keep = triple_categories(dataset, "test") != "1-1"
    got = random_baseline(dataset, "test", filter_index=train_only, triples_mask=keep)
    want = brute_random_baseline(dataset, "test", true_triples=dataset.train, keep=keep)
    assert got["count"] == want["count"] == 2 * int(keep.sum())
    for key in ("mrr", "mr", "hits@1", "hits@3", "hits@10"):
        assert got[key] == pytest.approx(want[key], rel=1e-12), key
    assert "1-1" not in got["by_category"]


def test_random_baseline_parts_add_up_and_mr_equals_a_constant_models(dataset):
    """MR is E[rank] = (c + 1) / 2, which a constant-score model gets exactly (realistic ties);
    its MRR is lower (2 / (c + 1) <= H_c / c)."""
    got = random_baseline(dataset, "test")
    constant = evaluate(FakeModel(scorer=ConstantScorer()), dataset, "test")
    assert got["mr"] == pytest.approx(constant["mr"], rel=1e-12)
    assert constant["mrr"] < got["mrr"]
    parts = [k for k in constant if k.startswith("by_")]
    assert parts == [k for k in got if k.startswith("by_")] and {"by_side", "by_category", "by_relation"} <= set(parts)
    for part in parts:
        assert list(got[part]) == list(constant[part])
        assert sum(m["count"] for m in got[part].values()) == got["count"]
        assert sum(m["mrr"] * m["count"] for m in got[part].values()) / got["count"] == pytest.approx(got["mrr"])
        for name, metrics in got[part].items():
            assert metrics["mr"] == pytest.approx(constant[part][name]["mr"], rel=1e-12), (part, name)
