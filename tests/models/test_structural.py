"""Structure-only baselines built through the registry: shapes, scores, widths, gradients."""

from __future__ import annotations

import pytest
import torch

from afme_lib.core.config import ModelConfig
from afme_lib.models.base import KGModel
from afme_lib.models.registry import MODEL_REGISTRY, create_model, model_names
from afme_lib.models.scorers import ComplEx, DistMult, RotatE, TransE

N_ENT, N_REL, DIM = 13, 4, 8
NAMES = ["transe", "distmult", "complex", "rotate"]


def build(name, **config):
    torch.manual_seed(0)
    return create_model(ModelConfig(name=name, dim=DIM, **config), N_ENT, N_REL)


def batch():
    return torch.tensor([0, 5, 12]), torch.tensor([1, 3, 0]), torch.tensor([7, 5, 2])


def test_all_four_are_registered():
    assert set(NAMES) <= set(model_names())
    for name in NAMES:
        assert issubclass(MODEL_REGISTRY[name], KGModel) and MODEL_REGISTRY[name].registered_name == name
        assert not MODEL_REGISTRY[name].relation_conditioned


@pytest.mark.parametrize(
    "name, scorer_type, ent_width, rel_width",
    [
        ("transe", TransE, DIM, DIM),
        ("distmult", DistMult, DIM, DIM),
        ("complex", ComplEx, DIM, DIM),
        ("rotate", RotatE, DIM, DIM // 2),
    ],
)
def test_embedding_widths_follow_the_scorer(name, scorer_type, ent_width, rel_width):
    model = build(name)
    assert type(model.scorer) is scorer_type
    assert model.entity.weight.shape == (N_ENT, ent_width)
    assert model.relation.weight.shape == (N_REL, rel_width)
    assert model.entity_table() is model.entity.weight


@pytest.mark.parametrize("name", NAMES)
def test_scores_and_score_all(name):
    model = build(name)
    h, r, t = batch()
    with torch.no_grad():
        s = model.score(h, r, t)
        E, R = model.entity.weight, model.relation.weight
        assert s.shape == (3,)
        torch.testing.assert_close(s, model.scorer.score(E[h], R[r], E[t]))
        tails = model.score_all(h, r, "tail", chunk_size=5)
        heads = model.score_all(t, r, "head")
        assert tails.shape == heads.shape == (3, N_ENT)
        # Column t of the tail scores and column h of the head scores are the triples' own scores.
        torch.testing.assert_close(tails[torch.arange(3), t], s, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(heads[torch.arange(3), h], s, rtol=1e-5, atol=1e-5)
        # [B, 1] heads against [B, K] candidate tails.
        cand = torch.tensor([[1, 2, 3, 4], [0, 0, 9, 12], [5, 6, 7, 8]])
        many = model.score(h[:, None], r[:, None], cand)
        assert many.shape == (3, 4)
        torch.testing.assert_close(many, tails.gather(1, cand), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_both_embeddings(name):
    model = build(name)
    h, r, t = torch.tensor([0, 5, 12]), torch.tensor([1, 3, 0]), torch.tensor([7, 9, 2])  # no self-loop:
    model.score(h, r, t).sum().backward()  # a TransE (e, r, e) triple's entity gradients cancel exactly
    ent_grad, rel_grad = model.entity.weight.grad, model.relation.weight.grad
    used = torch.zeros(N_ENT, dtype=torch.bool)
    used[torch.cat([h, t])] = True
    assert (ent_grad[used].abs().sum(1) > 0).all() and (ent_grad[~used] == 0).all()
    assert (rel_grad[r].abs().sum(1) > 0).all() and rel_grad[2].abs().sum() == 0  # relation 2 unused


def test_transe_p_norm_picks_the_distance():
    h, r, t = batch()
    for p in (1, 2):
        model = build("transe", p_norm=p)
        assert model.scorer.p_norm == p
        E, R = model.entity.weight.detach(), model.relation.weight.detach()
        want = -(E[h] + R[r] - E[t]).norm(p=p, dim=-1)
        torch.testing.assert_close(model.score(h, r, t).detach(), want)


def test_config_init_range_and_ignored_features():
    model = create_model(
        ModelConfig(name="distmult", dim=DIM, init_range=0.01, scorer="rotate"), N_ENT, N_REL, features=object()
    )
    assert type(model.scorer) is DistMult  # the model name, not config.scorer, picks the score function
    assert model.entity.weight.abs().max() <= 0.01 and model.relation.weight.abs().max() <= 0.01
    rot = build("rotate")
    assert rot.entity.weight.abs().max() <= (6.0 + 2.0) / (DIM // 2)
    assert rot.relation.weight.abs().max() <= torch.pi
