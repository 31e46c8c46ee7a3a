"""MMKRL: the shared-translation score, the knowledge-alignment loss and the adversarial
(fast-gradient) term against loops written out, and learning on the tiny preset."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.engine.evaluation import evaluate
from afme_lib.engine.losses import kgc_loss
from afme_lib.engine.training import Trainer, loss_context
from afme_lib.models.mmkrl import fgm_perturbation
from afme_lib.models.registry import create_model

N, R, DIM = 10, 3, 8


@pytest.fixture
def store(small_store):
    """Image and text; entity 0 has neither, entity 1 only text, entity 2 only image (conftest)."""
    return small_store(N)


def build(store, seed=0, p_norm=1):
    torch.manual_seed(seed)
    model = create_model(ModelConfig(name="mmkrl", dim=DIM, p_norm=p_norm, structure_dropout=0.0), N, R, store)
    with torch.no_grad():  # move off the identity / zero initialisation so every term matters
        for p in (model.reconstruct.weight, model.entity_bias, model.relation_bias):
            p.add_(0.1 * torch.randn_like(p))
    return model


def parts_of(model, e):
    """(e_s, e^, e_m) of one entity, written out."""
    es = model.entity.weight[e]
    recon = model.reconstruct.weight @ es + model.entity_bias
    tokens = []
    for i, _name in enumerate(model.inputs.names):
        if getattr(model.inputs, f"present_{i}")[e]:
            f = getattr(model.inputs, f"features_{i}")[e]
            h = model.inputs.projections[i].weight @ f
            tokens.append(h / h.pow(2).mean().add(1e-6).sqrt() * model.inputs.log_scale[i].exp())
    modal = sum(tokens) / len(tokens) if tokens else model.align.weight @ es
    return es, recon, modal


@pytest.mark.parametrize("p_norm", [1, 2])
def test_score_is_the_mean_of_four_translations_over_one_relation(store, p_norm):
    model = build(store, p_norm=p_norm)
    triples = [(0, 0, 1), (1, 2, 2), (3, 1, 0), (4, 0, 5), (2, 1, 2)]
    h, r, t = torch.tensor(triples).T
    with torch.no_grad():
        got = model.score(h, r, t)
        for k, (a, rel, b) in enumerate(triples):
            _, ha, hm = parts_of(model, a)
            _, ta, tm = parts_of(model, b)
            rr = model.reconstruct.weight @ model.relation.weight[rel] + model.relation_bias
            unit = [F.normalize(v, dim=0) for v in (ha, hm, ta, tm, rr)]
            ha, hm, ta, tm, rr = unit
            terms = [
                torch.linalg.vector_norm(x + rr - y, ord=p_norm) for x, y in ((ha, ta), (hm, tm), (hm, ta), (ha, tm))
            ]
            torch.testing.assert_close(got[k], -sum(terms) / 4, rtol=1e-5, atol=1e-6)


def test_an_entity_without_modalities_uses_the_aligned_prediction(store):
    model = build(store)
    with torch.no_grad():
        rep = model.entity_repr(torch.tensor([0, 3]))
        expected = F.normalize(model.align(model.entity.weight[0]), dim=0)
        torch.testing.assert_close(rep[0, DIM:], expected)
        assert not torch.allclose(rep[1, DIM:], F.normalize(model.align(model.entity.weight[3]), dim=0))


def test_alignment_loss_equals_the_loop(store):
    model = build(store)
    triples = [(0, 0, 1), (1, 2, 2), (3, 1, 0), (4, 0, 5)]
    h, r, t = torch.tensor(triples).T
    with torch.no_grad():
        got = model.extra_loss(h, r, t)
        rel = ent = 0.0
        mod = {0: [], 1: []}
        for a, rr, b in triples:
            w = model.relation.weight[rr]
            rel += ((model.reconstruct.weight @ w + model.relation_bias - w) ** 2).mean() / len(triples)
            for side, e in enumerate((a, b)):
                es, recon, modal = parts_of(model, e)
                ent += ((recon - es) ** 2).mean() / len(triples)
                has = any(bool(getattr(model.inputs, f"present_{i}")[e]) for i in range(2))
                if has:  # only measured multi-modal embeddings are alignment targets
                    mod[side].append(((model.align.weight @ es - modal) ** 2).mean())
        expected = rel + ent + sum(sum(v) / len(v) for v in mod.values())
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    # identity W_s and zero biases: the reconstruction part of a fresh model is exactly 0
    fresh = create_model(ModelConfig(name="mmkrl", dim=DIM, structure_dropout=0.0), N, R, store)
    with torch.no_grad():
        for side in (h, t):
            s, recon = fresh.reconstructed_entity(side)
            assert torch.equal(s, recon)


def test_fgm_perturbation_has_norm_eps_x_along_the_gradient():
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
    g = torch.tensor([[0.0, -2.0], [1.0, 1.0], [0.0, 0.0]])
    delta = fgm_perturbation(x, g, 0.1)
    torch.testing.assert_close(delta[0], torch.tensor([0.0, -0.5]))
    torch.testing.assert_close(delta[1], torch.tensor([0.1, 0.1]) / 2**0.5)
    assert torch.equal(delta[2], torch.zeros(2))  # no gradient: no perturbation


def test_adversarial_term_is_the_kgc_loss_on_perturbed_positives(store):
    model = build(store)
    batch = torch.tensor([[1, 0, 3], [4, 2, 5], [6, 1, 0]])
    negatives = torch.tensor([[2, 7, 8], [9, 1, 0], [3, 4, 5]])
    corrupt_head = torch.tensor([True, False, True])
    cfg = TrainConfig(lambda_adv=0.5, margin=2.0, adv_epsilon=0.3)
    got = model.training_losses(batch, negatives, corrupt_head, loss_context(cfg))["mmkrl_adv"]

    # reference: leaf copies of the positives' representations, gradient, step, loss again
    h, r, t = batch.unbind(1)
    with torch.no_grad():
        rel, cands = model.relation_repr(r), model.entity_repr(negatives)
    heads = model.entity_repr(h).detach().requires_grad_(True)
    tails = model.entity_repr(t).detach().requires_grad_(True)

    def loss(hx, tx):
        pos = model.scorer.score(hx, rel, tx)
        neg = torch.stack(
            [
                model.scorer.score(cands[b], rel[b], tx[b])
                if corrupt_head[b]
                else model.scorer.score(hx[b], rel[b], cands[b])
                for b in range(3)
            ]
        )
        return kgc_loss("nssa", pos, neg, 2.0, 1.0)

    clean = loss(heads, tails)
    gh, gt = torch.autograd.grad(clean, (heads, tails))
    with torch.no_grad():
        moved_h = heads + 0.3 * heads.norm(dim=1, keepdim=True) * gh / gh.norm(dim=1, keepdim=True)
        moved_t = tails + 0.3 * tails.norm(dim=1, keepdim=True) * gt / gt.norm(dim=1, keepdim=True)
        adversarial = loss(moved_h, moved_t)
    torch.testing.assert_close(got, 0.5 * adversarial, rtol=1e-5, atol=1e-7)
    assert adversarial > clean  # the step goes uphill: a harder version of the batch
    got.backward()  # and it trains the model through the perturbed representations
    assert model.entity.weight.grad is not None and model.entity.weight.grad.abs().sum() > 0
    assert model.training_losses(batch, negatives, corrupt_head, loss_context(TrainConfig(lambda_adv=0.0))) == {}
    assert TrainConfig().adv_epsilon == 0.1  # the size documented in docs/baselines.md


def test_mmkrl_learns_the_tiny_preset_and_logs_its_terms(tiny_synth):
    data = load_dataset(tiny_synth)
    store = FeatureStore.load(tiny_synth, data.num_entities, verbose=False)
    trainer = Trainer(
        data,
        ModelConfig(name="mmkrl", dim=32),
        TrainConfig(
            epochs=5, batch_size=512, negatives=8, lr=0.05, lambda_adv=1.0, eval_every=0, progress=False, device="cpu"
        ),
        None,
        features=store,
    )
    before = evaluate(trainer.model, data, "train")["mrr"]
    state = trainer.fit()
    after = evaluate(trainer.model, data, "train")["mrr"]
    assert before < 0.05 and after > 2 * before, (before, after)
    assert {"kgc", "extra", "mmkrl_adv", "loss"} <= set(state.history[0])
