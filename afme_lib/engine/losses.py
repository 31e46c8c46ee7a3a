"""KGC losses (higher score = more plausible): sampled losses on positive scores [B] and negative
scores [B, K], and the 1-N cross-entropy on every entity's score [B, N]."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from afme_lib.core.config import LOSSES, SAMPLED_LOSSES  # declared with TrainConfig.loss; re-exported here


def self_adversarial_loss(
    pos: torch.Tensor, neg: torch.Tensor, margin: float, temperature: float, counts: torch.Tensor | None = None
) -> torch.Tensor:
    """RotatE's self-adversarial negative sampling loss (Sun et al., 2019), batch-averaged::

        L = -( mean_b log sigmoid(margin + s_pos_b) + mean_b sum_i p_bi log sigmoid(-margin - s_neg_bi) ) / 2,
        p_b = softmax_i(temperature * s_neg_bi + log c_bi)   (detached: the weights are not trained)

    i.e. the mean of the positive and the negative part, as in RotatE's reference code. With a
    distance score s = -d this is the paper's gamma - d form. temperature = 0 gives weights in
    proportion to the counts (uniform 1/K without them). ``counts`` [B, K] (default all 1) says
    how many negatives each column stands for; 0 leaves a column out.
    """
    logits = temperature * neg.detach()
    if counts is not None:
        logits = logits + counts.log()
    weights = torch.softmax(logits, dim=-1)
    pos_term = F.logsigmoid(margin + pos)
    neg_term = (weights * F.logsigmoid(-margin - neg)).sum(-1)
    return -(pos_term.mean() + neg_term.mean()) / 2


def _row_mean(values: torch.Tensor, counts: torch.Tensor | None) -> torch.Tensor:
    """Each row's mean over its negatives [B, K] -> [B], column i counted ``counts[b, i]`` times."""
    if counts is None:
        return values.mean(-1)
    return (counts * values).sum(-1) / counts.sum(-1).clamp(min=1e-12)


def margin_ranking_loss(
    pos: torch.Tensor, neg: torch.Tensor, margin: float, counts: torch.Tensor | None = None
) -> torch.Tensor:
    """mean over pairs of max(0, margin - s_pos + s_neg) (TransE's loss); ``counts`` as in
    :func:`self_adversarial_loss`."""
    return _row_mean(F.relu(margin - pos[:, None] + neg), counts).mean()


def softplus_loss(pos: torch.Tensor, neg: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
    """Logistic loss (= binary cross-entropy with logits): softplus(-s_pos) + mean softplus(s_neg);
    ``counts`` as in :func:`self_adversarial_loss`."""
    return (F.softplus(-pos).mean() + _row_mean(F.softplus(neg), counts).mean()) / 2


def one_vs_all_loss(scores: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of each query's scores over all entities [B, N] against its true entity [B].

    1-N scoring (as in ConvE and Lacroix et al.'s CP/ComplEx-N3): every other entity is a negative,
    none is sampled. Other true answers of the query are negatives too, as in those works; the
    softmax makes that cost small. ``label_smoothing`` spreads that much target mass uniformly.
    """
    return F.cross_entropy(scores.float(), targets, label_smoothing=label_smoothing)


def weigh_self_logit(scores: torch.Tensor, asked: torch.Tensor, keep: torch.Tensor, weight: float) -> torch.Tensor:
    """1-N scores [B, N] with each row's asked-about entity counted ``1 + weight`` times in the
    softmax (it is a candidate once already): log(1 + weight) added to its logit where ``keep``
    [B] (a row whose asked entity is a known answer is left alone)."""
    bonus = (math.log1p(weight) * keep.to(scores.dtype))[:, None]
    return scores.scatter_add(1, asked[:, None], bonus)


def check_loss_name(name: str) -> None:
    """Raise ValueError listing :data:`LOSSES` when ``name`` is not one of them."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")


def kgc_loss(
    name: str,
    pos: torch.Tensor,
    neg: torch.Tensor,
    margin: float,
    temperature: float,
    counts: torch.Tensor | None = None,
) -> torch.Tensor:
    """The sampled loss ``name`` (see :data:`SAMPLED_LOSSES`) of positive scores [B] and negative
    scores [B, K]; ``counts`` [B, K]: how many negatives each column stands for (default 1 each;
    self-negatives, afme_lib/engine/sampling.py, are a column counted ``TrainConfig.self_negatives``
    times, or 0 where the asked entity is a known answer)."""
    check_loss_name(name)
    if name not in SAMPLED_LOSSES:
        raise ValueError(
            f"loss {name!r} scores every entity, not sampled negatives; it has no form on "
            f"positive and negative scores (use one_vs_all_loss)"
        )
    if name == "nssa":
        return self_adversarial_loss(pos, neg, margin, temperature, counts)
    if name == "margin":
        return margin_ranking_loss(pos, neg, margin, counts)
    return softplus_loss(pos, neg, counts)
