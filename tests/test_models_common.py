"""What every registered model must do, checked for each name in the registry.

A new model is covered by registering it: it is built on the tiny synthetic preset (with its
features), trained for a few steps through the interface the engine uses, saved and loaded, and
its batched ranking scores are compared with ``score``.
"""

from __future__ import annotations

import io

import pytest
import torch

from afme_lib.config import ModelConfig
from afme_lib.data.dataset import load_dataset
from afme_lib.data.features import FeatureStore
from afme_lib.data.synthetic import write_synthetic
from afme_lib.losses import kgc_loss
from afme_lib.models.base import KGModel
from afme_lib.models.registry import create_model, model_names

DIM = 16



@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = write_synthetic(tmp_path_factory.mktemp("common") / "tiny", "tiny", seed=0)
    data = load_dataset(folder)
    return data, FeatureStore.load(folder, data.num_entities, verbose=False)


def build(tiny, name, seed=0) -> KGModel:
    data, store = tiny
    torch.manual_seed(seed)
    cfg = ModelConfig(name=name, dim=DIM, attention_heads=2, noise_dim=4)
    return create_model(cfg, data.num_entities, data.num_relations, store)


def train_steps(model: KGModel, data, steps: int = 3) -> list[float]:
    """The engine's batch step in miniature: critic steps (if any), then KGC (+ extra, + generator)."""
    main_params = model.main_parameters() if hasattr(model, "main_parameters") else list(model.parameters())
    critic_params = model.critic_parameters() if hasattr(model, "critic_parameters") else []
    main = torch.optim.Adam(main_params, lr=1e-2)
    critic = torch.optim.Adam(critic_params, lr=1e-4, betas=(0.5, 0.9)) if critic_params else None
    g = torch.Generator().manual_seed(0)
    losses = []
    model.train()
    for _ in range(steps):
        batch = data.train[torch.randint(0, len(data.train), (32,), generator=g)]
        h, r, t = batch.unbind(1)
        negatives = torch.randint(0, data.num_entities, (32, 4), generator=g)
        corrupt_head = torch.rand(32, generator=g) < 0.5
        ents, rels = torch.cat([h, t]), torch.cat([r, r])
        if critic is not None:
            out = model.critic_loss(ents, rels, 10.0)
            critic.zero_grad(set_to_none=True)
            out["loss"].backward()
            critic.step()
        pos = model.score(h, r, t)
        neg = model.score_negatives(h, r, t, negatives, corrupt_head)
        assert pos.shape == (32,) and neg.shape == (32, 4)
        loss = kgc_loss("nssa", pos, neg, 6.0, 1.0)
        extra = model.extra_loss(h, r, t)
        if extra is not None:
            loss = loss + extra
        if critic is not None:
            loss = loss + 0.01 * model.generator_loss(ents, rels)
        main.zero_grad(set_to_none=True)
        loss.backward()
        main.step()
        losses.append(loss.detach().item())
    model.eval()
    return losses


def test_the_registry_lists_the_multimodal_models():
    assert {"afme", "ikrl", "mm-concat"} <= set(model_names())


@pytest.mark.parametrize("name", model_names())
def test_registered_model_trains_saves_loads_and_ranks(tiny, name):
    data = tiny[0]
    model = build(tiny, name)
    assert isinstance(model, KGModel) and model.registered_name == name

    losses = train_steps(model, data)
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert all(torch.isfinite(p).all() for p in model.parameters())

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = build(tiny, name, seed=1).eval()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))

    h, r, t = data.test[:5].unbind(1)
    n = data.num_entities
    every = torch.arange(n).expand(5, n)
    with torch.no_grad():
        torch.testing.assert_close(fresh.score(h, r, t), model.score(h, r, t), rtol=0, atol=0)
        tails = fresh.score_all(h, r, "tail")
        heads = fresh.score_all(t, r, "head")
        assert tails.shape == (5, n) and heads.shape == (5, n)
        torch.testing.assert_close(tails, model.score(h[:, None], r[:, None], every), rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(heads, model.score(every, r[:, None], t[:, None]), rtol=1e-5, atol=1e-4)
        # the true tail's / head's entry is the triple's own score
        torch.testing.assert_close(tails.gather(1, t[:, None]).squeeze(1), model.score(h, r, t), rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(heads.gather(1, h[:, None]).squeeze(1), model.score(h, r, t), rtol=1e-5, atol=1e-4)
