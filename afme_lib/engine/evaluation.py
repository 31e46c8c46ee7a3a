"""Filtered link-prediction evaluation: realistic ranks, MRR / MR / Hits@k, by side and category.

Protocol. Every triple (h, r, t) of the split gives two queries: a tail query (h, r, ?) whose
target is t and a head query (?, r, t) whose target is h. Every entity is scored as the missing
element. In the *filtered* setting every other known true answer of the query (over train +
valid + test, from :class:`~afme_lib.data.filters.FilterIndex`) is removed from the candidates;
the target itself always stays.

Ranks use the "realistic" tie rule (:mod:`afme_lib.core.ranking`), so a model cannot profit from ties
(a constant-score model gets the middle rank, not rank 1). With ``s`` the target's score and
``C`` the filtered candidates (target included)::

    optimistic  = 1 + #{c in C : score(c) >  s}
    pessimistic =     #{c in C : score(c) >= s}          (counts the target itself)
    rank        = (optimistic + pessimistic) / 2

Metrics over ranks ``r_1 .. r_Q`` (tail and head queries pooled)::

    MRR    = mean(1 / r_i)        MR = mean(r_i)
    Hits@k = #{i : r_i <= k} / Q  (a fraction in [0, 1], not a percentage)

Self-answers. Beside them every part of the result holds ``self_answer``: the share of queries
whose top-ranked filtered candidate is the entity the query asks about (h for (h, r, ?)), when
that entity is not the answer (:func:`~afme_lib.core.ranking.self_answers`). The protocol rightly
keeps it a candidate; a model that never learnt (h, r, h) is false ranks it first, typically
on symmetric relations and wherever features make an entity most similar to itself
(``TrainConfig.self_negatives`` trains that away). :func:`self_answer_warning` names the
relations where the share is high.

Memory. The main temporary is the score matrix of one batch, ``[B, N]`` (B = ``batch_size``
queries, N = entities; 4 bytes per score in float32, 2 under bf16 autocast), plus one ``[B, N]``
bool comparison mask at a time while ranking. The scorer's own intermediates are bounded by the
candidate chunk (``chunk_size``, see :func:`default_chunk_size`). E.g. B = 256 and N = 15 000 is
15 MB of scores. A relation-conditioned model also holds one ``[N, D]`` entity table at a time.
(afme_lib/engine/memory.py turns this into bytes per entity for every model.)

Several processes (torchrun): every process calls :func:`evaluate`; each ranks one contiguous
block of the queries (in the order below) and the ranks are gathered, so all processes return
the same result, equal to a one-process evaluation. They agree on the chunk budget first (the
smallest), so every process scores with the same chunk size.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from afme_lib.core import console
from afme_lib.core.ranking import compute_metrics, expected_uniform_metrics, realistic_ranks, self_answers
from afme_lib.data.dataset import KGDataset
from afme_lib.data.filters import CATEGORIES, FilterIndex, triple_categories
from afme_lib.data.groups import group_order, triple_groups
from afme_lib.engine import distributed
from afme_lib.engine.device import chunk_for_budget, eval_chunk_budget

SIDES = ("tail", "head")

# Which triple column holds the query's known entity and which the target, per side.
_COLUMNS = {"tail": (0, 2), "head": (2, 0)}


# --- memory ---------------------------------------------------------------------------------
def default_chunk_size(num_entities: int, dim: int, batch_size: int, device, budget: int | None = None) -> int:
    """Candidates per scorer chunk, from the memory at hand, clamped to [1024, num_entities].

    A scorer materialises about ``batch_size * chunk * dim`` float32 values per chunk (e.g. the
    ``q + r - t`` differences of a distance scorer); counting two such tensors alive at once:
    ``chunk = budget / (2 * 4 * batch_size * dim)``. The budget
    (:func:`afme_lib.engine.device.eval_chunk_budget`, unless given) is a quarter of the free CUDA
    memory (the rest stays for the [B, N] scores, the model and allocator slack), or on other
    devices a quarter of the available RAM capped at 256 MB. ``dim`` counts real numbers per
    entity row (a complex d-vector is 2d).
    """
    if budget is None:
        budget = eval_chunk_budget(device)
    return chunk_for_budget(num_entities, dim, batch_size, budget)


def _reals_per_row(table: torch.Tensor) -> int:
    per_row = table[0].numel() if table.shape[0] else 1
    return per_row * (2 if table.is_complex() else 1)


# --- evaluation -----------------------------------------------------------------------------
@torch.no_grad()
def evaluate(
    model,
    dataset: KGDataset,
    split: str = "test",
    filter_index: FilterIndex | None = None,
    batch_size: int = 256,
    chunk_size: int | None = None,
    progress: bool = False,
    return_ranks: bool = False,
    shard: bool | None = None,
) -> dict:
    """Filtered link prediction on ``split``: both query sides, realistic ranks (see module doc).

    Returns the pooled metrics (:func:`compute_metrics`; ``count`` = number of queries, two per
    triple) and ``self_answer`` (module docstring), plus ``"by_side"`` (``"tail"``, ``"head"``),
    ``"by_category"`` (``"1-1"``, ``"1-N"``, ``"N-1"``, ``"N-N"`` from :func:`triple_categories`,
    only those that occur), ``"by_relation"`` (keyed by relation name) and, when the dataset
    declares entity groups (:mod:`afme_lib.data.groups`), ``"by_group"`` (a triple's group is its
    endpoints' group of highest precedence: ``"cold"`` holds every query about a cold entity),
    each with the same keys. With ``return_ranks``, ``"ranks": {"tail": ndarray, "head": ndarray}``
    holds the float64 rank of each triple's query, in the split's order.

    Runs on the model's device. A relation-conditioned model (``model.relation_conditioned``)
    builds its entity table once per distinct relation of the split and scores that relation's
    queries (both sides) against it; other models build one table for the whole split.
    ``filter_index`` defaults to every true triple of ``dataset`` (building it takes seconds on a
    large graph: callers that evaluate repeatedly, like training, build it once and pass it in);
    ``chunk_size`` None or 0 picks one with :func:`default_chunk_size`. The model is put in eval
    mode and its previous mode restored afterwards, even on error. ``shard`` splits the queries
    over the processes of torch.distributed (None: whenever a group of more than one process
    exists; every process must then call evaluate with the same arguments).
    Raises ValueError naming the split when a score is NaN.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    triples_cpu = dataset.split(split).long()
    if len(triples_cpu) == 0:
        raise ValueError(f"split {split!r} of dataset {dataset.name!r} has no triples to evaluate")
    device = _model_device(model)
    triples = triples_cpu.to(device)
    index = (filter_index if filter_index is not None else FilterIndex.from_dataset(dataset)).to(device)

    sharded = distributed.is_active() if shard is None else bool(shard)
    world, me = (distributed.world_size(), distributed.rank()) if sharded else (1, 0)
    budget = None
    if not chunk_size:
        budget = eval_chunk_budget(device)
        if sharded:  # one chunk size for all: the smallest budget
            budget = int(distributed.all_reduce(torch.tensor([budget], dtype=torch.long), "min"))

    n = len(triples)
    order = _query_order(model, triples)
    lo, hi = distributed.shard_bounds(n, me, world)
    was_training = model.training
    model.eval()
    try:
        local_ranks, local_nan, local_self = _rank_queries(
            model, dataset, split, triples, order[lo:hi], index, batch_size, chunk_size or None, budget, progress
        )
    finally:
        model.train(was_training)
    # [m, 6]: tail rank, head rank, tail NaN flag, head NaN flag, tail and head self-answer flags of
    # the block's queries; gathered in rank order, the blocks line up with `order` again.
    block = torch.stack(
        [
            local_ranks["tail"],
            local_ranks["head"],
            local_nan["tail"].double(),
            local_nan["head"].double(),
            local_self["tail"].double(),
            local_self["head"].double(),
        ],
        1,
    )
    gathered = distributed.all_gather_rows(block) if sharded else block
    ranks = {s: torch.empty(n, dtype=torch.float64, device=device) for s in SIDES}
    nan_rows = {s: torch.zeros(n, dtype=torch.bool, device=device) for s in SIDES}
    self_rows = {s: torch.zeros(n, dtype=torch.bool, device=device) for s in SIDES}
    for i, side in enumerate(SIDES):
        ranks[side][order] = gathered[:, i]
        nan_rows[side][order] = gathered[:, 2 + i] > 0
        self_rows[side][order] = gathered[:, 4 + i] > 0

    nan_any = torch.stack([nan_rows[s] for s in SIDES])  # [2, n]
    if bool(nan_any.any()):
        side_i, row = (int(v) for v in nan_any.nonzero()[0])
        h, r, t = triples_cpu[row].tolist()
        raise ValueError(
            f"NaN score while evaluating split {split!r} of dataset {dataset.name!r}: "
            f"{int(nan_any.sum())} of {nan_any.numel()} queries affected, first the {SIDES[side_i]} "
            f"query of triple #{row} (h={h}, r={r}, t={t}); the model has diverged or its inputs hold NaN"
        )

    ranks = {s: ranks[s].cpu() for s in SIDES}
    result = _breakdown(dataset, split, ranks, compute_metrics)
    _merge(result, _breakdown(dataset, split, {s: self_rows[s].cpu() for s in SIDES}, _self_answer_share))
    if return_ranks:
        result["ranks"] = {s: ranks[s].numpy() for s in SIDES}
    return result


def _self_answer_share(flags: torch.Tensor) -> dict:
    return {"self_answer": float(flags.double().mean())}


def _merge(into: dict, extra: dict) -> None:
    """Add ``extra``'s keys to ``into`` at every level (the two come from one :func:`_breakdown`
    layout)."""
    for key, value in extra.items():
        if isinstance(value, dict):
            _merge(into[key], value)
        else:
            into[key] = value


class SelfAnswerWarning(UserWarning):
    """Many queries of an evaluation were answered with the entity they ask about."""


# Relations whose self-answer share reaches this (with at least SELF_ANSWER_MIN_QUERIES queries) are named.
SELF_ANSWER_WARN = 0.1
SELF_ANSWER_MIN_QUERIES = 10


def self_answer_warning(
    result: dict, split: str, self_negatives: float = 0.0, threshold: float = SELF_ANSWER_WARN
) -> str | None:
    """One line naming the relations of an :func:`evaluate` result whose queries are answered
    with the asked entity itself in at least ``threshold`` of cases (None when none is), and what
    to do about it given the run's ``self_negatives`` weight."""
    high = {
        name: m["self_answer"]
        for name, m in result.get("by_relation", {}).items()
        if m.get("self_answer", 0.0) >= threshold and m["count"] >= SELF_ANSWER_MIN_QUERIES
    }
    if not high:
        return None
    worst = sorted(high.items(), key=lambda kv: -kv[1])
    listed = ", ".join(f"{name} {share:.0%}" for name, share in worst[:5]) + (", ..." if len(worst) > 5 else "")
    advice = (
        f"This run had self-negatives at weight {self_negatives:g}: a higher --self-negatives or more epochs "
        "teach that (h, r, h) is false"
        if self_negatives > 0
        else "Train with self-negatives (--self-negatives 1) so that (h, r, h) is seen as false"
    )
    return (
        f"{split}: {result['self_answer']:.1%} of queries are answered with the entity they ask about (its "
        f"top-ranked candidate is the asked entity, not their answer); highest on {listed}. {advice}"
    )


def recorded_slices(dataset: KGDataset, split: str) -> dict[str, list[str]]:
    """The slices :func:`evaluate` records for ``split``: ``{breakdown: [key, ...]}`` for
    ``by_side``, ``by_category``, ``by_relation`` and (with entity groups) ``by_group``, each key
    a slice with at least one triple. What a search may name as its objective, before any run."""
    _, order = _slice_labels(dataset, split)
    return {"by_side": list(SIDES), **{part: [str(k) for k in keys] for part, keys in order.items()}}


def _slice_labels(dataset: KGDataset, split: str, keep: np.ndarray | None = None) -> tuple[dict, dict]:
    """({breakdown: label per triple}, {breakdown: its labels present, in display order}) of
    ``split`` (only the ``keep`` triples when given), side aside."""
    triples = dataset.split(split).long().numpy()
    names = np.array(dataset.relation_names, dtype=object)
    labels = {"by_category": triple_categories(dataset, split), "by_relation": names[triples[:, 1]]}
    if dataset.entity_groups is not None:
        labels["by_group"] = triple_groups(triples, dataset.entity_groups)
    if keep is not None:
        labels = {part: values[keep] for part, values in labels.items()}
    order = {
        "by_category": [c for c in CATEGORIES if (labels["by_category"] == c).any()]
        + sorted(set(labels["by_category"].tolist()) - set(CATEGORIES)),
        "by_relation": [r for r in names if (labels["by_relation"] == r).any()],
    }
    if "by_group" in labels:
        order["by_group"] = [g for g in group_order(dataset.entity_groups) if (labels["by_group"] == g).any()]
    return labels, order


def _breakdown(dataset: KGDataset, split: str, per_query: dict, summarise, keep: np.ndarray | None = None) -> dict:
    """``summarise`` (e.g. :func:`compute_metrics` of ranks) of both sides' ``per_query`` values
    ({side: [n]}, the split's order) pooled, then ``by_side``, ``by_category``, ``by_relation``
    and, when the dataset declares entity groups, ``by_group`` (see :func:`evaluate`); ``keep``
    [n] bool: only those triples."""
    labels, order = _slice_labels(dataset, split, keep)
    if keep is not None:
        per_query = {s: v[torch.from_numpy(keep)] for s, v in per_query.items()}
    result = summarise(torch.cat([per_query[s] for s in SIDES]))
    result["by_side"] = {s: summarise(per_query[s]) for s in SIDES}
    for part, keys in order.items():
        result[part] = {
            str(key): summarise(torch.cat([per_query[s][torch.from_numpy(labels[part] == key)] for s in SIDES]))
            for key in keys
        }
    return result


def _query_order(model, triples: torch.Tensor) -> torch.Tensor:
    """The order queries are ranked in: by relation for a relation-conditioned model (so each
    relation's entity table is built once), else the split's own order."""
    if bool(getattr(model, "relation_conditioned", False)):
        return torch.argsort(triples[:, 1], stable=True)
    return torch.arange(len(triples), device=triples.device)


def _rank_queries(model, dataset, split, triples, rows, index, batch_size, chunk_size, budget, progress):
    """Ranks, NaN flags and self-answer flags per side, {side: [m]} each, of the triples at
    positions ``rows`` [m] of ``triples`` (a block of :func:`_query_order`), batched over queries."""
    device, m = triples.device, len(rows)
    conditioned = bool(getattr(model, "relation_conditioned", False))
    if conditioned and m:
        relations, counts = torch.unique_consecutive(triples[rows, 1], return_counts=True)
        sizes = np.asarray(counts.tolist())
        ends = np.cumsum(sizes)
        groups = list(zip(relations.tolist(), (ends - sizes).tolist(), ends.tolist()))
    else:
        groups = [(None, 0, m)] if m else []
    total = sum(2 * math.ceil((end - start) / batch_size) for _rel, start, end in groups)

    ranks = {s: torch.empty(m, dtype=torch.float64, device=device) for s in SIDES}
    nan_rows = {s: torch.zeros(m, dtype=torch.bool, device=device) for s in SIDES}
    self_rows = {s: torch.zeros(m, dtype=torch.bool, device=device) for s in SIDES}
    chunk = chunk_size
    with console.progress_bar(None, progress, total=total, desc=f"eval {split}", unit="batch", leave=False) as bar:
        for relation, start, end in groups:
            queries, table = model.tables(relation) if conditioned else model.tables()
            if table.shape[0] != dataset.num_entities:
                raise ValueError(
                    f"model scores {table.shape[0]} entities but dataset {dataset.name!r} has {dataset.num_entities}"
                )
            if chunk is None:
                chunk = default_chunk_size(
                    dataset.num_entities, _reals_per_row(table), batch_size, table.device, budget
                )
            for side in SIDES:
                known_col, target_col = _COLUMNS[side]
                for lo in range(start, end, batch_size):
                    at = slice(lo, min(lo + batch_size, end))
                    batch = triples[rows[at]]
                    known, rels, target = batch[:, known_col], batch[:, 1], batch[:, target_col]
                    scores = model.scorer.score_all(queries[known], model.relation_repr(rels), table, side, chunk)
                    filter_rows, filter_cols = index.known_answers(known, rels, side)
                    ranks[side][at], nan_rows[side][at] = realistic_ranks(scores, target, filter_rows, filter_cols)
                    self_rows[side][at] = self_answers(scores, known, target, filter_rows, filter_cols)
                    bar.update()
            del table, queries  # free them before the next relation's are built
    return ranks, nan_rows, self_rows


def _model_device(model) -> torch.device:
    try:
        return torch.device(model.device)
    except (AttributeError, StopIteration):  # duck-typed model, or one without parameters
        pass
    tensors = itertools.chain(getattr(model, "parameters", tuple)(), getattr(model, "buffers", tuple)())
    for tensor in tensors:
        return tensor.device
    return torch.device("cpu")


# --- the random-ranking baseline ------------------------------------------------------------
def filtered_candidates(
    dataset: KGDataset, split: str = "test", filter_index: FilterIndex | None = None, block: int = 65536
) -> dict[str, torch.Tensor]:
    """Candidates each query of ``split`` is ranked among under the filtered protocol,
    ``{side: LongTensor [n]}`` in the split's order: ``c = N - #(other known answers)``, the
    target included (as :func:`~afme_lib.core.ranking.rank_targets` counts them). Queries are looked up ``block`` at a time."""
    triples = dataset.split(split).long()
    index = filter_index.to("cpu") if filter_index is not None else FilterIndex.from_dataset(dataset)
    counts = {}
    for side in SIDES:
        known_col, target_col = _COLUMNS[side]
        filtered = torch.zeros(len(triples), dtype=torch.long)
        for lo in range(0, len(triples), block):
            batch = triples[lo : lo + block]
            rows, cols = index.known_answers(batch[:, known_col], batch[:, 1], side)
            other = cols != batch[rows, target_col]  # the target is never filtered out
            filtered[lo : lo + len(batch)] = torch.bincount(rows[other], minlength=len(batch))
        counts[side] = dataset.num_entities - filtered
    return counts


def random_baseline(
    dataset: KGDataset, split: str = "test", filter_index: FilterIndex | None = None, triples_mask=None
) -> dict:
    """What a random ranking scores on ``split``: the expected MRR, MR and Hits@k of a model
    whose scores put each query's target at a uniformly random rank among its filtered
    candidates (:func:`filtered_candidates`), with the parts :func:`evaluate` reports (both
    sides pooled, by side, category, relation, group). The yardstick beside any table of these
    metrics: on 1,000 candidates a random MRR is about 0.75 %. ``triples_mask`` [n] bool keeps
    only those triples.

    A constant-score model ties everything, and the realistic tie rule gives it rank (c + 1) / 2
    exactly: the same MR, a lower MRR (2 / (c + 1)) and Hits@k 0 once c > 2k - 1.
    """
    keep = None if triples_mask is None else np.asarray(triples_mask, dtype=bool)
    if len(dataset.split(split)) == 0 or (keep is not None and not keep.any()):
        raise ValueError(f"split {split!r} of dataset {dataset.name!r} has no triples (left) to rank")
    return _breakdown(dataset, split, filtered_candidates(dataset, split, filter_index), expected_uniform_metrics, keep)
