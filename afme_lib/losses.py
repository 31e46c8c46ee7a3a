"""KGC losses (higher score = more plausible): sampled losses on positive scores [B] and negative
scores [B, K], and the 1-N cross-entropy on every entity's score [B, N]."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from afme_lib.config import LOSSES, SAMPLED_LOSSES  # declared with TrainConfig.loss; re-exported here


def self_adversarial_loss(pos: torch.Tensor, neg: torch.Tensor, margin: float, temperature: float) -> torch.Tensor:
    """RotatE's self-adversarial negative sampling loss (Sun et al., 2019), batch-averaged::

        L = -( mean_b log sigmoid(margin + s_pos_b) + mean_b sum_i p_bi log sigmoid(-margin - s_neg_bi) ) / 2,
        p_b = softmax_i(temperature * s_neg_bi)   (detached: the weights are not trained)

    i.e. the mean of the positive and the negative part, as in RotatE's reference code. With a
    distance score s = -d this is the paper's gamma - d form. temperature = 0 gives uniform
    weights 1/K over the negatives.
    """
    weights = torch.softmax(temperature * neg.detach(), dim=-1)
    pos_term = F.logsigmoid(margin + pos)
    neg_term = (weights * F.logsigmoid(-margin - neg)).sum(-1)
    return -(pos_term.mean() + neg_term.mean()) / 2


def margin_ranking_loss(pos: torch.Tensor, neg: torch.Tensor, margin: float) -> torch.Tensor:
    """mean over pairs of max(0, margin - s_pos + s_neg) (TransE's loss)."""
    return F.relu(margin - pos[:, None] + neg).mean()


def softplus_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Logistic loss (= binary cross-entropy with logits): softplus(-s_pos) + mean softplus(s_neg)."""
    return (F.softplus(-pos).mean() + F.softplus(neg).mean()) / 2


def one_vs_all_loss(scores: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of each query's scores over all entities [B, N] against its true entity [B].

    1-N scoring (as in ConvE and Lacroix et al.'s CP/ComplEx-N3): every other entity is a negative,
    none is sampled. Other true answers of the query are negatives too, as in those works; the
    softmax makes that cost small. ``label_smoothing`` spreads that much target mass uniformly.
    """
    return F.cross_entropy(scores.float(), targets, label_smoothing=label_smoothing)


def check_loss_name(name: str) -> None:
    """Raise ValueError listing :data:`LOSSES` when ``name`` is not one of them."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")


def kgc_loss(name: str, pos: torch.Tensor, neg: torch.Tensor, margin: float, temperature: float) -> torch.Tensor:
    """The sampled loss ``name`` (see :data:`SAMPLED_LOSSES`) of positive scores [B] and negative scores [B, K]."""
    check_loss_name(name)
    if name not in SAMPLED_LOSSES:
        raise ValueError(f"loss {name!r} scores every entity, not sampled negatives; it has no form on "
                         f"positive and negative scores (use one_vs_all_loss)")
    if name == "nssa":
        return self_adversarial_loss(pos, neg, margin, temperature)
    if name == "margin":
        return margin_ranking_loss(pos, neg, margin)
    return softplus_loss(pos, neg)
