"""KGC losses against hand computations; gradients of the self-adversarial weights."""

from __future__ import annotations

import math

import pytest
import torch

from afme_lib.engine.losses import (
    LOSSES,
    SAMPLED_LOSSES,
    kgc_loss,
    margin_ranking_loss,
    one_vs_all_loss,
    self_adversarial_loss,
    softplus_loss,
    weigh_self_logit,
)

POS = torch.tensor([1.0, -2.0], dtype=torch.float64)
NEG = torch.tensor([[0.5, -1.0, 2.0], [-3.0, 0.0, 1.0]], dtype=torch.float64)


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def hand_nssa(pos, neg, margin, temperature) -> float:
    """-(mean_b log s(m + p_b) + mean_b sum_i w_bi log s(-m - n_bi)) / 2, w = softmax(T n_b)."""
    pos_part = sum(log_sigmoid(margin + p) for p in pos) / len(pos)
    neg_part = 0.0
    for row in neg:
        exps = [math.exp(temperature * x) for x in row]
        weights = [e / sum(exps) for e in exps]
        neg_part += sum(w * log_sigmoid(-margin - x) for w, x in zip(weights, row))
    return -(pos_part + neg_part / len(neg)) / 2


@pytest.mark.parametrize("margin,temperature", [(6.0, 1.0), (2.0, 0.5), (0.0, 3.0), (6.0, 0.0)])
def test_self_adversarial_matches_hand_computation(margin, temperature):
    got = self_adversarial_loss(POS, NEG, margin, temperature)
    assert got.item() == pytest.approx(hand_nssa(POS.tolist(), NEG.tolist(), margin, temperature), rel=1e-12)


def test_temperature_zero_weighs_negatives_uniformly():
    margin = 1.5
    uniform = (
        -(
            torch.nn.functional.logsigmoid(margin + POS).mean()
            + torch.nn.functional.logsigmoid(-margin - NEG).mean(1).mean()
        )
        / 2
    )
    assert self_adversarial_loss(POS, NEG, margin, 0.0).item() == pytest.approx(uniform.item(), rel=1e-12)


def test_self_adversarial_weights_carry_no_gradient():
    """d/dn_bi = w_bi * sigmoid(m + n_bi) / (2B): the softmax weights act as constants."""
    margin, temperature = 2.0, 1.3
    neg = NEG.clone().requires_grad_(True)
    self_adversarial_loss(POS, neg, margin, temperature).backward()
    weights = torch.softmax(temperature * NEG, dim=-1)
    expected = weights * torch.sigmoid(margin + NEG) / (2 * len(NEG))
    torch.testing.assert_close(neg.grad, expected, rtol=1e-12, atol=1e-15)
    # Had the weights been differentiated, the gradient would differ from the one above.
    neg_live = NEG.clone().requires_grad_(True)
    w = torch.softmax(temperature * neg_live, dim=-1)
    (-(w * torch.nn.functional.logsigmoid(-margin - neg_live)).sum(-1).mean() / 2).backward()
    assert not torch.allclose(neg_live.grad, expected)


def test_margin_ranking_matches_hand_computation():
    margin = 1.0
    pairs = [max(0.0, margin - p + n) for p, row in zip(POS.tolist(), NEG.tolist()) for n in row]
    assert margin_ranking_loss(POS, NEG, margin).item() == pytest.approx(sum(pairs) / len(pairs), rel=1e-12)
    # Every negative beaten by more than the margin: zero loss and zero gradient.
    pos = torch.tensor([10.0], requires_grad=True)
    loss = margin_ranking_loss(pos, torch.tensor([[0.0, 5.0]]), 2.0)
    loss.backward()
    assert loss.item() == 0.0 and pos.grad.item() == 0.0


def test_softplus_matches_hand_computation():
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    pos_part = sum(softplus(-p) for p in POS.tolist()) / len(POS)
    neg_part = sum(softplus(n) for row in NEG.tolist() for n in row) / NEG.numel()
    expected = (pos_part + neg_part) / 2
    assert softplus_loss(POS, NEG).item() == pytest.approx(expected, rel=1e-12)


def test_kgc_loss_dispatches_by_name():
    assert kgc_loss("nssa", POS, NEG, 3.0, 0.7).item() == self_adversarial_loss(POS, NEG, 3.0, 0.7).item()
    assert kgc_loss("margin", POS, NEG, 3.0, 0.7).item() == margin_ranking_loss(POS, NEG, 3.0).item()
    assert kgc_loss("softplus", POS, NEG, 3.0, 0.7).item() == softplus_loss(POS, NEG).item()
    assert kgc_loss("bce", POS, NEG, 3.0, 0.7).item() == softplus_loss(POS, NEG).item()
    assert set(SAMPLED_LOSSES) == {"nssa", "margin", "softplus", "bce"}
    assert set(LOSSES) == set(SAMPLED_LOSSES) | {"1vsall"}
    with pytest.raises(ValueError, match="'1vsall' scores every entity"):
        kgc_loss("1vsall", POS, NEG, 3.0, 0.7)


def test_one_vs_all_matches_hand_computed_cross_entropy():
    scores = torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.3, 0.3, -2.0, 1.0]], dtype=torch.float64)
    targets = torch.tensor([2, 0])

    def nll(row, target, smoothing):
        log_z = math.log(sum(math.exp(x) for x in row))
        log_p = [x - log_z for x in row]
        return -(1 - smoothing) * log_p[target] - smoothing * sum(log_p) / len(row)

    for smoothing in (0.0, 0.1):
        expected = sum(nll(row, int(t), smoothing) for row, t in zip(scores.tolist(), targets)) / 2
        assert one_vs_all_loss(scores, targets, smoothing).item() == pytest.approx(expected, rel=1e-6)


def test_unknown_loss_name_is_refused():
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; expected one of nssa, margin, softplus, bce, 1vsall"):
        kgc_loss("hinge", POS, NEG, 1.0, 1.0)


# --- counts: a column standing for several negatives (self-negatives) ------------------------
@pytest.mark.parametrize("name", ["nssa", "margin", "softplus"])
@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_a_column_counted_c_times_equals_that_column_repeated(name, temperature):
    """counts [1, 1, 3] on NEG == NEG with its last column written three times."""
    counts = torch.tensor([[1.0, 1.0, 3.0], [1.0, 1.0, 3.0]], dtype=torch.float64)
    repeated = torch.cat([NEG, NEG[:, -1:], NEG[:, -1:]], 1)
    got = kgc_loss(name, POS, NEG, 2.0, temperature, counts)
    assert got.item() == pytest.approx(kgc_loss(name, POS, repeated, 2.0, temperature).item(), rel=1e-12)


@pytest.mark.parametrize("name", ["nssa", "margin", "softplus"])
def test_counts_of_one_change_nothing_and_a_zero_count_drops_its_column(name):
    ones = torch.ones_like(NEG)
    assert kgc_loss(name, POS, NEG, 2.0, 0.7, ones).item() == pytest.approx(
        kgc_loss(name, POS, NEG, 2.0, 0.7).item(), rel=1e-12
    )
    counts = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    dropped = kgc_loss(name, POS, NEG[:, :2], 2.0, 0.7)
    assert kgc_loss(name, POS, NEG, 2.0, 0.7, counts).item() == pytest.approx(dropped.item(), rel=1e-12)


def test_weigh_self_logit_counts_the_asked_entity_one_plus_weight_times():
    """Cross-entropy with log(1 + w) on the asked entity's logit == the same with that column
    present 1 + w times (w = 2); a row whose asked entity is kept out is unchanged."""
    scores = torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.3, 0.3, -2.0, 1.0]], dtype=torch.float64)
    targets, asked = torch.tensor([2, 0]), torch.tensor([1, 3])
    weighed = weigh_self_logit(scores, asked, torch.tensor([True, False]), 2.0)
    row0 = torch.cat([scores[0], scores[0, 1:2], scores[0, 1:2]])[None]  # asked column 1, twice more
    expected0 = one_vs_all_loss(row0, targets[:1])
    assert one_vs_all_loss(weighed[:1], targets[:1]).item() == pytest.approx(expected0.item(), rel=1e-12)
    torch.testing.assert_close(weighed[1], scores[1])
