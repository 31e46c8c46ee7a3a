"""Realistic ranks and the metrics over them: pure math on tensors, shared by evaluation
(:mod:`afme_lib.engine.evaluation`, which states the protocol) and the data checks that rank a rule
(:mod:`afme_lib.data.leakage`).

With ``s`` the target's score and ``C`` the filtered candidates (target included)::

    rank = (1 + #{c in C : score(c) > s} + #{c in C : score(c) >= s}) / 2

    MRR = mean(1 / r_i)    MR = mean(r_i)    Hits@k = #{i : r_i <= k} / Q
"""

from __future__ import annotations

import torch

from afme_lib.core.metric_names import HITS_AT


def rank_targets(
    scores: torch.Tensor,
    targets: torch.Tensor,
    filter_rows: torch.Tensor | None = None,
    filter_cols: torch.Tensor | None = None,
) -> torch.Tensor:
    """Realistic filtered rank of each row's target: ``(1 + #higher + #at_least) / 2``.

    ``scores`` [B, N] (higher = more plausible, any float dtype), ``targets`` [B] column of each
    row's true answer. ``(filter_rows[i], filter_cols[i])`` are candidates to remove (other known
    answers); a pair naming the row's own target is ignored, so the target is always ranked, and
    repeated pairs count once. Returns float64 ranks [B] on ``scores.device`` (halves when ties
    split evenly). Raises ValueError when a row holds a NaN score.
    """
    ranks, nan_rows = realistic_ranks(scores, targets, filter_rows, filter_cols)
    if bool(nan_rows.any()):
        bad = nan_rows.nonzero().flatten()
        raise ValueError(
            f"scores hold NaN in {len(bad)} of {len(nan_rows)} rows (first: row {int(bad[0])}); cannot rank them"
        )
    return ranks


def realistic_ranks(scores, targets, filter_rows, filter_cols) -> tuple[torch.Tensor, torch.Tensor]:
    """Ranks [B] and a NaN flag per row, without any host sync (evaluation raises once at the end)."""
    if scores.dim() != 2:
        raise ValueError(f"scores must be [B, N], got shape {tuple(scores.shape)}")
    if (filter_rows is None) != (filter_cols is None):
        raise ValueError("filter_rows and filter_cols must be given together")
    num_candidates = scores.shape[1]
    targets = targets.to(scores.device, torch.long)
    # Compare in the scores' own dtype: widening bf16/fp16 to float32 is exact, so the counts are
    # the same as in float32 without a float32 copy of the [B, N] matrix.
    target_score = scores.gather(1, targets[:, None])
    higher = (scores > target_score).sum(1)
    at_least = (scores >= target_score).sum(1)
    if filter_rows is not None and filter_rows.numel():
        rows = filter_rows.to(scores.device, torch.long)
        cols = filter_cols.to(scores.device, torch.long)
        keep = cols != targets[rows]  # the target is never filtered out
        key = torch.unique(rows[keep] * num_candidates + cols[keep])  # a repeated pair counts once
        rows, cols = key // num_candidates, key % num_candidates
        # Remove the filtered candidates from the counts instead of overwriting their scores with
        # -inf: no [B, N] copy, and still right when the target itself scores -inf.
        filtered, their_target = scores[rows, cols], target_score[rows, 0]
        higher = higher - torch.zeros_like(higher).index_add_(0, rows, (filtered > their_target).long())
        at_least = at_least - torch.zeros_like(at_least).index_add_(0, rows, (filtered >= their_target).long())
    ranks = (1 + higher + at_least).to(torch.float64) / 2
    return ranks, torch.isnan(scores).any(1)


def self_answers(
    scores: torch.Tensor,
    asked: torch.Tensor,
    targets: torch.Tensor,
    filter_rows: torch.Tensor | None = None,
    filter_cols: torch.Tensor | None = None,
) -> torch.Tensor:
    """[B] bool: row b's top-ranked candidate is the entity its query asks about, and wrongly so.

    ``asked`` [B] is the query's known entity (h of (h, r, ?), t of (?, r, t)). A row counts when
    that entity is a candidate (not the target, and not another known answer removed by the
    filter ``(filter_rows, filter_cols)``, as :func:`rank_targets` takes it) and it scores
    strictly above every other filtered candidate, the target included: its realistic rank is 1.
    A tie at the top is no self-answer, as a tie is no Hit@1 for the target."""
    asked = asked.to(scores.device, torch.long)
    targets = targets.to(scores.device, torch.long)
    own = scores.gather(1, asked[:, None])
    higher = (scores > own).sum(1)
    at_least = (scores >= own).sum(1)  # counts the asked entity itself
    removed = torch.zeros_like(higher, dtype=torch.bool)
    if filter_rows is not None and filter_rows.numel():
        num_candidates = scores.shape[1]
        rows = filter_rows.to(scores.device, torch.long)
        cols = filter_cols.to(scores.device, torch.long)
        other = cols != targets[rows]  # the target always stays a candidate
        removed[rows[other & (cols == asked[rows])]] = True  # the asked entity is another known answer
        keep = other & (cols != asked[rows])
        key = torch.unique(rows[keep] * num_candidates + cols[keep])
        rows, cols = key // num_candidates, key % num_candidates
        filtered, their_own = scores[rows, cols], own[rows, 0]
        higher = higher - torch.zeros_like(higher).index_add_(0, rows, (filtered > their_own).long())
        at_least = at_least - torch.zeros_like(at_least).index_add_(0, rows, (filtered >= their_own).long())
    return (higher == 0) & (at_least == 1) & ~removed & (asked != targets)


def compute_metrics(ranks: torch.Tensor) -> dict:
    """:data:`~afme_lib.core.metric_names.METRIC_KEYS` (mrr, mr, hits@1/3/10, count) of a set of ranks (>= 1).

    MRR = mean(1/rank), MR = mean(rank), Hits@k = fraction of ranks <= k; count = number of ranks.
    Computed in float64 on the CPU.
    """
    r = torch.as_tensor(ranks).detach().to("cpu", torch.float64).flatten()
    if r.numel() == 0:
        raise ValueError("no ranks to summarise")
    if bool(torch.isnan(r).any()) or bool((r < 1).any()):
        raise ValueError(f"ranks must be >= 1, got minimum {float(r.min())}")
    metrics = {"mrr": float((1.0 / r).mean()), "mr": float(r.mean())}
    for k in HITS_AT:
        metrics[f"hits@{k}"] = float((r <= k).double().mean())
    metrics["count"] = int(r.numel())
    return metrics


def expected_uniform_metrics(candidates: torch.Tensor) -> dict:
    """:func:`compute_metrics`' keys, expected when each query's rank is uniform over 1..c, with
    ``candidates`` [Q] the c of each query (the random-ranking baseline)::

        E[1/rank] = H_c / c  (H_c the c-th harmonic number)    E[rank] = (c + 1) / 2
        P(rank <= k) = min(k, c) / c

    each averaged over the queries."""
    c = candidates.to(torch.float64)
    harmonic = torch.cumsum(1.0 / torch.arange(1, int(candidates.max()) + 1, dtype=torch.float64), 0)
    metrics = {"mrr": float((harmonic[candidates - 1] / c).mean()), "mr": float(((c + 1) / 2).mean())}
    for k in HITS_AT:
        metrics[f"hits@{k}"] = float((c.clamp(max=k) / c).mean())
    metrics["count"] = int(c.numel())
    return metrics
